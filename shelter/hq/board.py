"""What HQ's pages show of the overview (stats.cached_overview, one row per shelter): which
shelters get a row and in what order, their names, the state an open dashboard follows, and
the rows an export may carry. Each is made once per overview, however many pages ask.

Every number comes from the read models kept ready per shelter (stats), so a page over
3,000 shelters reads 3,000 rows, not 1.5 million people.
"""

from __future__ import annotations

from typing import Any

from shelter.core.node import NodeContext
from shelter.hq import stats

ATTENTION_ROWS = 60  # the dashboard's table: silent and most crowded first; the rest by
PAGE_ROWS = 100  # municipality, a page at a time (thousands of rows help nobody, and cost)
CROWDING_ORDER = ("full", "crowded", "somewhat_crowded", "available", "unknown", "closed")
LIVE_FIELDS = ("name", "municipality", "present", "out", "registered", "at_home", "in_car",
               "capacity", "crowding", "status", "stale", "last_synced_at", "open_requests",
               "low_stock")
EXPORT_FIELDS = ("shelter_id", "name", "municipality", "address", "lat", "lon", "status",
                 "capacity", "present", "occupancy", "crowding", "at_home", "in_car",
                 "last_synced_at", "as_of", "stale")


def active(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shelters worth a row: operating, holding people, or gone silent (the rest are on
    standby and show on the map only). Silent first, then the most crowded: by crowding,
    then the fullest (occupancy), then the most people."""
    shown = [r for r in rows if r["status"] != "standby" or r["present"] or r["registered"]
             or r["stale"] or r["last_synced_at"]]
    return sorted(shown, key=lambda r: (not r["stale"], CROWDING_ORDER.index(r["crowding"])
                                        if r["crowding"] in CROWDING_ORDER else 9,
                                        -(r.get("occupancy") or 0), -(r["present"] or 0),
                                        r["municipality"], r["name"]))


def attention(ctx: NodeContext) -> list[dict[str, Any]]:
    """``active`` over the current overview."""
    return stats.cached(ctx, "attention", active)


def unplaced(ctx: NodeContext) -> int:
    """How many shelters have no coordinates (and are not on the map)."""
    return stats.cached(ctx, "unplaced",
                        lambda rows: sum(r["lat"] is None for r in rows))


def shelter_names(ctx: NodeContext) -> dict[str, str]:
    """Each shelter's name as HQ shows it (the overview's: set by HQ or the shelter, else
    the registry's)."""
    return stats.cached(ctx, "names",
                        lambda rows: {r["shelter_id"]: r["name"] for r in rows})


def shelter_row(ctx: NodeContext, shelter_id: str) -> dict[str, Any] | None:
    """A shelter's row of the overview, or None when HQ knows no such shelter."""
    return next((r for r in stats.cached_overview(ctx) if r["shelter_id"] == shelter_id),
                None)


def municipality_rows(ctx: NodeContext, name: str) -> list[dict[str, Any]]:
    return [r for r in stats.cached_overview(ctx) if r["municipality"] == name]


def stale_minutes(ctx: NodeContext) -> str:
    """After how many minutes an open shelter not heard from counts as silent, as shown."""
    return f"{stats.stale_after(ctx.db).total_seconds() / 60:g}"


def live_state(ctx: NodeContext) -> dict[str, Any]:
    """Totals, the listed shelters' rows and every dot, made once per overview for every
    open dashboard of this process."""
    def make(rows: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "totals": stats.cached(ctx, "totals", stats.totals),
            "rows": {r["shelter_id"]: {k: r[k] for k in LIVE_FIELDS}
                     for r in attention(ctx)[:ATTENTION_ROWS]},
            "dots": {r["shelter_id"]: [r["crowding"], r["status"], r["stale"]]
                     for r in rows if r["lat"] is not None}}

    return stats.cached(ctx, "live", make)


def export_rows(ctx: NodeContext) -> list[dict[str, Any]]:
    """Per-shelter aggregates for the open data portal: no person, and no counts by need or
    age (a single pregnant evacuee at a small shelter would be recognisable)."""
    return [{k: r[k] for k in EXPORT_FIELDS} for r in stats.cached_overview(ctx)]
