"""Self-registration: the kiosk tablet at the entrance and evacuees' own phones.

Plain HTML forms that work without JavaScript (a phone with scripts blocked, a slow link).
The person sees only the household they just registered, and in kiosk mode the tablet
forgets even that when they finish or walk away.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from shelter.domain import households
from shelter.domain.schemas import households as registration
from shelter.web.base import node
from shelter.web.i18n import current, translate_errors

bp = Blueprint("kiosk", __name__)
MEMBER_FIELDS = ("family_name", "given_name", "family_name_kana", "given_name_kana",
                 "birth_date", "sex", "allergies")
HOUSEHOLD_FIELDS = ("address", "postal_code", "phone", "whereabouts", "consent")


def _form_to_data(form: Any, count: int) -> dict[str, Any]:
    data: dict[str, Any] = {f: form.get(f, "") for f in HOUSEHOLD_FIELDS}
    data["whereabouts"] = data["whereabouts"] or None
    data["consent"] = data["consent"] or None
    data["members"] = []
    for i in range(count):
        member = {f: form.get(f"m{i}-{f}", "") for f in MEMBER_FIELDS}
        member["sex"] = member["sex"] or "unanswered"
        member["needs"] = form.getlist(f"m{i}-needs")
        y, m, d = (form.get(f"m{i}-birth_{part}", "").strip() for part in ("year", "month", "day"))
        member["birth_date"] = (f"{y.zfill(4)}-{m.zfill(2)}-{d.zfill(2)}"
                                if y or m or d else "")
        member["birth_parts"] = {"year": y, "month": m, "day": d}
        data["members"].append(member)
    return data


def _member_count(form: Any) -> int:
    try:
        return max(1, min(registration.MAX_MEMBERS, int(form.get("count", "1"))))
    except ValueError:
        return 1


@bp.get("/")
def home() -> ResponseReturnValue:
    return redirect(url_for("kiosk.register"))


@bp.get("/kiosk")
def kiosk_mode() -> ResponseReturnValue:
    """Put this tablet in kiosk mode: every household starts on an empty form."""
    lang = session.get("lang")
    session.clear()
    session["kiosk"] = True
    if lang:
        session["lang"] = lang
    return redirect(url_for("kiosk.register"))


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    if request.method == "GET":
        return _render_form(_form_to_data(MultiDict(), 1), {}, 1)
    form = request.form
    count = _member_count(form)
    action = form.get("action", "submit")
    if action.startswith("lang:"):
        # Switching language keeps what was typed.
        lang = action[5:]
        from flask import g

        from shelter.web.i18n import LANGUAGES
        if lang in LANGUAGES:
            session["lang"] = g.lang = lang
        return _render_form(_form_to_data(form, count), {}, count)
    if action == "add" and count < registration.MAX_MEMBERS:
        return _render_form(_form_to_data(form, count + 1), {}, count + 1, focus=count)
    if action == "remove" and count > 1:
        return _render_form(_form_to_data(form, count - 1), {}, count - 1)
    data = _form_to_data(form, count)
    data["language"] = current()
    try:
        result = households.register_household(node().store, node().identity, data)
    except households.ValidationError as invalid:
        return _render_form(data, translate_errors(invalid.errors, current()), count), 400
    # Only this browser, only this household, only until it is finished.
    session["own"] = result["household_id"]
    return redirect(url_for("kiosk.cards"), code=303)


def _render_form(data: dict[str, Any], errors: dict[str, str], count: int,
                 focus: int | None = None) -> str:
    return render_template("kiosk/register.html", data=data, errors=errors, count=count,
                           needs=registration.NEEDS, sexes=registration.SEXES,
                           whereabouts=registration.WHEREABOUTS,
                           consents=registration.CONSENTS,
                           focus=focus, kiosk=session.get("kiosk", False))


@bp.get("/register/cards")
def cards() -> ResponseReturnValue:
    household_id = session.get("own")
    household = households.get_household(node().db, household_id) if household_id else None
    if household is None:
        return redirect(url_for("kiosk.register"))
    return render_template("kiosk/cards.html", household=household,
                           kiosk=session.get("kiosk", False))


@bp.post("/register/done")
def done() -> ResponseReturnValue:
    """Finish: forget the household so the next person sees an empty form."""
    session.pop("own", None)
    return redirect(url_for("kiosk.register"), code=303)
