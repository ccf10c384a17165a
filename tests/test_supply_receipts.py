"""Receiving a supply request cannot make up stock: only what HQ dispatched is offered (filled
in with what was sent), a receipt before the dispatch is refused with the reason, and a truck
that came while the node was offline is recorded on purpose, from a count. Times in Japan
time; HQ's queue puts what it still has to act on first."""

from __future__ import annotations

import re

import pytest

from shelter.core.errors import Conflict
from shelter.core.node import NodeContext
from shelter.domain import accounts, stock, supplies, supply_requests
from shelter.domain.settings import get_settings
from shelter.hq import queue as hq_queue
from shelter.render.times import japan_datetime

from .test_docs import _catalog
from .test_hq import pull, push

SHELTER = "E2710000001111"


@pytest.fixture
def pair(tmp_path):
    """A shelter node with two requests (water 9 urgent, blankets 4) known to an HQ."""
    node = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    hq = NodeContext(tmp_path / "hq", role="hq")
    water = supply_requests.request_supplies(node.store, SHELTER, {
        "lines": [{"item_id": "water", "quantity": 9}], "urgency": "critical"}, "boss")
    blankets = supply_requests.request_supplies(node.store, SHELTER, {
        "lines": [{"item_id": "blanket", "quantity": 4}]}, "boss")
    push(node, hq)
    yield node, hq, water, blankets
    for ctx in (node, hq):
        ctx.db.conn.close()


def on_hand(node, item_id):
    return next(i["on_hand"] for i in stock.stock(node.db, SHELTER, get_settings(node.db))[
        "items"] if i["item_id"] == item_id)


def status(ctx, request_id):
    return next(r for r in supply_requests.requests(ctx.db) if r["request_id"] == request_id)


def test_a_receipt_before_the_dispatch_is_refused_and_a_truck_ahead_of_the_sync_counted(pair):
    node, hq, water, _ = pair
    events = node.db.execute("SELECT count(*) FROM events").fetchone()[0]
    with pytest.raises(supplies.SupplyError) as refused:  # one tap used to add 9 L
        supply_requests.receive(node.store, SHELTER, water,
                                {"lines": [{"item_id": "water", "quantity": 9}]})
    assert (refused.value.code, refused.value.status) == ("not_dispatched", 409)
    assert _catalog("ja")[refused.value.message]  # said in the manager's language
    with pytest.raises(supplies.SupplyError) as empty:  # arrived without notice: count it
        supply_requests.receive(node.store, SHELTER, water, {"unannounced": True, "lines": []})
    assert (empty.value.code, empty.value.status) == ("nothing_arrived", 422)
    assert node.db.execute("SELECT count(*) FROM events").fetchone()[0] == events
    assert on_hand(node, "water") == 0 and status(node, water)["status"] == "requested"

    # HQ dispatches 12 while the node is offline; the truck is there before the sync.
    hq_queue.dispatch(hq.store, "op", status(hq, water), {
        "quantity-water": "12", "expected_arrival": "2026-12-03T09:30", "note": "2t車"})
    supply_requests.receive(node.store, SHELTER, water, {
        "unannounced": True, "lines": [{"item_id": "water", "quantity": 11}]}, "boss")
    assert on_hand(node, "water") == 11
    push(node, hq)
    pull(node, hq)
    here, there = status(node, water), status(hq, water)
    assert here["status"] == there["status"] == "received"  # the late dispatch: no step back
    assert here["dispatched"] == [{"item_id": "water", "quantity": 12}]
    assert here["received"] == there["received"] == [{"item_id": "water", "quantity": 11}]
    assert [(h["status"], h.get("unannounced")) for h in here["history"]] == [
        ("requested", None), ("received", True), ("dispatched", None)]
    assert [r["request_id"] for r in hq_queue.open_requests(hq.db, {})] == [pair[3]]
    with pytest.raises(Conflict) as late:  # HQ is told why it cannot send it (again)
        hq_queue.dispatch(hq.store, "op", status(hq, water), {
            "quantity-water": "12", "expected_arrival": "2026-12-03T09:30"})
    assert "recorded this delivery as arrived" in late.value.message
    with pytest.raises(supplies.SupplyError) as again:
        supply_requests.receive(node.store, SHELTER, water, {
            "unannounced": True, "lines": [{"item_id": "water", "quantity": 11}]})
    assert again.value.code == "already_received" and on_hand(node, "water") == 11


