"""HQ stores first and projects after (sync/log.py, sync/projector.py, sync/hq_rebuild.py):
an acknowledgement means the batch is in HQ's log; the projector applies it after, never
holding ingestion up; a projection that fails is quarantined and the projector goes on; and
`shelter hq rebuild` makes the read models again from the log, HQ's own steps in place."""

from __future__ import annotations

import stat
import threading
import time

import pytest

from shelter.app import create_app
from shelter.core import events as core_events
from shelter.core import meta
from shelter.core.node import NodeContext
from shelter.domain import accounts, households, presence, supply_requests
from shelter.domain.day_notes import add_note
from sync import hq_rebuild, projector, protocol
from sync import log as hq_log

from .conftest import VALID_HOUSEHOLD, run_cli, wait_until

SHELTER = "E2710000007777"


def own_events(node: NodeContext) -> list[dict]:
    return [protocol.for_wire(r) for r in node.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [node.node_id])]


@pytest.fixture()
def pair(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ")
    node = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    yield hq, node
    hq_log.forget_connections()


def register(node: NodeContext, name: str = "太郎") -> dict:
    household = {**VALID_HOUSEHOLD, "members": [{**VALID_HOUSEHOLD["members"][0],
                                                 "given_name": name}]}
    return households.register_household(node.store, node.identity, household)


def push(hq: NodeContext, node: NodeContext, events: list[dict] | None = None,
         received_ms: int | None = None) -> hq_log.Logged:
    batch = own_events(node) if events is None else events
    stored = hq_log.logged_seq(hq_log.of(hq.data_dir), node.node_id)
    return hq_log.ingest(hq_log.of(hq.data_dir), node.node_id, SHELTER,
                         [e for e in batch if e["seq"] > stored] if events is None else batch,
                         received_ms or int(time.time() * 1000))


def people_at_hq(hq: NodeContext) -> int:
    return hq.db.execute("SELECT count(*) FROM persons").fetchone()[0]


def test_an_ack_means_stored_and_the_figures_follow_after(pair):
    hq, node = pair
    register(node)
    logged = push(hq, node)
    assert logged.acked_seq == len(own_events(node)) and logged.stored == logged.acked_seq
    # Stored (and durable: another connection reads it), not yet counted.
    again = hq_log.connect(hq.data_dir)
    assert hq_log.logged_seq(again, node.node_id) == logged.acked_seq
    again.close()
    assert people_at_hq(hq) == 0
    lagging = projector.status(hq)
    assert lagging["lag_events"] == logged.stored and lagging["projected_through"] is None
    assert projector.project_all(hq) == logged.stored
    assert people_at_hq(hq) == 1
    caught_up = projector.status(hq)
    assert caught_up["lag_events"] == 0 and caught_up["lag_seconds"] == 0.0
    assert caught_up["projected_through"] is not None
    # A resend of what is stored is a duplicate: not stored again, nothing to project.
    resent = hq_log.ingest(hq_log.of(hq.data_dir), node.node_id, SHELTER, own_events(node),
                           int(time.time() * 1000))
    assert resent.duplicates == len(own_events(node)) and resent.stored == 0
    assert hq_log.head(hq_log.of(hq.data_dir)) == logged.stored


def test_the_log_checks_what_needs_no_state_and_leaves_the_rest_to_the_projector(pair):
    hq, node = pair
    register(node)
    register(node, "次郎")
    events = own_events(node)
    # A gap: the batch stops and asks for what is missing; nothing after it is stored.
    gap = push(hq, node, events[1:])
    assert gap.need_from == 1 and gap.stored == 0 and gap.acked_seq == 0
    # A wrong shape takes its place; another node's event is not this one's to send.
    broken = {**events[0], "hlc": "not a clock"}
    foreign = {**events[1], "node_id": "NOTHERNODE",
               "hlc": events[1]["hlc"][:25] + "NOTHERNODE"}
    logged = push(hq, node, [broken, foreign, *events[1:]])
    assert logged.acked_seq == len(events)
    reasons = [q["reason"] for q in logged.quarantined]
    assert reasons[0] == "hlc cannot be read" and hq_log.NOT_ITS_OWN in reasons
    projector.project_all(hq)
    # The projector judged them too, and keeps them with their reasons for HQ's operator.
    kept = [r[0] for r in hq.db.execute("SELECT reason FROM sync_quarantine "
                                        "ORDER BY quarantine_id")]
    assert "hlc cannot be read" in kept
    assert any("own events" in r for r in kept)
    assert people_at_hq(hq) == 1  # the second household; the first was broken


def test_the_log_takes_batches_while_the_projector_holds_the_read_models(pair):
    hq, node = pair
    register(node)
    entered, release = threading.Event(), threading.Event()

    def hold() -> None:
        with hq.applying():  # the projector's write transaction, as long as it lasts
            entered.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert entered.wait(10)
        logged = push(hq, node)  # another file, another writer: not held up
        assert logged.stored == len(own_events(node))
    finally:
        release.set()
        holder.join()
    assert projector.project_all(hq) == logged.stored


def test_a_failing_projection_is_quarantined_the_projector_goes_on_and_a_rebuild_recovers(
        pair, monkeypatch):
    hq, node = pair
    register(node)
    add_note(node.store, SHELTER, "給水車は15時", "m")
    register(node, "次郎")
    real = core_events.PROJECTIONS["day_note_added"]

    def broken(db, event):  # a projection bug, shipped
        raise ZeroDivisionError

    monkeypatch.setitem(core_events.PROJECTIONS, "day_note_added", broken)
    push(hq, node)
    projector.project_all(hq)
    reason = hq.db.execute("SELECT reason FROM sync_quarantine").fetchall()
    assert reason == [("could not be applied (ZeroDivisionError)",)]
    assert people_at_hq(hq) == 2  # the events behind it were applied
    assert projector.status(hq)["lag_events"] == 0
    # Rebuilt with the bug still there: the same entry, as HQ first saw it.
    seen = hq.db.execute("SELECT * FROM sync_quarantine").fetchall()
    hq_rebuild.rebuild(hq)
    assert hq.db.execute("SELECT * FROM sync_quarantine").fetchall() == seen
    # The bug fixed, the rebuild replays the log: the note is there, the quarantine gone.
    monkeypatch.setitem(core_events.PROJECTIONS, "day_note_added", real)
    figures = hq_rebuild.rebuild(hq)
    assert figures["log_rows"] == hq_log.head(hq_log.of(hq.data_dir))
    assert hq.db.execute("SELECT text FROM day_notes").fetchall() == [("給水車は15時",)]
    assert hq.db.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0] == 0
    assert people_at_hq(hq) == 2


