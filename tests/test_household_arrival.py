"""Arrival with a household code, through the API in process: one scan registers the
family here and checks everyone in; again, or with a newer code, it makes no second
household; a card checks out the whole household; bad codes change nothing; and
POST /api/v1/household-codes makes codes and keeps nothing, on a node and at HQ."""

from __future__ import annotations

import copy
import logging
import unicodedata
from pathlib import Path

import pytest

from shelter.app import create_app
from shelter.domain import household_code
from shelter.domain.accounts import create_token
from sync import projector

from .conftest import VALID_HOUSEHOLD

NAMES = (("蒼井", "湊"), ("蒼井", "陽葵"), ("蒼井", "蓮"), ("蒼井", "紬"))


def family(size: int = 4, **changes) -> dict:
    data = copy.deepcopy(VALID_HOUSEHOLD)
    base = {**data["members"][0], "family_name_kana": "あおい", "given_name_kana": ""}
    data["members"] = [dict(base, family_name=f, given_name=g,
                            birth_date=f"19{60 + i}-01-0{i + 1}")
                       for i, (f, g) in enumerate(NAMES[:size])]
    if size > 1:
        data["members"][1].update(needs=["allergy"], allergies="そば", medication="インスリン")
    data.update(pets="犬1匹", **changes)
    return data


@pytest.fixture
def desk(app, client):
    node = app.extensions["shelter"]
    token = create_token(node.store, "volunteer")

    def post(path: str, body: object, auth: bool = True):
        headers = {"Authorization": f"Bearer {token}"} if auth else {}
        return client.post(path, json=body, headers=headers)

    post.node = node  # type: ignore[attr-defined]
    post.token = token  # type: ignore[attr-defined]
    post.client = client  # type: ignore[attr-defined]
    return post


def counts(node) -> tuple[int, ...]:
    return tuple(node.db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("events", "households", "persons", "presence"))


def make(desk, body: dict) -> str:
    response = desk("/api/v1/household-codes", body, auth=False)
    assert response.status_code == 200, response.get_json()
    return response.get_json()["code"]


def scan(desk, code: str, action: str = "check_in", **extra):
    return desk("/api/v1/scans", {"code": code, "action": action, **extra})


def test_one_scan_registers_the_family_and_checks_everyone_in(desk):
    code = make(desk, family())
    assert len(code) > 400  # more than a card: the scan's shape takes it
    read = household_code.read(code)
    response = scan(desk, code)
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert set(answer) == {"household_id", "registered", "display_name", "action", "outcome",
                           "members"}
    assert (answer["household_id"], answer["registered"], answer["action"],
            answer["outcome"]) == (read.household_id, True, "check_in", "done")
    assert [m["person_id"] for m in answer["members"]] == [
        household_code.person_id(read.household_id, seq) for seq in read.seqs]
    for member in answer["members"]:
        assert set(member) == {"person_id", "display_name", "code", "short_code", "presence",
                               "outcome"}
        assert member["code"].startswith("SHC1.") and len(member["short_code"]) == 9
        assert (member["presence"]["status"], member["outcome"]) == ("present", "done")
    assert [m["display_name"] for m in answer["members"]] == [f"{f} {g}" for f, g in NAMES]
    node = desk.node
    household = node.db.execute("SELECT whereabouts, language, pets, code_made FROM "
                                "households").fetchall()
    assert household == [("shelter", "ja", "犬1匹", read.made)]
    assert node.db.execute("SELECT medication, allergies, code_seq FROM persons WHERE "
                           "given_name = '陽葵'").fetchone() == ("インスリン", "そば", 1)
    headcount = desk.node.db.execute("SELECT count(*) FROM presence WHERE status = 'present'")
    assert headcount.fetchone()[0] == 4
    audit = node.db.execute("SELECT action, subject FROM audit_log WHERE action LIKE "
                            "'%household%' ORDER BY audit_id").fetchall()
    assert audit == [("register_household_code", read.household_id),
                     ("scan_household", read.household_id)]
    # Their cards are ready to print.
    pdf = desk.client.get(f"/api/v1/households/{read.household_id}/cards.pdf",
                          headers={"Authorization": f"Bearer {desk.token}"})
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")


def test_the_same_code_again_makes_no_second_household(desk):
    code = make(desk, family())
    scan(desk, code)
    before = counts(desk.node)
    # Typed on a Japanese keyboard this time: full width, lower case, broken in lines.
    typed = unicodedata.normalize("NFKC", code).lower().replace("shh1.", "ｓｈｈ１．")
    typed = "".join(chr(ord(c) + 0xFEE0) if c in "0123456789" else c for c in typed)
    typed = typed[:60] + "\n" + typed[60:]
    answer = scan(desk, typed).get_json()
    assert (answer["registered"], answer["outcome"]) == (False, "already")
    assert {m["outcome"] for m in answer["members"]} == {"already"}
    assert counts(desk.node)[1:] == before[1:]
    assert desk.node.db.execute("SELECT count(*) FROM households").fetchone()[0] == 1


def test_a_newer_code_with_a_newborn_adds_only_the_newborn(desk):
    first = make(desk, family(3))
    scan(desk, first)
    read = household_code.read(first)
    grown = family(4)
    newer = make(desk, {**grown, "household_id": read.household_id, "seqs": list(read.seqs),
                        "next_seq": read.next_seq})
    answer = scan(desk, newer, "auto").get_json()
    assert answer["registered"] is True and answer["household_id"] == read.household_id
    assert [m["outcome"] for m in answer["members"]] == ["already"] * 3 + ["done"]
    assert counts(desk.node)[1:3] == (1, 4)


