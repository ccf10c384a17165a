"""Sync through a link that fails, and across crashes: a seeded fault proxy between a real
node and a real HQ; kill -9 of the node and of HQ. After healing, HQ holds each of the
node's events exactly once: nothing lost, nothing doubled, no conflict."""

from __future__ import annotations

import copy
import os
import signal
import sqlite3
from pathlib import Path

import pytest

from .conftest import VALID_HOUSEHOLD, api, enrolled_node, start_hq, start_node, wait_until
from .faultproxy import FaultProxy

SHELTER_ID = "E2710000005151"


def read(path, sql, args=()):
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=15)
    try:
        return conn.execute(sql, args).fetchall()
    finally:
        conn.close()


def node_events(node):
    own = read(node.data / "shelter.db", "SELECT value FROM meta WHERE key = 'node_id'")[0][0]
    rows = read(node.data / "shelter.db", "SELECT event_id, type FROM events WHERE node_id = ?",
                (own,))
    return own, {r[0] for r in rows if r[1] not in ("user_added", "token_created")}


def converged(node, hq):
    own, mine = node_events(node)
    theirs = [r[0] for r in read(hq.data / "shelter.db",
                                 "SELECT event_id FROM events WHERE node_id = ?", (own,))]
    return set(theirs) == mine and len(theirs) == len(mine)


def assert_exactly_once(node, hq):
    wait_until(lambda: converged(node, hq), timeout=120, interval=0.5,
               what="HQ to hold every event of the node")
    own, _ = node_events(node)
    problems = read(hq.data / "shelter.db",
                    "SELECT (SELECT count(*) FROM sync_conflicts WHERE node_id = ?) + "
                    "(SELECT count(*) FROM sync_quarantine WHERE node_id = ?)", (own, own))
    assert problems == [(0,)]


def activity(node, n, tag):
    kiosk, volunteer = node.token("kiosk"), node.token("volunteer")
    for i in range(n):
        body = copy.deepcopy(VALID_HOUSEHOLD)
        body["members"][0]["given_name"] = f"{tag}{i}"
        response = api(node, "POST", "/api/v1/households", kiosk, json=body)
        assert response.status_code == 201
        code = response.json()["members"][0]["code"]
        assert api(node, "POST", "/api/v1/scans", volunteer,
                   json={"code": code, "action": "check_in"}).status_code == 200


@pytest.fixture
def linked(tmp_path):
    """HQ, a fault proxy in front of it, and a node enrolled through the proxy."""
    hq = start_hq(tmp_path / "hq")
    proxy = FaultProxy(hq.port, seed=int(os.environ.get("FAULT_SEED", "1729"))).start()
    node = enrolled_node(hq, tmp_path / "node", SHELTER_ID, "--sync-max-backoff", "2",
                         via=f"https://127.0.0.1:{proxy.port}")
    yield hq, proxy, node
    node.stop()
    proxy.stop()
    hq.stop()


def test_a_link_that_delays_stalls_cuts_and_drops_loses_and_doubles_nothing(linked):
    hq, proxy, node = linked
    proxy.chaos = True
    for round_no in range(10):  # ten connections, each with a fate drawn from the seed
        activity(node, 3, f"嵐{round_no}-")
        drawn = len(proxy.log)
        proxy.cut_all()  # whatever was in flight is cut mid-way
        wait_until(lambda: len(proxy.log) > drawn, timeout=30, interval=0.05,
                   what="the node to try again")
    proxy.chaos = False
    proxy.cut_all()
    assert_exactly_once(node, hq)
    print(f"\nfaults (seed {proxy.seed}): {', '.join(proxy.log) or 'none drawn'}")


def test_kill_9_of_the_node_and_of_hq_mid_sync(linked, tmp_path):
    hq, proxy, node = linked
    activity(node, 5, "前")
    # kill -9 the whole node (supervisor, web servers, sync thread) while it pushes.
    os.killpg(node.process.pid, signal.SIGKILL)
    node.process.wait(timeout=20)
    node = start_node(node.data, "--hq", f"https://127.0.0.1:{proxy.port}",
                      "--sync-max-backoff", "2")
    try:
        activity(node, 5, "後")
        assert_exactly_once(node, hq)
        # HQ down while the node keeps working; then HQ is killed -9 while it applies the
        # backlog, and comes back.
        hq.stop()
        activity(node, 30, "停電")
        restarted = start_hq(hq.data, hq.port)
        wait_until(lambda: read(hq.data / "shelter.db",
                                "SELECT count(*) FROM sync_origins WHERE last_batch_at > "
                                "datetime('now', '-1 minute')") != [(0,)]
                   or converged(node, hq), timeout=60, interval=0.05, what="a batch lands")
        os.killpg(restarted.process.pid, signal.SIGKILL)
        restarted.process.wait(timeout=20)
        hq.process = start_hq(hq.data, hq.port).process
        assert_exactly_once(node, hq)
    finally:
        node.stop()