def test_a_rebuild_while_batches_arrive_keeps_every_one_and_hqs_own_steps(pair):
    hq, node = pair
    for name in ("太郎", "次郎", "三郎"):
        register(node, name)
    request = supply_requests.request_supplies(
        node.store, SHELTER, {"lines": [{"item_id": "water", "quantity": 10}]}, "m")
    push(hq, node)
    projector.project_all(hq)
    supply_requests.acknowledge(hq.store, request, "明日届けます")  # HQ's own step
    card = register(node, "四郎")["members"][0]["code"]
    presence.scan(node.store, SHELTER, node.card_keys(), card, "check_in")
    stop = threading.Event()

    def arriving() -> None:  # a node's batches, one event at a time, all along
        while not stop.is_set():
            stored = hq_log.logged_seq(hq_log.of(hq.data_dir), node.node_id)
            rest = [e for e in own_events(node) if e["seq"] > stored]
            if rest:
                push(hq, node, rest[:1])
            projector.project_pending(hq)
            time.sleep(0.001)

    feeder = threading.Thread(target=arriving)
    feeder.start()
    try:
        hq_rebuild.rebuild(hq)
    finally:
        stop.set()
        feeder.join()
    projector.project_all(hq)
    assert hq_log.logged_seq(hq_log.of(hq.data_dir), node.node_id) == len(own_events(node))
    assert people_at_hq(hq) == 4
    assert hq.db.execute("SELECT status FROM supply_requests").fetchall() == [
        ("acknowledged",)]
    assert hq.db.execute("SELECT count(*) FROM presence WHERE status = 'present'"
                         ).fetchone()[0] == 1


