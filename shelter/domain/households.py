"""Households and persons: validating a registration, recording it, finding likely duplicates.

Messages in ``ValidationError.errors`` are English message ids marked with ``N_``; the web
and API layers translate them into the person's language.
"""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import date
from typing import Any

from sqlite_utils import Database

from shelter.core import keys, shortcode
from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.node import NodeIdentity
from shelter.core.sql import insert_row
from shelter.domain import cards
from shelter.domain.text import clean_line, kana_key, name_key, normalise_kana


def N_(message: str) -> str:
    """Marks a message id for translation without translating it here."""
    return message


NEEDS = ("elderly", "disability", "wheelchair", "infant", "pregnant_nursing",
         "chronic_illness", "allergy", "injury", "language_support", "pet")
SEXES = ("female", "male", "other", "unanswered")
WHEREABOUTS = ("shelter", "home", "car", "other")
CONSENTS = ("relatives", "acquaintances", "none")
LANGUAGES = ("ja", "en", "zh", "ko", "vi")
MAX_MEMBERS = 20
# A handful of earlier records to compare with is enough for staff to act on.
MAX_DUPLICATE_FLAGS = 5
NAME_LIMIT = 40
KANA_LIMIT = 60


class ValidationError(ValueError):
    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def _parse_birth_date(value: object, today: date) -> tuple[str | None, str | None]:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return None, N_("Enter the birth date as year, month and day.")
    try:
        born = date.fromisoformat(value.strip())
    except ValueError:
        return None, N_("This date does not exist.")
    if born > today:
        return None, N_("The birth date cannot be in the future.")
    if born.year < 1900:
        return None, N_("Check the year of birth.")
    return born.isoformat(), None


def validate(data: Any, today: date | None = None) -> dict[str, Any]:
    """Check a registration (the API body) and return its clean form, or raise
    ValidationError with one message per field that needs attention."""
    today = today or date.today()
    errors: dict[str, str] = {}
    if not isinstance(data, dict):
        raise ValidationError({"body": N_("The request body must be a JSON object.")})
    language = data.get("language", "ja")
    if language not in LANGUAGES:
        errors["language"] = N_("Unknown language.")
        language = "ja"
    clean: dict[str, Any] = {"language": language}

    def line(field: str, limit: int, required: bool, source: dict[str, Any],
             key: str | None = None) -> str:
        key = key or field
        raw = source.get(field, "")
        if raw is None:
            raw = ""
        value = clean_line(raw, limit)
        if value is None:
            errors[key] = N_("Too long or not valid text.")
            return ""
        if required and not value:
            errors[key] = N_("This field is required.")
        return value

    clean["address"] = line("address", 200, True, data)
    postal = line("postal_code", 10, False, data)
    if postal:
        digits = postal.replace("-", "").replace("ー", "").translate(
            str.maketrans("０１２３４５６７８９", "0123456789"))
        if not re.fullmatch(r"\d{7}", digits):
            errors["postal_code"] = N_("A postal code has seven digits, like 540-0008.")
        else:
            postal = f"{digits[:3]}-{digits[3:]}"
    clean["postal_code"] = postal
    phone = line("phone", 20, False, data)
    if phone and not re.fullmatch(r"[0-9０-９+\-() ]{6,20}", phone):
        errors["phone"] = N_("Enter a phone number with digits only.")
    clean["phone"] = phone
    for field, allowed in (("whereabouts", WHEREABOUTS), ("consent", CONSENTS)):
        value = data.get(field)
        if value not in allowed:
            errors[field] = N_("Choose one of the options.")
        clean[field] = value

    members = data.get("members")
    if not isinstance(members, list) or not members:
        errors["members"] = N_("Register at least one person.")
        members = []
    elif len(members) > MAX_MEMBERS:
        errors["members"] = N_("At most 20 people can register as one household.")
        members = []
    clean_members = []
    for i, member in enumerate(members):
        p = f"members.{i}."
        if not isinstance(member, dict):
            errors[f"members.{i}"] = N_("Each person must be an object.")
            continue
        m: dict[str, Any] = {}
        m["family_name"] = line("family_name", NAME_LIMIT, True, member, p + "family_name")
        m["given_name"] = line("given_name", NAME_LIMIT, False, member, p + "given_name")
        for field in ("family_name_kana", "given_name_kana"):
            raw = line(field, KANA_LIMIT, language == "ja" and field == "family_name_kana",
                       member, p + field)
            kana = normalise_kana(raw) if raw else ""
            if kana is None:
                errors[p + field] = N_("Write this in hiragana or katakana.")
                kana = ""
            m[field] = kana
        m["birth_date"], problem = _parse_birth_date(member.get("birth_date"), today)
        if problem:
            errors[p + "birth_date"] = problem
        sex = member.get("sex", "unanswered")
        if sex not in SEXES:
            errors[p + "sex"] = N_("Choose one of the options.")
        m["sex"] = sex
        needs = member.get("needs", [])
        if not isinstance(needs, list) or any(n not in NEEDS for n in needs):
            errors[p + "needs"] = N_("Unknown need.")
            needs = []
        m["needs"] = [n for n in NEEDS if n in needs]
        m["allergies"] = line("allergies", 200, "allergy" in m["needs"], member,
                              p + "allergies")
        if m["allergies"] and "allergy" not in m["needs"]:
            m["needs"] = [n for n in NEEDS if n in needs or n == "allergy"]
        clean_members.append(m)
    clean["members"] = clean_members
    if errors:
        raise ValidationError(errors)
    return clean


