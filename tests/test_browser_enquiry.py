"""HQ's safety enquiry at 1280×800 and the public page at 390×844 and 768×1024, in a real
Chromium over a real HQ: the answer is large, first on the screen and says where someone
went; the form is empty for the next caller; the public page switches among five languages
and dates each report; axe finds nothing serious on any of them."""

from __future__ import annotations

import re

import pytest

from shelter.core.node import NodeContext
from shelter.domain import accounts, households, presence
from shelter.hq.shelters import import_file

from .conftest import sign_in, start_hq, wait_until
from .test_browser_desk import assert_accessible
from .test_hq import GSI, A, B, household, push


@pytest.fixture(scope="module")
def hq(tmp_path_factory):
    """An HQ holding A's and B's events: 山本 (consent: relatives) checked in at B before
    A's desk checked them out."""
    root = tmp_path_factory.mktemp("enquiry-browser")
    store = NodeContext(root / "hq", role="hq")
    import_file(store.store, GSI)
    accounts.add_user(store.store, "op", "operator-pass-1", "operator")
    a, b = NodeContext(root / "a", shelter_id=A), NodeContext(root / "b", shelter_id=B)
    person = households.register_household(a.store, a.identity, household(
        "relatives", "山本", "やまもと", "1950-01-01"))["members"][0]
    presence.scan(a.store, A, a.card_keys(), person["code"], "check_in")
    presence.scan(b.store, B, {**b.card_keys(), **a.card_keys()}, person["code"], "check_in")
    presence.scan(a.store, A, a.card_keys(), person["code"], "check_out", "other_shelter",
                  "金塚小学校")
    push(a, store)
    push(b, store)
    for ctx in (store, a, b):
        ctx.db.conn.close()
    server = start_hq(root / "hq")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800},
                                  ignore_https_errors=True, locale="ja-JP")
    yield context.new_page()
    context.close()


def test_an_operator_reads_the_answer_out_and_takes_the_next_call(hq, page):
    sign_in(page, hq.url, "op", "operator-pass-1", "/hq/enquiry")
    page.fill("input[name=family_name]", "山本")
    page.fill("input[name=given_name]", "太郎")
    page.fill("input[name=birth_date]", "1950-01-01")
    page.check("input[value=relative]")
    page.fill("input[name=enquirer]", "山本 花子")
    page.fill("input[name=enquirer_contact]", "090-0000-0000")
    page.click("form.enquiry-form button[type=submit]")
    page.wait_for_selector("#answer")
    answer = page.inner_text("#answer")
    assert "金塚小学校" in answer and "阿倍野スポーツセンター" in answer and "日本時間" in answer
    # Large and first: the status is read from across the desk, without scrolling.
    status = page.locator(".answer-status").first
    assert float(status.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")) >= 24
    box = page.locator("#answer").bounding_box()
    assert box and box["y"] + box["height"] <= 800, box
    assert "このご親族には" in page.inner_text(".may-say")
    # The next caller finds an empty form (the browser is told not to fill it in either).
    for field in ("family_name", "given_name", "birth_date", "enquirer", "enquirer_contact"):
        assert page.input_value(f"input[name={field}]") == "", field
    assert page.get_attribute("form.enquiry-form", "autocomplete") == "off"
    assert not page.is_checked("input[value=relative]")
    assert_accessible(page)
    page.click("a.next-caller")
    page.wait_for_url("**/hq/enquiry")
    assert page.locator("#answer").count() == 0 and "山本" not in page.inner_text("main")


@pytest.mark.parametrize("size", [(390, 844), (768, 1024)])
def test_the_public_page_in_five_languages_on_a_phone_and_a_tablet(hq, page, size):
    page.set_viewport_size({"width": size[0], "height": size[1]})

    def lists_a() -> bool:  # the public list is cached for a few seconds
        page.goto(f"{hq.url}/public?lang=zh")
        return page.locator(f"li[data-shelter='{A}']").count() == 1

    wait_until(lists_a, timeout=30, interval=1, what="shelter A on the public page")
    assert page.get_attribute("html", "lang") == "zh-Hans"
    assert "开放中的避难所" in page.inner_text("h1")
    item = page.inner_text(f"li[data-shelter='{A}']")
    assert "最后更新" in item and "（日本时间）" in item
    assert re.search(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", item), item  # date and time
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_accessible(page)
    links = page.locator("nav.langs a")
    assert links.count() == 5
    page.click("nav.langs a[hreflang=vi]")
    page.wait_for_url("**lang=vi")
    assert page.get_attribute("html", "lang") == "vi"
    assert "nơi sơ tán" in page.inner_text("h1").lower()
    assert "Cập nhật lần cuối" in page.inner_text(f"li[data-shelter='{A}']")
    assert "山本" not in page.content()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert_accessible(page)
