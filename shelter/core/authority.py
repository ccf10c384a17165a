"""Who may say what: the one question every event answers before it is projected.

Each event type has a rule (``RULES``): which side may originate it (a shelter node, HQ, or
nobody else: local-only, never synced) and how to find the shelter it concerns. The event
pipeline (``EventStore.append`` for local appends, ``sync.apply`` for a node's batches at
HQ, ``sync.pull`` for HQ's updates at a node) asks ``refusal()`` and quarantines what is
refused, with the reason; nothing here writes. docs/security.md has the table in prose.

* A node may originate node types about its own shelter only.
* HQ originates HQ types, about any shelter; a node takes from HQ only HQ types about its
  own shelter, and the moves elsewhere of people it registered.
* A node publishes the card key of its own ids only, and a key once held for an id is
  never replaced (``card_key_refusal``).
* Local-only types (accounts and tokens: they hold password and token hashes) never leave
  their store: they travel as stubs, and a real one arriving over sync is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from shelter.core import code_households, lineage, meta
from shelter.core.errors import Internal
from shelter.core.sql import in_chunks

Side = Literal["node", "hq", "local"]
# How to find the shelter an event concerns:
#   payload   its payload's shelter_id
#   sender    nothing in the payload: it is about whoever said it (a node's own settings)
#   request   the shelter that made the supply request its payload names
#   catalog   HQ's and every node's shared list of items: nobody's shelter in particular;
#             adding an item never changes an existing one (insert or ignore)
#   own_store an effect on the sender's own store only: stored elsewhere, never projected
#   prefecture every shelter at once (HQ's registry import): HQ's own, never sent down
Concern = Literal["payload", "sender", "request", "catalog", "own_store", "prefecture"]


class Rule(NamedTuple):
    origin: Side
    concerns: Concern | None


RULES: dict[str, Rule] = {
    # What a shelter's node says.
    "household_registered": Rule("node", "payload"),
    "presence_changed": Rule("node", "payload"),
    "stock_moved": Rule("node", "payload"),
    "supply_requested": Rule("node", "payload"),
    "supply_request_received": Rule("node", "request"),
    "day_note_added": Rule("node", "payload"),
    "settings_changed": Rule("node", "sender"),
    "item_added": Rule("node", "catalog"),
    # A norm is the shelter's own reckoning of its days of supply; HQ keeps its own.
    "item_changed": Rule("node", "own_store"),
    # The key a node signs its cards with, for one of its own ids (``card_key_refusal``):
    # HQ keeps it, so that a node replacing a lost one verifies the shelter's old cards.
    "card_key_published": Rule("node", "payload"),
    # Staff correcting a household or person of its own (shelter/domain/corrections.py).
    "household_corrected": Rule("node", "payload"),
    "person_corrected": Rule("node", "payload"),
    "person_added": Rule("node", "payload"),
    # What HQ says.
    "supply_request_acknowledged": Rule("hq", "request"),
    "supply_dispatched": Rule("hq", "request"),
    "shelter_configured": Rule("hq", "payload"),
    "hq_message": Rule("hq", "payload"),
    "shelter_registry_imported": Rule("hq", "prefecture"),
    # What never leaves the store that made it.
    "user_added": Rule("local", None),
    "user_disabled": Rule("local", None),
    "user_enabled": Rule("local", None),
    "token_created": Rule("local", None),
}
LOCAL_ONLY = frozenset(t for t, rule in RULES.items() if rule.origin == "local")


def N_(message: str) -> str:
    """Marks a message for the catalogs; it is translated where a person reads it."""
    return message


class Refusal(NamedTuple):
    """Why an event may not be said: a message template (English, translated where an
    operator reads it) and what fills it."""

    template: str
    params: dict[str, str]
    # False: not a sign of a thief, only of something this store does not know (a node
    # restored from a backup older than HQ's steps on it): kept, not shown as refused.
    alarm: bool = True

    def text(self) -> str:
        return self.template % self.params


class Refused(Internal, ValueError):
    """A local append that this store's side may not make (a bug, never user input).
    ``str()``: the refusal's reason, in English."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


