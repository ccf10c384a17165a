"""Staff correct a household or a person, add a newborn and reprint one card
(shelter/domain/corrections.py, /staff/households/<id>/correct): events that carry only
what changed, audited without values, a 4xx that keeps what was typed, the latest clock
winning each field in any order; and, with a real node and a real HQ, the corrected name is
what HQ's enquiry finds, the consent what it may say, the newborn in HQ's headcount, while a
correction about another shelter's people is refused there with a reason."""

from __future__ import annotations

import copy
import json
import re
import sqlite3

import pytest
from sqlite_utils import Database
from ulid import ULID

from shelter.core.authority import Sender, refusal
from shelter.core.events import PROJECTIONS, Event
from shelter.core.node import NodeContext
from shelter.domain import cards, corrections, enquiry, households, roster
from shelter.domain.settings import get_settings
from sync import client as sync_client

from .conftest import (
    VALID_HOUSEHOLD,
    api,
    decode_png,
    enrolled_node,
    render_pdf,
    run_cli,
    start_hq,
    wait_until,
)
from .conftest import sign_in as browser_sign_in
from .test_bad_input import csrf_of
from .test_bad_input import sign_in as session_sign_in
from .test_browser_desk import assert_accessible
from .test_presence import signed_in
from .test_trust_sync import Thief, read, refused

SHELTER = "E2710000001111"


def registered(node) -> tuple[str, str]:
    body = copy.deepcopy(VALID_HOUSEHOLD)
    r = households.register_household(node.store, node.identity, body)
    return r["household_id"], r["members"][0]["person_id"]


def form_of(page: str, household_id: str, db) -> dict:
    """The correction form as the page shows it: every field, as a browser would post it."""
    household = households.get_household(db, household_id)
    data: dict = {"csrf": "t0k3n",
                  "seen": re.search(r'name="seen" value="([^"]+)"', page).group(1)}
    data.update({f"household-{k}": household[k] for k in corrections.HOUSEHOLD_FIELDS})
    for m in household["members"]:
        data.update({f"p{m['person_id']}-{k}": m[k] for k in corrections.PERSON_FIELDS})
    return data


def events_of(db, kind: str) -> list[dict]:
    return [json.loads(r[0]) for r in db.execute(
        "SELECT payload FROM events WHERE type = ? ORDER BY seq", [kind])]


def test_a_correction_records_only_what_changed_audited_without_values(app):
    node = app.extensions["shelter"]
    household_id, person = registered(node)
    before = households.get_person(node.db, person)["card_code"]
    client = signed_in(app)
    page = client.get(f"/staff/households/{household_id}/correct?lang=ja")
    assert page.status_code == 200 and "訂正を保存" in page.get_data(as_text=True)
    assert "correct-link" in client.get(f"/staff/households/{household_id}").get_data(
        as_text=True)
    form = form_of(page.get_data(as_text=True), household_id, node.db)
    form.update({f"p{person}-given_name": "太朗", f"p{person}-needs": ["elderly", "allergy"],
                 f"p{person}-allergies": "卵", "household-consent": "none"})
    saved = client.post(f"/staff/households/{household_id}/correct", data=form)
    assert saved.status_code == 303 and "saved=2" in saved.location
    assert "本部に送られます" in client.get(saved.location + "&lang=ja").get_data(as_text=True)
    # The events: only the changed fields, and the card signed again with the new name.
    [household] = events_of(node.db, "household_corrected")
    assert household["changes"] == {"consent": "none"}
    [corrected] = events_of(node.db, "person_corrected")
    changes = corrected["changes"]
    assert set(changes) == {"given_name", "needs", "allergies", "card_code"}
    card = cards.parse_code(changes["card_code"], node.card_keys())
    assert card.verified and card.display_name == "山田 太朗" and changes["card_code"] != before
    # Reflected: the desk finds the new name, the old one no more; the enquiry says nothing.
    assert [r["person_id"] for r in roster.find(node.db, "太朗")] == [person]
    assert enquiry.enquire(node.db, "山田", "太朗", "1948-04-02", "relative", {}) == []
    assert roster.describe(node.db, person, SHELTER)["flags"] == ["allergy"]
    # Audited: who and which fields, never a value.
    rows = node.db.execute("SELECT actor, action, subject, detail FROM audit_log "
                           "WHERE action LIKE 'correct_%' ORDER BY audit_id").fetchall()
    assert rows == [("volunteer", "correct_household", household_id, "consent"),
                    ("volunteer", "correct_person", person, "allergies,given_name,needs")]
    # The same form again changes nothing and appends nothing.
    again = form_of(client.get(f"/staff/households/{household_id}/correct").get_data(
        as_text=True), household_id, node.db)
    assert "saved=0" in client.post(f"/staff/households/{household_id}/correct",
                                    data=again).location
    assert len(events_of(node.db, "person_corrected")) == 1


