"""HQ survives the loss of its site: HQ streams its database to a replica (Litestream);
after kill -9 of HQ, `shelter hq restore` brings up the standby from the replica, and nodes
given both addresses move to it, re-push what the replica lacked and end with HQ holding
each of their events exactly once. The drill prints RPO and RTO."""

from __future__ import annotations

import copy
import os
import signal
import ssl
import stat
import threading
import time

import pytest

from shelter import cli
from shelter.app import create_app
from shelter.core import meta
from shelter.core.node import NodeContext
from shelter.domain import accounts, households
from shelter.hq import replica
from sync import client, enrollment, hq_addresses

from .conftest import VALID_HOUSEHOLD, free_port, run_cli, start_hq, wait_until
from .faultproxy import FaultProxy
from .test_hq import signed_in
from .test_sync_faults import read

NODES = 20


def test_replica_urls_are_checked(tmp_path):
    assert replica.replica_url(str(tmp_path)) == f"file://{tmp_path.resolve()}"
    assert replica.replica_url(f"file://{tmp_path}/") == f"file://{tmp_path.resolve()}"
    assert replica.replica_url("sftp://hq@standby.example:2222/srv/hq") \
        == "sftp://hq@standby.example:2222/srv/hq"
    for bad in ("relative/dir", "http://x/y", "sftp://host/path", "file://host/x", "s3://b"):
        with pytest.raises(replica.ReplicaError):
            replica.replica_url(bad)
    with pytest.raises(replica.ReplicaError, match="never a password"):
        replica.replica_url("sftp://hq:pw@standby.example/srv/hq")
    (tmp_path / "d").mkdir()
    with pytest.raises(replica.ReplicaError, match="host key pinned"):  # else: anyone between
        replica.write_config(tmp_path / "d", "sftp://hq@standby.example/srv/hq")
    refused = run_cli("hq", "--data", str(tmp_path / "hq"), "--replica", "ftp://x/y",
                      check=False)
    assert refused.returncode != 0 and "is not a replica" in refused.stderr
    refused = run_cli("hq", "restore", "--data", str(tmp_path / "new"), "--replica",
                      str(tmp_path / "nothing-here"), check=False)
    assert refused.returncode != 0 and "could not restore" in refused.stderr
    assert not (tmp_path / "new").exists()  # nothing left behind to mistake for a standby


