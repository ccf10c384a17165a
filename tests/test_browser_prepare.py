"""A family of four makes its household code on a phone (390×844) in a real Chromium against
a real node; the on-screen QR and the printed page's QR are decoded by zxing-cpp; then the
network is cut and the page, opened again, shows the code from what the phone kept."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe

from shelter.domain import household_code

from .conftest import decode_png, render_pdf, start_node, wait_until

FAMILY = [
    {"family": "佐藤", "given": "健一", "kana": ("さとう", "けんいち"),
     "birth": ("１９７８", "５", "１２"), "sex": "male", "needs": []},
    {"family": "佐藤", "given": "美咲", "kana": ("さとう", "みさき"),
     "birth": ("1980", "9", "3"), "sex": "female", "needs": ["chronic_illness"],
     "medication": "インスリン"},
    {"family": "佐藤", "given": "陽太", "kana": ("さとう", "ようた"),
     "birth": ("2015", "1", "20"), "sex": "male", "needs": ["allergy"], "allergies": "卵"},
    {"family": "佐藤", "given": "結衣", "kana": ("さとう", "ゆい"),
     "birth": ("2023", "6", "30"), "sex": "female", "needs": ["infant"]},
]
NAMES = [f"{p['family']} {p['given']}" for p in FAMILY]


def assert_accessible(page) -> None:
    results = Axe().run(page)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad


def wait_js(page, expression: str, timeout: float = 10.0):
    """Poll a page expression (wait_for_function would need eval, which our CSP forbids)."""
    return wait_until(lambda: page.evaluate(expression), timeout=timeout, interval=0.05,
                      what=expression)


@pytest.fixture(scope="module")
def prepare_node(tmp_path_factory):
    server = start_node(tmp_path_factory.mktemp("prepare-node"), "--shelter-id",
                        "E2710000004444", "--shelter-name", "テスト避難所")
    yield server
    server.stop()


def shown_code(page, selector: str) -> str:
    image = page.locator(selector)
    image.scroll_into_view_if_needed()
    wait_js(page, f"document.querySelector('{selector}').naturalWidth > 0")
    decoded = decode_png(image.screenshot())
    assert len(decoded) == 1, decoded
    return decoded[0]


def test_a_family_of_four_makes_its_code_on_a_phone_and_shows_it_offline(
        prepare_node, browser, tmp_path):
    # The node's plain-HTTP port, as a phone on the shelter's Wi-Fi (or a family at home
    # through HQ) would open it; on 127.0.0.1 it is a secure context, so the service
    # worker runs as it does over HTTPS.
    base = prepare_node.http
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, locale="ja-JP", device_scale_factor=2)
    page = context.new_page()
    page.goto(f"{base}/prepare")
    assert page.locator("h1").inner_text() == "世帯のコードを作る"
    assert page.locator("#kept").is_hidden()  # nothing kept yet
    assert_accessible(page)
    for i, person in enumerate(FAMILY):
        if i:
            page.click("#add-person")
        page.fill(f"#m{i}-family_name", person["family"])
        page.fill(f"#m{i}-given_name", person["given"])
        page.fill(f"#m{i}-family_name_kana", person["kana"][0])
        page.fill(f"#m{i}-given_name_kana", person["kana"][1])
        for part, value in zip(("year", "month", "day"), person["birth"], strict=True):
            page.fill(f"#m{i}-birth_{part}", value)
        page.check(f"input[name='m{i}-sex'][value='{person['sex']}']")
        for need in person["needs"]:
            page.check(f"input[name='m{i}-needs'][value='{need}']")
        for field in ("allergies", "medication"):
            if person.get(field):
                page.fill(f"#m{i}-{field}", person[field])
    page.fill("#postal_code", "５３０－０００１")
    page.fill("#pets", "猫1匹")
    page.check("input[name='consent'][value='relatives']")
    page.click("#submit")
    page.wait_for_selector("#made")
    assert page.locator("h1").inner_text() == "世帯のコード"
    assert page.locator("#made .names li").all_inner_texts() == NAMES
    assert_accessible(page)

    on_screen = shown_code(page, "#qr")
    code = household_code.read(on_screen)
    assert [f"{m['family_name']} {m['given_name']}" for m in code.registration["members"]
            ] == NAMES
    assert code.registration["members"][1]["medication"] == "インスリン"
    assert page.locator("#save").get_attribute("download").startswith("household-code-")
    assert page.locator("#print").is_visible()

    # The printed page: the QR alone, big, with the names and the date, on one page.
    page.emulate_media(media="print")
    pdf = page.pdf(format="A4", print_background=True)
    page.emulate_media(media="screen")
    pages = render_pdf(pdf, tmp_path)
    assert len(pages) == 1
    assert decode_png(pages[0]) == [on_screen]

    # The phone kept it, and the page keeps itself (the service worker on 127.0.0.1).
    kept = page.evaluate("JSON.parse(localStorage.getItem('shelter.householdCode'))")
    assert kept["code"] == on_screen and kept["names"] == NAMES
    wait_js(page, "navigator.serviceWorker.ready.then(r => !!r.active)")
    wait_js(page, "caches.match('/prepare').then(r => !!r)")
    assert page.locator("#kept-note").is_visible()

    # Later, online: the page shows the kept code; "change my details" refills the form
    # from it, and the new code (same household, same people) replaces the old one.
    page.goto(f"{base}/prepare")
    assert page.locator("#kept-names li").all_inner_texts() == NAMES
    page.click("#kept-change")
    page.wait_for_selector("input[name=household_id]", state="attached")
    assert page.input_value("#m3-given_name") == "結衣"
    page.fill("#pets", "猫2匹")
    page.click("#submit")
    page.wait_for_selector("#made")
    on_screen = shown_code(page, "#qr")
    changed = household_code.read(on_screen)
    assert changed.registration["pets"] == "猫2匹"
    assert (changed.household_id, changed.seqs) == (code.household_id, code.seqs)
    kept = page.evaluate("JSON.parse(localStorage.getItem('shelter.householdCode'))")
    assert kept["code"] == on_screen

    # No network (and, whatever the browser's emulation reaches, no server either): the
    # page opens from what the phone kept and shows the same code.
    context.set_offline(True)
    prepare_node.stop()
    assert page.evaluate("fetch('/api/v1/openapi.json').then(() => 'online', () => 'off')"
                         ) == "off"
    page.goto(f"{base}/prepare")
    page.wait_for_selector("#kept:not([hidden])")
    page.wait_for_selector("#kept-offline", state="visible", timeout=5000)
    assert page.locator("#kept-names li").all_inner_texts() == NAMES
    assert shown_code(page, "#kept-qr") == on_screen
    page.click("#kept-show")  # big, for the desk's camera
    assert shown_code(page, "#kept-qr") == on_screen
    page.click("#kept-sheet")  # a tap on it ends that
    assert page.locator("#kept-show").get_attribute("aria-pressed") == "false"
    # Changing it needs the server: said so, nothing sent.
    page.click("#kept-change")
    assert "通信が必要" in page.locator("#kept-message").inner_text()
    assert_accessible(page)
    # And the print of the kept code is the code alone too.
    (tmp_path / "kept").mkdir()
    page.emulate_media(media="print")
    printed = render_pdf(page.pdf(format="Letter"), tmp_path / "kept")
    assert len(printed) == 1 and decode_png(printed[0]) == [on_screen]
    context.close()
