"""A standby's data directory: the node's database as the node streamed it, plus the
standby's own progress in its meta (``standby_*``: its id and credential, the node's
address, its cursor in the node's log, what it last heard). Its meta ``role`` is
"standby": a node refuses to run on it (it would speak under the node's own id), until
``promote`` makes it the shelter's node.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from shelter.core import atrest, backup, meta
from shelter.core import db as dbmod
from shelter.core.clock import HybridClock
from shelter.core.node import DB_FILE, NodeContext, NodeIdentity
from sync import standby

ROLE = "standby"
PROMOTING = "promoting"


def prepare(data_dir: Path) -> Database:
    """The standby's database, made if new (0700 directory, 0600 files like any node's);
    ValueError for a directory that holds a node or an HQ."""
    atrest.private_dir(data_dir)
    atrest.tighten(data_dir)
    fresh = not (data_dir / DB_FILE).exists()
    db = dbmod.connect(data_dir / DB_FILE)
    role = meta.get(db, "role")
    if role is None and (fresh or db.execute("SELECT 1 FROM events LIMIT 1").fetchone() is None):
        meta.put(db, "role", ROLE)
        role = ROLE
    if role != ROLE:
        db.conn.close()
        promoted = role == "node" and meta_of(data_dir, "standby_promoted_at")
        raise ValueError(f"{data_dir} holds a {role or 'node'}'s data, not a standby's"
                         + (": it was promoted, run it with `shelter node`" if promoted
                            else "; a standby needs a directory of its own"))
    meta.once(db, "standby_id", standby.new_standby_id)
    return db


def meta_of(data_dir: Path, key: str) -> str | None:
    """One meta value of a directory's database, read on its own (None: none, or no
    database)."""
    path = Path(data_dir) / DB_FILE
    if not path.exists():
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        return meta.get(conn, key)
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()


def promoted(data_dir: Path) -> bool:
    return meta_of(data_dir, "role") == "node"


class StandbyContext(NodeContext):
    """A standby's directory as its status pages open it (shelter/app.py, role "standby"):
    what a page reads, and no identity of its own (it has none before its promotion)."""

    def __init__(self, data_dir: str | Path, role: str | None = None,
                 shelter_id: str | None = None, clock_offset_seconds: float = 0.0) -> None:
        self.data_dir = Path(data_dir)
        atrest.private_dir(self.data_dir)
        self.db_path = self.data_dir / DB_FILE
        self._local = threading.local()
        self._watcher = None
        self._applier = None
        self._applier_lock = threading.Lock()
        self._watcher_lock = threading.Lock()
        db = prepare(self.data_dir)
        self.role = ROLE
        self.node_id = meta.get(db, "node_id") or "STANDBY"
        self.shelter_id = meta.get(db, "shelter_id") or ""
        self.public_key = ""
        self.identity = NodeIdentity(self.node_id, self.shelter_id, "")
        self.secret_key = meta.once(db, "session_secret", lambda: secrets.token_hex(32))
        db.conn.close()
        self.clock = HybridClock("STANDBY")


def follow_status(db: Database) -> dict[str, Any]:
    """What the standby's page and its JSON say: whom it follows, how far behind it is, and
    when it last heard from the node."""
    def get(key: str) -> str | None:
        return meta.get(db, key)

    cursor, top = int(get("standby_cursor") or 0), int(get("standby_top") or 0)
    state = get("standby_state") or "starting"
    return {"standby_of": get("shelter_id"), "node_id": get("node_id"),
            "primary": get("standby_primary"), "state": state,
            "following": state == "following", "cursor": cursor,
            "behind": max(0, top - cursor), "last_seen_at": get("standby_last_seen_at"),
            "enrolled": bool(get("standby_credential"))}


def promote(data_dir: Path) -> tuple[str, str]:
    """Make the standby the shelter's node: a new epoch (a new node id whose sequence
    starts at 1; the ids before it stay its own, so HQ gets what it lacks of them and the
    cards they signed still verify), and the directory a node's. The follower stops at
    once ("promoting": it applies nothing more). Safe to run again after a crash half way.
    Returns (the id of the node it followed, its own new id)."""
    path = Path(data_dir) / DB_FILE
    if not path.exists():
        raise ValueError(f"there is no standby in {data_dir}")
    conn = sqlite3.connect(str(path), isolation_level=None, timeout=15)
    try:
        role = meta.get(conn, "role")
        if role not in (ROLE, PROMOTING):
            raise ValueError(f"{data_dir} is not a standby's data directory"
                             + (" (it was promoted already)" if role == "node" else ""))
        if not (meta.get(conn, "node_id") and meta.get(conn, "shelter_id")
                and meta.get(conn, "card_signing_key")):
            raise ValueError("this standby has not received its node's records yet: there is "
                             "nothing to promote")
        if role == ROLE:
            conn.execute("BEGIN IMMEDIATE")
            meta.put(conn, "role", PROMOTING)
            meta.put(conn, "standby_promoted_from", meta.get(conn, "node_id") or "")
            conn.execute("COMMIT")
        followed = meta.get(conn, "standby_promoted_from") or ""
        if meta.get(conn, "node_id") == followed:
            backup.new_epoch(conn, f"promoted from the standby of {followed}")
        new = meta.get(conn, "node_id") or ""
        conn.execute("BEGIN IMMEDIATE")
        origins = backup.own_origins(conn)
        newest = conn.execute(f"SELECT max(hlc) FROM events WHERE node_id IN "
                              f"({','.join('?' * len(origins))})", origins).fetchone()[0]
        last = max(filter(None, [meta.get(conn, "hlc_last"), newest]), default=None)
        if last:  # the clock goes on from the newest stamp this shelter made
            meta.put(conn, "hlc_last", last)
        meta.put(conn, "role", "node")
        meta.put(conn, "standby_promoted_at", datetime.now(UTC).isoformat())
        conn.execute("COMMIT")
    finally:
        conn.close()
    atrest.tighten(Path(data_dir))
    return followed, new


def write_files(data_dir: Path, files: dict[str, str]) -> None:
    """The node's files as it sent them (0600). A new CA makes the standby's server
    certificate be made again, signed by it, on the next start."""
    for name, text in files.items():
        path = data_dir / name
        if path.exists() and path.read_text() == text:
            continue
        atrest.private_dir(path.parent)
        atrest.write_private(path, text.encode())
        if name.startswith("tls/"):
            (data_dir / "tls" / "server.names").unlink(missing_ok=True)
