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

    garbled = client.post(f"{path}?lang=en", data={"csrf": csrf, "got-water": "lots"},
                          follow_redirects=True)
    assert garbled.status_code == 422
    assert "Enter a whole number of units." in garbled.get_data(as_text=True)
    (request,) = supply_requests.requests(node.db)
    assert request["status"] == "requested"  # nothing was recorded

    done = client.post(f"{path}?lang=ja", data={"csrf": csrf, "got-water": "5"})
    assert done.status_code == 303
    again = client.post(path, data={"csrf": csrf, "got-water": "5"}, follow_redirects=True)
    assert again.status_code == 409
    assert "この受領はすでに記録されています。" in again.get_data(as_text=True)
    (request,) = supply_requests.requests(node.db)
    assert request["received"] == [{"item_id": "water", "quantity": 5}]  # recorded once
