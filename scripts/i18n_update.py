#!/usr/bin/env python3
"""Extract messages from the code and templates and merge them into every catalog.

Run after adding or changing user-facing text, then translate the new entries in
shelter/translations/*/LC_MESSAGES/messages.po (tests fail while any is missing).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ["ja", "en", "zh_Hans", "ko", "vi"]


def main() -> int:
    pot = ROOT / "build" / "messages.pot"
    pot.parent.mkdir(exist_ok=True)
    pybabel = [sys.executable, "-m", "babel.messages.frontend"]
    subprocess.run(pybabel + ["extract", "-F", "babel.cfg", "-k", "N_", "-k", "_",
                              "--no-location", "--sort-output", "-o", str(pot), "."],
                   cwd=ROOT, check=True)
    for locale in LOCALES:
        po = ROOT / "shelter" / "translations" / locale / "LC_MESSAGES" / "messages.po"
        command = "update" if po.exists() else "init"
        subprocess.run(pybabel + [command, "-i", str(pot), "-d", "shelter/translations",
                                  "-l", locale] + (["--no-fuzzy-matching"]
                                                   if command == "update" else []),
                       cwd=ROOT, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
