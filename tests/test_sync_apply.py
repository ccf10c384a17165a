"""HQ's side of sync, without the network: a node's real events applied to another real
store, resent, reordered, tampered with and broken, and the store ends up with each of the
node's events exactly once."""

from __future__ import annotations

import copy
import json
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelter.core.node import NodeContext
from shelter.domain import households, presence
from shelter.domain.accounts import add_user
from sync import protocol
from sync.apply import acked_seq, apply_batch

from .conftest import VALID_HOUSEHOLD

SHELTER = "E2710000001111"


def make_node(path, shelter=SHELTER):
    node = NodeContext(path, shelter_id=shelter)
    add_user(node.store, "volunteer", "volunteer-pass-1", "volunteer")  # node-local
    members = []
    for name in ("太郎", "花子", "次郎"):
        data = copy.deepcopy(VALID_HOUSEHOLD)
        data["members"][0]["given_name"] = name
        members += households.register_household(node.store, node.identity, data)["members"]
    for m in members:
        presence.scan(node.store, node.shelter_id, node.card_keys(), m["code"], "check_in")
    return node


def wire(node):
    return [protocol.for_wire(row) for row in node.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [node.node_id])]


def hq_of(path):
    return NodeContext(path, role="hq", shelter_id="HQ-OSAKA")


def same_state(node, hq):
    """The node's shared events are at HQ exactly once, and so are their effects."""
    mine = {r["event_id"]: r["payload"] for r in node.db.query(
        "SELECT event_id, payload FROM events WHERE type NOT IN ('user_added')")}
    theirs = {r["event_id"]: r["payload"] for r in hq.db.query(
        "SELECT event_id, payload FROM events WHERE node_id = ?", [node.node_id])}
    assert mine == theirs
    count = "SELECT count(*) FROM {} "
    for table in ("persons", "presence", "presence_log"):
        assert hq.db.execute(count.format(table)).fetchone()[0] == \
            node.db.execute(count.format(table)).fetchone()[0], table


def test_a_batch_applies_once_however_often_it_comes(tmp_path):
    node, hq = make_node(tmp_path / "a"), hq_of(tmp_path / "hq")
    events = wire(node)
    first = apply_batch(hq.store, node.node_id, SHELTER, events)
    assert (first.applied, first.acked_seq, first.need_from) == (len(events) - 1, len(events),
                                                                 None)
    same_state(node, hq)
    again = apply_batch(hq.store, node.node_id, SHELTER, events)
    assert (again.applied, again.duplicates) == (0, len(events))
    same_state(node, hq)
    # HQ holds no password hash: the account event travelled as a stub.
    assert "scrypt" not in json.dumps([dict(r) for r in hq.db.query("SELECT * FROM events")])
    assert hq.db.execute("SELECT count(*) FROM users").fetchone()[0] == 0


def test_a_gap_stops_the_batch_and_asks_for_what_is_missing(tmp_path):
    node, hq = make_node(tmp_path / "a"), hq_of(tmp_path / "hq")
    events = wire(node)
    apply_batch(hq.store, node.node_id, SHELTER, events[:2])
    result = apply_batch(hq.store, node.node_id, SHELTER, events[4:])
    assert (result.need_from, result.applied, result.acked_seq) == (3, 0, 2)
    result = apply_batch(hq.store, node.node_id, SHELTER, events[2:])
    assert (result.need_from, result.acked_seq) == (None, len(events))
    same_state(node, hq)


def test_same_id_other_content_is_a_conflict_and_is_not_applied(tmp_path):
    node, hq = make_node(tmp_path / "a"), hq_of(tmp_path / "hq")
    events = wire(node)
    apply_batch(hq.store, node.node_id, SHELTER, events)
    forged = copy.deepcopy(events[1])
    forged["payload"]["address"] = "別の住所"
    result = apply_batch(hq.store, node.node_id, SHELTER, [forged])
    assert len(result.conflicts) == 1 and result.applied == 0
    assert hq.db.execute("SELECT count(*) FROM sync_conflicts").fetchone()[0] == 1
    same_state(node, hq)


def test_what_cannot_be_applied_is_quarantined_and_blocks_nothing(tmp_path):
    node, hq = make_node(tmp_path / "a"), hq_of(tmp_path / "hq")
    events = wire(node)
    broken = copy.deepcopy(events)
    broken[1]["type"] = "teleported"                       # unknown type
    broken[2]["schema_version"] = 99                       # from the future
    del broken[3]["payload"]["members"]                    # its projection fails
    broken[4]["hlc"] = "yesterday"                         # not a clock (a check-in)
    result = apply_batch(hq.store, node.node_id, SHELTER, broken)
    assert [q["seq"] for q in result.quarantined] == [2, 3, 4, 5]
    assert result.acked_seq == len(events) and result.need_from is None
    # The events behind them were applied: the two other check-ins are there.
    assert hq.db.execute("SELECT count(*) FROM presence").fetchone()[0] == 2
    reasons = [r[0] for r in hq.db.execute("SELECT reason FROM sync_quarantine")]
    assert "unknown event type 'teleported'" in reasons and "hlc cannot be read" in reasons


