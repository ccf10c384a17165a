"""Staff correct a household or a person (a typo in a name, a new need, a changed consent)
and add a member who joined (a newborn): events like every change, synced to HQ, where the
enquiry and the headcount read the corrected rows.

* ``household_corrected`` and ``person_corrected`` carry only the fields that changed, each
  as the registration's rule cleans it (shelter/domain/schemas/corrections.py). A
  corrected name signs the person's card again (``card_code``): a card carries its name.
* ``person_added``: members as a registration's, a new person id (a ULID: a member added
  at the desk is in no household code, and a number of the code would be the one the
  family's next code gives someone else), a short code and a card.
* The latest clock wins each field (``corrected_fields``), so corrections applied in any
  order end the same.
* Only the shelter that registered a household may correct it or add to it (``owned``): a
  thief with one shelter's laptop can say nothing about another shelter's people.
* Staff from volunteer up correct (the desk at night fixes the name it cannot find, the
  allergy a meal needs, a "tell nobody" asked in fear); widening what enquiries may tell
  takes a manager. Each correction is audited: who, what, which fields, never values.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from datetime import date
from typing import Any

from sqlite_utils import Database

from shelter.core import authority, code_households, keys, shortcode
from shelter.core.authority import Batch, Refusal
from shelter.core.clock import AHEAD_OK, today_jst
from shelter.core.errors import N_, Conflict, InvalidInput, NotFound
from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.ids import ULID_RE
from shelter.core.node import NodeIdentity
from shelter.domain import cards, household_code, households
from shelter.domain.accounts import audit
from shelter.domain.schemas.corrections import (
    HOUSEHOLD_FIELDS,
    NAME_FIELDS,
    PERSON_FIELDS,
    HouseholdFactsIn,
    canonical,
)
from shelter.domain.schemas.fields import InvalidBody
from shelter.domain.schemas.households import MAX_MEMBERS, PersonIn
from shelter.domain.text import kana_key, name_key

# What enquiries may tell, from least to most (shelter/domain/enquiry.py: may_be_told).
DISCLOSURE = {"none": 0, "relatives": 1, "acquaintances": 2}
WIDER_CONSENT = N_("Only a manager may let enquiries tell more than before. Ask the "
                   "shelter manager, or choose the same or less.")


class CorrectionInvalid(InvalidInput):
    """A correction with fields that need attention (``fields``: ``household.phone``,
    ``<person id>.birth_date``, ``new.family_name``); nothing was saved."""

    status = 400
    message = N_("Some fields need attention. Nothing was saved.")


class CorrectedMeanwhile(Conflict):
    """The household changed since the form was opened (someone else corrected it)."""

    code = "corrected_meanwhile"
    message = N_("Someone else corrected this household while you were typing. Nothing "
                 "was saved: this is the record as it is now. Make your correction again.")


def seen(household: dict[str, Any]) -> str:
    """A digest of the household as a form shows it: sent back with the form, it tells
    whether someone else corrected it meanwhile."""
    facts = {k: household[k] for k in HOUSEHOLD_FIELDS}
    people = [{k: m[k] for k in ("person_id", *PERSON_FIELDS)} for m in household["members"]]
    text = json.dumps([facts, people], ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _checked(model: Any, data: Any, prefix: str, errors: dict[str, str],
             context: dict[str, Any] | None = None) -> dict[str, Any] | None:
    try:
        return dict(model.checked(data, context).model_dump())
    except InvalidBody as invalid:
        errors.update({f"{prefix}.{k}": v for k, v in invalid.fields.items()})
        return None


def correct(store: EventStore, identity: NodeIdentity, household_id: str, facts: Any,
            people: dict[str, Any], form_seen: str, actor: str, widen_consent: bool,
            today: date | None = None) -> dict[str, list[str]]:
    """Record what staff changed of a household (``facts``: its fields as the form sent
    them) and of its members (``people``: person id -> their fields). Every field is
    checked as at registration; ``form_seen`` must be ``seen()`` of the household as it
    is now. Returns the fields that changed, by household or person id (empty: nothing)."""
    with store.write():
        household = households.get_household(store.db, household_id)
        if household is None:
            raise NotFound()
        if form_seen != seen(household):
            raise CorrectedMeanwhile()
        errors: dict[str, str] = {}
        clean = _checked(HouseholdFactsIn, facts, "household", errors)
        language = (clean or household)["language"]
        context = {"language": language, "today": today or today_jst()}
        members = {m["person_id"]: m for m in household["members"]}
        cleaned = {pid: _checked(PersonIn, people.get(pid), pid, errors, context)
                   for pid in members}
        consent = facts.get("consent") if isinstance(facts, dict) else None
        if not widen_consent and consent in DISCLOSURE \
                and DISCLOSURE[consent] > DISCLOSURE[household["consent"]]:
            errors["household.consent"] = WIDER_CONSENT
        if errors:
            raise CorrectionInvalid(fields=errors)
        assert clean is not None
        changed: dict[str, list[str]] = {}
        facts_changed = {k: v for k, v in clean.items() if household[k] != v}
        if facts_changed:
            store.append("household_corrected", {
                "household_id": household_id, "shelter_id": identity.shelter_id,
                "changes": facts_changed})
            changed[household_id] = sorted(facts_changed)
        for pid, fields in cleaned.items():
            assert fields is not None
            delta = {k: v for k, v in fields.items() if members[pid][k] != v}
            if not delta:
                continue
            changed[pid] = sorted(delta)
            if any(k in delta for k in NAME_FIELDS[:2]):  # the card carries the name
                delta["card_code"] = _card(identity, pid, fields, today)
            store.append("person_corrected", {
                "person_id": pid, "household_id": household_id,
                "shelter_id": identity.shelter_id, "changes": delta})
        for subject, fields_changed in changed.items():
            audit(store, actor, "correct_household" if subject == household_id
                  else "correct_person", subject, ",".join(fields_changed))
    return changed


def _card(identity: NodeIdentity, person_id: str, fields: dict[str, Any],
          today: date | None) -> str:
    key = keys.load_private_key(identity.signing_key_pem)
    name = cards.display_name(fields["family_name"], fields["given_name"])
    return cards.make_code(key, person_id, identity.shelter_id, identity.node_id, name,
                           today or today_jst())


def add_person(store: EventStore, identity: NodeIdentity, household_id: str, data: Any,
               actor: str, today: date | None = None) -> dict[str, Any]:
    """Add a member to a registered household (the fields of a registration's member,
    checked the same way). Returns their ``person_id``, ``display_name``, ``code`` and
    ``short_code``, as a registration does."""
    with store.write():
        household = households.get_household(store.db, household_id)
        if household is None:
            raise NotFound()
        errors: dict[str, str] = {}
        context = {"language": household["language"], "today": today or today_jst()}
        clean = _checked(PersonIn, data, "new", errors, context)
        if len(household["members"]) >= MAX_MEMBERS:
            errors["new.family_name"] = N_("At most 20 people can register as one household.")
        if errors or clean is None:
            raise CorrectionInvalid(fields=errors)
        person_id = new_id()
        member = {**clean, "person_id": person_id, "card_code": _card(identity, person_id,
                                                                       clean, today)}
        for attempt in range(5):
            member["short_code"] = households.free_short_codes(store.db, 1)[0]
            try:
                store.append("person_added", {"household_id": household_id,
                                              "shelter_id": identity.shelter_id,
                                              "members": [member]})
            except sqlite3.IntegrityError:  # the short code was taken meanwhile
                if attempt == 4:
                    raise
                continue
            break
        audit(store, actor, "add_person", person_id, household_id)
    return {"person_id": person_id, "display_name": cards.display_name(
        clean["family_name"], clean["given_name"]), "code": member["card_code"],
        "short_code": shortcode.display(member["short_code"])}


def reprint(store: EventStore, person_id: str, actor: str) -> tuple[cards.PrintedCard, str]:
    """One person's card to print again, and their household's language; audited. The
    card is the one on record (signed again when the name was corrected): a lost card
    still admits its holder (cards carry no serial a desk could refuse)."""
    person = households.get_person(store.db, person_id)
    if person is None:
        raise NotFound()
    language = store.db.execute("SELECT language FROM households WHERE household_id = ?",
                                [person["household_id"]]).fetchone()[0]
    audit(store, actor, "reprint_card", person_id)
    return cards.PrintedCard(person["card_code"], cards.display_name(
        person["family_name"], person["given_name"]),
        person["short_code"].replace("-", "")), str(language)


# --- projections ------------------------------------------------------------------------

def _latest(db: Database, subject: str, changes: dict[str, Any], hlc: str,
            allowed: tuple[str, ...]) -> dict[str, Any]:
    """The changes whose field no later correction has set, noting this one's clock."""
    known = dict(db.execute("SELECT field, hlc FROM corrected_fields WHERE subject_id = ?",
                            [subject]).fetchall())
    fresh = {k: v for k, v in changes.items() if k in allowed and known.get(k, "") < hlc}
    db.conn.executemany(
        "INSERT INTO corrected_fields (subject_id, field, hlc) VALUES (?, ?, ?) "
        "ON CONFLICT (subject_id, field) DO UPDATE SET hlc = excluded.hlc",
        [(subject, k, hlc) for k in fresh])
    return fresh


