"""Keeping HQ's numbers ready: 3,000 shelters must read in milliseconds however many people
they hold.

As HQ stores events, the shelters they touch are marked (``hq_dirty``: the shelter where
something happened, where the person is registered, where they were before). A background
thread recomputes marked shelters with the same domain code a node uses for its own
(roster.headcount, stock.stock) and keeps the result in ``hq_shelter_stats``, each row
with its "as of" time. Every hour it also records present/out per shelter (``hq_history``)
for the charts. Pages and the API read these tables only, through ``shelter.hq.stats``.
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
from shelter.domain import presence, roster, stock, supplies
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
    return {**DEFAULTS, **stored, **effective_from(stored, registry, heard),
            "shelter_id": shelter_id}


def effective_from(stored: dict[str, str], registry: dict[str, Any] | None,
                   heard: bool) -> dict[str, Any]:
    """``effective`` from the settings already read (``stored``), for the overview."""
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
    counts = roster.headcount(db, shelter_id, settings)
    low: list[str] = []
    days: dict[str, float] = {}
    if heard:
        for item in stock.stock(db, shelter_id, settings)["items"]:
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
