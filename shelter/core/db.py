"""The node's SQLite database: how every connection is opened.

Every connection runs in WAL mode with ``synchronous=FULL``: a committed registration
survives a power cut. The schema is in ``shelter.core.migrations``; writes go through the
event store (``shelter.core.events``) only.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlite_utils import Database

from shelter.core import atrest
from shelter.core.migrations import migrations


def connect(path: str | Path, migrate: bool = True) -> Database:
    """Open the database at ``path``, bringing its schema up to date unless told not to.
    A new database file is made 0600 and an existing one (with its -wal and -shm) tightened
    to 0600: it holds secrets and personal data (shelter/core/atrest.py)."""
    on_disk = str(path) != ":memory:" and not str(path).startswith("file:")
    if on_disk:
        try:  # made here rather than by SQLite, which would give it 0644 less the umask
            atrest.private_file(Path(path), exclusive=True)
        except FileExistsError:
            pass
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=15.0)
    conn.execute("PRAGMA journal_mode=WAL")  # -wal and -shm take the database's mode
    if on_disk:
        atrest.restrict_database(Path(path))  # files made before the rule existed
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=15000")
    db = Database(conn)
    if migrate:
        migrations.apply(db)
    return db
