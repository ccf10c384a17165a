"""Crash drills: SHELTER_SYNC_CRASH_AT=<point>[:<marker file>] makes the process kill
itself (SIGKILL, no clean-up) when it reaches that point, once (the marker file records it).
Used by the tests to prove that a crash at the worst moment loses and doubles nothing.

Points: ``after_send`` (node: a batch is on the wire, its ack not read), ``before_ack_saved``
(node: the ack is read, not yet stored), ``hq_mid_apply`` (HQ's projector: half a run of
the log applied, not committed).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

VARIABLE = "SHELTER_SYNC_CRASH_AT"


def crash_point(name: str) -> None:
    spec = os.environ.get(VARIABLE)
    if not spec:
        return
    point, _, marker = spec.partition(":")
    if point != name:
        return
    if marker:
        path = Path(marker)
        if path.exists():
            return
        path.write_text(name)
    os.kill(os.getpid(), signal.SIGKILL)
