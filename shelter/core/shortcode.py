"""Short typed codes for cards: ``ABCD-EFG`` + check character, e.g. ``7KQ3-M9TX``.

Crockford's base32 alphabet (no I, L, O, U: nothing to confuse with 1, 0 or V). The last
character is a Damm check over the field GF(32): every single mistyped character and every
swap of two neighbouring characters is caught before anything is looked up (Luhn mod 32
misses some swaps).
"""

from __future__ import annotations

import secrets
import unicodedata

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
# What people type by mistake for what they meant.
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})
# Separators people type: spaces, and the hyphens a Japanese keyboard gives (ー, －, ‐...),
# as shelter.domain.text.HYPHENS lists them (core cannot import the domain).
_SEPARATORS = str.maketrans("", "", "-ーｰ－‐‑‒–—―−")
DATA_LENGTH = 7


def _times_x(value: int) -> int:
    """Multiply by x in GF(2^5) with the primitive polynomial x^5 + x^2 + 1."""
    value <<= 1
    return value ^ 0b100101 if value & 0b100000 else value


def _damm(text: str) -> int:
    # The quasigroup a*b = x*a + b is totally anti-symmetric because x != 1 in the field.
    interim = 0
    for ch in text:
        interim = _times_x(interim) ^ _VALUE[ch]
    return interim


def check_char(data: str) -> str:
    """The character that brings the Damm interim value of data + check back to zero."""
    return ALPHABET[_times_x(_damm(data))]


def generate() -> str:
    data = "".join(secrets.choice(ALPHABET) for _ in range(DATA_LENGTH))
    return data + check_char(data)


def normalise(typed: str) -> str | None:
    """The canonical code for what someone typed, or None if it cannot be a valid code.

    NFKC first: a Japanese keyboard types full-width letters and digits (７ＫＱ３－Ｍ９ＴＸ)."""
    text = unicodedata.normalize("NFKC", typed)
    code = "".join(text.upper().split()).translate(_SEPARATORS).translate(_CONFUSABLE)
    if len(code) != DATA_LENGTH + 1 or any(ch not in _VALUE for ch in code):
        return None
    if _damm(code) != 0:
        return None
    return code


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"
