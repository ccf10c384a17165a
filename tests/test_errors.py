"""One error tree, answered in one place (shelter/core/errors.py, shelter/web/errors.py).

Every named error of the system is a ShelterError with a stable code, a status that fits
and a message the catalogs translate; the one handler answers JSON under /api/ and the
error page elsewhere, in the asker's language; and real refusals of each kind come back
through the real app with their code.
"""

from __future__ import annotations

import copy
import importlib
import logging
import pkgutil
import re
from datetime import date

import pytest

import shelter
import sync
from shelter.core import keys, shortcode
from shelter.core.authority import Refused
from shelter.core.errors import (
    Conflict,
    Forbidden,
    Internal,
    InvalidInput,
    NotFound,
    ShelterError,
    TooMany,
)
from shelter.domain import cards
from shelter.domain.accounts import create_token
from shelter.domain.households import ValidationError
from shelter.domain.signin import TooManyAttempts

from .conftest import VALID_HOUSEHOLD
from .test_docs import _catalog as catalog

# Every error class the system raises on purpose, by module: each must be in the tree.
NAMED = {
    "shelter.core.authority": "Refused", "shelter.core.events": "UnknownEventType",
    "shelter.core.clock": "ClockDriftError", "sync.protocol": "ProtocolError",
    "sync.enrollment": "EnrollmentError", "sync.client": "SyncRefused",
    "shelter.domain.accounts": "RoleError", "shelter.domain.cards": "CardError",
    "shelter.domain.signin": "TooManyAttempts", "shelter.domain.households": "ValidationError",
    "shelter.domain.presence": "ScanError", "shelter.domain.supplies": "SupplyError",
    "shelter.hq.shelters": "ImportProblem", "shelter.hq.outlines": "OutlineProblem",
    "shelter.web.inputs": "MalformedInput",
    "shelter.commands.common": "ShelterCommandError", "sync.standby": "StandbyError",
    "sync.bundle": "BundleRefused",
}
KINDS = (InvalidInput, NotFound, Forbidden, Conflict, TooMany, Internal)
SNAKE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
JA_NOT_FOUND = "見つかりませんでした。"


def everything() -> set[type[ShelterError]]:
    """ShelterError and every subclass, after importing every module of ours (but the WSGI
    entry point, which makes an app as it is imported)."""
    for package in (shelter, sync):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            if module.name != "shelter.wsgi":
                importlib.import_module(module.name)
    found, todo = set(), [ShelterError]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    return found


# --- the tree -------------------------------------------------------------------------------

def test_every_named_error_is_in_the_tree():
    for module, name in NAMED.items():
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, ShelterError), name
        assert any(issubclass(cls, kind) for kind in KINDS) or name == "ShelterCommandError"


def test_every_error_has_a_code_a_status_and_a_translated_message():
    ja = catalog("ja")
    classes = everything()
    assert len(classes) >= len(NAMED) + len(KINDS) + 1
    for cls in classes:
        assert SNAKE.fullmatch(cls.code), cls
        # 5xx only for our own faults (Internal: a bug, never the asker's input).
        assert 400 <= cls.status < 500 or (issubclass(cls, Internal) and cls.status == 500), cls
        if cls.__name__ != "ShelterCommandError":  # click's English text, for the operator
            assert ja.get(cls.message), (cls, cls.message)


def test_messages_chosen_per_refusal_are_translated_too():
    from shelter.web.inputs import MalformedInput

    ja = catalog("ja")
    for error in (cards.CardError("forged"), cards.CardError("garbled"), TooManyAttempts(1),
                  TooManyAttempts(5), *(MalformedInput("malformed_json", reason)
                                        for reason in ("syntax", "depth", "text"))):
        assert ja.get(error.message), error.message
        assert error.code and 400 <= error.status < 500


