"""A node learns the names of other shelters whose cards it saw (issue 16): a card from
shelter B scanned at A shows B's id; once A has synced, A's desk names B, from HQ's
registry. A node asks with a `pull` only for ids it has seen and does not know (usually
none: the pull is byte for byte what it was), HQ answers from its registry alone, a
malformed ask is refused with a reason while the pull is answered, and a node keeps only
what it asked for, never a name for its own shelter (docs/sync-protocol.md, "Names of
other shelters")."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest

from shelter.core import meta
from shelter.core.events import new_id
from shelter.core.node import NodeContext
from shelter.domain import presence, roster
from shelter.domain.settings import change_settings
from sync import client, protocol, shelter_names

from .conftest import api, enrolled_node, run_cli, start_hq, sync_socket, wait_until
from .test_desk_day import forged

A, B, C = "E2710000002626", "E2710000002727", "E2710000002828"  # C: in no registry
B_NAME = "大阪市立北小学校"
OLD_PULL = '{"type":"pull","cursor":0,"limit":500}'  # what a pull was before names


@pytest.fixture(scope="module")
def hq(tmp_path_factory):
    """A real HQ whose registry lists A and B (the standard open-data CSV)."""
    data = tmp_path_factory.mktemp("hq-names")
    registry = data / "registry.csv"
    registry.write_text(
        "全国地方公共団体コード,共通ID,地方公共団体名,名称,所在地_連結表記,緯度,経度,想定収容人数\n"
        f"271276,{A},大阪府大阪市北区,大阪市立南小学校,大阪市北区1-1,34.70,135.50,300\n"
        f"271276,{B},大阪府大阪市北区,{B_NAME},大阪市北区2-2,34.71,135.51,200\n",
        encoding="utf-8")
    run_cli("hq", "import", "--data", str(data), str(registry))
    server = start_hq(data)
    yield server
    server.stop()


def hq_shelters(data) -> dict[str, str]:
    conn = sqlite3.connect(data / "shelter.db")
    try:
        return dict(conn.execute("SELECT shelter_id, name FROM hq_shelters").fetchall())
    finally:
        conn.close()


def asked(data) -> set[str]:
    conn = sqlite3.connect(data / "shelter.db")
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = ?",
                           [shelter_names.ASKED_KEY]).fetchone()
    finally:
        conn.close()
    return set(json.loads(row[0])) if row else set()


def test_a_card_from_b_scanned_at_a_names_b_once_a_has_synced(hq, tmp_path):
    node = enrolled_node(hq, tmp_path / "a", A, "--shelter-name", "南小学校（ノード）",
                         "--sync-max-backoff", "2")
    try:
        volunteer = node.token("volunteer")
        card_b, card_c = forged(new_id(), "北 花子", B), forged(new_id(), "遠 太郎", C)

        def scan(code: str) -> dict:
            answer = api(node, "POST", "/api/v1/scans", volunteer,
                         json={"code": code, "action": "check_in"})
            assert answer.status_code == 200, answer.text
            return answer.json()

        first = scan(card_b)  # before A has synced: B's id, no name
        assert (first["registered_shelter"], first["registered_shelter_name"],
                first["card_verified"]) == (B, "", False)
        scan(card_c)
        wait_until(lambda: B in hq_shelters(node.data) and asked(node.data) == {B, C},
                   timeout=30, what="A asks HQ for B and C, and learns B's name")
        again = scan(card_b)
        assert (again["registered_shelter"], again["registered_shelter_name"]) == (B, B_NAME)
        # C is in no registry: nothing is made up (and it is not asked again for hours).
        # A's own shelter is never taken from HQ, although the registry lists it.
        assert hq_shelters(node.data) == {B: B_NAME}
        assert scan(card_c)["registered_shelter_name"] == ""
    finally:
        node.stop()


def test_a_malformed_ask_is_refused_with_a_reason_and_the_session_goes_on(hq, tmp_path):
    ctx = NodeContext(tmp_path / "raw", shelter_id="E2710000002929")
    code = run_cli("hq", "enroll", "--data", str(hq.data), "--shelter", ctx.shelter_id
                   ).stdout.strip()
    client.enroll(ctx, hq.url, code)
    hello = {"type": "hello", "protocol": 1, "node_id": ctx.node_id,
             "shelter_id": ctx.shelter_id, "credential": meta.get(ctx.db, "hq_credential")}
    ctx.db.conn.close()
    ws, ask = sync_socket(hq)

    try:
        assert ask(hello)["type"] == "welcome"
        # A node from before this asks nothing and hears nothing new.
        plain = ask({"type": "pull", "cursor": 0})
        assert plain["type"] == "updates" and plain.keys() == {"type", "cursor", "events"}
        named = ask({"type": "pull", "cursor": 0, "shelters_unknown": [B, C, A, B]})
        assert named["shelter_names"] == {A: "大阪市立南小学校", B: B_NAME}  # the registry's
        many = [f"E27100{n:08d}" for n in range(1000)]
        for bad in (many, [], ["e2710000002727"], ["E27 1"], [B, 27], "E2710000002727",
                    {"id": B}, None, ["X" * 33]):
            refused = ask({"type": "pull", "cursor": 0, "shelters_unknown": bad})
            assert refused["type"] == "updates", bad  # the pull itself is answered
            assert refused["events"] == plain["events"] and "shelter_names" not in refused
            assert "shelters_unknown" in refused["shelter_names_refused"], bad
        assert "1 to 50" in ask({"type": "pull", "cursor": 0,
                                 "shelters_unknown": many})["shelter_names_refused"]
        assert ask({"type": "ping"})["type"] == "pong"  # the session goes on
    finally:
        client.close_socket(ws)


class FakeHQ:
    """HQ's side of a pull, as the test wants it answered (``names``: what it says)."""

    def __init__(self, names: object = None) -> None:
        self.sent: list[str] = []
        self.names = names

    def send(self, frame: str) -> None:
        self.sent.append(frame)

    def receive(self, timeout: float | None = None) -> bytes:
        asked = "shelters_unknown" in json.loads(self.sent[-1])
        extra = {"shelter_names": self.names} if asked and self.names is not None else {}
        return protocol.encode_updates(0, [], **extra)


