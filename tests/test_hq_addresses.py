"""A node given several HQ addresses (`--hq URL1,URL2`: a primary and a standby HQ) talks to
whichever answers: the one that answered last first, the next at once when one cannot be
reached (sync/hq_addresses.py)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from shelter.core import meta
from shelter.core.node import NodeContext
from shelter.core.server import free_loopback_port
from sync import client, hq_addresses
from sync.hq_addresses import BadHQAddress, first_answering, ordered, parse

from .conftest import api, run_cli, start_node, wait_until
from .test_sync_faults import converged
from .test_sync_thin import backlog


def test_a_list_is_parsed_normalized_and_deduplicated():
    assert parse("https://hq1:9443") == ["https://hq1:9443"]
    assert parse(" https://HQ1:9443/ , https://hq2:9444,https://hq1:9443") == [
        "https://hq1:9443", "https://hq2:9444"]
    assert parse("https://[::1]:9443") == ["https://[::1]:9443"]


@pytest.mark.parametrize("text, why", [
    ("http://hq1:9443", "https://"), ("hq1:9443", "https://"), ("https://:9443", "no host"),
    ("https://hq1", "no port"), ("https://hq1:99999", "out of range"),
    ("https://hq1:94x3", "hq1:94x3"), ("https://hq1:9443/sync", "no path"),
    ("https://me:pw@hq1:9443", "password"), ("https://hq1:9443,", "empty"), ("", "empty")])
def test_a_bad_address_is_refused_by_name(text, why):
    with pytest.raises(BadHQAddress, match="empty" if why == "empty" else "bad HQ address"
                       ) as raised:
        parse(text)
    assert why in str(raised.value)


def test_the_one_that_answered_last_comes_first():
    both = ["https://hq1:9443", "https://hq2:9444"]
    assert ordered(both, None) == both
    assert ordered(both, "https://hq2:9444") == ["https://hq2:9444", "https://hq1:9443"]
    assert ordered(both, "https://gone:1") == both  # no longer in the list: ignored


def test_a_failure_on_the_way_moves_on_but_an_answer_does_not():
    tried: list[str] = []

    def attempt(url: str) -> str:
        tried.append(url)
        if url == "https://a:1":
            raise ConnectionRefusedError(111, "refused")
        if url == "https://r:1":
            raise client.SyncRefused("revoked", "withdrawn")
        return f"welcome from {url}"

    assert first_answering(["https://a:1", "https://b:2"], attempt, client._transient) == (
        "https://b:2", "welcome from https://b:2")
    with pytest.raises(client.SyncRefused):  # HQ's answer: the standby would say the same
        first_answering(["https://r:1", "https://b:2"], attempt, client._transient)
    with pytest.raises(ConnectionRefusedError):  # none answered: the last failure
        first_answering(["https://a:1", "https://a:1"], attempt, client._transient)
    assert tried == ["https://a:1", "https://b:2", "https://r:1", "https://a:1", "https://a:1"]


def test_the_node_remembers_which_answered(tmp_path):
    ctx = NodeContext(tmp_path / "node")
    assert hq_addresses.current(ctx.db) is None
    meta.commit(ctx.store, {"hq_url": "https://hq1:9443,https://hq2:9444"})
    assert hq_addresses.current(ctx.db) == "https://hq1:9443"
    hq_addresses.remember(ctx.store, ctx.db, "https://hq2:9444")
    assert hq_addresses.of_node(ctx.db) == ["https://hq2:9444", "https://hq1:9443"]


def test_the_cli_names_a_bad_address_before_touching_the_data(tmp_path):
    answer = run_cli("node", "--data", str(tmp_path / "n"), "--hq",
                     "https://hq1:9443,http://hq2:9444", check=False)
    assert answer.returncode == 2
    assert "bad HQ address 'http://hq2:9444': it must start with https://" in answer.stderr
    assert not (tmp_path / "n").exists()


def test_a_node_whose_first_hq_is_dead_syncs_with_the_second(hq, tmp_path):
    """Enrolled through a list whose first address has nothing listening, and started with
    that dead address as the one that "answered last": its events reach the live HQ, and its
    sync status says which HQ it talks to."""
    dead = f"https://127.0.0.1:{free_loopback_port()}"  # nothing listens there
    both = f"{dead},{hq.url}"
    data = tmp_path / "node"
    backlog(data, "E2710000017001", 3, hq.data, both)  # enrolls: the first that answers
    ctx = NodeContext(data)
    assert meta.get(ctx.db, "hq_url") == both
    assert meta.get(ctx.db, "hq_url_current") == hq.url
    meta.commit(ctx.store, {"hq_url_current": dead})  # as if the primary answered last
    ctx.db.conn.close()
    node = start_node(data, "--hq", both, "--sync-max-backoff", "60")
    try:
        wait_until(lambda: converged(SimpleNamespace(data=data), hq), timeout=15,
                   interval=0.1, what="the node's events at the second HQ")
        token = node.token("volunteer")
        status = wait_until(lambda: (s := api(node, "GET", "/api/v1/sync-status",
                                              token).json())["connected"] and s, timeout=10)
        assert status["hq_url"] == hq.url
    finally:
        node.stop()
