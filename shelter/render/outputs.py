"""What goes out: user text made inert for the formats that would read it as instructions.

Names of people, staff, shelters and items, notes and addresses are typed by anyone (or come
from another shelter's laptop). reportlab reads a Paragraph's text as markup, and a
spreadsheet reads a CSV cell that starts with ``=`` as a formula; these helpers are the one
place each format's rule lives, so every value gets it.
"""

from __future__ import annotations

from xml.sax.saxutils import escape

# OWASP's list (CSV injection), plus the full-width forms Japanese Excel also starts a
# formula with when a cell is typed or imported with an IME's characters.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def pdf_text(value: object) -> str:
    """``value`` as a reportlab Paragraph's text that shows every character as written
    (``<b>``, ``<font ...>`` and ``&amp;`` included) and can never fail to parse."""
    return escape(str(value))


def csv_cell(value: object) -> object:
    """A CSV cell that a spreadsheet shows as text: a string that would start a formula is
    prefixed with an apostrophe (numbers and empty cells stay as they are)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
