"""HQ's supply request queue: what the shelters ask for, the most urgent first, the sum per
item, and HQ's steps on each (acknowledge, dispatch), which go down to the shelter."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from shelter.core.errors import Conflict, InvalidInput
from shelter.hq import board
from shelter.hq import queue as hq_queue
from shelter.web import i18n, labels
from shelter.web.base import node, require
from shelter.web.hq import actor

bp = Blueprint("hq_requests", __name__, url_prefix="/hq/requests")


@bp.get("")
@require("operator")
def requests_page(problem: str | None = None, status: int = 200) -> tuple[str, int]:
    ctx = node()
    queue = hq_queue.open_requests(ctx.db, board.shelter_names(ctx))
    to_act, on_the_way = hq_queue.by_step(queue)
    return render_template(
        "hq/requests.html", to_act=to_act, on_the_way=on_the_way,
        demand=hq_queue.demand(queue),
        item_names=hq_queue.item_names(ctx.db, i18n.current()),
        units=hq_queue.item_units(ctx.db), labels=labels.hq(),
        problem=problem), status


def _request_or_404(request_id: str) -> dict[str, Any]:
    found = hq_queue.find(node().db, request_id)
    if found is None:
        abort(404)
    return found


@bp.post("/<request_id>/acknowledge")
@require("operator")
def acknowledge(request_id: str) -> Response | tuple[str, int]:
    found = _request_or_404(request_id)
    try:
        hq_queue.acknowledge(node().store, actor(), found, request.form)
    except Conflict as refused:
        return requests_page(refused.text(i18n.gettext), refused.status)
    return redirect(url_for("hq_requests.requests_page"))


@bp.post("/<request_id>/dispatch")
@require("operator")
def dispatch(request_id: str) -> Response | tuple[str, int]:
    found = _request_or_404(request_id)
    try:
        hq_queue.dispatch(node().store, actor(), found, request.form)
    except (Conflict, InvalidInput) as refused:
        return requests_page(refused.text(i18n.gettext), refused.status)
    return redirect(url_for("hq_requests.requests_page"))
