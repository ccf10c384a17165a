"""What every migration step uses."""

from __future__ import annotations

from sqlite_utils import Database


def run(db: Database, *statements: str) -> None:
    """Execute each statement, in order."""
    for sql in statements:
        db.execute(sql)
