"""A household code is made by anyone, so what it lets a node say is checked where every
event is (shelter/core/authority.py): two shelters scanning one family's code make one
household at HQ, and a node crafting a code registration takes over no one's record.

At the store level, without servers: real nodes' events applied to a real HQ store as a
node's batch is (sync.apply), and the local append."""

from __future__ import annotations

import copy
import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ulid import ULID

from shelter.core.authority import Refused
from shelter.core.node import NodeContext
from shelter.domain import household_code, households, presence
from shelter.hq import refresher
from sync import protocol
from sync.apply import apply_batch, refusals_by_shelter, refused_events

from .conftest import VALID_HOUSEHOLD

A, B, THIEF = "E2710000001111", "E2710000002222", "E2710000003333"


def family(size: int = 4) -> dict:
    data = copy.deepcopy(VALID_HOUSEHOLD)
    data["members"] = [dict(data["members"][0], given_name=name, birth_date=born)
                       for name, born in (("太郎", "1948-04-02"), ("花子", "1950-06-01"),
                                          ("一郎", "1980-01-02"), ("桜", "2015-03-04"),
                                          ("翼", "2026-10-01"))[:size]]
    return data


def wire(node: NodeContext, after: int = 0) -> list[dict]:
    return [protocol.for_wire(row) for row in node.db.query(
        "SELECT * FROM events WHERE node_id = ? AND seq > ? ORDER BY seq",
        [node.node_id, after])]


def sent(hq: NodeContext, node: NodeContext, shelter: str, after: int = 0):
    return apply_batch(hq.store, node.node_id, shelter, wire(node, after))


def craft(node: NodeContext, seq: int, payload: dict,
          kind: str = "household_registered") -> dict:
    """An event as a thief holding ``node``'s directory would send it: anything at all."""
    return {"event_id": str(ULID()), "node_id": node.node_id, "seq": seq,
            "hlc": f"{int(time.time() * 1000):015d}.{0:08d}.{node.node_id}", "type": kind,
            "schema_version": 1, "payload": payload,
            "recorded_at": "2026-12-02T08:00:00.000+00:00"}


def last_seq(node: NodeContext) -> int:
    return node.db.execute("SELECT max(seq) FROM events WHERE node_id = ?",
                           [node.node_id]).fetchone()[0] or 0


def count(store: NodeContext, table: str) -> int:
    return store.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def world(tmp_path):
    """Shelter A registers a family from its code and a family on the form; shelter B
    scans the same family's code; the thief's node is enrolled as a third shelter."""
    a = NodeContext(tmp_path / "a", shelter_id=A)
    b = NodeContext(tmp_path / "b", shelter_id=B)
    thief = NodeContext(tmp_path / "t", shelter_id=THIEF)
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ-OSAKA")
    code = households.make_code(family())
    at_a = presence.admit_household(a.store, a.identity, a.card_keys(), code, "check_in")
    on_form = households.register_household(a.store, a.identity, family(2))
    presence.scan(a.store, A, a.card_keys(), on_form["members"][0]["code"], "check_in")
    households.register_household(thief.store, thief.identity, family(1))  # a real start
    assert not sent(hq, a, A).quarantined and not sent(hq, thief, THIEF).quarantined
    return {"a": a, "b": b, "thief": thief, "hq": hq, "code": code, "at_a": at_a,
            "on_form": on_form}


def test_one_familys_code_at_two_shelters_is_one_household_at_hq(world):
    a, b, hq, code = world["a"], world["b"], world["hq"], world["code"]
    people = [m["person_id"] for m in world["at_a"]["members"]]
    # A day later the family walks on to shelter B, which has never heard of them.
    presence.scan_household(a.store, A, a.card_keys(), world["at_a"]["members"][0]["code"],
                            "check_out", "other_shelter", "B小学校")
    at_b = presence.admit_household(b.store, b.identity, b.card_keys(), code, "check_in")
    assert at_b["registered"] and [m["person_id"] for m in at_b["members"]] == people
    result = sent(hq, a, A, after=0)
    assert result.quarantined == [] and result.conflicts == []
    result = sent(hq, b, B)
    assert result.quarantined == [] and result.conflicts == [], result.quarantined
    assert result.applied == count(b, "events")
    household = world["at_a"]["household_id"]
    assert hq.db.execute("SELECT count(*) FROM households WHERE household_id = ?",
                         [household]).fetchone()[0] == 1
    assert hq.db.execute("SELECT count(*) FROM persons WHERE household_id = ?",
                         [household]).fetchone()[0] == 4
    assert hq.db.execute("SELECT count(*) FROM persons, json_each(?) AS j WHERE "
                         "person_id = j.value", [json.dumps(people)]).fetchone()[0] == 4
    # B's check-ins of A's people count at B; nobody is refused for a normal day.
    assert refresher.compute(hq.db, B)["present"] == 4
    assert refresher.compute(hq.db, A)["present"] == 1  # the family on A's form
    assert refusals_by_shelter(hq.db) == []
    assert count(hq, "sync_quarantine") == 0
    # A, where they registered first, hears of their moves to B; B is not sent A's past
    # (it would read as "present at two shelters" there).
    outbox = dict(hq.db.execute("SELECT shelter_id, count(*) FROM sync_outbox "
                                "GROUP BY shelter_id").fetchall())
    assert (outbox.get(A), outbox.get(B)) == (4, None)


