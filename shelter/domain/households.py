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

from shelter.core import code_households, keys, shortcode
from shelter.core.clock import today_jst
from shelter.core.errors import Conflict, InvalidInput
from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.node import NodeIdentity
from shelter.core.sql import insert_row
from shelter.domain import cards, household_code, roster
from shelter.domain.schemas import households as registration
from shelter.domain.schemas.fields import InvalidBody
from shelter.domain.schemas.households import HouseholdCodeIn, HouseholdIn
from shelter.domain.text import kana_key, name_key


def N_(message: str) -> str:
    """Marks a message id for translation without translating it here."""
    return message


# The words of a registration are declared with its shape; named here too, for their readers.
NEEDS, SEXES, WHEREABOUTS = registration.NEEDS, registration.SEXES, registration.WHEREABOUTS
CONSENTS, LANGUAGES = registration.CONSENTS, registration.LANGUAGES
MAX_MEMBERS = registration.MAX_MEMBERS
# Who may register a household's people (shelter/core/authority.py): from a household
# code, only the members the household's id derives.
code_households.CODE_PERSON_ID[:] = [household_code.person_id]
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
    event, payload = _append(store, identity, clean, new_id(),
                             [{"person_id": new_id()} for _ in clean["members"]], today)
    return {"household_id": payload["household_id"], "registered_at": event.recorded_at,
            "members": [_registered(m) for m in payload["members"]]}


def _append(store: EventStore, identity: NodeIdentity, clean: dict[str, Any],
            household_id: str, ids: list[dict[str, Any]], today: date | None,
            extra: dict[str, Any] | None = None) -> tuple[Event, dict[str, Any]]:
    """Record ``clean`` as household ``household_id``, its members with ``ids`` (each
    member's ``person_id``, and ``seq`` from a household code): each gets a short code
    drawn here and a card this node signs."""
    key = keys.load_private_key(identity.signing_key_pem)
    issued = today or today_jst()
    for attempt in range(5):
        members = []
        drawn = free_short_codes(store.db, len(clean["members"]))
        for m, known, short in zip(clean["members"], ids, drawn, strict=True):
            name = cards.display_name(m["family_name"], m["given_name"])
            members.append({
                **m, **known, "short_code": short,
                "card_code": cards.make_code(key, known["person_id"], identity.shelter_id,
                                             identity.node_id, name, issued),
            })
        payload = {**clean, **(extra or {}), "household_id": household_id,
                   "shelter_id": identity.shelter_id, "members": members}
        try:
            event, _ = store.append("household_registered", payload)
        except sqlite3.IntegrityError:
            if attempt == 4:
                raise
            continue  # a short code collided with an existing one: draw new ones
        return event, payload
    raise AssertionError("unreachable")


def free_short_codes(db: Database, count: int) -> list[str]:
    """``count`` short codes, none of them in use here: typed at this desk, each must find
    one person. (Should another registration take the same one between this look and the
    append, one in 3·10^10, the projection keeps the later one marked: its QR still works.)"""
    drawn: list[str] = []
    while len(drawn) < count:
        code = shortcode.generate()
        if code not in drawn and db.execute("SELECT 1 FROM persons WHERE short_code = ?",
                                            [code]).fetchone() is None:
            drawn.append(code)
    return drawn


def _registered(m: dict[str, Any]) -> dict[str, Any]:
    return {"person_id": m["person_id"],
            "display_name": cards.display_name(m["family_name"], m["given_name"]),
            "code": m["card_code"], "short_code": shortcode.display(m["short_code"])}


# --- households made from a household code (shelter/domain/household_code.py) -------------

class CodeTaken(Conflict):
    """A household code whose id (or a member's) is registered here as someone else's:
    never taken over. Only a forged code, or a one-in-2**80 chance, meets this."""

    code = "household_code_taken"
    status = 409
    message = N_("This household code names a household registered here another way. "
                 "Register at the desk with the form.")


def code_registration(code: household_code.HouseholdCode,
                      today: date | None = None) -> dict[str, Any]:
    """The clean form of what a household code says (as the kiosk form is checked: it may
    have been made by anyone). It says where they stay; arriving here, "shelter" when it
    says nothing."""
    data = {**code.registration, "whereabouts": code.registration.get("whereabouts")
            or "shelter"}
    return validate(data, today)


