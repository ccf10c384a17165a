"""The desk on a long day (issue 16): what an allergy is to and which medicine, a card from
another shelter that this node cannot verify, a short code not known here, search that
ignores accents, and a way out of a 403 page for whoever is signed in. Flask's test client
on a temporary node; the browser checks are in test_browser_desk_day.py."""

from __future__ import annotations

import copy
import re
from datetime import date

from shelter.core import keys, shortcode
from shelter.core.events import new_id
from shelter.domain import cards, households, roster

from .conftest import VALID_HOUSEHOLD
from .test_desk_panel import API, api_scan, drawn, section
from .test_household_arrival import family
from .test_presence import register, signed_in

OTHER = "E2720000009999"


def forged(person_id: str, name: str = "鈴木 一郎", shelter_id: str = OTHER) -> str:
    """A well-formed card signed by a key this node has never heard of."""
    key = keys.load_private_key(keys.new_private_key_pem())
    return cards.make_code(key, person_id, shelter_id, "NOTHER00001", name, date.today())


def household_count(node) -> int:
    return node.db.execute("SELECT count(*) FROM households").fetchone()[0]


def test_a_card_scan_says_what_the_allergy_is_to_and_which_medicine(app):
    node = app.extensions["shelter"]
    member = register(node, needs=["allergy", "chronic_illness"], allergies="卵",
                      medication="降圧剤")
    plain = register(node, given_name="次郎", medication="目薬")  # no need ticked
    client = signed_in(app)
    answer = api_scan(client, member["short_code"], "check_in").get_json()
    assert (answer["allergies"], answer["medication"]) == ("卵", "降圧剤")
    status, panel = drawn(client, answer)  # desk.js: the API's answer, drawn
    assert status == 200
    flags = re.findall(r'<li class="flag flag-(\w+)">([^<]*)</li>', panel)
    assert flags == [("allergy", "アレルギー: 卵"), ("chronic_illness", "服薬: 降圧剤")]
    # Without JavaScript the page says the same; a medicine without the need ticked too.
    page = client.post("/desk/scan", data={"csrf": "t0k3n", "code": plain["short_code"],
                                           "action": "check_in"}).get_data(as_text=True)
    assert "服薬: 目薬" in section(page)
    # Looked at through a scan, which is audited with whom it showed.
    audited = node.db.execute("SELECT subject FROM audit_log WHERE action = 'scan'").fetchall()
    assert (member["person_id"],) in audited and (plain["person_id"],) in audited
    # A kiosk account (an evacuee's tablet) reaches no scan, so no one's health.
    kiosk = signed_in(app, "kiosk")
    refused = kiosk.post("/api/v1/scans", headers=API, json={
        "code": member["short_code"], "action": "auto"})
    assert refused.status_code == 403 and "卵" not in refused.get_data(as_text=True)


def test_a_card_from_another_shelter_not_verifiable_here_has_a_screen_of_its_own(app):
    node = app.extensions["shelter"]
    client = signed_in(app)
    code = forged(new_id())
    page = client.post("/desk/scan", data={"csrf": "t0k3n", "code": code,
                                           "action": "check_in"})
    assert page.status_code == 200
    panel = section(page.get_data(as_text=True))
    assert "kind-unverified" in panel and "kind-check_in" not in panel
    assert "ほかの避難所のカード：この避難所では確認できません" in panel
    assert "鈴木 一郎" in panel and OTHER in panel and "その避難所を知りません" in panel
    # The way to admit them properly: the registration form, the card's name filled in.
    form = re.search(r'<form method="post" action="/register" class="register-here">.*?</form>',
                     panel, re.S)
    assert form, panel
    fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(0)))
    assert (fields["m0-family_name"], fields["m0-given_name"]) == ("鈴木", "一郎")
    before = household_count(node)
    started = client.post("/register", data={**fields, "action": "start"})
    assert started.status_code == 200
    text = started.get_data(as_text=True)
    assert 'value="鈴木"' in text and 'value="一郎"' in text
    assert 'class="error-box"' not in text and household_count(node) == before  # nothing yet
    # A shelter this node knows by name (its registry, as HQ holds it) is named, with its
    # id; the name comes from this node's store, never from the card.
    node.db.execute("INSERT INTO hq_shelters (shelter_id, name, municipality, source, "
                    "imported_at) VALUES (?, '大阪市立北小学校', '大阪市北区', 'test', '-')",
                    [OTHER])
    answer = api_scan(client, forged(new_id(), "佐藤 花子"), "check_in").get_json()
    assert (answer["registered_shelter_name"], answer["card_verified"]) == (
        "大阪市立北小学校", False)
    panel = drawn(client, answer)[1]
    assert "kind-unverified" in panel and "大阪市立北小学校" in panel and OTHER in panel
    assert "その避難所を知りません" not in panel


def test_a_short_code_not_known_here_offers_to_register_them(app):
    client = signed_in(app)
    code = shortcode.display(shortcode.generate())
    page = client.post("/desk/scan", data={"csrf": "t0k3n", "code": code,
                                           "action": "check_in"})
    assert page.status_code == 404
    panel = section(page.get_data(as_text=True))
    assert "kind-error" in panel and "氏名で探して" not in panel
    assert "QRコードを読み取るか、ここで登録してください" in panel
    assert 'id="register-here"' in panel
    # desk.js: the API's refusal, drawn, offers the same.
    refused = api_scan(client, code, "check_in")
    assert refused.status_code == 404
    assert 'id="register-here"' in drawn(client, refused.get_data(as_text=True))[1]
    # Any other refusal does not.
    garbled = api_scan(client, "SHC1.X", "check_in").get_data(as_text=True)
    assert 'id="register-here"' not in drawn(client, garbled)[1]


