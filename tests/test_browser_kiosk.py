"""Self-registration in a real Chromium against a real node server."""

from __future__ import annotations

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe

from shelter.domain.cards import parse_code

from .conftest import decode_png, render_pdf

FAMILY = [
    {"family": "Nguyễn", "given": "Văn An", "year": "1985", "month": "3", "day": "14",
     "sex": "male", "needs": []},
    {"family": "Trần", "given": "Thị Mai", "year": "1988", "month": "7", "day": "2",
     "sex": "female", "needs": ["pregnant_nursing"]},
    {"family": "Nguyễn", "given": "Bảo Ngọc", "year": "2024", "month": "12", "day": "30",
     "sex": "female", "needs": ["infant", "allergy"], "allergies": "sữa bò"},
]


def assert_accessible(page) -> None:
    results = Axe().run(page)
    bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
           for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not bad, bad


@pytest.fixture
def kiosk(browser):
    context = browser.new_context(viewport={"width": 768, "height": 1024},
                                  locale="vi-VN", has_touch=True)
    page = context.new_page()
    yield page
    context.close()


def test_a_vietnamese_family_of_three_registers_on_the_kiosk(node_server, kiosk, tmp_path):
    page = kiosk
    page.goto(f"{node_server.http}/kiosk?lang=vi")
    assert page.locator("h1").inner_text() == "Đăng ký tại nơi sơ tán"
    assert page.locator("html").get_attribute("lang") == "vi"
    assert_accessible(page)
    for i, person in enumerate(FAMILY):
        if i:
            page.click("#add-person")
        page.fill(f"#m{i}-family_name", person["family"])
        page.fill(f"#m{i}-given_name", person["given"])
        page.fill(f"#m{i}-birth_year", person["year"])
        page.fill(f"#m{i}-birth_month", person["month"])
        page.fill(f"#m{i}-birth_day", person["day"])
        page.check(f"input[name='m{i}-sex'][value='{person['sex']}']")
        for need in person["needs"]:
            page.check(f"input[name='m{i}-needs'][value='{need}']")
        if person.get("allergies"):
            page.fill(f"#m{i}-allergies", person["allergies"])
    page.fill("#address", "Osaka-shi Chuo-ku Otemae 2-1")
    page.fill("#postal_code", "540-0008")
    page.check("input[name='whereabouts'][value='shelter']")
    page.check("input[name='consent'][value='acquaintances']")
    page.click("#submit")
    page.wait_for_url("**/register/cards")
    assert page.locator("h1").inner_text() == "Bạn đã đăng ký xong"
    assert_accessible(page)

    figures = page.locator("figure.card")
    assert figures.count() == 3
    names = [f"{p['family']} {p['given']}" for p in FAMILY]
    codes = []
    for k in range(3):
        figure = figures.nth(k)
        image = figure.locator("img.qr")
        image.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=image.element_handle())
        decoded = decode_png(image.screenshot())
        assert len(decoded) == 1
        card = parse_code(decoded[0], node_server.card_keys())
        assert card.verified
        assert card.person_id == figure.get_attribute("data-person")
        assert card.display_name == names[k] == figure.locator(".name").inner_text()
        assert len(figure.locator(".short-code").inner_text().replace("-", "")) == 8
        codes.append(decoded[0])

    pdf = page.request.get(node_server.http + page.locator("#pdf").get_attribute("href"))
    assert pdf.headers["content-type"] == "application/pdf"
    from_pdf = [c for png in render_pdf(pdf.body(), tmp_path) for c in decode_png(png)]
    assert sorted(from_pdf) == sorted(codes)

    page.click("#done")
    page.wait_for_url("**/register")
    assert page.locator("h1").inner_text() == "Đăng ký tại nơi sơ tán"
    assert page.locator("fieldset.person").count() == 1
    assert page.input_value("#m0-family_name") == "" and page.input_value("#address") == ""
    content = page.content()
    assert not any(p["family"] in content or p["given"] in content for p in FAMILY)
    # neither the back button nor the cards address brings them back
    page.go_back()
    assert "Nguyễn" not in page.content()
    page.goto(f"{node_server.http}/register/cards")
    assert page.url.endswith("/register") and "Nguyễn" not in page.content()


