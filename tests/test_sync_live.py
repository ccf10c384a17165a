"""Sync between real processes on loopback: an HQ and a shelter node, enrollment, the node
pushing its events, and the refusals (wrong credential, other protocol version, garbage)."""

from __future__ import annotations

import copy
import ssl
import threading
from types import SimpleNamespace

import pytest
import requests
from simple_websocket import Client

from shelter.core.node import NodeContext
from shelter.domain.households import register_household
from sync import client, protocol
from sync.client import close_socket

from .conftest import (
    VALID_HOUSEHOLD,
    api,
    enrolled_node,
    free_port,
    run_cli,
    start_hq,
    wait_until,
)
from .test_sync_faults import assert_exactly_once, node_events, read


@pytest.fixture(scope="module")
def shelter_node(hq, tmp_path_factory):
    node = enrolled_node(hq, tmp_path_factory.mktemp("synced-node"), "E2710000007777",
                         "--shelter-name", "同期テスト小学校")
    yield node
    node.stop()


def shelter_row(hq, token, shelter_id):
    rows = hq.get("/api/v1/shelters", token).json()["shelters"]
    return next((r for r in rows if r["shelter_id"] == shelter_id), None)


def test_a_node_enrolls_and_its_arrivals_reach_hq(hq, hq_token, shelter_node):
    body = copy.deepcopy(VALID_HOUSEHOLD)
    members = api(shelter_node, "POST", "/api/v1/households", shelter_node.token("kiosk"),
                  json=body).json()["members"]
    api(shelter_node, "POST", "/api/v1/scans", shelter_node.token("volunteer"),
        json={"code": members[0]["code"], "action": "check_in"})
    row = wait_until(lambda: (r := shelter_row(hq, hq_token, "E2710000007777"))
                     and r["present"] == 1 and r, timeout=30, what="HQ sees the arrival")
    assert (row["registered"], row["name"], row["stale"]) == (1, "同期テスト小学校", False)
    summary = hq.get("/api/v1/summary", hq_token).json()
    assert summary["present"] >= 1 and summary["shelters_open"] >= 1
    # The node shows it: nothing waiting.
    status = wait_until(lambda: (s := api(shelter_node, "GET", "/api/v1/sync-status",
                                          shelter_node.token("volunteer")).json())
                        and s["waiting"] == 0 and s, timeout=30, what="node caught up")
    assert status["connected"]
    session = requests.Session()
    session.trust_env = False
    session.verify = shelter_node.verify
    session.headers["Authorization"] = f"Bearer {shelter_node.token('volunteer')}"
    desk = session.get(f"{shelter_node.https}/desk?lang=ja", timeout=10).text
    assert "本部：接続中" in desk


def test_hq_survives_a_restart_and_nothing_is_lost_or_doubled(hq, hq_token, shelter_node):
    before = shelter_row(hq, hq_token, "E2710000007777")["registered"]
    hq.stop()
    volunteer = shelter_node.token("volunteer")
    kiosk = shelter_node.token("kiosk")
    for name in ("一郎", "二郎"):  # HQ is down: the node works on
        body = copy.deepcopy(VALID_HOUSEHOLD)
        body["members"][0]["given_name"] = name
        member = api(shelter_node, "POST", "/api/v1/households", kiosk,
                     json=body).json()["members"][0]
        api(shelter_node, "POST", "/api/v1/scans", volunteer,
            json={"code": member["code"], "action": "check_in"})
    restarted = start_hq(hq.data, hq.port)
    hq.process = restarted.process
    row = wait_until(lambda: (r := shelter_row(hq, hq_token, "E2710000007777"))
                     and r["registered"] == before + 2 and r, timeout=90,
                     what="the node reconnects and catches up")
    assert row["present"] == before + 2
    import sqlite3
    conn = sqlite3.connect(hq.data / "shelter.db")
    try:
        doubled = conn.execute("SELECT count(*) - count(DISTINCT event_id) FROM events"
                               ).fetchone()[0]
    finally:
        conn.close()
    assert doubled == 0


def raw_session(hq, first):
    ws = Client.connect(f"wss://127.0.0.1:{hq.port}/sync",
                        ssl_context=ssl.create_default_context(cafile=hq.verify))
    try:
        ws.send(first)
        answer = ws.receive(timeout=30)
        assert answer is not None, "HQ did not answer within 30 s"
        return protocol.decode(answer)
    finally:
        close_socket(ws)


