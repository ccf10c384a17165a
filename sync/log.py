"""HQ's log: every event a node sends, stored as received before anything is made of it.

HQ acknowledges a batch once its events are in this log, a database file of its own
(``DATA/log.db``) beside HQ's read models (``DATA/shelter.db``): SQLite has one writer per
file, and the log and the projector (sync/projector.py) each hold their own, so taking in
batches never waits for the figures to be worked out, and working them out never waits for
a node's batch to arrive. The checks made here need nothing but the log itself: the shape
of each event, that it is the sender's own, its place in the sender's sequence, a type and
schema version HQ knows. Whatever depends on HQ's state (may this shelter say it, about that
person, that request?) is judged when the event is projected, and a refusal is then kept
and shown at HQ (docs/sync-protocol.md, "Acknowledged, then projected").

What is logged is never changed or removed: ``shelter hq rebuild`` replays it all.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shelter.core import atrest
from shelter.core.events import SCHEMA_VERSIONS
from shelter.core.node import LOG_FILE
from sync.protocol import STUB_TYPE, check_event, place_of

logger = logging.getLogger("shelter.sync")
NOT_ITS_OWN = "a node may send only its own events"
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS log (
        log_id INTEGER PRIMARY KEY AUTOINCREMENT,
        origin TEXT NOT NULL,        -- the node id the batch came under
        shelter_id TEXT NOT NULL,    -- the sender's shelter, by its credential
        seq INTEGER,                 -- the place in the origin's sequence it took, if any
        received_ms INTEGER NOT NULL,
        digest TEXT NOT NULL,        -- of the event as received: a resend is the same
        event TEXT NOT NULL          -- as received (JSON)
    )""",
    "CREATE INDEX IF NOT EXISTS log_origin_seq ON log (origin, seq)",
    # How far each origin's sequence is stored: what HQ acknowledges.
    """CREATE TABLE IF NOT EXISTS log_origins (
        origin TEXT PRIMARY KEY,
        shelter_id TEXT NOT NULL,
        logged_seq INTEGER NOT NULL DEFAULT 0,
        unplaced INTEGER NOT NULL DEFAULT 0,  -- rows stored that took no place (UNPLACED)
        unkept INTEGER NOT NULL DEFAULT 0,    -- rows refused and not stored, past that
        unkept_ms INTEGER                     -- when the latest of them came
    )""",
    "CREATE TRIGGER IF NOT EXISTS log_kept BEFORE UPDATE ON log "
    "BEGIN SELECT RAISE(ABORT, 'the log is never changed'); END",
    "CREATE TRIGGER IF NOT EXISTS log_kept_delete BEFORE DELETE ON log "
    "BEGIN SELECT RAISE(ABORT, 'the log is never changed'); END",
)
# Columns added to log_origins since the log first shipped (a log made before has none).
_ADDED = {"unplaced": "INTEGER NOT NULL DEFAULT 0", "unkept": "INTEGER NOT NULL DEFAULT 0",
          "unkept_ms": "INTEGER"}
# What a sender may leave in the log that takes no new place in its sequence (an event of
# the wrong shape out of turn, another node's event, a different event at a place already
# taken) is kept for an operator to see, up to this many rows per node. Past that it is
# answered with its reason as before and counted, not stored: a stolen credential may not
# fill HQ's log with what HQ cannot use at no cost to its own sequence. What takes a place
# (a node's history) is not capped, in rows or bytes (docs/security.md): a lost laptop's
# node is revoked.
UNPLACED_PER_ORIGIN = 10_000
WARN_EVERY_MS = 60_000
_warned: dict[str, int] = {}
UNKEPT = "not kept at HQ: this node has sent more events HQ cannot take than HQ keeps"
_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()
_local = threading.local()
# One encoder for every event stored (json.dumps with options makes one per call).
_CANONICAL = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"))
KEPT_PER_THREAD = 4  # log connections a thread keeps open (one HQ has one; tests have many)


