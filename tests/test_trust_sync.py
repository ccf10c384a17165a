"""A thief holding one shelter's data directory, against a real HQ over the real /sync
protocol: what they may say is their own shelter's, and nothing else.

Everything the thief uses comes from the stolen directory: the node's id, shelter id and
HQ credential (in its database) and HQ's CA (hq-ca.crt beside it). Each attack here worked
before HQ checked who may say what (shelter/core/authority.py)."""

from __future__ import annotations

import copy
import hashlib
import ssl
import time
import zlib
from pathlib import Path

import pytest
import requests
from simple_websocket import Client, ConnectionClosed
from ulid import ULID

from shelter.core.node import NodeContext
from shelter.domain.accounts import hash_password
from shelter.domain.settings import send_message
from sync import protocol
from sync.apply import HELD_REASON
from sync.client import HQ_CA_FILE, close_socket

from .conftest import (
    VALID_HOUSEHOLD,
    api,
    enrolled_node,
    projected_ack,
    run_cli,
    start_hq,
    start_node,
    wait_until,
)
from .test_sync_faults import read as read_db

VICTIM, THIEF = "E2710000002222", "E2710000003333"


def read(data: Path, sql: str, args: tuple = ()) -> list[tuple]:
    """A read-only query on a server's database, while it runs."""
    return read_db(data / "shelter.db", sql, args)


class Thief:
    """What a stolen data directory lets its holder say to HQ."""

    def __init__(self, data: Path, hq_port: int, hq_data: Path) -> None:
        meta = dict(read(data, "SELECT key, value FROM meta"))
        self.node_id, self.shelter_id = meta["node_id"], meta["shelter_id"]
        self.credential = meta["hq_credential"]
        self.context = ssl.create_default_context(cafile=str(data / HQ_CA_FILE))
        self.url = f"wss://127.0.0.1:{hq_port}/sync"
        self.hq_data = hq_data
        self.batch = 0

    def connect(self, **hello: object) -> tuple[Client, dict]:
        ws = Client.connect(self.url, ssl_context=self.context)
        ws.send(protocol.encode({"type": "hello", "protocol": 1, "node_id": self.node_id,
                                 "shelter_id": self.shelter_id, "credential": self.credential,
                                 "credential_node": self.node_id, **hello}))
        return ws, protocol.decode(ws.receive(timeout=30))

    def event(self, seq: int, kind: str, payload: dict, node_id: str | None = None) -> dict:
        node_id = node_id or self.node_id
        return {"event_id": str(ULID()), "node_id": node_id, "seq": seq,
                "hlc": f"{int(time.time() * 1000):015d}.{0:08d}.{node_id}", "type": kind,
                "schema_version": 1, "payload": payload,
                "recorded_at": "2026-12-01T10:00:00.000+00:00"}

    def say(self, kinds_and_payloads: list[tuple[str, dict]]) -> dict:
        """One session: the events, numbered after what HQ holds; returns HQ's ack, with
        what came of the events once HQ projected them (``projected_ack``)."""
        ws, welcome = self.connect()
        try:
            assert welcome["type"] == "welcome", welcome
            seq = welcome["acked_seq"]
            events = [self.event(seq + i + 1, kind, payload)
                      for i, (kind, payload) in enumerate(kinds_and_payloads)]
            self.batch += 1
            ws.send(protocol.encode_batch(self.batch, events))
            ack = protocol.decode(ws.receive(timeout=30))
        finally:
            close_socket(ws)
        if ack.get("type") != "ack":
            return ack
        return projected_ack(self.hq_data, ack, events)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real HQ, a victim shelter's node (syncing, with an evacuee and a supply request)
    and the stolen shelter's node, stopped once enrolled: its directory is the loot."""
    hq = start_hq(tmp_path_factory.mktemp("hq"))
    started = [hq]
    try:
        yield _world(hq, started, tmp_path_factory)
    finally:  # also when setting up failed half-way: no server outlives the module
        for server in reversed(started):
            server.stop()