def _known_members(db: Database, code: household_code.HouseholdCode
                   ) -> tuple[bool, dict[int, str]]:
    """Whether the code's household is registered here, and which of its members are
    (seq -> person id). Raises CodeTaken when its id or a member's is someone else's."""
    row = db.execute("SELECT code_made FROM households WHERE household_id = ?",
                     [code.household_id]).fetchone()
    if row is not None and row[0] is None:
        raise CodeTaken()
    ids = {seq: household_code.person_id(code.household_id, seq) for seq in code.seqs}
    known: dict[int, str] = {}
    for seq, person in ids.items():
        found = db.execute("SELECT household_id FROM persons WHERE person_id = ?",
                           [person]).fetchone()
        if found is not None:
            if found[0] != code.household_id:
                raise CodeTaken()
            known[seq] = person
    return row is not None, known


def register_from_code(store: EventStore, identity: NodeIdentity,
                       code: household_code.HouseholdCode,
                       today: date | None = None) -> dict[str, Any]:
    """Record the household a code describes, with the code's household id and each
    member's person id derived from it; when the household is registered here already,
    only its members not known yet (a newer code, with a newborn). Call inside
    ``store.write()``. Returns ``household_id``, ``registered`` (whether anything was
    recorded) and ``members``: those recorded now, with their card codes."""
    clean = code_registration(code, today)
    db = store.db
    _, known = _known_members(db, code)
    new = [(seq, m) for seq, m in zip(code.seqs, clean["members"], strict=True)
           if seq not in known]
    if not new:
        return {"household_id": code.household_id, "registered": False, "members": []}
    clean = {**clean, "members": [m for _, m in new]}
    _, payload = _append(store, identity, clean, code.household_id, [
        {"seq": seq, "person_id": household_code.person_id(code.household_id, seq)}
        for seq, _ in new], today, {"household_code": {"made": code.made}})
    return {"household_id": code.household_id, "registered": True,
            "members": [_registered(m) for m in payload["members"]]}


def preview_code(db: Database, text: str, shelter_id: str,
                 today: date | None = None) -> dict[str, Any]:
    """What a scanned household code says, and what this store knows of it: nothing is
    written. Raises HouseholdCodeError (it cannot be read), ValidationError (what it says
    would be refused on the form) or CodeTaken."""
    code = household_code.read(text)
    clean = code_registration(code, today)
    known_household, known = _known_members(db, code)
    on = today or today_jst()
    members = []
    for seq, m in zip(code.seqs, clean["members"], strict=True):
        person = household_code.person_id(code.household_id, seq)
        if seq in known:  # who the tap acts on: as registered here, not as a code says
            m = person_row(next(iter(db.query("SELECT * FROM persons WHERE person_id = ?",
                                              [person]))))
        row = db.execute("SELECT status, shelter_id FROM presence WHERE person_id = ?",
                         [person]).fetchone()
        members.append({
            "seq": seq, "person_id": person,
            "display_name": cards.display_name(m["family_name"], m["given_name"]),
            "age": roster.age_on(m["birth_date"], on), "needs": m["needs"],
            "allergies": m["allergies"], "medication": m["medication"],
            "known": seq in known,
            "status": roster.status_here(row[0] if row else None, row[1] if row else None,
                                         shelter_id)})
    return {"household_id": code.household_id, "known": known_household,
            "registration": clean, "members": members}


def make_code(data: Any, today: date | None = None) -> str:
    """POST /api/v1/household-codes: the household code of a registration (the body of
    POST /api/v1/households; ``household_id``, ``seqs`` and ``next_seq`` to replace an
    earlier code). Checked as a registration is; nothing is kept."""
    try:
        clean, household_id, seqs, next_seq = HouseholdCodeIn.for_code(data, today)
    except InvalidBody as invalid:
        language = data.get("language") if isinstance(data, dict) else None
        raise ValidationError(invalid.fields, language=language) from None
    return household_code.make(clean, household_id, seqs=seqs, next_seq=next_seq)


