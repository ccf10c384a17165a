"""The desk through a real node server: scans and headcount over the API, roles, sign-in
limits, the audit log, and the live websocket."""

from __future__ import annotations

import copy
import json
import re
import sqlite3
import ssl

import pytest
import requests
from simple_websocket import Client

from sync.client import close_socket

from .conftest import VALID_HOUSEHOLD, api, run_cli, wait_until


@pytest.fixture(scope="module")
def tokens(node_server):
    return {role: node_server.token(role) for role in ("kiosk", "volunteer", "manager")}


call = api


def register(server, token, **member):
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["members"][0].update(member)
    response = call(server, "POST", "/api/v1/households", token, json=body)
    assert response.status_code == 201, response.text
    return response.json()["members"][0]


def audit_rows(server, action):
    conn = sqlite3.connect(server.data / "shelter.db")
    try:
        return conn.execute("SELECT actor, subject, detail FROM audit_log WHERE action = ? "
                            "ORDER BY audit_id", [action]).fetchall()
    finally:
        conn.close()


def sign_in(server, username, password):
    session = requests.Session()
    session.verify = server.verify
    session.trust_env = False  # else a REQUESTS_CA_BUNDLE in the environment wins
    page = session.get(f"{server.https}/staff/login", timeout=10).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    response = session.post(f"{server.https}/staff/login", timeout=10, data={
        "csrf": csrf, "username": username, "password": password}, allow_redirects=False)
    return session, response