@dataclass(frozen=True)
class Sender:
    """Who is saying it, as this store knows them.

    ``kind``: "self" (this store's own append), "node" (a node's batch at HQ, its shelter
    from the credential it presented; at a node, ``here`` "node": the events of the node
    this one replaced, downloaded from HQ, sync/history.py) or "hq" (HQ's updates pulled
    by a node).
    ``here``: this store's side ("node" or "hq"); ``shelter_id``: the sender's shelter
    (for "self" on a node and for "hq", the node's own shelter: what may be said here).
    ``hq_ids``: for "hq", the ids HQ speaks under (its epochs), when known.
    """

    kind: Literal["self", "node", "hq"]
    here: Literal["node", "hq"]
    shelter_id: str
    hq_ids: frozenset[str] = frozenset()


class Batch:
    """What earlier events of the same batch established (a supply request made a moment
    before its receipt is noted), so a batch is judged before any of it is projected."""

    def __init__(self) -> None:
        self.requests: dict[str, str] = {}
        self.people: set[str] = set()
        self.person_households: dict[str, str] = {}  # person id -> their household's id
        # household id -> (the shelter that registered it, whether from a household code)
        self.households: dict[str, tuple[str, bool]] = {}
        self.card_keys: dict[str, str] = {}  # node id -> the key published for it

    def note(self, event_type: str, payload: dict[str, Any]) -> None:
        """An event of the batch that was accepted (call only then)."""
        if event_type == "card_key_published":
            self.card_keys.setdefault(str(payload.get("node_id")), str(payload.get("public_key")))
        elif event_type == "supply_requested":
            self.requests[str(payload.get("request_id"))] = str(payload.get("shelter_id"))
        elif event_type in ("household_registered", "person_added") \
                and isinstance(payload.get("members"), list):
            household = str(payload.get("household_id"))
            self.households.setdefault(household, (str(payload.get("shelter_id")),
                                                   "household_code" in payload))
            for m in payload["members"]:
                if isinstance(m, dict):
                    self.people.add(str(m.get("person_id")))
                    self.person_households.setdefault(str(m.get("person_id")), household)


def refusal(db: Any, sender: Sender, event_type: str, payload: dict[str, Any],
            node_id: str, batch: Batch | None = None) -> Refusal | None:
    """Why ``sender`` may not say this event here, or None when it may."""
    rule = RULES.get(event_type)
    if rule is None:
        return Refusal(N_("unknown event type %(type)s"), {"type": event_type})
    if rule.origin == "local":
        if sender.kind == "self":
            return None
        return Refusal(N_("%(type)s never leaves the store that made it (it travels as a "
                          "stub)"), {"type": event_type})
    if sender.kind == "self":
        if rule.origin != sender.here:
            return _only(rule.origin, event_type)
        if sender.here == "hq":
            return None  # HQ acts for any shelter
    elif sender.kind == "node":
        if rule.origin != "node":
            return _only(rule.origin, event_type)
    else:  # from HQ, at a node
        return _from_hq(db, sender, rule, event_type, payload, node_id, batch)
    refused = _concerns_own(db, sender, rule, event_type, payload, batch)
    if refused is None and event_type == "card_key_published":
        return card_key_refusal(db, sender, payload, node_id, batch)
    return refused


def _only(origin: Side, event_type: str) -> Refusal:
    if origin == "hq":
        return Refusal(N_("only HQ may originate %(type)s"), {"type": event_type})
    return Refusal(N_("only a shelter node may originate %(type)s"), {"type": event_type})


def _concerns_own(db: Any, sender: Sender, rule: Rule, event_type: str,
                  payload: dict[str, Any], batch: Batch | None) -> Refusal | None:
    """A node's event (said by itself, or received at HQ) must be about its own shelter."""
    concern = rule.concerns
    if concern == "payload":
        about = payload.get("shelter_id", sender.shelter_id)
        if about != sender.shelter_id:
            return Refusal(N_("concerns shelter %(about)s, not the sender's %(own)s"),
                           {"about": _name(about), "own": sender.shelter_id})
    elif concern == "request":
        owner = request_owner(db, payload.get("request_id"), batch)
        if owner is None:
            return Refusal(N_("names a supply request this store does not know"), {}, False)
        if owner != sender.shelter_id:
            return Refusal(N_("concerns a supply request of shelter %(about)s, not the "
                              "sender's"), {"about": owner})
    elif concern == "prefecture":
        return Refusal(N_("concerns every shelter: only HQ may say it"), {})
    if event_type in _NEW_IDS:
        taken = _NEW_IDS[event_type](db, payload, batch)
        if taken is not None:
            return taken
    return bad_value(event_type, payload)


