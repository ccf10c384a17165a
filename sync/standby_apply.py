"""How a standby stores what its node streams (sync/follower.py receives it): each group of
frames in one transaction, the rows it does not have yet inserted with their ids and
projected with the node's own projections, the state that is not events checked key by key.
"""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from shelter.core import meta
from shelter.core.events import (
    EVENT_COLUMNS,
    EVENT_MARKS,
    SCHEMA_VERSIONS,
    Event,
    EventStore,
    utc_now_iso,
)
from shelter.core.sql import insert_row
from sync import protocol, standby
from sync.pull import HELD


class Promoted(Exception):
    """This directory is no longer a standby's (``shelter promote``): stop following."""


class CannotApply(Exception):
    """A frame this standby cannot store as the node did (an event type or version it does
    not know: its software is older than the node's). It stops there; nothing is skipped."""


def _checked_rows(rows: list[Any], after: int) -> list[tuple[Event, int, bool]]:
    """The rows of a frame as events, or CannotApply / ProtocolError saying why not."""
    if len(rows) > standby.MAX_ROWS:
        raise protocol.ProtocolError("too_large", f"at most {standby.MAX_ROWS} rows a frame")
    out = []
    for raw in rows:
        problem = protocol.check_event(raw)
        rowid = raw.get("rowid") if isinstance(raw, dict) else None
        if problem is None and not (type(rowid) is int and after < rowid < protocol.MAX_INT):
            problem = "rowid must grow"
        if problem is not None or not isinstance(rowid, int):
            raise protocol.ProtocolError("malformed", f"a row: {problem}")
        known = SCHEMA_VERSIONS.get(raw["type"])
        if known is None or raw["schema_version"] > known:
            raise CannotApply(f"the node sent an event this standby's software cannot apply "
                              f"({raw['type'][:64]}, version {raw['schema_version']}): "
                              "update it")
        after = rowid
        out.append((Event(raw["event_id"], raw["node_id"], raw["seq"], raw["hlc"],
                          raw["type"], raw["schema_version"], raw["payload"],
                          raw["recorded_at"]), rowid, raw.get("held") is True))
    return out


def apply_frames(store: EventStore, messages: list[dict[str, Any]], cursor: int | None = None,
                 rewind: bool = False) -> dict[str, str]:
    """Store frames' rows (those not here yet) and state, in order, in one transaction, and
    move the cursor to the last row; returns the files of their state, to be written after."""
    db = store.db
    files: dict[str, str] = {}
    with store.write():
        if meta.get(db, "role") != "standby":
            raise Promoted  # promoted meanwhile: not one row more
        start = int(meta.get(db, "standby_cursor") or 0) if cursor is None else cursor
        last = start
        for message in messages:
            rows = _checked_rows(message["rows"], last)
            files.update(_put_state(db, message.get("state")))
            _store_rows(store, rows)
            if rows:
                last = rows[-1][1]
                meta.put(db, "standby_cursor_event", rows[-1][0].event_id)
                meta.put(db, "standby_top", str(max(int(message["top"]), last)))
        if last != start:
            meta.put(db, "standby_cursor", str(last))
            meta.put(db, "standby_last_seen_at", utc_now_iso())
        elif rewind and str(start) != meta.get(db, "standby_cursor"):
            meta.put(db, "standby_cursor", str(start))  # the node starts again from there
    return files


def _store_rows(store: EventStore, rows: list[tuple[Event, int, bool]]) -> None:
    """Insert the rows not here yet and project them, as the node did."""
    db = store.db
    own = {i for i in (meta.get(db, "previous_node_ids") or "").split(",") if i}
    current = meta.get(db, "node_id") or ""
    own.add(current)
    run: list[Event] = []
    speaking = current
    for event, _, held in rows:
        if db.execute("SELECT 1 FROM events WHERE event_id = ?",
                      [event.event_id]).fetchone():
            continue  # stored already (a stream started again from the beginning)
        db.conn.execute(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({EVENT_MARKS})",
                        event.values())
        if held:  # kept, not applied, as the node did (sync/pull.py)
            insert_row(db, "sync_flags", {"event_id": event.event_id, "at": utc_now_iso(),
                                          "node_id": event.node_id, "reason": HELD},
                       or_ignore=True)
            continue
        # The node projected its own events when it was that id: a projection asking
        # "is this mine?" (settings) must get the same answer here.
        wanted = event.node_id if event.node_id in own else current
        if wanted != speaking and run:
            _project(store, run, speaking)
            run = []
        speaking = wanted
        run.append(event)
    if run:
        _project(store, run, speaking)
    if meta.get(db, "node_id") != current and current:
        meta.put(db, "node_id", current)


def _project(store: EventStore, events: list[Event], as_node: str) -> None:
    if as_node and meta.get(store.db, "node_id") != as_node:
        meta.put(store.db, "node_id", as_node)
    try:
        store.project(events)
    except Exception as error:  # noqa: BLE001 - said, and nothing of the frame is kept
        raise CannotApply(f"an event of type {events[0].type} could not be applied here "
                          f"({type(error).__name__})") from None


def _put_state(db: Database, state: Any) -> dict[str, str]:
    """The node's state that is not events (a part of it: what changed), checked."""
    if state is None:
        return {}
    if not isinstance(state, dict):
        raise protocol.ProtocolError("malformed", "state must be an object")
    values = state.get("meta") or {}
    keys = state.get("card_keys")
    files = state.get("files") or {}
    if not isinstance(values, dict) or not isinstance(files, dict) \
            or not (keys is None or isinstance(keys, list)):
        raise protocol.ProtocolError("malformed", "state: meta, card_keys, files")
    for key, value in values.items():
        if key not in standby.IDENTITY + standby.PROGRESS or not isinstance(value, str) \
                or len(value) > standby.MAX_VALUE_BYTES:
            raise protocol.ProtocolError("malformed", f"state: {str(key)[:40]} is not one "
                                                      "to send")
        meta.put(db, key, value)
    for row in keys or []:
        if not (isinstance(row, list) and len(row) == 3
                and all(isinstance(v, str) and len(v) < 1024 for v in row)):
            raise protocol.ProtocolError("malformed", "state: a card key is three texts")
        db.execute("INSERT OR REPLACE INTO card_keys (node_id, public_key, shelter_id) "
                   "VALUES (?, ?, ?)", row)
    for name, text in files.items():
        if name not in standby.FILES or not isinstance(text, str) \
                or len(text) > standby.MAX_VALUE_BYTES:
            raise protocol.ProtocolError("malformed", f"state: {str(name)[:40]} is not a file "
                                                      "to send")
    return {str(k): str(v) for k, v in files.items()}
