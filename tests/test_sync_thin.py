"""Sync through a thin link: a fault proxy that cuts every connection after a few KB (a
mobile link at the edge of coverage). The node's batches shrink until they fit, grow back
after acknowledgements, and a session that delivered anything resets the back-off, so a
link that carries the handshake plus one event per connection delivers everything, in
order, exactly once (docs/sync-protocol.md, "Thin links")."""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelter.core import meta
from shelter.core.node import NodeContext
from shelter.domain.households import register_household
from sync import client

from .conftest import run_cli, start_node, sync_socket, wait_until
from .faultproxy import FaultProxy
from .test_sync_faults import assert_exactly_once, converged, node_events, read

# Measured on loopback: the handshake (TLS, the websocket upgrade, hello and welcome) and an
# empty pull take about 3.3 KB of a connection, one event with its ack about 1 KB more.
LEAST_BYTES = 4500
SHELTERS = itertools.count(16001)


def backlog(data: Path, shelter_id: str, people: int, hq_data: Path, hq_url: str) -> str:
    """A node that registered ``people`` people (one each, checked in; a third went out)
    while offline, enrolled with HQ directly; returns its id."""
    ctx = NodeContext(data, shelter_id=shelter_id)
    with ctx.store.write():
        for n in range(people):
            member = register_household(ctx.store, ctx.identity, {
                "address": "輪島市", "whereabouts": "shelter", "consent": "relatives",
                "members": [{"family_name": "能登", "given_name": f"細{n}",
                             "family_name_kana": "のと", "given_name_kana": "ほそ" + "".join(
                                 "あいうえおかきくけこ"[int(d)] for d in str(n)),
                             "birth_date": f"{1930 + n % 80}-{1 + n % 12:02d}-"
                                           f"{1 + n % 28:02d}"}]})["members"][0]
            for action in ("check_in", "go_out")[:1 + (n % 3 == 0)]:
                ctx.store.append("presence_changed", {
                    "person_id": member["person_id"], "shelter_id": shelter_id,
                    "action": action, "destination": "", "destination_detail": "",
                    "actor": "test"})
    code = run_cli("hq", "enroll", "--data", str(hq_data), "--shelter", shelter_id
                   ).stdout.strip()
    client.enroll(ctx, hq_url, code)
    node_id = ctx.node_id
    ctx.db.conn.close()
    return node_id


def assert_in_order(data: Path, hq_data: Path) -> None:
    """HQ stored the node's events in the node's order, each once."""
    own, _ = node_events(SimpleNamespace(data=data))
    seqs = [r[0] for r in read(hq_data / "shelter.db",
                               "SELECT seq FROM events WHERE node_id = ? ORDER BY rowid",
                               (own,))]
    assert seqs == sorted(set(seqs))


def test_a_300_person_backlog_crosses_a_link_cut_after_6_to_14_kb(hq, tmp_path):
    data = tmp_path / "node"
    own = backlog(data, "E2710000001515", 300, hq.data, hq.url)
    events = len(node_events(SimpleNamespace(data=data))[1])
    assert events == 700
    seed = int(os.environ.get("FAULT_SEED", "1515"))
    proxy = FaultProxy(hq.port, seed=seed, thin=(6000, 14000)).start()
    started = time.monotonic()
    node = start_node(data, "--hq", f"https://127.0.0.1:{proxy.port}",
                      "--sync-max-backoff", "60")
    try:
        try:
            wait_until(lambda: converged(node, hq), timeout=60, interval=0.2,
                       what=f"the backlog through a thin link (seed {seed})")
        except AssertionError as error:
            held = read(hq.data / "shelter.db", "SELECT count(*) FROM events WHERE "
                        "node_id = ?", (own,))[0][0]
            logged = read(hq.data / "log.db", "SELECT count(*) FROM log WHERE origin = ?",
                          (own,))[0][0]
            state = read(data / "shelter.db", "SELECT key, value FROM meta WHERE key IN "
                         "('sync_state', 'sync_state_at')")
            raise AssertionError(
                f"{error}: HQ holds {held} of {events} events ({logged} in its log) after "
                f"{len(proxy.log)} connections, moving {sorted(proxy.moved)} bytes; the "
                f"node says {dict(state)}") from None
        took = time.monotonic() - started
        print(f"\nbytes per connection: {sorted(proxy.moved)}")
        assert_exactly_once(node, hq)
        assert_in_order(data, hq.data)
        assert all(moved <= 14000 for moved in proxy.moved)
        print(f"\n{events} events in {took:.1f} s over {len(proxy.log)} connections "
              f"(seed {seed})")
    finally:
        node.stop()
        proxy.stop()


@settings(max_examples=5, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.integers(LEAST_BYTES, 14000), min_size=1, max_size=6),
       people=st.integers(1, 25))