def test_old_behaviour_is_kept():
    """What callers read stays: str(), the ValueError base, the attributes."""
    from sync.client import SyncRefused
    from sync.protocol import ProtocolError

    forged = cards.CardError("forged")
    assert (str(forged), forged.reason, forged.code) == ("forged", "forged", "forged")
    assert isinstance(forged, ValueError) and isinstance(Refused("x"), ValueError)
    assert str(Refused("a reason")) == "a reason" and Refused("x").status == 500
    wait = TooManyAttempts(7)
    assert (wait.seconds, wait.status, wait.headers()) == (7, 429, {"Retry-After": "7"})
    assert wait.text() == "Too many attempts. Try again in 7 seconds."
    invalid = ValidationError({"phone": "Check the phone number."})
    assert invalid.errors == {"phone": "Check the phone number."} == invalid.fields
    refused = ProtocolError("too_large", "at most 1000 events in a batch")
    assert (str(refused), refused.code, refused.message) == (
        "too_large: at most 1000 events in a batch", "too_large",
        "at most 1000 events in a batch")
    no = SyncRefused("revoked", "HQ has revoked this node's credential")
    assert (no.code, no.message, isinstance(no, ValueError)) == (
        "revoked", "HQ has revoked this node's credential", False)


def test_a_translation_that_does_not_fit_falls_back_to_english():
    error = Conflict("Only %(left)s left.", left=2)
    assert error.text(lambda _: "残り %(remaining)s") == "Only 2 left."
    assert error.text() == str(error) == "Only 2 left."


# --- the handler, on the real app -----------------------------------------------------------

RAISED = {
    "not_found": lambda: NotFound(),
    "conflict": lambda: Conflict(),
    "forbidden": lambda: Forbidden(),
    "invalid": lambda: ValidationError(
        {"members.0.birth_date": "The birth date cannot be in the future."}, language="vi"),
    "wait": lambda: TooManyAttempts(9),
    "bug": lambda: Refused("HQ registers nobody: secret detail"),
}


@pytest.fixture
def raising(app):
    """The real node app, plus a page and an API path that raise what they are told."""
    def view(kind: str) -> str:
        raise RAISED[kind]()

    app.add_url_rule("/raise/<kind>", "raise_page", view)
    app.add_url_rule("/api/v1/raise/<kind>", "raise_api", view)
    return app.test_client()


def test_under_api_the_answer_is_json_in_the_askers_language(raising):
    for lang, message in (("ja", JA_NOT_FOUND), ("en", "This was not found."),
                          ("ko", "찾을 수 없습니다.")):
        response = raising.get("/api/v1/raise/not_found", headers={"Accept-Language": lang})
        assert response.status_code == 404 and response.is_json
        assert response.get_json() == {"error": {"code": "not_found", "message": message}}
    response = raising.get("/api/v1/raise/conflict?lang=en")
    assert (response.status_code, response.get_json()["error"]["code"]) == (409, "conflict")


def test_elsewhere_the_answer_is_the_error_page(raising):
    response = raising.get("/raise/not_found", headers={"Accept-Language": "ja"})
    page = response.get_data(as_text=True)
    assert response.status_code == 404 and response.mimetype == "text/html"
    assert JA_NOT_FOUND in page and 'role="alert"' in page
    english = raising.get("/raise/forbidden", headers={"Accept-Language": "en"})
    assert english.status_code == 403
    assert "You do not have access to this." in english.get_data(as_text=True)


def test_fields_come_in_the_language_the_registration_asked_for(raising):
    response = raising.get("/api/v1/raise/invalid", headers={"Accept-Language": "en"})
    assert response.status_code == 422
    assert response.get_json()["error"] == {
        "code": "invalid", "message": "Some fields need attention.",
        "fields": {"members.0.birth_date": "Ngày sinh không thể ở tương lai."}}


def test_too_many_says_when_to_come_back(raising):
    response = raising.get("/api/v1/raise/wait", headers={"Accept-Language": "ja"})
    assert response.status_code == 429 and response.headers["Retry-After"] == "9"
    assert response.get_json()["error"] == {
        "code": "too_many_requests",
        "message": "試行回数が多すぎます。9 秒後にもう一度お試しください。"}


def test_a_fault_of_ours_is_a_500_that_shows_no_detail(raising, caplog):
    with caplog.at_level(logging.ERROR, logger="shelter"):
        response = raising.get("/api/v1/raise/bug", headers={"Accept-Language": "en"})
    assert response.status_code == 500
    assert response.get_json()["error"] == {"code": "internal", "message": (
        "Something went wrong. Nothing you entered was saved twice; please try again.")}
    assert "secret detail" not in response.get_data(as_text=True)
    assert "Refused" in caplog.text and "secret detail" not in caplog.text