def path_of(data_dir: Path | str) -> Path:
    return Path(data_dir) / LOG_FILE


def connect(data_dir: Path | str) -> sqlite3.Connection:
    """A new connection to the data directory's log (made, 0600, if missing)."""
    path = path_of(data_dir)
    try:
        atrest.private_file(path, exclusive=True)
    except FileExistsError:
        pass
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                           timeout=15.0)
    conn.execute("PRAGMA journal_mode=WAL")
    atrest.restrict_database(path)
    conn.execute("PRAGMA synchronous=FULL")  # an acknowledged event survives a power cut
    conn.execute("PRAGMA busy_timeout=15000")
    for statement in _SCHEMA:
        conn.execute(statement)
    have = {row[1] for row in conn.execute("PRAGMA table_info(log_origins)")}
    for column, kind in _ADDED.items():
        if column not in have:
            try:
                conn.execute(f"ALTER TABLE log_origins ADD COLUMN {column} {kind}")
            except sqlite3.OperationalError as error:  # another process added it first
                if "duplicate column" not in str(error):
                    raise
    return conn


def of(data_dir: Path | str) -> sqlite3.Connection:
    """This thread's connection to the log of ``data_dir``."""
    conns = getattr(_local, "conns", None)
    if conns is None:
        conns = _local.conns = {}
    key = str(Path(data_dir).resolve())
    conn = conns.pop(key, None)
    if conn is None:
        conn = connect(data_dir)
        while len(conns) >= KEPT_PER_THREAD:  # the least recently used one goes
            conns.pop(next(iter(conns))).close()
    conns[key] = conn  # the most recently used last
    return conn


def forget_connections() -> None:
    """Close this thread's log connections (a test removing its data directory)."""
    for conn in getattr(_local, "conns", {}).values():
        conn.close()
    _local.conns = {}


@contextmanager
def writing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One writer of the log at a time within the process, BEGIN IMMEDIATE across them."""
    name = conn.execute("PRAGMA database_list").fetchone()[2]
    with _locks_guard:
        lock = _locks.setdefault(name, threading.Lock())
    with lock:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise


@dataclass
class Logged:
    """What one batch came to in the log: the ack's figures."""
    acked_seq: int
    stored: int = 0
    duplicates: int = 0
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    need_from: int | None = None
    log_ids: list[int] = field(default_factory=list)

    def ack(self, batch_id: int) -> dict[str, Any]:
        # ``applied`` keeps its place in the message; it now counts events stored.
        return {"type": "ack", "batch": batch_id, "acked_seq": self.acked_seq,
                "stored": self.stored, "applied": self.stored,
                "duplicates": self.duplicates, "quarantined": self.quarantined,
                "conflicts": [], "need_from": self.need_from}


def logged_seq(conn: sqlite3.Connection, origin: str) -> int:
    row = conn.execute("SELECT logged_seq FROM log_origins WHERE origin = ?",
                       [origin]).fetchone()
    return int(row[0]) if row else 0


