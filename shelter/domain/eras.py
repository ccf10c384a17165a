"""Birth years as Japanese write them: 昭和60, 平成元年, S60 — turned into the AD year.

The kiosk form asks for the era beside the year (``m{i}-birth_era``); an era typed into the
year box itself is read as well. Only the eras a living person was born in (大正 on).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date

from shelter.core.clock import today_jst
from shelter.core.errors import N_
from shelter.domain.text import ascii_digits

# The AD year of each era's year 1, and its last year (None: the era goes on). An era's
# last year is the next one's first: 昭和64 and 平成元年 are both 1989.
ERAS: dict[str, tuple[int, int | None]] = {
    "taisho": (1912, 15), "showa": (1926, 64), "heisei": (1989, 31), "reiwa": (2019, None)}
ERA_NAMES = {"taisho": N_("Taishō"), "showa": N_("Shōwa"), "heisei": N_("Heisei"),
             "reiwa": N_("Reiwa")}
ERA_KANJI = {"taisho": "大正", "showa": "昭和", "heisei": "平成", "reiwa": "令和"}
OUT_OF_ERA = N_("%(era)s has the years 1 to %(last)s. Check the year, or choose another era.")
_WRITTEN = {**{kanji: era for era, kanji in ERA_KANJI.items()},
            "T": "taisho", "S": "showa", "H": "heisei", "R": "reiwa"}
_TYPED = re.compile(r"(大正|昭和|平成|令和|[TSHR])\s*([0-9]{1,2}|元)")


def typed_number(text: str, unit: str = "") -> str:
    """A number as typed on any keyboard: full-width digits and spaces read, a unit after it
    (年, 月, 日) dropped."""
    text = unicodedata.normalize("NFKC", ascii_digits(text or "", hyphens=False)).strip()
    return text[:-1].strip() if unit and text.endswith(unit) else text


def last_year(era: str, today: date | None = None) -> int:
    first, last = ERAS[era]
    return last or (today or today_jst()).year - first + 1


def western_year(era: str, typed: str,
                 today: date | None = None) -> tuple[str, dict[str, object] | None]:
    """The AD year of a birth year typed with its era (``"showa", "60"`` is ``"1985"``; 元
    and 元年 are year 1), or with the era typed into the year (昭和60, S60, ｈ元年); else the
    year as typed, for the date's own check. The second value, when the year is not one of
    the era's: what ``OUT_OF_ERA`` needs (``era``: its key, ``last``: its last year)."""
    year = typed_number(typed, "年")
    if not era:
        written = _TYPED.fullmatch(year.upper())
        if written is None:
            return year, None
        era, year = _WRITTEN[written.group(1)], written.group(2)
    if era not in ERAS:
        return year, None
    number = 1 if year == "元" else int(year) if year.isascii() and year.isdigit() else None
    if number is None:
        return year, None  # not a number: the date's check says how to write it
    last = last_year(era, today)
    if not 1 <= number <= last:
        return year, {"era": era, "last": last}
    return str(ERAS[era][0] + number - 1), None
