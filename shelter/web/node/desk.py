"""The desk: scan cards (camera, handheld scanner, typed short code), find people, see the
headcount. Screens update live over websockets.

Camera frames are decoded on the node with zxing-cpp: iPad Safari and Chromium on Linux
have no BarcodeDetector, and decoding on the node needs no third-party code in the page.
A tablet sends a small JPEG a few times a second over the shelter's LAN and gets back the
text of any QR code in it; the page then posts the scan as a handheld scanner or a typed
code does, to the API (``POST /api/v1/scans``), and has the node draw the answer with the
template of the page that works without JavaScript (``POST /desk/result``).
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from pydantic import TypeAdapter, ValidationError

from shelter.core.errors import ShelterError
from shelter.domain import household_code, presence, roster
from shelter.domain.accounts import audit
from shelter.domain.schemas.desk import HouseholdScanned, Scanned
from shelter.domain.schemas.fields import Error
from shelter.domain.settings import get_settings, hq_messages
from shelter.web import labels
from shelter.web.base import Recheck, current_principal, error_response, node, sock, websocket_view
from shelter.web.i18n import gettext
from shelter.web.scanning import preview_household, refusal, serve_camera

bp = Blueprint("desk", __name__, url_prefix="/desk")
MAX_FRAME_BYTES = 1_500_000
LIVE_KEEPALIVE_SECONDS = 20.0
MIN_PUSH_SECONDS = 0.25
MODES = ("auto", "check_in", "go_out", "return", "check_out")  # the desk form's choices


@bp.before_request
def _volunteers_only() -> ResponseReturnValue | None:
    principal = current_principal()
    if principal is None:
        if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
            return error_response(401, "unauthorized", gettext("Please sign in."))
        if request.endpoint in ("desk.result", "desk.household_preview"):  # desk.js
            return _refused(401, "unauthorized", gettext("Please sign in."))
        return redirect(url_for("staff.login", next=request.full_path.rstrip("?")))
    if not principal.can("volunteer"):
        abort(403)
    return None


@bp.context_processor
def _scanning() -> dict[str, bool]:
    """Every desk page takes scans (desk.js, desk-camera.js: camera, handheld scanner)."""
    return {"scanning": True}


def _actor() -> str:
    principal = current_principal()
    assert principal is not None
    return principal.name


def live_state() -> dict[str, Any]:
    """What every desk and headcount screen shows live: the headcount, the latest changes
    here, the link to HQ and the automatic backups (None where there are none)."""
    from shelter.core import backups
    from sync.link_status import sync_status
    from sync.standby_link import status as standby_status
    ctx = node()
    waits = current_app.config.get("STANDBY_WAIT_SECONDS") is not None  # --sync-standby
    return {"headcount": roster.headcount(ctx.db, ctx.shelter_id, get_settings(ctx.db)),
            "recent": roster.recent_changes(ctx.db, ctx.shelter_id),
            "sync": sync_status(ctx), "backup": backups.status(ctx.db),
            "standby": standby_status(ctx.data_dir, ctx.db, waits)}


_shared_lock = threading.Lock()
_shared: dict[str, Any] = {"version": None, "state": None}


def shared_live_state(version: int) -> dict[str, Any]:
    """One computation per change for all the screens this process serves (the headcount
    of a shelter of thousands takes tens of milliseconds)."""
    key = (str(node().db_path), version)
    with _shared_lock:
        if _shared["version"] != key:
            _shared.update(version=key, state=live_state())
        state: dict[str, Any] = _shared["state"]
        return state


@bp.get("")
def scan_page() -> ResponseReturnValue:
    return render_template("desk/scan.html", result=None, error=None, state=live_state(),
                           labels=labels.desk(), mode="auto")


@bp.post("/scan")
def scan_form() -> ResponseReturnValue:
    """The same scan without JavaScript: a plain form post, answered with a page. A
    household code first shows the family with a button that confirms (``confirm``); a
    card with ``household`` acts on its whole household."""
    ctx = node()
    form = request.form
    code = form.get("code", "")
    action = form.get("action", "auto")
    confirmed = form.get("confirm") == "household"
    whole = form.get("household") in ("1", "true", "on")
    page: dict[str, Any] = {"result": None, "error": None, "state": None,
                            "labels": labels.desk(), "code": code, "preview": None,
                            "problems": [], "mode": action if action in MODES else "auto"}
    status = 200
    try:
        if household_code.looks_like(code) and not confirmed:
            page["preview"] = preview_household(code, _actor())
        elif household_code.looks_like(code):
            page["result"] = presence.admit_household(
                ctx.store, ctx.identity, ctx.card_keys(), code, action,
                form.get("destination", ""), form.get("destination_detail", ""),
                actor=_actor())
        else:
            page["result"] = (presence.scan_household if whole else presence.scan)(
                ctx.store, ctx.shelter_id, ctx.card_keys(), code, action,
                form.get("destination", ""), form.get("destination_detail", ""),
                actor=_actor())
    except ShelterError as refused:
        page["error"], page["problems"], status = refusal(refused)
        page["error_code"] = refused.code  # "unknown": offer to register them here
    result = page["result"]
    if result is not None and (confirmed or whole or result.get("action") == "check_out"):
        # After a check-out, or a whole household at once, the next card is read as
        # "check in or out" again: no one is checked out by a mode left selected.
        page["mode"] = "auto"
    back = form.get("back", "")
    if back and result is not None and result.get("household_id") == back:
        return redirect(url_for("staff.household", household_id=back), code=303)
    page["state"] = live_state()
    return render_template("desk/scan.html", **page), status


@bp.post("/household-preview")
def household_preview() -> ResponseReturnValue:
    """desk.js's first step for a household code: the panel listing the family, with the
    button that admits them (which desk.js sends to ``POST /api/v1/scans``). Reads only."""
    code = request.form.get("code", "")
    if not household_code.looks_like(code):
        return _refused(400, "not_a_household_code",
                        gettext("This is not a household code."))
    try:
        found = preview_household(code, _actor())
    except ShelterError as refused:
        message, problems, status = refusal(refused)
        return Response(panel(error=message, problems=problems), status=status,
                        mimetype="text/html")
    return Response(panel(code=code, preview=found), mimetype="text/html")


def panel(**shown: Any) -> str:
    """The result panel alone (``<section id="result">``), as the desk page draws it."""
    return render_template("desk/_panel.html", **{"result": None, "error": None,
                                                  "error_code": "", "labels": labels.desk(),
                                                  **shown})


# A scan's answer is a few hundred bytes; a household of thirty, a few thousand.
MAX_ANSWER_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 1000
# What the panel reads of a scanned person: an answer without one of them is not a scan's.
PANEL_READS = ("display_name", "age", "presence", "flags", "provisional",
               "registered_shelter", "card_verified", "household", "household_id",
               "outcome", "action")
HOUSEHOLD_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")
_scanned: TypeAdapter[Scanned] = TypeAdapter(Scanned)
_household: TypeAdapter[HouseholdScanned] = TypeAdapter(HouseholdScanned)
MAX_ANSWER_MEMBERS = 30
SHORT_CODE = re.compile(r"[0-9A-Z]{4}-[0-9A-Z]{4}")  # as answers show it (shortcode.display)
_refusal: TypeAdapter[Error] = TypeAdapter(Error)


class NotAnAnswer(ValueError):
    """What was sent is not an answer of ``POST /api/v1/scans``."""


def read_answer(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """A scan's answer (the JSON ``POST /api/v1/scans`` answered: a person, a household or
    a refusal) as the panel takes it: ``(result, None)`` or ``(None, message)``. Raises
    NotAnAnswer for
    anything else: a field the answer has not, one the panel reads missing, a value of
    another type or outside its choices, or a flag or destination the desk has no word for."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise NotAnAnswer from None
    if not isinstance(data, dict):
        raise NotAnAnswer
    refused = "error" in data
    whole = not refused and "members" in data  # a household code's, or a whole household's
    shape = _refusal if refused else _household if whole else _scanned
    try:
        checked: Any = shape.validate_python(data, strict=True)
    except ValidationError:
        raise NotAnAnswer from None
    if checked != data:  # a field the shape has not (the shape's check drops them)
        raise NotAnAnswer
    if refused:
        message = data["error"]["message"]
        if not message.strip() or len(message) > MAX_MESSAGE_CHARS:
            raise NotAnAnswer
        return None, message
    if whole:
        members = data["members"]
        if not HOUSEHOLD_ID.fullmatch(data["household_id"]) \
                or not 1 <= len(members) <= MAX_ANSWER_MEMBERS \
                or any(m["presence"]["destination"] not in ("", *presence.DESTINATIONS)
                       or not SHORT_CODE.fullmatch(m["short_code"]) for m in members):
            raise NotAnAnswer
        return data, None
    if any(key not in data for key in PANEL_READS) \
            or not set(data["flags"]) <= set(roster.DESK_FLAGS) \
            or data["presence"]["destination"] not in ("", *presence.DESTINATIONS) \
            or not HOUSEHOLD_ID.fullmatch(data["household_id"] or "-"):
        raise NotAnAnswer
    return data, None


