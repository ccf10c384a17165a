"""HQ's projector as a process of its own: ``python -m shelter.projecting DATA_DIR``.

HQ's server (``shelter hq``) starts it beside its worker: the log and the projector then run
on two cores instead of taking turns on one (a Python process runs one thread at a time),
and it runs at a lower priority, so that taking in batches comes first and counting after.
It dies with the worker that started it, and a new worker starts a new one; if it dies on
its own (a crash, kill -9, out of memory) the worker's watch starts it again after a pause that
grows while it keeps dying, and says so in the log. Only one projects a data directory at a
time (sync/projector.py, ``holding``). Servers made in a test, and any other, run the
projector as a thread instead.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

IDLE_SECONDS = 0.1  # how often it looks when idle (no wake-up crosses processes)
FIRST_PAUSE, LONGEST_PAUSE = 0.5, 30.0  # before a restart; doubles while it keeps dying
STEADY_SECONDS = 60.0  # a run this long resets the pause

logger = logging.getLogger("shelter.sync")


class Watch:
    """Keeps one projector process running for a data directory, from HQ's worker."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.stop = threading.Event()
        self.process: subprocess.Popen[bytes] | None = None
        # The process is started from this thread: its death signal follows the thread
        # that started it (PR_SET_PDEATHSIG), and this one lives as long as the worker.
        self.thread = threading.Thread(target=self._run, name="projector-watch", daemon=True)
        self.thread.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        # No preexec_fn: this worker has many threads, and Python code between fork and
        # exec may deadlock there. The child ties its life to this thread itself.
        return subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "shelter.projecting", str(self.data_dir),
             str(os.getpid())])

    def _run(self) -> None:
        pause = FIRST_PAUSE
        while not self.stop.is_set():
            began = time.monotonic()
            try:
                self.process = self._spawn()
                code: int | str = self.process.wait()
            except Exception as error:  # noqa: BLE001 - could not start: try again later
                code = type(error).__name__
            if self.stop.is_set():
                return
            if time.monotonic() - began >= STEADY_SECONDS:
                pause = FIRST_PAUSE
            logger.warning("the projector stopped (exit %s); starting it again in %.1f s",
                           code, pause)
            if self.stop.wait(pause):
                return
            pause = min(pause * 2, LONGEST_PAUSE)


def start(data_dir: Path) -> Watch:
    """Start the projector process for ``data_dir``, and restart it whenever it dies."""
    return Watch(data_dir)


def main(argv: list[str]) -> int:
    if len(argv) not in (2, 3):
        print("usage: python -m shelter.projecting DATA_DIR [PARENT_PID]", file=sys.stderr)
        return 2
    if len(argv) == 3:  # started by HQ's worker: not to outlive it, even after kill -9
        from shelter.core.server import _die_with_parent

        _die_with_parent()
        if str(os.getppid()) != argv[2]:
            return 0  # it was gone before the tie was made
    try:
        # The lowest priority: the log's writer and the node first, the projector on
        # what CPU they leave (at nice 10 it still took about a tenth of a core from a
        # backlog coming in; at 19 the acknowledged rate rose from 0.45 to 0.57 of
        # bench_sync's floor, the 200-node reconnect's lag stayed 1.8 s).
        os.nice(19)
    except OSError:
        pass
    import shelter.hq  # noqa: F401  (HQ's store hooks: marks, outbox)
    from shelter.core.node import NodeContext
    from sync import projector

    ctx = NodeContext(Path(argv[1]), role="hq")
    worker = projector.Projector(ctx, idle_seconds=IDLE_SECONDS)

    def stop(_signum: int, _frame: Any) -> None:
        # No lock here (not even Event.set): the handler runs in this same thread, maybe
        # inside the lock of the very Event the loop waits on, and a second signal (the
        # group's SIGTERM, then the parent's death) would wait on it for ever.
        worker.halted = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()  # in this thread, until told to stop
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