def test_scan_then_headcount_through_the_api(node_server, tokens):
    before = call(node_server, "GET", "/api/v1/headcount", tokens["volunteer"]).json()
    member = register(node_server, tokens["kiosk"], given_name="一郎", needs=["wheelchair"])
    response = call(node_server, "POST", "/api/v1/scans", tokens["volunteer"],
                    json={"code": member["code"], "action": "check_in"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["outcome"], body["action"], body["presence"]["status"], body["flags"]) == \
        ("done", "check_in", "present", ["wheelchair"])
    after = call(node_server, "GET", "/api/v1/headcount", tokens["volunteer"]).json()
    assert after["present"] == before["present"] + 1
    assert after["by_need"]["wheelchair"] == before["by_need"]["wheelchair"] + 1
    assert set(after) >= {"present", "out", "registered", "at_home", "in_car", "capacity",
                          "by_need", "by_age", "crowding"}
    # The short code, as typed, checks the same person out.
    response = call(node_server, "POST", "/api/v1/scans", tokens["volunteer"], json={
        "code": member["short_code"], "action": "check_out", "destination": "relatives"})
    assert response.json()["presence"]["status"] == "left"
    # Audited under the token that did it.
    scans = [r for r in audit_rows(node_server, "scan") if r[1] == member["person_id"]]
    assert [r[2] for r in scans] == ["check_in:done", "check_out:done"]
    assert all(r[0].startswith("token:") for r in scans)


@pytest.mark.parametrize("body, status, code", [
    ({"code": "SHC1.GARBLED", "action": "check_in"}, 422, "garbled"),
    ({"code": "ZZZZ-ZZZZ", "action": "check_in"}, 422, "garbled"),
    ({"code": "0000-0000", "action": "check_in"}, 404, "unknown"),
    ({"code": "{code}", "action": "leap"}, 422, "invalid_action"),
    ({"code": "{code}", "action": "check_out"}, 422, "invalid_destination"),
    ({"code": "{code}", "action": "go_out"}, 409, "not_here"),
    ({"action": "check_in"}, 422, "garbled"),
    ([1, 2], 400, "malformed_json"),
])
def test_bad_scans_get_a_json_reason_and_change_nothing(node_server, tokens, body, status,
                                                        code):
    member = register(node_server, tokens["kiosk"], given_name="二郎")
    if isinstance(body, dict) and body.get("code") == "{code}":
        body = {**body, "code": member["code"]}
    if body == {"code": "0000-0000", "action": "check_in"}:
        from shelter.core import shortcode
        body = {**body, "code": "0000000" + shortcode.check_char("0000000")}
    before = call(node_server, "GET", "/api/v1/headcount", tokens["volunteer"]).json()
    response = call(node_server, "POST", "/api/v1/scans", tokens["volunteer"], json=body)
    assert (response.status_code, response.json()["error"]["code"]) == (status, code)
    assert response.json()["error"]["message"]
    after = call(node_server, "GET", "/api/v1/headcount", tokens["volunteer"]).json()
    assert {k: v for k, v in after.items() if k != "as_of"} == \
        {k: v for k, v in before.items() if k != "as_of"}


def test_error_messages_follow_the_language(node_server, tokens):
    response = call(node_server, "POST", "/api/v1/scans", tokens["volunteer"],
                    json={"code": "nonsense!", "action": "check_in"},
                    headers={"Accept-Language": "ja"})
    assert "短いコード" in response.json()["error"]["message"]


def test_not_json_is_refused(node_server, tokens):
    response = call(node_server, "POST", "/api/v1/scans", tokens["volunteer"], data="code=x")
    assert response.status_code == 415


def test_roles(node_server, tokens):
    member = register(node_server, tokens["kiosk"], given_name="三郎")
    scan = {"code": member["code"], "action": "check_in"}
    assert call(node_server, "POST", "/api/v1/scans", json=scan).status_code == 401
    assert call(node_server, "POST", "/api/v1/scans", "sht_wrong", json=scan).status_code == 401
    assert call(node_server, "POST", "/api/v1/scans", tokens["kiosk"],
                json=scan).status_code == 403
    assert call(node_server, "GET", "/api/v1/headcount", tokens["kiosk"]).status_code == 403
    # Manager pages: users, audit log, settings.
    for path in ("/staff/users", "/staff/audit", "/staff/settings"):
        for role, expected in (("kiosk", 403), ("volunteer", 403), ("manager", 200)):
            response = call(node_server, "GET", path, tokens[role], allow_redirects=False)
            assert response.status_code == expected, (path, role)
    for path in ("/desk", "/desk/find?q=x", "/desk/headcount"):
        assert call(node_server, "GET", path, tokens["kiosk"]).status_code == 403
        assert call(node_server, "GET", path, tokens["volunteer"]).status_code == 200


def test_looking_someone_up_is_audited(node_server, tokens):
    member = register(node_server, tokens["kiosk"], family_name="検索", family_name_kana="けんさく")
    page = call(node_server, "GET", "/desk/find?q=ｹﾝｻｸ", tokens["volunteer"]).text
    assert "検索 太郎" in page
    assert any(r[2].startswith("q=ｹﾝｻｸ") for r in audit_rows(node_server, "find_person"))
    household = re.search(r'/staff/households/([0-9A-Z]+)', page).group(1)
    shown = call(node_server, "GET", f"/staff/households/{household}", tokens["volunteer"],
                 headers={"Accept-Language": "ja"}).text
    assert any(r[1] == household for r in audit_rows(node_server, "view_household"))
    # Needs in words, in the staff member's language, never the stored code.
    assert re.search(r"<td[^>]*>1948-04-02</td><td>高齢者<", shown), "the needs cell"
    # Managers read the log; nobody changes it.
    log = call(node_server, "GET", "/staff/audit", tokens["manager"],
               headers={"Accept-Language": "en"}).text
    # In words, by name (tests/test_words_times.py: every page), never the codes and ids.
    assert "Looked at a household" in log and "検索 太郎&#39;s household (1 person)" in log
    assert "view_household" not in log and household not in log
    assert member["person_id"] not in log
    conn = sqlite3.connect(node_server.data / "shelter.db")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_log SET actor = 'nobody'")
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
    finally:
        conn.close()


def test_sign_in_is_rate_limited_per_user(node_server):
    run_cli("user", "add", "--data", str(node_server.data), "--username", "target",
            "--role", "volunteer", "--password", "target-pass-1")
    for _ in range(5):
        assert sign_in(node_server, "target", "guess-guess")[1].status_code == 401
    # Even the right password waits now: the guesser cannot tell which try was right.
    assert sign_in(node_server, "target", "target-pass-1")[1].status_code == 429
    assert sign_in(node_server, "volunteer", "volunteer-pass-1")[1].status_code == 303


def test_a_session_page_must_send_its_csrf_token_to_the_api(node_server, tokens):
    member = register(node_server, tokens["kiosk"], given_name="四郎")
    session, response = sign_in(node_server, "volunteer", "volunteer-pass-1")
    assert response.status_code == 303
    desk = session.get(f"{node_server.https}/desk", timeout=10).text
    csrf = re.search(r'data-csrf="([^"]+)"', desk).group(1)
    scan = {"code": member["code"], "action": "check_in"}
    refused = session.post(f"{node_server.https}/api/v1/scans", json=scan, timeout=10)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "csrf")
    accepted = session.post(f"{node_server.https}/api/v1/scans", json=scan, timeout=10,
                            headers={"X-CSRF-Token": csrf})
    assert accepted.json()["outcome"] == "done"


