"""Self-registration: the kiosk tablet at the entrance and evacuees' own phones.

Plain HTML forms that work without JavaScript (a phone with scripts blocked, a slow link).
The person sees only the household they just registered, and in kiosk mode the tablet
forgets even that when they finish or walk away, and goes back to its own language.

Typed as a Japanese keyboard types it: full-width digits in every number, a birth year as
昭和/平成/令和 too, the address filled from the postal code (Japan Post's data, offline:
shelter/domain/postal.py), and what a household shares (the family name and its kana)
typed once.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from flask import (
    Blueprint,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from shelter.core.errors import N_
from shelter.domain import eras, households, postal, signin
from shelter.domain.schemas import households as registration
from shelter.domain.text import ascii_digits
from shelter.web.base import current_principal, node
from shelter.web.i18n import DEFAULT, LANGUAGES, current, gettext, translate_errors

bp = Blueprint("kiosk", __name__)
MEMBER_FIELDS = ("family_name", "given_name", "family_name_kana", "given_name_kana",
                 "birth_date", "sex", "allergies", "medication")
HOUSEHOLD_FIELDS = ("address", "postal_code", "phone", "pets", "whereabouts", "consent")
# What a household shares: a member added starts with the first one's.
SHARED_FIELDS = ("family_name", "family_name_kana")

# Where each field's error takes the reader: the id of what to fill in.
FIELD_LABELS = {
    "family_name": N_("Family name"), "given_name": N_("Given name"),
    "family_name_kana": N_("Family name in kana (furigana)"),
    "given_name_kana": N_("Given name in kana (furigana)"),
    "birth_date": N_("Date of birth"), "sex": N_("Sex"),
    "needs": N_("Does this person need any help? (choose all that apply)"),
    "allergies": N_("Allergies: to what?"), "medication": N_("Medicines taken regularly"),
    "address": N_("Home address"), "postal_code": N_("Postal code"), "phone": N_("Phone"),
    "pets": N_("Pets with you (kind and how many)"),
    "whereabouts": N_("Where will you stay?"),
    "consent": N_("If someone asks whether you are safe, may we tell them?"),
}


def _birth_year(era: str, typed: str) -> tuple[str, str | None]:
    """The AD year for the era and year typed, and why it is none (in the reader's words)."""
    year, outside = eras.western_year(era, typed)
    if outside is None:
        return year, None
    return year, gettext(eras.OUT_OF_ERA, era=gettext(eras.ERA_NAMES[str(outside["era"])]),
                         last=outside["last"])


def _form_to_data(form: Any, count: int) -> tuple[dict[str, Any], dict[str, str]]:
    """The registration the form says, and the birth years that fit no era (field: why)."""
    data: dict[str, Any] = {f: form.get(f, "") for f in HOUSEHOLD_FIELDS}
    data["whereabouts"] = data["whereabouts"] or None
    data["consent"] = data["consent"] or None
    data["postal_code"] = ascii_digits(data["postal_code"]).replace("〒", "").strip()
    data["phone"] = unicodedata.normalize("NFKC", ascii_digits(data["phone"])).strip()
    data["members"] = []
    era_errors: dict[str, str] = {}
    for i in range(count):
        member = {f: form.get(f"m{i}-{f}", "") for f in MEMBER_FIELDS}
        member["sex"] = member["sex"] or "unanswered"
        member["needs"] = form.getlist(f"m{i}-needs")
        era = form.get(f"m{i}-birth_era", "")
        era = era if era in eras.ERAS else ""
        typed = eras.typed_number(form.get(f"m{i}-birth_year", ""), "年")
        y, why = _birth_year(era, typed)
        m, d = (eras.typed_number(form.get(f"m{i}-birth_{part}", ""), unit)
                for part, unit in (("month", "月"), ("day", "日")))
        if why:
            era_errors[f"members.{i}.birth_date"] = why
            y = ""
        member["birth_date"] = (f"{y.zfill(4)}-{m.zfill(2)}-{d.zfill(2)}"
                                if y or m or d else "")
        # Shown again as typed (in ASCII digits), the era as chosen.
        member["birth_parts"] = {"era": era, "year": typed, "month": m, "day": d}
        data["members"].append(member)
    return data, era_errors


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
    """Put this tablet in kiosk mode: every household starts on an empty form, in the
    tablet's own language: the one it was in when kiosk mode began (``?lang=`` sets it
    anew). The form's idle reset comes back here and keeps it."""
    if request.args.get("lang") in LANGUAGES or not session.get("kiosk"):
        default = current()
    else:
        default = session.get("kiosk_lang", DEFAULT)
    # A kiosk account's sign-in stays (its tablet admits household codes); any other
    # account's ends here: an evacuee at the kiosk must not inherit a volunteer's desk.
    principal = current_principal()
    sid = session.get("sid")
    kept = sid if principal is not None and principal.role == "kiosk" else None
    if isinstance(sid, str) and kept is None:
        signin.end_session(node().store, sid)  # a copy of the cookie is worth nothing now
    session.clear()
    if kept:
        session["sid"] = kept
        session.permanent = True
    session["kiosk"] = True
    session["kiosk_lang"] = session["lang"] = default if default in LANGUAGES else DEFAULT
    return redirect(url_for("kiosk.register"))


@bp.route("/register", methods=["GET", "POST"])
def register() -> ResponseReturnValue:
    if request.method == "GET":
        empty = _form_to_data(MultiDict(), 1)[0]
        empty["whereabouts"] = "shelter"  # registering here: most are staying (a tap less)
        return _render_form(empty, {}, 1)
    form = request.form
    count = _member_count(form)
    action = form.get("action", "submit")
    data, era_errors = _form_to_data(form, count)
    filled = form.get("address_filled", "")
    if action == "start":
        # The desk's "register them here" (a card from another shelter): the form, with
        # the name the card gives filled in, to be checked; nothing is registered yet.
        data["whereabouts"] = data["whereabouts"] or "shelter"
        return _render_form(data, {}, count, focus="m0-family_name")
    if action.startswith("lang:"):
        # Switching language keeps what was typed.
        lang = action[5:]
        if lang in LANGUAGES:
            session["lang"] = g.lang = lang
        return _render_form(data, {}, count, filled=filled)
    if action == "add":
        # The one added starts with what the household shares (the first member's).
        more = min(count + 1, registration.MAX_MEMBERS)
        data, _ = _form_to_data(form, more)
        first = data["members"][0]
        if more > count:
            for field in SHARED_FIELDS:
                data["members"][count][field] = first[field]
            # 昭和 for one, most likely 昭和 for the next (a couple): the same calendar.
            data["members"][count]["birth_parts"]["era"] = first["birth_parts"]["era"]
        focus = "given_name" if first["family_name"] else "family_name"
        return _render_form(data, {}, more, filled=filled, focus=f"m{more - 1}-{focus}")
    if action == "remove":
        fewer = max(count - 1, 1)
        return _render_form(_form_to_data(form, fewer)[0], {}, fewer, filled=filled)
    if action == "postal":
        return _fill_address(data, count)
    data["language"] = current()
    try:
        result = households.register_household(node().store, node().identity, data)
    except households.ValidationError as invalid:
        errors = {**translate_errors(invalid.errors, current()), **era_errors}
        return _render_form(data, errors, count, filled=filled), 400
    # Only this browser, only this household, only until it is finished.
    session["own"] = result["household_id"]
    return redirect(url_for("kiosk.cards"), code=303)


def _fill_address(data: dict[str, Any], count: int) -> ResponseReturnValue:
    """The no-script postal-code button: the form again, its address filled in (what was
    typed after a filled address, a street number, is kept)."""
    found = postal.address(data["postal_code"])
    if found is None:
        return _render_form(data, {"postal_code": gettext(
            "This postal code is not in Japan Post's list. Check it, or type the address."
        )}, count), 400
    if not data["address"].startswith(found):
        data["address"] = found
    return _render_form(data, {}, count, focus="address", filled=found)


@bp.get("/register/postal")
def postal_address() -> ResponseReturnValue:
    """The address of a postal code, for the form's script: ``{"address": ...}``, or 404.
    Japan Post's data on this node: nothing leaves the shelter, nothing is logged."""
    found = postal.address(request.args.get("code", ""))
    if found is None:
        return jsonify({"error": {"code": "unknown_postal_code", "message": gettext(
            "This postal code is not in Japan Post's list. Check it, or type the address."
        )}}), 404
    return jsonify({"address": found})


def _error_links(errors: dict[str, str], count: int) -> list[tuple[str, str]]:
    """The summary's links, in the form's order: (the id to go to, what to say there)."""
    def said(label: str, message: str) -> str:
        return f"{label} {message}" if label.endswith(("?", "？")) else f"{label}: {message}"

    links = []
    for i in range(count):
        for field in (*MEMBER_FIELDS[:5], "sex", "needs", *MEMBER_FIELDS[6:]):
            message = errors.get(f"members.{i}.{field}")
            if message:
                target = f"m{i}-birth_year" if field == "birth_date" else f"m{i}-{field}"
                label = f"{gettext('Person %(n)s', n=i + 1)} · {gettext(FIELD_LABELS[field])}"
                links.append((target, said(label, message)))
    for field in HOUSEHOLD_FIELDS:
        if errors.get(field):
            links.append((field, said(gettext(FIELD_LABELS[field]), errors[field])))
    covered = {f"members.{i}.{f}" for i in range(count) for f in (*MEMBER_FIELDS, "needs")}
    for key, message in errors.items():  # anything else (no one registered): to the top
        if key not in covered and key not in HOUSEHOLD_FIELDS:
            links.append(("person-0", message))
    return links


def _code_url() -> str | None:
    """The kiosk's page for a household code, once it exists (the desk's blueprint)."""
    return url_for("arrival.kiosk_code") if "arrival.kiosk_code" in current_app.view_functions \
        else None


def _render_form(data: dict[str, Any], errors: dict[str, str], count: int,
                 focus: str | None = None, filled: str = "") -> str:
    # Who shares the first member's family name (and kana) follows it while that is so.
    first = data["members"][0]
    copied = {f"m{i}-{f}": first[f] for i, m in enumerate(data["members"][1:], 1)
              for f in SHARED_FIELDS if first[f] and m[f] == first[f]}
    return render_template("kiosk/register.html", data=data, errors=errors, count=count,
                           error_links=_error_links(errors, count),
                           needs=registration.NEEDS, sexes=registration.SEXES,
                           whereabouts=registration.WHEREABOUTS,
                           consents=registration.CONSENTS, eras=eras.ERAS,
                           era_names=eras.ERA_NAMES, era_kanji=eras.ERA_KANJI,
                           focus=focus, filled=filled if filled == data["address"] else "",
                           copied=copied, code_url=_code_url(),
                           kiosk=session.get("kiosk", False))


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
    """Finish: forget the household so the next person sees an empty form, in the kiosk's
    own language (not the one this household chose)."""
    session.pop("own", None)
    if session.get("kiosk"):
        session["lang"] = session.get("kiosk_lang", DEFAULT)
    return redirect(url_for("kiosk.register"), code=303)