def register_household(store: EventStore, identity: NodeIdentity, data: Any,
                       today: date | None = None) -> dict[str, Any]:
    """Validate and record a household. Returns its id and each member's card codes."""
    clean = validate(data, today)
    key = keys.load_private_key(identity.signing_key_pem)
    issued = today or date.today()
    for attempt in range(5):
        members = []
        for m in clean["members"]:
            person_id = new_id()
            name = cards.display_name(m["family_name"], m["given_name"])
            members.append({
                **m, "person_id": person_id, "short_code": shortcode.generate(),
                "card_code": cards.make_code(key, person_id, identity.shelter_id,
                                             identity.node_id, name, issued),
            })
        payload = {**clean, "household_id": new_id(), "shelter_id": identity.shelter_id,
                   "members": members}
        try:
            event, _ = store.append("household_registered", payload)
        except sqlite3.IntegrityError:
            if attempt == 4:
                raise
            continue  # a short code collided with an existing one: draw new ones
        return {
            "household_id": payload["household_id"],
            "registered_at": event.recorded_at,
            "members": [{
                "person_id": m["person_id"],
                "display_name": cards.display_name(m["family_name"], m["given_name"]),
                "code": m["card_code"],
                "short_code": shortcode.display(m["short_code"]),
            } for m in members],
        }
    raise AssertionError("unreachable")


@projection("household_registered")
def _apply_household_registered(db: Database, event: Event) -> None:
    p = event.payload
    insert_row(db, "households", {
        "household_id": p["household_id"], "shelter_id": p["shelter_id"],
        "address": p["address"], "postal_code": p["postal_code"], "phone": p["phone"],
        "whereabouts": p["whereabouts"], "consent": p["consent"], "language": p["language"],
        "registered_hlc": event.hlc, "registered_at": event.recorded_at,
        "origin_node": event.node_id,
    })
    for position, m in enumerate(p["members"]):
        nk = name_key(m["family_name"], m["given_name"])
        kk = kana_key(m["family_name_kana"], m["given_name_kana"])
        insert_row(db, "persons", {
            "person_id": m["person_id"], "household_id": p["household_id"],
            "family_name": m["family_name"], "given_name": m["given_name"],
            "family_name_kana": m["family_name_kana"], "given_name_kana": m["given_name_kana"],
            "name_key": nk, "kana_key": kk, "birth_date": m["birth_date"], "sex": m["sex"],
            "needs": json.dumps(m["needs"]), "allergies": m["allergies"],
            "short_code": m["short_code"], "card_code": m["card_code"],
            "issuing_shelter": p["shelter_id"], "position": position,
        })
        # Same name (or same reading) and same birth date, in another household: most
        # likely the same person registering twice. Staff decide; nothing is merged here.
        # Two exact index searches (name, reading): a birth date alone is shared by dozens
        # of people among HQ's million and would have to be read through.
        matches = db.execute(
            """SELECT person_id, 1 AS same_name FROM persons
               WHERE name_key = ? AND birth_date = ? AND household_id != ?
               UNION
               SELECT person_id, name_key = ? FROM persons
               WHERE ? != '' AND kana_key = ? AND birth_date = ? AND household_id != ?
               ORDER BY person_id LIMIT ?""",
            [nk, m["birth_date"], p["household_id"], nk, kk, kk, m["birth_date"],
             p["household_id"], MAX_DUPLICATE_FLAGS]).fetchall()
        for other_id, same_name in matches:
            insert_row(db, "duplicate_flags", {
                "person_id": m["person_id"], "other_person_id": other_id,
                "reason": "name_birth" if same_name else "kana_birth",
                "status": "open", "flagged_hlc": event.hlc,
            }, or_ignore=True)


def person_row(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "needs": json.loads(row["needs"]),
            "short_code": shortcode.display(row["short_code"])}


def get_household(db: Database, household_id: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM households WHERE household_id = ?", [household_id]))
    if not rows:
        return None
    household = rows[0]
    household["members"] = [person_row(r) for r in db.query(
        "SELECT * FROM persons WHERE household_id = ? ORDER BY position", [household_id])]
    return household


def get_person(db: Database, person_id: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM persons WHERE person_id = ?", [person_id]))
    return person_row(rows[0]) if rows else None


def open_duplicates(db: Database) -> list[dict[str, Any]]:
    return list(db.query(
        """SELECT f.reason, f.flagged_hlc,
                  a.person_id, a.family_name, a.given_name, a.birth_date, a.household_id,
                  b.person_id AS other_person_id, b.family_name AS other_family_name,
                  b.given_name AS other_given_name, b.household_id AS other_household_id
           FROM duplicate_flags f
           JOIN persons a ON a.person_id = f.person_id
           JOIN persons b ON b.person_id = f.other_person_id
           WHERE f.status = 'open' ORDER BY f.flagged_hlc DESC"""))


def list_households(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    return list(db.query(
        """SELECT h.household_id, h.registered_at, h.whereabouts, count(p.person_id) AS size,
                  min(p.family_name) AS family_name
           FROM households h JOIN persons p ON p.household_id = h.household_id
           GROUP BY h.household_id ORDER BY h.registered_hlc DESC LIMIT ?""", [limit]))
