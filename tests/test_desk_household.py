"""A household code at the desk and at the kiosk, through the pages that work without
JavaScript: the family shown first (nothing written), one confirm admits them; a member's
card offers the whole household; the panel desk.js has drawn (POST /desk/result) takes the
household answer and refuses a forged one; the kiosk's code page is for kiosk accounts;
after a check-out the desk is back in automatic mode."""

from __future__ import annotations

import copy
import json
import re
from datetime import date

import pytest

from shelter.domain import household_code, households

from .conftest import VALID_HOUSEHOLD
from .test_presence import presence_events, signed_in

API = {"X-CSRF-Token": "t0k3n"}


def family_of_four(language: str = "ja") -> dict:
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["language"] = language
    body["pets"] = "犬 1匹"
    body["members"][0].update(needs=["elderly", "wheelchair"], medication="降圧剤 朝1錠")
    body["members"] += [
        {"family_name": "山田", "given_name": "花子", "family_name_kana": "やまだ",
         "given_name_kana": "はなこ", "birth_date": "1951-11-20", "sex": "female",
         "needs": ["allergy"], "allergies": "そば"},
        {"family_name": "山田", "given_name": "一郎", "family_name_kana": "やまだ",
         "given_name_kana": "いちろう", "birth_date": "1980-05-05", "sex": "male",
         "needs": []},
        {"family_name": "山田", "given_name": "さくら", "family_name_kana": "やまだ",
         "given_name_kana": "さくら", "birth_date": "2024-03-03", "sex": "female",
         "needs": ["infant"]}]
    return households.validate(body)


@pytest.fixture
def code() -> str:
    return household_code.make(family_of_four())


def panel(response) -> str:
    html = response.get_data(as_text=True)
    found = re.search(r'<section id="result".*?</section>', html, re.S)
    assert found, html
    return re.sub(r"\s+", " ", found.group(0))


def persons(node) -> int:
    return households.count_persons(node.db)


