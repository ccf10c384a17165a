"""Staff correct a household and its people, add a member (a newborn), and print one
person's card again: thin views over shelter/domain/corrections.py, which decides and
audits. Volunteers and up; only a manager widens what enquiries may tell."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.datastructures import MultiDict

from shelter.core.errors import NotFound
from shelter.domain import cards, corrections, households
from shelter.domain.accounts import audit
from shelter.domain.schemas.corrections import HOUSEHOLD_FIELDS, PERSON_FIELDS
from shelter.domain.schemas.households import CONSENTS, LANGUAGES, NEEDS, SEXES, WHEREABOUTS
from shelter.domain.settings import get_settings
from shelter.web import labels
from shelter.web.base import current_principal, node, require
from shelter.web.i18n import gettext

bp = Blueprint("corrections", __name__, url_prefix="/staff")


def _actor() -> tuple[str, bool]:
    """Who is signed in, and whether they may widen a consent (a manager)."""
    principal = current_principal()
    assert principal is not None  # every view here requires someone
    return principal.name, principal.can("manager")


def _household(household_id: str) -> dict[str, Any]:
    found = households.get_household(node().db, household_id)
    if found is None:
        raise NotFound()
    return found


def _person_form(form: MultiDict[str, str], prefix: str) -> dict[str, Any]:
    person: dict[str, Any] = {k: form.get(f"{prefix}-{k}", "") for k in PERSON_FIELDS}
    person["needs"] = form.getlist(f"{prefix}-needs")
    person["sex"] = person["sex"] or "unanswered"
    return person


def _page(household: dict[str, Any], status: int = 200, errors: dict[str, str] | None = None,
          typed: dict[str, Any] | None = None, problem: str | None = None,
          ) -> ResponseReturnValue:
    """The correction page: the household as recorded, or as typed (``typed``: the
    household's fields, ``people`` by person id and ``new``), with what needs attention."""
    typed = typed or {}
    facts = typed.get("facts") or {k: household[k] for k in HOUSEHOLD_FIELDS}
    people = typed.get("people") or {}
    members = [{**m, **people.get(m["person_id"], {})} for m in household["members"]]
    errors = errors or {}
    # A field's id is its key's, with "p" before a person's (an id starts with a letter).
    links = [(("" if key.startswith(("household.", "new.")) else "p") + key.replace(".", "-"),
              text) for key, text in errors.items()]
    _, manager = _actor()
    # Only a member of this household (the one just added): not anyone's name by its id.
    added = request.args.get("added", "")
    added = added if any(m["person_id"] == added for m in household["members"]) else ""
    return render_template(
        "staff/correct.html", household=household, facts=facts, members=members,
        new=typed.get("new") or {"family_name": members[0]["family_name"],
                                 "family_name_kana": members[0]["family_name_kana"]},
        seen=corrections.seen(household), errors=errors, error_links=links, problem=problem,
        manager=manager, saved=request.args.get("saved"),
        added=households.get_person(node().db, added) if added else None,
        needs=NEEDS, sexes=SEXES, whereabouts=WHEREABOUTS, consents=CONSENTS,
        household_languages=LANGUAGES, labels=labels.desk()), status


@bp.route("/households/<household_id>/correct", methods=["GET", "POST"])
@require("volunteer")
def correct(household_id: str) -> ResponseReturnValue:
    """GET: the form, the household as recorded (a look at it, audited as the household
    page is). POST: what changed is recorded; a field that needs attention shows the form
    again as typed (nothing lost), a correction by someone else meanwhile the record."""
    ctx = node()
    household = _household(household_id)
    actor, manager = _actor()
    if request.method == "GET":
        audit(ctx.store, actor, "view_household", household_id)
        return _page(household)
    form = request.form
    facts = {k: form.get(f"household-{k}", "") for k in HOUSEHOLD_FIELDS}
    people = {m["person_id"]: _person_form(form, "p" + m["person_id"])
              for m in household["members"]}
    typed = {"facts": facts, "people": people}
    try:
        changed = corrections.correct(ctx.store, ctx.identity, household_id, facts, people,
                                      form.get("seen", ""), actor, manager)
    except corrections.CorrectionInvalid as invalid:
        return _page(household, 400, invalid.field_texts(gettext), typed)
    except corrections.CorrectedMeanwhile as meanwhile:
        # The record as it is now: the form as typed would undo the other correction.
        return _page(_household(household_id), 409, {}, None, meanwhile.text(gettext))
    return redirect(url_for("corrections.correct", household_id=household_id,
                            saved=len(changed)), code=303)


@bp.post("/households/<household_id>/members")
@require("volunteer")
def add_member(household_id: str) -> ResponseReturnValue:
    """A member who joined the household (a newborn): recorded with a card of their own."""
    ctx = node()
    household = _household(household_id)
    actor, _ = _actor()
    new = _person_form(request.form, "new")
    try:
        added = corrections.add_person(ctx.store, ctx.identity, household_id, new, actor)
    except corrections.CorrectionInvalid as invalid:
        return _page(household, 400, invalid.field_texts(gettext), {"new": new})
    return redirect(url_for("corrections.correct", household_id=household_id,
                            added=added["person_id"]), code=303)


@bp.get("/persons/<person_id>/card.pdf")
@require("volunteer")
def card_pdf(person_id: str) -> ResponseReturnValue:
    """One person's card, printed again (audited): the card on record, so it scans as
    the one they had (with the corrected name, once the name was corrected)."""
    actor, _ = _actor()
    card, language = corrections.reprint(node().store, person_id, actor)
    pdf = cards.pdf_sheet([card], gettext("Evacuee card"),
                          get_settings(node().db)["shelter_name"], language)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="card-{person_id}.pdf"'})