def test_a_pull_adds_no_byte_when_nothing_is_unknown_and_keeps_only_what_it_asked(tmp_path):
    ctx = NodeContext(tmp_path / "node", shelter_id=A)
    change_settings(ctx.store, {"shelter_name": "南小学校（ノード）"})
    sync = client.SyncClient(ctx.data_dir, threading.Event())

    def pull(hq: FakeHQ) -> list[dict]:
        sync.pull(ctx, hq)
        return [json.loads(f) for f in hq.sent]

    def scan(code: str) -> None:
        presence.scan(ctx.store, A, ctx.card_keys(), code, "check_in", actor="test")

    # Nothing seen from elsewhere, or only A's own cards: the pull is what it always was.
    hq = FakeHQ({B: B_NAME})
    sync.pull(ctx, hq)
    assert hq.sent == [OLD_PULL]
    scan(forged(new_id(), "自分 一郎", A))  # a card naming A, not signed here: still A
    hq = FakeHQ({B: B_NAME})
    sync.pull(ctx, hq)
    assert hq.sent == [OLD_PULL]
    # A card from B: the next pull asks for B and keeps HQ's name; a name for an id it
    # did not ask, or for its own shelter, is not kept; the pull after asks nothing.
    scan(forged(new_id(), "北 花子", B))
    said = pull(FakeHQ({B: f"  {B_NAME} ", A: "偽の名前", C: "聞いていない"}))
    assert said[0]["shelters_unknown"] == [B]
    assert roster.shelter_name(ctx.db, B) == B_NAME
    assert roster.shelter_name(ctx.db, A) == "南小学校（ノード）"
    assert roster.shelter_name(ctx.db, C) == ""
    hq = FakeHQ({B: B_NAME})
    sync.pull(ctx, hq)
    assert hq.sent == [OLD_PULL]
    # What HQ says is no name is not kept: other types, line breaks, bidi overrides,
    # too long, empty; the ids are not asked again for hours; then they are.
    odd = {f"E27100000031{n:02d}": value for n, value in enumerate(
        (27, ["名"], "北\n小学校", "\u202e校学小北", "校" * 121, "   ", None))}
    for shelter_id in odd:
        scan(forged(new_id(), "他 一人", shelter_id))
    said = pull(FakeHQ(odd))
    assert sorted(said[0]["shelters_unknown"]) == sorted(odd)
    assert all(roster.shelter_name(ctx.db, s) == "" for s in odd)
    hq = FakeHQ({})
    sync.pull(ctx, hq)
    assert hq.sent == [OLD_PULL]
    # An HQ from before this answers no names: the ids count as asked all the same.
    hours_ago = int(time.time()) - shelter_names.ASK_AGAIN_SECONDS - 1
    meta.commit(ctx.store, {shelter_names.ASKED_KEY: json.dumps(dict.fromkeys(odd,
                                                                               hours_ago))})
    said = pull(FakeHQ(None))
    assert sorted(said[0]["shelters_unknown"]) == sorted(odd)
    # On a thin link (pulls of a few events) the ask is as small.
    meta.commit(ctx.store, {shelter_names.ASKED_KEY: "{}"})
    sync.pull_sizes.limit = 2
    said = pull(FakeHQ({}))
    assert len(said[0]["shelters_unknown"]) == 2 and said[0]["limit"] == 2
