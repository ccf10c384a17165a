"""Safety enquiries (安否確認): what HQ staff may tell a relative or an acquaintance who
asks about someone, within the consent that person's household gave at registration.

* consent "relatives": a relative learns where the person is (shelter and state), an
  acquaintance nothing;
* consent "acquaintances": a relative learns as much, an acquaintance the name and
  whereabouts only;
* consent "none", or nobody found: "no information can be given", the same answer either
  way, so it never reveals that someone is registered.

Every search is written to the audit log (who asked, for whom, how many answers), and one
member of staff may search at most ENQUIRIES_PER_WINDOW times per ENQUIRY_WINDOW.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from shelter.core.errors import N_, InvalidInput, TooMany
from shelter.core.events import EventStore
from shelter.domain.accounts import audit
from shelter.domain.text import kana_key, name_key

RELATIONS = ("relative", "acquaintance")
FIELDS = ("family_name", "given_name", "birth_date", "relation", "enquirer", "enquirer_contact")
ENQUIRIES_PER_WINDOW = 20
ENQUIRY_WINDOW = timedelta(minutes=10)
MATCHES = 5  # people of one name and birth date looked at, at most


def read_form(form: Mapping[str, str]) -> dict[str, str]:
    """The enquiry's fields from a form: trimmed, 100 characters each."""
    return {k: form.get(k, "").strip()[:100] for k in FIELDS}


def check(fields: dict[str, str]) -> None:
    """InvalidInput when the enquiry cannot be searched as it stands."""
    problem = None
    try:
        datetime.strptime(fields["birth_date"], "%Y-%m-%d")
    except ValueError:
        problem = N_("Enter the birth date as YYYY-MM-DD.")
    if not fields["family_name"]:
        problem = N_("Enter the family name (kanji or kana).")
    elif fields["relation"] not in RELATIONS:
        problem = N_("Say whether the person asking is a relative or an acquaintance.")
    elif not fields["enquirer"]:
        problem = N_("Enter who is asking (name), for the record.")
    if problem:
        raise InvalidInput(problem)


def may_be_told(consent: str, relation: str) -> bool:
    """Whether someone of ``relation`` may learn anything, given the consent recorded."""
    return consent == "acquaintances" or (consent == "relatives" and relation == "relative")


def enquire(db: Database, family: str, given: str, birth_date: str, relation: str,
            names: Mapping[str, str]) -> list[dict[str, Any]]:
    """What may be told to a relative or an acquaintance about the people of this name
    (kanji or any kana) and birth date; ``names`` gives a shelter's name by its id. Empty
    means "no information can be given": the same answer whether nobody matches or nobody
    consented."""
    nk, kk = name_key(family, given), kana_key(family, given)
    found = db.execute(
        """SELECT p.person_id, p.family_name, p.given_name, h.consent, h.whereabouts,
                  p.issuing_shelter FROM persons p
           JOIN households h ON h.household_id = p.household_id
           WHERE p.birth_date = ? AND (p.name_key = ? OR (? != '' AND p.kana_key = ?))
           LIMIT ?""", [birth_date, nk, kk, kk, MATCHES]).fetchall()
    out = []
    for person_id, fam, giv, consent, whereabouts, issuing in found:
        if not may_be_told(consent, relation):
            continue
        where = db.execute("SELECT shelter_id, status FROM presence WHERE person_id = ?",
                           [person_id]).fetchone()
        shelter_id = where[0] if where else issuing
        name = names.get(shelter_id, shelter_id)
        state = where[1] if where else ("registered_" + whereabouts)
        entry = {"shelter": name, "state": state}
        if relation == "acquaintance":  # name and whereabouts only
            entry = {"name": f"{fam} {giv}".strip(), "shelter": name,
                     "state": "left" if state == "left" else "in_shelter"
                     if state in ("present", "out") else "registered"}
        out.append(entry)
    return out


def too_many(db: Database, actor: str, now: datetime | None = None) -> bool:
    """Whether ``actor`` has searched ENQUIRIES_PER_WINDOW times within ENQUIRY_WINDOW."""
    since = ((now or datetime.now(UTC)) - ENQUIRY_WINDOW).isoformat(timespec="milliseconds")
    done = db.execute("SELECT count(*) FROM audit_log WHERE action = 'safety_enquiry' "
                      "AND actor = ? AND at >= ?", [actor, since]).fetchone()[0]
    return bool(done >= ENQUIRIES_PER_WINDOW)


def answer(store: EventStore, actor: str, fields: dict[str, str],
           names: Mapping[str, str]) -> list[dict[str, Any]]:
    """What may be told for the enquiry ``fields`` (``read_form``), searched by ``actor``,
    and recorded in the audit log whatever it found. InvalidInput when it cannot be
    searched, TooMany when ``actor`` has searched too often of late (neither recorded)."""
    check(fields)
    if too_many(store.db, actor):
        raise TooMany(N_("Too many searches in the last 10 minutes. Wait a few minutes."))
    results = enquire(store.db, fields["family_name"], fields["given_name"],
                      fields["birth_date"], fields["relation"], names)
    audit(store, actor, "safety_enquiry", f"{fields['family_name']} {fields['given_name']}",
          json.dumps({"birth_date": fields["birth_date"], "relation": fields["relation"],
                      "enquirer": fields["enquirer"], "contact": fields["enquirer_contact"],
                      "answered": len(results)}, ensure_ascii=False))
    return results