def test_a_newer_code_adds_only_the_newborn_everywhere(world):
    a, b, hq = world["a"], world["b"], world["hq"]
    old = household_code.read(world["code"])
    grown = copy.deepcopy(old.registration)
    grown["members"].append(family(5)["members"][4])
    newer = households.make_code({**grown, "household_id": old.household_id,
                                  "seqs": list(old.seqs), "next_seq": old.next_seq})
    before = last_seq(a)
    at_a = presence.admit_household(a.store, a.identity, a.card_keys(), newer, "check_in")
    assert at_a["registered"] and [m["outcome"] for m in at_a["members"]] == \
        ["already"] * 4 + ["done"]
    assert count(a, "households") == 2 and count(a, "persons") == 7
    at_b = presence.admit_household(b.store, b.identity, b.card_keys(), newer, "check_in")
    assert sent(hq, a, A, before).quarantined == []
    assert sent(hq, b, B).quarantined == []
    assert hq.db.execute("SELECT count(*) FROM persons WHERE household_id = ?",
                         [old.household_id]).fetchone()[0] == 5
    assert at_b["members"][4]["person_id"] == at_a["members"][4]["person_id"]


def test_a_node_may_not_register_a_household_id_twice_even_on_the_form(world):
    """Once an IntegrityError at HQ's projection (quarantined as unappliable): refused."""
    a, hq, form = world["a"], world["hq"], world["on_form"]
    payload = {**copy.deepcopy(VALID_HOUSEHOLD), "household_id": form["household_id"],
               "shelter_id": A, "members": [dict(VALID_HOUSEHOLD["members"][0],
                                                 person_id=str(ULID()), short_code="ABCDEFGH",
                                                 card_code="x", allergies="")]}
    with pytest.raises(Refused, match="household with this id"):
        a.store.append("household_registered", payload)
    result = apply_batch(hq.store, a.node_id, A, [craft(a, last_seq(a) + 1, payload)])
    assert [q["reason"] for q in result.quarantined] == [
        f"refused: a household with this id is registered already (shelter {A})"]


def _code_payload(household_id: str, seqs: list, shelter: str = THIEF, **changes) -> dict:
    members = [dict(VALID_HOUSEHOLD["members"][0], allergies="", medication="", seq=s,
                    person_id=household_code.person_id(household_id, s)
                    if isinstance(s, int) and 0 <= s <= 255 else str(ULID()),
                    short_code=f"T{n:07d}"[:8], card_code="forged")
               for n, s in enumerate(seqs)]
    payload = {**copy.deepcopy(VALID_HOUSEHOLD), "pets": "", "household_id": household_id,
               "shelter_id": shelter, "household_code": {"made": "2026-12-01T10:00:00Z"},
               "members": members}
    payload.update(changes)
    return payload


def attacks(world) -> list[tuple[str, dict, str]]:
    """(what, payload, the refusal's words) for each way a thief might try it."""
    form, coded = world["on_form"], world["at_a"]
    victims = [m["person_id"] for m in form["members"]]
    taken_form = _code_payload(form["household_id"], [0, 1])
    foreign = _code_payload(str(ULID()), [0, 1])
    foreign["members"][0]["person_id"] = victims[0]
    into_code = _code_payload(coded["household_id"], [9])
    into_code["members"][0]["person_id"] = victims[1]
    plain_into_code = {k: v for k, v in _code_payload(coded["household_id"], [7]).items()
                       if k != "household_code"}
    plain_into_code["members"][0]["person_id"] = str(ULID())
    known_ids = {k: v for k, v in _code_payload(str(ULID()), [0]).items()
                 if k != "household_code"}
    known_ids["members"][0]["person_id"] = victims[0]
    fresh = str(ULID())
    return [
        ("a code naming a household registered on the form", taken_form,
         "registered otherwise"),
        ("a code naming someone else's person id", foreign, "not its household's"),
        ("a code household's id with another's person", into_code, "not its household's"),
        ("seq past 255", _code_payload(fresh, [256]), "not its household's"),
        ("seq below 0", _code_payload(fresh, [-1]), "not its household's"),
        ("seq as text", _code_payload(fresh, ["1"]), "not its household's"),
        ("seq as a flag", _code_payload(fresh, [True]), "not its household's"),
        ("seq as a fraction", _code_payload(fresh, [1.0]), "not its household's"),
        ("seq twice", _code_payload(fresh, [3, 3]), "not its household's"),
        ("no members", _code_payload(fresh, []), "not its household's"),
        ("made is no time", _code_payload(fresh, [0], household_code={"made": "soon"}),
         "household_code: a value"),
        ("household_code not an object", _code_payload(fresh, [0], household_code=True),
         "household_code: a value"),
        ("household id no ULID", {**_code_payload(fresh, [0]),
                                  "household_id": "F" * 26 + "x"}, "household_id: a value"),
        ("household id past 128 bits", {**_code_payload(fresh, [0]),
                                        "household_id": "Z" * 26}, "household_id: a value"),
        ("the form, into a code's household", plain_into_code, "household with this id"),
        ("the form, with a person known already", known_ids, "person with this id"),
    ]


