"""The pages of a standby (`shelter standby`): whom it follows and how far behind it is, as
a page and as JSON; every other address says that this machine is a standby and takes no
scans (503). /trust is served beside them (shelter/app.py), with the node's own CA, which
the standby serves with: a tablet that trusts the node trusts it too."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template
from flask.typing import ResponseReturnValue

from shelter.web.base import error_response, is_api, node
from shelter.web.i18n import gettext
from sync.standby_dir import follow_status

bp = Blueprint("standby_page", __name__)
REFRESH_SECONDS = 5


def _page(status: int) -> ResponseReturnValue:
    state = follow_status(node().db)
    return render_template("standby/status.html", s=state), status, {
        "Refresh": str(REFRESH_SECONDS), "Cache-Control": "no-store"}


@bp.get("/standby")
def status_page() -> ResponseReturnValue:
    return _page(200)


@bp.get("/standby/status.json")
def status_json() -> ResponseReturnValue:
    return jsonify(follow_status(node().db)), 200, {"Cache-Control": "no-store"}


@bp.route("/", defaults={"path": ""}, methods=["GET", "POST"])
@bp.route("/<path:path>", methods=["GET", "POST"])
def elsewhere(path: str) -> ResponseReturnValue:
    """Any other address: this is a standby, not the node (503: not here, not now)."""
    if is_api():
        return error_response(503, "standby", gettext(
            "This machine is the shelter node's standby: it takes no scans or "
            "registrations. Use the node."))
    return _page(503)
