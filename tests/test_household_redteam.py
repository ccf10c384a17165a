"""Red team, issue 14: household codes attacked as a thief would, with a photo of a
family's code, an anonymous phone on the shelter's Wi-Fi, or a stolen shelter laptop's
credential (events crafted and applied at HQ as a node's batch is, tests/
test_household_trust.py). Each test is one attack; docs/security.md says what is closed."""

from __future__ import annotations

import binascii
import copy
import json
import struct
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shelter.domain import household_code, households, presence
from sync.apply import apply_batch

from . import test_household_trust as trust
from .test_desk_household import family_of_four, panel, persons
from .test_household_trust import THIEF, A, B, _code_payload, craft, last_seq, sent
from .test_presence import presence_events, signed_in

world = trust.world  # the fixture: shelters A and B, the thief's node, HQ
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


def _framed(payload: bytes) -> str:
    """Digits that pass every check before the payload is unpacked: a valid length, CRC
    and Damm digit around whatever bytes."""
    framed = struct.pack(">HI", len(payload), binascii.crc32(payload)) + payload
    digits = household_code._to_digits(framed)
    return household_code.PREFIX + digits + str(household_code._damm(digits))


def _reads_or_refuses(text: str) -> None:
    try:
        household_code.read(text)
    except household_code.HouseholdCodeError as refused:
        assert refused.status == 422
        assert refused.reason in household_code.HouseholdCodeError.MESSAGES


@FUZZ
@given(st.text(max_size=300) | st.text("SHH1.０１２３456789 \n", max_size=300))
def test_any_text_is_a_household_code_or_a_household_code_error(text):
    _reads_or_refuses(text)
    _reads_or_refuses("SHH1." + text)


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 255))
def test_any_bytes_behind_valid_checks_are_read_or_refused(body, flags):
    _reads_or_refuses(_framed(bytes([flags]) + body))
    # With the header right, the text a thief chooses: fields of any shape and number.
    _reads_or_refuses(_framed(bytes([flags & 0xFE]) + bytes(16) + bytes(4) + b"\xff" + body))


@FUZZ
@given(st.lists(st.lists(st.sampled_from(["", "0", "1", "-1", "٣", "1_0", "9" * 500, "x",
                                          "20261399", "\x00", "é"]), max_size=12),
                max_size=22))
def test_any_fields_behind_valid_checks_are_read_or_refused(records):
    text = "\x1e".join("\x1f".join(fields) for fields in records).encode()
    _reads_or_refuses(_framed(bytes([0]) + bytes(16) + bytes(4) + b"\xff" + text))


# --- the desk and the kiosk ---------------------------------------------------------------

def _admitted(app, code: str) -> dict:
    node = app.extensions["shelter"]
    return presence.admit_household(node.store, node.identity, node.card_keys(), code,
                                    "check_in")


def test_the_kiosk_tells_no_one_holding_a_code_who_is_registered_here(app):
    """A photo of a family's code (or an old print) at another shelter's kiosk must not
    say whether the family is registered here, or whether they are in: a person hiding from
    whoever holds the photo would be found so. (Found: the kiosk's preview said
    "Already registered here · present".)"""
    code = household_code.make(family_of_four())
    kiosk = signed_in(app, "kiosk")
    fresh = panel(kiosk.post("/register/code", data={"csrf": "t0k3n", "code": code}))
    _admitted(app, code)
    known = panel(kiosk.post("/register/code", data={"csrf": "t0k3n", "code": code}))
    assert "登録済み" not in known and "status-present" not in known
    assert known == fresh  # the same page, whoever is registered here


