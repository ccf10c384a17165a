"""Households and persons: validating a registration, recording it, finding likely duplicates.

Messages in ``ValidationError.errors`` are English message ids marked with ``N_``; the web
and API layers translate them into the person's language.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from typing import Any

from sqlite_utils import Database

from shelter.core import keys, shortcode
from shelter.core.errors import InvalidInput
from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.node import NodeIdentity
from shelter.core.sql import insert_row
from shelter.domain import cards
from shelter.domain.schemas import households as registration
from shelter.domain.schemas.fields import InvalidBody
from shelter.domain.schemas.households import HouseholdIn
from shelter.domain.text import kana_key, name_key


def N_(message: str) -> str:
    """Marks a message id for translation without translating it here."""
    return message


# The words of a registration are declared with its shape; named here too, for their readers.
NEEDS, SEXES, WHEREABOUTS = registration.NEEDS, registration.SEXES, registration.WHEREABOUTS
CONSENTS, LANGUAGES = registration.CONSENTS, registration.LANGUAGES
MAX_MEMBERS = registration.MAX_MEMBERS
# A handful of earlier records to compare with is enough for staff to act on.
MAX_DUPLICATE_FLAGS = 5


class ValidationError(InvalidInput, ValueError):
    """A registration with fields that need attention: ``errors`` maps each field to its
    message id. ``language``: the one the registration asked for (its fields' messages are
    shown in it), as sent."""

    message = N_("Some fields need attention.")

    def __init__(self, errors: dict[str, str], language: object = None) -> None:
        super().__init__(fields=errors,
                         detail="; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors
        self.language = language if isinstance(language, str) else None


def validate(data: Any, today: date | None = None) -> dict[str, Any]:
    """Check a registration (the API body) against its shape (``HouseholdIn``) and return
    its clean form, or raise ValidationError with one message per field that needs
    attention."""
    try:
        return HouseholdIn.registration(data, today)
    except InvalidBody as invalid:
        language = data.get("language") if isinstance(data, dict) else None
        raise ValidationError(invalid.fields, language=language) from None


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


def count_persons(db: Database) -> int:
    """Everyone this store holds a registration of."""
    return int(db.execute("SELECT count(*) FROM persons").fetchone()[0])