def test_bad_input_keeps_what_was_typed_and_only_a_manager_widens_consent(app):
    node = app.extensions["shelter"]
    household_id, person = registered(node)
    client = signed_in(app)
    url = f"/staff/households/{household_id}/correct?lang=ja"
    form = form_of(client.get(url).get_data(as_text=True), household_id, node.db)
    form.update({f"p{person}-given_name": "太朗", f"p{person}-birth_date": "1948-02-31",
                 "household-phone": "電話なし", "household-consent": "acquaintances"})
    bad = client.post(url, data=form)
    html = bad.get_data(as_text=True)
    assert bad.status_code == 400 and 'value="太朗"' in html
    assert f'href="#p{person}-birth_date"' in html and 'href="#household-phone"' in html
    assert "存在しない日付です。" in html and 'href="#household-consent"' in html
    # Relatives -> acquaintances tells more: a volunteer may not, a manager may.
    form = form_of(client.get(url).get_data(as_text=True), household_id, node.db)
    form["household-consent"] = "acquaintances"
    wider = client.post(url, data=form)
    assert wider.status_code == 400 and "管理者だけです" in wider.get_data(as_text=True)
    assert events_of(node.db, "household_corrected") == [] == events_of(node.db,
                                                                        "person_corrected")
    manager = signed_in(app, "manager")
    assert manager.post(url, data=form).status_code == 303
    assert households.get_household(node.db, household_id)["consent"] == "acquaintances"
    # A form opened before that correction is stale: 409, the record shown, nothing saved.
    form["household-consent"] = "none"
    stale = client.post(url, data=form)
    assert stale.status_code == 409 and "ほかの人" in stale.get_data(as_text=True)
    assert households.get_household(node.db, household_id)["consent"] == "acquaintances"
    # Who may: not a kiosk, not someone signed out; an unknown household is a 404.
    assert signed_in(app, "kiosk").get(url).status_code == 403
    assert app.test_client().get(url).status_code == 302
    assert client.get("/staff/households/NOPE/correct").status_code == 404


def test_a_newborn_gets_a_card_that_scans_and_a_reprint_scans_too(app, tmp_path):
    node = app.extensions["shelter"]
    household_id, person = registered(node)
    client = signed_in(app)
    bad = client.post(f"/staff/households/{household_id}/members?lang=ja",
                      data={"csrf": "t0k3n", "new-family_name": "山田",
                            "new-given_name": "さくら", "new-birth_date": "2999-01-01"})
    assert bad.status_code == 400 and 'value="さくら"' in bad.get_data(as_text=True)
    added = client.post(f"/staff/households/{household_id}/members", data={
        "csrf": "t0k3n", "new-family_name": "山田", "new-given_name": "さくら",
        "new-family_name_kana": "やまだ", "new-birth_date": "2026-11-30",
        "new-needs": ["infant"]})
    assert added.status_code == 303
    newborn = added.location.split("added=")[1]
    assert "さくら" in client.get(added.location).get_data(as_text=True)
    row = households.get_person(node.db, newborn)
    assert row["household_id"] == household_id and row["kana_key"]
    for who in (newborn, person):
        pdf = client.get(f"/staff/persons/{who}/card.pdf")
        assert pdf.mimetype == "application/pdf"
        (tmp_path / who).mkdir()
        [page] = render_pdf(pdf.data, tmp_path / who)
        assert decode_png(page) == [households.get_person(node.db, who)["card_code"]]
    scanned = client.post("/api/v1/scans", headers={"X-CSRF-Token": "t0k3n"}, json={
        "code": households.get_person(node.db, newborn)["card_code"], "action": "check_in"})
    assert scanned.status_code == 200, scanned.get_data(as_text=True)
    counts = roster.headcount(node.db, SHELTER, get_settings(node.db))
    assert (counts["registered"], counts["present"], counts["by_age"]["0-5"]) == (2, 1, 1)
    assert node.db.execute("SELECT count(*) FROM audit_log WHERE action = 'reprint_card'"
                           ).fetchone()[0] == 2
    assert client.get("/staff/persons/NOPE/card.pdf").status_code == 404