def test_the_desk_preview_shows_the_people_the_tap_acts_on(app):
    """A code made with a registered family's household id (it is in the QR) and other
    names: the preview shows who is registered under those ids, since the tap checks them
    in, not the names the code claims. (Found: it showed the forger's names.)"""
    clean = family_of_four()
    code = household_code.make(clean)
    _admitted(app, code)
    old = household_code.read(code)
    forged = copy.deepcopy(old.registration)
    for m in forged["members"]:
        m.update(family_name="鈴木", given_name="偽名", allergies="", medication="",
                 needs=[])
    forged_code = household_code.make(households.validate(forged), old.household_id,
                                      seqs=list(old.seqs), next_seq=old.next_seq)
    desk = signed_in(app)
    shown = panel(desk.post("/desk/scan", data={"csrf": "t0k3n", "code": forged_code,
                                                "action": "auto"}))
    assert "鈴木" not in shown and "偽名" not in shown
    assert "山田 太郎" in shown and "山田 花子" in shown and "アレルギー: そば" in shown


def test_checking_out_a_whole_household_leaves_the_members_not_here_alone(app):
    """"Check out all N" with one member's card records a check-out only for those here:
    one never checked in here (or in at another shelter) keeps where they are. (Found: it
    recorded "left this shelter" for each, which at HQ outranks their check-in at B.)"""
    node = app.extensions["shelter"]
    clean = family_of_four()
    registered = households.register_household(node.store, node.identity, clean)
    first, second = registered["members"][:2]
    presence.scan(node.store, node.shelter_id, node.card_keys(), first["code"], "check_in")
    presence.scan(node.store, node.shelter_id, node.card_keys(), second["code"], "check_in")
    presence.scan(node.store, node.shelter_id, node.card_keys(), second["code"], "check_out",
                  "home")
    before = presence_events(node)
    done = presence.scan_household(node.store, node.shelter_id, node.card_keys(),
                                   first["code"], "check_out", "other_shelter", "B小学校")
    outcomes = [m["outcome"] for m in done["members"]]
    assert outcomes == ["done", "already", "not_here", "not_here"], outcomes
    assert presence_events(node) == before + 1
    for member in registered["members"][2:]:
        assert node.db.execute("SELECT count(*) FROM presence WHERE person_id = ?",
                               [member["person_id"]]).fetchone()[0] == 0


def test_what_a_code_says_is_text_in_every_panel(app):
    """Names, allergies, medication and pets are whatever the maker typed: drawn as text
    in the preview and in the answer, never as markup."""
    body = family_of_four()
    evil = '<img src=x onerror="alert(1)">'
    body["pets"] = evil
    body["members"][0].update(given_name="<script>x()</script>", allergies=evil,
                              medication="</span><b>")
    code = household_code.make(households.validate(body))
    desk = signed_in(app)
    for path in ("/desk/household-preview", "/desk/scan"):
        html = desk.post(path, data={"csrf": "t0k3n", "code": code}).get_data(as_text=True)
        assert "<script>x()" not in html and "<img src=x" not in html and "<b>" not in html
        assert "&lt;script&gt;" in html
    answer = _admitted(app, code)
    drawn = desk.post("/desk/result", data={"csrf": "t0k3n", "answer": json.dumps(answer)})
    html = drawn.get_data(as_text=True)
    assert drawn.status_code == 200 and "<script>x()" not in html and "&lt;script&gt;" in html


def test_the_new_posts_need_the_page_s_token(app):
    code = household_code.make(family_of_four())
    desk = signed_in(app)
    for path, data in (("/desk/household-preview", {"code": code}),
                       ("/desk/scan", {"code": code, "confirm": "household"})):
        refused = desk.post(path, data=data)
        assert refused.status_code == 400, path
    api = desk.post("/api/v1/scans", json={"code": code, "action": "check_in"})
    assert api.status_code == 403 and api.get_json()["error"]["code"] == "csrf"
    kiosk = signed_in(app, "kiosk")
    assert kiosk.post("/register/code", data={"code": code,
                                              "confirm": "household"}).status_code == 400
    assert persons(app.extensions["shelter"]) == 0


