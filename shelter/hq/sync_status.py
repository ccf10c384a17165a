"""How sync stands at HQ, for the sync page: each node's sync state, and how much waits for
a person to look at (quarantined events, conflicts, people in at two shelters)."""

from __future__ import annotations

from typing import Any

from sqlite_utils import Database


def sync_status(db: Database) -> dict[str, Any]:
    """``origins`` (one row per node id: its shelter, acknowledged sequence, last batch),
    and the counts ``quarantined``, ``conflicts`` and open presence ``flags``."""
    def count(sql: str) -> int:
        return int(db.execute(sql).fetchone()[0])

    return {"origins": list(db.query("SELECT * FROM sync_origins ORDER BY shelter_id")),
            "quarantined": count("SELECT count(*) FROM sync_quarantine"),
            "conflicts": count("SELECT count(*) FROM sync_conflicts"),
            "flags": count("SELECT count(*) FROM presence_flags WHERE status = 'open'")}