def _update(db: Database, table: str, key: str, subject: str, values: dict[str, Any]) -> None:
    sets = ", ".join(f"{column} = ?" for column in values)  # columns: a fixed list's
    db.execute(f"UPDATE {table} SET {sets} WHERE {key} = ?", [*values.values(), subject])


@projection("household_corrected")
def _apply_household_corrected(db: Database, event: Event) -> None:
    p = event.payload
    fresh = _latest(db, p["household_id"], p["changes"], event.hlc, HOUSEHOLD_FIELDS)
    if fresh:
        _update(db, "households", "household_id", p["household_id"], fresh)


@projection("person_corrected")
def _apply_person_corrected(db: Database, event: Event) -> None:
    p = event.payload
    fresh = _latest(db, p["person_id"], p["changes"], event.hlc,
                    (*PERSON_FIELDS, "card_code"))
    row = next(iter(db.query("SELECT * FROM persons WHERE person_id = ?",
                             [p["person_id"]])), None)
    if not fresh or row is None:
        return
    values = {k: json.dumps(v) if k == "needs" else v for k, v in fresh.items()}
    now = {**row, **fresh}
    if any(k in fresh for k in NAME_FIELDS):
        values["name_key"] = name_key(now["family_name"], now["given_name"])
        values["kana_key"] = kana_key(now["family_name_kana"], now["given_name_kana"])
    _update(db, "persons", "person_id", p["person_id"], values)
    if any(k in fresh for k in (*NAME_FIELDS, "birth_date")):
        households.flag_duplicates(db, event.hlc, p["person_id"], row["household_id"],
                                   values.get("name_key", row["name_key"]),
                                   values.get("kana_key", row["kana_key"]),
                                   now["birth_date"])


