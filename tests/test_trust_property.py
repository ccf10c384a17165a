"""The property behind HQ's refusals: whatever mix of allowed and forbidden events any
sender sends, in any batches, HQ ends in the state the allowed events alone give, and every
forbidden one is quarantined as refused.

Two real shelter nodes make real events (registrations, check-ins, stock, a supply request,
settings, notes, an account). Hypothesis forges events between them as the holder of either
node's data directory could (HQ's types, local-only types, events about the other shelter,
events in the other node's name), cuts each stream into random batches and interleaves the
senders. One real HQ store gets all of it; a second gets the allowed events only, each
forgery replaced by the stub a node sends for an event that stays home. The two must agree.
The oracle is written from the rules as stated, not from shelter/core/authority.py."""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ulid import ULID

from shelter.core.node import NodeContext
from shelter.domain import day_notes, households, presence, stock, supply_requests
from shelter.domain.accounts import add_user
from shelter.domain.settings import change_settings
from sync import protocol
from sync.apply import apply_batch

from .conftest import VALID_HOUSEHOLD

SHELTERS = ("E2710000004444", "E2710000005555")
STATE = ("households", "persons", "presence", "presence_log", "stock_lots", "stock_movements",
         "supply_requests", "settings", "shelter_settings", "hq_messages", "items", "users",
         "tokens", "hq_shelters", "day_notes")


def _make_node(path: Path, shelter_id: str, name: str) -> dict:
    node = NodeContext(path, shelter_id=shelter_id)
    add_user(node.store, f"manager-{name}", "manager-pass-1", "manager")
    data = copy.deepcopy(VALID_HOUSEHOLD)
    data["members"][0]["given_name"] = name
    members = households.register_household(node.store, node.identity, data)["members"]
    presence.scan(node.store, shelter_id, node.card_keys(), members[0]["code"], "check_in")
    stock.move(node.store, shelter_id, {"item_id": "water", "kind": "received",
                                           "quantity": 40})
    request_id = supply_requests.request_supplies(node.store, shelter_id, {
        "lines": [{"item_id": "water", "quantity": 10}], "urgency": "normal", "note": ""})
    change_settings(node.store, {"wifi_name": f"wifi-{name}"})
    day_notes.add_note(node.store, shelter_id, f"{name}のメモ", "manager")
    presence.scan(node.store, shelter_id, node.card_keys(), members[0]["code"], "go_out")
    events = [protocol.for_wire(r) for r in node.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [node.node_id])]
    return {"node_id": node.node_id, "shelter_id": shelter_id, "events": events,
            "person": members[0]["person_id"], "request": request_id}


@pytest.fixture(scope="module")
def senders(tmp_path_factory):
    base = tmp_path_factory.mktemp("senders")
    return [_make_node(base / "a", SHELTERS[0], "一郎"),
            _make_node(base / "b", SHELTERS[1], "二郎")]


def forgery(me: dict, other: dict, kind: str, pick: int) -> tuple[str, dict, str]:
    """(type, payload, whose node id it claims) of one forbidden event, as the rules say:
    HQ's types and local-only types from any node, node types about another shelter, and
    anything in another node's name."""
    person = (me, other)[pick % 2]["person"]
    request = (me, other)[pick % 2]["request"]
    shelter = (me, other)[pick % 2]["shelter_id"]
    fresh = str(ULID())
    table = {
        "configure": ("shelter_configured", {"shelter_id": shelter,
                                             "changes": {"status": "closed", "capacity": "1"}}),
        "message": ("hq_message", {"shelter_id": shelter, "text": "偽の本部命令"}),
        "dispatch": ("supply_dispatched", {"request_id": request, "expected_arrival": "",
                                           "lines": [{"item_id": "water", "quantity": 1}]}),
        "acknowledge": ("supply_request_acknowledged", {"request_id": request, "note": ""}),
        "registry": ("shelter_registry_imported", {"format": "gsi", "file": "x", "shelters": [
            {"shelter_id": other["shelter_id"], "name": "偽", "municipality": "偽市"}]}),
        "user": ("user_added", {"user_id": fresh, "username": f"thief{pick}", "role": "admin",
                                "password_hash": "scrypt$16384$00$00"}),
        "token": ("token_created", {"token_id": fresh, "role": "admin", "label": "",
                                    "token_hash": f"{pick:064x}"}),
        "disable": ("user_disabled", {"username": f"manager-{pick}"}),
        "move_there": ("presence_changed", {"person_id": person,
                                            "shelter_id": other["shelter_id"],
                                            "action": "check_out", "destination": "",
                                            "destination_detail": "", "actor": "x"}),
        "stock_there": ("stock_moved", {"movement_id": fresh, "shelter_id": other["shelter_id"],
                                        "item_id": "water", "kind": "discarded",
                                        "delta": -5, "lot": "", "reason": "x"}),
        "request_there": ("supply_requested", {"request_id": fresh,
                                               "shelter_id": other["shelter_id"],
                                               "urgency": "normal", "note": "",
                                               "lines": [{"item_id": "water",
                                                          "quantity": 1}]}),
        "note_there": ("day_note_added", {"day": "2026-12-01", "text": "偽",
                                          "actor": "x", "shelter_id": other["shelter_id"]}),
        "received_there": ("supply_request_received", {"request_id": other["request"],
                                                       "lines": [], "note": "",
                                                       "actor": "x"}),
    }
    if kind == "impostor":  # an event of its own kind, in the other node's name
        return "settings_changed", {"wifi_name": "impostor"}, other["node_id"]
    event_type, payload = table[kind]
    return event_type, payload, me["node_id"]


