"""The event store: the one place where state changes.

``append`` writes an immutable event (node id, per-node sequence, HLC timestamp, type,
schema version, payload) and applies its projection to the current-state tables in the
same transaction. Sync applies events received from elsewhere through the same projections.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlite_utils import Database

from shelter.core import meta
from shelter.core.authority import Refused, Sender, refusal
from shelter.core.clock import HybridClock, Timestamp
from shelter.core.errors import Internal
from shelter.core.ids import new_id
from shelter.core.sql import insert_row


class UnknownEventType(Internal, ValueError):
    """No projection is registered for this event type (a bug). ``str()``: the type."""

    def __init__(self, event_type: str) -> None:
        super().__init__(detail=event_type)


class Event(NamedTuple):
    """One event, immutable (a named tuple: sync builds one per received event, and a
    frozen dataclass took three times as long to make)."""

    event_id: str
    node_id: str
    seq: int
    hlc: str
    type: str
    schema_version: int
    payload: dict[str, Any]
    recorded_at: str

    def row(self) -> dict[str, Any]:
        return dict(zip(EVENT_FIELDS, self.values(), strict=True))

    def values(self) -> tuple[Any, ...]:
        """The events table's columns, in EVENT_FIELDS order (payload as canonical JSON)."""
        return (self.event_id, self.node_id, self.seq, self.hlc, self.type,
                self.schema_version, _CANONICAL.encode(self.payload), self.recorded_at)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Event:
        return cls(row["event_id"], row["node_id"], row["seq"], row["hlc"], row["type"],
                   row["schema_version"], json.loads(row["payload"]), row["recorded_at"])


# Payloads are stored as canonical JSON; one encoder, not one per call (sync's hot path).
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
EVENT_FIELDS = ("event_id", "node_id", "seq", "hlc", "type", "schema_version", "payload",
                "recorded_at")
EVENT_COLUMNS = ", ".join(EVENT_FIELDS)
EVENT_MARKS = ", ".join("?" for _ in EVENT_FIELDS)

Projection = Callable[[Database, Event], Any]
ManyProjection = Callable[[Database, list[Event]], None]
PROJECTIONS: dict[str, Projection] = {}
# Optional: a projection that applies a run of events of one type at once, with the same
# effect as applying them one by one in order (sync applies batches through these).
MANY_PROJECTIONS: dict[str, ManyProjection] = {}
SCHEMA_VERSIONS: dict[str, int] = {}


def projection(event_type: str, schema_version: int = 1) -> Callable[[Projection], Projection]:
    """Register the function that applies events of ``event_type`` to current state."""

    def register(fn: Projection) -> Projection:
        if event_type in PROJECTIONS:
            raise ValueError(f"projection for {event_type} registered twice")
        PROJECTIONS[event_type] = fn
        SCHEMA_VERSIONS[event_type] = schema_version
        return fn

    return register


def projection_many(event_type: str) -> Callable[[ManyProjection], ManyProjection]:
    """Register the run-at-once form of ``event_type``'s projection."""

    def register(fn: ManyProjection) -> ManyProjection:
        MANY_PROJECTIONS[event_type] = fn
        return fn

    return register


def apply_projections(db: Database, events: list[Event]) -> None:
    """Apply events already written, in order: a run of one type at once where it can."""
    start = 0
    while start < len(events):
        kind = events[start].type
        end = start + 1
        while end < len(events) and events[end].type == kind:
            end += 1
        many = MANY_PROJECTIONS.get(kind)
        if many is not None:
            many(db, events[start:end])
        else:
            for event in events[start:end]:
                PROJECTIONS[kind](db, event)
        start = end


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


# One writer per database file within a process; BEGIN IMMEDIATE orders writers across
# processes (the HTTP and HTTPS servers of one node share the file).
_write_locks: dict[str, threading.Lock] = {}
_write_locks_guard = threading.Lock()


def write_lock(path: str) -> threading.Lock:
    """The process's one writer lock of the database file at ``path``."""
    with _write_locks_guard:
        return _write_locks.setdefault(path, threading.Lock())


