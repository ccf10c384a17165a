"""Supplies in a real Chromium: a manager receives formula, hands some to a family by
scanning a card, sees the days of supply drop, and is warned at a second collection."""

from __future__ import annotations

import copy
from datetime import date

import pytest

from .conftest import VALID_HOUSEHOLD, api, run_cli, sign_in, start_node
from .test_browser_kiosk import assert_accessible


@pytest.fixture(scope="module")
def supply_node(tmp_path_factory):
    data = tmp_path_factory.mktemp("supply-node")
    run_cli("user", "add", "--data", str(data), "--username", "boss", "--role", "manager",
            "--password", "boss-pass-1")
    server = start_node(data, "--shelter-id", "E2710000004444", "--shelter-name", "物資テスト")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def family(supply_node):
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["members"] = [
        {"family_name": "佐藤", "given_name": "美咲", "family_name_kana": "さとう",
         "birth_date": "1990-06-15", "needs": ["pregnant_nursing"]},
        {"family_name": "佐藤", "given_name": "陽向", "family_name_kana": "さとう",
         "birth_date": f"{date.today().year - 1}-03-01", "needs": ["infant"]}]
    members = api(supply_node, "POST", "/api/v1/households", supply_node.token("kiosk"),
                  json=body).json()["members"]
    volunteer = supply_node.token("volunteer")
    for m in members:
        api(supply_node, "POST", "/api/v1/scans", volunteer,
            json={"code": m["code"], "action": "check_in"})
    return members


def days_left(page, item_id):
    return page.locator(f"tr[data-item={item_id}] [data-days]").inner_text()


def test_receive_hand_out_by_card_and_be_warned_at_a_second_collection(browser, supply_node,
                                                                       family):
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="ja-JP",
                                  ignore_https_errors=True)
    page = context.new_page()
    sign_in(page, supply_node.https, "boss", "boss-pass-1", "/supplies")
    assert_accessible(page)

    # A shipment from HQ: 1,500 g of formula, one infant here: 10 days.
    page.select_option("#mv-kind", "received")
    page.select_option("#mv-item", "infant_formula")
    page.fill("#mv-quantity", "1500")
    page.fill("#mv-lot", "FM-0425")
    page.fill("#mv-expires", "2027-04-25")
    page.select_option("#mv-source", "hq_shipment")
    page.click("#movement button[type=submit]")
    page.wait_for_url("**/supplies?done=infant_formula")
    assert days_left(page, "infant_formula") == "10.0"
    assert "FM-0425" in page.locator("tr[data-item=infant_formula]").inner_text()

    # Hand 300 g to the family: the scanner types the mother's card and Enter while the
    # focus is nowhere in particular; the card goes into the hand-out form, not to the desk.
    page.select_option("#ho-item", "infant_formula")
    page.fill("#ho-quantity", "300")
    page.evaluate("document.activeElement.blur()")
    page.keyboard.type(family[0]["code"])
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert page.locator("#supply-done").is_visible()
    assert days_left(page, "infant_formula") == "8.0"

    # The same family again (the baby's card this time) inside the window: a warning.
    page.select_option("#ho-item", "infant_formula")
    page.fill("#ho-quantity", "300")
    page.fill("#ho-code", family[1]["short_code"])
    with page.expect_navigation():
        page.press("#ho-code", "Enter")
    warning = page.locator("#ration-warning")
    warning.wait_for()
    assert "300 g" in warning.inner_text()
    # Said once, as a warning (it was also a red error at the top), and where it is seen:
    # by its "give anyway" button, scrolled to and focused at 768×1024.
    assert page.locator("#supply-error").count() == 0
    assert warning.evaluate("e => document.activeElement === e && "
                            "e.getBoundingClientRect().bottom <= innerHeight")
    assert days_left(page, "infant_formula") == "8.0"  # nothing handed out yet
    assert_accessible(page)
    with page.expect_navigation():
        page.click("#hand-out button[type=submit]")  # "それでも渡す"
    assert page.locator("#supply-done").is_visible()
    assert days_left(page, "infant_formula") == "6.0"
    # No one was checked in or out by those scans.
    headcount = api(supply_node, "GET", "/api/v1/headcount", supply_node.token("volunteer"))
    assert (headcount.json()["present"], headcount.json()["out"]) == (2, 0)
    context.close()