def _world(hq, started: list, tmp_path_factory) -> dict:
    run_cli("user", "add", "--data", str(hq.data), "--username", "admin", "--role", "admin",
            "--password", "hq-admin-pass-1")
    victim = enrolled_node(hq, tmp_path_factory.mktemp("victim"), VICTIM,
                           "--shelter-name", "被害小学校")
    started.append(victim)
    stolen = enrolled_node(hq, tmp_path_factory.mktemp("stolen"), THIEF,
                           "--shelter-name", "盗難中学校")
    started.append(stolen)
    members = api(victim, "POST", "/api/v1/households", victim.token("kiosk"),
                  json=copy.deepcopy(VALID_HOUSEHOLD)).json()["members"]
    api(victim, "POST", "/api/v1/scans", victim.token("volunteer"),
        json={"code": members[0]["code"], "action": "check_in"})
    request_id = api(victim, "POST", "/api/v1/supply-requests", victim.token("manager"),
                     json={"lines": [{"item_id": "water", "quantity": 24}],
                           "urgency": "normal", "note": ""}).json()["request_id"]
    operator = run_cli("token", "create", "--data", str(hq.data), "--role", "operator"
                       ).stdout.strip()
    wait_until(lambda: read(hq.data, "SELECT count(*) FROM supply_requests WHERE "
                                     "request_id = ?", (request_id,))[0][0] == 1
               and read(hq.data, "SELECT count(*) FROM sync_origins WHERE shelter_id = ?",
                        (THIEF,))[0][0] == 1, timeout=90, what="both nodes synced")
    stolen.stop()
    return {"hq": hq, "victim": victim, "stolen": stolen,
            "thief": Thief(stolen.data, hq.port, hq.data), "operator": operator,
            "person": members[0]["person_id"], "request": request_id}


def refused(ack: dict) -> list[str]:
    return [q["reason"] for q in ack["quarantined"] if q["reason"].startswith("refused")]


def test_accounts_and_tokens_cannot_be_planted_at_hq_over_sync(world):
    hq, thief = world["hq"], world["thief"]
    token = "sht_planted-by-the-thief"
    ack = thief.say([
        ("user_added", {"user_id": str(ULID()), "username": "thief", "role": "admin",
                        "password_hash": hash_password("thief-pass-1")}),
        ("token_created", {"token_id": str(ULID()), "role": "admin", "label": "",
                           "token_hash": hashlib.sha256(token.encode()).hexdigest()}),
        ("user_disabled", {"username": "admin"})])
    assert ack["type"] == "ack" and ack["applied"] == 0
    assert len(refused(ack)) == 3 and all("never leaves" in r for r in refused(ack))
    assert read(hq.data, "SELECT username, disabled FROM users") == [("admin", 0)]
    assert hq.get("/api/v1/summary", token).status_code == 401


