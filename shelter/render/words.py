"""Words for the codes that several screens and reports show: one list each, so the desk,
the supplies pages, HQ and the PDFs say the same thing. ``_`` is the gettext of the
language wanted (a request's, or a report's)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from shelter.render.times import japan_datetime

Gettext = Callable[[str], str]


def needs(_: Gettext) -> dict[str, str]:
    return {"elderly": _("Elderly"), "disability": _("Disability"),
            "wheelchair": _("Wheelchair"), "infant": _("Infant"),
            "pregnant_nursing": _("Pregnant or nursing"), "chronic_illness": _("Medication"),
            "allergy": _("Allergy"), "injury": _("Injured or sick"),
            "language_support": _("Language support"), "pet": _("Pet")}


def crowding(_: Gettext) -> dict[str, str]:
    return {"available": _("Space available"), "somewhat_crowded": _("Getting busy"),
            "crowded": _("Crowded"), "full": _("Full"), "unknown": _("Capacity not set"),
            "closed": _("Closed")}


def request_status(_: Gettext) -> dict[str, str]:
    return {"requested": _("Requested"), "acknowledged": _("Acknowledged by HQ"),
            "dispatched": _("On its way"), "received": _("Received")}


def urgency(_: Gettext) -> dict[str, str]:
    return {"normal": _("Normal"), "urgent": _("Urgent"),
            "critical": _("Critical: people at risk")}


# --- units: the basic items' units (shelter/core/migrations/node.py: BASIC_ITEMS) in words;
# a unit a manager typed for a new item is shown as typed, and so are symbols (L, g).

def units(_: Gettext) -> dict[str, str]:
    """Each unit code's word, for a label ("食料 (食)", "Food (meals)")."""
    return {"meal": _("meals"), "piece": _("pieces"), "use": _("uses"), "roll": _("rolls")}


def quantity(n: object, unit: str, _: Gettext) -> str:
    """``n`` of ``unit`` as the reader says it: 900食, 40巻 in Japanese; 900 meals, 1 roll in
    English; 2000 L in both."""
    one = str(n) == "1"
    forms = {"meal": _("%(n)s meal") if one else _("%(n)s meals"),
             "piece": _("%(n)s piece") if one else _("%(n)s pieces"),
             "use": _("%(n)s use") if one else _("%(n)s uses"),
             "roll": _("%(n)s roll") if one else _("%(n)s rolls")}
    return forms[unit] % {"n": n} if unit in forms else f"{n} {unit}"


# --- the audit log: what was done, in words ------------------------------------------------

def audit_actions(_: Gettext) -> dict[str, str]:
    """Each audit action's words (shelter/domain/accounts.py: audit); an action without
    words here is shown as its code."""
    return {
        "login": _("Signed in"), "login_failed": _("Sign-in failed"),
        "login_refused": _("Sign-in refused (too many tries)"),
        "view_household": _("Looked at a household"),
        "view_cards": _("Opened a household's cards"),
        "register_household": _("Registered a household"),
        "view_household_code": _("Read a household code"),
        "register_household_code": _("Registered a household from its code"),
        "scan": _("Card scanned"), "scan_refused": _("Card refused"),
        "scan_household": _("Whole household at the desk"),
        "find_person": _("Searched for a person"),
        "view_duplicates": _("Looked at possible duplicates"),
        "view_audit_log": _("Looked at the audit log"),
        "add_user": _("Added a user"), "disable_user": _("Disabled a user"),
        "enable_user": _("Enabled a user"), "daily_report": _("Made the daily report"),
        "standby_enrolled": _("Standby enrolled"), "standby_refused": _("Standby refused"),
        "correct_household": _("Corrected a household"),
        "correct_person": _("Corrected a person"), "add_person": _("Added a household member"),
        "reprint_card": _("Reprinted a card"),
        # HQ's, and the command line's
        "situation_report": _("Made the situation report"),
        "revoke_node": _("Revoked a node"),
        "request_acknowledged": _("Acknowledged a supply request"),
        "request_dispatched": _("Dispatched supplies"),
        "shelter_configured": _("Changed a shelter's settings"),
        "hq_message": _("Sent a message to a shelter"),
        "safety_enquiry": _("Safety enquiry"),
        "replacement_code": _("Made a replacement code"),
        "bundle_export": _("Wrote a courier bundle"),
        "bundle_import": _("Imported a courier bundle"),
        "bundle_reply_import": _("Imported HQ's reply"),
        "bundle_reply_refused": _("Refused HQ's reply"),
    }


SCAN_ACTIONS = ("scan", "scan_refused", "scan_household")


