"""HQ's pages as a meeting reads them, without a server: the charts' titles and Japan-time
axes, and the order of the shelters table (the browser half is in test_browser_hq.py)."""

from __future__ import annotations

import re

from shelter.hq import board
from shelter.render.catalogs import translations
from shelter.render.drawings import chart_svg

ISO_HOUR = re.compile(r"\d{4}-\d\d-\d\dT\d\d")


def _hours(first_day: int, first_hour: int, count: int, skip=()) -> list[dict]:
    points = []
    for i in range(count):
        if i in skip:
            continue
        day, hour = divmod(first_hour + i, 24)
        points.append({"at": f"2026-12-{first_day + day:02d}T{hour:02d}", "present": 10 * i,
                       "out": 0})
    return points


def test_a_chart_has_a_title_and_reads_japan_time_not_iso():
    ja = translations("ja").gettext
    drawn = str(chart_svg(_hours(1, 5, 48), "在所者数", ja, name="chart-hourly"))
    assert '<h3 class="chart-title" id="chart-hourly-title">在所者数</h3>' in drawn
    assert "<title>在所者数</title>" in drawn and 'aria-label="在所者数. 最新' in drawn
    axis = re.findall(r"<text [^>]*>([^<]*)</text>", drawn)
    assert not any(ISO_HOUR.search(t) for t in axis) and not ISO_HOUR.search(drawn)
    assert "12/02" in axis and "0時" in axis and "12時" in axis  # the day, then its hours
    assert "最新：470 人（12/03 4時）・最大：470 人" in drawn  # the last point, in words
    english = str(chart_svg(_hours(1, 5, 48), "Here", translations("en").gettext))
    assert "12:00" in english and "12/03 4:00" in english


def test_a_chart_places_points_by_time_so_a_gap_shows():
    ja = translations("ja").gettext
    even = str(chart_svg(_hours(2, 0, 10), "t", ja))
    gapped = str(chart_svg(_hours(2, 0, 10, skip=range(1, 8)), "t", ja))

    def xs(svg: str) -> list[float]:
        return [float(x) for x in re.findall(r'<circle cx="([\d.]+)"', svg)]

    # with hours 1-7 missing, the 8th hour sits where it would have: 8/9 of the way along
    assert xs(gapped)[1] == xs(even)[8] and len(xs(gapped)) == 3
    daily = str(chart_svg([{"at": f"2026-12-{d:02d}", "present": d, "out": 0}
                           for d in range(1, 15)], "t", ja, daily=True))
    assert "12/01" in daily and "12/14" in daily and "時" not in re.sub(r"<title>.*?</title>",
                                                                        "", daily)
    one = str(chart_svg([{"at": "2026-12-02T14", "present": 3, "out": 0}], "t", ja))
    assert ">12/02<" in one and ">14時<" in one
    assert "記録がありません" in str(chart_svg([], "t", ja)) and "chart-title" in str(
        chart_svg([], "t", ja))


def test_the_table_lists_the_fullest_first_within_a_crowding_level():
    def row(name, crowding, present, capacity, stale=False):
        return {"name": name, "municipality": "大阪市", "status": "open", "stale": stale,
                "crowding": crowding, "present": present, "registered": present,
                "occupancy": present / capacity if capacity else None,
                "last_synced_at": "2026-12-02T05:00:00Z"}

    rows = [row("あ", "available", 10, 100), row("い", "available", 40, 100),
            row("う", "unknown", 300, 0), row("え", "unknown", 3, 0),
            row("お", "full", 100, 100), row("か", "available", 1, 100, stale=True)]
    assert [r["name"] for r in board.active(rows)] == ["か", "お", "い", "あ", "う", "え"]
