"""Waking open screens when the node's data changes, whichever process wrote it.

A node runs more than one server process (HTTPS for tablets, plain HTTP for phones), and
later a sync client: an in-process signal would miss their writes. One thread per process
watches SQLite's ``PRAGMA data_version``, which changes whenever another connection
commits, and wakes every websocket waiting on it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

POLL_SECONDS = 0.1


class ChangeWatcher:
    def __init__(self, db_path: Path, interval: float = POLL_SECONDS) -> None:
        self.db_path = db_path
        self.interval = interval
        self.version = 0
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def _ensure_running(self) -> None:
        with self._start_lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="change-watcher",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        conn = sqlite3.connect(str(self.db_path), check_same_thread=False)
        try:
            last = conn.execute("PRAGMA data_version").fetchone()[0]
            while True:
                time.sleep(self.interval)
                try:
                    now = conn.execute("PRAGMA data_version").fetchone()[0]
                except sqlite3.OperationalError:
                    continue  # busy for a moment: look again next tick
                if now != last:
                    last = now
                    self.poke()
        finally:
            conn.close()

    def poke(self) -> None:
        """Wake the waiters now (a write in this process need not wait for the poll)."""
        with self._changed:
            self.version += 1
            self._changed.notify_all()

    def current(self) -> int:
        """The version now (a cache key: it changes with every commit, by any process)."""
        self._ensure_running()
        return self.version

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the version differs from ``seen`` or ``timeout`` passes; return it."""
        self._ensure_running()
        with self._changed:
            self._changed.wait_for(lambda: self.version != seen, timeout=timeout)
            return self.version
