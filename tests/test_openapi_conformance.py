"""Schemathesis generates requests from both OpenAPI documents and checks the app's answers
against them: no 5xx, documented status codes and content types, responses that match their
schemas, schema-invalid requests refused, and schema-valid ones accepted (a 4xx for those
only where the shelter's state says no: 401, 403, 404, 409). In process (WSGI) on a real
SQLite file, with a manager's token on the node and an operator's at HQ.

The documents are made from the request shapes (shelter.domain.schemas), so what they call
valid is what the checks accept. What a body's shape cannot say is the shelter's books:
which card a code names, which items and lots exist, whether a count differs from the books
(and so needs a reason). Before a schema-valid case is sent, ``with_the_books`` puts this
shelter's real card, items and a reason where the books ask for them; schema-invalid cases
go as drawn.

The schemas are loaded when this module is imported (schemathesis' lazy fixture loader does
not work with pytest 9.2), so the apps live in temporary directories removed at exit."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings

from shelter.app import create_app
from shelter.domain.accounts import create_token
from shelter.domain.catalog import items
from shelter.domain.household_code import HouseholdCodeError
from shelter.domain.households import make_code, register_household

from .conftest import VALID_HOUSEHOLD

_data = tempfile.mkdtemp(prefix="shelter-schema-")
atexit.register(shutil.rmtree, _data, ignore_errors=True)
app = create_app(f"{_data}/node", test_config={"SHELTER_ID": "E2710000005555"})
node = app.extensions["shelter"]
TOKEN = create_token(node.store, "manager")
HOUSEHOLD = register_household(node.store, node.identity, VALID_HOUSEHOLD)
CARD = HOUSEHOLD["members"][0]["code"]
ITEMS = [item["item_id"] for item in items(node.db)]
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)

hq_app = create_app(f"{_data}/hq", role="hq")
HQ_TOKEN = create_token(hq_app.extensions["shelter"].store, "operator")
hq_schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", hq_app).exclude(
    path="/sync")  # the websocket: a GET without its upgrade is no question for it


def _blank(value: Any) -> bool:
    return not (isinstance(value, str) and value.strip())


def fits_one_qr(body: dict[str, Any]) -> bool:
    try:
        make_code(body)
    except HouseholdCodeError:  # too_large
        return False
    return True


def with_the_books(case: Any) -> None:
    """A schema-valid body, given what exists in this shelter where the books decide."""
    if case.meta is None or not case.meta.generation.mode.is_positive \
            or not isinstance(case.body, dict):
        return
    body = case.body
    if case.path == "/api/v1/scans":
        body["code"] = CARD
    elif case.path == "/api/v1/household-codes" and not fits_one_qr(body):
        body.update(VALID_HOUSEHOLD, seqs=None)  # how much one QR code holds: its books
    elif case.path == "/api/v1/supply-requests":  # real items, each once
        body["lines"] = [{**line, "item_id": item}
                         for line, item in zip(body["lines"], ITEMS, strict=False)]
    elif case.path == "/api/v1/stock-movements":
        body["item_id"] = ITEMS[len(repr(body)) % len(ITEMS)]
        if body.get("code"):
            body["code"] = CARD
        if body.get("household_id"):
            body["household_id"] = HOUSEHOLD["household_id"]
        if body["kind"] in ("distributed", "transferred", "discarded"):
            body["lot"] = ""  # a lot names stock that exists, or none
        if (body["kind"] == "counted" or body.get("override")) and _blank(body.get("reason")):
            body["reason"] = "stocktake"  # a count that differs, or more than is on hand


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_node_answers_as_its_document_says(case):
    with_the_books(case)
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})


@hq_schema.parametrize()
@settings(max_examples=10, deadline=None, suppress_health_check=list(HealthCheck))
def test_hq_answers_as_its_document_says(case):
    with_the_books(case)
    case.call_and_validate(headers={"Authorization": f"Bearer {HQ_TOKEN}"})


def test_both_documents_are_valid_openapi_and_list_every_api_route():
    for each in (app, hq_app):
        document = each.test_client().get("/api/v1/openapi.json").get_json()
        schemathesis.openapi.from_dict(document).validate()  # the OpenAPI 3.1 meta-schema
        for rule in each.url_map.iter_rules():
            if rule.rule.startswith("/api/v1/") or rule.rule == "/sync":
                path = rule.rule.replace("<", "{").replace(">", "}")
                methods = {m.lower() for m in rule.methods - {"HEAD", "OPTIONS"}}
                assert methods <= set(document["paths"].get(path, {})), (path, methods)