@pytest.mark.parametrize("point", ["after_send", "before_ack_saved", "hq_mid_apply"])
def test_a_crash_at_the_worst_moment_loses_and_doubles_nothing(tmp_path, point):
    from sync.drills import VARIABLE
    marker = tmp_path / "crashed"
    os.environ[VARIABLE] = f"{point}:{marker}"
    try:
        hq = start_hq(tmp_path / "hq")
        node = enrolled_node(hq, tmp_path / "node", SHELTER_ID, "--sync-max-backoff", "1")
    finally:
        del os.environ[VARIABLE]
    try:
        if point != "hq_mid_apply":
            def crashed():
                if node.process.poll() is not None:
                    return True
                activity(node, 1, "落")  # keep it busy until it reaches the point
                return False

            wait_until(crashed, timeout=60, interval=0.2, what=f"the node to crash at {point}")
            node = start_node(node.data, "--hq", hq.url, "--sync-max-backoff", "1")
        else:
            activity(node, 5, "落")
            wait_until(marker.exists, timeout=60, what="HQ's projector to crash mid-batch")
        assert marker.read_text() == point
        activity(node, 3, "後")
        assert_exactly_once(node, hq)
    finally:
        node.stop()
        hq.stop()


def test_ending_a_session_writes_nothing_into_a_file_another_thread_opens(hq, tmp_path):
    """A node's sync session ends while its web threads open database files. Closing the
    socket under simple-websocket's reader thread freed its descriptor for the next file
    opened, and the TLS record written when the reader let go landed there (4 files of
    300 sessions, measured): ``client.close_socket`` closes it only after the reader. HQ
    ends each of these sessions first (a ping is no hello), so the reader also ends while
    this side still writes: it leaves the socket open for ``close_socket`` (``ReaderThread``;
    before it did, 1 of 300 sessions spoilt a file with two test workers on 2 cores)."""
    import ssl
    import threading

    from sync import client, protocol, ws_link

    context = ssl.create_default_context(cafile=hq.verify)
    files = tmp_path / "files"
    files.mkdir()
    stop = threading.Event()
    spoilt: list[tuple[str, bytes]] = []
    written = b"A" * 64

    def open_files() -> None:
        n = 0
        while not stop.is_set():
            path = files / f"f{n % 50}"
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
            os.write(fd, written)
            stop.wait(0.0005)  # open while a session may be ending
            os.close(fd)
            if (found := path.read_bytes()) != written:
                spoilt.append((path.name, found[len(written):]))
            n += 1

    opener = threading.Thread(target=open_files, daemon=True)
    opener.start()
    try:
        for _ in range(300):
            ws = ws_link.open_socket(f"wss://127.0.0.1:{hq.port}/sync", context, 1 << 20)
            ws.send(protocol.encode({"type": "ping"}))
            client.close_socket(ws)
            assert not ws.thread.is_alive() and ws.sock.fileno() == -1
    finally:
        stop.set()
        opener.join(10)
    assert spoilt == []


def _worker_fds(hq) -> int:
    """Open descriptors of HQ's gunicorn worker (the master's child)."""
    children = Path(f"/proc/{hq.process.pid}/task/{hq.process.pid}/children").read_text()
    return len(os.listdir(f"/proc/{children.split()[0]}/fd"))


def test_a_session_the_other_side_ends_keeps_its_descriptor_until_this_side_closes(hq):
    """HQ refuses a session (the first message is not hello) and closes it while this side
    could still be writing. simple-websocket's reader thread, ending then, used to close the
    socket itself, freeing its descriptor number for the next file opened while OpenSSL
    could still write to that number. Now the descriptor stays this side's until
    ``close_socket``, a write meanwhile is refused, and HQ's worker, whose reader threads
    leave the socket to gunicorn, ends up holding no descriptor for these sessions."""
    import ssl

    from simple_websocket import ConnectionClosed

    from sync import client, protocol, ws_link

    context = ssl.create_default_context(cafile=hq.verify)
    url = f"wss://127.0.0.1:{hq.port}/sync"
    client.close_socket(ws_link.open_socket(url, context, 1 << 20))  # HQ's threads warm
    before = _worker_fds(hq)
    for _ in range(40):
        ws = ws_link.open_socket(url, context, 1 << 20)
        ws.send(protocol.encode({"type": "ping"}))
        ws.thread.join(10)
        assert not ws.thread.is_alive(), "HQ did not end the session"
        assert ws.sock.fileno() != -1  # not freed under this side
        with pytest.raises((ConnectionClosed, OSError)):
            ws.send(protocol.encode({"type": "ping"}))
        client.close_socket(ws)
        assert ws.sock.fileno() == -1
    wait_until(lambda: _worker_fds(hq) <= before + 2, timeout=20,
               what="HQ's worker to close the sessions' sockets")
