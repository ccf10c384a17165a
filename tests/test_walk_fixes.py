"""Small things found walking the pages as a new user at tablet size (issue 16, "walker").

The pages are drawn by the Flask test client and shown in the session's Chromium through
``page.route`` (no server to start): the stylesheet, the page's own CSP and its script are the
real ones, so sizes are measured as a tablet would draw them."""

from __future__ import annotations

import copy

import pytest

from shelter.domain import households, stock
from shelter.domain.accounts import audit
from shelter.render import report

from .conftest import VALID_HOUSEHOLD, pdf_text, wait_until
from .test_browser_desk import assert_accessible
from .test_presence import signed_in

ORIGIN = "http://node.test"
LINES = """e => { const r = document.createRange(); r.selectNodeContents(e);
    return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"""  # text lines


def routed(browser, client, width: int, height: int):
    """A page whose every request is answered by ``client`` (a signed-in test client)."""
    context = browser.new_context(viewport={"width": width, "height": height}, locale="ja-JP")
    page = context.new_page()

    def answer(route) -> None:
        asked = route.request
        response = client.open(asked.url[len(ORIGIN):], method=asked.method,
                               data=asked.post_data_buffer, headers={
                                   k: v for k, v in asked.headers.items()
                                   if k.lower() in ("content-type", "accept")})
        kept = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
        route.fulfill(status=response.status_code, headers=kept, body=response.get_data())

    page.route(f"{ORIGIN}/**", answer)
    return context, page


@pytest.fixture
def tablet(browser, app):
    """A 768×1024 page of a signed-in manager of the node."""
    context, page = routed(browser, signed_in(app, "manager"), 768, 1024)
    yield page
    context.close()


def box(page, selector: str) -> dict:
    return page.locator(selector).first.bounding_box()


def test_tap_targets_and_cells_that_do_not_break_in_two(tablet, app):
    node = app.extensions["shelter"]
    registered = households.register_household(node.store, node.identity,
                                               copy.deepcopy(VALID_HOUSEHOLD))
    household_id = registered["household_id"]
    # Household page: the card code broke at its hyphen (J98Q- / 7N30), headings letter by
    # letter; "reprint" looks like the button it is, still a 44 px target.
    tablet.goto(f"{ORIGIN}/staff/households/{household_id}?lang=ja")
    tablet.set_default_timeout(5000)
    reprint = tablet.locator("a.button.reprint").first
    assert reprint.bounding_box()["height"] >= 44 and reprint.evaluate(LINES) == 1
    code = tablet.locator("td.mono .nowrap").first
    assert code.inner_text() == registered["members"][0]["short_code"]
    assert code.evaluate("e => e.getClientRects().length") == 1  # one line
    for k in range(1, 7):  # ふりがな, 配慮事項: a heading is not cut letter by letter
        assert tablet.locator(f"thead th:nth-child({k})").evaluate(LINES) == 1
    assert_accessible(tablet)
    # Desk: the scan field's focus ring covered the bottom of its label.
    tablet.goto(f"{ORIGIN}/desk?lang=en")
    assert box(tablet, "#code")["y"] - 6 >= box(tablet, "label[for=code]")["y"] + box(
        tablet, "label[for=code]")["height"]
    # Stock page: the "use by" date field was 24 px tall.
    tablet.goto(f"{ORIGIN}/supplies?lang=ja")
    assert box(tablet, "#mv-expires")["height"] >= 44
    # Supply requests: an amount and its unit on one line, not "2000 / L".
    stock.move(node.store, node.shelter_id, {"item_id": "water", "kind": "received",
               "quantity": 2000, "source": "hq_shipment"}, "manager", may_override=True)
    tablet.goto(f"{ORIGIN}/supplies/requests?lang=ja")
    on_hand = tablet.locator("#new-request tbody td:nth-of-type(1)")
    assert "2000 L" in on_hand.first.inner_text()
    for k in range(on_hand.count()):
        assert on_hand.nth(k).evaluate(LINES) == 1
    # Audit log: an action's name in one line, and a bare record id (a card not from here)
    # no longer pushes the page sideways.
    audit(node.store, "manager", "login", "-", "127.0.0.1")
    audit(node.store, "desk", "scan_card", "01M8VMMDHHKJQ4NA1X3W3CDAC0", "check_in")
    tablet.goto(f"{ORIGIN}/staff/audit?lang=ja")
    assert tablet.evaluate(
        "document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    cells = tablet.locator("#audit tbody td:nth-child(3)")
    assert cells.count() >= 2
    for k in range(cells.count()):  # "ログイン" on one line, not ログイ/ン
        assert cells.nth(k).evaluate(LINES) == 1


def test_the_situation_report_counts_people_registered_not_here(tmp_path, headers):
    """Its totals are the prefecture's: "registered here" (この避難所で登録) was a node's word."""
    from shelter.core.node import NodeContext
    from shelter.demo import seed_hq
    from shelter.hq import stats
    hq = NodeContext(tmp_path / "hq", role="hq")
    try:
        seed_hq(hq)
        rows = [dict(r) for r in stats.cached_overview(hq)]
        for language, word, node_word in (("ja", "登録者数", "この避難所で登録"),
                                          ("en", "People registered", "Registered here")):
            headers.clear()
            text = pdf_text(report.situation_report(rows, [], [], language), tmp_path)
            assert word in headers[0], headers  # the totals
            assert [h for h in headers[1:] if word in h], headers  # by municipality
            assert node_word not in sum(headers, []) and node_word not in text
    finally:
        hq.db.conn.close()


def test_hqs_buttons_without_a_class_are_not_the_browsers_grey(browser, tmp_path):
    from shelter.app import create_app
    from shelter.domain.accounts import add_user

    from .test_hq import signed_in as hq_signed_in
    app = create_app(tmp_path / "hq", role="hq", test_config={"TESTING": True})
    add_user(app.extensions["shelter"].store, "op", "operator-pass-1", "operator")
    client, _ = hq_signed_in(app)
    context, page = routed(browser, client, 1280, 800)
    try:
        for path, selector in (("/hq/enquiry?lang=ja", ".enquiry-form button"),
                               ("/hq/map?lang=ja", "form.zoom button")):
            page.goto(ORIGIN + path)
            button = page.locator(selector).first
            assert button.evaluate("e => getComputedStyle(e).backgroundColor") == \
                "rgb(255, 255, 255)", path
            assert button.bounding_box()["height"] >= 44
        assert_accessible(page)
    finally:
        context.close()


def test_an_error_link_lands_with_the_fields_label_in_view(browser, app):
    """The summary's link scrolled the field to 1rem from the top: its label and legend
    (生年月日, 年) were cut off above it."""
    context, page = routed(browser, signed_in(app, "volunteer"), 768, 1024)
    try:
        page.goto(f"{ORIGIN}/register?lang=ja")
        page.fill("#m0-family_name", "木村")
        page.click("#submit")
        page.wait_for_selector("#error-summary a[href='#m0-birth_year']")
        page.click("#error-summary a[href='#m0-birth_year']")
        wait_until(lambda: page.evaluate("location.hash") == "#m0-birth_year", timeout=5,
                   what="the jump")  # no smooth scrolling: the jump is done
        assert page.evaluate("window.scrollY") > 0
        label = page.locator("label[for=m0-birth_year]")
        assert label.evaluate("e => e.getBoundingClientRect().top") >= 0
    finally:
        context.close()
