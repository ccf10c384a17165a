"""The event store: append and projection in one transaction, immutability, concurrency."""

from __future__ import annotations

import sqlite3
import threading

import pytest

from shelter.core import db as dbmod
from shelter.core.authority import RULES, Rule
from shelter.core.clock import HybridClock
from shelter.core.events import EventStore, UnknownEventType, projection

RULES["test_explodes"] = Rule("node", "sender")  # a node's own, about itself


@projection("test_explodes")
def _explodes(db, event):
    db.table("settings").upsert({"key": "half", "value": "written"}, pk="key")
    raise RuntimeError("projection failed half-way")


def store_at(path) -> EventStore:
    return EventStore(dbmod.connect(path), "N1", HybridClock("N1"))


def test_wal_and_full_sync(tmp_path):
    db = dbmod.connect(tmp_path / "n.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_failed_projection_leaves_neither_event_nor_state(tmp_path):
    store = store_at(tmp_path / "n.db")
    with pytest.raises(RuntimeError):
        store.append("test_explodes", {})
    assert store.db.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    assert store.db.execute("SELECT count(*) FROM settings").fetchone()[0] == 0
    event, _ = store.append("settings_changed", {"wifi_name": "x"})
    assert event.seq == 1  # the failed attempt used no sequence number


def test_unknown_event_type_is_refused(tmp_path):
    store = store_at(tmp_path / "n.db")
    with pytest.raises(UnknownEventType):
        store.append("no_such_thing", {})


def test_events_cannot_be_changed_or_deleted(tmp_path):
    store = store_at(tmp_path / "n.db")
    store.append("settings_changed", {"wifi_name": "x"})
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        store.db.execute("UPDATE events SET payload = '{}'")
    with pytest.raises(sqlite3.IntegrityError, match="immutable"):
        store.db.execute("DELETE FROM events")


def test_concurrent_writers_get_gapless_sequence_and_ordered_clock(tmp_path):
    path = tmp_path / "n.db"
    store_at(path)  # migrate once
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        try:
            store = EventStore(dbmod.connect(path, migrate=False), "N1", HybridClock("N1"))
            for i in range(40):
                store.append("settings_changed", {"wifi_name": f"{n}-{i}"})
        except BaseException as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors
    rows = store_at(path).db.execute("SELECT seq, hlc FROM events ORDER BY seq").fetchall()
    assert [r[0] for r in rows] == list(range(1, 321))
    hlcs = [r[1] for r in rows]
    assert hlcs == sorted(hlcs) and len(set(hlcs)) == 320


def test_ids_are_ulids(tmp_path):
    store = store_at(tmp_path / "n.db")
    event, _ = store.append("settings_changed", {"wifi_name": "x"})
    assert len(event.event_id) == 26 and event.event_id.isalnum()


def test_a_failed_nested_write_undoes_only_itself(tmp_path):
    store = store_at(tmp_path / "n.db")
    with store.write():
        store.append("settings_changed", {"wifi_name": "kept"})
        with pytest.raises(RuntimeError):
            store.append("test_explodes", {})
    assert store.db.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    assert store.db.execute("SELECT value FROM settings").fetchall() == [("kept",)]
