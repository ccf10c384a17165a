"""Issue 16's new paths attacked as a thief would (or a careless desk): what a shelter's
node may say with the new correction events, what HQ's enquiry reads out after a
check-out, and what the correction page shows by a person's id. In-process stores and the
Flask test client only (no servers): each test failed before its fix."""

from __future__ import annotations

import copy
import re
import time
from datetime import date

from ulid import ULID

from shelter.core import keys
from shelter.core.node import NodeContext
from shelter.domain import cards, enquiry, household_code, households, presence
from shelter.domain.schemas.corrections import PERSON_FIELDS
from sync import protocol
from sync.apply import apply_batch, refusals_by_shelter

from .conftest import VALID_HOUSEHOLD
from .test_presence import signed_in

A, B = "E2710000004444", "E2710000005555"
NAMES = {A: "阿倍野スポーツセンター", B: "金塚小学校"}
PHONE, DIAGNOSIS = "090-1111-2222", "認知症あり"


def push(node: NodeContext, hq: NodeContext, after: int = 0):
    events = [protocol.for_wire(row) for row in node.db.query(
        "SELECT * FROM events WHERE node_id = ? AND seq > ? ORDER BY seq",
        [node.node_id, after])]
    return apply_batch(hq.store, node.node_id, node.shelter_id, events)


def person_named(given: str, born: str, consent: str = "acquaintances") -> dict:
    data = copy.deepcopy(VALID_HOUSEHOLD)
    data["consent"] = consent
    data["members"][0].update(given_name=given, given_name_kana="", birth_date=born)
    return data


def test_an_enquiry_reads_out_a_shelter_hq_knows_never_the_desks_note(tmp_path):
    """The check-out's "which shelter, or a note" is free text: a phone number or a
    diagnosis typed there reached a relative and an acquaintance word for word. Now only
    the name of a shelter of HQ's registry that it holds is told; a welfare shelter (care
    needs) is health information an acquaintance does not hear, as a hospital is not."""
    a = NodeContext(tmp_path / "a", shelter_id=A)
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ-OSAKA")
    notes = {"named": ("一", "1950-01-01", "other_shelter", f"金塚小学校の体育館 {PHONE}"),
             "unnamed": ("二", "1951-01-01", "other_shelter", f"娘の家の近く {PHONE} {DIAGNOSIS}"),
             "welfare": ("三", "1952-01-01", "welfare_shelter", f"福祉センター {DIAGNOSIS}")}
    for given, born, where, note in notes.values():
        card = households.register_household(a.store, a.identity,
                                             person_named(given, born))["members"][0]
        presence.scan(a.store, A, a.card_keys(), card["code"], "check_in")
        presence.scan(a.store, A, a.card_keys(), card["code"], "check_out", where, note)
    assert not push(a, hq).quarantined
    with hq.db.conn:  # HQ's registry (a name a node sets is not matched inside a note)
        hq.db.conn.executemany(
            "INSERT INTO hq_shelters (shelter_id, name, municipality, source, imported_at) "
            "VALUES (?, ?, '大阪市', 'test', '2026-12-01T00:00:00+00:00')", NAMES.items())

    def ask(key: str, relation: str) -> dict:
        given, born, _, _ = notes[key]
        # A stolen laptop may name its shelter anything: never matched inside a note.
        names = {**NAMES, "E2710000009999": DIAGNOSIS}
        [told] = enquiry.enquire(hq.db, "山田", given, born, relation, names)
        assert PHONE not in repr(told) and DIAGNOSIS not in repr(told)
        return told

    for relation in enquiry.RELATIONS:
        named = ask("named", relation)
        assert (named["went"], named["went_to"], named["went_known"]) == \
            ("other_shelter", "金塚小学校", True)
        assert (ask("unnamed", relation)["went"], ask("unnamed", relation)["went_to"]) == \
            ("other_shelter", "")
    assert ask("welfare", "relative")["went"] == "welfare_shelter"
    welfare = ask("welfare", "acquaintance")
    assert (welfare["status"], welfare["went"], welfare["went_to"]) == ("left", "", "")


def _event(node: NodeContext, seq: int, kind: str, payload: dict) -> dict:
    return {"event_id": str(ULID()), "node_id": node.node_id, "seq": seq,
            "hlc": f"{int(time.time() * 1000):015d}.{0:08d}.{node.node_id}", "type": kind,
            "schema_version": 1, "payload": payload,
            "recorded_at": "2026-12-02T08:00:00.000+00:00"}