def test_a_rebuild_goes_no_further_than_the_live_projector_until_it_switches(
        pair, monkeypatch):
    """HQ's own steps are placed where the live projector stands when HQ takes them; a
    replay ahead of it would apply the next one behind rows it came after."""
    hq, node = pair
    register(node)
    push(hq, node)
    projector.project_all(hq)
    through = projector.position(hq.db)
    register(node, "次郎")
    register(node, "三郎")
    push(hq, node)  # stored, not yet projected
    copy = hq_rebuild._copy_of(hq, hq.data_dir / "probe.db")
    try:
        replay = hq_rebuild.Replay(hq_rebuild._store_on(copy, hq), hq)
        while replay.step():
            pass
        assert replay.position == through < hq_log.head(hq_log.of(hq.data_dir))
    finally:
        copy.conn.close()
    # With the live projector behind (down, say), the rebuild projects it along first, so
    # that the switch, which holds HQ's writers, has little left to do.
    monkeypatch.setattr(hq_rebuild, "ROWS_PER_STEP", 1)
    said: list[str] = []
    hq_rebuild.rebuild(hq, say=said.append)
    head = hq_log.head(hq_log.of(hq.data_dir))
    assert f"replayed through log position {head} of {head}" in said
    assert people_at_hq(hq) == 3


def test_an_hq_from_before_the_log_adopts_its_events_and_rebuilds_the_same(pair):
    from sync.apply import apply_batch

    hq, node = pair
    register(node)
    apply_batch(hq.store, node.node_id, SHELTER, own_events(node))  # as HQ did before
    request = supply_requests.request_supplies(
        node.store, SHELTER, {"lines": [{"item_id": "water", "quantity": 5}]}, "m")
    apply_batch(hq.store, node.node_id, SHELTER, [e for e in own_events(node)
                                                   if e["payload"].get("request_id")])
    supply_requests.acknowledge(hq.store, request)
    assert projector.adopt_existing(hq) == len(own_events(node))
    assert projector.adopt_existing(hq) == 0  # once
    log_conn = hq_log.of(hq.data_dir)
    assert hq_log.logged_seq(log_conn, node.node_id) == len(own_events(node))
    hq_rebuild.rebuild(hq)
    assert people_at_hq(hq) == 1
    assert hq.db.execute("SELECT status FROM supply_requests").fetchall() == [
        ("acknowledged",)]


def test_adopting_keeps_each_place_a_node_used_so_its_next_batch_still_applies(pair):
    """A node-local event (a user added at the shelter) uses a place in the node's
    sequence that HQ never stored as an event; adopting must still log that place."""
    from sync.apply import apply_batch

    hq, node = pair
    accounts.add_user(node.store, "desk", "a long desk password 7", "volunteer")
    register(node)
    apply_batch(hq.store, node.node_id, SHELTER, own_events(node))  # as HQ did before
    places = len(own_events(node))
    assert protocol.STUB_TYPE == own_events(node)[0]["type"]
    assert projector.adopt_existing(hq) == places
    assert hq_log.logged_seq(hq_log.of(hq.data_dir), node.node_id) == places
    hq_rebuild.rebuild(hq)
    assert people_at_hq(hq) == 1
    register(node, "次郎")
    assert push(hq, node).stored > 0
    projector.project_all(hq)
    assert people_at_hq(hq) == 2
    assert hq.db.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0] == 0


def test_adopting_puts_no_other_nodes_event_in_a_senders_place(pair):
    """A thief's batch held another node's event naming a place the sender used for a
    node-local event: quarantined (not its own), and it must not take that place."""
    from sync.apply import apply_batch

    hq, node = pair
    other = NodeContext(hq.data_dir.parent / "other", shelter_id=SHELTER)
    register(other)
    accounts.add_user(node.store, "desk", "a long desk password 7", "volunteer")  # place 1
    register(node)
    foreign = own_events(other)[0]
    assert foreign["seq"] == 1
    true_seq = {**own_events(node)[1], "seq": True}  # kept at place 1 too (True == 1)
    before = apply_batch(hq.store, node.node_id, SHELTER,
                         [foreign, true_seq, *own_events(node)])
    assert len(before.quarantined) == 2  # as HQ did before the log
    projector.adopt_existing(hq)
    hq_rebuild.rebuild(hq)
    register(node, "次郎")
    push(hq, node)
    projector.project_all(hq)
    assert people_at_hq(hq) == 2  # nothing of the node's set aside as a gap
    other.db.conn.close()