# --- real refusals, one per kind ------------------------------------------------------------

@pytest.fixture
def api(app):
    client = app.test_client()
    store = app.extensions["shelter"].store
    tokens = {role: create_token(store, role) for role in ("kiosk", "volunteer", "manager")}

    def call(method: str, path: str, role: str, lang: str = "ja", **kwargs):
        return client.open(path, method=method, headers={
            "Authorization": f"Bearer {tokens[role]}", "Accept-Language": lang}, **kwargs)

    return call


def error_of(response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"]
    return error


def test_invalid_input_a_forged_card(api):
    member = api("POST", "/api/v1/households", "kiosk",
                 json=copy.deepcopy(VALID_HOUSEHOLD)).get_json()["members"][0]
    genuine = cards.parse_code(member["code"], {})  # unverified: read for its fields only
    impostor = cards.make_code(keys.load_private_key(keys.new_private_key_pem()),
                               genuine.person_id, genuine.shelter_id, genuine.node_id,
                               "偽物", date.today())
    refused = api("POST", "/api/v1/scans", "volunteer", json={"code": impostor,
                                                               "action": "check_in"})
    assert "正規のものではありません" in error_of(refused, 422, "forged")["message"]
    english = api("POST", "/api/v1/scans", "volunteer", "en",
                  json={"code": impostor, "action": "check_in"})
    assert "not genuine" in error_of(english, 422, "forged")["message"]


def test_invalid_input_that_cannot_be_read(api):
    refused = api("POST", "/api/v1/scans", "volunteer", data=b'{"code": NaN',
                  content_type="application/json")
    assert error_of(refused, 400, "malformed_json")["message"] == "JSONを読み取れませんでした。"


def test_invalid_input_a_registration_with_its_fields(api):
    body = copy.deepcopy(VALID_HOUSEHOLD)
    body["language"], body["members"][0]["birth_date"] = "vi", "2099-01-01"
    error = error_of(api("POST", "/api/v1/households", "kiosk", json=body), 422, "invalid")
    assert error["fields"]["members.0.birth_date"] == "Ngày sinh không thể ở tương lai."


def test_not_found_an_unknown_short_code(api):
    code = shortcode.display(shortcode.generate())
    refused = api("POST", "/api/v1/scans", "volunteer", json={"code": code,
                                                               "action": "check_in"})
    assert error_of(refused, 404, "unknown")["message"] == \
        "このコードの人はここに登録されていません。ほかの避難所のカードなら、QRコードを" \
        "読み取るか、ここで登録してください。"


def test_forbidden_and_conflict_a_hand_out_past_the_stock(api):
    assert api("POST", "/api/v1/stock-movements", "manager", json={
        "item_id": "water", "kind": "received", "quantity": 5}).status_code == 201
    over = {"item_id": "water", "kind": "distributed", "quantity": 10**5}
    error_of(api("POST", "/api/v1/stock-movements", "volunteer", json=over), 409,
             "insufficient_stock")
    error_of(api("POST", "/api/v1/stock-movements", "volunteer",
                 json={**over, "override": True, "reason": "x"}), 403, "override_not_allowed")


def test_not_found_on_a_page_a_delivery_for_no_request(app):
    """A page path: the error page, with the refusal's own words, in the reader's language."""
    from shelter.domain.accounts import add_user

    add_user(app.extensions["shelter"].store, "boss", "boss-pass-long-1", "manager")
    client = app.test_client()
    login = client.get("/staff/login").get_data(as_text=True)
    client.post("/staff/login", data={"username": "boss", "password": "boss-pass-long-1",
                                      "csrf": re.search(r'name="csrf" value="([^"]+)"',
                                                        login).group(1)})
    page = client.get("/supplies/requests").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    refused = client.post("/supplies/requests/01NOSUCHREQUEST0000000000/received?lang=ja",
                          data={"csrf": csrf, "got-water": "5"})
    assert refused.status_code == 404 and refused.mimetype == "text/html"
    assert "その要請はありません。" in refused.get_data(as_text=True)
