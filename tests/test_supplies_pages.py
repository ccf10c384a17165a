"""The supplies pages as a manager meets them: what is refused says why, on the page that was
sent, in the reader's language, and changes nothing."""

from __future__ import annotations

import re

from shelter.domain import accounts, supply_requests

MANAGER, PASSWORD = "boss", "boss-pass-long-1"


def signed_in(app):
    """A manager's client, signed in through the login page, and its CSRF token."""
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = client.post("/staff/login", data={"username": MANAGER, "password": PASSWORD,
                                               "csrf": csrf})
    assert answer.status_code == 303
    page = client.get("/supplies/requests").get_data(as_text=True)  # a new session's token
    return client, re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def test_a_refused_delivery_says_why_in_the_readers_language(app):
    node = app.extensions["shelter"]
    accounts.add_user(node.store, MANAGER, PASSWORD, "manager")
    request_id = supply_requests.request_supplies(node.store, node.shelter_id, {
        "lines": [{"item_id": "water", "quantity": 5}]}, MANAGER)
    client, csrf = signed_in(app)
    path = f"/supplies/requests/{request_id}/received"
    # Not dispatched as far as this node knows: the truck came first (test_supply_receipts).
    form = {"csrf": csrf, "unannounced": "1"}

    garbled = client.post(f"{path}?lang=en", data={**form, "got-water": "lots"},
                          follow_redirects=True)
    assert garbled.status_code == 422
    assert "Enter a whole number of units." in garbled.get_data(as_text=True)
    (request,) = supply_requests.requests(node.db)
    assert request["status"] == "requested"  # nothing was recorded

    done = client.post(f"{path}?lang=ja", data={**form, "got-water": "5"})
    assert done.status_code == 303
    again = client.post(path, data={**form, "got-water": "5"}, follow_redirects=True)
    assert again.status_code == 409
    assert "この受領はすでに記録されています。" in again.get_data(as_text=True)
    (request,) = supply_requests.requests(node.db)
    assert request["received"] == [{"item_id": "water", "quantity": 5}]  # recorded once


def test_give_anyway_confirms_only_the_hand_out_it_was_shown_for(app):
    """The ration warning's form carries the confirmation; a volunteer who then scans another
    household's card into it is warned for that household too, not waved through."""
    import copy
    from datetime import date

    from shelter.domain import households, stock

    from .conftest import VALID_HOUSEHOLD

    node = app.extensions["shelter"]
    accounts.add_user(node.store, MANAGER, PASSWORD, "manager")
    baby = {"family_name": "山田", "given_name": "陽向", "family_name_kana": "やまだ",
            "birth_date": f"{date.today().year - 1}-05-05", "needs": ["infant"]}
    codes = []
    for _ in range(2):
        data = copy.deepcopy(VALID_HOUSEHOLD)
        data["members"] = [dict(baby)]
        codes.append(households.register_household(node.store, node.identity, data)
                     ["members"][0]["code"])
    stock.move(node.store, node.shelter_id, {"item_id": "infant_diapers", "kind": "received",
                                             "quantity": 100}, MANAGER, may_override=True)
    for code in codes:  # both households had their diapers this morning
        stock.move(node.store, node.shelter_id, {"item_id": "infant_diapers", "quantity": 8,
                                                 "kind": "distributed", "code": code},
                   MANAGER, may_override=True)
    client, csrf = signed_in(app)
    form = {"csrf": csrf, "kind": "distributed", "item_id": "infant_diapers", "quantity": "8"}
    warned = client.post("/supplies/move", data={**form, "code": codes[0]})
    page = warned.get_data(as_text=True)
    confirm = re.search(r'name="confirm_repeat" value="([^"]*)"', page).group(1)
    # The next household's card scanned into the warning's form: warned again, nothing given.
    other = client.post("/supplies/move", data={**form, "code": codes[1],
                                                "confirm_repeat": confirm})
    assert other.status_code == warned.status_code and 'id="ration-warning"' in \
        other.get_data(as_text=True)
    assert _on_hand(node, "infant_diapers") == 84
    given = client.post("/supplies/move", data={**form, "code": codes[0],
                                                "confirm_repeat": confirm})
    assert given.status_code == 303 and _on_hand(node, "infant_diapers") == 76


def _on_hand(node, item_id):
    from shelter.domain import stock
    from shelter.domain.settings import get_settings
    return next(i["on_hand"] for i in stock.stock(node.db, node.shelter_id,
                                                  get_settings(node.db))["items"]
                if i["item_id"] == item_id)
