"""The JSON API against a real node server (gunicorn, HTTPS and HTTP) on loopback."""

from __future__ import annotations

import copy
import re

import pytest
import requests

from shelter.domain.cards import parse_code

from .conftest import VALID_HOUSEHOLD, decode_png, render_pdf


@pytest.fixture(scope="module")
def kiosk_token(node_server):
    return node_server.token("kiosk")


@pytest.fixture(scope="module")
def volunteer_token(node_server):
    return node_server.token("volunteer")


def post(server, body, token=None, **kwargs):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kwargs.pop("headers", {}))
    return requests.post(f"{server.https}/api/v1/households", json=body, headers=headers,
                         verify=server.verify, timeout=10, **kwargs)


def test_register_a_household_and_fetch_its_cards(node_server, kiosk_token, volunteer_token,
                                                  tmp_path):
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["members"].append({"family_name": "山田", "given_name": "花子",
                            "family_name_kana": "ヤマダ", "given_name_kana": "ハナコ",
                            "birth_date": "1951-11-20", "sex": "female",
                            "needs": ["wheelchair", "allergy"], "allergies": "そば"})
    response = post(node_server, body, kiosk_token)
    assert response.status_code == 201, response.text
    result = response.json()
    assert len(result["members"]) == 2
    for member in result["members"]:
        assert set(member) >= {"person_id", "code", "short_code"}
        assert len(member["short_code"].replace("-", "")) == 8
    auth = {"Authorization": f"Bearer {volunteer_token}"}
    first = result["members"][0]
    png = requests.get(f"{node_server.https}/api/v1/persons/{first['person_id']}/card.png",
                       headers=auth, verify=node_server.verify, timeout=10)
    assert png.headers["Content-Type"] == "image/png"
    assert decode_png(png.content) == [first["code"]]
    pdf = requests.get(
        f"{node_server.https}/api/v1/households/{result['household_id']}/cards.pdf",
        headers=auth, verify=node_server.verify, timeout=10)
    assert pdf.headers["Content-Type"] == "application/pdf"
    codes = [c for page in render_pdf(pdf.content, tmp_path) for c in decode_png(page)]
    assert sorted(codes) == sorted(m["code"] for m in result["members"])
    assert parse_code(first["code"], {}).display_name == "山田 太郎"


def test_a_kiosk_token_cannot_read_cards(node_server, kiosk_token):
    result = post(node_server, VALID_HOUSEHOLD, kiosk_token).json()
    pid = result["members"][0]["person_id"]
    response = requests.get(f"{node_server.https}/api/v1/persons/{pid}/card.png",
                            headers={"Authorization": f"Bearer {kiosk_token}"},
                            verify=node_server.verify, timeout=10)
    assert response.status_code == 404


@pytest.mark.parametrize("case", ["no_token", "bad_token", "not_json", "malformed",
                                  "too_large", "invalid_vi", "not_object"])
def test_bad_requests_get_a_json_4xx_and_save_nothing(node_server, kiosk_token, case):
    before = _count(node_server)
    url = f"{node_server.https}/api/v1/households"
    auth = {"Authorization": f"Bearer {kiosk_token}"}
    if case == "no_token":
        r = post(node_server, VALID_HOUSEHOLD)
        expected = 401
    elif case == "bad_token":
        r = post(node_server, VALID_HOUSEHOLD, "sht_wrong")
        expected = 401
    elif case == "not_json":
        r = requests.post(url, data="a=b", headers={**auth, "Content-Type": "text/plain"},
                          verify=node_server.verify, timeout=10)
        expected = 415
    elif case == "malformed":
        r = requests.post(url, data='{"members": [', headers={
            **auth, "Content-Type": "application/json"}, verify=node_server.verify, timeout=10)
        expected = 400
    elif case == "too_large":
        # several sizes: the node must read what is sent before refusing it, or the client
        # gets a broken pipe instead of this answer (seen once in CI before the fix)
        for size in (300 * 1024, 1024 * 1024, 3 * 1024 * 1024):
            r = requests.post(url, data="x" * size, headers={
                **auth, "Content-Type": "application/json"}, verify=node_server.verify,
                timeout=20)
            assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
        expected = 413
    elif case == "not_object":
        r = post(node_server, [1, 2, 3], kiosk_token)
        expected = 422
    else:
        body = copy.deepcopy(VALID_HOUSEHOLD)
        body["language"] = "vi"
        body["members"][0]["birth_date"] = "2099-01-01"
        r = post(node_server, body, kiosk_token)
        expected = 422
        assert r.json()["error"]["fields"]["members.0.birth_date"] == \
            "Ngày sinh không thể ở tương lai."
    assert r.status_code == expected, r.text
    error = r.json()["error"]
    assert error["code"] and error["message"]
    assert _count(node_server) == before


def _count(server) -> int:
    import sqlite3
    conn = sqlite3.connect(server.data / "shelter.db")
    try:
        return conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        conn.close()


def test_openapi_lists_every_api_route(node_server):
    from shelter.app import create_app
    spec = requests.get(f"{node_server.http}/api/v1/openapi.json", timeout=10).json()
    assert spec["openapi"].startswith("3.1")
    app = create_app(node_server.data)
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = rule.rule.replace("<", "{").replace(">", "}")
            methods = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
            assert path in spec["paths"], path
            assert methods <= set(spec["paths"][path]), (path, methods)

    def property_names(node):  # every property name anywhere in the schemas
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "properties" and isinstance(value, dict):
                    yield from value
                yield from property_names(value)
        elif isinstance(node, list):
            for value in node:
                yield from property_names(value)

    names = set(property_names(spec["components"]))
    assert "family_name" in names and not [n for n in names if n.startswith("/")]


def test_plain_http_serves_registration_but_sends_staff_to_https(node_server):
    assert requests.get(f"{node_server.http}/register", timeout=10).ok
    # loopback may use HTTP (the demo); a phone on the LAN is redirected. Simulate the LAN
    # by asking for the page with a forwarded address: the node ignores such headers, so
    # check the rule directly on the app instead.
    from shelter.app import create_app
    app = create_app(node_server.data, test_config={"HTTPS_PORT": node_server.port})
    client = app.test_client()
    r = client.get("/staff", environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert r.status_code == 302 and r.headers["Location"].startswith("https://")
    lan = {"REMOTE_ADDR": "192.0.2.10"}
    assert client.get("/register", environ_base=lan).status_code == 200
    assert client.post("/api/v1/households", json={}, environ_base=lan).status_code == 302
    # a phone that has just registered sees its own cards without leaving plain HTTP
    page = client.get("/register", environ_base=lan).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    client.post("/register", environ_base=lan, data={
        "csrf": csrf, "count": "1", "action": "submit", "m0-family_name": "Kim",
        "m0-family_name_kana": "キム",
        "m0-birth_year": "1990", "m0-birth_month": "1", "m0-birth_day": "2",
        "address": "Osaka", "whereabouts": "home", "consent": "none"})
    cards_page = client.get("/register/cards?lang=en", environ_base=lan).get_data(as_text=True)
    image = re.search(r'src="(/api/v1/persons/[^"]+)"', cards_page).group(1)
    png = client.get(image, environ_base=lan)
    assert png.status_code == 200 and png.mimetype == "image/png"


def test_https_uses_the_nodes_own_ca(node_server):
    ca = node_server.data / "tls" / "ca.crt"
    assert requests.get(f"{node_server.https}/trust", verify=str(ca), timeout=10).ok
    cert = requests.get(f"{node_server.http}/trust/shelter-ca.crt", timeout=10)
    assert cert.content == ca.read_bytes()
