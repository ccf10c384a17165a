"""A new laptop for a shelter whose node is gone, rebuilt from what HQ holds
(`shelter hq enroll --replace`, sync/history.py, sync/rebuild.py).

Without the network first: the card-key refusals as a property, and a rebuild between
real stores (the same state as HQ's, nothing of another shelter, no history for a normal
credential). Then with real processes: a shelter node records, syncs and dies with its
disk; the replacement rebuilds it, scans an old card, and HQ's numbers stay the same; and
a rebuild through a link that cuts every connection after 5 KB goes on where it stopped.
"""

from __future__ import annotations

import copy
import json
import os
import select
import shutil
import signal
import sqlite3
import ssl
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from simple_websocket import Client
from ulid import ULID

from shelter.core import keys, meta
from shelter.core.node import NodeContext
from shelter.domain import corrections, households, presence, stock, supply_requests
from shelter.domain.accounts import add_user
from shelter.domain.settings import change_settings, configure_shelter, send_message
from sync import client, enrollment, history, protocol, rebuild
from sync.apply import acked_seq, apply_batch

from .conftest import (
    VALID_HOUSEHOLD,
    api,
    enrolled_node,
    run_cli,
    start_hq,
    start_node,
    wait_until,
)
from .faultproxy import FaultProxy

HERE, THERE = "E2710000008001", "E2710000008002"
HQ_SHELTER = "HQ-OSAKA"


def household(*names: str) -> dict:
    data = copy.deepcopy(VALID_HOUSEHOLD)
    first = data["members"][0]
    data["members"] = [{**first, "given_name": name} for name in names]
    return data


def wire(node: NodeContext) -> list[dict]:
    return [protocol.for_wire(r) for r in node.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [node.node_id])]


def enroll_at(hq: NodeContext, node_id: str, shelter_id: str, replace: bool = False) -> str:
    """A credential for ``node_id``, as HQ's /sync would give it."""
    with hq.store.write() as db:
        secret, _ = enrollment.parse_code(enrollment.issue_code(db, shelter_id, b"ca",
                                                                replace=replace))
        return enrollment.redeem(db, secret, node_id, shelter_id, hq.node_id)


def push(hq: NodeContext, node: NodeContext) -> None:
    """Everything the node made after what HQ holds, applied at HQ."""
    events = [e for e in wire(node) if e["seq"] > acked_seq(hq.store, node.node_id)]
    ack = apply_batch(hq.store, node.node_id, node.shelter_id, events)
    assert not ack.quarantined and ack.need_from is None, ack


# --- card keys: who may publish which ------------------------------------------------------

def _key() -> str:
    return keys.public_key_text(keys.load_private_key(keys.new_private_key_pem()))


@pytest.fixture(scope="module")
def publishers(tmp_path_factory):
    """Two shelters' nodes, enrolled at one HQ; the first also has an epoch (a restored
    copy's new id under the same credential)."""
    base = tmp_path_factory.mktemp("publishers")
    a = NodeContext(base / "a", shelter_id=HERE)
    b = NodeContext(base / "b", shelter_id=THERE)
    return {"a": a, "b": b, "epoch": "NEPOCH7777", "keys": [_key(), _key()]}


# (owner, key, shelter) choices a sender may put in a publication.
OWNERS = ("self", "epoch", "other", "stranger")
KEYS = ("own", "alt0", "alt1", "bad")
SHELTERS = ("own", "other")


@settings(max_examples=30, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.booleans(), st.sampled_from(OWNERS), st.sampled_from(KEYS),
                               st.sampled_from(SHELTERS)), min_size=1, max_size=14),
       cuts=st.lists(st.integers(1, 4), min_size=1, max_size=6))
