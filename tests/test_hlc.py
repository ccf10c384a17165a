"""The hybrid logical clock, alone and inside the event store across restarts."""

from __future__ import annotations

from itertools import pairwise

import pytest

from shelter.core import db as dbmod
from shelter.core.clock import ClockDriftError, HybridClock, Timestamp
from shelter.core.events import EventStore

HOUR = 3600 * 1000
DAY = 24 * HOUR


class FakeWall:
    def __init__(self, ms: int) -> None:
        self.ms = ms

    def __call__(self) -> int:
        return self.ms


def test_follows_the_wall_clock_when_it_moves_forward():
    wall = FakeWall(1_700_000_000_000)
    clock = HybridClock("N1", wall)
    a = clock.tick(None)
    wall.ms += 5
    b = clock.tick(a)
    assert (a.wall_ms, a.counter) == (1_700_000_000_000, 0)
    assert (b.wall_ms, b.counter) == (1_700_000_000_005, 0)


def test_strictly_increasing_when_the_wall_clock_jumps_back_an_hour():
    wall = FakeWall(1_700_000_000_000)
    clock = HybridClock("N1", wall)
    stamps = [clock.tick(None)]
    wall.ms -= HOUR
    for _ in range(100):
        stamps.append(clock.tick(stamps[-1]))
        wall.ms += 1
    assert all(x < y for x, y in pairwise(stamps))
    assert all(x.encode() < y.encode() for x, y in pairwise(stamps))
    assert stamps[-1].wall_ms == stamps[0].wall_ms  # held, not dragged back


def test_keeps_working_after_the_wall_clock_jumps_forward_a_day_and_back():
    wall = FakeWall(1_700_000_000_000)
    clock = HybridClock("N1", wall)
    a = clock.tick(None)
    wall.ms += DAY
    b = clock.tick(a)
    wall.ms -= DAY  # someone fixes the clock
    c = clock.tick(b)
    d = clock.tick(c)
    assert a < b < c < d
    assert b.wall_ms == a.wall_ms + DAY and c.counter == 1 and d.counter == 2


def test_counter_overflow_borrows_a_millisecond():
    clock = HybridClock("N1", FakeWall(0))
    last = Timestamp(10, 99_999_999, "N1")
    nxt = clock.tick(last)
    assert nxt > last and nxt.wall_ms == 11 and nxt.counter == 0


def test_observe_moves_past_remote_and_refuses_far_future():
    wall = FakeWall(1_000_000)
    clock = HybridClock("N1", wall, max_drift_ms=60_000)
    own = clock.tick(None)
    remote = Timestamp(1_030_000, 7, "N2")
    after = clock.observe(own, remote)
    assert after > remote and after > own
    with pytest.raises(ClockDriftError):
        clock.observe(after, Timestamp(wall.ms + DAY, 0, "N2"))


def test_encoding_round_trips_and_sorts_like_timestamps():
    stamps = [Timestamp(5, 2, "A"), Timestamp(5, 10, "A"), Timestamp(40, 0, "A"),
              Timestamp(1_700_000_000_000, 0, "B")]
    assert [Timestamp.decode(s.encode()) for s in stamps] == stamps
    assert sorted(s.encode() for s in stamps) == [s.encode() for s in sorted(stamps)]
    with pytest.raises(ValueError):
        Timestamp.decode("yesterday")


def test_event_store_hlc_strictly_increases_across_restarts_with_clock_jumps(tmp_path):
    path = tmp_path / "node.db"
    wall = FakeWall(1_700_000_000_000)
    seen: list[str] = []
    for offset in (0, -HOUR, +DAY, -DAY, 0):  # each "restart" opens a fresh connection
        wall.ms += offset
        store = EventStore(dbmod.connect(path), "N1", HybridClock("N1", wall))
        for _ in range(3):
            event, _ = store.append("settings_changed", {"wifi_name": f"w{len(seen)}"})
            seen.append(event.hlc)
        store.db.conn.close()
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    db = dbmod.connect(path)
    seqs = [r[0] for r in db.execute("SELECT seq FROM events ORDER BY hlc")]
    assert seqs == list(range(1, len(seen) + 1))
