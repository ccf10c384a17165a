"""The faster kiosk form (issue 14): full-width digits everywhere a number goes, 和暦 birth
years, the address from the postal code with no network, the address optional, the family
name typed once, and each household starting in the kiosk's own language."""

from __future__ import annotations

import re
from datetime import date

import pytest

from shelter.core import shortcode
from shelter.domain import accounts, households, postal, supply_requests
from shelter.domain.accounts import create_token
from shelter.domain.eras import western_year
from shelter.domain.schemas.supplies import StockMovementIn
from shelter.domain.text import ascii_digits

OSAKA = "大阪府大阪市中央区大手前"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from shelter.app import create_app
    return create_app(tmp_path_factory.mktemp("form") / "node", test_config={
        "TESTING": True, "SHELTER_ID": "E2710000001111"})


@pytest.fixture
def client(app):
    return app.test_client()


def csrf_of(client, path="/register"):
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def form(csrf, **fields):
    base = {"csrf": csrf, "count": "1", "action": "submit", "m0-family_name": "山田",
            "m0-family_name_kana": "やまだ", "m0-birth_year": "1948", "m0-birth_month": "4",
            "m0-birth_day": "2", "address": "大阪市", "whereabouts": "shelter",
            "consent": "none"}
    return {**base, **fields}


def registered(app, client):
    """The household this client just registered, as the store has it."""
    with client.session_transaction() as session:
        household_id = session["own"]
    return households.get_household(app.extensions["shelter"].db, household_id)


def value_of(body, field_id):
    found = re.search(rf'<input id="{re.escape(field_id)}"[^>]*value="([^"]*)"', body)
    assert found, field_id
    return found.group(1)


# --- full-width digits ---------------------------------------------------------------------

def test_ascii_digits_reads_a_japanese_keyboards_numbers():
    assert ascii_digits("５４０ー０００８") == "540-0008"
    assert ascii_digits("０６－１２３４‐５６７８") == "06-1234-5678"
    assert ascii_digits("１ー２", hyphens=False) == "1ー2"
    assert ascii_digits("①٣") == "①٣"  # not what a keyboard types for a number


def test_full_width_digits_in_every_field_of_the_kiosk_form(app, client):
    answer = client.post("/register", data=form(
        csrf_of(client), **{"m0-birth_year": "１９８５", "m0-birth_month": "３月",
                            "m0-birth_day": "１４", "postal_code": "〒５４０ー０００８",
                            "phone": "０６－１２３４－５６７８"}))
    assert answer.status_code == 303, answer.get_data(as_text=True)
    household = registered(app, client)
    assert household["postal_code"] == "540-0008" and household["phone"] == "06-1234-5678"
    assert household["members"][0]["birth_date"] == "1985-03-14"


def test_a_card_code_typed_in_full_width_is_the_code():
    code = shortcode.generate()
    wide = "".join(chr(ord(ch) + 0xFEE0) for ch in code)
    assert shortcode.normalise(f"{wide[:4]}－{wide[4:]}") == code
    assert shortcode.normalise(f"{wide[:4]}ー{wide[4:].lower()}") == code
    assert shortcode.normalise(f"{code[:4]}\u3000{code[4:]}") == code


def test_full_width_quantities_in_the_api_and_the_supplies_pages(app):
    body = {"kind": "received", "item_id": "water", "quantity": "２４"}
    assert StockMovementIn.read(body)["quantity"] == 24
    node = app.extensions["shelter"]
    api = app.test_client()
    answer = api.post("/api/v1/stock-movements", json={**body, "source": "hq_shipment"},
                      headers={"Authorization": f"Bearer {create_token(node.store, 'manager')}"})
    assert answer.status_code == 201, answer.get_data(as_text=True)

    accounts.add_user(node.store, "boss", "boss-pass-long-1", "manager")
    staff = app.test_client()
    csrf = csrf_of(staff, "/staff/login")
    assert staff.post("/staff/login", data={"username": "boss", "password": "boss-pass-long-1",
                                            "csrf": csrf}).status_code == 303
    csrf = csrf_of(staff, "/supplies/requests")
    sent = staff.post("/supplies/requests", data={"csrf": csrf, "qty-water": "１２",
                                                  "qty-food": "０"})
    assert sent.status_code == 303, sent.get_data(as_text=True)
    (request,) = supply_requests.requests(node.db)
    assert request["lines"] == [{"item_id": "water", "quantity": 12}]