def audit_detail(action: str, detail: str, _: Gettext) -> str:
    """An audit entry's detail for a reader: a scan's step and outcome in words, a search's
    words and count, an address, a language; anything else as recorded."""
    if not detail:
        return ""
    if action == "safety_enquiry" and detail.startswith("{"):
        return _enquiry_detail(detail, _)
    if action in ("correct_household", "correct_person"):  # the fields corrected
        fields = {"family_name": _("Family name"), "given_name": _("Given name"),
                  "family_name_kana": _("Family name (kana)"),
                  "given_name_kana": _("Given name (kana)"), "birth_date": _("Date of birth"),
                  "sex": _("Sex"), "needs": _("Needs"), "allergies": _("Allergy"),
                  "medication": _("Medication"), "address": _("Home address"),
                  "postal_code": _("Postal code"), "phone": _("Phone"),
                  "whereabouts": _("Stays"), "consent": _("Safety enquiries"),
                  "language": _("Language"), "pets": _("Pet")}
        return _(", ").join(fields.get(f, f) for f in detail.split(","))
    if action in SCAN_ACTIONS and ":" in detail:
        step, outcome = detail.split(":", 1)
        steps = {"check_in": _("Check in"), "go_out": _("Go out"), "return": _("Return"),
                 "check_out": _("Check out"), "auto": _("Check in or out")}
        outcomes = {"done": _("recorded"), "already": _("No change: already so"),
                    "repeated": _("Same card just now: counted once"),
                    "forged": _("forged or damaged card"),
                    "card_not_verified": _("card not verifiable here")}
        return f"{steps.get(step, step)} · {outcomes.get(outcome, outcome)}"
    keys = {"ip": _("address %(value)s"), "q": _("searched for “%(value)s”"),
            "results": _("%(value)s found"), "language": _("in %(value)s")}
    languages = {"ja": _("Japanese"), "en": _("English")}
    pairs = re.findall(r"([a-z_]+)=(.*?)(?= [a-z_]+=|$)", detail)
    if pairs and detail.startswith(pairs[0][0] + "="):
        return " · ".join(
            keys[key] % {"value": languages.get(value, value) if key == "language" else value}
            if key in keys else f"{key}={value}" for key, value in pairs)
    roles = {"kiosk": _("Kiosk (registration only)"), "volunteer": _("Volunteer (desk)"),
             "manager": _("Shelter manager"), "operator": _("Operator"), "admin": _("Admin")}
    if action == "add_user" and detail in roles:
        return roles[detail]
    if action == "daily_report" and detail in languages:
        return keys["language"] % {"value": languages[detail]}
    return detail


def _enquiry_detail(detail: str, _: Gettext) -> str:
    """A safety enquiry's record (shelter/domain/enquiry.py: answer) in words: whom about,
    who asked, and how many answers were found."""
    try:
        asked = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(asked, dict):
        return detail
    relation = {"relative": _("a relative"), "acquaintance": _("an acquaintance")}
    parts = [_("born %(value)s") % {"value": asked.get("birth_date", "")},
             _("asked by %(who)s (%(relation)s), contact %(contact)s") % {
                 "who": asked.get("enquirer", ""), "contact": asked.get("contact", ""),
                 "relation": relation.get(str(asked.get("relation")), asked.get("relation"))},
             _("%(value)s found") % {"value": asked.get("answered", 0)}]
    return " · ".join(parts)


def audit_subject(subject: str, found: dict[str, Any] | None, item_names: dict[str, str],
                  _: Gettext) -> str:
    """What an audit entry is about, by name where the record is held here
    (shelter/domain/audit_subjects.py: ``found``), else as recorded."""
    if subject in ("", "-"):
        return "—"
    if subject == "prefecture":  # the situation report's: all of HQ's shelters
        return _("All shelters of the prefecture")
    if found is None:
        return subject
    if found["kind"] == "household":
        household = (_("%(name)s's household (1 person)") if found["people"] == 1 else
                     _("%(name)s's household (%(n)s people)"))
        return household % {"name": found["name"], "n": found["people"]}
    if found["kind"] == "request":
        lines = _(", ").join(f"{item_names.get(line['item_id'], line['item_id'])} "
                             f"{line['quantity']}" for line in found["lines"])
        return _("Request from %(shelter)s: %(items)s") % {"shelter": found["shelter"],
                                                            "items": lines}
    return str(found["name"])


def audit_entries(rows: list[dict[str, Any]], found: dict[str, dict[str, Any]],
                  item_names: dict[str, str], _: Gettext) -> list[dict[str, Any]]:
    """The audit log's rows as its page shows them: when in Japan time, who, what was done
    in words, about what by name, and the detail in words."""
    actions = audit_actions(_)
    return [{"audit_id": r["audit_id"], "at": japan_datetime(r["at"], seconds=True),
             "actor": r["actor"], "action": actions.get(r["action"], r["action"]),
             "subject": audit_subject(r["subject"], found.get(r["subject"]), item_names, _),
             "named": r["subject"] in found,
             "detail": audit_subject(r["detail"], found.get(r["detail"]), item_names, _)
             if r["action"] == "add_person"  # the detail is their household
             else audit_detail(r["action"], r["detail"] or "", _)} for r in rows]
