"""The kiosk and the desk on a long day (issue 16), in one Chromium page at 768×1024: a
kiosk account signs in and lands on the form; the allergies box follows its tick by CSS
alone; the error summary's links reach fields 3,000 px down; three cards lie side by side;
the 403 page of a signed-in account has a way out; at the desk an allergy says what to, a
card from another shelter that cannot be verified gets its own screen (and a way to
register them here), and "nguyen" finds Nguyễn."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from shelter.core import keys
from shelter.core.events import new_id
from shelter.domain import cards

from .conftest import decode_png, run_cli, sign_in, start_node, wait_until
from .test_browser_desk import assert_accessible

OTHER = "E2720000009999"
FAMILY = [("Nguyễn", "Văn An", "1985"), ("Trần", "Thị Mai", "1988"),
          ("Nguyễn", "Bảo Ngọc", "2024")]


@pytest.fixture(scope="module")
def day_node(tmp_path_factory):
    data = tmp_path_factory.mktemp("day-node")
    for user, role in (("tablet", "kiosk"), ("desk", "volunteer")):
        run_cli("user", "add", "--data", str(data), "--username", user, "--role", role,
                "--password", f"{user}-pass-1")
    server = start_node(data, "--shelter-id", "E2710000004444", "--shelter-name",
                        "長い一日避難所")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser, day_node):
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="ja-JP",
                                  ignore_https_errors=True, has_touch=True)
    yield context.new_page()
    context.close()


def in_view(page, selector: str) -> bool:
    return page.evaluate("""s => { const r = document.querySelector(s).getBoundingClientRect();
        return r.top >= 0 && r.bottom <= window.innerHeight; }""", selector)


def test_the_kiosk_tablet_from_sign_in_to_three_cards(page, day_node):
    base = day_node.https
    page.goto(f"{base}/staff/login")  # a kiosk account lands on the form, in kiosk mode
    page.fill("#username", "tablet")
    page.fill("#password", "tablet-pass-1")
    page.click("button[type=submit].primary")
    page.wait_for_url("**/register")
    assert page.locator("#register-form[data-kiosk]").count() == 1
    box = page.locator(".field.allergies[data-member='0']")
    # Hidden by the stylesheet (no script sets `hidden`), shown while the tick is on.
    assert box.is_hidden() and box.get_attribute("hidden") is None
    page.check("input[name='m0-needs'][value='allergy']")
    assert box.is_visible()
    page.uncheck("input[name='m0-needs'][value='allergy']")
    assert box.is_hidden()
    for i, (family, given, year) in enumerate(FAMILY):
        if i:
            page.click("#add-person")
        page.fill(f"#m{i}-family_name", family)
        page.fill(f"#m{i}-given_name", given)
        page.fill(f"#m{i}-family_name_kana", "グエン")
        if i < 2:  # the third one's birth date is left out
            for part, value in (("year", year), ("month", "3"), ("day", "14")):
                page.fill(f"#m{i}-birth_{part}", value)
    page.check("input[name='m2-needs'][value='allergy']")
    page.fill("#m2-allergies", "卵")
    page.check("input[name='consent'][value='relatives']")
    page.click("#submit")
    page.wait_for_selector("#error-summary")
    link = page.locator("#error-summary a[href='#m2-birth_year']")
    assert link.count() == 1
    far = page.evaluate("document.getElementById('m2-birth_year').getBoundingClientRect().top")
    assert far > 1500  # the field is well below the summary
    assert_accessible(page)
    link.click()
    wait_until(lambda: in_view(page, "#m2-birth_year"), timeout=5, what="field in view")
    assert page.evaluate("location.hash") == "#m2-birth_year"
    for part, value in (("year", "2024"), ("month", "5"), ("day", "1")):
        page.fill(f"#m2-birth_{part}", value)
    assert page.locator(".field.allergies[data-member='2']").is_visible()  # ticked, kept
    page.click("#submit")
    page.wait_for_url("**/register/cards")
    figures = page.locator("figure.card")
    assert figures.count() == 3
    tops = {round(figures.nth(k).bounding_box()["y"]) for k in range(3)}
    assert len(tops) == 1, tops  # one row at 768 px, not a 2,000 px column
    assert page.evaluate("document.documentElement.scrollHeight") < 1400
    image = figures.nth(2).locator("img.qr")
    wait_until(lambda: image.evaluate("img => img.complete && img.naturalWidth > 0"),
               timeout=5, what="card image")
    decoded = decode_png(image.screenshot())  # still readable at this size
    assert len(decoded) == 1 and cards.parse_code(decoded[0], {}).display_name == \
        "Nguyễn Bảo Ngọc"
    assert_accessible(page)
    # The kiosk account on a staff page: 403, and a way out of the account.
    page.goto(f"{base}/desk")
    assert page.locator("#sign-out").is_visible()
    assert_accessible(page)
    page.click("#sign-out")
    page.wait_for_url("**/staff/login")


def forged(name: str) -> str:
    key = keys.load_private_key(keys.new_private_key_pem())
    return cards.make_code(key, new_id(), OTHER, "NOTHER00001", name, date.today())


def test_the_desk_names_the_allergy_and_shows_an_unverifiable_card_apart(page, day_node):
    base = day_node.https
    sign_in(page, base, "desk", "desk-pass-1", "/desk")
    # "nguyen", typed without accents, finds the family the kiosk registered.
    page.goto(f"{base}/desk/find?q=nguyen")
    assert page.locator("tbody tr").count() == 2
    assert "Nguyễn Bảo Ngọc" in page.locator("tbody").inner_text()
    assert_accessible(page)
    db = sqlite3.connect(f"file:{day_node.data / 'shelter.db'}?mode=ro", uri=True)
    try:
        short = db.execute("SELECT short_code FROM persons WHERE allergies = '卵'").fetchone()[0]
    finally:
        db.close()
    page.goto(f"{base}/desk")
    wait_until(lambda: page.evaluate("!!window.shelterDesk"), timeout=10, what="desk.js")
    count = "(window.shelterDesk.results || 0)"
    results = page.evaluate(count)
    panel = page.locator("#result")

    def scan(code: str) -> None:
        nonlocal results
        page.fill("#code", code)
        page.press("#code", "Enter")
        wait_until(lambda: page.evaluate(count) > results, timeout=10, what="the answer")
        results = page.evaluate(count)

    scan(short)  # typed, as the short code under the QR
    assert "アレルギー: 卵" in panel.locator(".flags").inner_text()
    # A card from another shelter this node cannot verify: amber, dashed, stays, says so.
    scan(forged("佐藤 花子"))
    assert "kind-unverified" in (panel.get_attribute("class") or "")
    assert "確認できません" in panel.inner_text() and OTHER in panel.inner_text()
    colour = panel.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == "rgb(255, 240, 214)", colour  # not the check-in's green
    assert_accessible(page)
    page.click("#register-here")
    page.wait_for_url("**/register")
    assert (page.input_value("#m0-family_name"), page.input_value("#m0-given_name")) == (
        "佐藤", "花子")