@projection("person_added")
def _apply_person_added(db: Database, event: Event) -> None:
    p = event.payload
    for m in p["members"]:
        last = db.execute("SELECT max(position) FROM persons WHERE household_id = ?",
                          [p["household_id"]]).fetchone()[0]
        households.insert_person(db, event.hlc, p["household_id"], p["shelter_id"], m,
                                 (last if last is not None else -1) + 1)


def _tells_nothing(db: Any, payload: dict[str, Any]) -> bool:
    """Whether a household correction makes enquiries tell nothing: applied even when
    stamped far ahead, since nothing can outrank it in telling less (a 'tell nobody' must
    never wait). Any other consent, once stamped far ahead, would outrank a later one."""
    changes = payload.get("changes")
    return isinstance(changes, dict) and changes.get("consent") == "none"


AHEAD_OK.update({"household_corrected": _tells_nothing, "person_corrected": lambda db, p: False})


# --- what HQ refuses --------------------------------------------------------------------

def _household_of(db: Any, household: Any, batch: Batch | None) -> tuple[str, bool] | None:
    if not isinstance(household, str):
        return None
    return code_households.known(db, household, batch.households if batch else {})


# What a correction may name: a household or a person the sender's shelter registered.
_UNKNOWN = {"household": N_("names a household this store does not know"),
            "person": N_("names a person this store does not know")}
_NOT_ITS = {"household": N_("concerns a household of shelter %(about)s, not the sender's"),
            "person": N_("concerns a person of shelter %(about)s, not the sender's")}


def _not_owned(found: str | None, payload: dict[str, Any], what: str) -> Refusal | None:
    if found is None:  # not known here (yet): kept, no alarm, as an unknown request is
        return Refusal(_UNKNOWN[what], {}, False)
    if found != payload.get("shelter_id"):
        return Refusal(_NOT_ITS[what], {"about": found})
    return None