def test_the_latest_clock_wins_each_field_in_any_order(app, tmp_path):
    node = app.extensions["shelter"]
    household_id, person = registered(node)
    first = {"person_id": person, "household_id": household_id, "shelter_id": SHELTER,
             "changes": {"given_name": "一", "medication": "降圧剤"}}
    second = {**first, "changes": {"given_name": "二"}}
    made = [node.store.append("person_corrected", p)[0] for p in (first, second)]
    assert households.get_person(node.db, person)["given_name"] == "二"
    # Another store gets them the other way round (a bundle carried late): the same end.
    other = Database(tmp_path / "other.db")
    from shelter.core.migrations import migrations
    migrations.apply(other)
    with other.conn:
        registration = Event.from_row(next(iter(node.db.query(
            "SELECT * FROM events WHERE type = 'household_registered'"))))
        for event in [registration, *reversed(made)]:
            PROJECTIONS[event.type](other, event)
    again = next(iter(other.query("SELECT given_name, medication, name_key FROM persons")))
    mine = households.get_person(node.db, person)
    assert again == {k: mine[k] for k in ("given_name", "medication", "name_key")}


def test_what_hq_refuses_of_a_correction(app):
    """As HQ judges a node's event (the same ``refusal``), on a store holding shelter
    E2710000001111's household: another shelter's node may say nothing of it."""
    node = app.extensions["shelter"]
    household_id, person = registered(node)
    code = households.get_person(node.db, person)["card_code"]
    thief, own = Sender("node", "hq", "E2710000003333"), Sender("node", "hq", SHELTER)

    def why(sender, kind, payload):
        reason = refusal(node.db, sender, kind, payload, "NTHIEF")
        return reason.text() if reason else None

    about = {"person_id": person, "household_id": household_id}
    assert "concerns a person of shelter E2710000001111" in why(
        thief, "person_corrected", {**about, "shelter_id": "E2710000003333",
                                    "changes": {"given_name": "偽"}})
    assert "not the sender's" in why(thief, "household_corrected", {
        "household_id": household_id, "shelter_id": "E2710000003333",
        "changes": {"consent": "acquaintances"}})
    assert "not the sender's" in why(thief, "person_added", {
        "household_id": household_id, "shelter_id": "E2710000003333", "members": []})
    assert "does not know" in why(own, "household_corrected", {
        "household_id": "01HZZZZZZZZZZZZZZZZZZZZZZZ", "shelter_id": SHELTER,
        "changes": {"consent": "none"}})
    # Its own shelter's, with values its form could not have made, or another's card.
    mine = {**about, "shelter_id": SHELTER}
    assert why(own, "person_corrected", {**mine, "changes": {"needs": ["x"]}}) \
        == "changes.needs: a value that cannot be used"
    assert why(own, "person_corrected", {**mine, "changes": {"role": "admin"}}) is not None
    assert why(own, "person_corrected", {**mine, "changes": {"card_code": code.replace(
        person, "01HZZZZZZZZZZZZZZZZZZZZZZZ")}}) is not None
    assert why(own, "person_corrected", {**mine, "changes": {"card_code": code}}) is None
    # A member added must be a new person: not one registered already.
    member = {k: households.get_person(node.db, person)[k] for k in corrections.PERSON_FIELDS}
    taken = {**member, "person_id": person, "short_code": "7KQ3M9TX", "card_code": code}
    assert "registered already" in why(own, "person_added", {
        "household_id": household_id, "shelter_id": SHELTER, "members": [taken]})