def head(conn: sqlite3.Connection) -> int:
    """The newest log position (0 for an empty log)."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
    return int(row[0]) if row else 0


def ingest(conn: sqlite3.Connection, origin: str, shelter_id: str, events: list[Any],
           received_ms: int) -> Logged:
    """Store a batch ``origin`` sent (its session already authenticated as that node, of
    ``shelter_id``), committed when this returns."""
    return ingest_batches(conn, shelter_id, [(origin, events)], received_ms)[0]


def ingest_batches(conn: sqlite3.Connection, shelter_id: str,
                   batches: list[tuple[str, list[Any]]], received_ms: int,
                   texts: list[list[str] | None] | None = None) -> list[Logged]:
    """Store batches that arrived together, in one transaction (one fsync for as many as
    the node had in flight); each one's figures, committed when this returns. ``texts``:
    for each batch, its events' texts as they came (``protocol.decode_with_texts``), kept
    as they are; None where the log is to write the events out itself.

    The rules follow sync/apply.py's, so that the projector, applying the same rows,
    comes to the same sequence: an event of the wrong shape takes its place in the
    sequence if it is the next one; a gap stops the batch and asks for the missing
    events; an exact resend of a stored event is a duplicate and is not stored again.
    """
    texts = texts or [None] * len(batches)
    with writing(conn):
        return [_ingest(conn, origin, shelter_id, events, received_ms, as_sent)
                for (origin, events), as_sent in zip(batches, texts, strict=True)]


def _ingest(conn: sqlite3.Connection, origin: str, shelter_id: str, events: list[Any],
            received_ms: int, texts: list[str] | None = None) -> Logged:
    conn.execute("INSERT OR IGNORE INTO log_origins (origin, shelter_id) VALUES (?, ?)",
                 [origin, shelter_id])
    logged, unplaced = conn.execute("SELECT logged_seq, unplaced FROM log_origins WHERE "
                                    "origin = ?", [origin]).fetchone()
    done, room = Logged(int(logged)), UNPLACED_PER_ORIGIN - int(unplaced)
    rows: list[tuple[Any, ...]] = []
    kept_unplaced = not_kept = 0
    for n, raw in enumerate(events):
        place, entries = done.acked_seq, len(done.quarantined)
        problem = check_event(raw)
        seq = place_of(raw)
        # As it came if it is a well-formed event (at most MAX_DEPTH deep, so its text is
        # always read back); anything else as HQ writes it, as before there were texts.
        text = texts[n] if texts is not None and problem is None else stored_text(raw)
        mark = digest_of(text)
        if problem is not None:
            if seq is not None and seq == done.acked_seq + 1:
                done.acked_seq = seq  # its place in the sequence is used up
            done.quarantined.append(_entry(raw, seq, problem))
        elif raw["node_id"] != origin:
            done.quarantined.append(_entry(raw, seq, NOT_ITS_OWN))
        elif seq is not None and seq <= done.acked_seq:
            if _same_as_stored(conn, origin, seq, rows, raw, mark):
                done.duplicates += 1
                continue
            # Another event in a place already taken: the projector records the
            # conflict (or, for a place it never applied, the duplicate).
        elif seq is not None and seq > done.acked_seq + 1:
            done.need_from = done.acked_seq + 1
            break
        else:
            done.acked_seq = seq if seq is not None else done.acked_seq
            problem = _unknown(raw)
            if problem is not None:
                done.quarantined.append(_entry(raw, seq, problem))
            else:
                done.stored += 1
        at = seq
        if done.acked_seq == place:  # it takes no new place in the sequence
            if kept_unplaced >= room:
                not_kept += 1
                if len(done.quarantined) > entries:
                    done.quarantined[-1]["reason"] += f" ({UNKEPT})"
                else:
                    done.quarantined.append(_entry(raw, seq, UNKEPT))
                continue
            kept_unplaced += 1
            at = None  # a resend is compared with what took the place, never with this
        rows.append((origin, shelter_id, at, received_ms, mark, text))
    if rows:
        first = head(conn) + 1
        conn.executemany("INSERT INTO log (origin, shelter_id, seq, received_ms, digest, "
                         "event) VALUES (?, ?, ?, ?, ?, ?)", rows)
        done.log_ids = list(range(first, first + len(rows)))
    conn.execute("UPDATE log_origins SET logged_seq = ?, unplaced = unplaced + ?, "
                 "unkept = unkept + ?, unkept_ms = CASE WHEN ? > 0 THEN ? ELSE unkept_ms "
                 "END WHERE origin = ?", [done.acked_seq, kept_unplaced, not_kept, not_kept,
                                          received_ms, origin])
    if not_kept and received_ms - _warned.get(origin, -WARN_EVERY_MS) >= WARN_EVERY_MS:
        _warned[origin] = received_ms  # once a minute per node: a flood is not logged twice
        logger.warning("node %s: events not kept, past the %d HQ keeps of what it cannot "
                       "take (the count is on HQ's sync page)", origin, UNPLACED_PER_ORIGIN)
    done.quarantined.sort(key=lambda q: (q["seq"] is None, q["seq"] or 0))
    return done


def unkept(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Nodes whose events HQ answered and did not store, past ``UNPLACED_PER_ORIGIN``:
    node, shelter, how many, when the latest came (ISO time); the latest first."""
    return [{"node_id": r[0], "shelter_id": r[1], "unkept": r[2],
             "at": datetime.fromtimestamp(r[3] / 1000, UTC).isoformat()}
            for r in conn.execute("SELECT origin, shelter_id, unkept, unkept_ms FROM "
                                  "log_origins WHERE unkept > 0 ORDER BY unkept_ms DESC")]


