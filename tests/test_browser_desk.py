"""Two desk tablets in a real Chromium: a card from the printed PDF held up to tablet A's
(fake) camera checks its holder in, and tablet B's headcount follows live."""

from __future__ import annotations

import copy
from datetime import date

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from shelter.core import keys
from shelter.domain import cards

from .camera import card_from_page, write_y4m
from .conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    VALID_HOUSEHOLD,
    render_pdf,
    sign_in,
    start_node,
    wait_until,
)

SHELTER = "E2710000003333"


def assert_accessible(page) -> None:
    results = Axe().run(page)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad


@pytest.fixture(scope="module")
def desk_node(tmp_path_factory):
    from .conftest import run_cli
    data = tmp_path_factory.mktemp("desk-node")
    run_cli("user", "add", "--data", str(data), "--username", "desk", "--role", "volunteer",
            "--password", "desk-pass-1")
    server = start_node(data, "--shelter-id", SHELTER, "--shelter-name", "テスト避難所")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def family(desk_node):
    """A household of two registered through the API, and its printed card sheet."""
    kiosk = desk_node.token("kiosk")
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["members"][0]["needs"] = ["elderly", "wheelchair"]
    body["members"].append({"family_name": "山田", "given_name": "花子",
                            "family_name_kana": "やまだ", "given_name_kana": "はなこ",
                            "birth_date": "1951-11-20", "sex": "female",
                            "needs": ["allergy"], "allergies": "そば"})
    response = requests.post(f"{desk_node.https}/api/v1/households", json=body,
                             headers={"Authorization": f"Bearer {kiosk}"},
                             verify=desk_node.verify, timeout=10)
    assert response.status_code == 201, response.text
    registered = response.json()
    pdf = requests.get(
        f"{desk_node.https}/api/v1/households/{registered['household_id']}/cards.pdf",
        headers={"Authorization": f"Bearer {desk_node.token('volunteer')}"},
        verify=desk_node.verify, timeout=10).content
    return registered, pdf


@pytest.fixture(scope="module")
def camera_browser(family, tmp_path_factory, playwright_driver):
    """Chromium whose camera sees the first card of the family's printed sheet."""
    folder = tmp_path_factory.mktemp("camera")
    page_png = render_pdf(family[1], folder)[0]
    video = write_y4m(card_from_page(page_png), folder / "card.y4m")
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS + [
        "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
        f"--use-file-for-fake-video-capture={video}",
        "--autoplay-policy=no-user-gesture-required"])
    yield browser
    browser.close()


def tablet(browser, node, width=768, height=1024):
    context = browser.new_context(viewport={"width": width, "height": height},
                                  ignore_https_errors=True, locale="ja-JP", has_touch=True,
                                  permissions=["camera"])
    page = context.new_page()
    sign_in(page, node.https, "desk", "desk-pass-1", "/desk")
    return page


def wait_js(page, expression: str, timeout: float = 10.0):
    """Poll a page expression (wait_for_function would need eval, which our CSP forbids)."""
    return wait_until(lambda: page.evaluate(expression), timeout=timeout, interval=0.02,
                      what=expression)


def test_camera_check_in_shows_on_the_other_tablet_within_a_second(camera_browser, desk_node,
                                                                   family):
    registered, _ = family
    first, second = registered["members"]
    a = tablet(camera_browser, desk_node)
    b = tablet(camera_browser, desk_node)
    b.goto(f"{desk_node.https}/desk/headcount")
    wait_js(b, "window.shelterDesk && window.shelterDesk.liveUpdates >= 1")
    assert b.locator("[data-count=present]").first.inner_text() == "0"
    # Tablet B notes (by the wall clock both tabs share) when its number changes.
    b.evaluate("""() => { const n = document.querySelector('[data-count=present]');
        new MutationObserver(() => { window.changedAt = window.changedAt || Date.now(); })
            .observe(n, {childList: true, characterData: true, subtree: true}); }""")

    wait_js(a, "window.shelterDesk && window.shelterDesk.liveUpdates >= 1")
    a.click("#camera-toggle")
    wait_js(a, "window.shelterDesk.results >= 1", 20)
    answered_at = a.evaluate("Date.now()")
    result = a.locator("#result")
    assert "kind-check_in" in result.get_attribute("class")
    assert "入所しました" in result.inner_text() and "山田 太郎" in result.inner_text()
    assert "車いす" in result.inner_text()  # the wheelchair flag the desk must see
    timing = a.evaluate("window.shelterDesk.lastResultAt - window.shelterDesk.firstFrameAt")
    frames = a.evaluate("window.shelterDesk.framesSent")
    print(f"\ncamera to 'checked in': {timing:.0f} ms ({frames} frames sent)")

    wait_js(b, "document.querySelector('[data-count=present]').textContent === '1'", 5)
    changed_at = b.evaluate("window.changedAt")
    print(f"tablet B updated {changed_at - answered_at:+d} ms after tablet A's answer")
    assert changed_at - answered_at < 1000
    assert b.locator("[data-count=arrivals_last_hour]").inner_text() == "1"
    a.click("#camera-toggle")  # camera off

    # A handheld scanner types the second card's code and Enter, focus anywhere.
    a.evaluate("document.activeElement && document.activeElement.blur()")
    a.keyboard.type(second["code"])
    a.keyboard.press("Enter")
    wait_js(a, "window.shelterDesk.results >= 2")
    assert "山田 花子" in result.inner_text() and "アレルギー" in result.inner_text()
    wait_js(b, "document.querySelector('[data-count=present]').textContent === '2'", 5)

    # Forged and garbled codes: a red screen, nothing changes.
    forged = cards.make_code(keys.load_private_key(keys.new_private_key_pem()),
                             first["person_id"], SHELTER,
                             cards.parse_code(first["code"], {}).node_id, "偽物", date.today())
    for code, words, n in ((forged, "正規のものではありません", 3),
                           ("SHC1.THIS.IS.NOT.A.CARD", "読み取れません", 4)):
        a.fill("#code", code)
        a.press("#code", "Enter")
        wait_js(a, f"window.shelterDesk.results >= {n}")
        assert "kind-error" in result.get_attribute("class")
        assert words in result.inner_text()
    assert b.locator("[data-count=present]").first.inner_text() == "2"
    a.context.close()
    b.context.close()


def test_desk_pages_are_accessible_on_tablet_and_phone(camera_browser, desk_node, family):
    registered, _ = family
    for width, height in ((768, 1024), (390, 844)):
        page = tablet(camera_browser, desk_node, width, height)
        assert_accessible(page)
        # The typed short code works as a fallback, on the plain form too.
        page.goto(f"{desk_node.https}/desk/find?q=やまだ")
        assert page.locator("tbody tr").count() >= 2
        assert_accessible(page)
        page.click("tbody tr a >> nth=0")
        page.wait_for_url("**/staff/households/*")
        assert page.locator("td.status-present, td.status-not_arrived").count() == 2
        assert_accessible(page)
        page.goto(f"{desk_node.https}/desk/headcount")
        assert_accessible(page)
        page.context.close()