def _new_request(db: Any, payload: dict[str, Any], batch: Batch | None) -> Refusal | None:
    owner = request_owner(db, payload.get("request_id"), batch)
    if owner is not None:
        return Refusal(N_("a supply request with this id exists already (shelter %(about)s)"),
                       {"about": owner})
    return None


def _new_people(db: Any, payload: dict[str, Any], batch: Batch | None) -> Refusal | None:
    """A registration's household and people must be new: an id already registered
    elsewhere (a card of that shelter seen here, say) is not the sender's to take. One
    made from a household code (``household_code``) may name its household again (a second
    shelter, a newer code): shelter/core/code_households.py."""
    members = payload.get("members")
    ids = [m["person_id"] for m in members if isinstance(m, dict)
           and isinstance(m.get("person_id"), str)] if isinstance(members, list) else []
    household = payload.get("household_id")
    said = (batch.households, batch.person_households) if batch is not None else ({}, {})
    if "household_code" in payload:
        refused = code_households.refusal(db, payload, household, ids, *said)
        return Refusal(*refused) if refused is not None else None
    if isinstance(household, str):
        taken = code_households.known(db, household, said[0])
        if taken is not None:
            return Refusal(N_("a household with this id is registered already (shelter "
                              "%(about)s)"), {"about": taken[0]})
    known = issuers(db, ids)
    for person in ids:
        if person in known or (batch is not None and person in batch.people):
            return Refusal(N_("a person with this id is registered already (shelter "
                              "%(about)s)"), {"about": known.get(person, "?")})
    return None


# Ids an event creates (a second event may not create the same one again), or names (the
# domain's ``id_check``: a correction names a household or person of the sender's own).
IdCheck = Callable[[Any, dict[str, Any], Batch | None], Refusal | None]
_NEW_IDS: dict[str, IdCheck] = {"supply_requested": _new_request,
                                "household_registered": _new_people}


def id_check(event_type: str) -> Callable[[IdCheck], IdCheck]:
    return lambda fn: _NEW_IDS.setdefault(event_type, fn)


_CARD_KEY = re.compile(r"^[A-Z2-7]{52}$")  # an Ed25519 public key in base32 (core/keys.py)


def card_key_refusal(db: Any, sender: Sender, payload: dict[str, Any], node_id: str,
                     batch: Batch | None = None) -> Refusal | None:
    """A node publishes the public key its cards are signed with: for one of its own ids
    only (``node_id`` made the event), and never in place of another key this store holds
    for that id: a thief with a shelter's laptop must not replace the key its old cards are
    checked against. The first key told for an id stands."""
    owner, public = payload.get("node_id"), payload.get("public_key")
    if not isinstance(owner, str) or not 0 < len(owner) <= 32:
        return Refusal(N_("%(field)s: a value that cannot be used"), {"field": "node_id"})
    if not valid_card_key(public):
        return Refusal(N_("%(field)s: a value that cannot be used"), {"field": "public_key"})
    if owner != node_id and not _same_node(db, sender, owner, node_id):
        return Refusal(N_("a node may publish the card key of its own node ids only"), {})
    row = db.execute("SELECT public_key FROM card_keys WHERE node_id = ?", [owner]).fetchone()
    known = row[0] if row is not None else (batch.card_keys.get(owner) if batch else None)
    if known is not None and known != public:
        return Refusal(N_("node %(node)s has another card key here already: a card key "
                          "is never replaced"), {"node": owner})
    return None


def valid_card_key(value: Any) -> bool:
    """Whether ``value`` is a card key as nodes publish them (an Ed25519 public key)."""
    return isinstance(value, str) and _CARD_KEY.match(value) is not None


def _same_node(db: Any, sender: Sender, owner: str, node_id: str) -> bool:
    """Whether ``owner`` is another id of the node that made the event: an epoch of it
    (here: its earlier ids; at HQ: an id of the same credential) or, at a node rebuilt
    from HQ, an id of the node it replaced."""
    if sender.kind == "self":
        return owner in (meta.get(db, "previous_node_ids") or "").split(",")
    if sender.here == "hq":
        return db.execute(
            "SELECT 1 FROM hq_credentials a JOIN hq_credentials b USING (credential_hash) "
            "WHERE a.node_id = ? AND b.node_id = ? AND a.shelter_id = b.shelter_id",
            [owner, node_id]).fetchone() is not None
    return owner in lineage.inherited(db) and node_id in lineage.inherited(db)