@projection("household_registered")
def _apply_household_registered(db: Database, event: Event) -> None:
    """A registration; one made from a household code (``household_code``) may name a
    household registered here already (scanned at a second shelter, or a newer code):
    it is not inserted again, and its members known here are skipped."""
    p = event.payload
    made = p.get("household_code")
    code_made = made.get("made") if isinstance(made, dict) else None
    known: set[str] = set()
    exists = code_made is not None and db.execute(
        "SELECT 1 FROM households WHERE household_id = ?", [p["household_id"]]).fetchone()
    if exists:
        known = {r[0] for r in db.execute("SELECT person_id FROM persons WHERE household_id "
                                          "= ?", [p["household_id"]])}
    else:
        insert_row(db, "households", {
            "household_id": p["household_id"], "shelter_id": p["shelter_id"],
            "address": p["address"], "postal_code": p["postal_code"], "phone": p["phone"],
            "whereabouts": p["whereabouts"], "consent": p["consent"],
            "language": p["language"], "registered_hlc": event.hlc,
            "registered_at": event.recorded_at, "origin_node": event.node_id,
            "pets": p.get("pets", ""), "code_made": code_made,
        })
    for position, m in enumerate(p["members"]):
        if m["person_id"] in known:
            continue
        seq = m.get("seq") if code_made is not None else None
        # A code's members keep their number's place, wherever they were registered.
        insert_person(db, event.hlc, p["household_id"], p["shelter_id"], m,
                      seq if seq is not None else position, seq)


def insert_person(db: Database, hlc: str, household_id: str, shelter_id: str,
                  m: dict[str, Any], position: int, seq: int | None = None) -> None:
    """One member of a registration (or one added since: shelter/domain/corrections.py),
    and the likely duplicates of them in other households."""
    nk = name_key(m["family_name"], m["given_name"])
    kk = kana_key(m["family_name_kana"], m["given_name_kana"])
    # A short code is typed at the desk of the node that drew it, which draws none in
    # use there (``_append``). Nodes draw theirs apart, so among HQ's million two may
    # meet (35 bits: a few dozen pairs in a prefecture): the later one is kept
    # marked with its person, never typed at HQ, and the registration stands.
    short = m["short_code"]
    if db.execute("SELECT 1 FROM persons WHERE short_code = ?", [short]).fetchone():
        short = f"{short}~{m['person_id']}"
    insert_row(db, "persons", {
        "person_id": m["person_id"], "household_id": household_id,
        "family_name": m["family_name"], "given_name": m["given_name"],
        "family_name_kana": m["family_name_kana"], "given_name_kana": m["given_name_kana"],
        "name_key": nk, "kana_key": kk, "birth_date": m["birth_date"], "sex": m["sex"],
        "needs": json.dumps(m["needs"]), "allergies": m["allergies"],
        "medication": m.get("medication", ""),
        "short_code": short, "card_code": m["card_code"], "issuing_shelter": shelter_id,
        "position": position, "code_seq": seq,
    })
    flag_duplicates(db, hlc, m["person_id"], household_id, nk, kk, m["birth_date"])


def flag_duplicates(db: Database, hlc: str, person_id: str, household_id: str, nk: str,
                    kk: str, birth_date: str) -> None:
    """Same name (or same reading) and same birth date, in another household: most
    likely the same person registering twice. Staff decide; nothing is merged here.
    Two exact index searches (name, reading): a birth date alone is shared by dozens
    of people among HQ's million and would have to be read through."""
    matches = db.execute(
        """SELECT person_id, 1 AS same_name FROM persons
           WHERE name_key = ? AND birth_date = ? AND household_id != ?
           UNION
           SELECT person_id, name_key = ? FROM persons
           WHERE ? != '' AND kana_key = ? AND birth_date = ? AND household_id != ?
           ORDER BY person_id LIMIT ?""",
        [nk, birth_date, household_id, nk, kk, kk, birth_date, household_id,
         MAX_DUPLICATE_FLAGS]).fetchall()
    for other_id, same_name in matches:
        insert_row(db, "duplicate_flags", {
            "person_id": person_id, "other_person_id": other_id,
            "reason": "name_birth" if same_name else "kana_birth",
            "status": "open", "flagged_hlc": hlc,
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
