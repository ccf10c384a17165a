"""HQ's numbers for every shelter, kept ready: 3,000 shelters must read in milliseconds
however many people they hold.

As HQ stores events, the shelters they touch are marked (``hq_dirty``: the shelter where
something happened, where the person is registered, where they were before). A background
thread recomputes marked shelters with the same domain code a node uses for its own
(presence.headcount, supplies.stock) and keeps the result in ``hq_shelter_stats``, each row
with its "as of" time. Every hour it also records present/out per shelter (``hq_history``)
for the charts. Pages and the API read these tables only.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from shelter.core.events import Event
from shelter.domain import presence, supplies
from shelter.domain.settings import DEFAULTS, STATUSES

log = logging.getLogger("shelter.hq")
REFRESH_SECONDS = 2.0  # how often the refresher looks, when nothing wakes it
MIN_AGE_SECONDS = 5.0  # a shelter is recomputed at most this often
FULL_SWEEP_SECONDS = 15 * 60  # everything again (arrivals in the last hour age out)
HISTORY_SECONDS = 60.0


def mark(db: Database, events: list[Event]) -> None:
    """Mark the shelters whose numbers ``events`` change. Called before their projections
    (EventStore.before), so a person's presence row still says where they were."""
    touched: set[str] = set()
    people: set[str] = set()
    nodes: set[str] = set()
    for event in events:
        shelter = event.payload.get("shelter_id") if isinstance(event.payload, dict) else None
        if isinstance(shelter, str):
            touched.add(shelter)
        nodes.add(event.node_id)
        if event.type == "presence_changed":
            people.add(event.payload["person_id"])
        elif event.type.startswith("supply_"):
            owner = db.execute("SELECT shelter_id FROM supply_requests WHERE request_id = ?",
                               [event.payload.get("request_id")]).fetchone()
            if owner:
                touched.add(owner[0])
    for node in nodes:
        origin = db.execute("SELECT shelter_id FROM sync_origins WHERE node_id = ?",
                            [node]).fetchone()
        if origin:
            touched.add(origin[0])
    for _, _, _, now, _, registered in presence.whereabouts(db, list(people)).values():
        # where they are until these events, and where they registered
        touched.update(s for s in (now, registered) if s is not None)
    if touched:
        stamp = time.monotonic_ns()
        db.conn.executemany("INSERT INTO hq_dirty (shelter_id, marked) VALUES (?, ?) "
                            "ON CONFLICT (shelter_id) DO UPDATE SET marked = excluded.marked",
                            [(s, stamp) for s in touched])


def effective(db: Database, shelter_id: str, registry: dict[str, Any] | None,
              heard: bool) -> dict[str, Any]:
    """Capacity, status, name and contact as HQ staff and the public see them: what HQ or
    the shelter set, else the registry's; a shelter never heard from is on standby."""
    stored = dict(db.execute("SELECT key, value FROM shelter_settings WHERE shelter_id = ?",
                             [shelter_id]).fetchall())
    return {**DEFAULTS, **stored, **_effective(stored, registry, heard),
            "shelter_id": shelter_id}


def _effective(stored: dict[str, str], registry: dict[str, Any] | None,
               heard: bool) -> dict[str, Any]:
    capacity = _count(stored.get("capacity")) or _count((registry or {}).get("capacity"))
    status = stored.get("status") or ("open" if heard else "standby")
    return {"capacity": str(capacity), "status": status if status in STATUSES else "open",
            "name": stored.get("shelter_name") or (registry or {}).get("name") or "",
            "contact": stored.get("contact", "")}


def _count(value: Any) -> int:
    """A count as stored, or 0 for anything that is not one (stored before values were
    checked, or from a registry file)."""
    try:
        return max(int(value or 0), 0)
    except (TypeError, ValueError):
        return 0


def compute(db: Database, shelter_id: str) -> dict[str, Any]:
    registry = next(iter(db.query("SELECT * FROM hq_shelters WHERE shelter_id = ?",
                                  [shelter_id])), None)
    heard = db.execute("SELECT 1 FROM sync_origins WHERE shelter_id = ?",
                       [shelter_id]).fetchone() is not None
    settings = effective(db, shelter_id, registry, heard)
    counts = presence.headcount(db, shelter_id, settings)
    low: list[str] = []
    days: dict[str, float] = {}
    if heard:
        for item in supplies.stock(db, shelter_id, settings)["items"]:
            if item["low"]:
                low.append(item["item_id"])
            if item["days_of_supply"] is not None:
                days[item["item_id"]] = item["days_of_supply"]
    open_requests = db.execute("SELECT count(*) FROM supply_requests WHERE shelter_id = ? "
                               "AND status != 'received'", [shelter_id]).fetchone()[0]
    return {"shelter_id": shelter_id, **{k: counts[k] for k in (
        "present", "out", "registered", "at_home", "in_car", "arrivals_last_hour",
        "departures_last_hour", "provisional")},
        "by_need": json.dumps(counts["by_need"]), "by_age": json.dumps(counts["by_age"]),
        "low_stock": json.dumps(low), "supply_days": json.dumps(days),
        "open_requests": open_requests,
        "as_of": counts["as_of"]}


