"""HQ's pages and feeds over real stores: two shelter nodes' events applied at an HQ that
holds the real GSI registry; numbers per shelter and municipality, silence, settings and
supply steps flowing down, safety enquiries within consent, and what the public and the
wrong credentials can (not) see."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from shelter.app import create_app
from shelter.core import meta
from shelter.core.node import NodeContext
from shelter.domain import accounts, households, presence, supply_requests
from shelter.domain.settings import get_settings
from shelter.hq import refresher
from shelter.hq.shelters import import_file
from sync import protocol
from sync.apply import apply_batch
from sync.pull import CURSOR_KEY, apply_pulled, updates_for

from .conftest import VALID_HOUSEHOLD, pdf_text, wait_until
from .test_hq_registry import GSI

A, B = "E2710000001111", "E2710000003111"  # 阿倍野スポーツセンター, 金塚小学校 (both 大阪市)
# What must never leave HQ's staff pages: the test people's names, birth dates and phone
# (words that also occur in the public registry, like the place name 山田, are skipped).
PERSONAL = tuple(w for w in ("山田", "やまだ", "鈴木", "すずき", "佐藤", "田中", "太郎", "たろう",
                             "1948-04-02", "1990-01-01", "1970-05-05", "06-1234-5678",
                             "大手前")
                 if w not in GSI.read_text(encoding="utf-8"))


def push(node: NodeContext, hq: NodeContext) -> None:
    events = [protocol.for_wire(r) for r in node.db.query(
        "SELECT * FROM events WHERE node_id = ? ORDER BY seq", [node.node_id])]
    result = apply_batch(hq.store, node.node_id, node.shelter_id, events)
    assert not result.quarantined and not result.conflicts
    while refresher.refresh(hq.store):
        pass


def pull(node: NodeContext, hq: NodeContext) -> None:
    cursor = int(meta.get(node.db, CURSOR_KEY) or 0)
    events, cursor = updates_for(hq.db, node.shelter_id, node.node_id, cursor)
    apply_pulled(node.store, events, cursor)


def ids(world) -> list[str]:
    return [m[k] for m in world["people"].values() for k in ("person_id", "short_code")]


def household(consent: str, family: str = "山田", kana: str = "やまだ",
              birth: str = "1948-04-02", whereabouts: str = "shelter") -> dict:
    data = copy.deepcopy(VALID_HOUSEHOLD)
    data.update(consent=consent, whereabouts=whereabouts)
    data["members"][0].update(family_name=family, family_name_kana=kana, birth_date=birth)
    return data


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hq-world")
    hq = NodeContext(root / "hq", role="hq")
    import_file(hq.store, GSI)
    accounts.add_user(hq.store, "op", "operator-pass-1", "operator")
    a, b = NodeContext(root / "a", shelter_id=A), NodeContext(root / "b", shelter_id=B)
    people = {}
    for key, data in {"relatives": household("relatives"),
                      "acquaintances": household("acquaintances", "鈴木", "すずき",
                                                 "1990-01-01"),
                      "none": household("none", "佐藤", "さとう", "1970-05-05"),
                      "home": household("relatives", "田中", "たなか", "1960-03-03", "home")
                      }.items():
        people[key] = households.register_household(a.store, a.identity, data)["members"][0]
    for key in ("relatives", "none"):
        presence.scan(a.store, A, a.card_keys(), people[key]["code"], "check_in")
    # 鈴木 registered at A turns up at B with A's card: a move.
    presence.scan(b.store, B, {**b.card_keys(), **a.card_keys()},
                  people["acquaintances"]["code"], "check_in")
    push(a, hq)
    push(b, hq)
    app = create_app(root / "hq", role="hq", test_config={"TESTING": True})
    yield {"hq": hq, "a": a, "b": b, "app": app, "people": people,
           "token": accounts.create_token(hq.store, "operator")}
    for ctx in (hq, a, b):
        ctx.db.conn.close()


def signed_in(app, username: str = "op", password: str = "operator-pass-1"):
    """A client signed in at HQ through the login page, and a CSRF token for its forms."""
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = client.post("/staff/login", data={"username": username, "password": password,
                                               "csrf": csrf})
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]
    page = client.get("/hq/enquiry").get_data(as_text=True)  # a new session, a new token
    return client, re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def api_get(world, path):
    return world["app"].test_client().get(
        path, headers={"Authorization": f"Bearer {world['token']}"})


def row(world, shelter_id):
    rows = api_get(world, "/api/v1/shelters").get_json()["shelters"]
    return next(r for r in rows if r["shelter_id"] == shelter_id)


def test_every_registry_shelter_is_listed_with_the_synced_numbers(world):
    rows = api_get(world, "/api/v1/shelters").get_json()["shelters"]
    assert len(rows) == 2975
    a, b = row(world, A), row(world, B)
    assert (a["name"], a["municipality"], a["status"]) == \
        ("阿倍野スポーツセンター", "大阪市", "open")
    assert (a["present"], a["registered"], a["at_home"]) == (2, 4, 1)
    assert (b["present"], b["registered"]) == (1, 0)  # 鈴木, registered at A
    assert a["by_need"]["elderly"] == 2 and a["as_of"] and not a["stale"]
    standby = next(r for r in rows if r["shelter_id"] == "E2710002804121")
    assert (standby["status"], standby["stale"], standby["present"]) == ("standby", False, 0)
    summary = api_get(world, "/api/v1/summary").get_json()
    assert (summary["present"], summary["registered"], summary["shelters"],
            summary["shelters_open"], summary["shelters_stale"]) == (3, 4, 2975, 2, 0)
    client, _ = signed_in(world["app"])
    page = client.get("/hq/municipalities/大阪市").get_data(as_text=True)
    assert 'data-total="present">3<' in page and "阿倍野スポーツセンター" in page


def test_a_shelter_that_stops_syncing_stands_out_and_totals_say_how_much_is_stale(world):
    hq = world["hq"]
    old = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    with hq.store.write() as db:
        db.execute("UPDATE sync_origins SET last_batch_at = ?, last_seen_at = NULL "
                   "WHERE shelter_id = ?", [old, B])
    try:  # the app's cache follows the commit within its watcher's poll
        wait_until(lambda: row(world, B)["stale"], timeout=10, what="B silent")
        assert not row(world, A)["stale"]
        summary = api_get(world, "/api/v1/summary").get_json()
        assert (summary["shelters_stale"], summary["stale_present"]) == (1, 1)
        client, _ = signed_in(world["app"])
        page = client.get("/hq").get_data(as_text=True)
        assert re.search(rf'<tr data-shelter="{B}" class="stale">', page)
        assert f'class="dot crowd-unknown status-open stale" data-shelter="{B}"' in page
    finally:
        with hq.store.write() as db:
            db.execute("UPDATE sync_origins SET last_batch_at = ? WHERE shelter_id = ?",
                       [datetime.now(UTC).isoformat(), B])
        wait_until(lambda: not row(world, B)["stale"], timeout=10, what="B heard again")


def test_status_capacity_and_contact_go_down_to_the_shelter(world):
    client, csrf = signed_in(world["app"])
    refused = client.post(f"/hq/shelters/{A}", data={"csrf": csrf, "status": "maybe",
                                                     "capacity": "10", "contact": ""})
    assert refused.status_code == 422 and "一覧から" in refused.get_data(as_text=True)
    refused = client.post(f"/hq/shelters/{A}", data={"csrf": csrf, "status": "open",
                                                     "capacity": "-3", "contact": ""})
    assert refused.status_code == 422
    refused = client.post(f"/hq/shelters/{A}", data={"csrf": csrf, "status": "open",
                                                     "capacity": "²", "contact": ""})
    assert refused.status_code == 422  # a digit int() cannot read: it was a 500
    assert client.post("/hq/shelters/NOPE", data={"csrf": csrf}).status_code == 404
    done = client.post(f"/hq/shelters/{A}", data={"csrf": csrf, "status": "full",
                                                  "capacity": "4", "contact": "06-0000-1111"})
    assert done.status_code == 302
    node = world["a"]
    pull(node, world["hq"])
    settings = get_settings(node.db)
    assert (settings["status"], settings["capacity"], settings["contact"]) == \
        ("full", "4", "06-0000-1111")
    pull(world["b"], world["hq"])
    assert get_settings(world["b"].db)["capacity"] == "0"  # not B's business
    assert client.post(f"/hq/shelters/{A}/message", data={"csrf": csrf, "text": ""}
                       ).status_code == 422
    assert client.post(f"/hq/shelters/{A}/message", data={
        "csrf": csrf, "text": "明朝、給水車が到着します"}).status_code == 302
    pull(node, world["hq"])
    desk = create_app(node.data_dir, test_config={"TESTING": True}).test_client()
    page = desk.get("/desk/headcount", headers={
        "Authorization": f"Bearer {accounts.create_token(node.store, 'volunteer')}"})
    text = page.get_data(as_text=True)
    assert "給水車が到着します" in text and "06-0000-1111" in text and "満員となっています" in text
    a = row(world, A)
    assert (a["status"], a["capacity"], a["crowding"]) == ("full", 4, "somewhat_crowded")


def test_supply_requests_are_acknowledged_and_dispatched_down_to_the_shelter(world):
    node, hq = world["a"], world["hq"]
    request_id = supply_requests.request_supplies(node.store, A, {
        "lines": [{"item_id": "water", "quantity": 120}, {"item_id": "blanket", "quantity": 30}],
        "urgency": "urgent", "note": ""})
    push(node, hq)
    client, csrf = signed_in(world["app"])
    page = client.get("/hq/requests").get_data(as_text=True)
    assert 'data-item="water">120<' in page and "阿倍野スポーツセンター" in page
    assert client.post(f"/hq/requests/{request_id}/acknowledge",
                       data={"csrf": csrf, "note": "手配中"}).status_code == 302
    assert client.post(f"/hq/requests/{request_id}/acknowledge",
                       data={"csrf": csrf}).status_code == 409
    bad = client.post(f"/hq/requests/{request_id}/dispatch", data={
        "csrf": csrf, "quantity-water": "lots", "expected_arrival": "2026-11-27T10:00"})
    assert bad.status_code == 422
    bad = client.post(f"/hq/requests/{request_id}/dispatch", data={
        "csrf": csrf, "quantity-water": "²", "expected_arrival": "2026-11-27T10:00"})
    assert bad.status_code == 422  # a digit int() cannot read: it was a 500
    bad = client.post(f"/hq/requests/{request_id}/dispatch", data={
        "csrf": csrf, "quantity-water": "100", "expected_arrival": "tomorrow"})
    assert bad.status_code == 422
    assert client.post(f"/hq/requests/{request_id}/dispatch", data={
        "csrf": csrf, "quantity-water": "100", "quantity-blanket": "30",
        "expected_arrival": "2026-11-27T10:00"}).status_code == 302
    pull(node, hq)
    mine = next(r for r in supply_requests.requests(node.db) if r["request_id"] == request_id)
    assert mine["status"] == "dispatched"
    assert mine["dispatched"] == [{"item_id": "water", "quantity": 100},
                                  {"item_id": "blanket", "quantity": 30}]
    assert mine["expected_arrival"].startswith("2026-11-27T10:00")


def enquire(client, csrf, family, given, birth, relation):
    return client.post("/hq/enquiry", data={
        "csrf": csrf, "family_name": family, "given_name": given, "birth_date": birth,
        "relation": relation, "enquirer": "問い合わせ者", "enquirer_contact": "090"})


def answer(response) -> str:
    page = response.get_data(as_text=True)
    found = re.search(r'<section id="answer".*?</section>', page, re.S)
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", found.group(0))).strip() if found else ""


def test_safety_enquiries_follow_each_persons_consent(world):
    client, csrf = signed_in(world["app"])
    # consent "relatives": a relative learns the whereabouts, by kanji or any kana.
    for family, given in (("山田", "太郎"), ("ヤマダ", "タロウ"), ("ﾔﾏﾀﾞ", "ﾀﾛｳ")):
        said = answer(enquire(client, csrf, family, given, "1948-04-02", "relative"))
        assert "阿倍野スポーツセンター" in said, (family, said)
    assert answer(enquire(client, csrf, "山田", "太郎", "1948-04-02", "acquaintance")) == \
        "情報を提供できません。"
    # consent "acquaintances": an acquaintance gets name and whereabouts only.
    said = answer(enquire(client, csrf, "すずき", "たろう", "1990-01-01", "acquaintance"))
    assert "鈴木 太郎" in said and "金塚小学校" in said
    # consent "none", a wrong birth date, nobody: the same answer, which reveals nothing.
    for family, birth in (("佐藤", "1970-05-05"), ("山田", "1948-04-03"), ("無名", "2000-01-01")):
        assert answer(enquire(client, csrf, family, "太郎", birth, "relative")) == \
            "情報を提供できません。"
    bad = enquire(client, csrf, "山田", "太郎", "4/2/1948", "relative")
    assert bad.status_code == 422 and "YYYY-MM-DD" in bad.get_data(as_text=True)
    audited = world["hq"].db.execute("SELECT count(*) FROM audit_log WHERE action = "
                                     "'safety_enquiry' AND actor = 'op'").fetchone()[0]
    assert audited == 8  # every search, whatever it found (not the refused form)


def test_enquiries_are_rate_limited(world, monkeypatch):
    from shelter.domain import enquiry as enquiries
    client, csrf = signed_in(world["app"])
    done = world["hq"].db.execute("SELECT count(*) FROM audit_log WHERE action = "
                                  "'safety_enquiry' AND actor = 'op'").fetchone()[0]
    monkeypatch.setattr(enquiries, "ENQUIRIES_PER_WINDOW", done + 2)
    statuses = [enquire(client, csrf, "山田", "太郎", "1948-04-02", "relative").status_code
                for _ in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_public_page_and_feed_show_open_shelters_and_nobody(world):
    client = world["app"].test_client()  # no login
    feed = client.get("/api/v1/public/shelters")
    assert feed.status_code == 200
    # Other sites may cache the public feed (the private pages' no-store overrode this).
    assert feed.headers["Cache-Control"].startswith("public, max-age=")
    shelters = feed.get_json()["shelters"]
    assert {s["shelter_id"] for s in shelters} >= {B}  # A is "full": still listed
    assert all(s["status"] in ("open", "full") for s in shelters)
    assert set(shelters[0]) == {"shelter_id", "name", "municipality", "address", "lat", "lon",
                                "status", "crowding", "occupancy", "last_synced_at", "as_of",
                                "stale"}
    page = client.get("/public?lang=en")
    assert page.status_code == 200 and "Open evacuation shelters" in page.get_data(as_text=True)
    for body in (feed.get_data(as_text=True), page.get_data(as_text=True)):
        for word in (*PERSONAL, *ids(world)):
            assert word not in body, word


def test_exports_and_the_situation_report_carry_no_personal_data(world, tmp_path):
    client, _ = signed_in(world["app"])
    for kind in ("csv", "json", "geojson"):
        response = client.get(f"/hq/export/shelters.{kind}")
        assert response.status_code == 200
        body = response.get_data(as_text=True)
        assert "阿倍野スポーツセンター" in body and "国土地理院" in body or kind == "csv"
        for word in (*PERSONAL, *ids(world)):
            assert word not in body, (kind, word)
    geo = json.loads(client.get("/hq/export/shelters.geojson").get_data(as_text=True))
    assert len(geo["features"]) == 2975
    feature = next(f for f in geo["features"] if f["properties"]["shelter_id"] == B)
    assert feature["properties"]["present"] == 1 and "by_need" not in feature["properties"]
    assert client.get("/hq/export/shelters.xml").status_code == 404
    text = pdf_text(client.get("/hq/report.pdf").data, tmp_path)
    assert "避難所状況報告" not in text and "状況報告" in text and "大阪市" in text
    for word in (*PERSONAL, *ids(world)):
        assert word not in text
    english = pdf_text(client.get("/hq/report.pdf?language=en").data, tmp_path)
    assert "Situation report" in english and "Silent shelters" in english
    assert client.get("/hq/report.pdf?language=xx").status_code == 400


def test_wrong_credentials_reach_no_hq_page(world, tmp_path):
    app = world["app"]
    anonymous = app.test_client()
    for path in ("/hq", "/hq/enquiry", "/hq/requests", f"/hq/shelters/{A}",
                 "/hq/export/shelters.csv", "/hq/report.pdf"):
        assert anonymous.get(path).status_code == 302, path  # to the login page
    assert anonymous.post("/hq/enquiry", data={"family_name": "山田"}).status_code in (302, 400)
    node_token = accounts.create_token(world["a"].store, "volunteer")  # valid at the node only
    credential = meta.get(world["a"].db, "hq_credential") or "sync-credential"
    for bearer in (node_token, credential, "garbage"):
        for path in ("/api/v1/shelters", "/api/v1/summary"):
            response = app.test_client().get(path, headers={"Authorization": f"Bearer {bearer}"})
            assert response.status_code == 401, (bearer, path)
        for path in ("/hq", "/hq/enquiry", f"/hq/shelters/{A}"):
            response = app.test_client().get(path, headers={"Authorization": f"Bearer {bearer}"})
            assert response.status_code == 302 and "/staff/login" in response.location, path


def test_hq_answers_match_hq_openapi_document(world):
    import jsonschema_rs  # installed with schemathesis, a test dependency

    spec = world["app"].test_client().get("/api/v1/openapi.json").get_json()
    for path, answer_of in (("/api/v1/shelters", lambda: api_get(world, "/api/v1/shelters")),
                            ("/api/v1/summary", lambda: api_get(world, "/api/v1/summary")),
                            ("/api/v1/public/shelters",
                             lambda: world["app"].test_client().get("/api/v1/public/shelters"))):
        schema = spec["paths"][path]["get"]["responses"]["200"]["content"][
            "application/json"]["schema"]
        # the document's shapes are components: resolve "#/components/..." against them
        jsonschema_rs.Draft202012Validator({**schema, "components": spec["components"]}
                                           ).validate(answer_of().get_json())


def test_hqs_rules_and_drawings_need_no_request():
    """Consent, demand and the map are plain functions: the same answer from a view, the
    CLI or a test, with no Flask request around them."""
    from shelter.domain.enquiry import may_be_told
    from shelter.hq.queue import demand
    from shelter.render.drawings import chart_svg, map_svg

    told = {(consent, relation): may_be_told(consent, relation)
            for consent in ("relatives", "acquaintances", "none")
            for relation in ("relative", "acquaintance")}
    assert [k for k, v in told.items() if v] == [
        ("relatives", "relative"), ("acquaintances", "relative"),
        ("acquaintances", "acquaintance")]
    queue = [{"status": "requested", "shelter_id": A, "lines": [
                 {"item_id": "water", "quantity": 10}, {"item_id": "food", "quantity": 5}]},
             {"status": "acknowledged", "shelter_id": B, "lines": [
                 {"item_id": "water", "quantity": 7}]},
             {"status": "dispatched", "shelter_id": B, "lines": [
                 {"item_id": "food", "quantity": 99}]}]
    assert demand(queue) == [{"item_id": "water", "quantity": 17, "shelters": 2},
                             {"item_id": "food", "quantity": 5, "shelters": 1}]
    dot = {"shelter_id": A, "name": "<b>", "municipality": "大阪市", "lat": 34.6,
           "lon": 135.5, "crowding": "full", "status": "open", "stale": True}
    drawn = str(map_svg([dot], "/hq/shelters/", str.upper))
    assert f'href="/hq/shelters/{A}"' in drawn and "&lt;b&gt;" in drawn
    assert "MAP OF SHELTERS" in drawn and "stale" in drawn
    assert "NO HISTORY YET" in str(chart_svg([], "title", str.upper))