def test_wrong_credentials_versions_and_garbage_are_refused_with_a_reason(hq, shelter_node):
    hello = {"type": "hello", "protocol": 1, "node_id": "NFAKENODE01",
             "shelter_id": "E2710000007777", "credential": "shc_guess"}
    assert raw_session(hq, protocol.encode(hello))["code"] == "unauthorized"
    other = raw_session(hq, protocol.encode({**hello, "protocol": 2}))
    assert other["code"] == "protocol_version" and "1" in other["message"]
    assert raw_session(hq, "this is not json")["code"] == "malformed"
    assert raw_session(hq, b"\x00\x01 not zlib")["code"] == "malformed"
    enroll = {"type": "enroll", "protocol": 1, "node_id": "NFAKENODE01",
              "shelter_id": "E2710000007777", "code": "X" * 20}
    assert raw_session(hq, protocol.encode(enroll))["code"] == "unknown_code"


def test_an_enrollment_code_from_another_hq_is_refused(hq, tmp_path):
    other = tmp_path / "other-hq"
    code = run_cli("hq", "enroll", "--data", str(other), "--shelter", "E2710000008888"
                   ).stdout.strip()
    refused = run_cli("node", "--data", str(tmp_path / "n"), "--port", str(free_port()),
                      "--shelter-id", "E2710000008888", "--hq", hq.url, "--enroll", code,
                      check=False)
    assert refused.returncode == 1 and "not the one that issued" in refused.stderr


def test_what_hq_decides_comes_down_to_the_shelter(hq, hq_token, shelter_node):
    from shelter.core.node import NodeContext
    from shelter.domain import supply_requests
    from shelter.domain.settings import configure_shelter, send_message
    manager = shelter_node.token("manager")
    created = api(shelter_node, "POST", "/api/v1/supply-requests", manager, json={
        "lines": [{"item_id": "water", "quantity": 500}], "urgency": "urgent"}).json()
    request_id = created["request_id"]

    def hq_has_it():
        conn = NodeContext(hq.data, role="hq")
        try:
            return conn.db.execute("SELECT 1 FROM supply_requests WHERE request_id = ?",
                                   [request_id]).fetchone()
        finally:
            conn.db.conn.close()

    wait_until(hq_has_it, timeout=30, what="the request reaches HQ")
    hq_ctx = NodeContext(hq.data, role="hq")
    supply_requests.acknowledge(hq_ctx.store, request_id, "手配します")
    supply_requests.dispatch(hq_ctx.store, request_id, [{"item_id": "water", "quantity": 480}],
                      "2026-11-26T10:00:00+09:00")
    configure_shelter(hq_ctx.store, "E2710000007777", {"capacity": "420", "status": "full"})
    send_message(hq_ctx.store, "E2710000007777", "明朝9時に給水車が到着します")
    send_message(hq_ctx.store, "E2710000009999", "他の避難所宛て")
    hq_ctx.db.conn.close()

    def status():
        listed = api(shelter_node, "GET", "/api/v1/supply-requests", manager).json()
        return next(r for r in listed["requests"] if r["request_id"] == request_id)["status"]

    wait_until(lambda: status() == "dispatched", timeout=45, what="HQ's steps come down")
    headcount = api(shelter_node, "GET", "/api/v1/headcount", manager).json()
    assert headcount["capacity"] == 420
    conn = NodeContext(shelter_node.data)
    try:
        messages = [r[0] for r in conn.db.execute("SELECT text FROM hq_messages")]
        foreign = conn.db.execute("SELECT count(*) FROM events WHERE type = 'hq_message'"
                                  ).fetchone()[0]
    finally:
        conn.db.conn.close()
    assert messages == ["明朝9時に給水車が到着します"] and foreign == 1


def test_a_person_moves_to_another_shelter_and_both_learn_it(hq, hq_token, shelter_node,
                                                             tmp_path):
    from shelter.core.node import NodeContext
    other = enrolled_node(hq, tmp_path / "b", "E2710000006666")
    try:
        body = copy.deepcopy(VALID_HOUSEHOLD)
        body["members"][0]["given_name"] = "移動"
        registered = api(shelter_node, "POST", "/api/v1/households",
                         shelter_node.token("kiosk"), json=body).json()
        member = registered["members"][0]
        api(shelter_node, "POST", "/api/v1/scans", shelter_node.token("volunteer"),
            json={"code": member["code"], "action": "check_in"})
        # The family walks to shelter B and shows the card from A (never checked out of A).
        at_b = api(other, "POST", "/api/v1/scans", other.token("volunteer"),
                   json={"code": member["code"], "action": "check_in"}).json()
        assert at_b["provisional"] and at_b["registered_shelter"] == "E2710000007777"

        def where_hq_has_them():
            conn = NodeContext(hq.data, role="hq")
            try:
                row = conn.db.execute("SELECT shelter_id FROM presence WHERE person_id = ?",
                                      [member["person_id"]]).fetchone()
                flags = conn.db.execute("SELECT count(*) FROM presence_flags WHERE "
                                        "person_id = ?", [member["person_id"]]).fetchone()[0]
            finally:
                conn.db.conn.close()
            return row and row[0] == "E2710000006666" and flags and row

        wait_until(where_hq_has_them, timeout=45, what="HQ places them at B and flags it")

        def a_knows():
            conn = NodeContext(shelter_node.data)
            try:
                from shelter.domain.roster import describe
                return describe(conn.db, member["person_id"], "E2710000007777")[
                    "presence"]["status"] == "elsewhere"
            finally:
                conn.db.conn.close()

        wait_until(a_knows, timeout=45, what="A learns they moved")
        page = requests.get(
            f"{shelter_node.https}/staff/households/{registered['household_id']}?lang=en",
            verify=shelter_node.verify, timeout=10,
            headers={"Authorization": f"Bearer {shelter_node.token('volunteer')}"})
        assert "At another shelter</strong> (E2710000006666)" in page.text
        row = wait_until(lambda: (r := shelter_row(hq, hq_token, "E2710000006666"))
                         and r["present"] == 1 and r, timeout=30, what="B's count at HQ")
        assert row["present"] == 1
    finally:
        other.stop()


