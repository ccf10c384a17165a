"""Who is here, changed: check in, go out (外出), return, check out (退所), and the projection
that keeps where each person is. Reading who is here (the headcount, a person as the desk
sees them, finding people) is ``shelter.domain.roster``.

A scan names a person (card payload or typed short code) and an action. The decision and
the event that records it happen in one write transaction, so two tablets scanning the
same card at the same moment make one change, not two. Presence belongs to no shelter: a
card issued elsewhere admits its holder provisionally from what the card carries.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlite_utils import Database

from shelter.core import shortcode
from shelter.core.errors import InvalidInput
from shelter.core.events import Event, EventStore, projection, projection_many
from shelter.core.node import NodeIdentity
from shelter.domain import cards, household_code, households
from shelter.domain.accounts import audit
from shelter.domain.households import N_
from shelter.domain.roster import describe, status_here

ACTIONS = ("check_in", "go_out", "return", "check_out")
DESTINATIONS = ("home", "relatives", "hospital", "welfare_shelter", "other_shelter")
STATUS_AFTER = {"check_in": "present", "return": "present", "go_out": "out",
                "check_out": "left"}
# The same card shown twice within this many seconds is one action (a card held up to the
# camera for a moment, or a scanner's double read).
REPEAT_SECONDS = 5.0
DETAIL_LIMIT = 80


class ScanError(InvalidInput):
    """A scan that changes nothing. ``message`` is an English message id (translated by the
    caller); ``status`` the HTTP status that fits (422; 404 for a code no one here has, 409
    for an action that does not fit where the person is)."""

    def __init__(self, code: str, status: int, message: str, **params: Any) -> None:
        super().__init__(message, code=code, status=status, detail=code, **params)
        self.person_id = ""  # the person a refused card names, for the audit log


# Refusals that may be someone trying a false card: audited even though nothing changes.
SUSPECT_CARDS = ("forged", "card_not_verified")


@dataclass(frozen=True)
class Subject:
    person_id: str
    local: bool  # registered in this store (else admitted on what the card says)
    card: cards.Card | None


def identify(db: Database, public_keys: dict[str, str], code: object) -> Subject:
    """The person a scanned payload or typed short code stands for.

    A card naming a person registered here must be signed by a key of the shelter that
    registered them (``card_keys``); otherwise it is refused as ``card_not_verified``. A
    card from an issuer not known here admits only someone not registered here, and
    provisionally (``Card.verified`` is then False)."""
    if not isinstance(code, str) or not code.strip() or len(code) > 400:
        raise ScanError("garbled", 422, N_("This code cannot be read. Scan it again or "
                                           "type the short code printed under the QR."))
    # A Japanese keyboard (or IME) types full-width letters and digits: ＳＨＣ１．...
    text = unicodedata.normalize("NFKC", code).strip()
    if household_code.looks_like(text):
        raise ScanError("household_code", 422, N_(
            "This is a household code, not a card. Scan it at the desk to register the "
            "household."))
    if text.upper().startswith(cards.VERSION + "."):
        try:
            card = cards.parse_code(text.upper(), public_keys)
        except cards.CardError as refused:
            if refused.reason == "forged":
                error = ScanError("forged", 422, N_(
                    "This card is not genuine. Nothing was changed. Ask the shelter "
                    "manager."))
                error.person_id = text.upper().split(".")[1]  # well formed: checked first
                raise error from None
            raise ScanError("garbled", 422, N_(
                "This code cannot be read. Scan it again or type the short code printed "
                "under the QR.")) from None
        row = db.execute(
            "SELECT p.issuing_shelter, k.shelter_id FROM persons AS p "
            "LEFT JOIN card_keys AS k ON k.node_id = ? WHERE p.person_id = ?",
            [card.node_id, card.person_id]).fetchone()
        if row is None:
            return Subject(card.person_id, False, card)
        # Registered here: the card must be one that person's shelter signed. A key not
        # known here, or one of another shelter (a stolen laptop's, say), proves nothing.
        registered_at, key_shelter = row
        if not (card.verified and key_shelter == registered_at
                and card.shelter_id == registered_at):
            error = ScanError("card_not_verified", 422, N_(
                "This card could not be verified: it names someone registered here, but "
                "their shelter did not sign it. Nothing was changed. Check who they are "
                "and ask the shelter manager."))
            error.person_id = card.person_id
            raise error
        return Subject(card.person_id, True, card)
    typed = shortcode.normalise(text)
    if typed is None:
        raise ScanError("garbled", 422, N_("This short code has a typing mistake. Check "
                                           "it against the card and type it again."))
    row = db.execute("SELECT person_id FROM persons WHERE short_code = ?", [typed]).fetchone()
    if row is None:
        # A short code carries nothing: one from another shelter's card is not known here
        # (its QR code is: it carries the name, and admits them provisionally).
        raise ScanError("unknown", 404, N_("No one registered here has this code. If the "
                                           "card is from another shelter, scan its QR code "
                                           "or register them here."))
    return Subject(row[0], True, None)


def _resolve(status: str | None, action: str) -> str | None:
    """The action that really happens given where the person is; None: nothing to do."""
    here = status in ("present", "out")
    if action in ("check_in", "return", "auto"):
        if not here:
            return "check_in"
        if status == "out":
            return "return"
        return "go_out" if action == "auto" else None
    if action == "go_out":
        if status == "present":
            return "go_out"
        if status == "out":
            return None
        raise ScanError("not_here", 409, N_("This person is not checked in here. Check "
                                            "them in first."))
    if action == "check_out":
        return None if status == "left" else "check_out"
    raise AssertionError(action)


def scan(store: EventStore, shelter_id: str, public_keys: dict[str, str], code: object,
         action: object, destination: object = "", destination_detail: object = "",
         actor: str = "") -> dict[str, Any]:
    """Apply one scan. Returns ``describe()`` of the person plus ``outcome``: "done" (a
    change was recorded), "already" (they were already so) or "repeated" (the same scan
    moments ago)."""
    destination, detail = _where_to(action, destination, destination_detail)
    try:
        return _scan(store, shelter_id, public_keys, code, str(action), destination, detail,
                     actor)
    except ScanError as refused:
        if refused.code in SUSPECT_CARDS:  # after the rollback: this must stay recorded
            audit(store, actor or "-", "scan_refused", refused.person_id or "-",
                  f"{action}:{refused.code}")
        raise


def _where_to(action: object, destination: object,
              destination_detail: object) -> tuple[str, str]:
    """The action checked, and where to (a check-out's destination and its detail)."""
    if action not in ACTIONS + ("auto",):
        raise ScanError("invalid_action", 422, N_("Choose what to do: check in, go out, "
                                                  "return or check out."))
    destination = destination or ""
    detail = destination_detail.strip() if isinstance(destination_detail, str) \
        else None if destination_detail else ""
    if action != "check_out":
        return "", ""
    if destination not in DESTINATIONS:
        raise ScanError("invalid_destination", 422, N_("Choose where the person is going."))
    if detail is None or len(detail) > DETAIL_LIMIT or any(ord(ch) < 32 for ch in detail):
        raise ScanError("invalid_destination", 422, N_("Too long or not valid text."))
    if destination == "other_shelter" and not detail:
        raise ScanError("invalid_destination", 422, N_("Say which shelter."))
    return str(destination), detail


def _scan(store: EventStore, shelter_id: str, public_keys: dict[str, str], code: object,
          action: str, destination: str, detail: str, actor: str) -> dict[str, Any]:
    with store.write() as db:
        subject = identify(db, public_keys, code)
        row = db.execute("SELECT shelter_id, status, last_action, since FROM presence "
                         "WHERE person_id = ?", [subject.person_id]).fetchone()
        status = row[1] if row and row[0] == shelter_id else None
        if row and row[0] == shelter_id and action in ("auto", row[2]) \
                and _age_seconds(row[3]) < REPEAT_SECONDS:
            outcome, applied = "repeated", row[2]
        else:
            resolved = _resolve(status, action)
            if resolved is None:
                outcome, applied = "already", row[2] if row else action
            else:
                payload: dict[str, Any] = {
                    "person_id": subject.person_id, "shelter_id": shelter_id,
                    "action": resolved, "destination": destination,
                    "destination_detail": detail, "actor": actor}
                if not subject.local and subject.card is not None:
                    c = subject.card
                    payload["card"] = {"shelter_id": c.shelter_id, "node_id": c.node_id,
                                       "display_name": c.display_name,
                                       "issued_on": c.issued_on, "verified": c.verified}
                store.append("presence_changed", payload)
                outcome, applied = "done", resolved
        audit(store, actor or "-", "scan", subject.person_id, f"{action}:{outcome}")
        result = describe(db, subject.person_id, shelter_id)
    if subject.card is not None and not subject.local:
        # What this card proves, even if an earlier card for them was verified.
        result["card_verified"] = subject.card.verified
    return {**result, "outcome": outcome, "action": applied}


# --- a whole household at once ------------------------------------------------------------

def admit_household(store: EventStore, identity: NodeIdentity, card_keys: dict[str, str],
                    text: object, action: object, destination: object = "",
                    destination_detail: object = "", actor: str = "",
                    today: date | None = None) -> dict[str, Any]:
    """POST /api/v1/scans with a household code: the household is registered here if it is
    new (with the code's household id and the person ids derived from it; when it is known,
    only its members not known yet), then ``action`` applies to each of the code's members
    (``check_in`` and ``auto`` check in whoever is not in), all in one write transaction.
    Returns ``HouseholdScanned`` (shelter/domain/schemas/desk.py). Raises
    HouseholdCodeError, households.ValidationError (what the code says would be refused on
    the form), households.CodeTaken or ScanError. ``card_keys`` is not read: a household
    code is no card, and nothing in it is signed."""
    destination, detail = _where_to(action, destination, destination_detail)
    if not isinstance(text, str):
        raise household_code.HouseholdCodeError("garbled")
    code = household_code.read(text)
    with store.write() as db:
        registered = households.register_from_code(store, identity, code, today)
        if registered["registered"]:
            audit(store, actor or "-", "register_household_code", code.household_id,
                  str(len(registered["members"])))
        people = [household_code.person_id(code.household_id, seq) for seq in code.seqs]
        result = _household_action(store, db, identity.shelter_id, code.household_id,
                                   people, str(action), destination, detail, actor)
    return {**result, "registered": registered["registered"]}


def scan_household(store: EventStore, shelter_id: str, public_keys: dict[str, str],
                   code: object, action: object, destination: object = "",
                   destination_detail: object = "", actor: str = "") -> dict[str, Any]:
    """A member's card (or short code) with ``household: true``: ``action`` for everyone of
    their household, in one write transaction. Answers as ``admit_household``."""
    destination, detail = _where_to(action, destination, destination_detail)
    try:
        with store.write() as db:
            subject = identify(db, public_keys, code)
            row = db.execute("SELECT household_id FROM persons WHERE person_id = ?",
                             [subject.person_id]).fetchone()
            if not subject.local or row is None:
                raise ScanError("household_unknown", 409, N_(
                    "This person's household is not registered here. Scan each card."))
            people = [r[0] for r in db.execute(
                "SELECT person_id FROM persons WHERE household_id = ? ORDER BY position",
                [row[0]])]
            result = _household_action(store, db, shelter_id, row[0], people, str(action),
                                       destination, detail, actor)
    except ScanError as refused:
        if refused.code in SUSPECT_CARDS:
            audit(store, actor or "-", "scan_refused", refused.person_id or "-",
                  f"{action}:{refused.code}")
        raise
    return {**result, "registered": False}


def _household_action(store: EventStore, db: Database, shelter_id: str, household_id: str,
                      people: list[str], action: str, destination: str, detail: str,
                      actor: str) -> dict[str, Any]:
    """``action`` for each of ``people`` where it fits (inside the caller's transaction):
    ``outcome`` "done" (a change recorded), "already" (they were so) or "not_here" (going
    out or checking out, for someone not checked in here)."""
    wanted = "check_in" if action == "auto" else action
    members = []
    for person in people:
        row = db.execute("SELECT shelter_id, status FROM presence WHERE person_id = ?",
                         [person]).fetchone()
        status = row[1] if row and row[0] == shelter_id else None
        if wanted in ("go_out", "check_out") and status not in ("present", "out"):
            # Only those here go out or leave: a check-out of someone never in here, or in
            # at another shelter, would outrank where they really are.
            outcome = "already" if wanted == "check_out" and status == "left" else "not_here"
            resolved = None
        else:
            resolved = _resolve(status, wanted)
            outcome = "done" if resolved is not None else "already"
        if resolved is not None:
            store.append("presence_changed", {
                "person_id": person, "shelter_id": shelter_id, "action": resolved,
                "destination": destination, "destination_detail": detail, "actor": actor})
        members.append((person, outcome))
    outcome = "done" if any(o == "done" for _, o in members) else "already"
    audit(store, actor or "-", "scan_household", household_id, f"{wanted}:{outcome}")
    found = {r["person_id"]: r for r in db.query(
        "SELECT p.person_id, p.family_name, p.given_name, p.card_code, p.short_code, "
        "pr.status, pr.shelter_id, pr.last_action, pr.since, pr.destination, "
        "pr.destination_detail FROM persons p LEFT JOIN presence pr USING (person_id) "
        "WHERE p.household_id = ?", [household_id])}
    answered = []
    for person, done in members:
        r = found[person]
        answered.append({
            "person_id": person,
            "display_name": cards.display_name(r["family_name"], r["given_name"]),
            "code": r["card_code"], "short_code": shortcode.display(r["short_code"]),
            "presence": {
                "status": status_here(r["status"], r["shelter_id"], shelter_id),
                "last_action": r["last_action"], "since": r["since"],
                "shelter_id": r["shelter_id"], "destination": r["destination"] or "",
                "destination_detail": r["destination_detail"] or ""},
            "outcome": done})
    first = found[people[0]]["family_name"] if people else ""
    return {"household_id": household_id, "display_name": f"{first} ({len(people)})",
            "action": wanted, "outcome": outcome, "members": answered}


def _age_seconds(iso: str) -> float:
    try:
        then = datetime.fromisoformat(iso)
    except ValueError:
        return float("inf")
    return (datetime.now(UTC) - then).total_seconds()


def whereabouts(db: Database, people: list[str]) -> dict[str, tuple[Any, ...]]:
    """For each of ``people`` this store knows: (since_hlc, display_name, registered_shelter,
    shelter_id, status) from their presence (all None if they have none) and the shelter they
    registered at (None if not registered here). One query, where sync's hot path had two;
    the ids travel as one JSON array, so there is no parameter limit to cut them for."""
    return {row[0]: row[1:] for row in db.conn.execute(
        "SELECT j.value, p.since_hlc, p.display_name, p.registered_shelter, p.shelter_id, "
        "p.status, r.issuing_shelter FROM json_each(?) AS j "
        "LEFT JOIN presence AS p ON p.person_id = j.value "
        "LEFT JOIN persons AS r ON r.person_id = j.value "
        "WHERE p.person_id IS NOT NULL OR r.person_id IS NOT NULL", [json.dumps(people)])}


@projection("presence_changed")
def _apply_presence_changed(db: Database, event: Event) -> None:
    _apply_presence_changes(db, [event])


@projection_many("presence_changed")
def _apply_presence_changes(db: Database, events: list[Event]) -> None:
    """Presence changes in order: each is logged; the latest (by HLC) per person is where the
    person is, whatever order they arrive in; a check-in while in at another shelter (no
    check-out between) is flagged. Reads each person's state once for the whole run."""
    found = whereabouts(db, list({e.payload["person_id"] for e in events}))
    current = {person: row[:5] for person, row in found.items() if row[0] is not None}
    registered = {person: row[5] for person, row in found.items() if row[5] is not None}
    log, flags, latest = [], [], {}
    for event in events:
        p = event.payload
        person = p["person_id"]
        log.append((event.event_id, person, p["shelter_id"], p["action"],
                    p.get("destination", ""), event.recorded_at, event.hlc, p.get("actor", "")))
        now = current.get(person)
        if now is not None and p["action"] in ("check_in", "return") \
                and now[3] != p["shelter_id"] and now[4] in ("present", "out"):
            # In at two shelters with no check-out between: flag it, whichever came first.
            flags.append((person, event.event_id, now[3], p["shelter_id"],
                          "present at two shelters", event.recorded_at))
        if now is not None and now[0] >= event.hlc:
            continue  # a later change is already known (events can arrive out of order)
        issuer = registered.get(person)
        card = p.get("card") or {}
        status = STATUS_AFTER[p["action"]]
        home = issuer if issuer is not None else card.get("shelter_id", now[2] if now else "")
        name = card.get("display_name", now[1] if now else "")
        current[person] = (event.hlc, name, home, p["shelter_id"], status)
        latest[person] = (person, p["shelter_id"], status, p["action"], event.recorded_at,
                          event.hlc, p.get("destination", ""), p.get("destination_detail", ""),
                          0 if issuer is not None else 1, home, name,
                          1 if issuer is not None or card.get("verified") else 0)
    db.conn.executemany(
        "INSERT OR IGNORE INTO presence_log (event_id, person_id, shelter_id, action, "
        "destination, at, hlc, actor) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", log)
    if flags:
        db.conn.executemany(
            "INSERT OR IGNORE INTO presence_flags (person_id, event_id, shelter_a, shelter_b, "
            "reason, flagged_at) VALUES (?, ?, ?, ?, ?, ?)", flags)
    db.conn.executemany(
        """INSERT INTO presence (person_id, shelter_id, status, last_action, since, since_hlc,
               destination, destination_detail, provisional, registered_shelter, display_name,
               card_verified)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (person_id) DO UPDATE SET shelter_id = excluded.shelter_id,
               status = excluded.status, last_action = excluded.last_action,
               since = excluded.since, since_hlc = excluded.since_hlc,
               destination = excluded.destination,
               destination_detail = excluded.destination_detail,
               provisional = excluded.provisional,
               registered_shelter = excluded.registered_shelter,
               display_name = excluded.display_name, card_verified = excluded.card_verified""",
        list(latest.values()))