def test_a_log_copied_earlier_than_the_read_models_is_fenced_past_them(pair):
    hq, node = pair
    register(node)
    push(hq, node)
    projector.project_all(hq)
    through = projector.position(hq.db)
    # The standby's copy of the log is older than its read models: a fresh, empty one.
    hq_log.forget_connections()
    for made in hq.data_dir.glob("log.db*"):
        made.unlink()
    assert projector.adopt_existing(hq) == 0
    log_conn = hq_log.of(hq.data_dir)
    assert hq_log.logged_seq(log_conn, node.node_id) == 0  # the node re-sends it all
    with pytest.raises(hq_rebuild.NotCovered, match="would lose the rest"):
        hq_rebuild.rebuild(hq)  # from a log that lacks what the figures count
    assert people_at_hq(hq) == 1  # untouched
    again = push(hq, node)
    assert min(again.log_ids) == through + 1  # never a position already projected
    projector.project_all(hq)
    assert people_at_hq(hq) == 1  # once
    hq_rebuild.rebuild(hq)  # the log covers it again
    assert people_at_hq(hq) == 1


def test_the_log_is_owner_only_and_refuses_change(pair):
    hq, node = pair
    register(node)
    push(hq, node)
    mode = stat.S_IMODE((hq.data_dir / "log.db").stat().st_mode)
    assert mode == 0o600
    conn = hq_log.of(hq.data_dir)
    with pytest.raises(Exception, match="never changed"):
        conn.execute("DELETE FROM log")
    with pytest.raises(Exception, match="never changed"):
        conn.execute("UPDATE log SET event = '{}'")


def test_the_summary_says_how_far_the_figures_are(tmp_path):
    app = create_app(tmp_path / "hq", role="hq")
    hq = app.extensions["shelter"]
    token = accounts.create_token(hq.store, "operator")
    node = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    register(node)
    client = app.test_client()
    headers = {"Authorization": f"Bearer {token}"}
    with projector.holding(hq.data_dir):  # the server's projector waits
        logged = push(hq, node)
        held = client.get("/api/v1/summary", headers=headers).get_json()
        assert held["projection_lag_events"] == logged.stored
        assert held["projected_through"] is None
        page = client.get("/hq/sync?lang=en", headers=headers).get_data(as_text=True)
        assert f"{logged.stored} more events are stored and waiting" in page
    projector.wake(hq.data_dir)
    after = wait_until(lambda: (s := client.get("/api/v1/summary", headers=headers)
                                .get_json())["projection_lag_events"] == 0 and s,
                       timeout=30, what="the server's projector catches up")
    assert after["projected_through"] is not None and after["projection_lag_seconds"] == 0
    hq_log.forget_connections()


