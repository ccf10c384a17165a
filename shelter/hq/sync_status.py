"""How sync stands at HQ, for the sync page: each node's sync state, and how much waits for
a person to look at (quarantined events, conflicts, people in at two shelters)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database

from shelter.core.errors import N_


def sync_status(db: Database) -> dict[str, Any]:
    """``origins`` (one row per node id: its shelter, acknowledged sequence, last batch),
    and the counts ``quarantined``, ``conflicts`` and open presence ``flags``."""
    def count(sql: str) -> int:
        return int(db.execute(sql).fetchone()[0])

    return {"origins": list(db.query("SELECT * FROM sync_origins ORDER BY shelter_id")),
            "quarantined": count("SELECT count(*) FROM sync_quarantine"),
            "conflicts": count("SELECT count(*) FROM sync_conflicts"),
            "flags": count("SELECT count(*) FROM presence_flags WHERE status = 'open'"),
            **bundles(db)}


# Why a courier bundle was refused (sync/bundle.py codes), for the page's reader.
BUNDLE_REFUSALS = {
    "bad_signature": N_("Its signature does not verify: changed on the way, or not made "
                        "by that node."),
    "unknown_node": N_("HQ has no enrolled node of that id."),
    "wrong_shelter": N_("That node is enrolled for another shelter."),
    "revoked": N_("That node's credential is revoked."),
    "already_imported": N_("Imported before: nothing was applied again."),
    "not_your_origin": N_("It holds events of a node id that is not the sender's."),
    "node_id_taken": N_("It names a node id that belongs to another node."),
    "wrong_hq": N_("It was made for another HQ."),
    "format_version": N_("It is another version of the bundle format."),
}
UNREADABLE = N_("The file is not a readable bundle (damaged, cut short, or not a bundle).")


def bundles(db: Database, limit: int = 20) -> dict[str, Any]:
    """Courier bundles: the latest imported (``bundles``) and refused
    (``bundle_refusals``, each with ``why``, a message id), newest first."""
    refused = list(db.query("SELECT * FROM sync_bundle_refusals WHERE kind = 'bundle' "
                            "ORDER BY refusal_id DESC LIMIT ?", [limit]))
    for row in refused:
        row["why"] = BUNDLE_REFUSALS.get(row["code"], UNREADABLE)
    return {"bundles": list(db.query("SELECT * FROM sync_bundles WHERE kind = 'bundle' "
                                     "ORDER BY imported_at DESC LIMIT ?", [limit])),
            "bundle_refusals": refused}