def test_any_cut_points_deliver_everything_in_order_exactly_once(hq, cuts, people):
    """Property: wherever each connection is cut (as long as it carries the handshake and
    one event), the whole backlog arrives, in order, exactly once."""
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "node"
        shelter_id = f"E27100000{next(SHELTERS):05d}"
        backlog(data, shelter_id, people, hq.data, hq.url)
        proxy = FaultProxy(hq.port, cut_points=cuts).start()
        ctx = NodeContext(data)
        meta.commit(ctx.store, {"hq_url": f"https://127.0.0.1:{proxy.port}"})
        ctx.db.conn.close()
        stop = threading.Event()
        client.SyncClient(data, stop, max_backoff=2.0).start()
        try:
            wait_until(lambda: converged(SimpleNamespace(data=data), hq), timeout=60,
                       interval=0.1, what=f"the backlog through cuts at {cuts}")
            assert_exactly_once(SimpleNamespace(data=data), hq)
            assert_in_order(data, hq.data)
        finally:
            stop.set()
            proxy.stop()


def news(hq, tmp: Path, count: int) -> tuple[Path, str, set[str]]:
    """A node (no backlog of its own) whose shelter HQ has sent ``count`` messages since it
    last pulled; returns its data directory, its shelter and the messages' event ids."""
    from shelter.domain.settings import send_message
    shelter_id = f"E27100000{next(SHELTERS):05d}"
    data = tmp / "node"
    backlog(data, shelter_id, 0, hq.data, hq.url)
    hq_ctx = NodeContext(hq.data, role="hq")
    with hq_ctx.store.write():
        for n in range(count):
            send_message(hq_ctx.store, shelter_id,
                         f"お知らせ{n}: 給水車は{n % 24}時{n * 7 % 60}分に第{n % 9 + 1}駐車場へ。"
                         f"連絡先{n * 7919 % 99991:05d}-{n * 104729 % 9973:04d}。"
                         f"毛布{n * 13 % 200}枚、簡易トイレ{n % 17}基を配布します。")
    hq_ctx.db.conn.close()
    sent = {r[0] for r in read(hq.data / "shelter.db", "SELECT e.event_id FROM events e "
                               "JOIN sync_outbox o USING (event_id) WHERE o.shelter_id = ?",
                               (shelter_id,))}
    assert len(sent) == count
    return data, shelter_id, sent


def pulled(data: Path) -> list[str]:
    return [r[0] for r in read(data / "shelter.db",
                               "SELECT event_id FROM events WHERE type = 'hq_message'")]


def test_hq_updates_too_big_for_one_connection_come_down_page_by_page(hq, tmp_path):
    """400 messages from HQ (an `updates` answer of all of them is 14.5 KB compressed,
    more than a connection carries after the handshake's 3.3 KB) through a link cut after
    6-14 KB: pulls shrink to what it carries, each page that arrives is progress (no
    back-off, even with the longest back-off at 60 s), and every message comes down
    exactly once."""
    data, _, sent = news(hq, tmp_path, 400)
    seed = int(os.environ.get("FAULT_SEED", "1516"))
    proxy = FaultProxy(hq.port, seed=seed, thin=(6000, 14000)).start()
    ctx = NodeContext(data)
    meta.commit(ctx.store, {"hq_url": f"https://127.0.0.1:{proxy.port}"})
    ctx.db.conn.close()
    stop = threading.Event()
    client.SyncClient(data, stop, max_backoff=60.0).start()
    try:
        wait_until(lambda: len(pulled(data)) >= len(sent), timeout=30, interval=0.1,
                   what=f"HQ's 400 messages through a thin link (seed {seed}; "
                        f"{len(proxy.log)} connections so far)")
    finally:
        stop.set()
        proxy.stop()
    got = pulled(data)
    assert sorted(got) == sorted(sent)  # each once, none missing
    assert read(data / "shelter.db", "SELECT count(*) FROM hq_messages")[0][0] == 400
    assert len(proxy.log) > 1 and all(moved <= 14000 for moved in proxy.moved)


def test_a_pull_without_a_limit_still_gets_everything_and_a_bad_limit_is_refused(hq,
                                                                                 tmp_path):
    """Nodes from before `limit` send `pull` with a cursor alone: HQ answers up to 500
    events, as before. A limit outside 1-500 is refused as malformed, with the reason,
    and the session goes on."""
    data, shelter_id, sent = news(hq, tmp_path, 30)
    ctx = NodeContext(data)
    credential, node_id = meta.get(ctx.db, "hq_credential"), ctx.node_id
    ctx.db.conn.close()
    ws, ask = sync_socket(hq)

    try:
        assert ask({"type": "hello", "protocol": 1, "node_id": node_id,
                    "shelter_id": shelter_id, "credential": credential})["type"] == "welcome"
        everything = ask({"type": "pull", "cursor": 0})
        assert {e["event_id"] for e in everything["events"]} == sent
        seven = ask({"type": "pull", "cursor": 0, "limit": 7})
        assert [e["event_id"] for e in seven["events"]] == \
            [e["event_id"] for e in everything["events"]][:7]
        rest = ask({"type": "pull", "cursor": seven["cursor"], "limit": 500})
        assert [e["event_id"] for e in seven["events"] + rest["events"]] == \
            [e["event_id"] for e in everything["events"]]
        assert rest["cursor"] == everything["cursor"]
        for bad in (0, 501, -1, "7", True, None, 2.5):
            refused = ask({"type": "pull", "cursor": 0, "limit": bad})
            assert (refused["type"], refused["code"]) == ("error", "malformed"), bad
            assert "limit must be a whole number from 1 to 500" in refused["message"]
        assert ask({"type": "pull", "cursor": everything["cursor"]})["events"] == []
    finally:
        client.close_socket(ws)
