"""HQ's dashboard in a real Chromium, over a real HQ holding the real GSI registry and two
real shelter nodes syncing to it: an arrival changes the totals, the shelter's row and its
dot on the map without a reload, and a shelter whose node stops turns silent."""

from __future__ import annotations

import copy
import re
import ssl

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from simple_websocket import Client, ConnectionClosed

from sync.client import close_socket

from .conftest import VALID_HOUSEHOLD, enrolled_node, run_cli, sign_in, start_hq, wait_until
from .test_browser_desk import assert_accessible, wait_js
from .test_hq import A, B
from .test_hq_registry import GSI

STALE_MINUTES = "0.25"  # 15 s; nodes pull every 10 s while idle, so a live one stays fresh


@pytest.fixture(scope="module")
def prefecture(tmp_path_factory):
    data = tmp_path_factory.mktemp("hq-browser")
    run_cli("hq", "import", "--data", str(data), str(GSI))
    run_cli("user", "add", "--data", str(data), "--username", "op", "--role", "operator",
            "--password", "operator-pass-1")
    hq = start_hq(data, None, "--stale-minutes", STALE_MINUTES)
    nodes = [enrolled_node(hq, tmp_path_factory.mktemp(f"node-{s}"), s) for s in (A, B)]
    yield hq, nodes
    for node in nodes:
        node.stop()
    hq.stop()


def text(page, selector: str) -> str:
    return page.evaluate(f"(document.querySelector({selector!r}) || {{}}).textContent || ''")


def test_the_dashboard_follows_the_shelters_live_and_shows_silence(prefecture, browser):
    hq, (a, b) = prefecture
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  ignore_https_errors=True, locale="ja-JP")
    page = context.new_page()
    sign_in(page, hq.url, "op", "operator-pass-1", "/hq")
    # HQ gives shelter A a capacity of 2: its crowding becomes known (空き).
    page.goto(f"{hq.url}/hq/shelters/{A}")
    page.fill("input[name=capacity]", "2")
    page.select_option("select[name=status]", "open")
    page.click("form.stack button[type=submit]")
    page.wait_for_url(f"**/hq/shelters/{A}")
    page.goto(f"{hq.url}/hq")
    wait_js(page, "window.shelterHq && window.shelterHq.messages >= 1")
    dot = f"circle[data-shelter='{A}']"
    wait_js(page, f"document.querySelector(\"{dot}\").classList.contains('crowd-available')",
            30)
    page.evaluate("window.notReloaded = true")
    before = int(text(page, "[data-total=present]"))

    household = requests.post(f"{a.https}/api/v1/households",
                              json=copy.deepcopy(VALID_HOUSEHOLD), verify=a.verify, timeout=10,
                              headers={"Authorization": f"Bearer {a.token('kiosk')}"})
    assert household.status_code == 201, household.text
    code = household.json()["members"][0]["code"]
    scanned = requests.post(f"{a.https}/api/v1/scans", json={"code": code,
                                                             "action": "check_in"},
                            headers={"Authorization": f"Bearer {a.token('volunteer')}"},
                            verify=a.verify, timeout=10)
    assert scanned.status_code == 200, scanned.text

    wait_js(page, f"document.querySelector('[data-total=present]').textContent === "
                  f"'{before + 1}'", 30)
    row = f"tr[data-shelter='{A}']"
    assert text(page, f"{row} [data-field=present]") == "1"
    assert "やや混雑" in text(page, f"{row} [data-field=crowding]")
    assert page.evaluate(f"document.querySelector(\"{dot}\").getAttribute('class')") == \
        "dot crowd-somewhat_crowded status-open"
    assert page.evaluate("window.notReloaded === true")
    # How far the figures are follows live too: everything HQ received is counted.
    wait_js(page, "document.getElementById('projection').dataset.lagEvents === '0' && "
                  "document.getElementById('projection').textContent.includes("
                  "'受け取ったすべてのイベント')", 30)

    # B's node stops: within the silence threshold (plus a refresh) its row and dot say so.
    b.stop()
    wait_js(page, f"document.querySelector(\"tr[data-shelter='{B}']\")"
                  ".classList.contains('stale')", 60)
    assert page.evaluate(f"document.querySelector(\"circle[data-shelter='{B}']\")"
                         ".classList.contains('stale')")
    assert int(text(page, "[data-total=shelters_stale]")) >= 1
    assert not page.evaluate(f"document.querySelector(\"{row}\").classList.contains('stale')")
    assert page.evaluate("window.notReloaded === true")
    assert_accessible(page)
    context.close()


