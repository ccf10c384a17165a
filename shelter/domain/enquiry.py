"""Safety enquiries (安否確認): what HQ staff may tell a relative or an acquaintance who
asks about someone, within the consent that person's household gave at registration.

* consent "relatives": a relative learns where the person is (shelter and state), an
  acquaintance nothing;
* consent "acquaintances": a relative learns as much, an acquaintance the name and
  whereabouts only;
* consent "none", or nobody found: "no information can be given", the same answer either
  way, so it never reveals that someone is registered.

Whereabouts are where HQ knows the person to be (``whereabouts``): the shelter they stay
at and since when, or, after a check-out, where they went: the shelter HQ saw them checked
in at, else the destination the desk recorded (a shelter by name, home, relatives, a
hospital). An acquaintance hears less (``for_acquaintance``).

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
from shelter.domain.presence import DESTINATIONS
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
    consented. Each answer is ``whereabouts`` (what a relative may hear), reduced by
    ``for_acquaintance`` when an acquaintance asks."""
    nk, kk = name_key(family, given), kana_key(family, given)
    found = db.execute(
        """SELECT p.person_id, p.family_name, p.given_name, p.family_name_kana,
                  p.given_name_kana, h.consent, h.whereabouts, h.registered_at,
                  p.issuing_shelter FROM persons p
           JOIN households h ON h.household_id = p.household_id
           WHERE p.birth_date = ? AND (p.name_key = ? OR (? != '' AND p.kana_key = ?))
           LIMIT ?""", [birth_date, nk, kk, kk, MATCHES]).fetchall()
    out = []
    for person_id, fam, giv, fam_kana, giv_kana, consent, stays, registered_at, issuing \
            in found:
        if not may_be_told(consent, relation):
            continue
        entry = {"name": f"{fam} {giv}".strip(), "kana": f"{fam_kana} {giv_kana}".strip(),
                 **whereabouts(db, person_id, issuing, stays, registered_at, names)}
        out.append(entry if relation == "relative" else for_acquaintance(entry))
    return out


def whereabouts(db: Database, person_id: str, issuing: str, stays: str, registered_at: str,
                names: Mapping[str, str]) -> dict[str, Any]:
    """Where HQ knows the person to be, as a relative may hear it:

    * ``status``: ``present`` or ``out`` (staying at ``shelter``), ``left`` (checked out of
      ``shelter``), ``registered`` (registered at ``shelter``, never checked in; ``stays``
      says where they said they would stay: home, car, other);
    * ``since``: the stored time of that (registration, or the last desk action);
    * ``came_from``: the shelter they checked out of, when they are now at another;
    * after a check-out, ``went`` is the destination the desk chose (home, relatives,
      hospital, welfare_shelter, other_shelter; "" for none) and ``went_to`` the name of a
      shelter HQ knows that the desk's note names (``went_known``), else "". The desk's
      note itself is never given, for any destination (it is free text).

    A check-out is not the last word: when the person was checked in at another shelter
    and not out of it again, they are there, whichever desk's event came first."""
    row = db.execute("SELECT shelter_id, status, since, destination, destination_detail "
                     "FROM presence WHERE person_id = ?", [person_id]).fetchone()
    answer: dict[str, Any] = {"status": "registered", "shelter": names.get(issuing, issuing),
                              "since": registered_at, "stays": stays, "came_from": "",
                              "went": "", "went_to": "", "went_known": False}
    if row is None:
        return answer
    shelter_id, status, since, destination, detail = row
    answer.update(status=status, shelter=names.get(shelter_id, shelter_id), since=since,
                  stays="")
    if status != "left":
        return answer
    elsewhere = _in_elsewhere(db, person_id, shelter_id)
    if elsewhere is not None:
        other, action, at = elsewhere
        answer.update(status="out" if action == "go_out" else "present",
                      shelter=names.get(other, other), since=at,
                      came_from=names.get(shelter_id, shelter_id))
        return answer
    answer["went"] = destination if destination in DESTINATIONS else ""
    if destination in ("other_shelter", "welfare_shelter") and detail:
        # Only a name from HQ's registry: the desk's field is "which shelter, or a note",
        # free text that may hold a phone number or a diagnosis, and is never read out.
        known = _registry_name(db, detail, names)
        answer.update(went_to=known or "", went_known=known is not None)
    return answer


def _in_elsewhere(db: Database, person_id: str, left: str) -> tuple[str, str, str] | None:
    """The shelter other than ``left`` where the person's last desk action (by HLC) keeps
    them in (check-in, return, going out), the latest such, when it came after they arrived
    at ``left`` (a stay from before that is stale: that desk just never checked them out);
    None when there is none."""
    last: dict[str, tuple[str, str, str]] = {}
    arrived = ""
    for shelter_id, action, at, hlc in db.execute(
            "SELECT shelter_id, action, at, hlc FROM presence_log WHERE person_id = ? "
            "ORDER BY hlc", [person_id]):
        last[shelter_id] = (action, at, hlc)
        if shelter_id == left and action in ("check_in", "return"):
            arrived = hlc
    staying = [(hlc, shelter_id, action, at) for shelter_id, (action, at, hlc) in last.items()
               if shelter_id != left and action in ("check_in", "return", "go_out")
               and hlc > arrived]
    if not staying:
        return None
    _, shelter_id, action, at = max(staying)
    return shelter_id, action, at


def _registry_name(db: Database, typed: str, names: Mapping[str, str]) -> str | None:
    """The name HQ knows a shelter by, when the desk's note is that name (width, case and
    spaces aside), or holds the whole name (four characters or more: "金塚小学校の体育館")
    of exactly one shelter of HQ's registry (imported, not a name a node set: a stolen
    laptop naming its shelter "認知症" would otherwise learn which notes hold the word);
    None otherwise. Only that name is told, never the note."""
    key = name_key("", typed)
    exact = next((name for name in names.values() if name_key("", name) == key), None)
    if exact is not None or not key:
        return exact
    found = {name for (name,) in db.execute("SELECT name FROM hq_shelters")
             if len(name_key("", name)) >= 4 and name_key("", name) in key}
    return found.pop() if len(found) == 1 else None


def for_acquaintance(entry: dict[str, Any]) -> dict[str, Any]:
    """What an acquaintance may hear: the name and where the person is, no more. Not since
    when, not whether they are out of the shelter at the moment, not where they came from;
    a hospital or a welfare shelter (福祉避難所: for those who need care) is health
    information (要配慮個人情報), so a check-out to one says only that the person left."""
    status = "in_shelter" if entry["status"] in ("present", "out") else entry["status"]
    hospital = entry["went"] in ("hospital", "welfare_shelter")
    return {**entry, "status": status, "since": "", "came_from": "",
            "went": "" if hospital else entry["went"],
            "went_to": "" if hospital else entry["went_to"]}


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