def test_a_card_key_is_published_only_by_its_own_node_and_never_replaced(publishers, plan,
                                                                         cuts):
    """Whatever publications two nodes send, in any batches: HQ keeps, per node id, the
    first key published by a node that may speak for that id (its own id or an epoch of
    its credential, about its own shelter, a well-formed key), and quarantines every other
    publication as refused. The oracle is written from that rule, not from the code."""
    a, b = publishers["a"], publishers["b"]
    epoch = publishers["epoch"]
    own_key = {a.node_id: a.public_key, b.node_id: b.public_key}
    with tempfile.TemporaryDirectory() as tmp:
        hq = NodeContext(Path(tmp) / "hq", role="hq", shelter_id=HQ_SHELTER)
        for node in (a, b):
            enroll_at(hq, node.node_id, node.shelter_id)
        with hq.store.write() as db:
            enrollment.add_epoch(db, a.node_id, epoch)
        streams: dict[str, list[dict]] = {a.node_id: [], b.node_id: []}
        expected: dict[str, str] = {}
        refused: set[str] = set()
        for from_a, owner_pick, key_pick, shelter_pick in plan:
            me, other = (a, b) if from_a else (b, a)
            owner = {"self": me.node_id, "epoch": epoch if me is a else "NSTRANGER7",
                     "other": other.node_id, "stranger": "NSTRANGER8"}[owner_pick]
            key = {"own": own_key[me.node_id], "alt0": publishers["keys"][0],
                   "alt1": publishers["keys"][1], "bad": "not-a-key"}[key_pick]
            shelter = me.shelter_id if shelter_pick == "own" else other.shelter_id
            event = {"event_id": str(ULID()), "node_id": me.node_id,
                     "seq": len(streams[me.node_id]) + 1,
                     "hlc": f"{1764583200000 + len(plan):015d}.{0:08d}.{me.node_id}",
                     "type": "card_key_published", "schema_version": 1,
                     "payload": {"node_id": owner, "public_key": key, "shelter_id": shelter},
                     "recorded_at": "2026-12-01T10:00:00.000+00:00"}
            streams[me.node_id].append(event)
            mine = owner == me.node_id or (me is a and owner == epoch)
            if mine and shelter == me.shelter_id and key != "not-a-key" \
                    and expected.get(owner, key) == key:
                expected.setdefault(owner, key)
            else:
                refused.add(event["event_id"])
        step = 0
        for node in (a, b):
            events = streams[node.node_id]
            while events:
                size, step = cuts[step % len(cuts)], step + 1
                chunk, events = events[:size], events[size:]
                apply_batch(hq.store, node.node_id, node.shelter_id, copy.deepcopy(chunk))
        held = dict(hq.db.execute("SELECT node_id, public_key FROM card_keys "
                                  "WHERE node_id != ?", [hq.node_id]).fetchall())
        assert held == expected
        quarantined = {r[0]: r[1] for r in hq.db.execute(
            "SELECT event_id, refused FROM sync_quarantine")}
        assert set(quarantined) == refused
        assert all(quarantined.values())  # each counted as a refusal, for an operator


def test_a_node_publishes_each_of_its_ids_card_key_once(tmp_path):
    node = NodeContext(tmp_path / "node", shelter_id=HERE)
    assert history.publish_card_keys(node.store, [node.node_id]) == 1
    assert history.publish_card_keys(node.store, [node.node_id]) == 0  # once per id
    assert history.publish_card_keys(node.store, ["NSOMEONE00"]) == 0  # not its own
    (payload,) = node.db.execute("SELECT payload FROM events WHERE type = "
                                 "'card_key_published'").fetchone()
    assert json.loads(payload) == {"node_id": node.node_id, "public_key": node.public_key,
                                   "shelter_id": HERE}


# --- a rebuild between real stores ---------------------------------------------------------

SHARED = ("households", "persons", "presence", "presence_log", "stock_lots",
          "stock_movements", "supply_requests", "day_notes")


def shelter_rows(ctx: NodeContext, table: str, shelter_id: str) -> list[tuple]:
    column = {"persons": "issuing_shelter", "presence_log": None, "presence": None}.get(
        table, "shelter_id")
    if column is None:  # this shelter's people, wherever they are
        sql = (f"SELECT * FROM {table} WHERE person_id IN (SELECT person_id FROM persons "
               "WHERE issuing_shelter = ?)")
    else:
        sql = f"SELECT * FROM {table} WHERE {column} = ?"
    return sorted(tuple(r) for r in ctx.db.execute(sql, [shelter_id]))


