"""Supplies through a real node server: the stock API, movements, requests, roles, and the
daily report PDF read back as text."""

from __future__ import annotations

import copy

import pytest
import requests

from .conftest import VALID_HOUSEHOLD, api, pdf_text


@pytest.fixture(scope="module")
def tokens(node_server):
    return {role: node_server.token(role) for role in ("kiosk", "volunteer", "manager")}


call = api


def stock_of(server, token, item_id):
    items = call(server, "GET", "/api/v1/stock", token).json()["items"]
    return next(i for i in items if i["item_id"] == item_id)


def test_receive_hand_out_and_see_days_of_supply_drop(node_server, tokens):
    body = copy.deepcopy(VALID_HOUSEHOLD)
    member = call(node_server, "POST", "/api/v1/households", tokens["kiosk"],
                  json=body).json()["members"][0]
    call(node_server, "POST", "/api/v1/scans", tokens["volunteer"],
         json={"code": member["code"], "action": "check_in"})
    received = call(node_server, "POST", "/api/v1/stock-movements", tokens["manager"], json={
        "item_id": "food", "kind": "received", "quantity": 60, "source": "hq_shipment",
        "lot": "F-1", "expires_on": "2027-01-31"})
    assert received.status_code == 201, received.text
    before = stock_of(node_server, tokens["volunteer"], "food")
    assert set(before) >= {"item_id", "name", "unit", "on_hand", "days_of_supply"}
    handed = call(node_server, "POST", "/api/v1/stock-movements", tokens["volunteer"], json={
        "item_id": "food", "kind": "distributed", "quantity": 3, "code": member["short_code"]})
    assert handed.status_code == 201, handed.text
    after = stock_of(node_server, tokens["volunteer"], "food")
    assert after["on_hand"] == before["on_hand"] - 3
    assert after["days_of_supply"] < before["days_of_supply"]


def test_roles_for_stock(node_server, tokens):
    receive = {"item_id": "water", "kind": "received", "quantity": 5}
    assert call(node_server, "POST", "/api/v1/stock-movements", tokens["volunteer"],
                json=receive).status_code == 403
    assert call(node_server, "POST", "/api/v1/stock-movements", tokens["kiosk"],
                json={**receive, "kind": "distributed"}).status_code == 403
    assert call(node_server, "GET", "/api/v1/stock", tokens["kiosk"]).status_code == 403
    assert call(node_server, "GET", "/api/v1/stock").status_code == 401
    ask = {"lines": [{"item_id": "water", "quantity": 5}]}
    assert call(node_server, "POST", "/api/v1/supply-requests", tokens["volunteer"],
                json=ask).status_code == 403
    # A volunteer cannot push a hand-out past the stock by claiming an override.
    call(node_server, "POST", "/api/v1/stock-movements", tokens["manager"], json=receive)
    over = call(node_server, "POST", "/api/v1/stock-movements", tokens["volunteer"], json={
        "item_id": "water", "kind": "distributed", "quantity": 10**5, "override": True,
        "reason": "x"})
    assert over.status_code == 403 and over.json()["error"]["code"] == "override_not_allowed"


@pytest.mark.parametrize("body, status, code", [
    ({"item_id": "water", "kind": "received", "quantity": -1}, 422, "invalid_quantity"),
    ({"item_id": "water", "kind": "received", "quantity": 999999999}, 422,
     "invalid_quantity"),
    ({"item_id": "gold", "kind": "received", "quantity": 1}, 422, "unknown_item"),
    ({"item_id": "gold", "kind": "counted", "quantity": 1}, 422, "unknown_item"),
    ({"item_id": "water", "kind": "distributed", "quantity": 10**6}, 409,
     "insufficient_stock"),
])
def test_bad_movements_get_a_reason(node_server, tokens, body, status, code):
    before = stock_of(node_server, tokens["manager"], "water")["on_hand"]
    response = call(node_server, "POST", "/api/v1/stock-movements", tokens["manager"],
                    json=body, headers={"Accept-Language": "en"})
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.json()["error"]["message"]
    assert stock_of(node_server, tokens["manager"], "water")["on_hand"] == before


def test_a_supply_request_and_the_daily_report(node_server, tokens, tmp_path):
    created = call(node_server, "POST", "/api/v1/supply-requests", tokens["manager"], json={
        "lines": [{"item_id": "infant_formula", "quantity": 2400},
                  {"item_id": "water", "quantity": 200}],
        "urgency": "urgent", "note": "乳児が3人います"})
    assert created.status_code == 201, created.text
    assert created.json()["status"] == "requested"
    listed = call(node_server, "GET", "/api/v1/supply-requests", tokens["volunteer"]).json()
    assert created.json()["request_id"] in [r["request_id"] for r in listed["requests"]]
    session = requests.Session()
    session.trust_env = False
    session.verify = node_server.verify
    session.headers["Authorization"] = f"Bearer {tokens['manager']}"
    ja = session.get(f"{node_server.https}/supplies/report.pdf", timeout=20)
    assert ja.headers["Content-Type"] == "application/pdf"
    text = pdf_text(ja.content, tmp_path)
    for words in ("避難所日報", "大阪市立テスト小学校", "在所中", "在庫と残り日数", "食料",
                  "未完了の本部への要請", "乳児用粉ミルク 2400", "至急"):
        assert words in text, words
    en = pdf_text(session.get(f"{node_server.https}/supplies/report.pdf?language=en",
                              timeout=20).content, tmp_path)
    for words in ("Daily shelter report", "Stock and days left", "Drinking water",
                  "Open requests to HQ"):
        assert words in en, words
    assert session.get(f"{node_server.https}/supplies/report.pdf?language=xx",
                       timeout=10).status_code == 400
