"""The meta table: a node's facts, one text value per key (its role, node id, shelter id,
keys, clock and sequence, epoch) and its sync progress. Every read and write of it goes
through here.

``get``, ``put`` and ``once`` join whatever transaction the caller holds: the event store's
``append`` reads and writes the clock (``hlc_last``) and the sequence (``seq_last``) per
event with them, one indexed statement each. ``commit`` writes several values in a
transaction of their own (sync progress, set outside any other write).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import Protocol

from sqlite_utils import Database

# Both kinds of handle the node has: sqlite-utils' (the app, the store) and a bare
# connection (backup and restore, before the node opens its database).
Handle = Database | sqlite3.Connection

_GET = "SELECT value FROM meta WHERE key = ?"
_PUT = ("INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value")


class Writer(Protocol):
    """What ``commit`` writes through: the event store (its one writer lock)."""

    def write(self) -> AbstractContextManager[Database]: ...


def get(db: Handle, key: str) -> str | None:
    """The value of ``key``, or None when it was never set."""
    row = db.execute(_GET, [key]).fetchone()
    return row[0] if row else None


def put(db: Handle, key: str, value: str) -> None:
    """Set ``key`` within the caller's transaction (or on its own, outside one)."""
    db.execute(_PUT, [key, value])


def once(db: Handle, key: str, make: Callable[[], str]) -> str:
    """A fact made the first time it is asked for (the node id, its keys) and kept after;
    of two processes asking at once, the first to write wins and both get its value."""
    value = get(db, key)
    if value is None:
        db.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", [key, make()])
        value = get(db, key)
    assert value is not None
    return value


def commit(store: Writer, values: Mapping[str, str]) -> None:
    """Set several keys together in a committed transaction of their own (sync progress:
    what HQ acknowledged, the link's state), so a crash keeps all of them or none."""
    with store.write() as db:
        for key, value in values.items():
            db.execute(_PUT, [key, value])