def test_shelter_hq_rebuild_on_the_command_line(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ")
    node = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    register(node)
    push(hq, node)
    hq_log.forget_connections()
    done = run_cli("hq", "rebuild", "--data", str(hq.data_dir))
    assert "rebuilt HQ's read models" in done.stdout, done.stdout + done.stderr
    assert people_at_hq(hq) == 1
    assert meta.get(hq.db, projector.POSITION) == str(len(own_events(node)))
    assert not list(hq.data_dir.glob("rebuild.db*"))
    # A mistyped directory: refused, and no new, empty HQ made there and "rebuilt".
    wrong = run_cli("hq", "rebuild", "--data", str(tmp_path / "hq-typo"), check=False)
    assert wrong.returncode == 1 and "holds no HQ" in wrong.stderr
    assert not (tmp_path / "hq-typo").exists()


def test_a_row_that_breaks_the_rules_themselves_is_set_aside_alone(pair, monkeypatch):
    import sync.apply

    hq, node = pair
    register(node)
    add_note(node.store, SHELTER, "この行でだけ落ちる", "m")
    register(node, "次郎")
    real = sync.apply.refusal

    def breaks_on_the_note(db, sender, kind, payload, *rest):  # a bug outside projections
        if kind == "day_note_added":
            raise RuntimeError("a bug in the rules")
        return real(db, sender, kind, payload, *rest)

    monkeypatch.setattr(sync.apply, "refusal", breaks_on_the_note)
    push(hq, node)
    projector.project_all(hq)
    assert people_at_hq(hq) == 2  # its neighbours in the same run were applied
    assert hq.db.execute("SELECT reason FROM sync_quarantine").fetchall() == [
        ("could not be projected (RuntimeError)",)]
    assert projector.status(hq)["lag_events"] == 0


def test_a_rebuilding_nodes_first_page_waits_for_the_projector_and_says_busy_if_it_lags(
        pair, monkeypatch):
    from shelter.web.hq import sync_socket

    monkeypatch.setattr(sync_socket, "HISTORY_WAIT_SECONDS", 0.2)
    hq, node = pair
    asked = {"type": "history", "part": 1, "after": 0, "limit": 10}
    # Only a replacing node's session waits at all; any other hears "forbidden" at once.
    register(node)
    push(hq, node)  # stored, no projector running
    head = hq_log.head(hq_log.of(hq.data_dir))
    assert not projector.caught_up(hq, head, 0.2)

    def answer() -> dict:
        answered = sync_socket._not_ready(hq, asked, [node.node_id]) \
            or sync_socket._answer(hq, asked, node.node_id, SHELTER, [node.node_id], {})
        return protocol.decode(answered)

    assert answer()["code"] == "forbidden"
    monkeypatch.setattr(sync_socket.enrollment, "may_rebuild", lambda db, origins: True)
    assert answer()["code"] == "busy"  # transient: the node asks again
    projector.project_all(hq)
    assert projector.caught_up(hq, head, 0.2)
    assert answer()["type"] == "history_page"


def test_the_switch_counts_alike_entries_and_keeps_the_first_seen(tmp_path):
    """Two alike entries rebuilt against one live: the live one kept (its id, its time),
    one added; a live entry the rebuild does not make again is gone."""
    import sqlite3

    conn = sqlite3.connect(str(tmp_path / "main.db"))
    conn.execute("ATTACH DATABASE ? AS live", [str(tmp_path / "live.db")])
    for schema in ("main", "live"):
        conn.execute(f"CREATE TABLE {schema}.q (quarantine_id INTEGER PRIMARY KEY "
                     "AUTOINCREMENT, node_id TEXT, seq INTEGER, event_id TEXT, reason TEXT, "
                     "at TEXT)")
    conn.executemany("INSERT INTO main.q (node_id, seq, event_id, reason, at) VALUES "
                     "(?, ?, ?, ?, 'now')", [("n", None, None, "bad")] * 2 + [("n", 3, "e", "x")])
    conn.executemany("INSERT INTO live.q (quarantine_id, node_id, seq, event_id, reason, at) "
                     "VALUES (?, ?, ?, ?, ?, 'then')",
                     [(7, "n", None, None, "bad"), (8, "n", 2, "gone", "fixed")])
    hq_rebuild._merge(conn, "q", "quarantine_id", ("node_id", "seq", "event_id", "reason"))
    assert conn.execute("SELECT quarantine_id, seq, reason, at FROM live.q ORDER BY 1"
                        ).fetchall() == [(7, None, "bad", "then"), (9, None, "bad", "now"),
                                         (10, 3, "x", "now")]
    conn.close()


def test_the_projector_process_stops_on_signals_that_come_together(tmp_path):
    """``shelter hq`` stopping sends its group SIGTERM, and the worker's death sends the
    projector another: a handler that took a lock once deadlocked on the second."""
    import signal
    import subprocess
    import sys

    NodeContext(tmp_path / "hq", role="hq").db.conn.close()
    process = subprocess.Popen([sys.executable, "-m", "shelter.projecting",
                                str(tmp_path / "hq")])
    try:
        wait_until(lambda: (tmp_path / "hq" / "log.db").exists(), timeout=30,
                   what="the projector's first round")
        for _ in range(300):  # some arrive while the handler runs
            process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    hq_log.forget_connections()


def test_a_batch_as_nodes_write_it_is_logged_as_it_came(pair):
    """HQ keeps each event's text as the node sent it (it used to write every one out
    again); a batch written any other way is decoded the usual way and written out."""
    import json
    import zlib

    hq, node = pair
    register(node)
    register(node, "次郎")
    rows = list(node.db.query("SELECT * FROM events WHERE node_id = ? ORDER BY seq",
                              [node.node_id]))
    sent = [protocol.wire_text(r) for r in rows]
    frame = protocol.encode_batch(3, sent, node.node_id)
    message, texts = protocol.decode_with_texts(frame)
    assert texts == sent and message == protocol.decode(frame)
    logged = hq_log.ingest_batches(hq_log.of(hq.data_dir), SHELTER,
                                   [(node.node_id, message["events"])], 1, [texts])[0]
    assert logged.stored == len(sent)
    kept = [r[0] for r in hq_log.of(hq.data_dir).execute("SELECT event FROM log ORDER BY 1")]
    assert kept == sent
    # The same events sent again with their fields in another order, spaced out: one
    # JSON, the same events, so duplicates, not stored again.
    other = json.dumps({"events": [json.loads(t) for t in reversed(sent)], "batch": 4,
                        "type": "events"}, indent=1, sort_keys=True).encode()
    message, texts = protocol.decode_with_texts(zlib.compress(other))
    assert texts is None and message["batch"] == 4
    again = hq_log.ingest_batches(hq_log.of(hq.data_dir), SHELTER,
                                  [(node.node_id, message["events"][::-1])], 2, [texts])[0]
    assert again.duplicates == len(sent) and again.stored == 0
    assert hq_log.head(hq_log.of(hq.data_dir)) == len(sent)
    # A different event in a taken place is not a duplicate, whichever way it is written.
    changed = [t.replace("次郎", "三郎") for t in sent]
    frame = protocol.encode_batch(5, changed, node.node_id)
    message, texts = protocol.decode_with_texts(frame)
    assert texts == changed
    third = hq_log.ingest_batches(hq_log.of(hq.data_dir), SHELTER,
                                  [(node.node_id, message["events"])], 3, [texts])[0]
    assert third.duplicates == len(sent) - sum("三郎" in t for t in changed) < len(sent)
    assert projector.project_all(hq) >= 1
    assert hq.db.execute("SELECT count(*) FROM sync_conflicts").fetchone()[0] >= 1


@pytest.mark.parametrize("body", [
    b'{"type":"events","batch":1,"events":[{"a":1},]}',  # not JSON
    b'{"type":"events","batch":1,"events":[1]} ',  # spaced: the usual way
    b'{"type":"events","batch":1,"events":[1],"events":[2]}',  # the last one counts
    b'{"type":"events","batch":01,"events":[]}',
    b'{"type":"events","batch":1,"events":[1e999999]}',
    b'{"type":"events","batch":1,"origin":"\\u0041","events":[]}',
    b'{"type":"events","batch":1,"origin":"\\ud800","events":[]}',
    b'{"type":"events","batch":99999999999999999999,"events":[]}',
    b'{"type":"events","batch":1,"events":[' + b"[" * 100000 + b"]" * 100000 + b"]}",
    b'{"type":"events","batch":1,"events":[' + b",".join([b"{}"] * 501) + b"]}",
])
def test_a_batch_split_as_it_came_says_what_the_usual_way_says(body):
    """Whatever the bytes, the fast way to a batch's texts gives the same message, or the
    same refusal, as decoding it whole."""
    import zlib

    frame = zlib.compress(body)
    try:
        expected: object = protocol.decode(frame)
    except protocol.ProtocolError as refused:
        expected = (refused.code, str(refused))
    try:
        message, texts = protocol.decode_with_texts(frame)
        got: object = message
        if texts is not None:
            assert len(texts) == len(message["events"])
    except protocol.ProtocolError as refused:
        got = (refused.code, str(refused))
    assert got == expected


def test_an_event_refused_for_its_shape_is_logged_as_hq_writes_it(pair):
    """Only a well-formed event is kept as it came (so every kept text reads back); one
    nested past MAX_DEPTH is kept as HQ writes it, and a different event sent at its place
    later is judged, not a crash of the whole group of batches."""
    hq, node = pair
    register(node)
    row = next(node.db.query("SELECT * FROM events WHERE node_id = ? ORDER BY seq LIMIT 1",
                             [node.node_id]))
    deep = "[" * (protocol.MAX_DEPTH + 5) + "]" * (protocol.MAX_DEPTH + 5)
    sent = protocol.wire_text({**row, "payload": '{"x": ' + deep + "}"})
    message, texts = protocol.decode_with_texts(protocol.encode_batch(1, [sent], node.node_id))
    assert texts == [sent]
    logged = hq_log.ingest_batches(hq_log.of(hq.data_dir), SHELTER,
                                   [(node.node_id, message["events"])], 1, [texts])[0]
    assert logged.quarantined and logged.acked_seq == row["seq"]
    kept = hq_log.of(hq.data_dir).execute("SELECT event FROM log").fetchone()[0]
    assert kept != sent and kept == hq_log.stored_text(message["events"][0])
    again = protocol.wire_text(row)
    message, texts = protocol.decode_with_texts(protocol.encode_batch(2, [again], node.node_id))
    other = hq_log.ingest_batches(hq_log.of(hq.data_dir), SHELTER,
                                  [(node.node_id, message["events"])], 2, [texts])[0]
    assert other.duplicates == 0 and hq_log.head(hq_log.of(hq.data_dir)) == 2
