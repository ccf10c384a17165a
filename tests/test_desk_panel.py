"""What desk.js is answered: a scan goes to the API (POST /api/v1/scans), and the node draws
that answer (POST /desk/result) with the template of the plain form's page; the reads behind
the desk's side lists, and the pages' Japan time (the browser's twin, static/live.js, is
checked in test_browser_desk.py)."""

from __future__ import annotations

import json
import re

import pytest

from shelter.domain import roster
from shelter.domain.settings import hq_messages
from shelter.render.times import japan_time

from .test_presence import presence_events, register, scan, signed_in

API = {"X-CSRF-Token": "t0k3n"}  # what desk.js sends with its session


def section(html: str, name: str = "") -> str:
    """The result panel's markup, whitespace, the household's link and ``name`` aside."""
    found = re.search(r'<section id="result".*?</section>', html, re.S)
    assert found, html
    panel = re.sub(r"/staff/households/\w+", "/staff/households/H", found.group(0))
    return re.sub(r"\s+", " ", panel.replace(name, "NAME") if name else panel)


def api_scan(client, code: str, action: str = "auto"):
    return client.post("/api/v1/scans", headers=API, json={
        "code": code, "action": action, "destination": "", "destination_detail": ""})


def drawn(client, answer) -> tuple[int, str]:
    """POST /desk/result as desk.js does: the API's answer, as it came, in ``answer``."""
    text = answer if isinstance(answer, str) else json.dumps(answer, ensure_ascii=False)
    response = client.post("/desk/result", data={"csrf": "t0k3n", "answer": text})
    return response.status_code, response.get_data(as_text=True)


def test_the_panel_drawn_from_the_api_answer_is_the_plain_form_page_s(app):
    node = app.extensions["shelter"]
    member, other = register(node), register(node, given_name="次郎")
    client = signed_in(app)
    page = client.get("/desk").get_data(as_text=True)
    assert 'data-scan-api="/api/v1/scans"' in page and 'data-result="/desk/result"' in page
    answer = api_scan(client, member["short_code"], "check_in")
    assert answer.status_code == 200 and answer.get_json()["outcome"] == "done"
    before = presence_events(node)
    status, panel = drawn(client, answer.get_json())
    assert status == 200
    assert "kind-check_in" in panel and "山田 太郎" in panel and "入所しました" in panel
    assert presence_events(node) == before  # drawing changes nothing
    plain = client.post("/desk/scan", data={"csrf": "t0k3n", "code": other["short_code"],
                                            "action": "check_in"})
    assert plain.status_code == 200
    # The same template draws both: only the person differs.
    assert section(plain.get_data(as_text=True), "山田 次郎") == section(panel, "山田 太郎")
    # A repeated scan: its own colour.
    again = api_scan(client, member["short_code"], "auto").get_json()
    assert again["outcome"] == "repeated"
    assert "kind-same" in drawn(client, again)[1]


def test_a_forged_or_garbled_card_gets_the_red_panel_and_changes_nothing(app):
    node = app.extensions["shelter"]
    member = register(node)
    client = signed_in(app)
    before = presence_events(node)
    forged = member["code"][:-4] + ("AAAA" if not member["code"].endswith("AAAA") else "BBBB")
    for code, words in ((forged, "正規のものではありません"), ("SHC1.X", "読み取れません"),
                        ("7KQ3M9TY", "")):
        answer = api_scan(client, code)
        assert answer.status_code in (404, 422) and "error" in answer.get_json()
        status, panel = drawn(client, answer.get_json())
        assert status == 200 and "kind-error" in panel and words in panel
        assert answer.get_json()["error"]["message"] in panel
        plain = client.post("/desk/scan", data={"csrf": "t0k3n", "code": code,
                                                "action": "auto"})
        assert section(plain.get_data(as_text=True)) == section(panel)
    assert presence_events(node) == before


def test_the_panel_reads_nothing_stored_and_escapes_what_it_is_sent(app):
    """It draws the answer it is given, for a person this node has never heard of too (so
    it can show no one the desk was not just told about), and as text."""
    node = app.extensions["shelter"]
    client = signed_in(app)
    answer = api_scan(client, register(node)["short_code"], "check_in").get_json()
    answer.update(person_id="01NOBODY", display_name="<b>誰か</b>", household_id=None,
                  household=[])
    status, panel = drawn(client, answer)
    assert status == 200 and "&lt;b&gt;誰か&lt;/b&gt;" in panel and "<b>" not in panel
    assert "/staff/households/" not in panel


def test_signed_out_desk_js_is_told_to_sign_in(app):
    client = app.test_client()
    with client.session_transaction() as session:
        session["csrf"] = "t0k3n"
    answer = client.post("/desk/result", data={"csrf": "t0k3n", "answer": "{}"})
    assert answer.status_code == 401
    assert answer.get_json()["error"]["code"] == "unauthorized"
    assert api_scan(client, "7KQ3M9TX").status_code == 401
    assert client.post("/desk/scan", data={"csrf": "t0k3n", "code": "7KQ3M9TX"}
                       ).status_code == 302  # the plain form goes to the sign-in page


