"""Supply requests in a real Chromium: the shelter manager's page at 768×1024 offers to
receive only what HQ dispatched (filled in with what was sent) and keeps the "truck came
before the notice" path folded and empty; HQ's page at 1280×800 lists what it must dispatch
before what is on its way, labels each note for what it is, and takes a Japan-time arrival
from a large native picker. Times read in Japan time on both; axe finds nothing serious."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from shelter.core.node import NodeContext
from shelter.domain import accounts, supply_requests
from shelter.hq import queue as hq_queue
from shelter.render.times import japan_datetime

from .conftest import api, sign_in, start_hq, start_node
from .test_browser_desk import assert_accessible
from .test_hq import pull, push

SHELTER = "E2710000005555"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A node with two requests: water (critical), which HQ dispatched as 12 of the 9
    asked, and blankets (normal), which HQ has not acted on. Then both servers."""
    root = tmp_path_factory.mktemp("requests")
    node = NodeContext(root / "node", shelter_id=SHELTER)
    hq = NodeContext(root / "hq", role="hq")
    try:
        accounts.add_user(node.store, "boss", "boss-pass-1", "manager")
        accounts.add_user(hq.store, "op", "operator-pass-1", "operator")
        water = supply_requests.request_supplies(node.store, SHELTER, {
            "lines": [{"item_id": "water", "quantity": 9}], "urgency": "critical"}, "boss")
        blankets = supply_requests.request_supplies(node.store, SHELTER, {
            "lines": [{"item_id": "blanket", "quantity": 4}], "note": "夜が寒い"}, "boss")
        push(node, hq)
        hq_queue.dispatch(hq.store, "op", hq_queue.find(hq.db, water), {
            "quantity-water": "12", "expected_arrival": "2026-12-03T09:30", "note": "2t車"})
        pull(node, hq)
        asked = {r["request_id"]: r for r in supply_requests.requests(node.db)}
        token = accounts.create_token(node.store, "manager")
    finally:
        node.db.conn.close()
        hq.db.conn.close()
    with ThreadPoolExecutor(2) as pool:
        started = [pool.submit(start_node, root / "node", "--shelter-id", SHELTER,
                               "--shelter-name", "要請テスト"),
                   pool.submit(start_hq, root / "hq")]
        servers = [f.result() for f in started]
    yield {"node": servers[0], "hq": servers[1], "water": water, "blankets": blankets,
           "asked": asked, "token": token}
    for server in servers:
        server.stop()


def test_the_shelter_receives_only_what_was_dispatched(browser, world):
    node, water, blankets = world["node"], world["water"], world["blankets"]
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="ja-JP",
                                  ignore_https_errors=True)
    page = context.new_page()
    sign_in(page, node.https, "boss", "boss-pass-1", "/supplies/requests")
    sent = page.locator(f"section[data-request='{water}']")
    waiting = page.locator(f"section[data-request='{blankets}']")
    # Times in Japan time, with their date: the step "on its way" is not a day early.
    asked = world["asked"][water]
    heading = sent.locator("h2").inner_text()
    assert japan_datetime(asked["requested_at"]) in heading
    assert asked["requested_at"][:16].replace("T", " ") not in sent.inner_text()
    on_its_way = next(h for h in asked["history"] if h["status"] == "dispatched")
    assert japan_datetime(on_its_way["at"]) in sent.locator("[data-step=dispatched]").inner_text()
    assert sent.locator("[data-expected]").inner_text() == "到着予定：2026-12-03 09:30"
    # Filled in with what HQ sent (12), not what was asked (9).
    assert sent.locator("input[name=got-water]").input_value() == "12"
    # Not dispatched: no receive form; the way for a truck that came anyway is folded, empty.
    assert waiting.locator("form[data-receive=dispatched]").count() == 0
    unannounced = waiting.locator("details.fold")
    assert not unannounced.locator("input[name=got-blanket]").is_visible()
    unannounced.locator("summary").click()
    assert unannounced.locator("input[name=got-blanket]").input_value() == ""
    assert_accessible(page)

    sent.locator("input[name=got-water]").fill("11")
    with page.expect_navigation():
        sent.locator("button[type=submit]").click()
    assert page.locator("#received-requests summary").inner_text() == "受領済み（1件）"
    assert page.locator(f"#received-requests section[data-request='{water}']").count() == 1
    stock = api(node, "GET", "/api/v1/stock", world["token"]).json()["items"]
    assert next(i["on_hand"] for i in stock if i["item_id"] == "water") == 11
    context.close()


def test_hq_dispatches_from_a_queue_that_puts_its_work_first(browser, world):
    hq, water, blankets = world["hq"], world["water"], world["blankets"]
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP",
                                  ignore_https_errors=True)
    page = context.new_page()
    sign_in(page, hq.url, "op", "operator-pass-1", "/hq/requests")
    order = page.eval_on_selector_all("section[data-request]",
                                      "els => els.map(e => e.dataset.request)")
    assert order == [blankets, water]  # the critical one is on its way: after, folded
    assert page.locator("#on-the-way").get_attribute("open") is None
    todo = page.locator(f"section[data-request='{blankets}']")
    labels = todo.locator("label").all_inner_texts()
    assert len(labels) == len(set(labels)) and "メモ" not in labels, labels
    assert "避難所からのメモ：夜が寒い" in todo.inner_text()
    when = todo.locator("input[type=datetime-local]")
    box = when.bounding_box()
    assert box["height"] >= 48 and box["width"] >= 240, box
    assert float(when.evaluate("e => getComputedStyle(e).fontSize")[:-2]) >= 18
    page.locator("#on-the-way summary").click()
    shipped = page.locator(f"section[data-request='{water}'] [data-field=expected]")
    assert shipped.inner_text() == "2026-12-03 09:30"
    text = page.locator("main").inner_text() if page.locator("main").count() else \
        page.inner_text("body")
    assert "T09:30" not in text and "+09:00" not in text
    assert_accessible(page)

    when.fill("2026-12-04T10:15")
    todo.locator("input[name=note]").last.fill("ヤマト 大阪100あ1234")
    with page.expect_navigation():
        todo.locator("form.dispatch button[type=submit]").click()
    assert page.locator("#to-act").inner_text() == "発送待ち（0件）"
    page.locator("#on-the-way summary").click()
    assert page.locator(f"section[data-request='{blankets}'] [data-field=expected]"
                        ).inner_text() == "2026-12-04 10:15"
    context.close()
