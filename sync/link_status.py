"""What the node's desk and GET /api/v1/sync-status say about its link to HQ: the state the
sync client (sync/client.py) last recorded, the HQ address it talks to, what waits to go."""

from __future__ import annotations

import json
from typing import Any

from shelter.core import backup, meta
from shelter.core.node import NodeContext
from sync import hq_addresses


def sync_status(ctx: NodeContext) -> dict[str, Any] | None:
    """What the desk shows: None when this node does not sync."""
    db = ctx.db
    if not meta.get(db, "hq_url"):
        return None
    acked = json.loads(meta.get(db, "sync_acked") or "{}")
    waiting = 0
    for origin in backup.own_origins(db.conn):
        if acked and origin not in acked and origin != ctx.node_id:
            continue  # an id HQ no longer counts as this node's (enrolled again since)
        waiting += db.execute("SELECT count(*) FROM events WHERE node_id = ? AND seq > ?",
                              [origin, int(acked.get(origin, 0))]).fetchone()[0]
    refused = db.execute("SELECT count(*) FROM sync_quarantine WHERE refused = 1").fetchone()[0]
    state = meta.get(db, "sync_state")
    return {"state": state or "starting", "hq_url": hq_addresses.current(db),  # talks to now
            "connected": state == "connected",
            "revoked": state == "revoked",
            # Updates from HQ this node would not take (shelter/core/authority.py).
            "refused": int(refused),
            "last_ok_at": meta.get(db, "sync_last_ok_at"),
            "waiting": waiting,
            "problems": int(meta.get(db, "sync_problems") or 0)}
