"""A standby at the shelter, with real processes: an HQ, a node answering only once its
standby stored a write (--sync-standby), and the standby following it.

* The fault test: 20 desks register and scan; the node's whole process group is killed
  (-9) and its data directory deleted; the standby is promoted. Every request that got a
  2xx is there, old cards scan at the promoted node, and HQ ends with exactly its numbers.
* A standby that stops answering never stops the door: the node answers within its
  deadline and says it is alone, until the standby is back and has caught up.
* Refusals: wrong, used and foreign codes; a bad credential; malformed frames.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import ssl
import subprocess
import threading
import time
import zlib
from pathlib import Path

import pytest
import requests
from simple_websocket import Client

from sync.client import close_socket

from .conftest import (
    SHELTER,
    GiveUp,
    NodeServer,
    Served,
    api,
    enrolled_node,
    free_port,
    run_cli,
    start_hq,
    start_node,
    wait_until,
)

SHELTER_ID = "E2710000006161"
DESKS = 20
LOAD_SECONDS = 4.0


def read(path: Path, sql: str, args: tuple = ()) -> list[tuple]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def standby_code(node: NodeServer) -> str:
    code = run_cli("standby-code", "--data", str(node.data)).stdout.strip()
    assert code.startswith("SBY1."), code
    return code


def start_standby(data: Path, node: NodeServer, code: str | None) -> Served:
    port = free_port()
    process = subprocess.Popen(
        [SHELTER, "standby", "--data", str(data), "--port", str(port), "--host", "127.0.0.1",
         "--primary", node.https, *(["--enroll", code] if code else [])],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    served = Served(data, port, process)

    def following() -> bool:
        if process.poll() is not None:
            raise GiveUp(f"standby exited: {process.stdout.read() if process.stdout else ''}")
        answer = requests.get(f"{served.https}/standby/status.json", verify=served.verify,
                              timeout=2).json()
        return answer["following"] and answer["behind"] == 0

    try:
        wait_until(following, timeout=30, what="the standby following its node")
    except BaseException:
        served.stop()
        raise
    return served


def standby_status(node: NodeServer, token: str) -> dict:
    return api(node, "GET", "/api/v1/sync-status", token).json()["standby"]


def caught_up(node: NodeServer, token: str) -> bool:
    status = standby_status(node, token)
    return status["connected"] and not status["alone"] and status["behind"] == 0


def household(tag: str, n: int, size: int) -> dict:
    return {"address": "大阪市中央区大手前2丁目", "whereabouts": "shelter", "consent": "relatives",
            "language": "ja", "members": [
                {"family_name": "予備", "given_name": f"{tag}{n}-{m}",
                 "family_name_kana": "よび", "birth_date": f"{1940 + m * 9}-0{1 + n % 9}-1{m}"}
                for m in range(size)]}


class Desk(threading.Thread):
    """A desk tablet: registers households and scans their members, recording what the
    node answered (and the request in flight when it died)."""

    def __init__(self, node: NodeServer, token: str, number: int, stop_at: float) -> None:
        super().__init__(daemon=True)
        self.node, self.number, self.stop_at = node, number, stop_at
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"
        self.households: dict[str, list[dict]] = {}  # answered 201
        self.latest: dict[str, str] = {}  # person -> status the last answer said
        self.unsure: set[str] = set()  # a later request got no answer
        self.marks: list[str] = []  # X-Shelter-Standby of every 2xx
        self.cards: list[str] = []
        self.errors: list[str] = []  # an answer that is not the one asked for

    def post(self, path: str, body: dict) -> requests.Response | None:
        try:
            answer = self.session.post(f"{self.node.https}{path}", json=body, timeout=15,
                                       verify=self.node.verify)  # per request: not the env's
        except requests.RequestException:
            return None
        if answer.status_code < 300:
            self.marks.append(answer.headers.get("X-Shelter-Standby", ""))
        return answer

    def run(self) -> None:
        n = 0
        while time.monotonic() < self.stop_at:
            answer = self.post("/api/v1/households", household(f"D{self.number}-", n, 3))
            if answer is None:
                return  # the node is gone; an unanswered registration may or may not be there
            if answer.status_code != 201:
                self.errors.append(answer.text)
                return
            members = answer.json()["members"]
            self.households[answer.json()["household_id"]] = members
            self.cards.append(members[0]["code"])
            for member in members:
                for action in ("check_in", "check_out"):
                    answer = self.post("/api/v1/scans", {"code": member["code"],
                                                          "action": action,
                                                          "destination": "home"})
                    if answer is None:
                        self.unsure.add(member["person_id"])
                        return
                    if answer.status_code != 200:
                        self.errors.append(answer.text)
                        return
                    self.latest[member["person_id"]] = answer.json()["presence"]["status"]
                    if action == "check_in" and n % 2:
                        break  # every other household stays in the shelter
            n += 1


def test_losing_the_node_loses_nothing_it_said_was_saved(tmp_path):
    hq = start_hq(tmp_path / "hq")
    node = enrolled_node(hq, tmp_path / "node", SHELTER_ID, "--sync-standby",
                         "--standby-wait", "5", "--sync-max-backoff", "2")
    standby = None
    try:
        volunteer = node.token("volunteer")
        standby = start_standby(tmp_path / "standby", node, standby_code(node))
        wait_until(lambda: caught_up(node, volunteer), what="the node to see its standby")
        primary_ca = (node.data / "tls" / "ca.crt").read_bytes()
        stop_at = time.monotonic() + LOAD_SECONDS + 30  # ended by the kill below
        desks = [Desk(node, volunteer, i, stop_at) for i in range(DESKS)]
        for desk in desks:
            desk.start()
        time.sleep(LOAD_SECONDS)  # the load runs; then the node's disk and laptop are lost
        os.killpg(node.process.pid, signal.SIGKILL)
        node.process.wait()
        for desk in desks:
            desk.join(20)
        shutil.rmtree(node.data)

        assert not [e for d in desks for e in d.errors]
        marks = [m for d in desks for m in d.marks]
        assert len(marks) > 200, "the desks did too little to show anything"
        assert set(marks) == {"stored"}, "a write was answered without the standby"
        promoted = run_cli("promote", "--data", str(standby.data))
        assert "the standby now serves as the node" in promoted.stdout, promoted.stdout
        assert f"tablets must now use: https://localhost:{standby.port}/desk" \
            in promoted.stdout, promoted.stdout
        # The tablets trust the node's own CA; the promoted node serves with it.
        assert (standby.data / "tls" / "ca.crt").read_bytes() == primary_ca
        now = NodeServer(standby.data, standby.port, standby.process, 0)
        db = standby.data / "shelter.db"

        households = {r[0] for r in read(db, "SELECT household_id FROM households")}
        people = {r[0] for r in read(db, "SELECT person_id FROM persons")}
        presence = dict(read(db, "SELECT person_id, status FROM presence"))
        for desk in desks:
            assert set(desk.households) <= households
            for members in desk.households.values():
                assert {m["person_id"] for m in members} <= people
            for person, status in desk.latest.items():
                if person not in desk.unsure:
                    assert presence.get(person) == status, (person, status)

        # Old cards scan at the promoted node, with the same token.
        old_card = desks[0].cards[0]
        scanned = api(now, "POST", "/api/v1/scans", volunteer,
                      json={"code": old_card, "action": "auto"})
        assert scanned.status_code == 200, scanned.text
        assert scanned.json()["card_verified"] is True

        # HQ ends with exactly the promoted node's numbers.
        operator = run_cli("token", "create", "--data", str(hq.data), "--role",
                           "operator").stdout.strip()
        fields = ("present", "out", "registered", "at_home", "in_car")

        def agree():
            here = api(now, "GET", "/api/v1/headcount", volunteer).json()
            there = hq.get("/api/v1/summary", operator).json()
            mine, theirs = ({k: d[k] for k in fields} for d in (here, there))
            return mine == theirs and mine["registered"] >= len(people) and mine
        numbers = wait_until(agree, timeout=60, interval=0.5, what="HQ to agree")
        assert numbers["registered"] == len(people)
    finally:
        node.stop()
        if standby is not None:
            standby.stop()
        hq.stop()


@pytest.fixture(scope="module")
def followed(tmp_path_factory):
    """A node waiting for its standby (1 s), and the standby following it."""
    base = tmp_path_factory.mktemp("standby")
    node = start_node(base / "node", "--shelter-id", SHELTER_ID, "--sync-standby")
    standby = None
    try:
        code = standby_code(node)
        standby = start_standby(base / "standby", node, code)
        yield node, standby, code, node.token("volunteer")
    finally:
        node.stop()
        if standby is not None:
            standby.stop()


def scan_new_person(node: NodeServer, token: str, n: int) -> requests.Response:
    registered = api(node, "POST", "/api/v1/households", token, json=household("S", n, 1))
    assert registered.status_code == 201
    return api(node, "POST", "/api/v1/scans", token,
               json={"code": registered.json()["members"][0]["code"], "action": "check_in"})


def test_a_standby_that_stops_answering_never_stops_the_door(followed):
    node, standby, _, token = followed
    wait_until(lambda: caught_up(node, token), what="the standby caught up")
    answer = scan_new_person(node, token, 1)
    assert answer.headers["X-Shelter-Standby"] == "stored"

    os.killpg(standby.process.pid, signal.SIGSTOP)  # frozen: its connection stays open
    try:
        started = time.monotonic()
        answer = api(node, "POST", "/api/v1/households", token, json=household("S", 2, 1))
        waited = time.monotonic() - started
        assert answer.status_code == 201 and answer.headers["X-Shelter-Standby"] == "alone"
        assert 0.9 < waited < 3.0, waited  # its deadline (1 s), and no longer
        started = time.monotonic()
        answer = api(node, "POST", "/api/v1/scans", token,
                     json={"code": answer.json()["members"][0]["code"], "action": "check_in"})
        assert answer.headers["X-Shelter-Standby"] == "alone"
        assert time.monotonic() - started < 0.9  # alone: answered at once from then on
        status = standby_status(node, token)
        assert status["alone"] and status["behind"] >= 2, status
        desk = api(node, "GET", "/desk?lang=en", token)
        assert "Standby not answering: this node is alone" in desk.text
    finally:
        os.killpg(standby.process.pid, signal.SIGCONT)

    wait_until(lambda: caught_up(node, token), timeout=30, what="the standby back, caught up")
    assert "Standby: up to date" in api(node, "GET", "/desk/headcount?lang=en", token).text
    assert scan_new_person(node, token, 3).headers["X-Shelter-Standby"] == "stored"
    mine = set(read(node.data / "shelter.db", "SELECT event_id FROM events"))
    theirs = set(read(standby.data / "shelter.db", "SELECT event_id FROM events"))
    assert mine == theirs

    os.killpg(standby.process.pid, signal.SIGKILL)  # gone: alone at once, no wait at all
    standby.process.wait()
    wait_until(lambda: not standby_status(node, token)["connected"], what="the node to see")
    started = time.monotonic()
    answer = scan_new_person(node, token, 4)
    assert answer.headers["X-Shelter-Standby"] == "alone"
    assert time.monotonic() - started < 0.9
    standby.process = subprocess.Popen(
        [SHELTER, "standby", "--data", str(standby.data), "--port", str(standby.port),
         "--host", "127.0.0.1", "--primary", node.https], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, start_new_session=True)
    wait_until(lambda: caught_up(node, token), timeout=30, what="the standby restarted")
    assert scan_new_person(node, token, 5).headers["X-Shelter-Standby"] == "stored"


def socket_to(node: NodeServer):
    context = ssl.create_default_context(cafile=node.verify)
    return Client.connect(f"wss://127.0.0.1:{node.port}/standby", ssl_context=context)


def answer_to(ws, frame) -> dict:
    ws.send(frame)
    for _ in range(20):
        text = ws.receive(timeout=5)
        assert text is not None, "no answer"
        message = json.loads(zlib.decompress(text) if isinstance(text, bytes) else text)
        if message["type"] not in ("ping", "rows"):
            return message
    raise AssertionError("no answer but pings")


def test_what_the_node_refuses(followed, tmp_path):
    node, standby, used_code, token = followed
    _, secret, pin = used_code.split(".")
    cases = {
        "used": (used_code, "already used"),
        "unknown": (f"SBY1.{'0' * 20}.{pin}", "did not make this standby code"),
        "foreign": (f"SBY1.{secret}.{'0' * 20}", "not the one that made this code"),
        "garbled": ("ENR1.ABC", "not a standby code"),
    }
    for name, (code, said) in cases.items():
        refused = subprocess.run(
            [SHELTER, "standby", "--data", str(tmp_path / name), "--port", str(free_port()),
             "--primary", node.https, "--enroll", code, "--enroll-retry-wait", "0"],
            capture_output=True, text=True, timeout=60)
        assert refused.returncode == 1 and said in refused.stderr, (name, refused.stderr)
    # A standby's directory is not a node's: a node would speak under the node's own id.
    as_node = run_cli("node", "--data", str(standby.data), "--port", str(free_port()),
                      check=False)
    assert as_node.returncode == 1 and "shelter promote" in as_node.stderr

    hello = {"type": "standby_hello", "protocol": 1, "standby_id": "SX", "credential": "x",
             "cursor": 0, "cursor_event": ""}
    for first, code in ((json.dumps(hello), "unauthorized"), ("not json", "malformed"),
                        (b"\x00garbage", "malformed"),
                        (json.dumps({"type": "standby_enroll", "protocol": 1,
                                     "standby_id": "a b", "code": "X", "proof": "p" * 40}),
                         "malformed"),
                        (json.dumps({**hello, "protocol": 9}), "protocol_version")):
        ws = socket_to(node)
        try:
            message = answer_to(ws, first)
            assert message["type"] == "error" and message["code"] == code, (first, message)
            assert message["message"]
        finally:
            close_socket(ws)

    # Within a session: a malformed frame is answered with the reason, the session goes on.
    values = dict(read(standby.data / "shelter.db", "SELECT key, value FROM meta WHERE key "
                                                    "IN ('standby_id', 'standby_credential')"))
    ws = socket_to(node)
    try:
        welcome = answer_to(ws, json.dumps({**hello, "standby_id": values["standby_id"],
                                            "credential": values["standby_credential"]}))
        assert welcome["type"] == "standby_welcome" and welcome["shelter_id"] == SHELTER_ID
        for bad in ("{", json.dumps({"type": "standby_ack", "rowid": -1}),
                    json.dumps({"type": "standby_ack", "rowid": 10**9})):
            message = answer_to(ws, bad)
            assert message["type"] == "error" and message["code"] == "malformed", message
        assert answer_to(ws, json.dumps({"type": "ping"}))["type"] == "pong"
    finally:
        close_socket(ws)
    assert requests.get(f"{node.https}/register", verify=node.verify, timeout=5).ok
    # A manager sees each refusal that reached the node (used, unknown, bad credential,
    # malformed id) in the audit log, with the address that asked.
    refusals = read(node.data / "shelter.db", "SELECT actor, detail FROM audit_log "
                                              "WHERE action = 'standby_refused'")
    assert {d for _, d in refusals} >= {"enroll:used_code", "enroll:unknown_code",
                                        "hello:unknown", "enroll:malformed"}, refusals
    assert all(actor == "standby@127.0.0.1" for actor, _ in refusals)
    wait_until(lambda: caught_up(node, token), timeout=30, what="the real standby back")