class EventStore:
    def __init__(self, db: Database, node_id: str, clock: HybridClock) -> None:
        if not PROJECTIONS:
            # The domain registers its projections when imported (shelter/domain/__init__.py);
            # a store without them would refuse every event as unknown.
            raise RuntimeError("no projections registered: import shelter.domain first")
        self.db = db
        self.node_id = node_id
        self.clock = clock
        path = db.execute("PRAGMA database_list").fetchone()[2] or f":memory:{id(db)}"
        self._lock = write_lock(path)
        # HQ's store also notes, before the projections, which shelters' numbers the events
        # change (hq/refresher.py: mark) and, after, which shelters they concern (core/outbox.py).
        self.before: Callable[[Database, list[Event]], None] | None = None
        self.route: Callable[[Database, list[Event]], None] | None = None
        # HQ's store notes where each of its own events falls among its log's (a rebuild
        # replays both in that order: sync/hq_rebuild.py).
        self.positions = False
        self._self: Sender | None = None

    def speaking_for(self) -> Sender:
        """This store as the sender of its own appends: its side and its shelter."""
        if self._self is None:
            role = meta.get(self.db, "role") or "node"
            self._self = Sender("self", "hq" if role == "hq" else "node",
                                meta.get(self.db, "shelter_id") or self.node_id)
        return self._self

    def append(self, event_type: str, payload: dict[str, Any]) -> tuple[Event, Any]:
        """Append one event and apply it; returns the event and what the projection returned.

        Either both the event and its effect on current state are committed, or neither.
        """
        if event_type not in PROJECTIONS:
            raise UnknownEventType(event_type)
        reason = refusal(self.db, self.speaking_for(), event_type, payload, self.node_id)
        if reason is not None:
            raise Refused(reason.text())
        with self.write():
            last = meta.get(self.db, "hlc_last")
            ts = self.clock.tick(Timestamp.decode(last) if last else None)
            seq = int(meta.get(self.db, "seq_last") or 0) + 1
            event = Event(new_id(), self.node_id, seq, ts.encode(), event_type,
                          SCHEMA_VERSIONS[event_type], payload, utc_now_iso())
            insert_row(self.db, "events", event.row())
            meta.put(self.db, "hlc_last", ts.encode())
            meta.put(self.db, "seq_last", str(seq))
            if self.positions:
                self.db.execute("INSERT INTO hq_positions (event_id, after_log_id) VALUES (?, "
                                "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE "
                                "key = 'projected_log_id'), 0))", [event.event_id])
            result = self.project([event])
        return event, result

    def project(self, events: list[Event]) -> Any:
        """Apply events just written, with HQ's hooks around; returns what the projection
        of a single event returned."""
        if self.before is not None:
            self.before(self.db, events)
        result = None
        if len(events) == 1:
            result = PROJECTIONS[events[0].type](self.db, events[0])
        else:
            apply_projections(self.db, events)
        if self.route is not None:
            self.route(self.db, events)
        return result

    @contextmanager
    def write(self) -> Iterator[Database]:
        """The one way to write: a BEGIN IMMEDIATE transaction, one writer at a time.

        Taking the process-wide lock first means threads queue here instead of in SQLite's
        busy handler, which sleeps in steps and made writes under load slow and uneven.
        Nested use joins the outer transaction under a savepoint, so a nested failure
        undoes only its own part.
        """
        conn = self.db.conn
        if conn.in_transaction:
            conn.execute("SAVEPOINT nested_write")
            try:
                yield self.db
            except BaseException:
                conn.execute("ROLLBACK TO nested_write")
                conn.execute("RELEASE nested_write")
                raise
            conn.execute("RELEASE nested_write")
            return
        with self._lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.db
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def events(self, after_seq: int = 0) -> Iterator[Event]:
        for row in self.db.query(
                "SELECT * FROM events WHERE node_id = ? AND seq > ? ORDER BY seq",
                [self.node_id, after_seq]):
            yield Event.from_row(row)