def test_a_node_may_send_only_its_own_events(tmp_path):
    a, b = make_node(tmp_path / "a"), make_node(tmp_path / "b", "E2710000002222")
    hq = hq_of(tmp_path / "hq")
    result = apply_batch(hq.store, a.node_id, SHELTER, wire(b)[:3])
    assert len(result.quarantined) == 3 and result.applied == 0
    assert hq.db.execute("SELECT count(*) FROM events WHERE node_id = ?",
                         [b.node_id]).fetchone()[0] == 0


def test_an_event_from_the_far_future_is_applied_but_flagged(tmp_path):
    node, hq = make_node(tmp_path / "a"), hq_of(tmp_path / "hq")
    events = wire(node)
    day = 24 * 3600 * 1000
    first_wall = int(events[0]["hlc"].split(".")[0])
    result = apply_batch(hq.store, node.node_id, SHELTER, events, now_ms=first_wall - day)
    assert result.applied == len(events) - 1
    assert hq.db.execute("SELECT count(*) FROM sync_flags").fetchone()[0] == len(events) - 1


def test_frames_are_checked_and_batches_capped(tmp_path):
    node = make_node(tmp_path / "a")
    events = wire(node)
    message = protocol.decode(protocol.encode_batch(7, events))
    assert message["batch"] == 7 and message["events"] == json.loads(json.dumps(events))
    parts = list(protocol.batches(events, max_events=3))
    assert [len(p) for p in parts] == [3, 3, 1] and sum(parts, []) == events
    assert all(len(p) == 1 for p in protocol.batches(events, max_bytes=10))
    for frame, code in ((b"not zlib", "malformed"), ("{", "malformed"), ('"x"', "malformed"),
                        ('{"type": "gossip"}', "unknown_message"),
                        ('{"type": "hello", "protocol": "1"}', "malformed"),
                        (zlib.compress(b" " * (protocol.MAX_DECOMPRESSED_BYTES + 1)),
                         "too_large")):
        with pytest.raises(protocol.ProtocolError) as refused:
            protocol.decode(frame)
        assert refused.value.code == code


DELIVERIES = st.lists(st.tuples(st.integers(0, 9), st.integers(1, 6), st.booleans()),
                      max_size=12)


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(deliveries=DELIVERIES)
def test_any_mix_of_resends_reorders_and_losses_converges_to_exactly_once(tmp_path_factory,
                                                                         deliveries):
    """Batches arrive from anywhere in the stream, any size, some twice, some never; then
    the node resends from what HQ last acknowledged. HQ ends with every event once."""
    base = tmp_path_factory.mktemp("prop")
    node, hq = make_node(base / "a"), hq_of(base / "hq")
    events = wire(node)
    for start, size, twice in deliveries:
        chunk = events[start:start + size]
        for _ in range(2 if twice else 1):
            result = apply_batch(hq.store, node.node_id, SHELTER, chunk)
            assert not result.conflicts and not result.quarantined
    for _ in range(len(events)):  # the node's loop: resend from the acknowledgement
        done = acked_seq(hq.store, node.node_id)
        if done == len(events):
            break
        apply_batch(hq.store, node.node_id, SHELTER, events[done:done + 4])
    assert acked_seq(hq.store, node.node_id) == len(events)
    same_state(node, hq)
    for ctx in (node, hq):
        ctx.db.conn.close()


def test_hq_keeps_each_shelters_stock_settings_and_notes_apart(tmp_path):
    from shelter.domain import day_notes, stock, supplies
    from shelter.domain.settings import change_settings, get_settings, shelter_settings
    a, b = make_node(tmp_path / "a"), make_node(tmp_path / "b", "E2710000002222")
    hq = hq_of(tmp_path / "hq")
    for node, litres, capacity in ((a, 100, "250"), (b, 40, "80")):
        stock.move(node.store, node.shelter_id, {"item_id": "water", "kind": "received",
                                                    "quantity": litres}, "m")
        change_settings(node.store, {"capacity": capacity})
        day_notes.add_note(node.store, node.shelter_id, f"{node.shelter_id} note", "m")
        result = apply_batch(hq.store, node.node_id, node.shelter_id, wire(node))
        assert not result.quarantined and not result.conflicts
    water = {s: next(i for i in stock.stock(hq.db, s, get_settings(hq.db))["items"]
                     if i["item_id"] == "water")["on_hand"]
             for s in (a.shelter_id, b.shelter_id)}
    assert water == {a.shelter_id: 100, b.shelter_id: 40}
    assert shelter_settings(hq.db, b.shelter_id)["capacity"] == "80"
    assert get_settings(hq.db)["capacity"] == "0"  # HQ's own settings are untouched
    assert [n["text"] for n in day_notes.notes(hq.db, b.shelter_id, supplies.today_jst())] == \
        [f"{b.shelter_id} note"]


def test_hq_pages_answer_without_shelter_pages(tmp_path):
    from shelter.app import create_app
    app = create_app(tmp_path / "hq", role="hq", test_config={"TESTING": True})
    client = app.test_client()
    assert client.get("/").headers["Location"].endswith("/hq")
    assert client.get("/no-such-page").status_code == 404  # the error page, not a 500
    assert client.get("/register").status_code == 404  # no kiosk at HQ
    assert client.get("/api/v1/shelters").status_code == 401
    spec = client.get("/api/v1/openapi.json").get_json()
    assert set(spec["paths"]) >= {"/api/v1/shelters", "/api/v1/summary"}
