"""Registration rules, through the domain function and through the kiosk form."""

from __future__ import annotations

import copy
import re
from datetime import date

import pytest

from shelter.domain import households
from shelter.domain.cards import parse_code

from .conftest import VALID_HOUSEHOLD


def household(**member_changes):
    data = copy.deepcopy(VALID_HOUSEHOLD)
    data["members"][0].update(member_changes)
    return data


def node_of(app):
    return app.extensions["shelter"]


def counts(app):
    db = node_of(app).db
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("events", "households", "persons"))


def test_registration_stores_normalised_kana_and_signed_codes(app):
    node = node_of(app)
    result = households.register_household(node.store, node.identity, household(
        family_name_kana="ﾔﾏﾀﾞ", given_name_kana="たろう"))
    person = households.get_person(node.db, result["members"][0]["person_id"])
    assert (person["family_name_kana"], person["given_name_kana"]) == ("ヤマダ", "タロウ")
    card = parse_code(result["members"][0]["code"], node.card_keys())
    assert card.verified and card.person_id == person["person_id"]
    assert card.shelter_id == "E2710000001111" and card.display_name == "山田 太郎"
    # the household's address and the person's birth date are not on the card
    assert "1948" not in result["members"][0]["code"]
    event = node.db.execute("SELECT type, node_id, seq, schema_version FROM events").fetchall()
    assert [tuple(e) for e in event] == [("household_registered", node.node_id, 1, 1)]


@pytest.mark.parametrize("changes, field, message", [
    ({"family_name": ""}, "members.0.family_name", "This field is required."),
    ({"family_name": "山" * 41}, "members.0.family_name", "Too long or not valid text."),
    ({"family_name": "山\x00田"}, "members.0.family_name", "Too long or not valid text."),
    ({"birth_date": "1950-02-30"}, "members.0.birth_date", "This date does not exist."),
    ({"birth_date": "2999-01-01"}, "members.0.birth_date",
     "The birth date cannot be in the future."),
    ({"birth_date": "1850-01-01"}, "members.0.birth_date", "Check the year of birth."),
    ({"birth_date": "02/04/1948"}, "members.0.birth_date",
     "Enter the birth date as year, month and day."),
    ({"family_name_kana": "yamada"}, "members.0.family_name_kana",
     "Write this in hiragana or katakana."),
    ({"family_name_kana": ""}, "members.0.family_name_kana", "This field is required."),
    ({"needs": ["flying"]}, "members.0.needs", "Unknown need."),
    ({"needs": ["allergy"]}, "members.0.allergies", "This field is required."),
    ({"sex": "x"}, "members.0.sex", "Choose one of the options."),
])
def test_bad_member_fields_are_refused_and_nothing_is_saved(app, changes, field, message):
    before = counts(app)
    node = node_of(app)
    with pytest.raises(households.ValidationError) as refused:
        households.register_household(node.store, node.identity, household(**changes),
                                    today=date(2026, 11, 25))
    assert refused.value.errors[field] == message
    assert counts(app) == before


@pytest.mark.parametrize("changes, field", [
    ({"language": "xx"}, "language"), ({"whereabouts": "moon"}, "whereabouts"),
    ({"consent": None}, "consent"), ({"members": []}, "members"),
    ({"members": [{}] * 21}, "members"), ({"postal_code": "12-34"}, "postal_code"),
    ({"phone": "call me"}, "phone"), ({"address": "大阪\x00市"}, "address"),
])
def test_bad_household_fields_are_refused(app, changes, field):
    node = node_of(app)
    data = {**copy.deepcopy(VALID_HOUSEHOLD), **changes}
    with pytest.raises(households.ValidationError) as refused:
        households.register_household(node.store, node.identity, data)
    assert field in refused.value.errors
    assert counts(app) == (0, 0, 0)


def test_kana_is_optional_outside_japanese_and_postal_code_is_normalised(app):
    node = node_of(app)
    data = household(family_name="Nguyen", given_name="Lan", family_name_kana="",
                     given_name_kana="")
    data.update(language="vi", postal_code="５４０-０００８")
    result = households.register_household(node.store, node.identity, data)
    found = households.get_household(node.db, result["household_id"])
    assert found["postal_code"] == "540-0008" and found["language"] == "vi"


def test_same_name_and_birth_date_is_flagged_for_staff_not_merged(app):
    node = node_of(app)
    first = households.register_household(node.store, node.identity, household())
    # the same man again, his name typed with katakana reading only matching
    second = households.register_household(node.store, node.identity, household(
        family_name="山田", given_name="太郎", family_name_kana="ヤマダ"))
    third = households.register_household(node.store, node.identity, household(
        family_name="山田", given_name="次郎", birth_date="1948-04-02",
        family_name_kana="やまだ", given_name_kana="じろう"))
    flags = households.open_duplicates(node.db)
    assert [(f["person_id"], f["other_person_id"]) for f in flags] == [
        (second["members"][0]["person_id"], first["members"][0]["person_id"])]
    assert third["household_id"] and counts(app)[2] == 3  # nobody silently dropped


def test_kiosk_form_shows_translated_errors_and_keeps_what_was_typed(client):
    page = client.get("/register?lang=ko").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    response = client.post("/register", data={
        "csrf": csrf, "count": "1", "action": "submit", "m0-family_name": "김",
        "m0-given_name": "민준", "m0-birth_year": "2030", "m0-birth_month": "1",
        "m0-birth_day": "1", "address": "大阪市", "whereabouts": "shelter", "consent": "none"})
    body = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "생년월일은 미래일 수 없습니다." in body and 'value="민준"' in body
    assert '<html lang="ko">' in body


def test_kiosk_form_refuses_a_post_without_its_csrf_token(client):
    response = client.post("/register", data={"count": "1", "action": "submit"})
    assert response.status_code == 400 and "期限切れ" in response.get_data(as_text=True)


def test_kiosk_never_shows_another_household(client, app):
    node = node_of(app)
    other = households.register_household(node.store, node.identity, household())
    assert client.get("/register/cards").status_code == 302
    pid = other["members"][0]["person_id"]
    assert client.get(f"/api/v1/persons/{pid}/card.png").status_code == 404
    assert client.get(f"/api/v1/households/{other['household_id']}/cards.pdf").status_code == 404


def test_language_switch_on_the_form_keeps_the_typed_data(client):
    page = client.get("/register").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    body = client.post("/register", data={"csrf": csrf, "count": "1", "action": "lang:vi",
                                          "m0-family_name": "Trần"}).get_data(as_text=True)
    assert 'value="Trần"' in body and "Đăng ký tại nơi sơ tán" in body


def test_a_short_code_in_use_here_is_never_drawn_again(app, monkeypatch):
    """The desk finds a person by the short code typed: a new card never repeats one."""
    from shelter.core import shortcode
    node = node_of(app)
    first = households.register_household(node.store, node.identity, household())
    used = first["members"][0]["short_code"].replace("-", "")
    fresh = shortcode.generate()
    draws = iter([used, used, fresh])
    monkeypatch.setattr(shortcode, "generate", lambda: next(draws))
    second = households.register_household(node.store, node.identity, household())
    assert second["members"][0]["short_code"].replace("-", "") == fresh
    assert node.db.execute("SELECT count(*) FROM persons WHERE short_code = ?",
                           [used]).fetchone()[0] == 1