def rebuild_in_process(hq: NodeContext, new: NodeContext, limit: int = 7) -> int:
    """The exchange of sync/rebuild.py without a socket; returns how many pages."""
    meta.commit(new.store, {history.STATE_KEY: "pending"})
    origins = enrollment.chain(hq.db, new.node_id)
    pages = 0
    while history.pending(new.db):
        part, after = history.progress(new.db)
        answer = history.answer(hq.db, {"type": "history", "part": part, "after": after,
                                        "limit": limit}, new.shelter_id, new.node_id, origins)
        page = protocol.decode(answer)
        assert page["type"] == "history_page", page
        history.apply_page(new.store, page, frozenset({hq.node_id}))
        pages += 1
        assert pages < 100
    return pages


def test_a_rebuild_holds_what_hq_holds_of_the_shelter_and_nothing_else(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id=HQ_SHELTER)
    old = NodeContext(tmp_path / "old", shelter_id=HERE)
    there = NodeContext(tmp_path / "there", shelter_id=THERE)
    for node in (old, there):
        enroll_at(hq, node.node_id, node.shelter_id)
    add_user(old.store, "manager", "manager-pass-1", "manager")  # never leaves the node
    registered = households.register_household(old.store, old.identity,
                                               household("太郎", "花子", "次郎"))
    family = registered["members"]
    for member in family[:2]:
        presence.scan(old.store, HERE, old.card_keys(), member["code"], "check_in")
    baby = {**household("")["members"][0], "given_name": "陽向"}  # born in the shelter
    corrections.add_person(old.store, old.identity, registered["household_id"], baby, "manager")
    stock.move(old.store, HERE, {"item_id": "water", "kind": "received", "quantity": 40})
    request_id = supply_requests.request_supplies(old.store, HERE, {
        "lines": [{"item_id": "water", "quantity": 10}], "urgency": "normal", "note": ""})
    change_settings(old.store, {"wifi_name": "hinanjo-wifi"})
    history.publish_card_keys(old.store, [old.node_id])
    theirs = households.register_household(there.store, there.identity,
                                           household("三郎"))["members"]
    presence.scan(there.store, THERE, there.card_keys(), theirs[0]["code"], "check_in")
    push(hq, old)
    # Elsewhere: the third of the family turns up at the other shelter (a move HQ routes
    # to this one), and HQ acts on the shelter's request and settings.
    presence.scan(there.store, THERE, there.card_keys(), family[2]["code"], "check_in")
    push(hq, there)
    supply_requests.acknowledge(hq.store, request_id, "明日届けます")
    configure_shelter(hq.store, HERE, {"capacity": "120", "status": "open"})
    send_message(hq.store, HERE, "本部より")
    configure_shelter(hq.store, THERE, {"capacity": "999"})  # not this shelter's

    new = NodeContext(tmp_path / "new", shelter_id=HERE)
    enroll_at(hq, new.node_id, HERE, replace=True)
    assert rebuild_in_process(hq, new) > 2  # pages of at most 7 events
    for table in SHARED:
        assert shelter_rows(new, table, HERE) == shelter_rows(hq, table, HERE), table
    assert new.db.execute("SELECT count(*) FROM persons").fetchone()[0] == 4  # and the baby
    settings_here = dict(new.db.execute("SELECT key, value FROM settings").fetchall())
    assert settings_here == dict(hq.db.execute(
        "SELECT key, value FROM shelter_settings WHERE shelter_id = ?", [HERE]).fetchall())
    assert settings_here["wifi_name"] == "hinanjo-wifi" and settings_here["capacity"] == "120"
    assert new.card_keys()[old.node_id] == old.public_key
    # The other shelter: only the move of this shelter's own person.
    came = new.db.execute("SELECT type, payload FROM events WHERE node_id = ?",
                          [there.node_id]).fetchall()
    assert [(t, json.loads(p)["person_id"]) for t, p in came] == \
        [("presence_changed", family[2]["person_id"])]
    assert not new.db.execute("SELECT 1 FROM sync_quarantine").fetchone()
    assert not new.db.execute("SELECT 1 FROM users").fetchone()  # accounts stay home
    assert meta.get(new.db, "inherited_node_ids") == json.dumps([old.node_id])
    summary = rebuild.summary(new.db)
    assert (summary.households, summary.people, summary.inherited) == (1, 4, [old.node_id])
    # The old card verifies here, and a scan here outranks the old node's.
    done = presence.scan(new.store, HERE, new.card_keys(), family[0]["code"], "go_out")
    assert (done["person_id"], done["outcome"]) == (family[0]["person_id"], "done")
    # Never pushed again: the inherited ids are not this node's own.
    assert history.publish_card_keys(new.store, [old.node_id]) == 0
    # A second rebuild of the same pages changes nothing.
    before = new.db.execute("SELECT count(*) FROM events").fetchone()[0]
    rebuild_in_process(hq, new)
    assert new.db.execute("SELECT count(*) FROM events").fetchone()[0] == before