def test_another_shelters_node_id_cannot_be_claimed(world):
    hq, thief, victim = world["hq"], world["thief"], world["victim"]
    victim_id = read(victim.data, "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
    # Their own credential, the victim's node id: as a "new epoch" of their own node.
    ws, answer = thief.connect(node_id=victim_id)
    close_socket(ws)
    assert (answer["type"], answer["code"]) == ("error", "node_id_taken"), answer
    # Or as the victim outright, under the victim's shelter id.
    ws, answer = thief.connect(node_id=victim_id, credential_node=victim_id,
                               shelter_id=VICTIM)
    close_socket(ws)
    assert answer["code"] == "unauthorized"
    # HQ's own id is not free to take either.
    hq_id = read(hq.data, "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
    ws, answer = thief.connect(node_id=hq_id)
    close_socket(ws)
    assert answer["code"] == "node_id_taken"
    # The victim's node goes on syncing with nothing in conflict.
    before = read(hq.data, "SELECT count(*) FROM persons WHERE issuing_shelter = ?",
                  (VICTIM,))[0][0]
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["members"][0]["given_name"] = "次郎"
    api(victim, "POST", "/api/v1/households", victim.token("kiosk"), json=body)
    wait_until(lambda: read(hq.data, "SELECT count(*) FROM persons WHERE issuing_shelter = ?",
                            (VICTIM,))[0][0] == before + 1, timeout=60,
               what="the victim's next registration reaches HQ")
    assert read(hq.data, "SELECT count(*) FROM sync_conflicts")[0][0] == 0
    assert read(hq.data, "SELECT count(*) FROM hq_credentials WHERE node_id = ?",
                (victim_id,))[0][0] == 1


def test_events_about_other_shelters_are_refused_and_never_reach_them(world):
    hq, thief, victim = world["hq"], world["thief"], world["victim"]
    ack = thief.say([
        ("shelter_configured", {"shelter_id": VICTIM,
                                "changes": {"status": "closed", "capacity": "1"}}),
        ("hq_message", {"shelter_id": VICTIM, "text": "本部命令：直ちに閉鎖せよ"}),
        ("supply_dispatched", {"request_id": world["request"],
                               "lines": [{"item_id": "water", "quantity": 24}],
                               "expected_arrival": "2026-12-02T09:00:00+09:00"}),
        ("presence_changed", {"person_id": world["person"], "shelter_id": VICTIM,
                              "action": "check_out", "destination": "other",
                              "destination_detail": "", "actor": "thief"}),
        ("stock_moved", {"movement_id": str(ULID()), "shelter_id": VICTIM,
                         "item_id": "water", "kind": "discarded", "delta": -500, "lot": "",
                         "reason": "x"}),
        ("shelter_registry_imported", {"format": "gsi", "file": "x.geojson", "shelters": [
            {"shelter_id": VICTIM, "name": "偽", "municipality": "偽市"}]}),
        # Behind all that, something they may say: it is applied, the queue never stops.
        ("settings_changed", {"wifi_name": "stolen-wifi"}),
    ])
    assert len(refused(ack)) == 6, ack["quarantined"]
    assert ack["applied"] == 1 and ack["acked_seq"] >= 7
    assert read(hq.data, "SELECT status FROM supply_requests WHERE request_id = ?",
                (world["request"],))[0][0] == "requested"
    assert read(hq.data, "SELECT count(*) FROM hq_messages")[0][0] == 0
    assert ("status", "closed") not in read(
        hq.data, "SELECT key, value FROM shelter_settings WHERE shelter_id = ?", (VICTIM,))
    assert read(hq.data, "SELECT shelter_id, status FROM presence WHERE person_id = ?",
                (world["person"],)) == [(VICTIM, "present")]
    assert read(hq.data, "SELECT count(*) FROM hq_shelters")[0][0] == 0
    assert read(hq.data, "SELECT value FROM shelter_settings WHERE shelter_id = ? AND "
                         "key = 'wifi_name'", (THIEF,)) == [("stolen-wifi",)]
    # What HQ really says to the victim arrives; the thief's words never do.
    with_hq = NodeContext(hq.data, role="hq")
    send_message(with_hq.store, VICTIM, "給水車は明朝9時に到着します")
    headcount = wait_until(lambda: (page := requests.get(
        f"{victim.https}/desk/headcount", verify=victim.verify, timeout=10,
        headers={"Authorization": f"Bearer {victim.token('volunteer')}"}).text)
        and "給水車" in page and page, timeout=60, what="HQ's real message at the victim")
    assert "直ちに閉鎖" not in headcount
    assert read(victim.data, "SELECT value FROM settings WHERE key = 'status'") in ([], [("open",)])
    assert read(victim.data, "SELECT status FROM supply_requests")[0][0] == "requested"


def test_refusals_are_shown_to_hq_operators_per_shelter(world):
    hq, thief = world["hq"], world["thief"]
    thief.say([("hq_message", {"shelter_id": VICTIM, "text": "偽の指示"})])
    dashboard = hq.get("/hq?lang=en", world["operator"]).text
    assert "Refused events from" in dashboard and "盗難中学校" in dashboard
    page = hq.get(f"/hq/shelters/{THIEF}?lang=en", world["operator"]).text
    assert "hq_message" in page and "only HQ may originate hq_message" in page
    listed = read(hq.data, "SELECT DISTINCT shelter_id FROM sync_quarantine WHERE refused = 1")
    assert listed == [(THIEF,)]


def test_malformed_frames_are_refused_and_the_session_goes_on(world):
    thief = world["thief"]
    ws, welcome = thief.connect()
    try:
        assert welcome["type"] == "welcome"
        deep = b'{"type":"events","batch":1,"events":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        ws.send(zlib.compress(deep))
        first = protocol.decode(ws.receive(timeout=30))
        ws.send('{"type":"ping","x":"\\udc80"}')
        second = protocol.decode(ws.receive(timeout=30))
        ws.send(protocol.encode({"type": "ping"}))
        third = protocol.decode(ws.receive(timeout=30))
    finally:
        close_socket(ws)
    assert (first["code"], second["code"]) == ("malformed", "malformed"), (first, second)
    assert third["type"] == "pong"


def test_a_deeply_nested_event_is_quarantined_and_the_next_applied(world):
    nested: object = "x"
    for _ in range(40):
        nested = [nested]
    ack = world["thief"].say([("day_note_added", {"day": "2026-12-01", "text": nested,
                                                 "actor": "x", "shelter_id": THIEF}),
                              ("settings_changed", {"wifi_name": "after-the-deep-one"})])
    assert [q["reason"] for q in ack["quarantined"]] == ["payload nested deeper than 16"]
    assert ack["applied"] == 1


def test_values_other_shelters_figures_depend_on_are_checked(world):
    """A setting or catalog item HQ cannot compute with stopped HQ's figures and public
    pages for every shelter."""
    hq, thief = world["hq"], world["thief"]
    ack = thief.say([
        ("settings_changed", {"capacity": "lots"}),
        ("settings_changed", {"status": "party"}),
        ("settings_changed", {"no_such_setting": "x"}),
        ("item_added", {"item_id": "zz-bogus", "name_ja": "x", "name_en": "x", "unit": "x",
                        "norm_per_day": "many", "audience": "aliens", "ration_hours": 0}),
        ("day_note_added", {"day": "2026-12-01", "text": "名前のないメモ", "actor": "x"}),
    ])
    assert len(refused(ack)) == 4 and ack["applied"] == 1, ack["quarantined"]
    assert all("cannot be used" in r for r in refused(ack))
    for path in ("/api/v1/summary", "/api/v1/shelters"):
        assert hq.get(path, world["operator"]).status_code == 200
    assert requests.get(f"{hq.url}/api/v1/public/shelters", verify=hq.verify,
                        timeout=10).status_code == 200
    assert read(hq.data, "SELECT count(*) FROM items WHERE item_id = 'zz-bogus'")[0][0] == 0
    # A note that names no shelter is the sender's, not nobody's.
    assert read(hq.data, "SELECT shelter_id FROM day_notes WHERE text = '名前のないメモ'"
                ) == [(THIEF,)]


def test_ids_and_clocks_cannot_take_another_shelters_people_or_requests(world):
    hq, thief = world["hq"], world["thief"]
    squat = copy.deepcopy(VALID_HOUSEHOLD)
    member = {**squat["members"][0], "person_id": world["person"], "short_code": "ABCDEFGH",
              "card_code": "x", "needs": [], "allergies": ""}
    far = int(time.time() * 1000) + 50 * 365 * 24 * 3600 * 1000
    future = thief.event(0, "presence_changed", {
        "person_id": world["person"], "shelter_id": THIEF, "action": "check_in",
        "destination": "", "destination_detail": "", "actor": "x"})
    ws, welcome = thief.connect()
    try:
        seq = welcome["acked_seq"]
        events = [
            thief.event(seq + 1, "household_registered", {
                **squat, "members": [member], "household_id": str(ULID()),
                "shelter_id": THIEF}),
            thief.event(seq + 2, "supply_requested", {
                "request_id": world["request"], "shelter_id": THIEF, "urgency": "normal",
                "note": "", "lines": [{"item_id": "water", "quantity": 1}]}),
            thief.event(seq + 3, "supply_request_received", {
                "request_id": world["request"], "lines": [], "note": "", "actor": "x"}),
            {**future, "seq": seq + 4, "hlc": f"{far:015d}.{0:08d}.{thief.node_id}"},
        ]
        ws.send(protocol.encode_batch(1, events))
        ack = projected_ack(hq.data, protocol.decode(ws.receive(timeout=30)), events)
    finally:
        close_socket(ws)
    reasons = refused(ack)
    assert len(reasons) == 3 and ack["applied"] == 1, ack  # the stamp is kept, not applied
    assert "registered already" in reasons[0] and "exists already" in reasons[1]
    assert read(hq.data, "SELECT reason FROM sync_flags WHERE event_id = ?",
                (events[3]["event_id"],)) == [(HELD_REASON,)]
    assert read(hq.data, "SELECT issuing_shelter FROM persons WHERE person_id = ?",
                (world["person"],)) == [(VICTIM,)]
    assert read(hq.data, "SELECT shelter_id, status FROM supply_requests WHERE request_id = ?",
                (world["request"],)) == [(VICTIM, "requested")]
    assert read(hq.data, "SELECT shelter_id FROM presence WHERE person_id = ?",
                (world["person"],)) == [(VICTIM,)]


def test_odd_numbers_ids_and_sizes_are_refused_and_the_session_goes_on(world):
    thief = world["thief"]
    ws, answer = thief.connect(node_id="evil.id")
    close_socket(ws)
    assert answer["code"] == "malformed"
    ws, welcome = thief.connect()
    try:
        ws.send(protocol.encode({"type": "pull", "cursor": 2**70}))
        huge = protocol.decode(ws.receive(timeout=30))
        batch = [thief.event(welcome["acked_seq"] + 1 + i, "settings_changed",
                             {"wifi_name": "x"}) for i in range(protocol.MAX_BATCH_EVENTS + 1)]
        ws.send(protocol.encode_batch(9, batch))
        big = protocol.decode(ws.receive(timeout=30))
        ws.send(protocol.encode({"type": "ping"}))
        still = protocol.decode(ws.receive(timeout=30))
    finally:
        close_socket(ws)
    assert (huge["code"], big["code"], still["type"]) == ("malformed", "too_large", "pong")


def test_a_node_id_holds_one_session_and_idle_sockets_do_not_starve_hq(world):
    hq, thief = world["hq"], world["thief"]
    first, _ = thief.connect()
    second, welcome = thief.connect()
    try:
        assert welcome["type"] == "welcome"
        wait_until(lambda: not first.connected, timeout=15,
                   what="HQ closes the older session of the same node id")
    finally:
        close_socket(first)
        close_socket(second)
    # Sockets that never say who they are: a few wait their turn, the rest are turned away
    # at once, and HQ's pages and API answer meanwhile.
    idle = []
    try:
        for _ in range(60):
            idle.append(Client.connect(thief.url, ssl_context=thief.context))
        started = time.monotonic()
        assert hq.get("/api/v1/summary", world["operator"]).status_code == 200
        assert requests.get(f"{hq.url}/public", verify=hq.verify, timeout=10).ok
        assert time.monotonic() - started < 5
        busy = 0
        for ws in idle:
            try:
                answer = ws.receive(timeout=15)  # what came before a close is still read
            except ConnectionClosed:
                answer = None
            if answer and protocol.decode(answer).get("code") == "busy":
                busy += 1
        assert busy >= 60 - 32
    finally:
        for ws in idle:
            close_socket(ws)


# Last: it revokes the thief's credential, which the tests above use.
def test_a_revoked_node_is_refused_and_can_be_enrolled_again(world, tmp_path):
    hq, thief, stolen = world["hq"], world["thief"], world["stolen"]
    done = run_cli("hq", "revoke", "--data", str(hq.data), "--node", thief.node_id)
    assert thief.node_id in done.stdout
    ws, answer = thief.connect()
    close_socket(ws)
    assert (answer["type"], answer["code"]) == ("error", "revoked")
    # The laptop comes back (or the thief starts it): it says why it does not sync.
    node = start_node(stolen.data)
    try:
        status = wait_until(lambda: (s := api(node, "GET", "/api/v1/sync-status",
                                              node.token("volunteer")).json())
                            and s["revoked"] and s, timeout=60, what="the node learns")
        assert not status["connected"]
        desk = requests.get(f"{node.https}/desk?lang=en", verify=node.verify, timeout=10,
                            headers={"Authorization": f"Bearer {node.token('volunteer')}"})
        assert "HQ refused this node" in desk.text
    finally:
        node.stop()
    history = read(hq.data, "SELECT count(*) FROM events WHERE node_id = ?",
                   (thief.node_id,))[0][0]
    # Enrolled again by HQ with a new code: a new credential, the shelter's history kept.
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", THIEF).stdout.strip()
    node = start_node(stolen.data, "--hq", hq.url, "--enroll", code)
    try:
        wait_until(lambda: api(node, "GET", "/api/v1/sync-status",
                               node.token("volunteer")).json()["connected"], timeout=60,
                   what="the re-enrolled node syncs")
        new_credential = read(stolen.data, "SELECT value FROM meta WHERE key = "
                                           "'hq_credential'")[0][0]
        assert new_credential != thief.credential
        # Under a new node id: the thief may have used the old one's sequence numbers;
        # and new cards under a new key: the thief holds the old one.
        new_id = read(stolen.data, "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
        assert new_id != thief.node_id
        keys = dict(read(stolen.data, "SELECT node_id, public_key FROM card_keys"))
        assert keys[new_id] != keys[thief.node_id]
        assert read(hq.data, "SELECT count(*) FROM events WHERE node_id = ?",
                    (thief.node_id,))[0][0] >= history
    finally:
        node.stop()
    ws, answer = thief.connect()  # the old credential stays dead
    close_socket(ws)
    assert answer["code"] in ("unauthorized", "revoked")
