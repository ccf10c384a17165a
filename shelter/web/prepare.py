"""/prepare: where a family makes its household code at home (no login, on HQ's public site
and on every node), to show at the shelter's door with one scan.

Nothing typed here is kept: no database row, no event, no audit, no session entry, no log
line with what was sent. The page posts the form, the server draws the code
(``household_code.make``, ``qr_png``) into the answer and forgets it. What keeps the code is
the family's phone: the saved image, a print, the latest code in the browser's storage
(static/prepare.js) and, where the browser runs service workers (https, localhost), the
page itself (static/prepare-sw.js), so that it opens with no network and shows the code.
Plain forms that work without JavaScript, in the five languages.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template, request, send_file, session
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from shelter.core.errors import N_
from shelter.core.ids import ULID_RE
from shelter.domain import eras, household_code, households
from shelter.domain.schemas import households as registration
from shelter.domain.supplies import JST
from shelter.domain.text import ascii_digits
from shelter.web.i18n import LANGUAGES, current, gettext, translate_errors

bp = Blueprint("prepare", __name__)
MEMBER_TEXT = ("family_name", "given_name", "family_name_kana", "given_name_kana",
               "allergies", "medication")
HOUSEHOLD_TEXT = ("address", "postal_code", "phone", "pets")
# The id of the input each refused field is told at (the error summary links to it), and
# the words of its label.
MEMBER_LABELS = {
    "family_name": N_("Family name"), "given_name": N_("Given name"),
    "family_name_kana": N_("Family name in kana (furigana)"),
    "given_name_kana": N_("Given name in kana (furigana)"), "birth_date": N_("Date of birth"),
    "sex": N_("Sex"), "needs": N_("Does this person need any help? (choose all that apply)"),
    "allergies": N_("Allergies: to what?"), "medication": N_("Medicines taken every day"),
}
HOUSEHOLD_LABELS = {
    "address": N_("Home address"), "postal_code": N_("Postal code"), "phone": N_("Phone"),
    "pets": N_("Pets coming with you (kind and how many)"),
    "whereabouts": N_("Where will you stay?"),
    "consent": N_("If someone asks whether you are safe, may we tell them?"),
    "language": N_("Language for your household"),
}
TOO_LARGE = N_("This is too much for one code. Shorten the longest entries, or make a second "
                "code for some of the people.")
MAX_SEQ = 255  # a member's number in a code is one byte
NOT_THE_CODE = N_("This page could not read the code you are changing. Open your household "
                  "code again and choose “Change my details”.")


def _no_store(response: Response) -> Response:
    """What this blueprint answers holds what someone typed: no cache keeps it."""
    response.headers["Cache-Control"] = "no-store"
    return response


bp.after_request(_no_store)


def _digits(text: str) -> str:
    """Full-width digits (the Japanese keyboard's default) read as ASCII ones."""
    return ascii_digits(text, hyphens=False).strip()


def _form_to_data(form: Any, count: int) -> dict[str, Any]:
    data: dict[str, Any] = {f: form.get(f, "") for f in HOUSEHOLD_TEXT}
    for number in ("postal_code", "phone"):  # ５４０－０００８ is 540-0008
        data[number] = ascii_digits(data[number]).strip()
    data["whereabouts"] = form.get("whereabouts") or None
    data["consent"] = form.get("consent") or None
    data["language"] = form.get("language") or current()
    data["members"] = []
    for i in range(count):
        member: dict[str, Any] = {f: form.get(f"m{i}-{f}", "") for f in MEMBER_TEXT}
        member["sex"] = form.get(f"m{i}-sex") or "unanswered"
        member["needs"] = form.getlist(f"m{i}-needs")
        era = form.get(f"m{i}-birth_era", "")
        era = era if era in eras.ERAS else ""
        typed = eras.typed_number(form.get(f"m{i}-birth_year", ""), "年")
        y, outside = eras.western_year(era, typed)  # 昭和23 as 1948; the kiosk's rule
        m, d = (eras.typed_number(form.get(f"m{i}-birth_{part}", ""), unit)
                for part, unit in (("month", "月"), ("day", "日")))
        if outside is not None:
            y = "0"  # refused by the check of dates ("Check the year of birth.")
        member["birth_date"] = (f"{y.zfill(4)}-{m.zfill(2)}-{d.zfill(2)}"
                                if y or m or d else "")
        member["birth_parts"] = {"era": era, "year": typed, "month": m, "day": d}
        data["members"].append(member)
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _code_to_data(found: dict[str, Any]) -> dict[str, Any]:
    """A code's registration as the form shows it. Made by anyone: every value is checked
    for its type here, and the fields again by households.validate when it is sent."""
    data: dict[str, Any] = {f: _text(found.get(f)) for f in HOUSEHOLD_TEXT}
    for field, choices in (("whereabouts", registration.WHEREABOUTS),
                           ("consent", registration.CONSENTS),
                           ("language", registration.LANGUAGES)):
        data[field] = found.get(field) if found.get(field) in choices else None
    data["language"] = data["language"] or current()
    members = found.get("members")
    data["members"] = []
    for person in members[:registration.MAX_MEMBERS] if isinstance(members, list) else []:
        person = person if isinstance(person, dict) else {}
        member: dict[str, Any] = {f: _text(person.get(f)) for f in MEMBER_TEXT}
        member["sex"] = person.get("sex") if person.get("sex") in registration.SEXES \
            else "unanswered"
        needs = person.get("needs")
        member["needs"] = [n for n in registration.NEEDS
                           if isinstance(needs, list) and n in needs]
        member["birth_date"] = _text(person.get("birth_date"))
        born = member["birth_date"].split("-")
        y, m, d = born if len(born) == 3 else ("", "", "")
        member["birth_parts"] = {"year": y, "month": m.lstrip("0"), "day": d.lstrip("0")}
        data["members"].append(member)
    return data


def _member_count(form: Any) -> int:
    try:
        return max(1, min(registration.MAX_MEMBERS, int(_digits(form.get("count", "1")))))
    except ValueError:
        return 1


def _number(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) > MAX_SEQ:
        raise household_code.HouseholdCodeError("garbled")
    return int(text)


def _previous(form: Any, count: int) -> dict[str, Any]:
    """The household id, members' numbers and next number of the code being changed
    (hidden fields the form carries from ``household_code.read``): none for a first code.
    Raises HouseholdCodeError for what no code of ours could have given."""
    household_id = form.get("household_id", "")
    if not household_id:
        return {"household_id": None, "seqs": [], "next_seq": 0}
    if not ULID_RE.match(household_id):
        raise household_code.HouseholdCodeError("garbled")
    seqs: list[int] = []
    for i in range(count):
        seq = form.get(f"m{i}-seq", "")
        if not seq:
            break  # members added since the code was made get new numbers
        seqs.append(_number(seq))
    return {"household_id": household_id, "seqs": seqs,
            "next_seq": _number(form.get("next_seq", "0") or "0")}


def _error_links(errors: dict[str, str]) -> list[dict[str, str]]:
    """The error summary: each refused field's label and message, with the id of its
    input to link to."""
    links = []
    for key, message in errors.items():
        parts = key.split(".")
        target, label = "", ""
        if parts[0] == "members" and len(parts) == 3 and parts[1].isdigit():
            i, field = int(parts[1]), parts[2]
            target = {"birth_date": f"m{i}-birth_year", "sex": f"m{i}-sex-0",
                      "needs": f"m{i}-needs-0"}.get(field, f"m{i}-{field}")
            label = gettext("Person %(n)s", n=i + 1)
            if field in MEMBER_LABELS:
                label += ": " + gettext(MEMBER_LABELS[field])
        elif parts[0] == "members":
            target, label = "m0-family_name", gettext("Person %(n)s", n=1)
        elif key in HOUSEHOLD_LABELS:
            target = {"whereabouts": "whereabouts-0", "consent": "consent-0"}.get(key, key)
            label = gettext(HOUSEHOLD_LABELS[key])
        links.append({"target": target, "label": label, "message": message})
    return links


def _render_form(data: dict[str, Any], count: int, *, errors: dict[str, str] | None = None,
                 household_id: str | None = None, seqs: list[int] | tuple[int, ...] = (),
                 next_seq: int = 0, focus: int | None = None,
                 problem: str | None = None) -> str:
    errors = errors or {}
    return render_template(
        "prepare/form.html", data=data, count=count, errors=errors,
        error_links=_error_links(errors), problem=problem, household_id=household_id,
        seqs=list(seqs)[:count], next_seq=next_seq, focus=focus, needs=registration.NEEDS,
        sexes=registration.SEXES, whereabouts=registration.WHEREABOUTS,
        consents=registration.CONSENTS, household_languages=registration.LANGUAGES,
        eras=eras.ERAS, era_names=eras.ERA_NAMES, era_kanji=eras.ERA_KANJI)


def _empty() -> dict[str, Any]:
    data = _form_to_data(MultiDict(), 1)
    data["whereabouts"] = "shelter"  # made at home, most often to go to a shelter
    return data


@bp.get("/prepare")
def page() -> ResponseReturnValue:
    return _render_form(_empty(), 1)


@bp.post("/prepare")
def make() -> ResponseReturnValue:
    """The form's buttons (language, add or remove a person) and its sending: the code."""
    form = request.form
    count = _member_count(form)
    action = form.get("action", "submit")
    try:
        keep = _previous(form, count)
    except household_code.HouseholdCodeError:
        return _render_form(_empty(), 1, problem=gettext(NOT_THE_CODE)), 400
    if action.startswith("lang:"):
        lang = action[5:]
        data = _form_to_data(form, count)
        if lang in LANGUAGES:  # switching language keeps what was typed
            session["lang"] = g.lang = lang
            data["language"] = lang
        return _render_form(data, count, **keep)
    if action == "add" and count < registration.MAX_MEMBERS:
        data = _form_to_data(form, count + 1)
        first, added = data["members"][0], data["members"][count]
        # What a household shares is typed once: the added person starts with it.
        for field in ("family_name", "family_name_kana"):
            added[field] = first[field]
        added["birth_parts"]["era"] = first["birth_parts"]["era"]
        return _render_form(data, count + 1, focus=count, **keep)
    if action == "remove" and count > 1:
        return _render_form(_form_to_data(form, count - 1), count - 1, **keep)
    data = _form_to_data(form, count)
    try:
        clean = households.validate(data)
    except households.ValidationError as invalid:
        return _render_form(data, count, errors=translate_errors(invalid.errors, current()),
                            **keep), 422
    made = datetime.now(UTC).replace(microsecond=0)
    try:
        code = household_code.make(clean, household_id=keep["household_id"], made=made,
                                   seqs=keep["seqs"] if keep["household_id"] else None,
                                   next_seq=keep["next_seq"])
    except household_code.HouseholdCodeError:
        return _render_form(data, count, problem=gettext(TOO_LARGE), **keep), 422
    png = household_code.qr_png(code)
    return render_template(
        "prepare/made.html", code=code, qr=base64.b64encode(png).decode("ascii"),
        names=[" ".join(filter(None, (m["family_name"], m["given_name"])))
               for m in clean["members"]],
        made=made.isoformat().replace("+00:00", "Z"),
        # To the minute: two versions made the same day can be told apart, on paper too.
        made_day=made.astimezone(JST).strftime("%Y-%m-%d %H:%M"),
        made_file=made.astimezone(JST).strftime("%Y%m%d-%H%M"),
        updated=keep["household_id"] is not None)


@bp.post("/prepare/edit")
def edit() -> ResponseReturnValue:
    """"Change my details": the form, filled from the code the phone kept."""
    try:
        found = household_code.read(request.form.get("code", ""))
    except household_code.HouseholdCodeError:
        return _render_form(_empty(), 1, problem=gettext(NOT_THE_CODE)), 422
    data = _code_to_data(found.registration)
    if not data["members"]:
        return _render_form(_empty(), 1, problem=gettext(NOT_THE_CODE)), 422
    count = len(data["members"])
    return _render_form(data, count, household_id=found.household_id,
                        seqs=list(found.seqs), next_seq=found.next_seq)


@bp.get("/prepare/sw.js")
def service_worker() -> ResponseReturnValue:
    """The page's service worker, served from under /prepare so that it may look after
    /prepare itself (its scope, with Service-Worker-Allowed)."""
    path = Path(current_app.static_folder or "static") / "prepare-sw.js"
    response = send_file(path, mimetype="text/javascript", max_age=0)
    response.headers["Service-Worker-Allowed"] = "/prepare"
    return response