def test_a_code_naming_a_household_registered_here_on_the_form_admits_no_one(app):
    """Its household id is on staff pages' addresses: a code made with it takes no one
    over, at the desk or through the API."""
    node = app.extensions["shelter"]
    on_form = households.register_household(node.store, node.identity, family_of_four())
    code = household_code.make(family_of_four(), on_form["household_id"])
    desk = signed_in(app)
    before = node.db.execute("SELECT count(*) FROM events").fetchone()[0]
    page = desk.post("/desk/scan", data={"csrf": "t0k3n", "code": code, "action": "check_in",
                                         "confirm": "household"})
    assert page.status_code == 409
    api = desk.post("/api/v1/scans", json={"code": code, "action": "check_in"},
                    headers={"X-CSRF-Token": "t0k3n"})
    assert api.status_code == 409 and api.get_json()["error"]["code"] == "household_code_taken"
    assert node.db.execute("SELECT count(*) FROM events").fetchone()[0] == before
    assert presence_events(node) == 0


# --- POST /api/v1/household-codes and /prepare: anyone's, so what they cost -----------------

def _largest() -> dict:
    """A family whose code only just fits one QR code (text that deflate cannot shrink)."""
    body = family_of_four()
    chars = iter(chr(0x4E00 + (i * 7919) % 20000) for i in range(100_000))
    body["members"] = [dict(body["members"][0], family_name="".join(next(chars)
                                                                   for _ in range(10)),
                            given_name="".join(next(chars) for _ in range(10)),
                            needs=["allergy"], allergies="".join(next(chars)
                                                                 for _ in range(38)))
                       for _ in range(15)]
    return body


def test_anyone_s_largest_code_costs_well_under_a_second_and_is_kept_by_no_cache(app):
    client = app.test_client()
    body = _largest()
    started = time.perf_counter()
    made = client.post("/api/v1/household-codes", json=body)
    api_seconds = time.perf_counter() - started
    assert made.status_code == 200, made.get_json()
    code = made.get_json()["code"]
    assert len(code) > 5000  # about the largest one QR code holds
    assert made.headers["Cache-Control"] == "no-store"
    started = time.perf_counter()
    png = household_code.qr_png(code)
    qr_seconds = time.perf_counter() - started
    assert png.startswith(b"\x89PNG")
    print(f"largest code: api {api_seconds:.3f} s, its QR {qr_seconds:.3f} s")
    assert api_seconds < 0.5 and qr_seconds < 3
    # Too large a body, or nested too deeply: refused before any work, never a 500.
    huge = client.post("/api/v1/household-codes", data=b"[" * 300_000,
                       content_type="application/json")
    deep = client.post("/api/v1/household-codes", data=b"[" * 5000 + b"]" * 5000,
                       content_type="application/json")
    assert (huge.status_code, deep.status_code) == (413, 400)
    for bad in ({"members": [{}] * 5000}, [], "SHH1.", {"members": "x" * 100_000}):
        assert client.post("/api/v1/household-codes", json=bad).status_code in (400, 422)


# --- at HQ: what a stolen laptop's credential may say with a household code -----------------

def test_a_thief_adding_to_a_familys_household_hears_nothing_of_the_family(world):
    """The thief knows a family's household id (its code) and adds a member to it, and
    "registers" the family's own people again under its name: HQ keeps them the first
    shelter's, routes none of their moves to the thief, and names no one differently."""
    a, b, thief, hq, code = (world[k] for k in ("a", "b", "thief", "hq", "code"))
    household = world["at_a"]["household_id"]
    payload = _code_payload(household, [0, 1, 2, 3, 9])
    for m in payload["members"]:
        m["family_name"] = "泥棒"
    result = apply_batch(hq.store, thief.node_id, THIEF,
                         [craft(thief, last_seq(thief) + 1, payload)])
    assert result.quarantined == []
    # The family walks on to B; B's check-ins reach HQ.
    presence.admit_household(b.store, b.identity, b.card_keys(), code, "check_in")
    assert sent(hq, b, B).quarantined == []
    assert hq.db.execute("SELECT count(*) FROM sync_outbox WHERE shelter_id = ?",
                         [THIEF]).fetchone()[0] == 0
    names = hq.db.execute("SELECT family_name, issuing_shelter FROM persons WHERE "
                          "household_id = ? ORDER BY position", [household]).fetchall()
    assert names[:4] == [("山田", A)] * 4 and names[4] == ("泥棒", THIEF)
    assert hq.db.execute("SELECT shelter_id FROM households WHERE household_id = ?",
                         [household]).fetchone()[0] == A


