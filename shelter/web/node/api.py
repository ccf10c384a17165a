"""The JSON API under /api/v1 (described in shelter/web/openapi.py). Each body is read
through its shape (shelter.domain.schemas): one of the wrong shape is refused there, 422
with a message per field, before the domain looks at it. Views raise what they refuse (a
ShelterError, the domain's or their own); shelter/web/errors.py answers it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, session
from flask.typing import ResponseReturnValue

from shelter.core.errors import N_, Forbidden, InvalidInput, NotFound
from shelter.domain import (
    cards,
    household_code,
    households,
    presence,
    roster,
    supply_requests,
)
from shelter.domain.accounts import audit
from shelter.domain.schemas.desk import ScanIn
from shelter.domain.schemas.supplies import StockMovementIn, SupplyRequestIn
from shelter.domain.settings import get_settings
from shelter.domain.stock import move
from shelter.domain.stock import stock as stock_levels
from shelter.web.base import current_principal, node, require
from shelter.web.i18n import gettext
from shelter.web.inputs import MalformedInput
from shelter.web.openapi import spec

bp = Blueprint("api", __name__, url_prefix="/api/v1")
NO_SUCH_CARD = N_("No such card.")


def _json_body() -> Any:
    """The request's JSON value; not JSON ends the request with 415, unreadable with 400."""
    if not request.is_json:
        raise InvalidInput(N_("Send the data as JSON."), code="unsupported_media_type",
                           status=415)
    data = request.get_json(silent=True)
    if data is None:
        raise MalformedInput("malformed_json", "syntax")
    return data


def _json_object() -> dict[str, Any]:
    """The request's JSON object; anything else ends the request with 415 or 400."""
    data = _json_body()
    if not isinstance(data, dict):
        raise MalformedInput("malformed_json", "syntax")
    return data


@bp.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    return jsonify(spec())


@bp.post("/households")
@require("kiosk")
def register_household() -> ResponseReturnValue:
    """Fields that need attention: 422, each field's message in the registration's language."""
    data = _json_body()
    principal = current_principal()
    assert principal is not None
    with node().store.write():  # the registration and its audit entry: one commit
        result = households.register_household(node().store, node().identity, data)
        audit(node().store, principal.name, "register_household", result["household_id"])
    return jsonify(result), 201


def _may_see_household(household_id: str) -> bool:
    """Staff from volunteer up, or the browser that has just registered this household."""
    principal = current_principal()
    if principal is not None and principal.can("volunteer"):
        audit(node().store, principal.name, "view_cards", household_id)
        return True
    return session.get("own") == household_id


@bp.get("/persons/<person_id>/card.png")
def card_png(person_id: str) -> ResponseReturnValue:
    person = households.get_person(node().db, person_id)
    if person is None or not _may_see_household(person["household_id"]):
        raise NotFound(NO_SUCH_CARD)  # the same answer whether the person exists or not
    return Response(cards.png(person["card_code"]), mimetype="image/png")


@bp.get("/households/<household_id>/cards.pdf")
def cards_pdf(household_id: str) -> ResponseReturnValue:
    household = households.get_household(node().db, household_id)
    if household is None or not _may_see_household(household_id):
        raise NotFound(NO_SUCH_CARD)
    printed = [cards.PrintedCard(m["card_code"],
                                 cards.display_name(m["family_name"], m["given_name"]),
                                 m["short_code"].replace("-", ""))
               for m in household["members"]]
    pdf = cards.pdf_sheet(printed, gettext("Evacuee cards"),
                          get_settings(node().db)["shelter_name"], household["language"])
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="cards-{household_id}.pdf"'})


@bp.post("/scans")
@require("volunteer")
def scan() -> ResponseReturnValue:
    """A card or short code; a household code registers its household if it is new here
    and acts for each member, as ``household`` does for a card's household."""
    scanned = ScanIn.checked(_json_object())
    principal = current_principal()
    assert principal is not None
    ctx = node()
    if household_code.looks_like(scanned.code):
        result = presence.admit_household(
            ctx.store, ctx.identity, ctx.card_keys(), scanned.code, scanned.action,
            scanned.destination, scanned.destination_detail, actor=principal.name)
    elif scanned.household:
        result = presence.scan_household(
            ctx.store, ctx.shelter_id, ctx.card_keys(), scanned.code, scanned.action,
            scanned.destination, scanned.destination_detail, actor=principal.name)
    else:
        result = presence.scan(ctx.store, ctx.shelter_id, ctx.card_keys(), scanned.code,
                               scanned.action, scanned.destination,
                               scanned.destination_detail, actor=principal.name)
    return jsonify(result)


@bp.post("/household-codes")
def household_codes() -> ResponseReturnValue:
    """No login: anyone may make a household code (another system, a family at home).
    Checked as a registration is (422, each field's message in its language); nothing is
    stored, audited or logged."""
    return jsonify({"code": households.make_code(_json_body())})


@bp.get("/headcount")
@require("volunteer")
def headcount() -> ResponseReturnValue:
    ctx = node()
    return jsonify(roster.headcount(ctx.db, ctx.shelter_id, get_settings(ctx.db)))


@bp.get("/stock")
@require("volunteer")
def stock() -> ResponseReturnValue:
    ctx = node()
    return jsonify(stock_levels(ctx.db, ctx.shelter_id, get_settings(ctx.db)))


@bp.post("/stock-movements")
@require("volunteer")
def stock_movement() -> ResponseReturnValue:
    """Volunteers hand out; receiving, transfers, counts and discards are for managers."""
    data = _json_object()
    principal = current_principal()
    assert principal is not None
    if data.get("kind") != "distributed" and not principal.can("manager"):
        raise Forbidden()
    movement = StockMovementIn.read(data)  # as sent, once it has its shape
    ctx = node()
    result = move(ctx.store, ctx.shelter_id, movement, principal.name,
                  may_override=principal.can("manager"))
    return jsonify(result), 201


@bp.get("/supply-requests")
@require("volunteer")
def list_supply_requests() -> ResponseReturnValue:
    return jsonify({"requests": supply_requests.requests(node().db)})


@bp.post("/supply-requests")
@require("manager")
def supply_request() -> ResponseReturnValue:
    data = SupplyRequestIn.read(_json_object())
    principal = current_principal()
    assert principal is not None
    ctx = node()
    request_id = supply_requests.request_supplies(ctx.store, ctx.shelter_id, data,
                                                  principal.name)
    created = next(r for r in supply_requests.requests(ctx.db) if r["request_id"] == request_id)
    return jsonify(created), 201


@bp.get("/sync-status")
@require("volunteer")
def sync_status() -> ResponseReturnValue:
    """Whether this node reaches HQ, when it last did, and how many events wait to go;
    ``backup``: its automatic backups (null where it makes none); ``standby``: its standby
    at the shelter (null where it has none)."""
    from shelter.core import backups
    from sync.link_status import sync_status as status
    from sync.standby_link import status as standby_status
    waits = current_app.config.get("STANDBY_WAIT_SECONDS") is not None  # --sync-standby
    return jsonify({**(status(node()) or {"enabled": False}),
                    "backup": backups.status(node().db),
                    "standby": standby_status(node().data_dir, node().db, waits)})
