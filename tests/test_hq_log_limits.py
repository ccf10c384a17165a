"""What a sender may leave in HQ's log (sync/log.py): its own sequence, and, up to
``UNPLACED_PER_ORIGIN`` rows, what HQ cannot take (kept for an operator to see). Past that,
a stolen credential's junk is answered with its reason, counted and shown, not stored."""

from __future__ import annotations

import sqlite3
import time

from shelter.app import create_app
from shelter.core.node import NodeContext
from shelter.domain import accounts
from sync import log as hq_log
from sync import projector

from .test_hq_log import SHELTER, own_events, people_at_hq, register


def test_a_node_may_not_fill_hqs_log_with_what_hq_cannot_take(tmp_path, monkeypatch):
    monkeypatch.setattr(hq_log, "UNPLACED_PER_ORIGIN", 3)
    app = create_app(tmp_path / "hq", role="hq")
    hq = app.extensions["shelter"]
    headers = {"Authorization": f"Bearer {accounts.create_token(hq.store, 'operator')}"}
    node = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    register(node)
    register(node, "次郎")
    events = own_events(node)
    conn = hq_log.of(hq.data_dir)

    def push(batch: list) -> hq_log.Logged:
        return hq_log.ingest(conn, node.node_id, SHELTER, batch, int(time.time() * 1000))

    foreign = {**events[0], "node_id": "NOTHERNODE",
               "hlc": events[0]["hlc"][:25] + "NOTHERNODE"}
    out_of_turn = {"seq": 999, "what": "junk"}
    first = push([foreign, foreign, out_of_turn])
    assert hq_log.head(conn) == 3 and first.acked_seq == 0  # kept, for HQ to show
    assert all(hq_log.UNKEPT not in q["reason"] for q in first.quarantined)
    # Past the limit: answered with its reason, not stored; its own events behind it are.
    second = push([foreign, *events])
    assert second.acked_seq == len(events) and second.stored == len(events)
    assert second.quarantined[-1]["reason"] == f"{hq_log.NOT_ITS_OWN} ({hq_log.UNKEPT})"
    changed = {**events[0], "payload": {**events[0]["payload"], "address": "別の住所"}}
    third = push([changed])  # a different event at a place taken: not kept either
    assert [q["reason"] for q in third.quarantined] == [hq_log.UNKEPT]
    assert hq_log.head(conn) == 3 + len(events)
    # Its sequence is not capped: an event of the wrong shape still takes the next place.
    broken = {**events[-1], "seq": len(events) + 1, "hlc": "not a clock"}
    assert push([broken]).acked_seq == len(events) + 1
    assert hq_log.head(conn) == 4 + len(events)
    assert [(u["node_id"], u["unkept"]) for u in hq_log.unkept(conn)] == [(node.node_id, 2)]
    # An operator sees it, where refusals are shown, in both languages.
    client = app.test_client()
    for path, heading in (("/hq/sync?lang=en", "Events HQ did not keep"),
                          ("/hq?lang=ja", "本部が保存しなかったイベント")):
        page = client.get(path, headers=headers).get_data(as_text=True)
        assert heading in page and f'data-node="{node.node_id}"' in page, path
    assert "not kept: 2" in client.get("/hq/sync?lang=en", headers=headers).get_data(
        as_text=True)
    projector.project_all(hq)
    assert people_at_hq(hq) == 2
    hq_log.forget_connections()


def test_a_log_from_before_the_limit_gains_its_counts(tmp_path):
    path = tmp_path / "log.db"
    old = sqlite3.connect(path)
    old.execute("CREATE TABLE log_origins (origin TEXT PRIMARY KEY, shelter_id TEXT NOT "
                "NULL, logged_seq INTEGER NOT NULL DEFAULT 0)")
    old.execute("INSERT INTO log_origins VALUES ('NODE000001', ?, 7)", [SHELTER])
    old.commit()
    old.close()
    conn = hq_log.connect(tmp_path)
    row = conn.execute("SELECT logged_seq, unplaced, unkept, unkept_ms FROM log_origins"
                       ).fetchone()
    assert row == (7, 0, 0, None)
    logged = hq_log.ingest(conn, "NODE000001", SHELTER, [{"seq": 3}], 1)
    assert logged.acked_seq == 7 and hq_log.head(conn) == 1
    assert conn.execute("SELECT unplaced FROM log_origins").fetchone() == (1,)
    conn.close()


def test_a_resend_is_judged_against_what_took_its_place_not_junk_at_that_number(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ")
    node = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    register(node)
    events = own_events(node)
    conn = hq_log.of(hq.data_dir)
    foreign = {**events[0], "node_id": "NOTHERNODE", "event_id": "0" * 26,
               "hlc": events[0]["hlc"][:25] + "NOTHERNODE"}  # carries seq 1 too
    huge = {"seq": 2**70, "what": "a number SQLite cannot hold"}
    first = hq_log.ingest(conn, node.node_id, SHELTER, [foreign, huge, *events], 1)
    assert first.acked_seq == len(events) and first.stored == len(events)
    assert [q["seq"] for q in first.quarantined] == [1, None]
    again = hq_log.ingest(conn, node.node_id, SHELTER, events, 2)
    assert again.duplicates == len(events) and not again.quarantined
    assert conn.execute("SELECT unplaced FROM log_origins").fetchone() == (2,)
    # The projector sets both aside, with their reasons, and goes on.
    projector.project_all(hq)
    assert people_at_hq(hq) == 1
    kept = [r[0] for r in hq.db.execute("SELECT seq FROM sync_quarantine ORDER BY 1")]
    assert kept == [None, 1]
    hq_log.forget_connections()
