"""HQ's outbox: which stored events concern which shelter, so that a node's pull reads its
own rows only.

An event concerns shelter R when it is HQ's step on one of R's supply requests
(acknowledged, dispatched), a setting or message for R, or a presence change somewhere else
of a person registered at R (so R can show "moved to B"). A registration that reaches HQ
after such presence changes (R was offline longer than B) routes those earlier changes to R
then. Rows are written in the same transaction as the events, by HQ's store only.
"""

from __future__ import annotations

from typing import Any

from shelter.core.authority import issuers, request_owner
from shelter.core.events import Event


def route(db: Any, events: list[Event]) -> None:
    """Add the outbox rows for ``events``, just applied to HQ's store."""
    rows: list[tuple[str, str]] = []
    moves = [e for e in events if e.type == "presence_changed"]
    if moves:
        home = issuers(db, list({e.payload["person_id"] for e in moves}))
        for event in moves:
            registered = home.get(event.payload["person_id"])
            if registered and registered != event.payload["shelter_id"]:
                rows.append((registered, event.event_id))
    for event in events:
        if event.type in ("shelter_configured", "hq_message"):
            rows.append((event.payload["shelter_id"], event.event_id))
        elif event.type in ("supply_request_acknowledged", "supply_dispatched"):
            owner = request_owner(db, event.payload["request_id"])
            if owner:
                rows.append((owner, event.event_id))
        elif event.type == "household_registered":
            shelter = event.payload["shelter_id"]
            # Its own people only: a household code scanned at a second shelter names
            # people registered first elsewhere, whose moves are their first shelter's.
            home = issuers(db, [m["person_id"] for m in event.payload["members"]])
            people = [p for p, registered in home.items() if registered == shelter]
            if not people:
                continue
            rows.extend((shelter, r[0]) for r in db.execute(
                f"SELECT event_id FROM presence_log WHERE person_id IN "
                f"({','.join('?' * len(people))}) AND shelter_id != ? ORDER BY hlc",
                [*people, shelter]))
    if rows:
        db.conn.executemany("INSERT OR IGNORE INTO sync_outbox (shelter_id, event_id) "
                            "VALUES (?, ?)", rows)


def backfill(db: Any) -> None:
    """Route every event already stored (an HQ upgraded to the outbox), in store order."""
    last = 0
    while True:
        batch = [Event.from_row(r) for r in db.query(
            "SELECT * FROM events WHERE rowid > ? ORDER BY rowid LIMIT 2000", [last])]
        if not batch:
            return
        route(db, batch)
        last = db.execute("SELECT rowid FROM events WHERE event_id = ?",
                          [batch[-1].event_id]).fetchone()[0]