def test_disabling_an_account_ends_its_sessions(node_server):
    run_cli("user", "add", "--data", str(node_server.data), "--username", "leaver",
            "--role", "volunteer", "--password", "leaver-pass-1")
    leaver, _ = sign_in(node_server, "leaver", "leaver-pass-1")
    assert leaver.get(f"{node_server.https}/desk", timeout=10, allow_redirects=False
                      ).status_code == 200
    manager, _ = sign_in(node_server, "manager", "manager-pass-1")
    page = manager.get(f"{node_server.https}/staff/users", timeout=10).text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    manager.post(f"{node_server.https}/staff/users", data={"csrf": csrf, "disable": "leaver"},
                 timeout=10)
    assert leaver.get(f"{node_server.https}/desk", timeout=10, allow_redirects=False
                      ).status_code == 302
    assert sign_in(node_server, "leaver", "leaver-pass-1")[1].status_code == 401


def test_open_screens_get_the_new_headcount_over_the_websocket(node_server, tokens):
    session, _ = sign_in(node_server, "volunteer", "volunteer-pass-1")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    context = ssl.create_default_context(cafile=node_server.verify)
    url = f"wss://127.0.0.1:{node_server.port}/desk/live"
    with pytest.raises(Exception):  # noqa: B017 - refused before the upgrade, no session
        Client.connect(url, ssl_context=context)
    ws = Client.connect(url, headers={"Cookie": cookie}, ssl_context=context)
    try:
        first = json.loads(ws.receive(timeout=10))
        member = register(node_server, tokens["kiosk"], given_name="五郎")
        # The scan goes through the plain-HTTP listener (another process) on purpose.
        response = requests.post(f"{node_server.http}/api/v1/scans", timeout=10, json={
            "code": member["code"], "action": "check_in"},
            headers={"Authorization": f"Bearer {tokens['volunteer']}"})
        assert response.status_code == 200

        def pushed():
            state = json.loads(ws.receive(timeout=5))
            return state if state["headcount"]["present"] == \
                first["headcount"]["present"] + 1 else None

        state = wait_until(pushed, timeout=10, what="headcount push")
        assert state["recent"][0]["display_name"] == "山田 五郎"
    finally:
        close_socket(ws)


def test_a_websocket_from_another_site_is_refused(node_server):
    session, _ = sign_in(node_server, "volunteer", "volunteer-pass-1")
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    context = ssl.create_default_context(cafile=node_server.verify)
    with pytest.raises(Exception):  # noqa: B017 - the handshake is answered with 403
        Client.connect(f"wss://127.0.0.1:{node_server.port}/desk/live", ssl_context=context,
                       headers={"Cookie": cookie, "Origin": "https://evil.example"})