def test_hq_sees_what_it_must_dispatch_before_what_is_on_its_way(pair):
    node, hq, water, blankets = pair
    hq_queue.dispatch(hq.store, "op", status(hq, water), {
        "quantity-water": "12", "expected_arrival": "2026-12-03T09:30"})
    queue = hq_queue.open_requests(hq.db, {})
    # The critical one is dispatched: the normal one HQ has not acted on comes first.
    assert [r["request_id"] for r in queue] == [blankets, water]
    to_act, on_the_way = hq_queue.by_step(queue)
    assert [r["request_id"] for r in to_act] == [blankets]
    assert [r["request_id"] for r in on_the_way] == [water]
    for typo in ("20266-12-03T09:30", "2062-12-03T09:30", "2026-13-03T09:30"):
        with pytest.raises(Exception) as bad:
            hq_queue.dispatch(hq.store, "op", status(hq, blankets), {
                "quantity-blanket": "4", "expected_arrival": typo})
        assert bad.value.status == 422 and _catalog("ja")[bad.value.message], typo
    assert status(hq, blankets)["status"] == "requested"


def manager_client(node, tmp_path):
    from shelter.app import create_app

    accounts.add_user(node.store, "boss", "boss-pass-long-1", "manager")
    app = create_app(node.data_dir, test_config={"TESTING": True})
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert client.post("/staff/login", data={"username": "boss", "csrf": csrf,
                                              "password": "boss-pass-long-1"}).status_code == 303
    page = client.get("/supplies/requests").get_data(as_text=True)
    return client, re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def receive_forms(page):
    return {m.group(1): m.group(0) for m in re.finditer(
        r'<form[^>]*data-receive="(\w+)".*?</form>', page, re.S)}


def test_the_node_offers_receiving_only_what_was_dispatched_in_japan_time(pair, tmp_path):
    node, hq, water, blankets = pair
    client, csrf = manager_client(node, tmp_path)
    page = client.get("/supplies/requests?lang=ja").get_data(as_text=True)
    # Nothing dispatched: no "received" form filled with the request's 9 and 4; the path
    # for a truck that came anyway is folded and empty.
    forms = receive_forms(page)
    assert set(forms) == {"unannounced"}
    assert 'value="9"' not in forms["unannounced"] and 'value="4"' not in forms["unannounced"]
    assert "<details" in page and "本部の発送連絡がまだこの端末に届いていない" in page
    tapped = client.post(f"/supplies/requests/{water}/received",
                         data={"csrf": csrf, "got-water": "9"})
    assert tapped.status_code == 409
    assert "本部はまだこの要請の物資を発送していない" in tapped.get_data(as_text=True)
    assert on_hand(node, "water") == 0

    hq_queue.dispatch(hq.store, "op", status(hq, water), {
        "quantity-water": "12", "expected_arrival": "2026-12-03T09:30", "note": "2t車"})
    pull(node, hq)
    page = client.get("/supplies/requests?lang=ja").get_data(as_text=True)
    (dispatched,) = re.findall(r'<form[^>]*data-receive="dispatched".*?</form>', page, re.S)
    assert 'name="got-water" inputmode="numeric" value="12"' in dispatched  # what was sent
    assert "到着予定：2026-12-03 09:30" in page
    for h in status(node, water)["history"]:  # each step in Japan time, never the UTC one
        assert japan_datetime(h["at"]) in page
        assert h["at"][:16].replace("T", " ") not in page and h["at"][:16] not in page
    assert "T09:30" not in page and "+09:00" not in page
    done = client.post(f"/supplies/requests/{water}/received",
                       data={"csrf": csrf, "got-water": "12", "note": "破損なし"})
    assert done.status_code == 303 and on_hand(node, "water") == 12
    page = client.get("/supplies/requests?lang=ja").get_data(as_text=True)
    assert re.search(r'<details class="fold" id="received-requests">\s*<summary>受領済み（1件）',
                     page)


def test_a_request_made_at_0529_japan_time_is_of_that_day_on_the_page_and_the_report(
        tmp_path, monkeypatch):
    """20:29 UTC on 12-01 is 05:29 on 12-02 in Japan: the page and the daily report of 12-02
    said 12-01 (and the page 20:29)."""
    from datetime import date

    from shelter.core import events
    from shelter.render.report import daily_report

    from .conftest import pdf_text

    node = NodeContext(tmp_path / "node", shelter_id=SHELTER)
    monkeypatch.setattr(events, "utc_now_iso", lambda: "2026-12-01T20:29:00.000+00:00")
    supply_requests.request_supplies(node.store, SHELTER, {
        "lines": [{"item_id": "water", "quantity": 9}]}, "boss")
    monkeypatch.undo()
    client, _ = manager_client(node, tmp_path)
    page = client.get("/supplies/requests?lang=ja").get_data(as_text=True)
    assert "2026-12-02 05:29の要請" in page and "要請済み 2026-12-02 05:29" in page
    assert "2026-12-01" not in page and "20:29" not in page
    report = pdf_text(daily_report(node.db, SHELTER, date(2026, 12, 2)), tmp_path)
    assert "2026-12-02" in report.split("未完了の本部への要請")[-1]
    assert "2026-12-01" not in report
    node.db.conn.close()
