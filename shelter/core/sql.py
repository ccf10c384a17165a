"""Two SQL helpers the hot paths share: a plain INSERT, and IN-lists in pieces."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlite_utils import Database


def insert_row(db: Database, table: str, row: dict[str, Any], or_ignore: bool = False) -> None:
    """A plain INSERT: sqlite-utils' insert() reads the table's schema on every call, which
    is most of the cost of a registration on the hot path."""
    columns = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
    db.conn.execute(f"{verb} INTO {table} ({columns}) VALUES ({marks})", list(row.values()))


def in_chunks(values: list[str], size: int = 900) -> Iterator[tuple[list[str], str]]:
    """``values`` for ``... IN (?, ?, ...)`` queries, in pieces below SQLite's parameter
    limit: each piece with its placeholders."""
    for start in range(0, len(values), size):
        chunk = values[start:start + size]
        yield chunk, ",".join("?" * len(chunk))