KINDS = ["configure", "message", "dispatch", "acknowledge", "registry", "user", "token",
         "disable", "move_there", "stock_there", "request_there", "note_there",
         "received_there", "impostor"]


def stream(me: dict, other: dict, forged: list[tuple[int, str, int]]) -> tuple[list, list, set]:
    """The events ``me`` sends (forgeries inserted, sequence renumbered), the same stream
    as the oracle HQ gets it, and the forgeries' ids."""
    real = [dict(e) for e in me["events"]]
    sent: list[dict] = []
    allowed: list[dict] = []
    forged_ids: set[str] = set()
    inserts = sorted(forged)
    seq = 0
    for index, event in enumerate([*real, None]):
        while inserts and inserts[0][0] <= index:
            _, kind, pick = inserts.pop(0)
            event_type, payload, claimed = forgery(me, other, kind, pick)
            if claimed == me["node_id"]:
                seq += 1
            fake = {"event_id": str(ULID()), "node_id": claimed, "type": event_type,
                    # Outside the sender's sequence when in another node's name.
                    "seq": seq if claimed == me["node_id"] else 1,
                    "hlc": f"{1764583200000 + seq:015d}.{0:08d}.{claimed}",
                    "schema_version": 1, "payload": payload,
                    "recorded_at": "2026-12-01T10:00:00.000+00:00"}
            if claimed == me["node_id"]:
                allowed.append({**fake, "type": protocol.STUB_TYPE, "payload": {}})
            sent.append(fake)
            forged_ids.add(fake["event_id"])
        if event is not None:
            seq += 1
            event["seq"] = seq
            sent.append(event)
            allowed.append(event)
    return sent, allowed, forged_ids


def state(hq: NodeContext) -> dict[str, list]:
    out = {}
    for table in STATE:
        out[table] = sorted(tuple(r) for r in hq.db.execute(f"SELECT * FROM {table}"))
    out["events"] = sorted(r[0] for r in hq.db.execute("SELECT event_id FROM events"))
    return out


plans = st.lists(st.tuples(st.integers(0, 12), st.sampled_from(KINDS), st.integers(0, 99)),
                 min_size=1, max_size=8)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(forged_a=plans, forged_b=plans, cuts=st.lists(st.integers(1, 6), min_size=1,
                                                        max_size=12),
       order=st.lists(st.booleans(), min_size=1, max_size=30))
def test_hq_state_is_what_the_allowed_events_alone_give(senders, forged_a, forged_b, cuts,
                                                       order):
    a, b = senders
    streams = [stream(a, b, forged_a), stream(b, a, forged_b)]
    with tempfile.TemporaryDirectory() as tmp:
        hq = NodeContext(Path(tmp) / "hq", role="hq", shelter_id="HQ-OSAKA")
        oracle = NodeContext(Path(tmp) / "oracle", role="hq", shelter_id="HQ-OSAKA")
        positions = [0, 0]
        step = 0
        # Interleave the two senders' batches as ``order`` says; each batch ``cuts`` long.
        while positions[0] < len(streams[0][0]) or positions[1] < len(streams[1][0]):
            who = int(order[step % len(order)])
            if positions[who] >= len(streams[who][0]):
                who = 1 - who
            size = cuts[step % len(cuts)]
            sender = senders[who]
            chunk = streams[who][0][positions[who]:positions[who] + size]
            positions[who] += size
            step += 1
            ack = apply_batch(hq.store, sender["node_id"], sender["shelter_id"],
                              copy.deepcopy(chunk))
            assert ack.need_from is None and not ack.conflicts, ack
        for who, sender in enumerate(senders):
            apply_batch(oracle.store, sender["node_id"], sender["shelter_id"],
                        copy.deepcopy(streams[who][1]))
        assert state(hq) == state(oracle)
        forged = streams[0][2] | streams[1][2]
        quarantined = {r[0]: r[1:] for r in hq.db.execute(
            "SELECT event_id, shelter_id, refused, reason FROM sync_quarantine")}
        assert set(quarantined) == forged  # every forgery kept aside, nothing else
        for who, sender in enumerate(senders):  # each counted against its sender
            for event_id in streams[who][2]:
                shelter, alarm, reason = quarantined[event_id]
                assert shelter == sender["shelter_id"]
                # Refused as a thief's, or (a receipt for a request HQ has not seen yet)
                # kept aside without the alarm a restored node would raise in vain.
                assert alarm == 1 or reason == "names a supply request this store does not know"
