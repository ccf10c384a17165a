"""Enrollment over a bad link, against a real HQ: failures on the way are tried again, an
answer from HQ ends it at once, an answer lost after HQ spent the code costs nothing (the
same node gets the same credential; anyone else holding the code meets "used"), and a
fresh node takes the shelter id of the code it is enrolled with."""

from __future__ import annotations

import copy
import hashlib
import secrets
import subprocess
import threading
import time

import pytest
import requests

from shelter.core import tls
from shelter.core.node import NodeContext
from shelter.core.server import free_loopback_port as free_port
from shelter.domain.cards import parse_code
from shelter.domain.households import register_household
from sync import client, protocol

from .conftest import (
    SHELTER,
    VALID_HOUSEHOLD,
    GiveUp,
    NodeServer,
    api,
    run_cli,
    start_node,
    wait_until,
)
from .faultproxy import Fate, FaultProxy
from .test_sync_faults import assert_exactly_once, read

X = "E2710000007001"


class Gate(FaultProxy):
    """Drops every new connection (the node sees a reset or an SSLEOFError) until
    ``opened``, or only the first ``drops`` of them."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.opened = threading.Event()
        self.drops: int | None = None
        self.dropped = 0

    def _fate(self) -> Fate:
        if self.opened.is_set() or (self.drops is not None and self.dropped >= self.drops):
            return Fate("pass")
        self.dropped += 1
        return Fate("drop")


def new_code(hq, shelter_id: str) -> str:
    return run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", shelter_id
                   ).stdout.strip()


def credential_at_hq(hq, node_id: str) -> tuple[str, str] | None:
    rows = read(hq.data / "shelter.db", "SELECT credential_hash, shelter_id FROM "
                "hq_credentials WHERE node_id = ?", (node_id,))
    return rows[0] if rows else None


def spent(hq, code: str) -> bool:
    secret = code.split(".")[1]
    digest = hashlib.sha256(secret.encode()).hexdigest()
    return read(hq.data / "shelter.db", "SELECT used_at IS NOT NULL FROM hq_enrollments "
                "WHERE code_hash = ?", (digest,)) == [(1,)]


def test_enroll_tries_again_when_the_first_connections_are_dropped(hq, tmp_path):
    """The SSLEOFError of 200 nodes enrolling at once: a dropped connection is retried."""
    proxy = Gate(hq.port).start()
    proxy.drops = 3
    try:
        ctx = NodeContext(tmp_path / "n", shelter_id=X)
        enrolled = client.enroll(ctx, f"https://127.0.0.1:{proxy.port}", new_code(hq, X),
                                 first_wait=0.05)
        assert enrolled.shelter_id == X and proxy.dropped == 3
        assert credential_at_hq(hq, ctx.node_id) is not None
    finally:
        proxy.stop()


def test_a_lost_answer_gets_the_same_credential_and_a_thief_gets_nothing(hq, tmp_path,
                                                                         monkeypatch):
    """HQ spent the code, its answer never arrived: the node's retry carries the same
    proof and gets the same credential. The code alone (or with the node id, which cards
    show) is "used" for anyone else, at once."""
    real, lost = client._expect, []

    def losing(ws, wanted, timeout):
        answer = real(ws, wanted, timeout)
        if not lost:
            lost.append(answer)
            raise ConnectionResetError("the answer was lost on the way")
        return answer

    monkeypatch.setattr(client, "_expect", losing)
    ctx = NodeContext(tmp_path / "n", shelter_id=X)
    code = new_code(hq, X)
    client.enroll(ctx, hq.url, code, first_wait=0.05)
    credential = ctx.db.execute("SELECT value FROM meta WHERE key = 'hq_credential'"
                                ).fetchone()[0]
    assert credential == lost[0]["credential"]
    assert credential_at_hq(hq, ctx.node_id) == (
        hashlib.sha256(credential.encode()).hexdigest(), X)
    monkeypatch.setattr(client, "_expect", real)

    thief = NodeContext(tmp_path / "thief", shelter_id=X)
    started = time.monotonic()
    with pytest.raises(client.SyncRefused) as refused:
        client.enroll(thief, hq.url, code, first_wait=5)
    assert refused.value.code == "used_code" and time.monotonic() - started < 5
    for proof in (secrets.token_urlsafe(32), None):  # the victim's id, not its proof
        ws = client._connect(thief.data_dir, hq.url)
        try:
            ws.send(protocol.encode({"type": "enroll", "protocol": protocol.PROTOCOL_VERSION,
                                     "node_id": ctx.node_id, "shelter_id": X,
                                     "code": code.split(".")[1], "proof": proof}))
            with pytest.raises(client.SyncRefused) as refused:
                client._expect(ws, "enrolled", 10)
            assert refused.value.code == "used_code"
        finally:
            client.close_socket(ws)
    assert credential_at_hq(hq, ctx.node_id)[0] == hashlib.sha256(
        credential.encode()).hexdigest()


def _launch(data, *extra: str) -> tuple[subprocess.Popen[str], NodeServer]:
    port, http_port = free_port(), free_port()
    process = subprocess.Popen(
        [SHELTER, "node", "--data", str(data), "--port", str(port), "--http-port",
         str(http_port), "--host", "127.0.0.1", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    return process, NodeServer(data, port, process, http_port)


def _ready(node: NodeServer) -> bool:
    if node.process.poll() is not None:
        raise GiveUp(f"node exited: {node.process.stdout.read() if node.process.stdout else ''}")
    return requests.get(f"{node.https}/register", verify=node.verify, timeout=2).ok


def test_a_node_started_before_hq_answers_enrolls_once_it_does(hq, tmp_path):
    """HQ unreachable for the node's first tries (every connection dropped until the node
    has tried twice), then reachable: the node enrolls and serves, nobody restarts it."""
    proxy = Gate(hq.port).start()
    process, node = _launch(tmp_path / "n", "--shelter-id", X, "--hq",
                            f"https://127.0.0.1:{proxy.port}", "--enroll", new_code(hq, X),
                            "--enroll-retry-wait", "0.3")
    try:
        wait_until(lambda: proxy.dropped >= 2 or process.poll() is not None, timeout=20,
                   what="the node's first tries")
        assert process.poll() is None, "the node gave up instead of trying again"
        proxy.opened.set()
        wait_until(lambda: _ready(node), timeout=30, what="the enrolled node serving")
    finally:
        node.stop()
        proxy.stop()


def test_a_used_code_is_refused_plainly_and_at_once(hq, tmp_path):
    code = new_code(hq, X)
    client.enroll(NodeContext(tmp_path / "first", shelter_id=X), hq.url, code)
    started = time.monotonic()
    again = run_cli("node", "--data", str(tmp_path / "second"), "--port", str(free_port()),
                    "--shelter-id", X, "--hq", hq.url, "--enroll", code, check=False)
    assert again.returncode == 1 and time.monotonic() - started < 15
    assert "already used" in again.stderr and "Ask HQ for a new one" in again.stderr, \
        again.stderr


def test_a_fresh_node_becomes_the_shelter_its_code_is_for(hq, tmp_path):
    node = start_node(tmp_path / "n", "--hq", hq.url, "--enroll", new_code(hq, X),
                      "--sync-max-backoff", "2")
    try:
        body = copy.deepcopy(VALID_HOUSEHOLD)
        made = api(node, "POST", "/api/v1/households", node.token("kiosk"), json=body)
        assert made.status_code == 201, made.text
        card = parse_code(made.json()["members"][0]["code"], node.card_keys())
        assert card.shelter_id == X and card.verified
        assert_exactly_once(node, hq)
        own = read(node.data / "shelter.db", "SELECT value FROM meta WHERE key = 'node_id'")
        assert credential_at_hq(hq, own[0][0])[1] == X  # its hello says X, or HQ refuses
    finally:
        node.stop()


def test_a_code_for_another_shelter_is_refused_with_the_reason(hq, tmp_path):
    """Cards issued as Y: the node stays Y and the code for X stays unspent. An explicit
    --shelter-id that is not the code's: refused too."""
    y = "E2710000007002"
    issued = NodeContext(tmp_path / "y", shelter_id=y)
    register_household(issued.store, issued.identity, copy.deepcopy(VALID_HOUSEHOLD))
    code = new_code(hq, X)
    set_up = NodeContext(tmp_path / "set-up", shelter_id=y)  # given once, no card yet
    set_up.db.conn.close()
    for data, extra in ((issued.data_dir, ()), (tmp_path / "fresh", ("--shelter-id", y)),
                        (set_up.data_dir, ())):
        refused = run_cli("node", "--data", str(data), "--port", str(free_port()), *extra,
                          "--hq", hq.url, "--enroll", code, check=False)
        assert refused.returncode == 1, refused.stdout
        assert f"this code is for shelter {X}, not {y}" in refused.stderr, refused.stderr
        assert not spent(hq, code)
    assert NodeContext(issued.data_dir).shelter_id == y
    assert NodeContext(set_up.data_dir).shelter_id == y