# --- a real node and a real HQ ------------------------------------------------------------

A, B = "E2710000004444", "E2710000005555"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A real HQ, shelter A's node (syncing, a household checked in) and the directory of
    shelter B's node, enrolled: the thief's."""
    hq = start_hq(tmp_path_factory.mktemp("hq"))
    started = [hq]
    try:
        # B's directory, enrolled in this process (no server needed for it): the loot.
        stolen = NodeContext(tmp_path_factory.mktemp("b"), shelter_id=B)
        sync_client.enroll(stolen, hq.url, run_cli("hq", "enroll", "--data", str(hq.data),
                                                   "--shelter", B).stdout.strip())
        node = enrolled_node(hq, tmp_path_factory.mktemp("a"), A, "--shelter-name", "訂正小学校")
        started.append(node)
        run_cli("user", "add", "--data", str(node.data), "--username", "boss", "--role",
                "manager", "--password", "boss-pass-12345")
        token = node.token("manager")
        ours = api(node, "POST", "/api/v1/households", token,
                   json=copy.deepcopy(VALID_HOUSEHOLD)).json()
        api(node, "POST", "/api/v1/scans", token,
            json={"code": ours["members"][0]["code"], "action": "check_in"})
        wait_until(lambda: read(hq.data, "SELECT count(*) FROM presence")[0][0] == 1,
                   timeout=60, what="A synced")
        yield {"hq": hq, "node": node, "token": token, "ours": ours,
               "thief": Thief(stolen.data_dir, hq.port, hq.data)}
    finally:
        for server in reversed(started):
            server.stop()


def readonly(data) -> Database:
    return Database(sqlite3.connect(f"file:{data / 'shelter.db'}?mode=ro", uri=True,
                                    timeout=15))


def hq_enquiry(hq, given: str, relation: str) -> list[dict]:
    db = readonly(hq.data)
    try:
        return enquiry.enquire(db, "山田", given, "1948-04-02", relation, {})
    finally:
        db.conn.close()


def test_corrections_reach_hq_its_enquiry_and_its_headcount(world):
    hq, node, ours = world["hq"], world["node"], world["ours"]
    household_id, person = ours["household_id"], ours["members"][0]["person_id"]
    assert len(hq_enquiry(hq, "太郎", "relative")) == 1
    url = f"{node.https}/staff/households/{household_id}/correct"
    staff = session_sign_in(node, "boss", "boss-pass-12345")

    def save(**changes: str) -> None:
        db = readonly(node.data)
        try:
            form = {**form_of(staff.get(url, timeout=20).text, household_id, db), **changes}
        finally:
            db.conn.close()
        form["csrf"] = csrf_of(staff, url)
        assert staff.post(url, data=form, timeout=20).status_code == 200  # after its 303

    save(**{f"p{person}-given_name": "太朗", "household-consent": "none"})
    wait_until(lambda: read(hq.data, "SELECT given_name FROM persons WHERE person_id = ?",
                            (person,)) == [("太朗",)], timeout=60, what="the name at HQ")
    # Consent "none": a relative hears nothing, by the new name or the old.
    assert hq_enquiry(hq, "太朗", "relative") == [] == hq_enquiry(hq, "太郎", "relative")
    save(**{"household-consent": "acquaintances"})
    told = wait_until(lambda: hq_enquiry(hq, "太朗", "acquaintance"), timeout=60,
                      what="the wider consent at HQ")
    assert "山田 太朗" in json.dumps(told, ensure_ascii=False)
    assert hq_enquiry(hq, "太郎", "acquaintance") == []
    # A newborn, checked in with their new card: HQ counts them.
    added = staff.post(f"{node.https}/staff/households/{household_id}/members", data={
        "csrf": csrf_of(staff, url), "new-family_name": "山田", "new-given_name": "さくら",
        "new-family_name_kana": "やまだ", "new-birth_date": "2026-11-30"},
        allow_redirects=False, timeout=20)
    assert added.status_code == 303
    newborn = added.headers["Location"].split("added=")[1]
    code = read(node.data, "SELECT card_code FROM persons WHERE person_id = ?", (newborn,))
    assert api(node, "POST", "/api/v1/scans", world["token"],
               json={"code": code[0][0], "action": "check_in"}).status_code == 200
    operator = run_cli("token", "create", "--data", str(hq.data), "--role", "operator"
                       ).stdout.strip()
    row = wait_until(lambda: next((r for r in hq.get("/api/v1/shelters", operator).json()[
        "shelters"] if r["shelter_id"] == A and r["registered"] == 2 and r["present"] == 2),
        None), timeout=60, what="HQ counts the newborn")
    assert row["name"] == "訂正小学校"


def test_a_correction_about_another_shelters_people_is_refused_at_hq(world):
    hq, thief, ours = world["hq"], world["thief"], world["ours"]
    person, household_id = ours["members"][0]["person_id"], ours["household_id"]
    own = str(ULID())
    member = {**{k: VALID_HOUSEHOLD["members"][0].get(k, "") for k in
                 corrections.PERSON_FIELDS}, "needs": [], "person_id": str(ULID()),
              "short_code": "7KQ3M9TX", "card_code": "x"}
    registration = {k: VALID_HOUSEHOLD[k] for k in corrections.HOUSEHOLD_FIELDS
                    if k in VALID_HOUSEHOLD}
    ack = thief.say([
        ("person_corrected", {"person_id": person, "household_id": household_id,
                              "shelter_id": B, "changes": {"given_name": "偽名"}}),
        ("household_corrected", {"household_id": household_id, "shelter_id": A,
                                 "changes": {"consent": "acquaintances"}}),
        ("person_added", {"household_id": household_id, "shelter_id": B, "members": []}),
        # Behind them, a household of its own, and a correction of it: applied.
        ("household_registered", {**registration, "pets": "", "household_id": own,
                                  "shelter_id": B, "members": [member]}),
        ("household_corrected", {"household_id": own, "shelter_id": B,
                                 "changes": {"phone": "06-9999-0000"}}),
    ])
    reasons = refused(ack)
    assert len(reasons) == 3 and ack["applied"] == 2, ack["quarantined"]
    assert "concerns a person of shelter E2710000004444" in reasons[0]
    assert "not the sender's" in reasons[1] and "not the sender's" in reasons[2]
    assert read(hq.data, "SELECT phone FROM households WHERE household_id = ?",
                (own,)) == [("06-9999-0000",)]
    assert read(hq.data, "SELECT given_name FROM persons WHERE person_id = ?",
                (person,)) == [("太朗",)]
    assert read(hq.data, "SELECT count(*) FROM sync_quarantine WHERE refused = 1 "
                         "AND shelter_id = ?", (B,))[0][0] == 3


def test_the_correction_page_in_a_browser_is_accessible_and_links_its_errors(world, browser):
    node, household_id = world["node"], world["ours"]["household_id"]
    context = browser.new_context(viewport={"width": 768, "height": 1024},
                                  ignore_https_errors=True, locale="ja-JP")
    try:
        page = context.new_page()
        browser_sign_in(page, node.https, "boss", "boss-pass-12345",
                        f"/staff/households/{household_id}")
        page.click("#correct-link")
        page.wait_for_url(f"**/staff/households/{household_id}/correct")
        assert_accessible(page)
        person = world["ours"]["members"][0]["person_id"]
        page.fill(f"#p{person}-birth_date", "1948-13-02")
        page.click("#save-corrections")
        page.wait_for_selector("#error-summary")
        assert_accessible(page)
        page.click(f'#error-summary a[href="#p{person}-birth_date"]')
        assert page.evaluate("location.hash") == f"#p{person}-birth_date"
        assert page.input_value(f"#p{person}-birth_date") == "1948-13-02"
        assert page.get_attribute(f"#p{person}-birth_date", "aria-invalid") == "true"
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 768, width
    finally:
        context.close()
