"""Two desk tablets in a real Chromium: a card from the printed PDF held up to tablet A's
(fake) camera checks its holder in, and tablet B's headcount follows live."""

from __future__ import annotations

import copy
import re
from datetime import date, datetime, time

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from shelter.core import keys
from shelter.domain import cards
from shelter.domain.supplies import JST

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
    posted = []  # every scan of this tablet goes to the API, none to the plain form
    a.on("request", lambda r: posted.append(r.url) if r.method == "POST" else None)
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

    # A handheld scanner types the second card's code and Enter, focus anywhere; the scan
    # goes to the API a script would use, and the node draws its answer.
    a.evaluate("document.activeElement && document.activeElement.blur()")
    with a.expect_request(lambda r: r.url.endswith("/api/v1/scans")) as scanned, \
            a.expect_request(lambda r: r.url.endswith("/desk/result")) as drawn:
        a.keyboard.type(second["code"])
        a.keyboard.press("Enter")
    assert scanned.value.method == "POST"
    assert scanned.value.post_data_json == {"code": second["code"], "action": "auto",
                                            "destination": "", "destination_detail": ""}
    assert scanned.value.headers["x-csrf-token"]
    assert drawn.value.method == "POST"
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
    scans = [url for url in posted if url.endswith("/api/v1/scans")]
    assert len(scans) == 4 and not [url for url in posted if url.endswith("/desk/scan")]
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


def present_now(node) -> int:
    return requests.get(f"{node.https}/api/v1/headcount", verify=node.verify, timeout=10,
                        headers={"Authorization": f"Bearer {node.token('volunteer')}"}
                        ).json()["present"]


def test_a_household_button_shows_the_answer_then_the_household_again(camera_browser,
                                                                      desk_node, family):
    page = tablet(camera_browser, desk_node)
    page.goto(f"{desk_node.https}/desk/find?q=やまだ")
    page.click("tbody tr a >> nth=0")
    page.wait_for_url("**/staff/households/*")
    household = page.url
    before = present_now(desk_node)
    page.evaluate("window.notReloaded = true")
    page.click("form.member-actions button[value=go_out] >> nth=0")
    wait_js(page, "window.shelterDesk.results >= 1")
    assert "kind-go_out" in page.locator("#result").get_attribute("class")
    assert "外出しました" in page.locator("#result").inner_text()
    wait_js(page, "window.notReloaded !== true", 10)  # then the household page, fresh
    assert page.url == household
    assert page.locator("td.status-out").count() == 1
    assert present_now(desk_node) == before - 1
    page.context.close()


def test_when_the_node_cannot_be_reached_the_desk_says_so_and_nothing_changes(
        camera_browser, desk_node, family):
    registered, _ = family
    page = tablet(camera_browser, desk_node)
    before = present_now(desk_node)
    page.route("**/api/v1/scans", lambda route: route.abort("internetdisconnected"))
    page.fill("#code", registered["members"][1]["code"])
    page.press("#code", "Enter")
    wait_js(page, "window.shelterDesk.results >= 1")
    result = page.locator("#result")
    assert "kind-error" in result.get_attribute("class")
    assert "サーバーに接続できません" in result.inner_text()
    assert present_now(desk_node) == before
    page.unroute("**/api/v1/scans")  # the node is back: the same card goes through
    page.fill("#code", registered["members"][1]["code"])
    page.press("#code", "Enter")
    wait_js(page, "window.shelterDesk.results >= 2")
    assert "kind-error" not in result.get_attribute("class")
    assert present_now(desk_node) != before
    page.context.close()


def test_a_scan_whose_answer_cannot_be_drawn_still_says_who_and_what(camera_browser,
                                                                     desk_node, family):
    """The scan went through but drawing its panel did not: the desk says it in words."""
    registered, _ = family
    page = tablet(camera_browser, desk_node)
    page.route("**/desk/result", lambda route: route.abort("internetdisconnected"))
    before = present_now(desk_node)
    page.fill("#code", registered["members"][0]["code"])
    page.press("#code", "Enter")  # in, out or back, by where he is now
    wait_js(page, "window.shelterDesk.results >= 1")
    result = page.locator("#result")
    kind = page.evaluate("window.shelterDesk.lastKind")
    done = page.evaluate("JSON.parse(document.getElementById('desk-labels').textContent).done")
    assert kind in ("check_in", "go_out", "return")
    assert result.inner_text().strip() == f"山田 太郎 · {done[kind]}"
    assert present_now(desk_node) != before
    page.fill("#code", "SHC1.THIS.IS.NOT.A.CARD")  # a refusal: its message, in red
    page.press("#code", "Enter")
    wait_js(page, "window.shelterDesk.results >= 2")
    assert "kind-error" in result.get_attribute("class") and "読み取れません" in \
        result.inner_text()
    page.unroute("**/desk/result")
    page.context.close()


JAPAN_TIMES = """() => [ShelterLive.japanTime('2026-01-01T15:30:05Z'),
    ShelterLive.japanTime('2026-01-01T15:30:05+00:00', {seconds: true}),
    ShelterLive.japanTime('2026-01-01T15:30:05Z', {date: true}),
    ShelterLive.japanTime(''), ShelterLive.japanTime('not a time')]"""


def test_times_are_japan_time_whatever_the_tablet_zone(camera_browser, desk_node):
    """live.js says the time as the shelter's clock does, on a tablet set to Los Angeles,
    and the same where the browser's Intl cannot do Asia/Tokyo (the +9 hours fallback)."""
    for no_intl in (False, True):
        context = camera_browser.new_context(ignore_https_errors=True, locale="ja-JP",
                                             timezone_id="America/Los_Angeles")
        if no_intl:
            context.add_init_script(
                "Intl.DateTimeFormat = function () { throw new RangeError('no zones'); };")
        page = context.new_page()
        sign_in(page, desk_node.https, "desk", "desk-pass-1", "/desk/headcount")
        assert page.evaluate("new Date('2026-01-01T15:30:05Z').getHours()") == 7  # LA
        assert page.evaluate("""() => { try { new Intl.DateTimeFormat('en-US',
            {timeZone: 'Asia/Tokyo'}); return true; } catch (e) { return false; } }"""
                             ) is not no_intl
        assert page.evaluate(JAPAN_TIMES) == ["00:30", "00:30:05", "2026-01-02 00:30", "",
                                              ""]
        wait_js(page, "window.shelterDesk && window.shelterDesk.liveUpdates >= 1")
        as_of = page.locator("[data-as-of]").inner_text()
        assert re.fullmatch(r"\d\d:\d\d:\d\d", as_of), as_of
        japan = datetime.now(JST)
        shown = datetime.combine(japan.date(), time.fromisoformat(as_of), JST)
        apart = (japan - shown).total_seconds() % 86400
        assert min(apart, 86400 - apart) < 120, (as_of, japan)
        context.close()
