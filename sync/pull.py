"""The other direction: what HQ sends down to a shelter, and how the node applies it.

What concerns a shelter: HQ's steps on its supply requests (acknowledged, dispatched), the
presence changes elsewhere of people registered at it (so it can show "moved to B"),
settings HQ sets for it, and messages from HQ: HQ's outbox (sync/outbox.py) lists them as
they happen. HQ answers a `pull` from a cursor (a position in that outbox) with at most
PULL_LIMIT events (or the pull's own `limit`, fewer, on a thin link) and the cursor to ask
from next.
The node applies them in one transaction and saves the cursor in the same one.
"""

from __future__ import annotations

import json
from typing import Any

from shelter.core import meta
from shelter.core.authority import N_, Batch, Refusal, Sender, refusal
from shelter.core.clock import DEFAULT_MAX_DRIFT_MS
from shelter.core.events import (
    EVENT_COLUMNS,
    EVENT_MARKS,
    SCHEMA_VERSIONS,
    Event,
    EventStore,
    utc_now_iso,
)
from shelter.core.sql import insert_row
from sync.apply import quarantine
from sync.protocol import EVENT_FIELDS, check_event, hlc_wall_ms
from sync.protocol import PULL_LIMIT as PULL_LIMIT  # most events in one answer

CURSOR_KEY = "pull_cursor"


def updates_for(db: Any, shelter_id: str, node_id: str, cursor: int,
                limit: int = PULL_LIMIT) -> tuple[list[dict[str, Any]], int]:
    """(events, next cursor) for the shelter's node, from HQ's store."""
    top = db.execute("SELECT coalesce(max(position), 0) FROM sync_outbox").fetchone()[0]
    rows = list(db.query(
        """SELECT o.position, e.* FROM sync_outbox o JOIN events e USING (event_id)
           WHERE o.shelter_id = ? AND o.position > ? AND o.position <= ? AND e.node_id != ?
           ORDER BY o.position LIMIT ?""",
        [shelter_id, cursor, top, node_id, limit]))
    next_cursor = rows[-1]["position"] if len(rows) == limit else top
    events = [{**{k: r[k] for k in EVENT_FIELDS if k != "payload"},
               "payload": json.loads(r["payload"])} for r in rows]
    return events, max(next_cursor, cursor)


def apply_pulled(store: EventStore, events: list[Any], cursor: int) -> int:
    """Apply what HQ sent (skipping what is already here) and save the cursor with it.
    Returns how many events were new. What cannot be applied is quarantined; what HQ may
    not tell this shelter (shelter/core/authority.py) is quarantined as refused."""
    applied = 0
    with store.write() as db:
        own = store.speaking_for().shelter_id
        now_ms = store.clock.now_ms()
        sender = Sender("hq", "node", own, hq_ids(db))
        said = Batch()
        for raw in events:
            problem = check_event(raw)
            if problem is None and SCHEMA_VERSIONS.get(raw["type"]) is None:
                problem = f"unknown event type {raw['type']!r}"
            elif problem is None and raw["schema_version"] > SCHEMA_VERSIONS[raw["type"]]:
                problem = "newer schema version than this node knows"
            elif problem is None and raw["node_id"] == store.node_id:
                _quarantine(db, raw, "", _OWN_NAME)
                continue
            if problem is not None:
                _quarantine(db, raw, problem)
                continue
            if db.execute("SELECT 1 FROM events WHERE event_id = ?",
                          [raw["event_id"]]).fetchone():
                continue
            reason = refusal(db, sender, raw["type"], raw["payload"], raw["node_id"], said)
            if reason is not None:
                _quarantine(db, raw, "", reason)
                continue
            # A move stamped far ahead of this node's clock would outrank every scan here
            # from then on: kept and flagged, not applied (either clock may be the wrong one).
            held = raw["type"] == "presence_changed" \
                and hlc_wall_ms(raw["hlc"]) - now_ms > DEFAULT_MAX_DRIFT_MS
            event = Event(raw["event_id"], raw["node_id"], raw["seq"], raw["hlc"], raw["type"],
                          raw["schema_version"], raw["payload"], raw["recorded_at"])
            db.conn.execute("SAVEPOINT pulled_event")
            try:
                db.conn.execute(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({EVENT_MARKS})",
                                event.values())
                if held:
                    insert_row(db, "sync_flags", {
                        "event_id": event.event_id, "node_id": event.node_id,
                        "at": utc_now_iso(), "reason": HELD}, or_ignore=True)
                else:
                    store.project([event])
            except Exception as error:  # noqa: BLE001 - quarantined, never blocks the rest
                db.conn.execute("ROLLBACK TO pulled_event")
                db.conn.execute("RELEASE pulled_event")
                _quarantine(db, raw, f"could not be applied ({type(error).__name__})")
                continue
            db.conn.execute("RELEASE pulled_event")
            applied += 1
        if meta.get(db, CURSOR_KEY) != str(cursor):  # no write, no wake-up, when idle
            meta.put(db, CURSOR_KEY, str(cursor))
    return applied


def hq_ids(db: Any) -> frozenset[str]:
    """The ids HQ's own events may carry, as its last ``welcome`` said (its current id and
    those of the epochs before it, an HQ restored from a backup)."""
    known = meta.get(db, "hq_ids")
    ids = set(json.loads(known)) if known else set()
    current = meta.get(db, "pull_hq_id")
    return frozenset(ids | ({current} if current else set()))


_OWN_NAME = Refusal(N_("an event in this node's own name"), {})
HELD = "a move stamped implausibly far ahead of this node's clock: kept, not applied"


def _quarantine(db: Any, raw: Any, reason: str, refused: Refusal | None = None) -> None:
    sender = raw.get("node_id") if isinstance(raw, dict) else None
    quarantine(db, sender if isinstance(sender, str) else "?", raw, reason,
               (refused, "HQ") if refused is not None else None)