def test_a_household_code_shows_the_family_and_admits_them_on_the_tap(app, code):
    node = app.extensions["shelter"]
    client = signed_in(app)
    before = presence_events(node)
    shown = client.post("/desk/scan", data={"csrf": "t0k3n", "code": code, "action": "auto"})
    assert shown.status_code == 200
    preview = panel(shown)
    assert "kind-household" in preview and 'id="household-admit"' in preview
    born, today = date(1948, 4, 2), date.today()
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    for words in ("4人", "山田 太郎", f"({age})", "高齢者",
                  "車いす", "アレルギー: そば", "服薬: 降圧剤 朝1錠", "ペット: 犬 1匹",
                  "この内容でよろしいですか？", "全員を登録して入所"):
        assert words in preview, words
    assert persons(node) == 0 and presence_events(node) == before  # nothing written yet
    audited = node.db.execute("SELECT subject, detail FROM audit_log WHERE action = "
                              "'view_household_code'").fetchall()
    assert audited == [(household_code.read(code).household_id, "members=4")]
    # desk.js's first step is the same panel, read only.
    js = client.post("/desk/household-preview", data={"csrf": "t0k3n", "code": code})
    assert js.status_code == 200 and 'id="household-admit"' in js.get_data(as_text=True)
    assert persons(node) == 0

    confirm = re.search(r'<form method="post" action="([^"]+)" class="household-confirm">'
                        r'(.*?)</form>', shown.get_data(as_text=True), re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', confirm.group(2)))
    assert fields["confirm"] == "household" and fields["action"] == "check_in"
    done = client.post(confirm.group(1), data=fields)
    assert done.status_code == 200
    answer = panel(done)
    assert "household-done" in answer and "4人 入所しました" in answer
    household_id = household_code.read(code).household_id
    assert f'href="/api/v1/households/{household_id}/cards.pdf"' in answer
    assert 'id="print-cards"' in answer
    found = households.get_household(node.db, household_id)
    assert len(found["members"]) == 4
    for m in found["members"]:
        assert m["short_code"] in answer
    assert app.test_client  # the cards print for the desk
    pdf = client.get(f"/api/v1/households/{household_id}/cards.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    assert re.search(r'name="action" value="auto" checked', done.get_data(as_text=True))

    # The same code again: known, everyone in already; no second household.
    again = client.post("/desk/scan", data={"csrf": "t0k3n", "code": code, "action": "auto"})
    assert "4人ともすでに在所です。" in panel(again) and "登録済み" in panel(again)
    assert 'id="household-admit"' not in panel(again)  # nothing to do: no button for it
    assert 'id="household-cancel"' in panel(again)
    assert persons(node) == 4


@pytest.mark.parametrize("damage", ["misread", "truncated", "invalid"])
def test_a_damaged_or_invalid_household_code_gets_its_message(app, code, damage):
    client = signed_in(app)
    node = app.extensions["shelter"]
    if damage == "misread":
        digit = code[-3]
        bad = code[:-3] + str((int(digit) + 1) % 10) + code[-2:]
    elif damage == "truncated":
        bad = code[:len(code) // 2]
    else:
        clean = family_of_four()
        clean["members"][0]["birth_date"] = "2999-01-01"  # made by another system
        bad = household_code.make(clean)
    shown = client.post("/desk/scan", data={"csrf": "t0k3n", "code": bad, "action": "auto"})
    assert 400 <= shown.status_code < 500
    refused = panel(shown)
    assert "kind-error" in refused and 'id="household-admit"' not in refused
    js = client.post("/desk/household-preview", data={"csrf": "t0k3n", "code": bad})
    assert js.status_code == shown.status_code and "kind-error" in js.get_data(as_text=True)
    assert persons(node) == 0


def test_a_member_s_card_checks_in_and_out_the_whole_household(app, code):
    node = app.extensions["shelter"]
    client = signed_in(app)
    done = client.post("/api/v1/scans", headers=API, json={"code": code,
                                                           "action": "check_in"})
    assert done.status_code == 200, done.get_json()
    members = done.get_json()["members"]
    assert len(members) == 4 and {m["presence"]["status"] for m in members} == {"present"}
    first = members[0]["short_code"]
    # One member goes out and comes back; a card of the household offers all four.
    scanned = client.post("/desk/scan", data={"csrf": "t0k3n", "code": first,
                                              "action": "check_out",
                                              "destination": "home"})
    out = panel(scanned)
    assert "kind-check_out" in out and "household-all" in out
    assert 'value="check_out"' in out and "この世帯の全員(4人)を退所" in out
    # After the check-out the page is back in automatic mode.
    assert re.search(r'name="action" value="auto" checked', scanned.get_data(as_text=True))
    form = re.search(r'<form method="post" action="([^"]+)" class="household-all-form">'
                     r'(.*?)</form>', scanned.get_data(as_text=True), re.S)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form.group(2)))
    assert fields["code"] == first and fields["household"] == "1"
    everyone = client.post(form.group(1), data={**fields, "action": "check_out",
                                                "destination": "home"})
    assert "household-done" in panel(everyone) and "4人 退所しました" in panel(everyone)
    headcount = client.get("/api/v1/headcount").get_json()
    assert headcount["present"] == 0
    back = client.post("/desk/scan", data={"csrf": "t0k3n", "code": first,
                                           "action": "check_in"})
    assert "この世帯の全員(4人)を入所" in panel(back)
    api = client.post("/api/v1/scans", headers=API, json={
        "code": first, "action": "check_in", "household": True})
    assert api.status_code == 200 and api.get_json()["outcome"] == "done"
    assert client.get("/api/v1/headcount").get_json()["present"] == 4
    assert persons(node) == 4
    # One steps out: the household may step out with them, never be discharged.
    stepped = panel(client.post("/desk/scan", data={"csrf": "t0k3n", "code": first,
                                                    "action": "go_out"}))
    assert "kind-go_out" in stepped and 'value="go_out"' in stepped
    offered = stepped.split("household-all")[1]
    assert "この世帯の全員(4人)が外出" in stepped and "退所" not in offered


def test_the_drawn_panel_takes_a_household_answer_and_refuses_a_forged_one(app, code):
    client = signed_in(app)
    answer = client.post("/api/v1/scans", headers=API,
                         json={"code": code, "action": "check_in"}).get_json()

    def drawn(value):
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        return client.post("/desk/result", data={"csrf": "t0k3n", "answer": text})

    ok = drawn(answer)
    assert ok.status_code == 200
    html = ok.get_data(as_text=True)
    assert "household-done" in html and 'id="print-cards"' in html and "4人" in html
    forged = []
    extra = copy.deepcopy(answer)
    extra["members"][0]["note"] = "<script>"
    forged.append(extra)
    bad_id = copy.deepcopy(answer)
    bad_id["household_id"] = "../../staff/users"
    forged.append(bad_id)
    bad_outcome = copy.deepcopy(answer)
    bad_outcome["outcome"] = "hacked"
    forged.append(bad_outcome)
    bad_short = copy.deepcopy(answer)
    bad_short["members"][1]["short_code"] = "<b>x</b>"
    forged.append(bad_short)
    bad_place = copy.deepcopy(answer)
    bad_place["members"][2]["presence"]["destination"] = "moon"
    forged.append(bad_place)
    none = copy.deepcopy(answer)
    none["members"] = []
    forged.append(none)
    for value in forged:
        refused = drawn(value)
        assert refused.status_code == 400, value
        assert refused.get_json()["error"]["code"] == "not_a_scan"


def test_the_kiosk_code_page_is_for_kiosk_accounts(app, code):
    node = app.extensions["shelter"]
    anyone = app.test_client()
    page = anyone.get("/register/code")
    assert page.status_code == 403
    text = page.get_data(as_text=True)
    assert "受付" in text and 'href="/register"' in text and "household-code" not in text
    with anyone.session_transaction() as session:
        session["csrf"] = "t0k3n"
    refused = anyone.post("/register/code", data={"csrf": "t0k3n", "code": code,
                                                  "confirm": "household"})
    assert refused.status_code == 403 and persons(node) == 0
    camera = anyone.get("/register/code/camera", headers={"Upgrade": "websocket",
                                                          "Connection": "Upgrade"})
    assert camera.status_code == 401  # the kiosk's camera socket too
    desk = anyone.post("/desk/household-preview", data={"csrf": "t0k3n", "code": code})
    assert desk.status_code == 401 and desk.get_json()["error"]["code"] == "unauthorized"

    kiosk = signed_in(app, "kiosk")
    page = kiosk.get("/register/code?lang=vi")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert 'id="household-code"' in text and 'id="camera-toggle"' in text
    assert "Quét mã hộ gia đình" in text
    # The preview speaks the family's language (the code says Japanese).
    shown = kiosk.post("/register/code", data={"csrf": "t0k3n", "code": code})
    assert shown.status_code == 200
    preview = panel(shown)
    assert "この内容でよろしいですか？" in preview and 'id="household-admit"' in preview
    assert persons(node) == 0
    admitted = kiosk.post("/register/code", data={"csrf": "t0k3n", "code": code,
                                                  "action": "check_in",
                                                  "confirm": "household"})
    assert admitted.status_code == 303 and admitted.headers["Location"].endswith(
        "/register/cards")
    cards = kiosk.get("/register/cards").get_data(as_text=True)
    assert "household-done" in cards and "4人全員の入所を受け付けました" in cards
    household_id = household_code.read(code).household_id
    assert kiosk.get(f"/api/v1/households/{household_id}/cards.pdf").status_code == 200
    actors = {r[0] for r in node.db.execute(
        "SELECT actor FROM presence_log WHERE person_id IN "
        "(SELECT person_id FROM persons WHERE household_id = ?)", [household_id])}
    assert actors == {"kiosk"}
    # Not a household code: its message, in the kiosk's language, nothing changes.
    wrong = kiosk.post("/register/code?lang=en", data={"csrf": "t0k3n", "code": "7KQ3-M9TX"})
    assert wrong.status_code == 422 and "not a household code" in wrong.get_data(as_text=True)


def test_a_kiosk_account_lands_in_kiosk_mode_and_stays_signed_in_there(app):
    """Setting up a kiosk tablet: sign in with the kiosk account, and the tablet is in kiosk
    mode with the household-code page open to it. A volunteer who opens kiosk mode is
    signed out first: the next evacuee must not find the desk open."""
    from shelter.domain.accounts import add_user
    node = app.extensions["shelter"]
    add_user(node.store, "kiosk1", "kiosk-pass-77", "kiosk")
    add_user(node.store, "vol1", "vol-pass-778", "volunteer")
    tablet = app.test_client()
    tablet.get("/staff/login")
    with tablet.session_transaction() as s:
        s["csrf"] = "t0k3n"
    landed = tablet.post("/staff/login", data={"csrf": "t0k3n", "username": "kiosk1",
                                               "password": "kiosk-pass-77"})
    assert landed.status_code == 303 and landed.headers["Location"].endswith("/kiosk")
    assert tablet.get("/kiosk").status_code == 302
    assert tablet.get("/register/code").status_code == 200  # still signed in

    desk = app.test_client()
    desk.get("/staff/login")
    with desk.session_transaction() as s:
        s["csrf"] = "t0k3n"
    desk.post("/staff/login", data={"csrf": "t0k3n", "username": "vol1",
                                    "password": "vol-pass-778"})
    assert desk.get("/desk").status_code == 200
    with desk.session_transaction() as s:
        sid = s["sid"]
    desk.get("/kiosk")
    assert desk.get("/desk").status_code == 302  # to the sign-in page
    again = app.test_client()
    with again.session_transaction() as s:
        s["sid"] = sid  # a copy of the old cookie is worth nothing
    assert again.get("/desk").status_code == 302
