"""One scan at the door, on the kiosk: a family shows the household code they made at home
(docs/household-code.md); the kiosk tablet reads it with a handheld scanner (which types
it into the page and ends with Enter) or its camera, shows the family in their language
("4 people: ... is this right?"), and one tap registers them here and checks everyone in.
Then the kiosk's cards page (/register/cards) shows their cards to print.

Only a tablet signed in with a kiosk account (or staff above it) admits anyone: a code is
made by anyone, and the entrance tablet is the shelter's, not the family's phone. Anyone
else is told to show the code at the desk. The camera's frames are read on the node as the
desk's are (web/node/desk.py: ``codes_in``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from shelter.core.clock import today_jst
from shelter.core.errors import N_, InvalidInput, ShelterError
from shelter.domain import cards, household_code, presence, roster
from shelter.web import i18n, labels
from shelter.web.base import (
    Recheck,
    current_principal,
    error_response,
    node,
    sock,
    websocket_view,
)
from shelter.web.i18n import gettext
from shelter.web.scanning import preview_household, refusal, serve_camera

bp = Blueprint("arrival", __name__)
NOT_A_HOUSEHOLD_CODE = N_("This is not a household code. A card from a shelter is scanned "
                          "at the desk.")


def _kiosk() -> str | None:
    """The kiosk account (or staff) this tablet is signed in with; None for anyone else."""
    principal = current_principal()
    return principal.name if principal is not None and principal.can("kiosk") else None


@bp.before_request
def _kiosk_only() -> ResponseReturnValue | None:
    if _kiosk() is not None:
        return None
    if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        return error_response(401, "unauthorized", gettext("Please sign in."))
    return render_template("kiosk/code.html", allowed=False, preview=None, error=None,
                           problems=[], code="", labels=labels.desk()), 403


def _speak(registration: dict[str, Any]) -> None:
    """This page, from now on, in the family's language (the code says which)."""
    lang = registration.get("language")
    if lang in i18n.LANGUAGES:
        session["lang"] = g.lang = lang


@bp.route("/register/code", methods=["GET", "POST"])
def kiosk_code() -> ResponseReturnValue:
    """GET: the page that waits for a code. POST ``code``: the family it lists, with the
    button; POST ``code`` and ``confirm=household``: registers and checks them in, then
    their cards (``kiosk.cards``, as after the form)."""
    actor = _kiosk()
    assert actor is not None
    page: dict[str, Any] = {"allowed": True, "preview": None, "error": None, "problems": [],
                            "code": "", "labels": None}
    if request.method == "GET":
        page["labels"] = labels.desk()
        return render_template("kiosk/code.html", **page)
    code = request.form.get("code", "")
    status = 200
    try:
        if not household_code.looks_like(code):
            raise InvalidInput(NOT_A_HOUSEHOLD_CODE, code="not_a_household_code")
        if request.form.get("confirm") != "household":
            found = preview_household(code, actor)
            _speak(found["registration"])
            # Whoever holds a photo of the code must not learn here whether the family is
            # registered at this shelter, or in: the page is the same either way, and shows
            # only what the code itself says (never a record's names, needs, allergies or
            # medication: a member added here since, or a correction, stays unseen).
            said = found["registration"]["members"]
            found = {**found, "known": False, "members": [
                {**m, "known": False, "status": "not_arrived",
                 "display_name": cards.display_name(r["family_name"], r["given_name"]),
                 "age": roster.age_on(r["birth_date"], today_jst()), "needs": r["needs"],
                 "allergies": r["allergies"], "medication": r.get("medication", "")}
                for m, r in zip(found["members"], said, strict=True)]}
            page.update(preview=found, code=code)
        else:
            ctx = node()
            done = presence.admit_household(ctx.store, ctx.identity, ctx.card_keys(), code,
                                            "check_in", "", "", actor=actor)
            # Only this tablet, only this household, until "Finish" (as after the form).
            session["own"] = done["household_id"]
            session["arrived"] = done["household_id"]
            session["kiosk"] = True
            return redirect(url_for("kiosk.cards"), code=303)
    except ShelterError as refused:
        page["error"], page["problems"], status = refusal(refused)
    page["labels"] = labels.desk()  # in the family's language, once it is known
    return render_template("kiosk/code.html", **page), status


@sock.route("/register/code/camera", bp=bp)
@websocket_view
def kiosk_camera(ws: Any) -> None:
    """The kiosk's camera: frames in, the QR codes in them out (as the desk's camera)."""
    allowed = Recheck("kiosk")

    class Checked:
        """The socket, closed when the kiosk account is signed out or disabled."""

        connected = property(lambda self: ws.connected and allowed.still_allowed())
        receive, send = ws.receive, ws.send

    serve_camera(Checked())