def test_the_public_page_reads_on_a_phone(prefecture, browser):
    hq, _ = prefecture
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  ignore_https_errors=True, locale="en-US")
    page = context.new_page()

    def lists_a() -> bool:  # the public list is cached for a few seconds
        page.goto(f"{hq.url}/public?lang=en")
        return page.locator(f"li[data-shelter='{A}']").count() == 1

    wait_until(lists_a, timeout=30, interval=1, what="shelter A on the public page")
    assert "Open evacuation shelters" in page.inner_text("h1")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_accessible(page)
    context.close()


def test_the_live_feed_refuses_anyone_not_signed_in(prefecture):
    hq, _ = prefecture
    context = ssl.create_default_context(cafile=hq.verify)
    context.check_hostname = False
    ws = Client.connect(f"wss://127.0.0.1:{hq.port}/hq/live", ssl_context=context)
    try:
        with pytest.raises(ConnectionClosed):  # closed at once: no totals, no rows, nothing
            message = ws.receive(timeout=10)
            pytest.fail(f"HQ answered a socket with no session: {message!r}")
    finally:
        close_socket(ws)


def test_a_stolen_laptop_shows_on_the_dashboard_and_an_admin_revokes_it(prefecture, browser):
    """B's node is stopped (the first test): its directory is in a thief's hands, who sends
    HQ's own kind of message about A. At tablet size the operator sees the refusal, and an
    admin revokes B's node from its page."""
    from .test_trust_sync import Thief

    hq, (a, b) = prefecture
    thief = Thief(b.data, hq.port, hq.data)
    ack = thief.say([("hq_message", {"shelter_id": A, "text": "偽の本部命令"})])
    assert ack["quarantined"] and ack["applied"] == 0
    run_cli("user", "add", "--data", str(hq.data), "--username", "chief", "--role", "admin",
            "--password", "admin-pass-long-1")
    context = browser.new_context(viewport={"width": 768, "height": 1024},
                                  ignore_https_errors=True, locale="ja-JP")
    page = context.new_page()
    sign_in(page, hq.url, "chief", "admin-pass-long-1", "/hq")
    alert = page.locator("#refusals")
    assert "拒否したイベント" in alert.inner_text()
    assert_accessible(page)
    alert.locator("a").first.click()
    page.wait_for_url(f"**/hq/shelters/{B}*")
    assert "hq_message" in page.locator("#refused ~ table").inner_text()
    page.check("input[name=confirm]")
    page.click("button.danger")
    page.wait_for_url(f"**/hq/shelters/{B}")
    assert "失効済み" in page.inner_text("main")
    assert_accessible(page)
    context.close()
    ws, answer = thief.connect()
    close_socket(ws)
    assert answer["code"] == "revoked"


# Each header cell and short cell of the shelters table: its text's lines and the fewest
# characters on one of them (a cell broken one character per line has lines of one).
LINES = """sel => [...document.querySelectorAll(sel)].map(cell => {
  const lines = new Map(), range = document.createRange();
  const walk = document.createTreeWalker(cell, NodeFilter.SHOW_TEXT);
  for (let n = walk.nextNode(); n; n = walk.nextNode()) for (let i = 0; i < n.length; i++) {
    if (!n.data[i].trim()) continue;
    range.setStart(n, i); range.setEnd(n, i + 1);
    const top = Math.round(range.getBoundingClientRect().top);
    lines.set(top, (lines.get(top) || 0) + 1);
  }
  return [cell.textContent.trim(), lines.size, Math.min(...lines.values())];
})"""
FITS = """() => { const box = document.querySelector('.table-scroll');
  return {scrolls: box.scrollWidth > box.clientWidth + 1,
          hint: !document.getElementById('shelters-scroll-hint').hidden,
          right: document.getElementById('shelters').getBoundingClientRect().right,
          edge: box.getBoundingClientRect().right}; }"""
CHARTS = """() => [...document.querySelectorAll('div.chart')].map(c => [
  c.querySelector('h3.chart-title').textContent,
  (c.querySelector('svg title') || {}).textContent || '',
  (c.querySelector('svg') || {getAttribute: () => ''}).getAttribute('aria-label') || '',
  [...c.querySelectorAll('svg > text')].map(t => t.textContent)])"""
