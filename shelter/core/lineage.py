"""The node ids whose records a node holds as its own shelter's without being them: those
of the node it replaced (a laptop lost, rebuilt from HQ: sync/history.py).

They are not the node's own origins (``backup.own_origins``): their events were made
elsewhere, HQ holds them already, and they are never pushed again. But they are the
shelter's: their settings are this node's settings, their card keys sign this shelter's
cards (shelter/core/authority.py, shelter/domain/settings.py).
"""

from __future__ import annotations

import json

from shelter.core import meta

INHERITED_KEY = "inherited_node_ids"


def inherited(db: meta.Handle) -> list[str]:
    """The node ids this node inherited its shelter's records from, in the order learnt."""
    stored = meta.get(db, INHERITED_KEY)
    ids = json.loads(stored) if stored else []
    return [str(i) for i in ids] if isinstance(ids, list) else []


def inherit(db: meta.Handle, node_ids: list[str]) -> list[str]:
    """Add ``node_ids`` (within the caller's transaction); returns them all."""
    known = inherited(db)
    added = [n for n in node_ids if n not in known]
    if added:
        meta.put(db, INHERITED_KEY, json.dumps(known + added))
    return known + added
