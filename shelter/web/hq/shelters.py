"""A shelter's page at HQ (its figures, charts, requests, nodes and refused events), and
what HQ staff do there: set its status, capacity and contact, send it a message, and (admins)
revoke a node's credential."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from shelter.core.errors import InvalidInput
from shelter.domain.accounts import audit
from shelter.domain.settings import STATUSES
from shelter.hq import board, configure, queue
from shelter.hq.shelters import registry_entry
from shelter.render import drawings
from shelter.web import i18n, labels
from shelter.web.base import node, require
from shelter.web.hq import actor, refusal_text
from sync import enrollment
from sync.apply import refused_events

bp = Blueprint("hq_shelters", __name__, url_prefix="/hq/shelters")


def _shelter(shelter_id: str) -> dict[str, Any]:
    row = board.shelter_row(node(), shelter_id)
    if row is None:
        abort(404)
    return row


@bp.get("/<shelter_id>")
@require("operator")
def shelter_page(shelter_id: str, problem: str | None = None,
                 status: int = 200) -> tuple[str, int]:
    db = node().db
    row = _shelter(shelter_id)
    return render_template(
        "hq/shelter.html", s=row, registry=registry_entry(db, shelter_id),
        nodes=enrollment.nodes_of(db, shelter_id), labels=labels.hq(),
        requests=queue.of_shelter(db, shelter_id),
        item_names=queue.item_names(db, i18n.current()), units=queue.item_units(db),
        statuses=STATUSES,
        charts=drawings.charts(db, shelter_id, i18n.gettext), problem=problem,
        refused=refused_events(db, shelter_id), reason=refusal_text), status


def _done(shelter_id: str) -> Response:
    return redirect(url_for("hq_shelters.shelter_page", shelter_id=shelter_id))


@bp.post("/<shelter_id>/nodes/<node_id>/revoke")
@require("admin")
def revoke_node(shelter_id: str, node_id: str) -> Response | tuple[str, int]:
    """A stolen or replaced laptop: HQ refuses its credential from now on (all its
    epochs); the shelter's history stays, and a new code enrolls its replacement."""
    _shelter(shelter_id)
    store = node().store
    if not any(n["node_id"] == node_id for n in enrollment.nodes_of(store.db, shelter_id)):
        abort(404)
    if request.form.get("confirm") != "yes":
        return shelter_page(shelter_id, i18n.gettext(
            "Tick the box to confirm that this node should stop syncing."), 422)
    revoked = enrollment.revoke_node(store, node_id)
    audit(store, actor(), "revoke_node", node_id, " ".join(revoked))
    return _done(shelter_id)


@bp.post("/<shelter_id>")
@require("operator")
def configure_shelter(shelter_id: str) -> Response | tuple[str, int]:
    _shelter(shelter_id)
    try:
        configure.configure(node().store, actor(), shelter_id, request.form)
    except InvalidInput as refused:
        return shelter_page(shelter_id, refused.text(i18n.gettext), refused.status)
    return _done(shelter_id)


@bp.post("/<shelter_id>/message")
@require("operator")
def message(shelter_id: str) -> Response | tuple[str, int]:
    _shelter(shelter_id)
    try:
        configure.message(node().store, actor(), shelter_id, request.form)
    except InvalidInput as refused:
        return shelter_page(shelter_id, refused.text(i18n.gettext), refused.status)
    return _done(shelter_id)