def test_only_a_replacement_credential_gets_history(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id=HQ_SHELTER)
    normal = NodeContext(tmp_path / "normal", shelter_id=HERE)
    enroll_at(hq, normal.node_id, HERE)
    message = {"type": "history", "part": 1, "after": 0, "limit": 10}
    refused = protocol.decode(history.answer(hq.db, message, HERE, normal.node_id,
                                             enrollment.chain(hq.db, normal.node_id)))
    assert (refused["type"], refused["code"]) == ("error", "forbidden")
    late = NodeContext(tmp_path / "late", shelter_id=HERE)
    enroll_at(hq, late.node_id, HERE, replace=True)
    assert enrollment.may_rebuild(hq.db, [late.node_id])
    with hq.store.write() as db:  # a month on, the replacement's credential is a normal one
        db.execute("UPDATE hq_credentials SET created_at = '2020-01-01T00:00:00+00:00' "
                   "WHERE node_id = ?", [late.node_id])
    assert not enrollment.may_rebuild(hq.db, [late.node_id])
    with pytest.raises(protocol.ProtocolError):
        protocol.decode(protocol.encode({**message, "limit": 501}))


def test_hq_keeps_the_card_key_an_enrollment_gives(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id=HQ_SHELTER)
    key = _key()
    with hq.store.write() as db:
        for node_id, given in (("NGIVEN0001", key), ("NGIVEN0002", "not-a-key")):
            secret, _ = enrollment.parse_code(enrollment.issue_code(db, HERE, b"ca"))
            enrollment.spend(db, secret, node_id, HERE, hq.node_id, card_key=given)
    assert dict(hq.db.execute("SELECT node_id, public_key FROM card_keys WHERE node_id "
                              "LIKE 'NGIVEN%'").fetchall()) == {"NGIVEN0001": key}
    assert enrollment.enrolled_extras(hq.db, "NGIVEN0001", key) == {
        "replace": False, "card_key": True}
    assert enrollment.enrolled_extras(hq.db, "NGIVEN0002", "not-a-key")["card_key"] is False
    # Told with the enrollment: nothing to publish for this id; a replacement rebuilds.
    node = NodeContext(tmp_path / "node", shelter_id=HERE)
    history.note_enrolled(node.db, node.node_id, {"card_key": True, "replace": True})
    assert history.publish_card_keys(node.store, [node.node_id]) == 0
    assert history.pending(node.db)


# --- with real processes -------------------------------------------------------------------