def test_an_oversize_frame_is_refused_and_the_link_recovers(hq, hq_token, shelter_node):
    ws = Client.connect(f"wss://127.0.0.1:{hq.port}/sync",
                        ssl_context=ssl.create_default_context(cafile=hq.verify))
    try:
        ws.send(b"\x78" * (2 * 1024 * 1024))  # bigger than HQ accepts in one message
        wait_until(lambda: not ws.connected, timeout=20, what="HQ to close the connection")
    finally:
        close_socket(ws)
    # Everyone else carries on.
    assert hq.get("/api/v1/summary", hq_token).status_code == 200


@pytest.mark.parametrize("offset_hours", [-1, 24])
def test_a_node_whose_clock_is_wrong_still_syncs(hq, tmp_path, offset_hours):
    shelter = f"E27100000{4 if offset_hours < 0 else 5}1{abs(offset_hours):02d}"
    node = enrolled_node(hq, tmp_path / "n", shelter, "--clock-offset",
                         str(offset_hours * 3600), "--sync-max-backoff", "2")
    try:
        from .test_sync_faults import activity as busy
        from .test_sync_faults import assert_exactly_once, read
        busy(node, 3, "時計")
        assert_exactly_once(node, hq)
        own = read(node.data / "shelter.db", "SELECT value FROM meta WHERE key = 'node_id'")
        flags = read(hq.data / "shelter.db", "SELECT count(*) FROM sync_flags WHERE node_id = ?",
                     own[0])
        # A day ahead is implausible: applied, and flagged for staff. An hour behind is not.
        assert (flags[0][0] > 0) == (offset_hours > 0)
    finally:
        node.stop()


def test_nodes_pushing_at_once_are_each_applied_exactly_once(hq, tmp_path):
    """Several nodes' backlogs arrive together: HQ applies them one transaction at a time
    on its one applying connection, and each node's events and presence come out whole."""
    stop = threading.Event()
    nodes = []
    for i in range(6):
        ctx = NodeContext(tmp_path / f"n{i}", shelter_id=f"E27100000088{i:02d}")
        people = []
        with ctx.store.write():
            for n in range(40):
                body = copy.deepcopy(VALID_HOUSEHOLD)
                body["members"] = body["members"][:1]
                body["members"][0]["given_name"] = f"同時{i}{n}"
                result = register_household(ctx.store, ctx.identity, body)
                people.append(result["members"][0]["person_id"])
            for n in range(1200):  # several batches each, so that sessions overlap
                ctx.store.append("presence_changed", {
                    "person_id": people[n % len(people)], "shelter_id": ctx.shelter_id,
                    "action": ("check_in", "go_out")[n // len(people) % 2],
                    "destination": "", "destination_detail": "", "actor": "test"})
        code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", ctx.shelter_id
                       ).stdout.strip()
        client.enroll(ctx, hq.url, code)
        nodes.append(ctx)
    try:
        for ctx in nodes:
            client.SyncClient(ctx.data_dir, stop, max_backoff=1.0).start()
        for ctx in nodes:  # each node's events at HQ exactly once, none refused
            assert_exactly_once(SimpleNamespace(data=ctx.data_dir), hq)
    finally:
        stop.set()
    presence = "SELECT person_id, status, since_hlc FROM presence WHERE shelter_id = ?"
    for ctx in nodes:
        assert len(node_events(SimpleNamespace(data=ctx.data_dir))[1]) == 1240
        assert sorted(read(hq.data / "shelter.db", presence, (ctx.shelter_id,))) == sorted(
            ctx.db.conn.execute(presence, [ctx.shelter_id]).fetchall())