def test_full_width_numbers_in_the_managers_settings(app):
    from shelter.domain.settings import get_settings, save_manager_settings
    node = app.extensions["shelter"]
    save_manager_settings(node.store, {"shelter_name": "テスト小学校", "wifi_name": "",
                                       "capacity": "３００", "crowding_busy": "５０",
                                       "crowding_crowded": "８０", "crowding_full": "１００"})
    settings = get_settings(node.db)
    assert (settings["capacity"], settings["crowding_full"]) == ("300", "100")


# --- 和暦 ------------------------------------------------------------------------------------

@pytest.mark.parametrize("era, typed, year", [
    ("showa", "60", "1985"), ("showa", "1", "1926"), ("showa", "64", "1989"),
    ("heisei", "元", "1989"), ("heisei", "元年", "1989"), ("heisei", "31", "2019"),
    ("reiwa", "元", "2019"), ("reiwa", "７", "2025"), ("taisho", "15", "1926"),
    ("", "昭和60", "1985"), ("", "Ｓ６０", "1985"), ("", "h元年", "1989"),
    ("", "１９８５", "1985"), ("", "1985年", "1985"),
])
def test_an_era_year_is_the_ad_year(era, typed, year):
    assert western_year(era, typed, today=date(2026, 12, 2)) == (year, None)


@pytest.mark.parametrize("era, typed", [
    ("showa", "65"), ("showa", "0"), ("heisei", "32"), ("taisho", "16"), ("reiwa", "9"),
    ("showa", "1960")])
def test_a_year_outside_its_era_is_refused(era, typed):
    last = {"showa": 64, "heisei": 31, "taisho": 15, "reiwa": 8}[era]
    assert western_year(era, typed, today=date(2026, 12, 2)) == (
        typed, {"era": era, "last": last})


def test_the_form_converts_an_era_and_says_which_years_an_era_has(app, client):
    csrf = csrf_of(client, "/register?lang=ja")
    refused = client.post("/register", data=form(
        csrf, **{"m0-birth_era": "showa", "m0-birth_year": "７０"}))
    body = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "昭和は1年から64年までです。年か元号を確かめてください。" in body
    assert '<option value="showa" selected>' in body and value_of(body, "m0-birth_year") == "70"
    assert '<a href="#m0-birth_year">' in body  # the summary takes them to it
    done = client.post("/register", data=form(
        csrf, **{"m0-birth_era": "heisei", "m0-birth_year": "元", "m0-birth_month": "5"}))
    assert done.status_code == 303
    assert registered(app, client)["members"][0]["birth_date"] == "1989-05-02"


def test_the_era_select_is_labelled_in_every_language(client):
    for lang, words in (("ja", ">昭和</option>"), ("en", "昭和 Shōwa</option>"),
                        ("ko", "昭和 쇼와"), ("vi", "Dương lịch"), ("zh", "公历")):
        body = client.get(f"/register?lang={lang}").get_data(as_text=True)
        assert words in body, lang


# --- postal code -> address ----------------------------------------------------------------

def test_postal_codes_give_the_address_offline():
    assert postal.address("5400008") == OSAKA
    assert postal.address("〒５４０－０００８") == OSAKA
    assert postal.address("0000000") is None and postal.address("54000") is None
    assert postal.address("5300000") == "大阪府大阪市北区"  # 以下に掲載がない場合: the ward


def test_the_postal_route_answers_json(client):
    found = client.get("/register/postal?code=540-0008")
    assert found.status_code == 200 and found.get_json() == {"address": OSAKA}
    unknown = client.get("/register/postal?code=0000000&lang=en")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["message"].startswith("This postal code is not")
    assert client.get("/register/postal").status_code == 404


def test_the_button_fills_the_address_without_a_script(client):
    csrf = csrf_of(client)
    body = client.post("/register", data=form(csrf, action="postal", address="",
                                              postal_code="５４０００08")).get_data(as_text=True)
    assert value_of(body, "address") == OSAKA and 'value="山田"' in body
    assert re.search(r'<input id="address"[^>]*autofocus', body)
    kept = client.post("/register", data=form(
        csrf, action="postal", address=OSAKA + "2-1", postal_code="5400008"))
    assert value_of(kept.get_data(as_text=True), "address") == OSAKA + "2-1"
    unknown = client.post("/register", data=form(csrf, action="postal", postal_code="0000000"))
    assert unknown.status_code == 400 and "日本郵便の一覧にありません" in unknown.get_data(
        as_text=True)


def test_the_address_is_optional(app, client):
    page = client.get("/register?lang=ja").get_data(as_text=True)
    assert '住所 <span class="optional">(任意)</span>' in page
    answer = client.post("/register", data=form(csrf_of(client), address="",
                                                whereabouts="other"))
    assert answer.status_code == 303, answer.get_data(as_text=True)
    assert registered(app, client)["address"] == ""


