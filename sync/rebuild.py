"""A new laptop for a shelter whose node is gone: once enrolled with a replacement code,
the node downloads its shelter's history from HQ, page by page, and applies it
(sync/history.py), before it serves anyone.

The cursor is saved with each page, so a rebuild cut off by a lost link goes on where it
stopped: in the same run (failures on the way are tried again, as enrollment's are) or
when the node is started again. Pages shrink to what the link carries, as the push's
batches do (``protocol.BatchSize``): an answer the link cut short halves the next ask,
down to one event, and each page that arrives doubles it again.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from simple_websocket.errors import SimpleWebsocketError

from shelter.core import lineage, meta
from shelter.core.node import NodeContext
from sync import client, history, protocol

ATTEMPTS = 5  # sessions in a row that move nothing, at one event a page, before giving up
# How long a rebuild keeps asking an HQ that answers "busy" (its projector is still counting
# what it stored, or it serves as many nodes as it can): HQ is working, so those sessions
# do not count among the ATTEMPTS; after a mass reconnect that can take minutes.
BUSY_PATIENCE = 600.0
FIRST_WAIT = 1.5  # seconds before trying again, doubling per such session
HQ_KEY = "rebuild_hq_id"  # the HQ (epoch) the cursor is a position in


class Rebuilt(NamedTuple):
    """What a rebuild brought: the shelter's households and people registered by the old
    node(s), every event applied, when the newest of the old node's records was made
    (``recorded_at``, None: nothing of theirs), the old node ids, and what was kept aside."""

    households: int
    people: int
    events: int
    newest: str | None
    inherited: list[str]
    quarantined: int


def rebuild(ctx: NodeContext, hq_url: str, attempts: int = ATTEMPTS,
            first_wait: float = FIRST_WAIT, busy_patience: float = BUSY_PATIENCE,
            say: Callable[[str], None] = lambda _: None) -> Rebuilt:
    """Download and apply the shelter's history while the rebuild is pending (from the
    first of ``hq_url``'s comma-separated addresses that answers); returns what it brought.
    Raises the last error (``client.SyncRefused``: HQ's answer; OSError or a websocket
    error: the link) after ``attempts`` sessions in a row moved nothing, or after HQ has
    answered "busy" for ``busy_patience`` seconds (``say`` is told while it waits)."""
    sizes = protocol.BatchSize(history.HISTORY_LIMIT)
    idle = 0
    busy_since: float | None = None
    told: float | None = None  # when, into the wait, ``say`` was last told
    while history.pending(ctx.db):
        before, asked = history.progress(ctx.db), sizes.limit
        try:
            _session(ctx, hq_url, sizes)
        except (OSError, SimpleWebsocketError, client.SyncRefused) as error:
            if not client._transient(error):
                raise
            moved = history.progress(ctx.db) != before
            if isinstance(error, client.SyncRefused) and not moved:  # "busy": HQ works
                busy_since = time.monotonic() if busy_since is None else busy_since
                waited = time.monotonic() - busy_since
                if waited < busy_patience:
                    if told is None or waited - told >= 60:
                        say(f"HQ is busy ({error.message}); asking again, for "
                            f"{busy_patience - waited:.0f} s more at most")
                        told = waited
                    time.sleep(first_wait * random.uniform(0.75, 1.25))
                    continue
                raise
            busy_since = told = None
            # A page the link cut short may get through smaller: that is no idle session.
            idle = 0 if moved else idle if sizes.limit < asked else idle + 1
            if idle >= attempts:
                raise
            time.sleep(first_wait * 2 ** min(idle, 4) * random.uniform(0.75, 1.25))
    return summary(ctx.db)


def _session(ctx: NodeContext, hq_url: str, sizes: protocol.BatchSize) -> None:
    """One connection: hello, then pages until the rebuild is done (or the link fails)."""
    db = ctx.db
    ws, welcome = client.greeted(ctx, hq_url)  # the first HQ address that answers
    try:
        hq_ids = frozenset([str(i) for i in welcome.get("hq_ids") or []] + [welcome["hq_id"]])
        if meta.get(db, HQ_KEY) != welcome["hq_id"]:
            # A position in another HQ's store (restored since) means nothing there: start
            # again from the beginning; what is here already is skipped.
            meta.commit(ctx.store, {HQ_KEY: welcome["hq_id"], history.PART_KEY: "1",
                                    history.AFTER_KEY: "0"})
        while history.pending(db):
            part, after = history.progress(db)
            limit = sizes.limit
            ws.send(protocol.encode({"type": "history", "part": part, "after": after,
                                     "limit": limit}))
            try:
                page = client._expect(ws, "history_page", client.ACK_TIMEOUT)
            except (OSError, SimpleWebsocketError):
                sizes.lost(limit)  # the link did not carry it: ask for less next time
                raise
            if page["part"] != part:
                raise protocol.ProtocolError("malformed", "history_page: not the part asked for")
            if page.get("done") is not True and int(page["after"]) <= after:
                # Each page moves on, or the part is done: never ask the same page forever.
                raise protocol.ProtocolError("malformed", "history_page: the cursor did not move")
            history.apply_page(ctx.store, page, hq_ids)
            sizes.acknowledged()
    finally:
        client.close_socket(ws)


def summary(db: Any) -> Rebuilt:
    """What the rebuild brought (also for one finished in an earlier run)."""
    old = lineage.inherited(db)
    marks = ",".join("?" * len(old))
    households = people = 0
    if old:
        for kind, payload in db.execute(
                f"SELECT type, payload FROM events WHERE node_id IN ({marks}) "
                "AND type IN ('household_registered', 'person_added')", old):
            households += kind == "household_registered"  # an added member is no household
            people += len(json.loads(payload).get("members") or [])
    quarantined = db.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0]
    return Rebuilt(households, people, int(meta.get(db, history.APPLIED_KEY) or 0),
                   meta.get(db, history.NEWEST_KEY) or None, old, int(quarantined))