@pytest.mark.parametrize("node_id, proof", [("a\nb" * 10, None), ("N" + "é" * 9, None),
                                            ("NABCDEFGH2", "short"), ("NABCDEFGH2", 7)])
def test_a_malformed_enroll_is_refused_with_a_reason_and_spends_nothing(hq, tmp_path,
                                                                       node_id, proof):
    ctx = NodeContext(tmp_path / "n", shelter_id=X)
    code = new_code(hq, X)
    ca, _ = tls.ca_paths(hq.data)  # pinned as the code would pin it
    (ctx.data_dir / client.HQ_CA_FILE).write_text(ca.read_text())
    ws = client._connect(ctx.data_dir, hq.url)
    try:
        ws.send(protocol.encode({"type": "enroll", "protocol": protocol.PROTOCOL_VERSION,
                                 "node_id": node_id, "shelter_id": X,
                                 "code": code.split(".")[1], "proof": proof}))
        with pytest.raises(client.SyncRefused) as refused:
            client._expect(ws, "enrolled", 10)
        assert refused.value.code == "malformed", refused.value
    finally:
        client.close_socket(ws)
    assert not spent(hq, code)


def test_a_node_restarted_after_its_answer_was_lost_still_gets_its_credential(
        hq, tmp_path, monkeypatch):
    """The last try's answer lost and the node stopped: started again with the same code,
    it proves it is the node HQ spent the code for (its proof is kept in its data
    directory until it is enrolled)."""
    real = client._expect

    def losing(ws, wanted, timeout):
        real(ws, wanted, timeout)
        raise ConnectionResetError("the answer was lost on the way")

    monkeypatch.setattr(client, "_expect", losing)
    ctx = NodeContext(tmp_path / "n", shelter_id=X)
    code = new_code(hq, X)
    with pytest.raises(ConnectionResetError):
        client.enroll(ctx, hq.url, code, attempts=1)
    assert spent(hq, code)
    monkeypatch.setattr(client, "_expect", real)
    ctx.db.conn.close()
    again = NodeContext(tmp_path / "n")  # the restart: a new process, the same directory
    client.enroll(again, hq.url, code, first_wait=0.05)
    credential = again.db.execute("SELECT value FROM meta WHERE key = 'hq_credential'"
                                  ).fetchone()[0]
    assert credential_at_hq(hq, again.node_id) == (
        hashlib.sha256(credential.encode()).hexdigest(), X)