@authority.id_check("household_corrected")
def _own_household(db: Any, payload: dict[str, Any], batch: Batch | None) -> Refusal | None:
    known = _household_of(db, payload.get("household_id"), batch)
    return _not_owned(known[0] if known else None, payload, "household")


@authority.id_check("person_corrected")
def _own_person(db: Any, payload: dict[str, Any], batch: Batch | None) -> Refusal | None:
    person, household = payload.get("person_id"), payload.get("household_id")
    if not isinstance(person, str):
        return _not_owned(None, payload, "person")
    row = db.execute("SELECT issuing_shelter, household_id FROM persons WHERE person_id = ?",
                     [person]).fetchone()
    if row is None and batch is not None and person in batch.person_households:
        of = batch.person_households[person]
        row = (batch.households.get(of, ("?",))[0], of)
    if row is not None and row[1] != household:
        return Refusal(N_("names a person of another household"), {})
    return _not_owned(row[0] if row else None, payload, "person")


@authority.id_check("person_added")
def _own_household_new_people(db: Any, payload: dict[str, Any],
                              batch: Batch | None) -> Refusal | None:
    known = _household_of(db, payload.get("household_id"), batch)
    refused = _not_owned(known[0] if known else None, payload, "household")
    if refused is not None:
        return refused
    members = payload.get("members")
    ids = [m.get("person_id") for m in (members if isinstance(members, list) else [])
           if isinstance(m, dict)]
    if len(set(map(str, ids))) != len(ids):  # two members of one id: one would be lost
        return Refusal(N_("a person id is given twice"), {})
    if known is not None and known[1] and isinstance(payload["household_id"], str):
        # A household made from a code: its numbers' ids are for the family's next code
        # (a member added here has a ULID of its own): one taken now is someone else's.
        try:
            derived = {household_code.person_id(payload["household_id"], n)
                       for n in range(256)}
        except ValueError:  # not a ULID: no code made it
            derived = set()
        if derived & set(map(str, ids)):
            return Refusal(N_("a person id a household code gives a member of this "
                              "household: it is not a new person's"), {})
    taken = authority.issuers(db, [i for i in ids if isinstance(i, str)])
    for person in ids:
        if person in taken or (batch is not None and person in batch.people):
            return Refusal(N_("a person with this id is registered already (shelter "
                              "%(about)s)"), {"about": taken.get(person, "?")})
    return None


def _card_of(code: Any, person: Any, shelter: Any) -> bool:
    """Whether ``code`` is a card (well formed) of this person, issued by this shelter."""
    try:
        card = cards.parse_code(code, {}) if isinstance(code, str) else None
    except cards.CardError:
        return False
    return card is not None and card.person_id == person and card.shelter_id == shelter


@authority.value_check("household_corrected")
def _household_values(payload: dict[str, Any]) -> str | None:
    return canonical("household", payload.get("changes"))


@authority.value_check("person_corrected")
def _person_values(payload: dict[str, Any]) -> str | None:
    changes = payload.get("changes")
    if isinstance(changes, dict) and "card_code" in changes:
        if not _card_of(changes["card_code"], payload.get("person_id"),
                        payload.get("shelter_id")):
            return "changes.card_code"
        changes = {k: v for k, v in changes.items() if k != "card_code"}
        if not changes:
            return None
    return canonical("person", changes)


@authority.value_check("person_added")
def _added_values(payload: dict[str, Any]) -> str | None:
    members = payload.get("members")
    if not isinstance(members, list) or not 0 < len(members) <= MAX_MEMBERS:
        return "members"
    codes = [m.get("short_code") for m in members if isinstance(m, dict)]
    if len({str(c) for c in codes}) != len(codes):  # a short code finds one person
        return "members.short_code"
    for m in members:
        if not isinstance(m, dict) or set(m) != {*PERSON_FIELDS, "person_id", "short_code",
                                                 "card_code"}:
            return "members"
        person = m["person_id"]
        if not isinstance(person, str) or not ULID_RE.match(person):
            return "members.person_id"
        if not isinstance(m["short_code"], str) \
                or shortcode.normalise(m["short_code"]) != m["short_code"]:
            return "members.short_code"
        if not _card_of(m["card_code"], person, payload.get("shelter_id")):
            return "members.card_code"
        bad = canonical("person", {k: m[k] for k in PERSON_FIELDS})
        if bad is not None:
            return f"members.{bad}"
    return None