# --- typed once ----------------------------------------------------------------------------

def test_an_added_member_starts_with_the_family_name_and_its_kana(client):
    body = client.post("/register", data=form(
        csrf_of(client), action="add", **{"m0-given_name": "太郎",
                                          "m0-medication": "降圧剤", "pets": "犬1匹"})
    ).get_data(as_text=True)
    assert value_of(body, "m1-family_name") == "山田"
    assert value_of(body, "m1-family_name_kana") == "やまだ"
    assert value_of(body, "m1-given_name") == "" and value_of(body, "m0-given_name") == "太郎"
    assert re.search(r'<input id="m1-given_name"[^>]*autofocus', body)
    assert 'data-copy-of="m0-family_name"' in body
    assert value_of(body, "m0-medication") == "降圧剤" and value_of(body, "m1-medication") == ""
    assert value_of(body, "pets") == "犬1匹"


def test_medication_and_pets_are_registered_from_the_form(app, client):
    answer = client.post("/register", data=form(
        csrf_of(client), **{"m0-medication": "降圧剤", "pets": "犬1匹（小型）"}))
    assert answer.status_code == 303, answer.get_data(as_text=True)
    household = registered(app, client)
    assert household["pets"] == "犬1匹（小型）"
    assert household["members"][0]["medication"] == "降圧剤"


def test_the_error_summary_links_to_each_field(client):
    body = client.post("/register", data={
        "csrf": csrf_of(client), "count": "2", "action": "submit"}).get_data(as_text=True)
    for target in ("m0-family_name", "m0-birth_year", "m1-family_name", "whereabouts",
                   "consent"):
        assert f'<a href="#{target}">' in body, target
        assert f'id="{target}"' in body, target


# --- the kiosk's own language --------------------------------------------------------------

def test_each_household_starts_in_the_kiosks_language(client):
    client.get("/kiosk?lang=en")
    csrf = csrf_of(client)
    assert client.post("/register", data=form(csrf, action="lang:vi")).status_code == 200
    answer = client.post("/register", data=form(csrf))
    assert answer.status_code == 303
    assert '<html lang="vi">' in client.get("/register/cards").get_data(as_text=True)
    client.post("/register/done", data={"csrf": csrf})
    assert '<html lang="en">' in client.get("/register").get_data(as_text=True)
    # a form left half-filled in Vietnamese: the idle reset (to /kiosk) is English again
    client.post("/register", data=form(csrf, action="lang:vi"))
    client.get("/kiosk")
    assert '<html lang="en">' in client.get("/register").get_data(as_text=True)


def test_a_kiosk_opened_with_no_language_is_japanese_and_a_phone_keeps_its_own(app):
    kiosk = app.test_client()
    kiosk.get("/kiosk")
    assert '<html lang="ja">' in kiosk.get("/register").get_data(as_text=True)
    phone = app.test_client()
    csrf = csrf_of(phone, "/register?lang=ko")
    assert phone.post("/register", data=form(csrf)).status_code == 303
    phone.post("/register/done", data={"csrf": csrf})
    assert '<html lang="ko">' in phone.get("/register").get_data(as_text=True)


def test_add_at_the_limit_and_remove_the_only_one_register_nobody(app, client):
    before = app.extensions["shelter"].db.execute("SELECT count(*) FROM households").fetchone()
    csrf = csrf_of(client)
    full = form(csrf, action="add", count="20")
    full.update({f"m{i}-family_name": "山田" for i in range(20)})
    assert client.post("/register", data=full).status_code == 200
    assert client.post("/register", data=form(csrf, action="remove")).status_code == 200
    after = app.extensions["shelter"].db.execute("SELECT count(*) FROM households").fetchone()
    assert tuple(after) == tuple(before)


def test_an_added_member_keeps_the_calendar_and_the_form_starts_staying_here(client):
    """An elderly couple picks 昭和 once; someone registering at the shelter is staying in
    it unless they say otherwise (no refusal for a choice every family makes the same)."""
    empty = client.get("/register").get_data(as_text=True)
    assert re.search(r'<input[^>]*name="whereabouts"[^>]*value="shelter"[^>]*checked', empty)
    body = client.post("/register", data=form(
        csrf_of(client), action="add", **{"m0-birth_era": "showa", "m0-birth_year": "23"})
    ).get_data(as_text=True)
    member = body[body.index('id="m1-birth_era"'):]
    assert re.search(r'<option value="showa" ?selected>', member[:member.index("</select>")])