def test_the_sync_page_says_how_the_replica_stands(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq")
    accounts.add_user(hq.store, "op", "operator-pass-1", "operator")
    client, _ = signed_in(create_app(hq.data_dir, role="hq", test_config={"TESTING": True}))
    page = client.get("/hq/sync").get_data(as_text=True)
    assert 'data-replica="none"' in page and "--replica URL" in page  # HQ on one machine
    replica.note(hq.data_dir, url="sftp://hq:secret-pw@site-b.example/srv/hq",
                 started_at="2026-12-03T01:00:00+00:00")
    assert replica.status(hq.data_dir)["url"] == "sftp://hq@site-b.example/srv/hq"
    replica.note(hq.data_dir, last_error_at="2026-12-03T01:00:05+00:00",
                 last_error="write ltx file: no space left on device")
    page = client.get("/hq/sync").get_data(as_text=True)
    assert 'data-replica="failing"' in page and "no space left on device" in page
    assert "secret-pw" not in page and "10:00" in page  # Japan time
    replica.forget(hq.data_dir)
    assert replica.status(hq.data_dir) is None


def register(ctx: NodeContext, tag: str) -> None:
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["members"][0]["given_name"] = tag
    households.register_household(ctx.store, ctx.identity, body)


def own_events(ctx: NodeContext) -> set[str]:
    return {r[0] for r in ctx.db.execute(
        "SELECT event_id FROM events WHERE node_id = ? AND type NOT IN "
        "('user_added', 'token_created')", [ctx.node_id])}


def held(hq_data, node_id) -> list[str]:
    return [r[0] for r in read(hq_data / "shelter.db",
                               "SELECT event_id FROM events WHERE node_id = ?", (node_id,))]


def test_failover_drill_kill_9_restore_nodes_switch_nothing_lost_or_doubled(tmp_path):
    replica_dir = tmp_path / "replica"
    primary = start_hq(tmp_path / "hq", None, "--replica", str(replica_dir))
    standby_port = free_port()
    to_primary = FaultProxy(primary.port, seed=int(os.environ.get("FAULT_SEED", "1729")))
    to_standby = FaultProxy(standby_port, seed=7)
    to_primary.start()
    to_standby.start()
    addresses = f"https://127.0.0.1:{to_primary.port},https://127.0.0.1:{to_standby.port}"
    hq_ctx = NodeContext(primary.data, role="hq")
    der = ssl.PEM_cert_to_DER_cert((primary.data / "tls" / "ca.crt").read_text())
    stop = threading.Event()
    nodes, threads = [], []
    standby = None
    try:
        for n in range(NODES):
            shelter_id = f"E27100009{n:05d}"
            with hq_ctx.store.write() as db:
                code = enrollment.issue_code(db, shelter_id, der)
            ctx = NodeContext(tmp_path / f"node{n}", role="node", shelter_id=shelter_id)
            client.enroll(ctx, addresses, code)
            register(ctx, f"before{n}")
            nodes.append(ctx)
        to_primary.chaos = True  # from now on the link to the first site is flaky
        for ctx in nodes:
            thread = client.SyncClient(ctx.data_dir, stop, max_backoff=1.0)
            thread.start()
            threads.append(thread)
        wait_until(lambda: all(set(held(primary.data, c.node_id)) == own_events(c)
                               for c in nodes), timeout=90, interval=0.3,
                   what="the primary to hold every node's events")
        for n, ctx in enumerate(nodes):  # more, right up to the loss of the site
            register(ctx, f"late{n}")
        wait_until(lambda: sum(len(held(primary.data, c.node_id)) for c in nodes)
                   > sum(len(own_events(c)) for c in nodes) - NODES,
                   timeout=60, what="the primary to take some of the late events")
        accounts.add_user(hq_ctx.store, "op", "operator-pass-1", "operator")
        page, _ = signed_in(create_app(primary.data, role="hq", test_config={"TESTING": True}))
        shown = page.get("/hq/sync").get_data(as_text=True)
        assert 'data-replica="streaming"' in shown and str(replica_dir) in shown
        os.killpg(primary.process.pid, signal.SIGKILL)  # the first site is gone
        killed = time.monotonic()
        primary.process.wait(timeout=10)
        standby_data = tmp_path / "standby"
        restored = run_cli("hq", "restore", "--data", str(standby_data), "--replica",
                           str(replica_dir))
        assert "new epoch" in restored.stdout, restored.stdout
        assert stat.S_IMODE(os.stat(standby_data / "tls" / "ca.key").st_mode) == 0o600
        assert (standby_data / "tls" / "ca.crt").read_bytes() \
            == (primary.data / "tls" / "ca.crt").read_bytes()  # what the nodes pinned
        loose = [p for p in [replica_dir, *replica_dir.rglob("*"),
                             primary.data / "litestream.yml"]
                 if os.stat(p).st_mode & 0o077]
        assert not loose, loose  # the replica holds all HQ holds: owner-only
        had = sum(len(held(standby_data, c.node_id)) for c in nodes)
        standby = start_hq(standby_data, standby_port)
        rto = time.monotonic() - killed
        total = sum(len(own_events(c)) for c in nodes)
        wait_until(lambda: all(set(held(standby_data, c.node_id)) == own_events(c)
                               for c in nodes), timeout=120, interval=0.3,
                   what="the standby to hold every node's events")
        for ctx in nodes:
            theirs = held(standby_data, ctx.node_id)
            assert len(theirs) == len(set(theirs)) == len(own_events(ctx))  # exactly once
        problems = read(standby_data / "shelter.db",
                        "SELECT (SELECT count(*) FROM sync_conflicts) + "
                        "(SELECT count(*) FROM sync_quarantine)")
        assert problems == [(0,)]
        old_id = read(primary.data / "shelter.db",
                      "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
        new_id = read(standby_data / "shelter.db",
                      "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
        assert new_id != old_id  # a new HQ epoch: its sequence numbers are never reused
        # The replica may have held everything (nothing for a node to re-push): each node
        # still moves, when its next session finds the first site gone.
        wait_until(lambda: all(client_addr(c).endswith(f":{to_standby.port}") for c in nodes),
                   timeout=60, interval=0.3, what="every node to move to the standby")
        print(f"failover drill: {NODES} nodes, {total} events; RPO {total - had} events the "
              f"replica lacked (re-pushed by the nodes); RTO {rto:.1f} s from kill -9 to the "
              "standby answering")
        # The first site comes back: its HQ still holds the credentials and the CA, but the
        # nodes have met its successor, and will not split their events between the two.
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        standby.stop()
        standby = None
        revived = start_hq(primary.data, primary.port)
        try:
            with pytest.raises(hq_addresses.SupersededHQ):
                client.greeted(nodes[0], f"https://127.0.0.1:{primary.port}")
        finally:
            revived.stop()
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        if standby is not None:
            standby.stop()
        to_primary.stop()
        to_standby.stop()
        primary.stop()


def client_addr(ctx: NodeContext) -> str:
    return hq_addresses.current(ctx.db) or ""


def test_a_node_given_one_address_learns_the_standby_from_hq_and_moves_to_it(tmp_path):
    replica_dir, standby_data = tmp_path / "replica", tmp_path / "standby"
    primary_port, standby_port = free_port(), free_port()
    told = f"https://127.0.0.1:{primary_port},https://127.0.0.1:{standby_port}"
    primary = start_hq(tmp_path / "hq", primary_port, "--replica", str(replica_dir),
                       "--addresses", told)
    hq_ctx = NodeContext(primary.data, role="hq")
    der = ssl.PEM_cert_to_DER_cert((primary.data / "tls" / "ca.crt").read_text())
    with hq_ctx.store.write() as db:
        code = enrollment.issue_code(db, "E2710000900001", der)
    ctx = NodeContext(tmp_path / "node", role="node", shelter_id="E2710000900001")
    client.enroll(ctx, primary.url, code)  # the one address it is given
    register(ctx, "before")
    stop = threading.Event()
    thread = client.SyncClient(ctx.data_dir, stop, max_backoff=1.0)
    standby = None
    thread.start()
    try:
        wait_until(lambda: set(held(primary.data, ctx.node_id)) == own_events(ctx),
                   timeout=60, what="the primary to hold the node's events")
        assert hq_addresses.of_node(ctx.db) == told.split(",")  # the given one first
        # A node enrolled after the replica's last write would be unknown to the standby
        # (it enrolls again): the drill waits until the replica holds its credential.
        wait_until(lambda: replica_holds(replica_dir, tmp_path / "scratch",
                                         "SELECT 1 FROM hq_credentials WHERE node_id = ?",
                                         (ctx.node_id,)),
                   timeout=60, interval=0.5, what="the replica to hold the enrollment")
        os.killpg(primary.process.pid, signal.SIGKILL)
        primary.process.wait(timeout=10)
        run_cli("hq", "restore", "--data", str(standby_data), "--replica", str(replica_dir))
        standby = start_hq(standby_data, standby_port)  # not told again: from the replica
        register(ctx, "after")
        wait_until(lambda: client_addr(ctx).endswith(f":{standby_port}")
                   and set(held(standby_data, ctx.node_id)) == own_events(ctx),
                   timeout=90, interval=0.3, what="the node to move to the standby")
        assert read(standby_data / "shelter.db", "SELECT value FROM meta WHERE key = ?",
                    (hq_addresses.ADVERTISED_KEY,)) == [(told,)]
    finally:
        stop.set()
        thread.join(timeout=15)
        if standby is not None:
            standby.stop()
        primary.stop()


def test_what_a_welcome_tells_is_checked_and_bad_addresses_are_refused_at_hq(tmp_path):
    urls = ["https://Site-B.example:9443/", "ftp://x:1", 7, "https://site-b.example:9443",
            "https://a@b:1", *[f"https://h{n}:1" for n in range(10)]]
    assert hq_addresses.told({"hq_urls": urls}).split(",") == [  # 8 at most
        "https://site-b.example:9443", *[f"https://h{n}:1" for n in range(7)]]
    assert hq_addresses.told({"hq_urls": "https://a:1"}) is None  # not a list: kept as is
    assert hq_addresses.told({}) is None
    odd = ["https://a,b:9443", f"https://{'x' * 64}.example:1", f"https://{'y.' * 130}z:1"]
    assert hq_addresses.told({"hq_urls": [*odd * 3, "https://good:1"]}) == "https://good:1"
    # An HQ told to forget its addresses tells nodes so; one never given any says nothing.
    hq = NodeContext(tmp_path / "hq-ctx", role="hq")
    assert hq_addresses.advertised(hq.db) == {}
    meta.commit(hq.store, {hq_addresses.ADVERTISED_KEY: ""})
    assert hq_addresses.told(hq_addresses.advertised(hq.db)) == ""
    # A node given a new --hq list leads with it, not with a told address that answered last.
    node = NodeContext(tmp_path / "node", shelter_id="E2710000900002")
    meta.commit(node.store, {"hq_credential": "c", "hq_url": "https://a:1",
                             hq_addresses.LEARNED_KEY: "https://a:1,https://b:1",
                             hq_addresses.CURRENT_KEY: "https://b:1"})
    cli._connect_to_hq(node, "https://c:1", None)
    assert hq_addresses.of_node(node.db) == ["https://c:1", "https://a:1", "https://b:1"]
    refused = run_cli("hq", "--data", str(tmp_path / "hq"), "--addresses",
                      "https://a:1,http://b:2", check=False)
    assert refused.returncode == 2 and "must start with https://" in refused.stderr


def replica_holds(replica_dir, scratch, sql: str, args: tuple) -> bool:
    """Whether HQ's database as the replica holds it now (restored by Litestream into
    ``scratch``) answers ``sql`` with a row."""
    scratch.mkdir(exist_ok=True)
    restored = replica._fetch(scratch, replica.replica_url(str(replica_dir)), "shelter.db",
                              required=True)
    try:
        return bool(read(restored, sql, args))
    finally:
        restored.unlink()
