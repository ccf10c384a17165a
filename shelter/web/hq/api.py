"""HQ's JSON API: GET /api/v1/shelters and /api/v1/summary answer what HQ knows, POST
/api/v1/household-codes makes a household code for anyone (as every node does), and HQ's
OpenAPI document describes them. Shelters' events arrive over the /sync websocket
(sync.py); the pages staff use are the other modules here, the public page and feed
public.py."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask.typing import ResponseReturnValue

from shelter.core.errors import N_, InvalidInput
from shelter.domain import households
from shelter.hq import stats
from shelter.web.base import node, require
from shelter.web.inputs import MalformedInput
from shelter.web.openapi import hq_spec
from sync import projector

api = Blueprint("hq_api", __name__, url_prefix="/api/v1")


@api.get("/openapi.json")
def openapi() -> Response:
    return jsonify(hq_spec())


def _json(name: str, make: Any) -> Response:
    """An answer encoded once per overview, however many ask for it."""
    body = stats.cached(node(), name, lambda rows: json.dumps(
        make(rows), ensure_ascii=False, separators=(",", ":")).encode())
    return Response(body, mimetype="application/json")


@api.get("/shelters")
@require("operator")
def shelters_api() -> Response:
    return _json("api:shelters", lambda rows: {"shelters": rows})


@api.get("/summary")
@require("operator")
def summary_api() -> Response:
    # The totals are made once per overview; how far they are projected, at every ask.
    return jsonify({**stats.cached(node(), "api:summary", stats.totals),
                    **projection_fields(node())})


def projection_fields(ctx: Any) -> dict[str, Any]:
    """How far HQ's figures follow its log (sync/projector.py): ``projected_through``, when
    the newest event they include reached HQ, and the lag in events and seconds."""
    now = projector.status(ctx)
    return {"projected_through": now["projected_through"],
            "projection_lag_events": now["lag_events"],
            "projection_lag_seconds": now["lag_seconds"]}


@api.post("/household-codes")
def household_codes() -> ResponseReturnValue:
    """No login: a municipality's system, or a family at home, makes a household code.
    Checked as a registration is (422, each field's message in its language); nothing is
    stored, audited or logged."""
    if not request.is_json:
        raise InvalidInput(N_("Send the data as JSON."), code="unsupported_media_type",
                           status=415)
    data = request.get_json(silent=True)
    if data is None:
        raise MalformedInput("malformed_json", "syntax")
    return jsonify({"code": households.make_code(data)})
