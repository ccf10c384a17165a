"""HQ's numbers for every shelter, read: the overview of all shelters (made at most every
few seconds and shared by every page, feed and dashboard), totals, by municipality, and the
hourly history. They read only the tables ``shelter.hq.refresher`` keeps ready.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from shelter.core import meta
from shelter.domain import roster
from shelter.domain.settings import DEFAULTS
from shelter.hq.refresher import effective_from


def stale_after(db: Database) -> timedelta:
    value = meta.get(db, "hq_stale_minutes")
    try:
        return timedelta(minutes=float(value)) if value else timedelta(hours=1)
    except ValueError:
        return timedelta(hours=1)


_cache: dict[str, Any] = {"key": None, "rows": [], "derived": {}}
_cache_lock = threading.RLock()  # what is made from the overview may use other parts
# The overview is made at most once per this many seconds, however often shelters sync
# (with 3,000 of them, HQ's database changes many times a second), or at once after a
# change made here (bump). Pages say how old their figures are anyway.
CACHE_SECONDS = 5.0
_generation = [0]


def bump() -> None:
    """Make the next page show a change this process has just made."""
    with _cache_lock:
        _generation[0] += 1


def _current(node: Any) -> dict[str, Any]:
    """The overview for now. When it is due again, one thread makes the new one while the
    others go on answering from the last (a request never waits for another's rebuild),
    except after a local change (bump) or the very first time."""
    key = (str(node.db_path), _generation[0], int(time.monotonic() // CACHE_SECONDS))
    if _cache["key"] == key:
        return _cache
    urgent = _cache["key"] is None or _cache["key"][:2] != key[:2]
    if not urgent and _cache.get("building"):
        return _cache
    _cache["building"] = True
    _cache_lock.release()
    try:
        rows = overview(node.db)
    finally:
        _cache_lock.acquire()
        _cache["building"] = False
    _cache.update(key=key, rows=rows, derived={})
    return _cache


def cached_overview(node: Any) -> list[dict[str, Any]]:
    """``overview`` made at most every CACHE_SECONDS for all the pages, feeds and dashboards
    this process serves. Do not modify the rows."""
    with _cache_lock:
        return _current(node)["rows"]


def cached(node: Any, name: str, make: Any) -> Any:
    """Something made from the overview (totals, an encoded answer, the map), made once per
    overview: ``make(rows)``. Do not modify it."""
    with _cache_lock:
        current = _current(node)
        if name not in current["derived"]:
            current["derived"][name] = make(current["rows"])
        return current["derived"][name]


_parsed: dict[str, tuple[str, dict[str, Any]]] = {}  # shelter -> (as_of, its JSON parts)
_parsed_lock = threading.Lock()
STATS_COLUMNS = ("shelter_id", "present", "out", "registered", "at_home", "in_car",
                 "provisional", "arrivals_last_hour", "departures_last_hour", "by_need",
                 "by_age", "low_stock", "supply_days", "open_requests", "as_of")


def _parts(shelter_id: str, as_of: str, raw: tuple[str, str, str, str]) -> dict[str, Any]:
    """A stats row's JSON columns, parsed once per recomputation of that shelter."""
    with _parsed_lock:
        known = _parsed.get(shelter_id)
        if known is None or known[0] != as_of:
            known = (as_of, dict(zip(("by_need", "by_age", "low_stock", "supply_days"),
                                     (json.loads(x) for x in raw), strict=True)))
            _parsed[shelter_id] = known
        return known[1]


def overview(db: Database, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every shelter HQ knows (registry and syncing), with its numbers as last computed,
    capacity, status, crowding, when it last synced and whether it has gone silent."""
    now = now or datetime.now(UTC)
    silent_before = (now - stale_after(db)).isoformat(timespec="milliseconds")
    settings: dict[str, dict[str, str]] = {}
    for shelter_id, key, value in db.execute("SELECT shelter_id, key, value FROM "
                                             "shelter_settings"):
        settings.setdefault(shelter_id, {})[key] = value
    synced = dict(db.execute("SELECT shelter_id, max(max(coalesce(last_seen_at, ''), "
                             "coalesce(last_batch_at, ''))) FROM sync_origins "
                             "GROUP BY shelter_id").fetchall())
    registry = {r[0]: r for r in db.execute(
        "SELECT shelter_id, name, municipality, address, lat, lon, capacity "
        "FROM hq_shelters")}
    stats = {r[0]: r for r in db.execute(
        f"SELECT {', '.join(STATS_COLUMNS)} FROM hq_shelter_stats")}
    empty: dict[str, Any] = {"by_need": {}, "by_age": {}, "low_stock": [], "supply_days": {}}
    out = []
    for shelter_id in sorted(set(registry) | set(synced) | set(stats)):
        reg, row, stored = registry.get(shelter_id), stats.get(shelter_id), \
            settings.get(shelter_id, {})
        shown = effective_from(stored, {"name": reg[1], "capacity": reg[6]} if reg else None,
                              shelter_id in synced)
        capacity = int(shown["capacity"])
        counts = dict(zip(COUNT_FIELDS, row[1:9], strict=True)) if row else \
            dict.fromkeys(COUNT_FIELDS, 0)
        thresholds = {**DEFAULTS, **stored} if stored else DEFAULTS
        last = synced.get(shelter_id) or None
        out.append({
            "shelter_id": shelter_id, "name": shown["name"] or shelter_id,
            "municipality": reg[2] if reg else "", "address": reg[3] if reg else "",
            "lat": reg[4] if reg else None, "lon": reg[5] if reg else None,
            **counts, "capacity": capacity,
            "occupancy": round(counts["present"] / capacity, 3) if capacity else None,
            "crowding": "closed" if shown["status"] == "closed" else
            roster.crowding_level(counts["present"], capacity, thresholds),
            "status": shown["status"], "contact": shown["contact"],
            **(_parts(shelter_id, row[14], row[9:13]) if row else empty),
            "open_requests": row[13] if row else 0,
            "last_synced_at": last, "as_of": row[14] if row else None,
            "stale": shown["status"] in ("open", "full") and (last is None
                                                              or last < silent_before)})
    return out


COUNT_FIELDS = ("present", "out", "registered", "at_home", "in_car", "provisional",
                "arrivals_last_hour", "departures_last_hour")
TOTAL_FIELDS = ("present", "out", "registered", "at_home", "in_car", "capacity")


def totals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums over ``rows`` (all shelters, or one municipality's), and how much is stale."""
    out: dict[str, Any] = {k: sum(r[k] for r in rows) for k in TOTAL_FIELDS}
    for group in ("by_need", "by_age"):
        out[group] = {}
        for r in rows:
            for key, n in r[group].items():
                out[group][key] = out[group].get(key, 0) + n
    out.update(
        shelters=len(rows), shelters_open=sum(r["status"] in ("open", "full") for r in rows),
        shelters_stale=sum(r["stale"] for r in rows),
        stale_present=sum(r["present"] for r in rows if r["stale"]),
        low_stock_shelters=sum(bool(r["low_stock"]) for r in rows),
        open_requests=sum(r["open_requests"] for r in rows))
    out["occupancy"] = round(out["present"] / out["capacity"], 3) if out["capacity"] else None
    return out


def by_municipality(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["municipality"], []).append(r)
    return [{"municipality": name, **totals(members)}
            for name, members in sorted(groups.items(), key=lambda g: (g[0] == "", g[0]))]


def history(db: Database, key: str, daily: bool = False, hours: int = 48,
            days: int = 14) -> list[dict[str, Any]]:
    """Present and out per hour, or per day (the day's last recorded hour), for a shelter
    id, "municipality:<name>" or "prefecture"."""
    rows = db.execute("SELECT hour, present, out FROM hq_history WHERE shelter_id = ? "
                      "ORDER BY hour DESC LIMIT ?", [key, days * 24 if daily else hours]
                      ).fetchall()
    points = [{"at": h, "present": p, "out": o} for h, p, o in reversed(rows)]
    if not daily:
        return points
    last: dict[str, dict[str, Any]] = {}
    for point in points:
        last[point["at"][:10]] = {**point, "at": point["at"][:10]}
    return list(last.values())[-days:]
