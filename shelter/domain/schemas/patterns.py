"""Regular expressions that say, in the documents, exactly what a field's check accepts.

They are made from the checks' own pieces where they can be (the characters Python strips
as spaces; the kana ``normalise_kana`` takes), so that the document neither refuses what
the API takes (schemathesis sends such bodies and expects a 4xx) nor admits what it
refuses. Characters in the BMP are written ``\\uXXXX``, which Python's ``re``, ECMA-262
and Rust's regex read alike; those beyond it appear as themselves.
"""

from __future__ import annotations

import calendar
import unicodedata
from collections.abc import Iterable
from datetime import date

from shelter.domain.text import clean_line, normalise_kana


def char_class(codes: Iterable[int]) -> str:
    """The body of a character class (without brackets) for these code points."""
    spans: list[list[int]] = []
    for code in sorted(set(codes)):
        if spans and spans[-1][1] == code - 1:
            spans[-1][1] = code
        else:
            spans.append([code, code])

    def one(code: int) -> str:
        return f"\\u{code:04x}" if code < 0x10000 else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in spans)


CONTROL = "\\u0000-\\u001f\\u007f-\\u009f"  # what clean_line refuses (category Cc)
_SPACES = [c for c in range(0x10000) if chr(c).isspace()]  # none lies beyond the BMP
SPACE = char_class(_SPACES)  # what str.strip() takes off
GAP = char_class(c for c in _SPACES if unicodedata.category(chr(c)) != "Cc")  # inside a line
LETTER = f"[^{SPACE}{CONTROL}]"
# Every character that is furigana on its own: hiragana, katakana, half-width, circled and
# squared katakana... (the blocks where they are: a test checks there are no others).
KANA_BLOCKS = (range(0x3000, 0x3400), range(0xFF00, 0xFFF0), range(0x1F200, 0x1F300))
KANA = char_class(c for block in KANA_BLOCKS for c in block
                  if clean_line(chr(c), 1) and normalise_kana(chr(c)))


def one_line(limit: int, required: bool = False, letter: str = LETTER,
             inner: str = f"[^{CONTROL}]", shortest: int = 1) -> str:
    """A line as ``clean_line`` reads it: spaces around, then ``shortest`` to ``limit``
    characters that begin and end with a ``letter`` and hold only ``inner`` ones; with
    ``required``, not empty."""
    if shortest > 1:
        core = f"{letter}{inner}{{{shortest - 2},{limit - 2}}}{letter}"
    else:
        core = f"{letter}(?:{inner}{{0,{limit - 2}}}{letter})?"
    return f"^[{SPACE}]*{core if required else f'(?:{core})?'}[{SPACE}]*$"


def kana_line(limit: int, required: bool = False) -> str:
    return one_line(limit, required, f"[{KANA}]", f"[{KANA}{GAP}]")


def _any_digits(count: int) -> str:
    return "" if count == 0 else "[0-9]" if count == 1 else f"[0-9]{{{count}}}"


def _digits(low: str, high: str) -> str:
    """A regular expression for the numbers low..high, written with as many digits."""
    if set(low) <= {"0"} and set(high) <= {"9"}:
        return _any_digits(len(high))
    if low[0] == high[0]:
        return low[0] + _digits(low[1:], high[1:])
    rest, options, tail = len(high) - 1, [], ""
    start, end = int(low[0]), int(high[0])
    if set(low[1:]) - {"0"}:
        options.append(low[0] + _digits(low[1:], "9" * rest))
        start += 1
    if set(high[1:]) - {"9"}:
        tail = high[0] + _digits("0" * rest, high[1:])
        end -= 1
    if start <= end:
        options.append((str(start) if start == end else f"[{start}-{end}]") + _any_digits(rest))
    options += [tail] if tail else []
    return options[0] if len(options) == 1 else "(?:" + "|".join(options) + ")"


def dates_up_to(today: date, first_year: int = 1900) -> str:
    """The dates that exist from ``first_year`` to ``today``, as YYYY-MM-DD with spaces
    around."""
    options = []
    if today.year > first_year:
        years = _digits(f"{first_year:04d}", f"{today.year - 1:04d}")
        leap = [f"{y:04d}" for y in range(first_year, today.year) if calendar.isleap(y)]
        options += [f"{years}-(?:0[13578]|1[02])-{_digits('01', '31')}",
                    f"{years}-(?:0[469]|11)-{_digits('01', '30')}",
                    f"{years}-02-{_digits('01', '28')}"]
        options += [f"(?:{'|'.join(leap)})-02-29"] if leap else []
    for month in range(1, today.month + 1):
        last = today.day if month == today.month else calendar.monthrange(today.year, month)[1]
        options.append(f"{today.year:04d}-{month:02d}-{_digits('01', f'{last:02d}')}")
    return f"^[{SPACE}]*(?:{'|'.join(options)})[{SPACE}]*$"


def numeral(minimum: int, maximum: int, digits: int = 9) -> str:
    """A whole number from ``minimum`` (0 or 1) to ``maximum`` as text: ``-?[0-9]{1,9}``
    with spaces around, as the quantity check reads it."""
    options = [f"-?0{{1,{digits}}}"] if minimum <= 0 else []
    for width in range(1, len(str(maximum)) + 1):
        high = min(maximum, 10 ** width - 1)
        low = max(1, 10 ** (width - 1))
        if low <= high:
            options.append(f"0{{0,{digits - width}}}{_digits(f'{low:0{width}d}', str(high))}")
    return f"^[{SPACE}]*(?:{'|'.join(options)})[{SPACE}]*$"