def test_a_person_added_takes_no_household_codes_number_and_no_id_twice(tmp_path):
    """A stolen laptop of the shelter that registered a family from its household code may
    add a member, but not under an id the code gives one of the family's numbers (the
    family's next code, scanned at another shelter, would land on that record); nor one
    id (or short code) for two members, which was quarantined as a crash, not refused.
    Each is refused with its reason and the queue goes on behind it."""
    a = NodeContext(tmp_path / "a", shelter_id=A)
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ-OSAKA")
    data = copy.deepcopy(VALID_HOUSEHOLD)
    coded = presence.admit_household(a.store, a.identity, a.card_keys(),
                                     households.make_code(data), "check_in")
    household_id = coded["household_id"]
    assert not push(a, hq).quarantined
    seq = a.db.execute("SELECT max(seq) FROM events").fetchone()[0]
    key = keys.load_private_key(a.identity.signing_key_pem)
    first = households.get_household(a.db, household_id)["members"][0]
    codes = iter(households.free_short_codes(hq.db, 4))

    def member(person_id: str) -> dict:
        return {**{k: first[k] for k in PERSON_FIELDS}, "given_name": "翼",
                "birth_date": "2026-11-30", "person_id": person_id,
                "short_code": next(codes), "card_code": cards.make_code(
                    key, person_id, A, a.node_id, "山田 翼", date(2026, 12, 1))}

    taken_number = member(household_code.person_id(household_id, 5))
    twin = member(str(ULID()))
    newborn = member(str(ULID()))
    added = [{"household_id": household_id, "shelter_id": A, "members": members}
             for members in ([taken_number], [twin, {**twin, "short_code": next(codes)}],
                             [newborn])]
    result = apply_batch(hq.store, a.node_id, A, [
        _event(a, seq + n + 1, "person_added", payload) for n, payload in enumerate(added)])
    reasons = [q["reason"] for q in result.quarantined]
    assert len(reasons) == 2 and all(r.startswith("refused") for r in reasons), reasons
    assert "household code gives" in reasons[0] and "given twice" in reasons[1]
    assert result.acked_seq == seq + 3  # the newborn behind them is applied
    assert households.get_person(hq.db, newborn["person_id"]) is not None
    refused = hq.db.execute("SELECT count(*) FROM sync_quarantine WHERE refused = 1"
                            ).fetchone()[0]
    assert refused == 2  # what an operator sees per shelter


def test_the_correction_page_names_only_its_own_households_new_member(app):
    """``?added=<person id>`` printed anyone's name and a link to their card on any
    household's correction page, unaudited."""
    node = app.extensions["shelter"]
    here = households.register_household(node.store, node.identity,
                                         person_named("太郎", "1948-04-02"))
    other = households.register_household(node.store, node.identity,
                                          person_named("秘密", "1970-01-01"))
    client = signed_in(app)
    stranger = other["members"][0]["person_id"]
    page = client.get(f"/staff/households/{here['household_id']}/correct?added={stranger}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "秘密" not in text and stranger not in text
    own = here["members"][0]["person_id"]
    text = client.get(f"/staff/households/{here['household_id']}/correct?added={own}"
                      ).get_data(as_text=True)
    assert re.search(r'id="added"', text) and f"/staff/persons/{own}/card.pdf" in text


def test_a_correction_stamped_far_ahead_cannot_outrank_the_ones_after_it(tmp_path):
    """Each corrected field goes to the latest clock: a stolen laptop's correction stamped
    years ahead would win for good, so a "tell nobody" made afterwards (DV) never took
    effect at HQ and a thief's renaming could never be undone. HQ refuses such a
    correction, in the operator's sight, and goes on; one that makes enquiries tell nothing
    is applied however it is stamped."""
    a = NodeContext(tmp_path / "a", shelter_id=A)
    hq = NodeContext(tmp_path / "hq", role="hq", shelter_id="HQ-OSAKA")
    made = households.register_household(a.store, a.identity,
                                         person_named("太郎", "1948-04-02", "relatives"))
    household_id, person = made["household_id"], made["members"][0]["person_id"]
    assert not push(a, hq).quarantined
    seq = a.db.execute("SELECT max(seq) FROM events").fetchone()[0]
    years = 10 * 365 * 86400 * 1000

    def stamped(n: int, kind: str, payload: dict, ahead: int = 0) -> dict:
        event = _event(a, seq + n, kind, payload)
        wall = int(time.time() * 1000) + ahead
        event["hlc"] = f"{wall:015d}.{0:08d}.{a.node_id}"
        return event

    household = {"household_id": household_id, "shelter_id": A}
    result = apply_batch(hq.store, a.node_id, A, [
        stamped(1, "household_corrected", {**household, "changes": {
            "consent": "acquaintances"}}, years),
        stamped(2, "person_corrected", {"person_id": person, **household,
                                        "changes": {"given_name": "偽名"}}, years),
        stamped(3, "household_corrected", {**household, "changes": {"consent": "none"}})])
    reasons = [q["reason"] for q in result.quarantined]
    assert len(reasons) == 2 and all(r.startswith("refused") and "far in the future" in r
                                     for r in reasons), reasons
    assert result.acked_seq == seq + 3
    consent = "SELECT consent FROM households WHERE household_id = ?"
    assert hq.db.execute(consent, [household_id]).fetchone()[0] == "none"
    assert households.get_person(hq.db, person)["given_name"] == "太郎"
    assert refusals_by_shelter(hq.db)[0]["refused"] == 2  # HQ's sync page lists them
    # Telling nothing, stamped far ahead: applied (nothing can tell less).
    apply_batch(hq.store, a.node_id, A, [stamped(4, "household_corrected", {
        **household, "changes": {"consent": "relatives"}}),
        stamped(5, "household_corrected", {**household, "changes": {"consent": "none"}},
                years)])
    assert hq.db.execute(consent, [household_id]).fetchone()[0] == "none"
    assert enquiry.enquire(hq.db, "山田", "太郎", "1948-04-02", "relative", NAMES) == []