ISO = r"\d{4}-\d\d-\d\dT\d\d"
WHEN = r"\d{4}-\d\d-\d\d \d\d:\d\d"


def _no_broken_words(page) -> None:
    for text, lines, fewest in page.evaluate(LINES, "#shelters thead th"):
        assert lines <= len(text.split()) and fewest > 1, (text, lines)  # one word a line
    cells = "#shelters tbody td:is([data-field=municipality], [data-field=status], " \
            "[data-field=crowding], [data-field=last_synced_at])"
    for text, lines, fewest in page.evaluate(LINES, cells):
        assert fewest > 1 or len(text) == 1, (text, lines, fewest)


def _accessible(page, exclude=()) -> None:
    """axe, leaving out the map (its own test checks it; its dots cost axe most of the time)."""
    results = Axe().run(page, {"exclude": [[sel] for sel in exclude]} if exclude else None)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad


def test_hqs_pages_fit_the_meeting_room_and_read_japan_time(prefecture, browser):
    """At 1280 px the shelters table fits its column with no word cut, each chart has a
    title and Japan-time axes, and every time shown has its day; at tablet width the table
    scrolls with the shelter's name in view, and says so."""
    hq, _ = prefecture
    context = browser.new_context(viewport={"width": 1280, "height": 800},
                                  ignore_https_errors=True, locale="ja-JP")
    page = context.new_page()
    sign_in(page, hq.url, "op", "operator-pass-1", "/hq")
    wait_js(page, "window.shelterHq && window.shelterHq.messages >= 1")  # rows redrawn live
    fits = page.evaluate(FITS)
    assert not fits["scrolls"] and not fits["hint"] and fits["right"] <= fits["edge"] + 1
    _no_broken_words(page)
    synced = page.locator(f"tr[data-shelter='{A}'] [data-field=last_synced_at]").inner_text()
    assert re.fullmatch(WHEN, " ".join(synced.split())), synced
    charts = page.evaluate(CHARTS)
    assert [c[0] for c in charts] == ["在所者数（1時間ごと・直近48時間）",
                                      "在所者数（日ごと・直近14日）"]
    for title, svg_title, label, axis in charts:
        assert svg_title == title and label.startswith(title) and "最新" in label
        assert axis and not any(re.search(ISO, t) for t in axis), axis
        assert any(re.fullmatch(r"\d\d/\d\d", t) for t in axis), axis
    assert not re.search(ISO, page.inner_text("main"))
    # axe on the dashboard, this table and these charts included, is in the tests above
    # (1280 and 768 px): even scoped, axe walks all 3,000 map dots, most of a minute here.

    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet: the table scrolls
    wait_js(page, "!document.getElementById('shelters-scroll-hint').hidden")
    assert page.evaluate(FITS)["scrolls"] and page.locator("#shelters-scroll-hint").is_visible()
    _no_broken_words(page)
    page.evaluate("document.querySelector('.table-scroll').scrollLeft = 10000")
    edges = page.evaluate("""() => ['.table-scroll', '#shelters tbody th'].map(
        sel => document.querySelector(sel).getBoundingClientRect().left)""")
    assert abs(edges[0] - edges[1]) < 2, edges  # the shelter's name stays in view
    assert page.get_attribute(".table-scroll", "tabindex") == "0"  # keys scroll it too
    page.set_viewport_size({"width": 1280, "height": 800})

    page.goto(f"{hq.url}/hq/shelters/{A}")
    main = page.inner_text("main")
    assert re.search(f"最終同期: {WHEN}", main) and re.search(f"数値の時点: (—|{WHEN})", main)
    assert len(page.evaluate(CHARTS)) == 2 and not re.search(ISO, main)
    _accessible(page)
    page.goto(f"{hq.url}/hq/municipalities/大阪市")
    assert not page.evaluate(FITS)["scrolls"] and len(page.evaluate(CHARTS)) == 2
    _no_broken_words(page)
    _accessible(page, exclude=("svg.map",))
    page.goto(f"{hq.url}/hq/sync")
    shelters = page.locator("tbody td:nth-child(2)").all_inner_texts()
    assert "阿倍野スポーツセンター" in shelters and A not in shelters  # names, not ids
    for last_batch in page.locator("tbody td:nth-child(4)").all_inner_texts():
        assert re.fullmatch(f"{WHEN}|—", last_batch), last_batch  # a day with the time
    assert not re.search(ISO, page.inner_text("main"))
    _accessible(page)
    context.close()
