"""Hybrid logical clock (Kulkarni et al.): timestamps that follow the wall clock when it
behaves and stay strictly increasing when it does not (jumps back, restarts, skew).

A timestamp is (wall_ms, counter, node_id). It is stored as a fixed-width string whose
lexical order equals the timestamp order, so SQLite can sort and compare it directly.
The clock keeps no state of its own between calls: the caller passes the last timestamp it
persisted (the event store reads it inside the write transaction), which is what makes the
clock strictly increasing across restarts and across processes sharing one database.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

from shelter.core.errors import N_, InvalidInput

JST = timezone(timedelta(hours=9), "JST")  # Japan has no summer time


def today_jst() -> date:
    """Today in Japan, whatever zone the machine is set to (a laptop left on UTC is 9 hours
    behind at night: ages, infants' months and 'not in the future' checks go by this)."""
    return datetime.now(JST).date()


# Event types where the latest clock wins a field for good (staff corrections,
# shelter/domain/corrections.py): one stamped far ahead of HQ's clock would outrank every
# later one, so HQ refuses it (sync/apply.py), unless ``AHEAD_OK[type](db, payload)`` finds
# it safe (it makes enquiries tell nothing).
AHEAD_OK: dict[str, Callable[[Any, dict[str, Any]], bool]] = {}

COUNTER_LIMIT = 10**8 - 1  # eight digits in the encoding
# A remote timestamp further ahead of our wall clock than this is not trusted to move our clock.
DEFAULT_MAX_DRIFT_MS = 15 * 60 * 1000


class ClockDriftError(InvalidInput, ValueError):
    """A remote timestamp lies implausibly far in the future. ``str()``: by how much."""

    message = N_("A time sent from another device is too far in the future. Check that "
                 "device's clock.")

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


@dataclass(frozen=True, order=True)
class Timestamp:
    wall_ms: int
    counter: int
    node_id: str

    def encode(self) -> str:
        return f"{self.wall_ms:015d}.{self.counter:08d}.{self.node_id}"

    @classmethod
    def decode(cls, text: str) -> Timestamp:
        try:
            wall, counter, node = text.split(".", 2)
            if len(wall) != 15 or len(counter) != 8 or not node:
                raise ValueError
            return cls(int(wall), int(counter), node)
        except ValueError:
            raise ValueError(f"not an HLC timestamp: {text!r}") from None

    def __str__(self) -> str:
        return self.encode()


def system_ms() -> int:
    return time.time_ns() // 1_000_000


class HybridClock:
    """Makes the next timestamp for one node.

    ``now_ms`` is the wall clock in milliseconds; tests pass a fake one, a node can be given
    an offset (see ``offset_clock``) to simulate a wrong clock.
    """

    def __init__(self, node_id: str, now_ms: Callable[[], int] = system_ms,
                 max_drift_ms: int = DEFAULT_MAX_DRIFT_MS) -> None:
        if not node_id or "." in node_id:
            raise ValueError("node_id must be non-empty and contain no '.'")
        self.node_id = node_id
        self.now_ms = now_ms
        self.max_drift_ms = max_drift_ms

    def tick(self, last: Timestamp | None) -> Timestamp:
        """The timestamp for a local event, strictly after ``last``."""
        physical = self.now_ms()
        if last is None or physical > last.wall_ms:
            return Timestamp(physical, 0, self.node_id)
        return self._after(last.wall_ms, last.counter)

    def observe(self, last: Timestamp | None, remote: Timestamp) -> Timestamp:
        """The timestamp after receiving ``remote``: later than both it and ``last``.

        Raises ClockDriftError when ``remote`` is further ahead of our wall clock than
        ``max_drift_ms``: such a timestamp is flagged by the caller, never allowed to drag
        this clock into the future.
        """
        physical = self.now_ms()
        if remote.wall_ms - physical > self.max_drift_ms:
            raise ClockDriftError(
                f"remote timestamp {remote.wall_ms} is {remote.wall_ms - physical} ms ahead")
        own = last or Timestamp(0, 0, self.node_id)
        wall = max(physical, own.wall_ms, remote.wall_ms)
        if wall == physical and wall > own.wall_ms and wall > remote.wall_ms:
            return Timestamp(wall, 0, self.node_id)
        counter = max(c for w, c in ((own.wall_ms, own.counter), (remote.wall_ms, remote.counter))
                      if w == wall) if wall in (own.wall_ms, remote.wall_ms) else -1
        return self._after(wall, counter)

    def _after(self, wall_ms: int, counter: int) -> Timestamp:
        if counter + 1 > COUNTER_LIMIT:
            # The wall clock has stood still (or gone back) for a hundred million events:
            # borrow a millisecond rather than overflow the encoding.
            return Timestamp(wall_ms + 1, 0, self.node_id)
        return Timestamp(wall_ms, counter + 1, self.node_id)


def offset_clock(offset_seconds: float) -> Callable[[], int]:
    """A wall clock that is wrong by ``offset_seconds`` (for drills and tests)."""
    offset = int(offset_seconds * 1000)
    return lambda: system_ms() + offset
