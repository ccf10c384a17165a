"""What staff read, checked for what they must never read: a stored time in UTC (an ISO
string, a ``Z`` or ``+00:00``, the UTC clock or day of a time the database holds) or a code
where a word belongs (an item id, a unit code, a need, an audit action, a request's step).

``shifted_clock`` moves the wall clock of the code under test to a chosen moment (and lets it
run on from there), so a demo day can be made at an hour when the UTC day and Japan's differ.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser

JST = timezone(timedelta(hours=9))

# --- the clock ------------------------------------------------------------------------------


@contextmanager
def shifted_clock(moment: datetime) -> Iterator[float]:
    """While inside, ``datetime.now()`` in every loaded module of ``shelter`` and ``sync``
    reads ``moment`` plus the time since entering. Yields the offset in seconds (for the
    apps' ``CLOCK_OFFSET_SECONDS``, which moves their hybrid clocks the same way)."""
    offset = moment - datetime.now(UTC)

    class Shifted(datetime):
        @classmethod
        def now(cls, tz=None):  # type: ignore[override]
            return datetime.now(tz) + offset

    patched = []
    for name, module in list(sys.modules.items()):
        if (name.split(".")[0] in ("shelter", "sync")
                and getattr(module, "datetime", None) is datetime):
            patched.append(module)
            module.datetime = Shifted  # type: ignore[attr-defined]
    try:
        yield offset.total_seconds()
    finally:
        for module in patched:
            module.datetime = datetime  # type: ignore[attr-defined]


# --- the text a person reads ---------------------------------------------------------------

_SKIP = {"script", "style", "template", "noscript"}
_READ_ATTRS = ("title", "aria-label", "alt", "placeholder")


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self._skip += 1
        for key, value in attrs:
            if key in _READ_ATTRS and value:
                self.parts.append(value)
        if tag in ("td", "th", "li", "p", "div", "br", "tr", "option", "dd", "dt"):
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP and self._skip:
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.parts.append(data)


def page_text(html: str) -> str:
    """The words of a page as a reader meets them: text and the attributes read aloud or
    shown on hover, without scripts and styles."""
    parser = _Text()
    parser.feed(html)
    return re.sub(r"[ \t]+", " ", " ".join(parser.parts))


# --- the checks ----------------------------------------------------------------------------

ISO = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}")
ZONE = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})\b|\+00:00|\bUTC\b")
CLOCK = re.compile(r"(?<![\d:])(\d{1,2}:\d{2})(?::\d{2})?(?![\d:])")
HOUR = re.compile(r"(?<!\d)(\d{1,2})時")
STAMP = re.compile(r"(?<!\d)(\d{4}-\d{2}-\d{2}|\d{2}/\d{2}|\d{1,2}月\d{1,2}日)(?!\d)")


@dataclass
class Times:
    """The times the database holds, read both ways: what Japan's clock says (allowed) and
    what only UTC says (never shown)."""

    utc_clocks: set[str] = field(default_factory=set)
    utc_days: set[str] = field(default_factory=set)
    utc_hours: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, stored: Iterable[str]) -> Times:
        jst_clocks, jst_days, utc_clocks, utc_days = set(), set(), set(), set()
        jst_hours, utc_hours = set(), set()
        for text in stored:
            try:
                moment = datetime.fromisoformat(text)
            except (TypeError, ValueError):
                continue
            if moment.tzinfo is None or len(text) <= 10:
                continue  # a bare day (a birth date, a use-by date) is no time
            for zone, clocks, days, hours in ((JST, jst_clocks, jst_days, jst_hours),
                                              (UTC, utc_clocks, utc_days, utc_hours)):
                local = moment.astimezone(zone)
                clocks.update({local.strftime("%H:%M"), f"{local.hour}:{local.minute:02d}"})
                hours.add(str(local.hour))
                days.update({local.strftime("%Y-%m-%d"), local.strftime("%m/%d"),
                             f"{local.month}月{local.day}日"})
        return cls(utc_clocks - jst_clocks, utc_days - jst_days, utc_hours - jst_hours)


def time_problems(text: str, times: Times) -> list[str]:
    """Each place ``text`` shows a time in UTC or as a machine writes it."""
    found = [f"ISO time {m.group()!r}" for m in ISO.finditer(text)]
    found += [f"UTC zone {m.group()!r}" for m in ZONE.finditer(text)]
    found += [f"UTC clock {m.group(1)!r}" for m in CLOCK.finditer(text)
              if m.group(1) in times.utc_clocks]
    found += [f"UTC day {m.group(1)!r}" for m in STAMP.finditer(text)
              if m.group(1) in times.utc_days]
    found += [f"UTC hour {m.group()!r}" for m in HOUR.finditer(text)
              if str(int(m.group(1))) in times.utc_hours]
    return found


def code_problems(text: str, codes: Iterable[str], language: str) -> list[str]:
    """Each code of ``codes`` that ``text`` shows as it is. In Japanese any of them is a
    code; in English only those no sentence would hold (``infant_formula``, ``view_cards``)
    and a unit code after a number ("40 roll")."""
    found = []
    for code in sorted(set(codes)):
        if language != "ja" and "_" not in code:
            continue
        pattern = rf"(?<![A-Za-z0-9_\-./@]){re.escape(code)}(?![A-Za-z0-9_\-@])"
        found += [f"code {code!r} in …{text[max(0, m.start() - 30):m.end() + 30]!r}…"
                  for m in re.finditer(pattern, text)]
    return found


def unit_problems(text: str, units: Iterable[str]) -> list[str]:
    """A number with a unit code after it ("900 meal", "320 piece")."""
    words = "|".join(re.escape(u) for u in units)
    if not words:
        return []
    return [f"unit code in {m.group()!r}"
            for m in re.finditer(rf"(\d+)\s?(?:{words})(?![A-Za-z])", text)
            if m.group(1) != "1"]