def test_a_thief_crafting_code_registrations_is_refused_with_a_reason(world):
    thief, hq = world["thief"], world["hq"]
    table = attacks(world)
    before = {t: count(hq, t) for t in ("households", "persons", "presence")}
    names = {r[0]: r[1] for r in hq.db.execute("SELECT person_id, given_name FROM persons")}
    seq = last_seq(thief)
    events = [craft(thief, seq + i + 1, payload) for i, (_, payload, _) in enumerate(table)]
    result = apply_batch(hq.store, thief.node_id, THIEF, events)
    assert result.applied == 0 and result.acked_seq == seq + len(table)
    reasons = {q["seq"]: q["reason"] for q in result.quarantined}
    for i, (what, _, words) in enumerate(table):
        assert reasons[seq + i + 1].startswith("refused:") and words in reasons[seq + i + 1], \
            (what, reasons.get(seq + i + 1))
    assert {t: count(hq, t) for t in before} == before
    assert {r[0]: r[1] for r in hq.db.execute(
        "SELECT person_id, given_name FROM persons")} == names
    # An operator sees them as the thief's shelter's refusals, as other refusals are.
    assert refusals_by_shelter(hq.db)[0]["refused"] == len(table)
    assert {e["type"] for e in refused_events(hq.db, THIEF)} == {"household_registered"}
    # The thief's own store refuses the same when it appends them locally (those that
    # need no knowledge of other shelters' households to see).
    for what, payload, words in table:
        if words in ("registered otherwise", "household with this id", "person with this id"):
            continue
        with pytest.raises(Refused, match=words.split(":")[0]):
            thief.store.append("household_registered", {**payload, "shelter_id": THIEF})


def test_a_code_of_a_known_household_overwrites_no_one(world):
    """Anyone may make a code with a known household's id (it is printed in the QR): it
    adds its new members (a newborn) and changes nothing of those known."""
    thief, hq, coded = world["thief"], world["hq"], world["at_a"]
    payload = _code_payload(coded["household_id"], [0, 1, 7],
                            address="泥棒の住所", phone="0000000000")
    for m in payload["members"]:
        m["family_name"], m["given_name"] = "泥棒", "次郎"
    before = {r[0]: tuple(r[1:]) for r in hq.db.execute(
        "SELECT person_id, family_name, given_name, issuing_shelter FROM persons")}
    address = hq.db.execute("SELECT address, shelter_id FROM households WHERE "
                            "household_id = ?", [coded["household_id"]]).fetchone()
    result = apply_batch(hq.store, thief.node_id, THIEF,
                         [craft(thief, last_seq(thief) + 1, payload)])
    assert result.quarantined == [] and result.applied == 1
    after = {r[0]: tuple(r[1:]) for r in hq.db.execute(
        "SELECT person_id, family_name, given_name, issuing_shelter FROM persons")}
    assert {k: v for k, v in after.items() if k in before} == before
    assert set(after) - set(before) == {payload["members"][2]["person_id"]}
    assert hq.db.execute("SELECT address, shelter_id FROM households WHERE "
                         "household_id = ?", [coded["household_id"]]).fetchone() == address


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(seqs=st.lists(st.integers(-3, 300) | st.booleans() | st.text(max_size=2)
                     | st.none(), min_size=1, max_size=4),
       swap=st.integers(0, 3), other=st.booleans())
def test_any_person_id_a_code_does_not_derive_is_refused(tmp_path_factory, seqs, swap,
                                                         other):
    """Property: a code registration is accepted only when every member's person id is
    the household's derivation of its number (a whole number 0-255, each once)."""
    store = _fresh(tmp_path_factory)
    household = str(ULID())
    payload = _code_payload(household, seqs, shelter=A)
    if other:  # one member's id from elsewhere
        payload["members"][swap % len(seqs)]["person_id"] = str(ULID())
    fine = not other and all(type(s) is int and 0 <= s <= 255 for s in seqs) \
        and len(set(map(repr, seqs))) == len(seqs)
    from shelter.core.authority import refusal
    reason = refusal(store.db, store.store.speaking_for(), "household_registered", payload,
                     store.node_id)
    assert (reason is None) == fine, (seqs, other, reason)


_STORES: dict[str, NodeContext] = {}


def _fresh(tmp_path_factory) -> NodeContext:
    if "a" not in _STORES:
        _STORES["a"] = NodeContext(tmp_path_factory.mktemp("prop"), shelter_id=A)
    return _STORES["a"]