def _from_hq(db: Any, sender: Sender, rule: Rule, event_type: str, payload: dict[str, Any],
             node_id: str, batch: Batch | None) -> Refusal | None:
    own = sender.shelter_id
    if event_type == "presence_changed":
        # A person this shelter registered, seen elsewhere ("moved to B").
        person = payload.get("person_id")
        home = issuers(db, [person]).get(person) if isinstance(person, str) else None
        if home is None:
            return Refusal(N_("a presence change of a person this node does not know"), {},
                           False)
        if home != own:
            return Refusal(N_("HQ may send a presence change only of a person registered "
                              "here"), {})
        return None
    if rule.origin != "hq":
        return Refusal(N_("%(type)s is not HQ's to send"), {"type": event_type})
    if sender.hq_ids and node_id not in sender.hq_ids:
        return Refusal(N_("an HQ step that does not carry one of HQ's own ids"), {})
    if rule.concerns == "payload":
        if payload.get("shelter_id") != own:
            return Refusal(N_("concerns shelter %(about)s, not this one"),
                           {"about": _name(payload.get("shelter_id"))})
        return None
    if rule.concerns == "request":
        owner = request_owner(db, payload.get("request_id"), batch)
        if owner is None:
            return Refusal(N_("names a supply request this store does not know"), {}, False)
        if owner != own:
            return Refusal(N_("concerns a supply request that is not this shelter's"), {})
        return None
    return Refusal(N_("%(type)s is not sent to shelters"), {"type": event_type})


# Values other shelters' figures are computed from: a value HQ cannot use is refused, or one
# shelter's laptop could stop HQ's numbers for all of them.
_DIGITS = frozenset("0123456789")


def whole(value: Any, most: int) -> bool:
    """A count typed as text: 1 to 7 digits, at most ``most``."""
    return (isinstance(value, str) and 0 < len(value) <= 7 and set(value) <= _DIGITS
            and int(value) <= most)


def number(value: Any, most: float) -> bool:
    return (value is None or (isinstance(value, int | float) and not isinstance(value, bool)
                              and 0 <= value <= most))


def text(value: Any, most: int) -> bool:
    return isinstance(value, str) and len(value) <= most


ValueCheck = Callable[[dict[str, Any]], str | None]
# Registered by the domain module that owns the event type (settings, supplies): the
# check returns the first field HQ could not use, or None.
VALUE_CHECKS: dict[str, ValueCheck] = {}


def value_check(event_type: str) -> Callable[[ValueCheck], ValueCheck]:
    def register(fn: ValueCheck) -> ValueCheck:
        VALUE_CHECKS[event_type] = fn
        return fn
    return register


def bad_value(event_type: str, payload: dict[str, Any]) -> Refusal | None:
    """A value in a node's event that HQ could not use, or None."""
    check = VALUE_CHECKS.get(event_type)
    field = check(payload) if check is not None else None
    if field is None:
        return None
    return Refusal(N_("%(field)s: a value that cannot be used"), {"field": field})


def request_owner(db: Any, request_id: Any, batch: Batch | None = None) -> str | None:
    if not isinstance(request_id, str):
        return None
    if batch is not None and request_id in batch.requests:
        return batch.requests[request_id]
    row = db.execute("SELECT shelter_id FROM supply_requests WHERE request_id = ?",
                     [request_id]).fetchone()
    return str(row[0]) if row else None


def issuers(db: Any, people: list[str]) -> dict[str, str]:
    """The shelter each of ``people`` registered at (those this store knows)."""
    found: dict[str, str] = {}
    for chunk, marks in in_chunks(people):
        found.update(db.execute(f"SELECT person_id, issuing_shelter FROM persons "
                                f"WHERE person_id IN ({marks})", chunk).fetchall())
    return found


def _name(value: Any) -> str:
    return str(value)[:40] if value is not None else "(none)"


# Types whose effect is on their sender's own store only: stored elsewhere, not projected.
OWN_STORE = frozenset(t for t, rule in RULES.items() if rule.concerns == "own_store")