def test_a_short_code_met_twice_at_hq_leaves_both_registered_and_the_first_its_own(world):
    """Nodes draw short codes apart (35 bits: among HQ's million, a few dozen pairs meet),
    and a thief may reuse one it saw on a card, or send one twice. Every registration is
    applied (found: HQ's projection raised IntegrityError, an event "could not be applied",
    and later a refusal: a real family missing at HQ); the code keeps finding the person
    who had it first."""
    thief, hq = world["thief"], world["hq"]
    household = world["at_a"]["household_id"]
    seen, owner = hq.db.execute("SELECT short_code, person_id FROM persons LIMIT 1").fetchone()
    reused = _code_payload(household, [0, 11])  # a known member keeps their own: skipped
    reused["members"][1]["short_code"] = seen
    twice = _code_payload(household, [12, 13])
    twice["members"][1]["short_code"] = twice["members"][0]["short_code"]
    first, second = _code_payload(household, [14]), _code_payload(household, [15])
    second["members"][0]["short_code"] = first["members"][0]["short_code"]
    seq = last_seq(thief)
    result = apply_batch(hq.store, thief.node_id, THIEF, [
        craft(thief, seq + i + 1, p) for i, p in enumerate((reused, twice, first, second))])
    assert result.quarantined == [] and result.applied == 4
    assert hq.db.execute("SELECT person_id FROM persons WHERE short_code = ?",
                         [seen]).fetchall() == [(owner,)]
    for payload in (reused, twice, second):
        person = payload["members"][-1]["person_id"]
        assert hq.db.execute("SELECT short_code FROM persons WHERE person_id = ?",
                             [person]).fetchone()[0] == (
            f"{payload['members'][-1]['short_code']}~{person}")


def test_someone_else_s_card_moves_no_household_and_auto_never_checks_a_family_out(app,
                                                                                     tmp_path):
    """``household: true`` with a card of a person registered at another shelter (or one
    this shelter did not sign) acts on no one; a household code scanned again in "auto",
    or a member's card moments after "check out all", changes nothing (the repeat window
    covers household actions too)."""
    from datetime import date

    from shelter.core import keys
    from shelter.core.node import NodeContext
    from shelter.domain import cards

    node = app.extensions["shelter"]
    other = NodeContext(tmp_path / "other", shelter_id=B)
    theirs = households.register_household(other.store, other.identity, family_of_four())
    key = keys.load_private_key(other.identity.signing_key_pem)
    code = household_code.make(family_of_four())
    here = _admitted(app, code)
    forged = cards.make_code(key, here["members"][0]["person_id"], B, other.node_id,
                             "山田 太郎", date.today())
    before = presence_events(node)
    for card, refusal in ((theirs["members"][0]["code"], "household_unknown"),
                          (forged, "card_not_verified")):
        try:
            presence.scan_household(node.store, node.shelter_id, node.card_keys(), card,
                                    "check_out", "home")
        except presence.ScanError as refused:
            assert refused.code == refusal
        else:
            raise AssertionError(refusal)
    again = presence.admit_household(node.store, node.identity, node.card_keys(), code,
                                     "auto")
    assert again["outcome"] == "already" and not again["registered"]
    assert presence_events(node) == before
    presence.scan_household(node.store, node.shelter_id, node.card_keys(),
                            here["members"][0]["code"], "check_out", "home")
    moments = presence.scan(node.store, node.shelter_id, node.card_keys(),
                            here["members"][1]["code"], "auto")
    assert moments["outcome"] == "repeated" and moments["presence"]["status"] == "left"
    assert presence_events(node) == before + 4
