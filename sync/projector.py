"""HQ's projector: it follows the log (sync/log.py) and applies what is there to HQ's read
models (``shelter.db``), in log order, with the same rules as ever (sync/apply.py).

Each round takes the rows after ``projected_log_id`` and applies them, a run of one
sender's rows at a time, in one transaction on the read models that also moves
``projected_log_id``: a crash loses no row and applies none twice. Each run is judged as
of when HQ received it (``received_ms``), so that a replay (``shelter hq rebuild``) comes
to the same state. What the rules refuse, and what fails to apply, is quarantined with its
reason and shown at HQ; the projector goes on with the next row.

One projector per data directory, across threads and processes (``holding``): HQ's server
runs it in a thread; a rebuild takes it over to switch.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shelter.core import atrest, meta
from shelter.core.backup import own_origins
from shelter.core.events import EventStore
from shelter.core.ids import new_id
from sync import log as hq_log
from sync.apply import Applied, apply_batch, quarantine
from sync.protocol import STUB_TYPE, for_wire, place_of

logger = logging.getLogger("shelter.sync")
POSITION = "projected_log_id"
POSITION_MS = "projected_ms"  # when the last row projected was received
ROWS_PER_ROUND = 4000
IDLE_SECONDS = 1.0
_locks: dict[str, threading.Lock] = {}
_wakes: dict[str, threading.Event] = {}
_guard = threading.Lock()


def _key(data_dir: Path | str) -> str:
    return str(Path(data_dir).resolve())


def wake(data_dir: Path | str) -> None:
    """Rows were logged: the projector of ``data_dir`` (in this process) looks now."""
    with _guard:
        event = _wakes.setdefault(_key(data_dir), threading.Event())
    event.set()


@contextmanager
def holding(data_dir: Path | str, wait: bool = True) -> Iterator[bool]:
    """Be the one projector of ``data_dir`` while inside; yields False if ``wait`` is False
    and another holds it."""
    key = _key(data_dir)
    with _guard:
        lock = _locks.setdefault(key, threading.Lock())
    if not lock.acquire(blocking=wait):
        yield False
        return
    try:
        path = Path(data_dir) / "log.db-projector"
        atrest.private_file(path)
        fd = os.open(path, os.O_RDWR)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            yield True
        finally:
            os.close(fd)  # releases the flock
    finally:
        lock.release()


def position(db: Any) -> int:
    return int(meta.get(db, POSITION) or 0)


Run = tuple[range, Applied]  # the log positions of a run of one sender's rows, and what came of it


def project_rows(store: EventStore, rows: list[tuple[Any, ...]]) -> list[Run]:
    """Apply log rows (``hq_log.rows_after``'s) within the caller's write transaction on
    ``store``, and move the projected position past them."""
    done: list[Run] = []
    start = 0
    while start < len(rows):
        end = start + 1
        while end < len(rows) and rows[end][1:4] == rows[start][1:4]:
            end += 1  # one sender, received at one moment: judged as of then
        run = rows[start:end]
        done.append((range(run[0][0], run[-1][0] + 1), _apply_run(store, run)))
        start = end
    if rows:
        meta.put(store.db, POSITION, str(rows[-1][0]))
        meta.put(store.db, POSITION_MS, str(rows[-1][3]))
    return done


def _apply_run(store: EventStore, run: list[tuple[Any, ...]]) -> Applied:
    origin, shelter_id = run[0][1], run[0][2]
    events: list[Any] = []
    try:
        events = [json.loads(row[4]) for row in run]
        result = apply_batch(store, origin, shelter_id, events, now_ms=int(run[-1][3]))
    except Exception as error:  # noqa: BLE001 - quarantined, and the projector goes on
        if len(run) > 1:  # row by row: only what fails is set aside
            return _one_by_one(store, run)
        logger.error("log row %s of node %s could not be projected (%s)", run[0][0],
                     origin, type(error).__name__)
        return _set_aside(store, origin, shelter_id, events or [r[4] for r in run],
                          f"could not be projected ({type(error).__name__})")
    if result.need_from is not None:  # the log skips a place: never by its own rules
        logger.error("node %s's log rows skip from %s", origin, result.need_from)
        rest = _set_aside(store, origin, shelter_id,
                          [e for e in events if isinstance(e, dict)
                           and type(e.get("seq")) is int and e["seq"] >= result.need_from],
                          f"not projected: HQ's log has no event {result.need_from} before it")
        result.quarantined += rest.quarantined
    return result


def _one_by_one(store: EventStore, run: list[tuple[Any, ...]]) -> Applied:
    total = Applied(0)
    for row in run:
        done = _apply_run(store, [row])
        total.acked_seq = max(total.acked_seq, done.acked_seq)
        total.applied += done.applied
        total.duplicates += done.duplicates
        total.quarantined += done.quarantined
        total.conflicts += done.conflicts
    return total


def _set_aside(store: EventStore, origin: str, shelter_id: str, events: list[Any],
               reason: str) -> Applied:
    """Quarantine these events and go on past them in the origin's sequence."""
    result = Applied(0)
    with store.write() as db:
        for raw in events:
            result.quarantined.append(quarantine(db, origin, raw, reason))
        # Only the sender's own events have a place in its sequence (the log stored
        # nothing else at one): another node's, whatever seq it names, moves nothing.
        seqs = [e["seq"] for e in events
                if place_of(e) is not None and e.get("node_id") == origin]
        db.execute("INSERT OR IGNORE INTO sync_origins (node_id, shelter_id) VALUES (?, ?)",
                   [origin, shelter_id])
        if seqs and "no event" not in reason:
            db.execute("UPDATE sync_origins SET acked_seq = max(acked_seq, ?) "
                       "WHERE node_id = ?", [max(seqs), origin])
    return result


def project_pending(ctx: Any, limit: int = ROWS_PER_ROUND) -> int:
    """One round: project up to ``limit`` rows; returns how many. Waits for another
    projector of the same data directory to finish its round."""
    with holding(ctx.data_dir):
        return sum(len(ids) for ids, _ in _round(ctx, limit))


def _round(ctx: Any, limit: int) -> list[Run]:
    conn = hq_log.of(ctx.data_dir)
    if hq_log.head(conn) <= position(ctx.db):
        return []
    with ctx.applying() as store:
        return project_rows(store, hq_log.rows_after(conn, position(store.db), limit))


def project_all(ctx: Any) -> int:
    """Project until the log holds nothing more (tests, the rebuild)."""
    total = 0
    while (done := project_pending(ctx)) > 0:
        total += done
    return total


def caught_up(ctx: Any, through: int, seconds: float) -> bool:
    """Wait (``seconds`` at most) until the projector of ``ctx`` has projected through log
    position ``through``; whether it did. Only waits: the projector does the work."""
    deadline = time.monotonic() + seconds
    while position(ctx.db) < through:
        if time.monotonic() >= deadline:
            return False
        wake(ctx.data_dir)
        time.sleep(0.05)
    return True


def project_held(ctx: Any, through: int) -> list[Run]:
    """Project through log position ``through``, by a caller ``holding`` the projector
    (a bundle import, which reports what came of its own rows)."""
    runs: list[Run] = []
    while position(ctx.db) < through and (more := _round(ctx, ROWS_PER_ROUND)):
        runs += more
    return runs


def status(ctx: Any, now_ms: int | None = None) -> dict[str, Any]:
    """How far HQ's figures are projected: the position, when that row was received,
    and the lag behind the log in events and seconds."""
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    conn = hq_log.of(ctx.data_dir)
    through, newest = position(ctx.db), hq_log.head(conn)
    stamp = meta.get(ctx.db, POSITION_MS)
    # Log positions are never skipped after what is projected (a fence only moves the
    # next one past it), so the lag is the difference, and its oldest row the next one.
    oldest = hq_log.received_ms_of(conn, through + 1) if newest > through else None
    return {"projected_through": _iso(int(stamp)) if stamp else None,
            "projected_position": through, "log_position": newest,
            "lag_events": max(0, newest - through),
            "lag_seconds": round(max(0, now_ms - oldest) / 1000, 1)
            if oldest is not None else 0.0}


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")


class Projector(threading.Thread):
    """HQ's server runs one: a round whenever rows are logged, or every second."""

    def __init__(self, node: Any, idle_seconds: float = IDLE_SECONDS) -> None:
        super().__init__(name="hq-projector", daemon=True)
        self.node = node
        self.idle_seconds = idle_seconds
        self.stop = threading.Event()
        self.halted = False  # set by a signal handler (shelter/projecting.py): no lock
        with _guard:
            self.woken = _wakes.setdefault(_key(node.data_dir), threading.Event())

    def run(self) -> None:
        while not (self.halted or self.stop.is_set()):
            self.woken.clear()
            try:
                with holding(self.node.data_dir) as mine:
                    done = len(_round(self.node, ROWS_PER_ROUND)) if mine else 0
            except Exception as error:  # noqa: BLE001 - must keep going
                if not self.node.db_path.exists():
                    return  # the data directory is gone (a test finished)
                logger.warning("projection round failed: %s", type(error).__name__)
                done = 0
                self.stop.wait(1.0)
            if done == 0:
                self.woken.wait(self.idle_seconds)


_started: dict[str, Projector] = {}
_started_lock = threading.Lock()


def ensure_projector(node: Any) -> None:
    with _started_lock:
        key = _key(node.data_dir)
        if key not in _started or not _started[key].is_alive():
            _started[key] = Projector(node)
            _started[key].start()


def adopt_existing(ctx: Any) -> int:
    """An HQ that applied nodes' batches before it kept a log (an upgrade): its stored
    events become the log's first rows, as already projected, and its own events' places
    among them are noted, so that a rebuild replays everything. Returns the rows logged
    (0 when there is nothing to adopt, as on every later start)."""
    conn = hq_log.of(ctx.data_dir)
    with holding(ctx.data_dir), ctx.applying() as store:
        through = meta.get(store.db, POSITION)
        if through is not None or hq_log.head(conn) > 0:
            # Read models restored from a later copy than the log (a standby's replicas,
            # a backup): the log's next rows must come after what they project through.
            hq_log.fence(conn, int(through or 0))
            return 0
        with hq_log.writing(conn):
            return _adopt(store.db, conn)


def _adopt(db: Any, conn: Any) -> int:
    """Each origin's places 1..acked_seq become log rows in HQ's order: its stored event,
    else what HQ quarantined there (a rebuild judges it again), else a stub (a node-local
    event, whose place was all HQ kept). An event HQ held as stamped too far ahead keeps
    the time it was held as its receipt, and a quarantined one the time it was
    quarantined, so that a replay judges each as of then."""
    own = set(own_origins(db.conn))
    origins = {r[0]: (r[1], int(r[2])) for r in db.execute(
        "SELECT node_id, shelter_id, acked_seq FROM sync_origins")}
    held = {r[0]: _ms(r[1]) for r in db.execute("SELECT event_id, at FROM sync_flags")}
    kept: dict[tuple[str, int], tuple[dict[str, Any], int]] = {}
    for node_id, seq, raw, at in db.execute(
            "SELECT node_id, seq, raw, at FROM sync_quarantine WHERE seq IS NOT NULL "
            "ORDER BY quarantine_id"):
        event = _kept(raw)
        # Only the sender's own event took that place (one naming another node did not);
        # the first kept there, received when it was quarantined (judged as of then).
        if event is not None and event.get("node_id") == node_id \
                and type(event.get("seq")) is int and event["seq"] == seq:  # not True for 1
            kept.setdefault((node_id, seq), (event, _ms(at)))
    now_ms, rows, positions = int(time.time() * 1000), [], []
    done: dict[str, int] = {}

    def log_row(origin: str, seq: int, event: Any, received_ms: int) -> None:
        text = hq_log.stored_text(event)
        rows.append((origin, origins.get(origin, ("", 0))[0], seq, received_ms,
                     hq_log.digest_of(text), text))

    def fill(origin: str, through: int) -> None:
        for seq in range(done.get(origin, 0) + 1, through + 1):
            event, received_ms = kept.get((origin, seq)) or (_stub(origin, seq), now_ms)
            log_row(origin, seq, event, received_ms)
        done[origin] = max(done.get(origin, 0), through)

    for row in db.query("SELECT * FROM events ORDER BY rowid"):
        if row["node_id"] in own:
            positions.append((row["event_id"], len(rows)))
            continue
        fill(row["node_id"], row["seq"] - 1)
        log_row(row["node_id"], row["seq"], for_wire(row), held.get(row["event_id"], now_ms))
        done[row["node_id"]] = max(done.get(row["node_id"], 0), row["seq"])
    for origin, (_, acked) in origins.items():
        if origin not in own:
            fill(origin, acked)
    conn.executemany("INSERT INTO log (origin, shelter_id, seq, received_ms, digest, "
                     "event) VALUES (?, ?, ?, ?, ?, ?)", rows)
    conn.executemany("INSERT OR IGNORE INTO log_origins (origin, shelter_id, logged_seq) "
                     "VALUES (?, ?, ?)", [(o, sh, a) for o, (sh, a) in origins.items()])
    db.conn.executemany("INSERT OR REPLACE INTO hq_positions (event_id, after_log_id) "
                        "VALUES (?, ?)", positions)  # where they fell among these rows
    meta.put(db, POSITION, str(len(rows)))
    if rows:
        meta.put(db, POSITION_MS, str(now_ms))
    return len(rows)


def _ms(iso: str) -> int:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except ValueError:
        return int(time.time() * 1000)


def _kept(raw: str | None) -> Any:
    """What HQ quarantined at a place, as received (None if it was not kept whole)."""
    if raw is None:
        return None
    try:
        event = json.loads(raw)
    except ValueError:
        return None
    return event if isinstance(event, dict) else None


def _stub(origin: str, seq: int) -> dict[str, Any]:
    """A place in ``origin``'s sequence that held a node-local event: nothing to apply."""
    return {"event_id": new_id(), "node_id": origin, "seq": seq,
            "hlc": f"{0:015d}.{0:08d}.{origin}", "type": STUB_TYPE, "schema_version": 1,
            "payload": {}, "recorded_at": ""}
