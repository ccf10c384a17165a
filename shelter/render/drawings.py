"""HQ's drawings, made on the server as SVG: no script, no tiles, no outside host.

The charts of people present over time (the map is mapping.py's). Plain functions: the
caller gives what they need, the words in the reader's language (``_``, a gettext).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup, escape
from sqlite_utils import Database

from shelter.hq import stats
from shelter.render import mapping
from shelter.render.words import Gettext

# The map moved to mapping.py (outlines, names, zoom); its old name here still works.
map_svg = mapping.map_svg


CHART_WIDTH, CHART_HEIGHT = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 14, 40  # room for the axes' words


def _moment(key: str) -> datetime | None:
    """A history key ("2026-12-02T14": that hour in Japan time, or a day "2026-12-02")."""
    try:
        return datetime.strptime(key, "%Y-%m-%dT%H" if "T" in key else "%Y-%m-%d")
    except ValueError:
        return None


def _day(moment: datetime, _: Gettext) -> str:
    return _("%(month)s/%(day)s") % {"month": f"{moment.month:02d}",
                                       "day": f"{moment.day:02d}"}


def _hour(moment: datetime, _: Gettext) -> str:
    return _("%(hour)s:00") % {"hour": moment.hour}


def _when(moment: datetime, daily: bool, _: Gettext) -> str:
    """A point as the axis reads it: "12/02" for a day, "12/02 14:00" (ja 14時) an hour."""
    return _day(moment, _) if daily else f"{_day(moment, _)} {_hour(moment, _)}"


def _nice(top: int) -> int:
    """The smallest of 1, 2, 5 x 10^k at or above ``top`` (the axis' highest line)."""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= top:
                return step * scale
        scale *= 10


def _ticks(moments: list[datetime], daily: bool) -> list[datetime]:
    """The moments that get a label under the axis: each day, or every few hours (at most
    nine labels, on whole hours of the clock)."""
    first, last = moments[0], moments[-1]
    if daily:  # counted back from the last day, which always has its label
        step = timedelta(days=max(1, math.ceil((last - first).days / 8)))
        return [last - step * i for i in range((last - first) // step, -1, -1)]
    hours = (last - first) / timedelta(hours=1)
    every = next((h for h in (1, 2, 3, 6, 12, 24) if hours / h <= 8), 24)
    tick = first.replace(hour=first.hour - first.hour % every)
    ticks = []
    while tick <= last:
        if tick >= first:
            ticks.append(tick)
        tick += timedelta(hours=every)
    return ticks


def chart_svg(points: list[dict[str, Any]], title: str, _: Gettext, width: int = CHART_WIDTH,
              height: int = CHART_HEIGHT, daily: bool = False, name: str = "chart") -> Markup:
    """People present over time (Japan time), under a visible heading that is also the
    drawing's name (``<title>`` and aria-label, with the latest and highest figures): a line
    placed by time (a gap of hours shows as one), the day and hour under the axis, gridlines
    with their numbers. ``name`` keeps two charts' ids apart on one page."""
    heading = f'<h3 class="chart-title" id="{name}-title">{escape(title)}</h3>'
    placed = [(m, p) for p in points if (m := _moment(str(p["at"]))) is not None]
    if not placed:
        empty = _("No history yet: HQ records the numbers every hour.")
        return Markup(f'<div class="chart">{heading}<p class="hint">{escape(empty)}</p></div>')
    moments = [m for m, _p in placed]
    top = _nice(max(max(p["present"] for _m, p in placed), 1))
    span = (moments[-1] - moments[0]).total_seconds()
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    base = _TOP + plot_h

    def x(moment: datetime) -> float:
        if not span:
            return _LEFT + plot_w / 2
        return _LEFT + (moment - moments[0]).total_seconds() / span * plot_w

    def y(value: float) -> float:
        return base - value / top * plot_h

    levels = (0, top // 2, top) if top % 2 == 0 else (0, top)  # whole people only
    grid = "".join(
        f'<line x1="{_LEFT}" y1="{y(v):.1f}" x2="{width - _RIGHT}" y2="{y(v):.1f}" '
        f'class="{"axis" if v == 0 else "grid"}"/><text x="{_LEFT - 6}" y="{y(v) + 4:.1f}" '
        f'text-anchor="end">{v}</text>' for v in levels)
    labels = []
    for i, tick in enumerate(_ticks(moments, daily)):
        words = _day(tick, _) if daily or i == 0 or tick.hour == 0 else _hour(tick, _)
        anchor = "start" if len(moments) > 1 and i == 0 else "middle"
        if x(tick) > width - _RIGHT - 30 and len(moments) > 1:
            anchor = "end"
        labels.append(f'<line x1="{x(tick):.1f}" y1="{base}" x2="{x(tick):.1f}" '
                      f'y2="{base + 5}" class="axis"/><text x="{x(tick):.1f}" '
                      f'y="{base + 20}" text-anchor="{anchor}">{escape(words)}</text>')
        if not daily and (i == 0 or tick.hour == 0):  # the day under its first hour
            labels.append(f'<text x="{x(tick):.1f}" y="{base + 36}" text-anchor="{anchor}" '
                          f'class="sub">{escape(_hour(tick, _))}</text>')
    coords = " ".join(f"{x(m):.1f},{y(p['present']):.1f}" for m, p in placed)
    said = _("%(when)s: %(n)s people here")
    dots = "".join(
        f'<circle cx="{x(m):.1f}" cy="{y(p["present"]):.1f}" r="3"><title>'
        f'{escape(said % {"when": _when(m, daily, _), "n": p["present"]})}</title></circle>'
        for m, p in placed)
    last_moment, last = placed[-1]
    summary = _("Latest: %(n)s people (%(when)s); highest: %(top)s") % {
        "n": last["present"], "when": _when(last_moment, daily, _),
        "top": max(p["present"] for _m, p in placed)}
    label = escape(f"{title}. {summary}")
    return Markup(
        f'<div class="chart">{heading}<svg class="chart" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{label}">'
        f'<title>{escape(title)}</title>{grid}{"".join(labels)}'
        f'<polyline points="{coords}" class="line"/>{dots}</svg>'
        f'<p class="hint chart-summary">{escape(summary)}</p></div>')


def charts(db: Database, key: str, _: Gettext) -> dict[str, Markup]:
    """The hourly and daily charts of a shelter id, "municipality:<name>" or "prefecture"."""
    return {"hourly": chart_svg(stats.history(db, key),
                                _("Here now, hour by hour (last 48 hours)"), _,
                                name="chart-hourly"),
            "daily": chart_svg(stats.history(db, key, daily=True),
                               _("Here at the end of each day (last 14 days)"), _,
                               daily=True, name="chart-daily")}