def _refused(status: int, code: str, message: str) -> ResponseReturnValue:
    return jsonify({"error": {"code": code, "message": message}}), status


@bp.post("/result")
def result() -> ResponseReturnValue:
    """The result panel for desk.js, drawn from what ``POST /api/v1/scans`` answered it
    (the form field ``answer``, that JSON as it came) with the template of the page that
    works without JavaScript. It only draws: it reads nothing stored and changes nothing,
    so it shows no one but whom the answer names, and needs no audit entry."""
    text = request.form.get("answer", "")
    if (request.content_length or 0) > MAX_ANSWER_BYTES + 1024 \
            or len(text.encode()) > MAX_ANSWER_BYTES:
        return _refused(413, "too_large", gettext("What was sent is too large."))
    try:
        scanned, error = read_answer(text)
    except NotAnAnswer:
        return _refused(400, "not_a_scan", gettext("This is not the answer to a scan."))
    code = json.loads(text)["error"]["code"] if error is not None else ""
    return Response(panel(result=scanned, error=error, error_code=code),
                    mimetype="text/html")


@bp.get("/find")
def find() -> ResponseReturnValue:
    query = request.args.get("q", "").strip()[:60]
    found = roster.find(node().db, query) if query else []
    if query:
        audit(node().store, _actor(), "find_person", "-", f"q={query} results={len(found)}")
    for person in found:
        person["status"] = roster.status_here(person["status"], person["shelter_id"],
                                                 node().shelter_id)
    return render_template("desk/find.html", query=query, found=found, labels=labels.desk())


