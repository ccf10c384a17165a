"""How a write at the node waits for its standby, and what the desks say about the standby.

The /standby socket runs in the node's HTTPS server process; writes arrive there and at
the plain-HTTP one (phones registering), a process of its own. The socket's threads keep
the link's state in a :class:`Link` (in their process: a waiting request is woken at once)
and write it to ``standby-link.json`` in the data directory (no fsync: a hint, rewritten at
least every half second while a standby is connected), which other processes read.

The rule (``shelter node --sync-standby``): a request that wrote is answered once the
standby has stored every row of the event log up to the newest at the request's end, or
after the deadline (1 s by default). A row the standby did not store within the deadline
makes the node *alone*: from then on it answers at once, and every desk says so, until the
standby has stored everything there was; a standby not connected leaves it alone too. So
the door never waits for a standby that is gone, and the desks never claim a copy that is
not there.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from sqlite_utils import Database

from shelter.core import atrest
from shelter.core.events import utc_now_iso
from sync import standby

LINK_FILE = "standby-link.json"
BEAT_SECONDS = 0.5  # the file is rewritten at least this often while connected
STALE_SECONDS = 3.0  # a file older than this: its writer is gone (not connected)
POLL_SECONDS = 0.002  # how often a request in another process reads the file
DEFAULT_WAIT = 1.0  # seconds a write waits for the standby (--standby-wait)


class Link:
    """The node's end of its standby session in this process, shared by the session's
    threads and the requests waiting for it. Everything under ``cond``."""

    def __init__(self, data_dir: Path, deadline: float) -> None:
        self.path = Path(data_dir) / LINK_FILE
        self.deadline = deadline
        self.cond = threading.Condition()
        self.session: str | None = None  # the live session's id
        self.acked = 0  # the newest row the standby stored
        self.acked_at: str | None = None
        self.top = 0  # the newest row the session has seen
        self.alone = True
        self.alone_until = 0  # alone until the standby has stored this row
        self.pending: deque[tuple[int, float]] = deque()  # (row, when first seen), unstored
        self.pokes = 0
        self.written = 0.0
        self.on_change: Callable[[], None] | None = None  # wakes the live desk screens

    def begin(self, session: str, acked: int, top: int) -> None:
        """A standby said hello, holding the rows up to ``acked``: what it lacks was not
        stored by it when it was written, so the node stays alone until it has it."""
        with self.cond:
            self.session, self.acked, self.top = session, acked, top
            self.acked_at = utc_now_iso()
            self.pending.clear()
            self.alone, self.alone_until = acked < top, top
            self._changed()

    def end(self, session: str) -> None:
        with self.cond:
            if self.session != session:
                return  # a newer session took over
            self.session, self.alone = None, True
            self._changed()

    def saw(self, session: str, top: int) -> None:
        """The session saw the log grow to ``top``."""
        with self.cond:
            if self.session != session or top <= self.top:
                return
            self.top = top
            self.pending.append((top, time.monotonic()))
            if self.alone:
                self.alone_until = top  # answered without the standby: it must catch up
            self._check()

    def ack(self, session: str, rowid: int) -> None:
        """The standby stored every row up to ``rowid``."""
        with self.cond:
            if self.session != session or rowid <= self.acked:
                return
            self.acked, self.acked_at = rowid, utc_now_iso()
            while self.pending and self.pending[0][0] <= rowid:
                self.pending.popleft()
            self._check()
            self._publish()
            self.cond.notify_all()

    def check(self, session: str) -> None:
        """The deadline rule and the heartbeat, from the session's loop."""
        with self.cond:
            if self.session == session:
                self._check()
                if time.monotonic() - self.written >= BEAT_SECONDS:
                    self._publish()

    def poke(self) -> None:
        """A write in this process: wake the session to look for it now."""
        with self.cond:
            self.pokes += 1
            self.cond.notify_all()

    def _check(self) -> None:
        late = bool(self.pending) and time.monotonic() - self.pending[0][1] > self.deadline
        was = self.alone
        if late:
            self.alone, self.alone_until = True, max(self.alone_until, self.top)
        elif self.alone and self.acked >= self.alone_until:
            self.alone = False
        if was != self.alone:
            self._changed()

    def _changed(self) -> None:
        self._publish()
        self.cond.notify_all()
        if self.on_change is not None:
            self.on_change()

    def _publish(self) -> None:
        self.written = time.monotonic()
        body = json.dumps({"connected": self.session is not None, "acked": self.acked,
                           "acked_at": self.acked_at, "alone": self.alone,
                           "beat": time.time()})
        temporary = self.path.with_name(f"{LINK_FILE}.{os.getpid()}.tmp")
        try:
            atrest.write_private(temporary, body.encode())
            os.replace(temporary, self.path)
        except OSError:
            pass  # a hint: the next beat writes it again

    def wait(self, rowid: int, timeout: float) -> bool:
        """Until the standby stored ``rowid``, the session ends, the node is alone, or
        ``timeout``; whether it stored it."""
        with self.cond:
            self.pokes += 1
            self.cond.notify_all()  # the session looks for the new rows now
            self.cond.wait_for(lambda: self.acked >= rowid or self.session is None
                               or self.alone, timeout)
            return self.acked >= rowid


_links: dict[str, Link] = {}
_links_lock = threading.Lock()


def link_for(data_dir: Path, deadline: float = DEFAULT_WAIT) -> Link:
    """This process's link of the node in ``data_dir`` (made the first time)."""
    with _links_lock:
        return _links.setdefault(str(data_dir), Link(Path(data_dir), deadline))


class Seen(NamedTuple):
    """The link as its file says."""
    connected: bool
    acked: int
    acked_at: str | None
    alone: bool


def read(data_dir: Path) -> Seen | None:
    """The link's file; None when there is none (no standby connected since the node ran)."""
    try:
        data = json.loads((Path(data_dir) / LINK_FILE).read_text())
        fresh = time.time() - float(data["beat"]) < STALE_SECONDS
        return Seen(bool(data["connected"]) and fresh, int(data["acked"]),
                    data.get("acked_at"), bool(data["alone"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def wait_stored(data_dir: Path, rowid: int, timeout: float) -> bool:
    """Whether the standby stored the event log up to ``rowid``, waiting at most
    ``timeout`` (not at all when the node is alone)."""
    link = _links.get(str(data_dir))
    if link is not None and link.session is not None:
        return link.wait(rowid, timeout)
    deadline = time.monotonic() + timeout  # the session, if any, is in another process
    while True:
        seen = read(data_dir)
        if seen is not None and seen.acked >= rowid:
            return True
        if seen is None or not seen.connected or seen.alone or time.monotonic() >= deadline:
            return False
        time.sleep(POLL_SECONDS)


def status(data_dir: Path, db: Database, waits: bool) -> dict[str, Any] | None:
    """What the desks show: None when the node has no standby and does not wait for one.
    ``behind``: rows of the log the standby has not stored; ``alone`` (with
    --sync-standby): writes are answered without it."""
    if not waits and not standby.has_standby(db):
        return None
    seen = read(data_dir)
    connected = seen is not None and seen.connected
    acked = seen.acked if seen is not None else 0
    return {"connected": connected, "behind": max(0, standby.top(db) - acked),
            "last_ack_at": seen.acked_at if seen is not None else None,
            "alone": waits and (not connected or (seen is not None and seen.alone)),
            "waits": waits}
