"""Step 22: HQ stores first and projects after (issue 17).

HQ's log of what nodes send is a file of its own (sync/log.py); HQ's read models record
how far they are projected (``meta.projected_log_id``) and, for each of HQ's own events,
the log position it followed (``hq_positions``), so that a rebuild replays HQ's steps and
the nodes' events in the order HQ took them."""

from __future__ import annotations

from sqlite_utils import Database


def m022_own_positions(db: Database) -> None:
    """HQ: the log position each of HQ's own events came after (``after_log_id``)."""
    db.execute("""CREATE TABLE hq_positions (
        event_id TEXT PRIMARY KEY,
        after_log_id INTEGER NOT NULL
    ) WITHOUT ROWID""")
