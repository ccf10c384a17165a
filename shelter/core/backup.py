"""Backups, restores, and epochs.

A backup is a consistent copy of the database made while the node runs (SQLite's online
backup API). A restore brings one back as a **new epoch**: the node takes a new node id,
so its new events start a new sequence and can never be confused with events the old one
made after the backup (which HQ may hold). The old ids stay the node's own: their events
are still pushed, and cards they signed still verify. A data directory copied to another
machine, or to another place, starts a new epoch on its first start for the same reason.
A backup file is 0600 and a directory made for it 0700: it holds what the database holds.
"""

from __future__ import annotations

import hashlib
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from shelter.core import atrest, meta
from shelter.core.ids import new_node_id

DB_FILE = "shelter.db"


def backup(data_dir: Path, to_file: Path, make_dirs: bool = True) -> int:
    """Copy the node's database to ``to_file`` while it runs. Returns the size in bytes.
    ``make_dirs=False``: a missing directory is an error (FileNotFoundError), not made
    (a USB stick pulled must not become a directory on the laptop's own disk)."""
    source_path = Path(data_dir) / DB_FILE
    if not source_path.exists():
        raise ValueError(f"there is no node database in {data_dir}")
    atrest.tighten(Path(data_dir))  # its -wal/-shm, if this opening makes them, too
    to_file = Path(to_file)
    if to_file.exists():
        raise ValueError(f"{to_file} exists; choose a new file name")
    # The copy holds what the database holds (secrets, personal data): only its owner may
    # read it, wherever it goes; directories made for it are 0700 (shelter/core/atrest.py).
    if make_dirs:
        atrest.make_dirs(to_file.parent)
    try:
        atrest.private_file(to_file, exclusive=True)  # SQLite gives its journal this mode
    except FileExistsError:
        raise ValueError(f"{to_file} exists; choose a new file name") from None
    try:
        source = sqlite3.connect(str(source_path), timeout=30)
        target = sqlite3.connect(str(to_file))
        try:
            source.backup(target)  # a consistent snapshot, even with writers running
        finally:
            target.close()
            source.close()
        check = sqlite3.connect(str(to_file))
        try:
            if check.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                raise ValueError("the backup failed its integrity check")
        finally:
            check.close()
    except BaseException:
        to_file.unlink(missing_ok=True)  # no half copy left to be mistaken for a backup
        raise
    return to_file.stat().st_size


def restore(data_dir: Path, from_file: Path) -> tuple[str, str]:
    """Put a backup in place as a new epoch; the current database (if any) is moved aside,
    never deleted. Returns (node id in the backup, new node id)."""
    data_dir, from_file = Path(data_dir), Path(from_file)
    probe = sqlite3.connect(f"file:{from_file}?mode=ro", uri=True)
    try:
        if probe.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise ValueError(f"{from_file} is damaged")
        node_id = meta.get(probe, "node_id")
    except sqlite3.DatabaseError:
        raise ValueError(f"{from_file} is not a shelter backup") from None
    finally:
        probe.close()
    if node_id is None:
        raise ValueError(f"{from_file} is not a shelter backup")
    atrest.private_dir(data_dir)
    target_path = data_dir / DB_FILE
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    for suffix in ("", "-wal", "-shm"):
        current = data_dir / (DB_FILE + suffix)
        if current.exists():
            current.rename(data_dir / f"{DB_FILE}{suffix}.before-restore-{stamp}")
    atrest.private_file(target_path, exclusive=True)
    source = sqlite3.connect(str(from_file))
    target = sqlite3.connect(str(target_path))
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    conn = sqlite3.connect(str(target_path), isolation_level=None)
    try:
        old, new = new_epoch(conn, "restored from backup")
        meta.put(conn, "host_fingerprint", host_fingerprint(data_dir))
    finally:
        conn.close()
    atrest.tighten(data_dir)  # the files moved aside, too
    return old, new


def host_fingerprint(data_dir: Path) -> str:
    """Which machine and which place this data directory lives in."""
    machine = ""
    for path in (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id")):
        try:
            machine = path.read_text().strip()
            break
        except OSError:
            continue
    text = f"{machine or socket.gethostname()}|{Path(data_dir).resolve()}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def new_epoch(conn: sqlite3.Connection, reason: str) -> tuple[str, str]:
    """Give the node a new node id (a new sequence from 1); keep the old ones as its own."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        old = meta.get(conn, "node_id")
        assert old is not None
        new = new_node_id()
        previous = [p for p in (meta.get(conn, "previous_node_ids") or "").split(",") if p]
        meta.put(conn, "previous_node_ids", ",".join(previous + [old]))
        meta.put(conn, "node_id", new)
        meta.put(conn, "seq_last", "0")
        meta.put(conn, "epoch", str(int(meta.get(conn, "epoch") or 1) + 1))
        meta.put(conn, "epoch_reason", f"{reason} at {datetime.now(UTC).isoformat()}")
        key = conn.execute("SELECT public_key, shelter_id FROM card_keys WHERE node_id = ?",
                           [old]).fetchone()
        if key:  # the same signing key: cards already printed keep verifying
            conn.execute("INSERT OR IGNORE INTO card_keys (node_id, public_key, shelter_id) "
                         "VALUES (?, ?, ?)", [new, key[0], key[1]])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return old, new


def own_origins(conn: sqlite3.Connection) -> list[str]:
    """Every node id this data directory has made events under, oldest first."""
    previous = [p for p in (meta.get(conn, "previous_node_ids") or "").split(",") if p]
    current = meta.get(conn, "node_id")
    return previous + ([current] if current else [])
