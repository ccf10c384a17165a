"""The JSON API under /api/v1 (described in shelter/web/node/openapi.py)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, jsonify, make_response, request, session

from shelter.domain import cards, households, presence, supplies
from shelter.domain.accounts import audit
from shelter.domain.settings import get_settings
from shelter.web.base import current_principal, error_response, node, require
from shelter.web.i18n import current, gettext, translate_errors
from shelter.web.openapi import spec

bp = Blueprint("api", __name__, url_prefix="/api/v1")


def _json_body() -> Any:
    if not request.is_json:
        return None
    return request.get_json(silent=True)


def _json_object() -> dict[str, Any]:
    """The request's JSON object; anything else ends the request with 415 or 400."""
    if not request.is_json:
        abort(make_response(error_response(415, "unsupported_media_type",
                                           gettext("Send the data as JSON."))))
    data = _json_body()
    if not isinstance(data, dict):
        abort(make_response(error_response(400, "malformed_json",
                                           gettext("The JSON could not be read."))))
    return data


@bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(spec())


@bp.post("/households")
@require("kiosk")
def register_household():  # type: ignore[no-untyped-def]
    if not request.is_json:
        return error_response(415, "unsupported_media_type", gettext("Send the data as JSON."))
    data = _json_body()
    if data is None:
        return error_response(400, "malformed_json", gettext("The JSON could not be read."))
    principal = current_principal()
    assert principal is not None
    try:
        with node().store.write():  # the registration and its audit entry: one commit
            result = households.register_household(node().store, node().identity, data)
            audit(node().store, principal.name, "register_household", result["household_id"])
    except households.ValidationError as invalid:
        lang = data.get("language") if isinstance(data, dict) else None
        lang = lang if lang in households.LANGUAGES else current()
        return error_response(422, "invalid", gettext("Some fields need attention."),
                              fields=translate_errors(invalid.errors, lang))
    return jsonify(result), 201


def _may_see_household(household_id: str) -> bool:
    """Staff from volunteer up, or the browser that has just registered this household."""
    principal = current_principal()
    if principal is not None and principal.can("volunteer"):
        audit(node().store, principal.name, "view_cards", household_id)
        return True
    return session.get("own") == household_id


@bp.get("/persons/<person_id>/card.png")
def card_png(person_id: str):  # type: ignore[no-untyped-def]
    person = households.get_person(node().db, person_id)
    if person is None or not _may_see_household(person["household_id"]):
        # The same answer whether the person exists or not.
        return error_response(404, "not_found", gettext("No such card."))
    return Response(cards.png(person["card_code"]), mimetype="image/png")


@bp.get("/households/<household_id>/cards.pdf")
def cards_pdf(household_id: str):  # type: ignore[no-untyped-def]
    household = households.get_household(node().db, household_id)
    if household is None or not _may_see_household(household_id):
        return error_response(404, "not_found", gettext("No such card."))
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
def scan():  # type: ignore[no-untyped-def]
    data = _json_object()
    principal = current_principal()
    assert principal is not None
    ctx = node()
    try:
        result = presence.scan(ctx.store, ctx.shelter_id, ctx.card_keys(), data.get("code"),
                               data.get("action"), data.get("destination"),
                               data.get("destination_detail", ""), actor=principal.name)
    except presence.ScanError as refused:
        return error_response(refused.status, refused.code, gettext(refused.message))
    return jsonify(result)


@bp.get("/headcount")
@require("volunteer")
def headcount():  # type: ignore[no-untyped-def]
    ctx = node()
    return jsonify(presence.headcount(ctx.db, ctx.shelter_id, get_settings(ctx.db)))


def supply_error(refused: supplies.SupplyError):  # type: ignore[no-untyped-def]
    message = gettext(refused.message) % refused.params if refused.params \
        else gettext(refused.message)
    extra: dict[str, Any] = {"fields": {refused.field: message}} if refused.field else {}
    if refused.code == "collected_recently":
        extra["confirm_with"] = {"confirm_repeat": True}
    return error_response(refused.status, refused.code, message, **extra)


@bp.get("/stock")
@require("volunteer")
def stock():  # type: ignore[no-untyped-def]
    ctx = node()
    return jsonify(supplies.stock(ctx.db, ctx.shelter_id, get_settings(ctx.db)))


@bp.post("/stock-movements")
@require("volunteer")
def stock_movement():  # type: ignore[no-untyped-def]
    """Volunteers hand out; receiving, transfers, counts and discards are for managers."""
    data = _json_object()
    principal = current_principal()
    assert principal is not None
    if data.get("kind") != "distributed" and not principal.can("manager"):
        return error_response(403, "forbidden", gettext("You do not have access to this."))
    ctx = node()
    try:
        result = supplies.move(ctx.store, ctx.shelter_id, data, principal.name,
                               may_override=principal.can("manager"))
    except supplies.SupplyError as refused:
        return supply_error(refused)
    return jsonify(result), 201


@bp.get("/supply-requests")
@require("volunteer")
def list_supply_requests():  # type: ignore[no-untyped-def]
    return jsonify({"requests": supplies.requests(node().db)})


@bp.post("/supply-requests")
@require("manager")
def supply_request():  # type: ignore[no-untyped-def]
    data = _json_object()
    principal = current_principal()
    assert principal is not None
    ctx = node()
    try:
        request_id = supplies.request_supplies(ctx.store, ctx.shelter_id, data, principal.name)
    except supplies.SupplyError as refused:
        return supply_error(refused)
    created = next(r for r in supplies.requests(ctx.db) if r["request_id"] == request_id)
    return jsonify(created), 201


@bp.get("/sync-status")
@require("volunteer")
def sync_status():  # type: ignore[no-untyped-def]
    """Whether this node reaches HQ, when it last did, and how many events wait to go."""
    from sync.client import sync_status as status
    return jsonify(status(node()) or {"enabled": False})
