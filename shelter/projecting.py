"""HQ's projector as a process of its own: ``python -m shelter.projecting DATA_DIR``.

HQ's server (``shelter hq``) starts it beside its worker: the log and the projector then run
on two cores instead of taking turns on one (a Python process runs one thread at a time),
and it runs at a lower priority, so that taking in batches comes first and counting after.
It dies with the worker that started it, and a new worker starts a new one; only one
projects a data directory at a time (sync/projector.py, ``holding``). Servers made in a
test, and any other, run the projector as a thread instead.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

IDLE_SECONDS = 0.1  # how often it looks when idle (no wake-up crosses processes)


def start(data_dir: Path) -> subprocess.Popen[bytes]:
    """Start the projector process for ``data_dir`` (from HQ's worker)."""
    from shelter.core.server import _die_with_parent

    return subprocess.Popen([sys.executable, "-m", "shelter.projecting", str(data_dir)],  # noqa: S603
                            preexec_fn=_die_with_parent)  # noqa: PLW1509 (at start-up)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m shelter.projecting DATA_DIR", file=sys.stderr)
        return 2
    try:
        os.nice(10)  # the log's writer first, on a busy machine
    except OSError:
        pass
    import shelter.hq  # noqa: F401  (HQ's store hooks: marks, outbox)
    from shelter.core.node import NodeContext
    from sync import projector

    ctx = NodeContext(Path(argv[1]), role="hq")
    worker = projector.Projector(ctx, idle_seconds=IDLE_SECONDS)

    def stop(_signum: int, _frame: Any) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.run()  # in this thread, until told to stop
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