def read(data: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{data / 'shelter.db'}?mode=ro", uri=True, timeout=15)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def synced(node, hq) -> bool:
    """HQ holds every event the node made under its current id (stubs are not stored)."""
    own = read(node.data, "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
    mine = {r[0] for r in read(node.data, "SELECT event_id FROM events WHERE node_id = ? AND "
                                          "type NOT IN ('user_added', 'token_created')", (own,))}
    theirs = {r[0] for r in read(hq.data, "SELECT event_id FROM events WHERE node_id = ?",
                                 (own,))}
    return bool(mine) and mine == theirs


def hq_numbers(hq, token: str) -> dict:
    rows = hq.get("/api/v1/shelters", token).json()["shelters"]
    row = next(r for r in rows if r["shelter_id"] == HERE)
    return {k: row[k] for k in ("present", "out", "registered", "capacity")}


def hq_records(hq) -> dict:
    """What HQ holds of the shelter, by table."""
    return {"households": read(hq.data, "SELECT count(*) FROM households WHERE shelter_id = ?",
                               (HERE,))[0][0],
            "persons": read(hq.data, "SELECT count(*) FROM persons WHERE issuing_shelter = ?",
                            (HERE,))[0][0],
            "requests": read(hq.data, "SELECT request_id, status FROM supply_requests "
                                      "WHERE shelter_id = ?", (HERE,)),
            "water": read(hq.data, "SELECT coalesce(sum(on_hand), 0) FROM stock_lots WHERE "
                                   "shelter_id = ? AND item_id = 'water'", (HERE,))[0][0]}


def output_so_far(server) -> str:
    """What the node printed before serving (it is in the pipe: the node is up)."""
    fd = server.process.stdout.fileno()
    os.set_blocking(fd, False)
    chunks = []
    try:
        while select.select([fd], [], [], 0.2)[0]:
            data = os.read(fd, 65536)
            if not data:
                break
            chunks.append(data)
    except BlockingIOError:
        pass
    finally:
        os.set_blocking(fd, True)
    return b"".join(chunks).decode()


def ask_history(data: Path, hq_port: int) -> dict:
    """A session with a node's own credential (from its directory) asking for history."""
    values = dict(read(data, "SELECT key, value FROM meta"))
    context = ssl.create_default_context(cafile=str(data / client.HQ_CA_FILE))
    ws = Client.connect(f"wss://127.0.0.1:{hq_port}/sync", ssl_context=context)
    try:
        ws.send(protocol.encode({"type": "hello", "protocol": 1, "node_id": values["node_id"],
                                 "shelter_id": values["shelter_id"],
                                 "credential": values["hq_credential"],
                                 "credential_node": values["hq_credential_node"]}))
        assert protocol.decode(ws.receive(timeout=30))["type"] == "welcome"
        ws.send(protocol.encode({"type": "history", "part": 1, "after": 0, "limit": 500}))
        return protocol.decode(ws.receive(timeout=30))
    finally:
        client.close_socket(ws)


@pytest.fixture(scope="module")
def lost(tmp_path_factory):
    """A real HQ, the shelter's node (households, presence, stock, a request, a setting;
    synced, then killed and its directory deleted) and another shelter's node."""
    hq = start_hq(tmp_path_factory.mktemp("hq"))
    started = [hq]
    try:
        yield _lost(hq, started, tmp_path_factory)
    finally:
        for server in reversed(started):
            server.stop()


def _lost(hq, started: list, tmp_path_factory) -> dict:
    old = enrolled_node(hq, tmp_path_factory.mktemp("old"), HERE, "--shelter-name",
                        "大阪市立旧中央小学校", "--sync-max-backoff", "2")
    started.append(old)
    there = enrolled_node(hq, tmp_path_factory.mktemp("there"), THERE,
                          "--sync-max-backoff", "2")
    started.append(there)
    kiosk, volunteer, manager = (old.token(r) for r in ("kiosk", "volunteer", "manager"))
    members = []
    for names in (("太郎", "花子", "次郎"), ("一郎", "二郎")):
        answer = api(old, "POST", "/api/v1/households", kiosk, json=household(*names))
        assert answer.status_code == 201, answer.text
        members += answer.json()["members"]
    for member in members[:4]:
        assert api(old, "POST", "/api/v1/scans", volunteer,
                   json={"code": member["code"], "action": "check_in"}).ok
    assert api(old, "POST", "/api/v1/stock-movements", manager, json={
        "item_id": "water", "kind": "received", "quantity": 40}).status_code == 201
    asked = api(old, "POST", "/api/v1/supply-requests", manager, json={
        "lines": [{"item_id": "water", "quantity": 24}], "urgency": "normal", "note": ""})
    assert asked.status_code == 201, asked.text
    # The fifth turns up at the other shelter (a move HQ routes to this one).
    assert api(there, "POST", "/api/v1/scans", there.token("volunteer"),
               json={"code": members[4]["code"], "action": "check_in"}).ok
    wait_until(lambda: synced(old, hq) and synced(there, hq), timeout=60,
               what="both nodes synced")
    with_hq = NodeContext(hq.data, role="hq")
    supply_requests.acknowledge(with_hq.store, asked.json()["request_id"], "明日届けます")
    configure_shelter(with_hq.store, HERE, {"capacity": "150"})
    with_hq.db.conn.close()
    operator = run_cli("token", "create", "--data", str(hq.data), "--role", "operator"
                       ).stdout.strip()
    numbers = wait_until(lambda: (n := hq_numbers(hq, operator))["present"] == 4
                         and n["capacity"] == 150 and n, timeout=30, what="HQ's numbers")
    old_id = read(old.data, "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
    old_key = old.card_keys()[old_id]
    # HQ holds the old node's card key, given with its enrollment (no event needed).
    assert read(hq.data, "SELECT public_key FROM card_keys WHERE node_id = ?", (old_id,)) \
        == [(old_key,)]
    assert not read(hq.data, "SELECT 1 FROM events WHERE type = 'card_key_published'")
    os.killpg(old.process.pid, signal.SIGKILL)  # the laptop is gone, with its disk
    old.process.wait()
    shutil.rmtree(old.data)
    return {"hq": hq, "there": there, "started": started, "members": members,
            "operator": operator, "numbers": numbers, "records": hq_records(hq),
            "old_id": old_id, "old_key": old_key,
            "old_events": read(hq.data, "SELECT count(*) FROM events WHERE node_id = ?",
                               (old_id,))[0][0]}


def test_a_new_laptop_rebuilds_the_shelter_from_hq(lost):
    hq, members = lost["hq"], lost["members"]
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", HERE, "--replace"
                   ).stdout.strip()
    assert code.startswith("ENR1.")
    new = start_node(hq.data.parent / "new", "--hq", hq.url, "--enroll", code,
                     "--sync-max-backoff", "2")
    lost["started"].append(new)
    said = output_so_far(new)
    print(f"\n{said}")
    assert "rebuilt from HQ: 2 households, 5 people" in said, said
    assert "newest record:" in said and "minutes ago" in said
    assert "staff accounts are not copied from HQ: add them again with `shelter user add`" \
        in said
    volunteer = new.token("volunteer")
    headcount = api(new, "GET", "/api/v1/headcount", volunteer).json()
    assert {k: headcount[k] for k in lost["numbers"]} == lost["numbers"]
    water = next(i for i in api(new, "GET", "/api/v1/stock", volunteer).json()["items"]
                 if i["item_id"] == "water")
    assert water["on_hand"] == lost["records"]["water"] == 40
    listed = api(new, "GET", "/api/v1/supply-requests", volunteer).json()["requests"]
    assert [(r["request_id"], r["status"]) for r in listed] == lost["records"]["requests"]
    assert listed[0]["status"] == "acknowledged"
    assert dict(read(new.data, "SELECT key, value FROM settings")) == dict(read(
        hq.data, "SELECT key, value FROM shelter_settings WHERE shelter_id = ?", (HERE,)))
    assert read(new.data, "SELECT value FROM settings WHERE key = 'shelter_name'") == \
        [("大阪市立旧中央小学校",)]
    # Nothing of the other shelter came down but the move of this shelter's own person.
    there_id = read(lost["there"].data, "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
    assert read(new.data, "SELECT type FROM events WHERE node_id = ?", (there_id,)) == \
        [("presence_changed",)]
    assert read(new.data, "SELECT count(*) FROM persons")[0][0] == 5
    # The old cards verify here, against the old node's key HQ kept: someone here already,
    # and someone going out.
    assert new.card_keys()[lost["old_id"]] == lost["old_key"]
    for member, action in ((members[0], "check_in"), (members[1], "go_out")):
        scanned = api(new, "POST", "/api/v1/scans", volunteer,
                      json={"code": member["code"], "action": action})
        assert scanned.ok and scanned.json()["person_id"] == member["person_id"], scanned.text
    wait_until(lambda: synced(new, hq), timeout=60, what="the new node synced")
    expected = {**lost["numbers"], "present": 3, "out": 1}
    assert wait_until(lambda: (n := hq_numbers(hq, lost["operator"])) == expected and n,
                      timeout=30, what="HQ's numbers after the new node synced")
    assert api(new, "GET", "/api/v1/headcount", volunteer).json()["present"] == 3
    assert hq_records(hq) == lost["records"]  # nothing doubled
    assert read(hq.data, "SELECT count(*) FROM events WHERE node_id = ?",
                (lost["old_id"],))[0][0] == lost["old_events"]  # never pushed again
    lost["new"] = new


def test_only_the_replacement_gets_history_and_only_its_shelters(lost):
    hq = lost["hq"]
    refused = ask_history(lost["there"].data, hq.port)
    assert (refused["type"], refused["code"]) == ("error", "forbidden"), refused
    new = lost.get("new")
    if new is None:
        pytest.fail("needs the replacement of the test before")
    page = ask_history(new.data, hq.port)
    assert page["type"] == "history_page" and page["events"], page
    assert lost["old_id"] in page["nodes"]
    for event in page["events"]:
        shelter = event["payload"].get("shelter_id")
        assert shelter in (None, HERE), event["type"]


def test_a_rebuild_waits_out_an_hq_that_is_still_counting(lost, tmp_path, monkeypatch):
    """HQ answers a replacing node's first page "busy" while its projector lags: HQ is
    working, so the rebuild keeps asking (and says so) past the idle sessions it would give
    up after; only a wait longer than its patience ends it."""
    hq = lost["hq"]
    real_session = rebuild._session
    busy_left = {"n": rebuild.ATTEMPTS + 2}

    def busy_first(ctx, url, sizes):
        if busy_left["n"] > 0:
            busy_left["n"] -= 1
            client.close_socket(client.greeted(ctx, url)[0])  # a real session, then busy
            raise client.SyncRefused("busy", "HQ is still counting what it stored")
        return real_session(ctx, url, sizes)

    monkeypatch.setattr(rebuild, "_session", busy_first)
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", HERE, "--replace"
                   ).stdout.strip()
    ctx = NodeContext(tmp_path / "patient")
    client.enroll(ctx, hq.url, code, shelter_from_code=True)
    said: list[str] = []
    done = rebuild.rebuild(NodeContext(tmp_path / "patient"), hq.url, first_wait=0.01,
                           say=said.append)
    assert busy_left["n"] == 0 and (done.households, done.people) == (2, 5)
    assert len(said) == 1 and "busy" in said[0]  # told once, not at every try
    # With no patience left, "busy" ends the rebuild, which a restart continues.
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", HERE, "--replace"
                   ).stdout.strip()
    other = NodeContext(tmp_path / "impatient")
    client.enroll(other, hq.url, code, shelter_from_code=True)
    busy_left["n"] = 1
    with pytest.raises(client.SyncRefused):
        rebuild.rebuild(NodeContext(tmp_path / "impatient"), hq.url, first_wait=0.01,
                        busy_patience=0)
    assert history.pending(NodeContext(tmp_path / "impatient").db)


def test_a_rebuild_cut_off_by_a_thin_link_goes_on_where_it_stopped(lost, tmp_path):
    hq = lost["hq"]
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", HERE, "--replace"
                   ).stdout.strip()
    ctx = NodeContext(tmp_path / "thin")
    client.enroll(ctx, hq.url, code, shelter_from_code=True)
    ctx = NodeContext(tmp_path / "thin")
    assert history.pending(ctx.db)
    proxy = FaultProxy(hq.port, cut_points=[5000]).start()
    try:
        done = rebuild.rebuild(ctx, f"https://127.0.0.1:{proxy.port}", first_wait=0.05)
    finally:
        proxy.stop()
    print(f"\nrebuilt {done.events} events over {len(proxy.log)} connections of 5 KB")
    assert len(proxy.log) > 2, proxy.log  # several connections, each cut
    assert (done.households, done.people) == (2, 5)
    assert done.quarantined == 0
    assert not history.pending(ctx.db)
    hq_ctx = NodeContext(hq.data, role="hq")
    for table in SHARED:
        assert shelter_rows(ctx, table, HERE) == shelter_rows(hq_ctx, table, HERE), table