def test_a_card_with_household_checks_them_all_out(desk):
    answer = scan(desk, make(desk, family())).get_json()
    response = scan(desk, answer["members"][2]["short_code"], "check_out",
                    destination="home", household=True)
    assert response.status_code == 200, response.get_json()
    out = response.get_json()
    assert (out["household_id"], out["action"], out["outcome"], out["registered"]) == (
        answer["household_id"], "check_out", "done", False)
    assert [m["presence"]["status"] for m in out["members"]] == ["left"] * 4
    assert [m["presence"]["destination"] for m in out["members"]] == ["home"] * 4
    # Without "household", a card is one person, as before.
    one = scan(desk, answer["members"][0]["code"], "check_in").get_json()
    assert one["person_id"] == answer["members"][0]["person_id"] and "members" not in one


def test_bad_codes_are_refused_with_a_message_and_change_nothing(desk):
    code = make(desk, family())
    digits = code[len(household_code.PREFIX):]
    corrupt = household_code.PREFIX + digits[:30] + str((int(digits[30]) + 1) % 10) + \
        digits[31:]
    wrong_fields = household_code.make({**family(language="en"), "members": [
        dict(family()["members"][0], family_name="", birth_date="2999-01-01")]})
    before = counts(desk.node)
    for bad, error in ((corrupt, "household_code_garbled"),
                       (code[:-40], "household_code_truncated"),
                       (code[:len(household_code.PREFIX) + 20], "household_code_truncated"),
                       ("SHH9.12345", "household_code_version"),
                       ("SHH1." + "1" * 5700, "household_code_too_large")):
        response = scan(desk, bad)
        assert response.status_code == 422, (error, response.get_json())
        assert response.get_json()["error"]["code"] == error
        assert response.get_json()["error"]["message"]
    response = scan(desk, wrong_fields)
    assert response.status_code == 422
    fields = response.get_json()["error"]["fields"]
    assert fields["members.0.family_name"] == "This field is required."  # the code's language
    assert fields["members.0.birth_date"] == "The birth date cannot be in the future."
    # A check-out needs where to, for a household code too.
    assert scan(desk, code, "check_out").status_code == 422
    assert counts(desk.node) == before


def test_household_codes_round_trip_and_refuse_as_households_does(desk):
    body = family(language="vi", address="")
    code = make(desk, body)
    read = household_code.read(code)
    assert read.registration["language"] == "vi" and read.registration["pets"] == "犬1匹"
    assert [(m["family_name"], m["given_name"]) for m in read.registration["members"]] == \
        list(NAMES)
    assert read.registration["members"][1]["medication"] == "インスリン"
    again = household_code.read(make(desk, {**body, "household_id": read.household_id,
                                            "seqs": [3, 2, 1, 0]}))
    assert (again.household_id, again.seqs) == (read.household_id, (3, 2, 1, 0))
    bad = desk("/api/v1/household-codes", {**body, "language": "en", "members": [
        dict(body["members"][0], birth_date="1950-02-30")], "seqs": ["x"],
        "household_id": "not-an-id"}, auth=False)
    assert bad.status_code == 422
    fields = bad.get_json()["error"]["fields"]
    assert fields["members.0.birth_date"] == "This date does not exist."
    assert set(fields) == {"members.0.birth_date", "seqs", "household_id"}
    japanese = desk("/api/v1/household-codes", {**body, "language": "ja", "members": [
        dict(body["members"][0], family_name_kana="")]}, auth=False).get_json()
    assert japanese["error"]["fields"]["members.0.family_name_kana"] == "入力してください。"
    assert desk("/api/v1/household-codes", [1], auth=False).status_code == 422


def _files(data: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}


def test_household_codes_store_and_log_nothing_on_a_node_or_at_hq(app, tmp_path, caplog):
    hq = create_app(tmp_path / "hq", role="hq")
    for each, data in ((app, Path(app.extensions["shelter"].data_dir)),
                       (hq, tmp_path / "hq")):
        client, node = each.test_client(), each.extensions["shelter"]
        client.get("/api/v1/openapi.json")  # whatever a first request sets up
        if node.role == "hq":  # the projector's first round makes HQ's log: not this
            projector.project_all(node)
        before, files = counts(node)[0], _files(data)
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            response = client.post("/api/v1/household-codes", json=family())
            refused = client.post("/api/v1/household-codes", json=family(consent="maybe"))
        assert response.status_code == 200 and refused.status_code == 422
        household_code.read(response.get_json()["code"])
        assert counts(node)[0] == before
        assert _files(data) == files
        for name in ("陽葵", "インスリン", "そば"):
            assert not any(name.encode() in blob for blob in files.values())
            assert name not in caplog.text


def test_duplicate_flags_work_as_for_the_form(desk):
    """Someone registered on the form, arriving again with their family's code: flagged
    for staff as the form flags it (same name and birth date), nothing merged."""
    first = family(1)
    desk.client.post("/api/v1/households", json=first,
                     headers={"Authorization": f"Bearer {create_token(desk.node.store, 'kiosk')}"})
    answer = scan(desk, make(desk, family(2))).get_json()
    flags = desk.node.db.execute("SELECT person_id, reason FROM duplicate_flags").fetchall()
    assert flags == [(answer["members"][0]["person_id"], "name_birth")]
    assert counts(desk.node)[1:3] == (2, 3)