def _unknown(raw: dict[str, Any]) -> str | None:
    if raw["type"] == STUB_TYPE:
        return None
    known = SCHEMA_VERSIONS.get(raw["type"])
    if known is None:
        return f"unknown event type {raw['type']!r}"
    if raw["schema_version"] > known:
        return f"schema version {raw['schema_version']} is newer than this store's {known}"
    return None


def digest_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def stored_text(raw: Any) -> str:
    """An event written out by HQ, for a batch that did not come as ``encode_batch``
    writes it (and to compare two texts of one event): canonical JSON (sorted keys)."""
    try:
        return _CANONICAL.encode(raw)
    except (TypeError, ValueError, RecursionError):
        return '"(not kept: it could not be written out)"'


def _entry(raw: Any, seq: int | None, reason: str) -> dict[str, Any]:
    event_id = raw.get("event_id") if isinstance(raw, dict) else None
    return {"event_id": event_id if isinstance(event_id, str) else None, "seq": seq,
            "reason": reason}


def _same_as_stored(conn: sqlite3.Connection, origin: str, seq: int,
                    pending: list[tuple[Any, ...]], raw: dict[str, Any], mark: str) -> bool:
    """Whether ``raw`` (its text's digest ``mark``) is the event first stored at
    ``origin``'s ``seq`` (this batch's too): the same text, or the same JSON written
    another way (fields in another order, a log row written out by HQ itself)."""
    stored = None
    for row in pending:
        if row[2] == seq:
            stored = (row[4], row[5])
            break
    else:
        stored = conn.execute("SELECT digest, event FROM log WHERE origin = ? AND seq = ? "
                              "ORDER BY log_id LIMIT 1", [origin, seq]).fetchone()
    if stored is None:
        return False
    if stored[0] == mark:
        return True
    try:
        return stored_text(json.loads(stored[1])) == stored_text(raw)
    except (ValueError, RecursionError):  # not read back: not shown to be the same
        return False


def rows_after(conn: sqlite3.Connection, position: int, limit: int) -> list[tuple[Any, ...]]:
    """(log_id, origin, shelter_id, received_ms, event) after ``position``, in order."""
    return conn.execute("SELECT log_id, origin, shelter_id, received_ms, event FROM log "
                        "WHERE log_id > ? ORDER BY log_id LIMIT ?",
                        [position, limit]).fetchall()


def received_ms_of(conn: sqlite3.Connection, log_id: int) -> int | None:
    row = conn.execute("SELECT received_ms FROM log WHERE log_id = ?", [log_id]).fetchone()
    return int(row[0]) if row else None


def fence(conn: sqlite3.Connection, position: int) -> None:
    """Make the next log position come after ``position`` (a restored HQ whose read models
    were copied later than its log: what they project through is never taken again)."""
    with writing(conn):
        if head(conn) < position:
            conn.execute("DELETE FROM sqlite_sequence WHERE name = 'log'")
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('log', ?)",
                         [position])
