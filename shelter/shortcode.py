"""Short typed codes for cards: ``ABCD-EFG`` + check character, e.g. ``7KQ3-M9TX``.

Crockford's base32 alphabet (no I, L, O, U: nothing to confuse with 1, 0 or V). The last
character is a Luhn mod 32 check: every single mistyped character and every swap of two
neighbouring characters is caught before anything is looked up.
"""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
# What people type by mistake for what they meant.
_CONFUSABLE = str.maketrans({"I": "1", "L": "1", "O": "0", "U": "V"})
DATA_LENGTH = 7


def check_char(data: str) -> str:
    """Luhn mod N over the alphabet."""
    factor, total, n = 2, 0, len(ALPHABET)
    for ch in reversed(data):
        addend = factor * _VALUE[ch]
        factor = 1 if factor == 2 else 2
        total += addend // n + addend % n
    return ALPHABET[(n - total % n) % n]


def generate() -> str:
    data = "".join(secrets.choice(ALPHABET) for _ in range(DATA_LENGTH))
    return data + check_char(data)


def normalise(typed: str) -> str | None:
    """The canonical code for what someone typed, or None if it cannot be a valid code."""
    code = "".join(typed.upper().split()).replace("-", "").translate(_CONFUSABLE)
    if len(code) != DATA_LENGTH + 1 or any(ch not in _VALUE for ch in code):
        return None
    if check_char(code[:-1]) != code[-1]:
        return None
    return code


def display(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"
