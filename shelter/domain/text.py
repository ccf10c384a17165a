"""Normalising names the way a Japanese shelter desk reads them."""

from __future__ import annotations

import re
import unicodedata

_HIRAGANA_START, _HIRAGANA_END = 0x3041, 0x3096
_KANA_OFFSET = 0x60  # ぁ (U+3041) -> ァ (U+30A1)
# Full-width katakana, the prolonged sound mark, the middle dot and spaces.
_KATAKANA_RE = re.compile(r"^[\u30a1-\u30fa\u30fc\u30fd\u30fe\u30fb ]*$")


def to_katakana(text: str) -> str:
    """Hiragana, half-width and full-width katakana all become full-width katakana.

    NFKC turns half-width katakana (and full-width spaces) into their normal forms first.
    """
    text = unicodedata.normalize("NFKC", text)
    return "".join(
        chr(ord(ch) + _KANA_OFFSET) if _HIRAGANA_START <= ord(ch) <= _HIRAGANA_END else ch
        for ch in text
    )


def normalise_kana(text: str) -> str | None:
    """The stored form of a furigana field, or None when it is not kana."""
    kana = " ".join(to_katakana(text).split())
    return kana if _KATAKANA_RE.match(kana) else None


def name_key(family: str, given: str) -> str:
    """A key for finding the same name written slightly differently (width, case, spaces)."""
    return "".join(unicodedata.normalize("NFKC", family + given).casefold().split())


def kana_key(family_kana: str, given_kana: str) -> str:
    return "".join(to_katakana(family_kana + given_kana).split()).replace("・", "")


def clean_line(text: object, limit: int) -> str | None:
    """A single line of user text: stripped, NFC, with control characters refused."""
    if not isinstance(text, str):
        return None
    text = unicodedata.normalize("NFC", text).strip()
    if len(text) > limit or any(unicodedata.category(ch) == "Cc" for ch in text):
        return None
    return text


# What a Japanese keyboard types for a hyphen in a number: the katakana prolonged sound mark
# (ー, ｰ), the full-width hyphen-minus (－), the Unicode hyphens and the minus sign.
HYPHENS = "ーｰ－‐‑‒–—―−"
_WIDE_DIGITS = {0xFF10 + d: str(d) for d in range(10)}  # ０-９, as NFKC reads them
_HYPHENS_TO_ASCII = {ord(ch): "-" for ch in HYPHENS}


def ascii_digits(text: str, hyphens: bool = True) -> str:
    """Full-width digits (the Japanese keyboard's default) as ASCII ones, and with
    ``hyphens`` every hyphen-like mark as ``-``: ``"５４０ー０００８"`` is ``"540-0008"``.

    Only the full-width digits, the digits NFKC turns into ASCII that a keyboard types; not
    ① or superscripts, which nobody means as a number. Anything else is left as it is, for
    the field's own check to accept or refuse."""
    table = {**_WIDE_DIGITS, **_HYPHENS_TO_ASCII} if hyphens else _WIDE_DIGITS
    return text.translate(table)