def refresh(store: Any, limit: int = 100, min_age: float = 0.0) -> int:
    """Recompute up to ``limit`` marked shelters; returns how many. The numbers are read
    outside the write lock and written in one transaction; a shelter marked again meanwhile
    stays marked for the next round. A shelter computed less than ``min_age`` seconds ago
    waits (a backlog arriving batch after batch is counted every few seconds, not after
    every batch)."""
    db = store.db
    recent = (datetime.now(UTC) - timedelta(seconds=min_age)).isoformat(
        timespec="milliseconds")
    marked = db.execute("SELECT d.shelter_id, d.marked FROM hq_dirty d "
                        "LEFT JOIN hq_shelter_stats s USING (shelter_id) "
                        "WHERE s.as_of IS NULL OR s.as_of < ? ORDER BY d.marked LIMIT ?",
                        [recent, limit]).fetchall()
    if not marked:
        return 0
    rows = []
    for shelter_id, _ in marked:
        try:
            rows.append(compute(db, shelter_id))
        except Exception as error:  # noqa: BLE001 - one shelter's bad data stops no other
            log.warning("shelter %s could not be computed: %s", shelter_id,
                        type(error).__name__)
    with store.write():
        for row in rows:
            db.execute(f"INSERT OR REPLACE INTO hq_shelter_stats ({', '.join(row)}) VALUES "
                       f"({', '.join('?' * len(row))})", list(row.values()))
        db.conn.executemany("DELETE FROM hq_dirty WHERE shelter_id = ? AND marked = ?", marked)
    return len(marked)


def hour_key(when: datetime | None = None) -> str:
    """The JST hour a moment falls in, as '2026-11-26T09'."""
    moment = (when or datetime.now(UTC)).astimezone(supplies.JST)
    return moment.strftime("%Y-%m-%dT%H")


def record_hour(store: Any, when: datetime | None = None) -> None:
    """Present and out for this hour (the latest figures in the hour win): per shelter, per
    municipality ("municipality:大阪市") and for the prefecture ("prefecture"), so that a
    chart reads a few dozen rows."""
    hour = hour_key(when)
    with store.write() as db:
        db.execute("INSERT OR REPLACE INTO hq_history (hour, shelter_id, present, out) "
                   "SELECT ?, shelter_id, present, out FROM hq_shelter_stats", [hour])
        db.execute("INSERT OR REPLACE INTO hq_history (hour, shelter_id, present, out) "
                   "SELECT ?, 'municipality:' || coalesce(r.municipality, ''), "
                   "sum(s.present), sum(s.out) FROM hq_shelter_stats s "
                   "LEFT JOIN hq_shelters r USING (shelter_id) "
                   "GROUP BY coalesce(r.municipality, '')", [hour])
        db.execute("INSERT OR REPLACE INTO hq_history (hour, shelter_id, present, out) "
                   "SELECT ?, 'prefecture', coalesce(sum(present), 0), coalesce(sum(out), 0) "
                   "FROM hq_shelter_stats", [hour])


def mark_all(store: Any) -> None:
    with store.write() as db:
        stamp = time.monotonic_ns()
        db.execute("INSERT INTO hq_dirty (shelter_id, marked) SELECT shelter_id, ? FROM "
                   "(SELECT shelter_id FROM hq_shelter_stats UNION "
                   "SELECT shelter_id FROM sync_origins) WHERE true "
                   "ON CONFLICT (shelter_id) DO UPDATE SET marked = excluded.marked", [stamp])


class Refresher(threading.Thread):
    """One per HQ process: recomputes marked shelters, sweeps all now and then, records the
    hourly history. It outlives any error (logged without personal data)."""

    def __init__(self, node: Any) -> None:
        super().__init__(name="hq-refresher", daemon=True)
        self.node = node
        self.stop = threading.Event()

    def run(self) -> None:
        seen = -1
        last_sweep = last_history = 0.0
        while not self.stop.is_set():
            try:
                store = self.node.store
                now = time.monotonic()
                if now - last_sweep > FULL_SWEEP_SECONDS:
                    mark_all(store)
                    last_sweep = now
                flush_seen(store)
                while refresh(store, min_age=MIN_AGE_SECONDS):
                    pass
                if now - last_history > HISTORY_SECONDS:
                    record_hour(store)
                    last_history = now
            except Exception as error:  # noqa: BLE001 - must keep going
                if not self.node.db_path.exists():
                    return  # the data directory is gone (a test finished)
                log.warning("refresh failed: %s", type(error).__name__)
            # At most one round a second: a backlog arriving batch after batch must not
            # spend HQ's time recounting the same shelter after every batch.
            if self.stop.wait(1.0):
                return
            seen = self.node.watcher.wait(seen, REFRESH_SECONDS)


_seen: dict[str, str] = {}
_seen_lock = threading.Lock()


def seen(node_id: str) -> None:
    """A node was heard from (hello, batch, pull). Kept in memory and written by the
    refresher in one transaction per round: 3,000 nodes pulling every few seconds must
    not cost HQ a commit each."""
    with _seen_lock:
        _seen[node_id] = datetime.now(UTC).isoformat(timespec="milliseconds")


def flush_seen(store: Any) -> None:
    with _seen_lock:
        pending = dict(_seen)
        _seen.clear()
    if pending:
        with store.write() as db:
            db.conn.executemany("UPDATE sync_origins SET last_seen_at = ? WHERE node_id = ?",
                                [(at, node_id) for node_id, at in pending.items()])


_started: dict[str, Refresher] = {}
_started_lock = threading.Lock()


def ensure_refresher(node: Any) -> None:
    with _started_lock:
        key = str(node.db_path)
        if key not in _started or not _started[key].is_alive():
            _started[key] = Refresher(node)
            _started[key].start()


def stale_after(db: Database) -> timedelta:
    value = db.execute("SELECT value FROM meta WHERE key = 'hq_stale_minutes'").fetchone()
    try:
        return timedelta(minutes=float(value[0])) if value else timedelta(hours=1)
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
        return _current(node)["rows"]  # type: ignore[no-any-return]


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
        shown = _effective(stored, {"name": reg[1], "capacity": reg[6]} if reg else None,
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
            presence.crowding_level(counts["present"], capacity, thresholds),
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
