"""ruff and mypy stay clean (STYLE.md): run as part of the suite so nobody skips them."""

from __future__ import annotations

import subprocess
import sys

from .conftest import ROOT


def test_ruff_is_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "shelter", "sync", "tests",
                             "scripts"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_on_sync_and_the_domain():
    result = subprocess.run([sys.executable, "-m", "mypy", "sync", "shelter"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
