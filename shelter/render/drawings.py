"""HQ's drawings, made on the server as SVG: no script, no tiles, no outside host.

The map of shelters (a dot each, coloured by crowding) and the charts of people present
over time. Plain functions: the caller gives what they need, the words in the reader's
language (``_``, a gettext) and where a shelter's page is (``shelter_url``).
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import quote

from markupsafe import Markup, escape
from sqlite_utils import Database

from shelter.hq import stats
from shelter.render.words import Gettext


def map_svg(rows: list[dict[str, Any]], shelter_url: str, _: Gettext, width: int = 640,
            height: int = 600) -> Markup:
    """Every shelter with coordinates as a dot: colour by crowding, a ring when silent,
    grouped by municipality; each dot links to ``shelter_url`` + the shelter's id."""
    placed = [r for r in rows if r["lat"] is not None and r["lon"] is not None]
    if not placed:
        return Markup("")
    lats = [r["lat"] for r in placed]
    lons = [r["lon"] for r in placed]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    mid = math.cos(math.radians((south + north) / 2))
    span_x = max((east - west) * mid, 1e-6)
    span_y = max(north - south, 1e-6)
    scale = min((width - 20) / span_x, (height - 20) / span_y)
    groups: dict[str, list[str]] = {}
    for r in placed:
        x = 10 + (r["lon"] - west) * mid * scale
        y = 10 + (north - r["lat"]) * scale
        link = shelter_url + quote(r["shelter_id"])
        classes = f"dot crowd-{r['crowding']} status-{r['status']}" + \
            (" stale" if r["stale"] else "")
        groups.setdefault(r["municipality"], []).append(
            f'<a href="{link}"><title>{escape(r["name"])}</title><circle cx="{x:.1f}" '
            f'cy="{y:.1f}" r="4" class="{classes}" data-shelter="{r["shelter_id"]}"/></a>')
    body = "".join(f'<g data-municipality="{escape(name)}">{"".join(dots)}</g>'
                   for name, dots in sorted(groups.items()))
    label = escape(_("Map of shelters, coloured by crowding"))
    return Markup(f'<svg class="map" viewBox="0 0 {width} {height}" role="group" '
                  f'aria-label="{label}">{body}</svg>')


def chart_svg(points: list[dict[str, Any]], title: str, _: Gettext, width: int = 640,
              height: int = 180) -> Markup:
    """People present (line) over time, with the first and last labels."""
    if not points:
        empty = _("No history yet: HQ records the numbers every hour.")
        return Markup(f'<p class="hint">{escape(empty)}</p>')
    top = max(max(p["present"] for p in points), 1)
    step = (width - 60) / max(len(points) - 1, 1)
    xy = [(50 + i * step, height - 25 - (p["present"] / top) * (height - 45))
          for i, p in enumerate(points)]
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{escape(p["at"])}: '
                   f'{p["present"]}</title></circle>' for (x, y), p in zip(xy, points,
                                                                          strict=True))
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><text x="4" y="14">{top}</text>'
        f'<text x="4" y="{height - 25}">0</text>'
        f'<line x1="48" y1="{height - 25}" x2="{width - 8}" y2="{height - 25}" class="axis"/>'
        f'<polyline points="{coords}" class="line"/>{dots}'
        f'<text x="50" y="{height - 6}">{escape(points[0]["at"])}</text>'
        f'<text x="{width - 8}" y="{height - 6}" text-anchor="end">'
        f'{escape(points[-1]["at"])}</text></svg>')


def charts(db: Database, key: str, _: Gettext) -> dict[str, Markup]:
    """The hourly and daily charts of a shelter id, "municipality:<name>" or "prefecture"."""
    return {"hourly": chart_svg(stats.history(db, key), _("People here, per hour (JST)"), _),
            "daily": chart_svg(stats.history(db, key, daily=True),
                               _("People here, per day (JST)"), _)}