@bp.get("/headcount")
def headcount_page() -> ResponseReturnValue:
    return render_template("desk/headcount.html", state=live_state(), labels=labels.desk(),
                           from_hq=from_hq())


def from_hq() -> dict[str, Any]:
    """What HQ set for this shelter (status, contact) and its latest messages (by sync)."""
    db = node().db
    settings = get_settings(db)
    return {"status": settings.get("status", "open"), "contact": settings.get("contact", ""),
            "messages": hq_messages(db, node().shelter_id)}


@sock.route("/live", bp=bp)
@websocket_view
def live(ws: Any) -> None:
    """Pushes the headcount and the recent list whenever the data changes."""
    watcher = node().watcher
    seen, sent = -1, None
    allowed = Recheck("volunteer")
    while ws.connected:
        previous, seen = seen, watcher.wait(seen, LIVE_KEEPALIVE_SECONDS)
        if not allowed.still_allowed():
            ws.close(reason=1008, message="signed out")
            return
        state = shared_live_state(seen)
        comparable = json.dumps({**state, "headcount": {**state["headcount"], "as_of": None}},
                                sort_keys=True)
        if comparable != sent:
            ws.send(json.dumps(state, ensure_ascii=False))
            sent = comparable
            # At most a few pushes a second, however busy the desks: later changes are
            # gathered into the next one.
            time.sleep(MIN_PUSH_SECONDS)
        elif seen == previous:  # nothing changed for a while
            ws.send('{"keepalive": true}')  # finds a tablet that has gone, keeps Wi-Fi up


@sock.route("/camera", bp=bp)
@websocket_view
def camera(ws: Any) -> None:
    """Each binary message is one JPEG (or PNG) frame; each answer lists the QR codes in it
    (``serve_camera``)."""
    serve_camera(ws)
