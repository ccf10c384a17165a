"""The request shapes (shelter.domain.schemas) and the documents made from them.

What each field's rule accepts and what its JSON Schema says are checked against each other
on drawn text, with the JSON Schema read by the same validator schemathesis uses; nothing in
shelter/web/openapi.py is a schema written by hand; and a body of the wrong shape is answered
with a 422 and a message per field, in the asker's language, before the domain sees it.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, timedelta
from typing import Annotated, Any

import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import create_model

from shelter.domain.accounts import create_token
from shelter.domain.schemas import desk, households, hq, patterns, supplies
from shelter.domain.schemas.fields import Body, InvalidBody, Line, Rule, When
from shelter.domain.text import normalise_kana
from shelter.render.catalogs import translations
from shelter.web.openapi import hq_spec, spec

from .conftest import ROOT

SPACES = [chr(c) for c in range(0x10000) if chr(c).isspace()]
# Characters each rule treats specially, mixed with anything at all.
TRICKY = st.sampled_from([*SPACES, "\x00", "\x01", "\x7f", "\x9f", "\u3000", "-", "ー", "+", "(",
                          ")", "0", "9", "０", "９", "٣", "a", "山", "や", "ヤ", "ｶ", "ﾞ", "ゞ",
                          "㋐", "\ufeff", "\u0301", "\U0001f200", "\U0001f600", "2000-01-01"])
TEXT = st.lists(st.one_of(TRICKY, st.characters(exclude_categories=("Cs",))),
                max_size=25).map("".join)


def accepts(rule: Rule, value: Any, **context: Any) -> bool:
    shape = create_model("One", __base__=Body, x=(Annotated[Any, rule], ...))
    try:
        shape.checked({"x": value}, context)
    except InvalidBody:
        return False
    return True


def documented(rule: Rule, value: Any) -> bool:
    return jsonschema_rs.validator_for(rule.schema()).is_valid(value)


def nfc_stable(text: str) -> bool:  # NFC may change a line's length; names rarely meet it
    return unicodedata.normalize("NFC", text) == text


@pytest.mark.parametrize("rule", [Line(10), Line(10, required=True), households.Postal(),
                                  households.Phone(), desk.Code(), desk.Detail()],
                         ids=["line", "required line", "postal", "phone", "code", "detail"])
@settings(max_examples=400, deadline=None)
@given(text=TEXT)
def test_a_field_is_documented_as_exactly_what_its_check_accepts(rule, text):
    if nfc_stable(text):
        assert documented(rule, text) == accepts(rule, text), repr(text)


@pytest.mark.parametrize("required", [False, True])
@settings(max_examples=400, deadline=None)
@given(text=TEXT)
def test_furigana_is_documented_as_what_normalise_kana_takes(required, text):
    rule = households.Kana(japanese=required)
    if nfc_stable(text) and not any(unicodedata.combining(ch) for ch in text):
        documented_here = jsonschema_rs.validator_for({"type": "string", "pattern": (
            patterns.kana_line(60, required))}).is_valid(text)
        assert documented_here == accepts(rule, text, language="ja"), repr(text)


def test_every_kana_character_and_every_space_is_where_the_patterns_look():
    kana_blocks = {c for block in patterns.KANA_BLOCKS for c in block}
    for code in range(0x110000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        ch = chr(code)
        assert not ch.isspace() or code < 0x10000, hex(code)
        if code not in kana_blocks and ch.strip() and unicodedata.category(ch) != "Cc":
            assert not normalise_kana(ch), hex(code)


@pytest.mark.parametrize("today", [date(2026, 12, 2), date(2026, 1, 1), date(2024, 2, 29),
                                   date(2023, 3, 1), date(1901, 1, 31)])
def test_a_birth_date_is_documented_from_1900_to_today(today):
    pattern = re.compile(patterns.dates_up_to(today))
    day = date(1895, 1, 1)
    while day < date(2031, 1, 1):
        assert bool(pattern.fullmatch(day.isoformat())) == \
            (date(1900, 1, 1) <= day <= today), day
        day += timedelta(days=1)
    for text in ("2001-02-29", "1900-02-29", "2000-13-01", "2000-00-10", "2000-04-31",
                 "02/04/1948", "2000-1-01"):
        assert not pattern.fullmatch(text), text
    assert pattern.fullmatch(f" {today.isoformat()}\u3000")
    rule = households.BirthDate()
    for text in ("1948-04-02", " 1948-04-02 ", "2000-02-29", "1950-02-30", "1899-12-31",
                 "٢٠٠٠-01-01", (today + timedelta(days=1)).isoformat(), today.isoformat()):
        assert bool(pattern.fullmatch(text)) == accepts(rule, text, today=today), text


@settings(max_examples=300, deadline=None)
@given(value=st.one_of(st.integers(-10, 2_000_000), st.floats(-1, 2e6), st.booleans(),
                       st.none(), st.integers(0, 1_000_100).map(str),
                       st.integers(0, 99).map(lambda n: f" 00{n} "), TEXT))
def test_a_quantity_is_documented_as_what_the_stock_checks_read(value):
    for zero in (False, True):
        rule = supplies.Quantity(zero=zero)
        kind = "counted" if zero else "received"
        shape = create_model("One", __base__=Body, kind=(str, ...), x=(Annotated[Any, rule], ...))
        try:
            shape.checked({"kind": kind, "x": value})
            accepted = True
        except InvalidBody:
            accepted = False
        assert documented(rule, value) == accepted, (zero, repr(value))


@pytest.mark.parametrize("value", ["", None, False, 0, [], {}, "normal", "urgent", "soon", 1,
                                   [0], {"a": 1}, True])
def test_a_choice_with_a_blank_reads_what_a_person_calls_empty(value):
    rule = supplies.SupplyRequestIn.model_fields["urgency"].metadata[0]
    assert documented(rule, value) == accepts(rule, value)


# --- the documents -------------------------------------------------------------------------

SCHEMA_WORDS = re.compile(r'"(pattern|enum|const|properties|items|anyOf|allOf|oneOf|maxLength|'
                          r'minLength|minimum|maximum|minItems|maxItems|format)"|"type": "(string|'
                          r'integer|number|boolean|array|object|null)"')


def test_no_schema_is_written_by_hand_in_the_documents():
    for path in ("shelter/web/openapi.py", "shelter/web/hq/api.py"):
        source = (ROOT / path).read_text(encoding="utf-8")
        assert not SCHEMA_WORDS.search(source), (path, SCHEMA_WORDS.search(source))


REQUESTS = (households.HouseholdIn, households.PersonIn, desk.ScanIn,
            supplies.StockMovementIn, supplies.SupplyRequestIn, supplies.LineIn)


@pytest.mark.parametrize("shape", REQUESTS, ids=lambda s: s.__name__)
def test_the_node_document_says_what_each_request_shape_says(shape):
    component = spec()["components"]["schemas"][shape.__name__]
    assert component["required"] == [n for n, f in shape.model_fields.items()
                                     if f.is_required()]
    conditions = component.get("allOf", [])
    for name, field in shape.model_fields.items():
        for rule in field.metadata:
            if isinstance(rule, When):
                assert rule.condition(name) in conditions, name
            elif isinstance(rule, Rule):
                written = component["properties"][name]
                assert {k: written.get(k) for k in rule.schema()} == rule.schema(), name


def test_the_node_document_refers_only_to_shapes_it_holds():
    for document in (spec(), hq_spec()):
        text = repr(document)
        for name in re.findall(r"#/components/schemas/(\w+)", text):
            assert name in document["components"]["schemas"], name


def test_hqs_shapes_name_what_hq_answers():
    from shelter.hq.stats import TOTAL_FIELDS
    from shelter.web.hq.public import PUBLIC_FIELDS
    assert set(TOTAL_FIELDS) <= set(hq.Summary.__required_keys__)
    assert set(TOTAL_FIELDS) <= set(hq.ShelterRow.__required_keys__)
    assert tuple(hq.PublicShelter.__annotations__) == PUBLIC_FIELDS


def test_the_registration_words_are_the_shapes():
    from shelter.domain import households as registry
    assert registry.NEEDS == households.NEEDS == tuple(households.Need.__args__)
    assert registry.LANGUAGES == ("ja", "en", "zh", "ko", "vi")


# --- bodies of the wrong shape, through the API ---------------------------------------------

@pytest.fixture
def manager(app):
    return {"Authorization": f"Bearer {create_token(app.extensions['shelter'].store, 'manager')}",
            "Accept-Language": "ja"}


@pytest.mark.parametrize("path, body, code, fields", [
    ("/api/v1/scans", {"action": "leap", "code": " "}, "invalid_action",
     {"action": desk.WHAT_TO_DO.message, "code": desk.GARBLED.message}),
    ("/api/v1/scans", {"action": "check_out", "destination": "other_shelter", "code": "x"},
     "invalid_destination", {"destination_detail": "Say which shelter."}),
    ("/api/v1/stock-movements", {"kind": "received", "item_id": "", "quantity": "many"},
     "unknown_item", {"item_id": supplies.UNKNOWN_ITEM.message,
                      "quantity": supplies.NUMBER.message}),
    ("/api/v1/stock-movements", {"kind": "transferred", "item_id": "water", "quantity": 1},
     "destination_required", {"destination": "Say which shelter it goes to."}),
    ("/api/v1/supply-requests", {"lines": [{"item_id": "water", "quantity": 0}, 7],
                                 "urgency": "soon"},
     "invalid_quantity", {"lines.0.quantity": "The quantity must be more than zero.",
                          "lines.1": supplies.NO_LINES.message,
                          "urgency": "Choose one of the options."}),
    # The second of two lines for one item is the one to fix (as before the schemas).
    ("/api/v1/supply-requests", {"lines": [{"item_id": "water", "quantity": 1}] * 2},
     "duplicate_line", {"lines.1.item_id": "Each item once per request."}),
])
def test_a_body_of_the_wrong_shape_gets_a_422_with_a_message_per_field(
        app, client, manager, path, body, code, fields):
    before = app.extensions["shelter"].db.execute("SELECT count(*) FROM events").fetchone()
    response = client.post(path, json=body, headers=manager)
    assert response.status_code == 422, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    assert set(error["fields"]) == set(fields)
    japanese = translations("ja").gettext
    for field, message in fields.items():  # in Japanese, as asked
        assert error["fields"][field] == japanese(message) != message, field
    after = app.extensions["shelter"].db.execute("SELECT count(*) FROM events").fetchone()
    assert after == before


def test_a_whole_number_is_a_quantity_however_json_writes_it(client, manager):
    for quantity in (5, 5.0, "5"):
        response = client.post("/api/v1/stock-movements", headers=manager, json={
            "kind": "received", "item_id": "water", "quantity": quantity})
        assert response.status_code == 201, (quantity, response.get_data(as_text=True))
    assert client.post("/api/v1/stock-movements", headers=manager, json={
        "kind": "received", "item_id": "water", "quantity": 5.5}).status_code == 422


def test_pages_that_show_people_are_never_cached(client):
    for path in ("/desk", "/desk/result", "/staff/login", "/kiosk", "/api/v1/headcount"):
        assert client.get(path).headers.get("Cache-Control") == "no-store", path