def not_answers(answer: dict) -> list:
    """Bodies that are not what POST /api/v1/scans answers, made from one that is."""
    person = dict(answer)
    del person["card_verified"]
    wrong = [json.dumps(answer)[:-1], "[]", "null", "1", "", "[" * 20_000,
             person, {**answer, "extra": 1}, {**answer, "age": "52"},
             {**answer, "provisional": 0}, {**answer, "outcome": "maybe"},
             {**answer, "action": "auto"}, {**answer, "flags": ["pet"]},
             {**answer, "household_id": "../../x"},
             {**answer, "presence": {**answer["presence"], "status": "gone"}},
             {**answer, "presence": {**answer["presence"], "destination": "moon"}},
             {**answer, "presence": {**answer["presence"], "x": 1}},
             {**answer, "household": [{"person_id": "P", "display_name": "x"}]},
             {"error": {"code": "garbled"}}, {"error": {"code": "x", "message": ""}},
             {"error": {"code": "x", "message": "m", "more": 1}},
             {"error": {"code": "x", "message": "m"}, "person_id": "P"},
             {"error": "garbled"}, {"error": {"code": "x", "message": "m" * 1001}}]
    return wrong


def test_a_body_that_is_not_a_scan_answer_is_refused_never_a_500(app):
    node = app.extensions["shelter"]
    client = signed_in(app)
    answer = api_scan(client, register(node)["short_code"], "check_in").get_json()
    for body in not_answers(answer):
        response = client.post("/desk/result", data={
            "csrf": "t0k3n", "answer": body if isinstance(body, str) else json.dumps(body)})
        assert response.status_code == 400, str(body)[:200]
        error = response.get_json()["error"]
        assert error["code"] == "not_a_scan" and error["message"] == \
            "これはスキャンの応答ではありません。"
    big = {**answer, "display_name": "x" * 70_000}
    response = client.post("/desk/result", data={"csrf": "t0k3n", "answer": json.dumps(big)})
    assert response.status_code == 413 and response.get_json()["error"]["code"] == "too_large"
    assert client.post("/desk/result", data={"answer": json.dumps(answer)}
                       ).status_code == 400  # no CSRF token: refused before it is read


@pytest.mark.parametrize("accept", ["application/json", "text/html"])
def test_the_plain_form_answers_a_page_whatever_it_is_asked(app, accept):
    node = app.extensions["shelter"]
    client = signed_in(app)
    answer = client.post("/desk/scan", headers={"Accept": accept}, data={
        "csrf": "t0k3n", "code": register(node)["short_code"], "action": "check_in"})
    assert answer.status_code == 200 and answer.mimetype == "text/html"
    assert "<html" in answer.get_data(as_text=True)


def test_recent_changes_newest_first_with_names(app):
    node = app.extensions["shelter"]
    first, second = register(node), register(node, given_name="次郎")
    scan(node, first["code"], "check_in")
    scan(node, second["code"], "check_in")
    scan(node, first["code"], "go_out")
    changes = roster.recent_changes(node.db, node.shelter_id)
    assert [(c["display_name"], c["action"]) for c in changes] == [
        ("山田 太郎", "go_out"), ("山田 次郎", "check_in"), ("山田 太郎", "check_in")]
    assert len(roster.recent_changes(node.db, node.shelter_id, limit=2)) == 2
    assert roster.recent_changes(node.db, "E2710000009999") == []


def test_hq_messages_newest_first_for_this_shelter_only(app):
    node = app.extensions["shelter"]
    with node.store.write() as db:
        for n, (shelter, at) in enumerate([(node.shelter_id, "2026-01-01T01:00:00Z"),
                                           (node.shelter_id, "2026-01-01T03:00:00Z"),
                                           ("E2710000009999", "2026-01-01T04:00:00Z")]):
            db.execute("INSERT INTO hq_messages (event_id, shelter_id, text, at) "
                       "VALUES (?, ?, ?, ?)", [f"e{n}", shelter, f"message {n}", at])
    assert [m["text"] for m in hq_messages(node.db, node.shelter_id)] == ["message 1",
                                                                          "message 0"]
    assert hq_messages(node.db, node.shelter_id, limit=1) == [
        {"text": "message 1", "at": "2026-01-01T03:00:00Z"}]


def test_japan_time_whatever_the_offset_of_the_stored_time():
    assert japan_time("2026-01-01T15:30:05+00:00") == "00:30"
    assert japan_time("2026-01-01T15:30:05Z", seconds=True) == "00:30:05"
    assert japan_time("2026-01-01T09:30:00-05:00") == "23:30"
    assert japan_time("") == japan_time(None) == japan_time("not a time") == ""