def test_search_ignores_accents_width_case_and_kana_kind(app):
    node = app.extensions["shelter"]
    for family_name, given in (("Nguyễn", "Văn An"), ("Đặng", "Thu")):
        data = copy.deepcopy(VALID_HOUSEHOLD)
        data["language"] = "vi"  # no furigana asked
        data["members"][0].update(family_name=family_name, given_name=given, family_name_kana="",
                                  given_name_kana="")
        households.register_household(node.store, node.identity, data)
    register(node, family_name="我妻", given_name="一", family_name_kana="がさい",
             given_name_kana="はじめ")

    def names(query):
        return [p["display_name"] for p in roster.find(node.db, query)]

    assert names("Nguyen") == names("NGUYEN") == names("ｎｇｕｙｅｎ") == ["Nguyễn Văn An"]
    assert names("nguyen van") == ["Nguyễn Văn An"] and names("van an") == ["Nguyễn Văn An"]
    assert names("Dang") == ["Đặng Thu"]
    assert names("ｶﾞｻｲ") == names("ガサイ") == names("がさい") == ["我妻 一"]
    assert names("かさい") == []  # a voicing mark is part of the name
    assert names("%") == [] and names("\u0301") == []
    client = signed_in(app)
    page = client.get("/desk/find?q=nguyen").get_data(as_text=True)
    assert "Nguyễn Văn An" in page
    logged = node.db.execute("SELECT detail FROM audit_log WHERE action = 'find_person'"
                             ).fetchall()
    assert logged == [("q=nguyen results=1",)]


def test_a_signed_in_account_on_a_page_it_may_not_see_has_a_way_out(app):
    kiosk = signed_in(app, "kiosk")
    page = kiosk.get("/desk")
    assert page.status_code == 403
    text = page.get_data(as_text=True)
    form = re.search(r'<form method="post" action="/staff/logout">.*?</form>', text, re.S)
    assert form and 'id="sign-out"' in form.group(0) and "kiosk" in form.group(0)
    assert 'href="/register"' in text  # and back to the start
    out = kiosk.post("/staff/logout", data={"csrf": "t0k3n"})
    assert out.status_code == 303
    assert kiosk.get("/desk").status_code == 302  # signed out: to the sign-in page
    # Nobody signed in: nothing to sign out of.
    nobody = app.test_client().get("/no-such-page")
    assert nobody.status_code == 404 and 'id="sign-out"' not in nobody.get_data(as_text=True)


def test_the_kiosk_allergy_box_is_marked_to_stay_only_when_it_holds_something(client):
    blank = client.get("/register").get_data(as_text=True)
    assert re.search(r'class="field allergies" data-member="0"', blank)
    with client.session_transaction() as session:
        session["csrf"] = "t0k3n"
    refused = client.post("/register", data={
        "csrf": "t0k3n", "count": "1", "action": "submit", "m0-family_name": "山田",
        "m0-allergies": "そば", "whereabouts": "shelter", "consent": "none"})
    assert refused.status_code == 400
    text = refused.get_data(as_text=True)
    # Typed without "allergy" ticked: the box stays, with its message, whatever CSS hides.
    assert re.search(r'class="field allergies keep" data-member="0"', text)
    assert 'value="そば"' in text


def test_registered_from_the_desk_the_cards_page_leads_back_to_it(app):
    form = {"csrf": "t0k3n", "count": "1", "action": "submit", "m0-family_name": "佐藤",
            "m0-given_name": "花子", "m0-family_name_kana": "さとう", "m0-birth_year": "1970",
            "m0-birth_month": "1", "m0-birth_day": "2", "whereabouts": "shelter",
            "consent": "none"}
    desk = signed_in(app)
    anybody = app.test_client()
    with anybody.session_transaction() as session:
        session["csrf"] = "t0k3n"
    for client, shown in ((desk, True), (anybody, False)):
        done = client.post("/register", data=form)
        assert done.status_code == 303, done.get_data(as_text=True)[:500]
        page = client.get("/register/cards").get_data(as_text=True)
        assert "佐藤 花子" in page and ('id="to-desk"' in page) is shown


def test_the_kiosk_shows_only_what_a_household_code_says_never_the_record(app):
    """A photo of a family's code gives its household id: a code made with that id and a
    member's number must not show the kiosk who that member is, nor their allergy."""
    node = app.extensions["shelter"]
    desk = signed_in(app)
    real = family_code(desk, family(2))
    admitted = desk.post("/api/v1/scans", headers=API, json={"code": real,
                                                             "action": "check_in"})
    assert admitted.status_code == 200, admitted.get_json()
    household = admitted.get_json()["household_id"]
    posing = copy.deepcopy(VALID_HOUSEHOLD)
    posing["members"][0].update(family_name="鈴木", given_name="花子",
                                family_name_kana="すずき", given_name_kana="はなこ")
    forged_code = family_code(desk, {**posing, "household_id": household, "seqs": [1],
                                     "next_seq": 2})
    kiosk = signed_in(app, "kiosk")
    page = kiosk.post("/register/code", data={"csrf": "t0k3n", "code": forged_code})
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    assert "鈴木 花子" in text
    assert "蒼井" not in text and "そば" not in text and "インスリン" not in text
    # The desk, whose tap acts on the record, shows the record (as before).
    preview = desk.post("/desk/household-preview", data={"csrf": "t0k3n",
                                                         "code": forged_code})
    assert "そば" in preview.get_data(as_text=True)
    assert node.db.execute("SELECT count(*) FROM persons").fetchone()[0] == 2


def family_code(client, body: dict) -> str:
    made = client.post("/api/v1/household-codes", json=body, headers=API)
    assert made.status_code == 200, made.get_json()
    return made.get_json()["code"]