def test_japanese_registration_fits_a_phone_and_refuses_bad_kana(node_server, browser):
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True,
                                  has_touch=True, locale="ja-JP")
    page = context.new_page()
    try:
        page.goto(f"{node_server.http}/register")
        assert page.locator("html").get_attribute("lang") == "ja"
        page.fill("#m0-family_name", "大阪")
        page.fill("#m0-family_name_kana", "osaka")
        page.fill("#m0-birth_year", "1960")
        page.fill("#m0-birth_month", "2")
        page.fill("#m0-birth_day", "30")
        page.fill("#address", "大阪市北区")
        page.check("input[name='whereabouts'][value='home']")
        page.check("input[name='consent'][value='none']")
        page.click("#submit")
        assert page.locator(".error-box").is_visible()
        assert page.locator("#err-members-0-family_name_kana").inner_text() == \
            "ひらがなかカタカナで入力してください。"
        assert page.locator("#err-members-0-birth_date").inner_text() == "存在しない日付です。"
        assert page.input_value("#m0-family_name") == "大阪"  # nothing typed is lost
        assert_accessible(page)
        page.fill("#m0-family_name_kana", "おおさか")
        page.fill("#m0-birth_day", "28")
        page.click("#submit")
        page.wait_for_url("**/register/cards")
        assert page.locator("figure.card .name").inner_text() == "大阪"
        no_sideways_scroll = page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth")
        assert no_sideways_scroll
        height = page.locator("#done").bounding_box()["height"]
        assert height >= 44  # a thumb-sized target
    finally:
        context.close()


def test_staff_pages_are_accessible_and_show_duplicates(node_server, browser):
    token = node_server.token("kiosk")
    twin = {"address": "大阪市", "whereabouts": "shelter", "consent": "none", "language": "ja",
            "members": [{"family_name": "重複", "given_name": "確認",
                         "family_name_kana": "ちょうふく",
                         "birth_date": "1970-01-01"}]}
    for _ in range(2):
        assert requests.post(f"{node_server.https}/api/v1/households", json=twin,
                             headers={"Authorization": f"Bearer {token}"},
                             verify=node_server.verify, timeout=10).status_code == 201
    context = browser.new_context(viewport={"width": 768, "height": 1024},
                                  ignore_https_errors=True)
    page = context.new_page()
    try:
        page.goto(f"{node_server.https}/staff/duplicates")
        assert page.url.split("?")[0].endswith("/staff/login")
        assert_accessible(page)
        page.fill("#username", "volunteer")
        page.fill("#password", "volunteer-pass-1")
        page.click("button[type=submit]")
        page.wait_for_url("**/staff/duplicates")
        rows = page.locator("tr.duplicate")
        assert rows.count() >= 1 and "重複 確認" in rows.first.inner_text()
        assert_accessible(page)
        page.goto(f"{node_server.https}/staff")
        assert_accessible(page)
    finally:
        context.close()


def test_the_postal_code_fills_the_address_and_a_second_member_shares_the_family_name(
        node_server, browser):
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="ja-JP",
                                  has_touch=True)
    page = context.new_page()
    try:
        page.goto(f"{node_server.http}/kiosk?lang=ja")
        page.fill("#m0-family_name", "大阪")
        page.fill("#m0-family_name_kana", "おおさか")
        page.click("#add-person")
        assert page.input_value("#m1-family_name") == "大阪"
        assert page.input_value("#m1-family_name_kana") == "おおさか"
        assert page.evaluate("document.activeElement.id") == "m1-given_name"
        page.fill("#m0-family_name", "大坂")  # the copy follows while nobody changed it
        assert page.input_value("#m1-family_name") == "大坂"
        assert page.locator("#m1-allergies").is_hidden()
        page.check("input[name='m1-needs'][value='allergy']")
        assert page.locator("#m1-allergies").is_visible()
        page.locator("#postal_code").press_sequentially("５４００００８")
        page.wait_for_function("want => document.getElementById('address').value === want",
                               arg="大阪府大阪市中央区大手前")
        assert_accessible(page)
    finally:
        context.close()
