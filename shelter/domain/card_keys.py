"""The keys cards are checked against. HQ holds each node's public card key, so that a
node replacing a lost one (rebuilt from HQ: sync/history.py) verifies the shelter's old
cards: given with the node's enrollment, or published once per node id as an event
(``card_key_published``, appended by the sync client) for an id HQ did not get it for
that way. Who may publish which key is shelter/core/authority.py's ``card_key_refusal``."""

from __future__ import annotations

from sqlite_utils import Database

from shelter.core.events import Event, projection


@projection("card_key_published")
def _apply_card_key_published(db: Database, event: Event) -> None:
    """The first key told for a node id stands (a different one is refused before this)."""
    p = event.payload
    db.execute("INSERT OR IGNORE INTO card_keys (node_id, public_key, shelter_id) "
               "VALUES (?, ?, ?)", [p["node_id"], p["public_key"], p["shelter_id"]])
