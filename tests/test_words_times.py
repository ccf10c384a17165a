"""A demo day as staff read it, node and HQ, pages and PDFs (text through pdftotext): no time
in UTC, no ISO string, no code where a word belongs. The day is made at 20:30 UTC, when
Japan is already on the next day (05:30), so a UTC day or clock on any page shows."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest

from shelter import demo
from shelter.app import create_app
from shelter.core.node import NodeContext
from shelter.domain import presence, stock, supply_requests
from shelter.domain.day_notes import add_note
from shelter.hq import queue as hq_queue
from shelter.hq import refresher
from shelter.render import times, words
from shelter.render.catalogs import translations

from .conftest import pdf_text
from .test_hq import pull, push
from .wordcheck import Times, code_problems, shifted_clock, time_problems, unit_problems

SHELTER, SILENT = demo.SHELTERS[0][0], demo.SHELTERS[1][0]
EARLY = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)  # 03:00 on 12-02 in Japan: the silent one
MOMENT = datetime(2026, 12, 1, 20, 30, tzinfo=UTC)  # 05:30 on 12-02 in Japan
JST_DAY = "2026-12-02"




def _sign_in(app, username: str, password: str):
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = client.post("/staff/login", data={"username": username, "password": password,
                                               "csrf": csrf})
    assert answer.status_code == 303, answer.get_data(as_text=True)[:300]
    return client


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    root = tmp_path_factory.mktemp("words-day")
    with shifted_clock(EARLY) as offset:  # the second shelter syncs once, then goes silent
        silent = NodeContext(root / "silent", shelter_id=SILENT, clock_offset_seconds=offset)
        demo.seed(silent, demo.SHELTERS[1][1], demo.SHELTERS[1][2])
        hq = NodeContext(root / "hq", role="hq", clock_offset_seconds=offset)
        demo.seed_hq(hq)
        push(silent, hq)
        hq.db.conn.close()
        silent.db.conn.close()
    with shifted_clock(MOMENT) as offset:
        node = NodeContext(root / "node", shelter_id=SHELTER, clock_offset_seconds=offset)
        hq = NodeContext(root / "hq", role="hq", clock_offset_seconds=offset)
        demo.seed(node)
        members = [dict(r) for r in node.db.query(
            "SELECT p.person_id, p.household_id, h.whereabouts FROM persons p "
            "JOIN households h USING (household_id) ORDER BY h.registered_hlc, p.position")]
        here = [m for m in members if m["whereabouts"] == "shelter"]
        keys = node.card_keys()

        def code(member):
            return node.db.execute("SELECT short_code FROM persons WHERE person_id = ?",
                                   [member["person_id"]]).fetchone()[0]
        presence.scan(node.store, SHELTER, keys, code(here[0]), "go_out", actor="manager")
        presence.scan(node.store, SHELTER, keys, code(here[-1]), "check_out",
                      destination="hospital", actor="manager")
        stock.move(node.store, SHELTER, {"item_id": "food", "kind": "distributed",
                                         "quantity": 3, "code": code(here[1])}, "manager")
        stock.move(node.store, SHELTER, {"item_id": "toilet_paper", "kind": "counted",
                                         "quantity": 38, "reason": "棚卸し"}, "manager", True)
        add_note(node.store, SHELTER, "朝食を配布しました", "manager")
        supply_requests.request_supplies(node.store, SHELTER, {
            "lines": [{"item_id": "water", "quantity": 300}], "urgency": "normal"}, "manager")
        push(node, hq)
        queue = hq_queue.open_requests(hq.db, {})
        first = next(r for r in queue if r["shelter_id"] == SHELTER and
                     any(line["item_id"] == "infant_diapers" for line in r["lines"]))
        hq_queue.acknowledge(hq.store, "admin", first, {"note": "手配中"})
        hq_queue.dispatch(hq.store, "admin", first, {
            "quantity-infant_diapers": "200", "quantity-portable_toilet": "300",
            "expected_arrival": f"{JST_DAY}T15:00", "note": "トラック1台"})
        water = next(r for r in hq_queue.open_requests(hq.db, {})
                     if any(line["item_id"] == "water" for line in r["lines"]))
        hq_queue.acknowledge(hq.store, "admin", water, {})
        pull(node, hq)
        while refresher.refresh(hq.store):
            pass
        config = {"TESTING": True, "CLOCK_OFFSET_SECONDS": offset}
        node_app = create_app(root / "node", test_config={**config, "SHELTER_ID": SHELTER})
        hq_app = create_app(root / "hq", role="hq", test_config=config)
        yield {"node": node, "hq": hq, "node_app": node_app, "hq_app": hq_app,
               "households": [r[0] for r in node.db.execute(
                   "SELECT household_id FROM households ORDER BY registered_hlc")],
               "manager": _sign_in(node_app, "manager", "demo-manager-1"),
               "admin": _sign_in(hq_app, "admin", "demo-admin-1")}
        for ctx in (node, hq):
            ctx.db.conn.close()


# --- what the database holds, and the codes it uses ---------------------------------------

STORED = re.compile(r"\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?")


def stored_times(*paths) -> Times:
    """Every time any table holds (payloads included), read in Japan time and in UTC."""
    found: list[str] = []
    for path in paths:
        db = sqlite3.connect(path)
        try:
            tables = [r[0] for r in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table'")]
            for table in tables:
                for row in db.execute(f'SELECT * FROM "{table}"'):
                    for value in row:
                        if isinstance(value, str) and "T" in value:
                            found += STORED.findall(value)
        finally:
            db.close()
    return Times.of(found)


UNITS = ("meal", "piece", "use", "roll")


def codes(day) -> set[str]:
    """The codes that must never stand where a word belongs: items, units, needs, the
    audit's actions and what its details say, a request's steps and urgencies, crowding
    and a shelter's status."""
    node, hq = day["node"], day["hq"]
    found = {r[0] for r in node.db.execute("SELECT item_id FROM items")}
    found |= set(UNITS) | set(words.needs(str)) | set(words.request_status(str))
    found |= set(words.urgency(str)) | set(words.crowding(str))
    found |= {"standby", "open", "full", "closed"}  # a shelter's status at HQ
    for ctx in (node, hq):
        found |= {r[0] for r in ctx.db.execute("SELECT DISTINCT action FROM audit_log")}
    found |= {"check_in", "go_out", "check_out", "not_arrived", "hq_shipment", "prefecture",
              "relative", "acquaintance"}
    return found


def record_ids(day) -> set[str]:
    """The ids of the records staff know by name: households, people, supply requests."""
    node = day["node"]
    return {r[0] for r in node.db.execute(
        "SELECT household_id FROM households UNION SELECT person_id FROM persons "
        "UNION SELECT request_id FROM supply_requests")}


def problems(text: str, day, language: str) -> str:
    """What is wrong with ``text``, one line each ("" when nothing is)."""
    node, hq = day["node"], day["hq"]
    for (name,) in node.db.execute("SELECT name_en FROM items"):
        text = text.replace(name, "")  # the items page names each item in both languages
    times_held = stored_times(node.db_path, hq.db_path)
    found = (time_problems(text, times_held) + code_problems(text, codes(day), language)
             + unit_problems(text, UNITS if language != "ja" else ()))
    found += [f"record id {i}" for i in sorted(record_ids(day)) if i in text]
    return "\n".join(found)


# --- the pages -----------------------------------------------------------------------------

NODE_PAGES = ["/staff", "/staff/households/{h0}", "/staff/households/{h1}",
              "/staff/households/{h2}", "/staff/households/{h1}/correct", "/staff/duplicates",
              "/staff/settings", "/staff/users", "/staff/audit", "/desk", "/desk/find?q=山田",
              "/desk/headcount", "/supplies", "/supplies/items", "/supplies/requests",
              "/supplies/report"]
HQ_PAGES = ["/hq", f"/hq/shelters/{SHELTER}", f"/hq/shelters/{SILENT}",
            "/hq/municipalities/大阪市", "/hq/requests", "/hq/sync", "/hq/enquiry",
            "/staff/audit", "/public"]
# In English only what a code or a clock could hide in (the rest says the same in both).
IN_ENGLISH = {"/staff", "/staff/households/{h1}", "/staff/users", "/staff/audit", "/supplies",
              "/supplies/items", "/supplies/requests", "/hq", "/hq/requests",
              f"/hq/shelters/{SILENT}"}
NODE_CASES = [(p, lang) for p in NODE_PAGES for lang in ("ja", "en")
              if lang == "ja" or p in IN_ENGLISH]
HQ_CASES = [(p, lang) for p in HQ_PAGES for lang in ("ja", "en")
            if lang == "ja" or p in IN_ENGLISH]


def _get(client, path: str, language: str) -> str:
    answer = client.get(path + ("&" if "?" in path else "?") + f"lang={language}")
    assert answer.status_code == 200, (path, answer.status_code)
    return answer.get_data(as_text=True)


@pytest.mark.parametrize("path,language", NODE_CASES)
def test_node_staff_pages_say_words_in_japan_time(day, path, language):
    path = path.format(**{f"h{n}": h for n, h in enumerate(day["households"])})
    from .wordcheck import page_text
    text = page_text(_get(day["manager"], path, language))
    found = problems(text, day, language)
    assert not found, found


@pytest.mark.parametrize("path,language", HQ_CASES)
def test_hq_pages_say_words_in_japan_time(day, path, language):
    from .wordcheck import page_text
    text = page_text(_get(day["admin"], path, language))
    found = problems(text, day, language)
    assert not found, found


def test_a_safety_enquiry_answer_says_words_in_japan_time(day):
    from .wordcheck import page_text
    client = day["admin"]
    page = _get(client, "/hq/enquiry", "ja")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = client.post("/hq/enquiry", data={
        "csrf": csrf, "family_name": "山田", "given_name": "花子", "birth_date": "1951-11-20",
        "relation": "relative", "enquirer": "問い合わせ者", "enquirer_contact": "090"})
    assert answer.status_code in (200, 429)
    found = problems(page_text(answer.get_data(as_text=True)), day, "ja")
    assert not found, found


def test_the_audit_log_says_what_was_done_and_to_whom(day):
    _get(day["manager"], f"/staff/households/{day['households'][0]}", "ja")
    node_log = _get(day["manager"], "/staff/audit", "ja")
    assert "山田 太郎 さんの世帯（2人）" in node_log and "世帯の閲覧" in node_log
    assert "カードの読み取り" in node_log and "外出 · 記録済み" in node_log
    hq_log = _get(day["admin"], "/staff/audit", "en")
    assert "Dispatched supplies" in hq_log
    assert "Request from 大阪市立中央小学校（デモ）: 乳児用おむつ 200" not in hq_log  # English
    assert "Request from 大阪市立中央小学校（デモ）: Infant diapers 200" in hq_log
    # Admins hold operators' enquiries to account: an operator does not read the log.
    operator = _sign_in(day["hq_app"], "operator", "demo-operator-1")
    assert operator.get("/staff/audit").status_code == 403
    assert 'href="/staff/audit"' not in operator.get("/hq").get_data(as_text=True)


def test_the_household_page_says_each_need_and_what_it_is(day):
    page = _get(day["manager"], f"/staff/households/{day['households'][1]}", "ja")
    assert "<td>乳幼児、アレルギー（卵 (egg)）</td>" in page
    assert "登録日時</dt><dd>2026-12-02 05:30</dd>" in page


def test_a_refused_hand_out_names_the_unit_in_words(day):
    client = day["manager"]
    page = _get(client, "/supplies", "ja")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    refused = client.post("/supplies/move", data={"csrf": csrf, "kind": "distributed",
                                                  "item_id": "adult_diapers", "quantity": "5"})
    assert refused.status_code == 409
    assert "在庫は 0 個 だけです" in refused.get_data(as_text=True)


def test_quantities_and_details_in_words():
    ja = translations("ja").gettext
    assert [words.quantity(n, u, ja) for n, u in ((900, "meal"), (40, "roll"), (2000, "L"),
                                                  (3, "箱"))] == ["900食", "40巻", "2000 L",
                                                                  "3 箱"]
    assert [words.quantity(n, u, str) for n, u in ((1, "roll"), (0, "use"))] == [
        "1 roll", "0 uses"]
    assert words.audit_detail("find_person", "q=山田 太郎 results=2", ja) == \
        "検索語「山田 太郎」 · 2件"
    assert words.audit_detail("scan", "check_out:already", str) == \
        "Check out · No change: already so"
    assert words.audit_detail("add_user", "x=<b>", str) == "x=<b>"  # as recorded
    assert words.audit_detail("correct_person", "family_name,needs", ja) == "姓、配慮事項"
    found = {"H1": {"kind": "household", "name": "山田 太郎", "people": 3}}
    (entry,) = words.audit_entries([{"audit_id": 9, "at": "2026-12-01T20:30:00.000+00:00",
                                     "actor": "m", "action": "add_person", "subject": "P9",
                                     "detail": "H1"}], found, {}, ja)
    assert entry == {"audit_id": 9, "at": "2026-12-02 05:30:00", "actor": "m",
                     "action": "世帯員の追加", "subject": "P9", "named": False,
                     "detail": "山田 太郎 さんの世帯（3人）"}


# --- the PDFs ------------------------------------------------------------------------------

PDFS = [("node", "/staff/poster.pdf"), ("node", "/api/v1/households/{h0}/cards.pdf"),
        ("node", "/api/v1/households/{h2}/cards.pdf"), ("node", "/staff/persons/{p0}/card.pdf"),
        ("node", "/supplies/report.pdf?language=ja"), ("node", "/supplies/report.pdf?language=en"),
        ("hq", "/hq/report.pdf?language=ja"), ("hq", "/hq/report.pdf?language=en")]


@pytest.mark.parametrize("side,path", PDFS)
def test_pdfs_say_words_in_japan_time(day, side, path, tmp_path):
    path = path.format(p0=day["node"].db.execute("SELECT person_id FROM persons").fetchone()[0],
                       **{f"h{n}": h for n, h in enumerate(day["households"])})
    client = day["manager" if side == "node" else "admin"]
    answer = client.get(path)
    assert answer.status_code == 200 and answer.mimetype == "application/pdf", path
    text = pdf_text(answer.get_data(), tmp_path)
    language = "en" if "language=en" in path else "ja"
    found = problems(text, day, language)
    assert not found, found


def test_the_daily_report_is_of_japans_day_with_its_requests(day, tmp_path):
    text = pdf_text(day["manager"].get("/supplies/report.pdf?language=ja").get_data(),
                    tmp_path)
    assert JST_DAY in text  # the report's day and its requests' day: Japan's
    assert "到着予定" in text and "2026-12-02 15:00" in text  # HQ's expected arrival
    assert "乳児用おむつ" in text and "携帯・簡易トイレ" in text  # names, not ids
    assert "900食" in text.replace(" ", "") or "897食" in text.replace(" ", "")


def test_the_situation_report_names_items_and_counts_shelters(day, tmp_path):
    text = pdf_text(day["admin"].get("/hq/report.pdf?language=ja").get_data(), tmp_path)
    assert "避難所一覧" not in text
    assert "乳児用おむつ" in text or "飲料水" in text


# --- the checker itself --------------------------------------------------------------------

def test_the_checker_finds_utc_times_and_codes():
    held = Times.of(["2026-12-01T20:30:00.000+00:00"])
    assert time_problems("登録 2026-12-01 20:30", held)  # the UTC day and clock
    assert time_problems("at 2026-12-02T05:30+09:00", held)  # an ISO string
    assert time_problems("最終同期 20:30", held) and time_problems("20:30:05 login", held)
    assert time_problems("12/01 20時", held) and not time_problems("12/02 5時", held)
    assert time_problems("When (UTC)", held)
    assert time_problems("登録 2026-12-02 05:30", held) == []  # Japan time
    assert times.japan_datetime("2026-12-01T20:30:00.000+00:00") == "2026-12-02 05:30"
    assert code_problems("品目: infant_formula, 食料", ["infant_formula"], "en")
    assert code_problems("操作: login", ["login"], "ja")
    assert code_problems("Signed in (login)", ["login"], "en") == []
    assert unit_problems("900 meal", UNITS) and not unit_problems("900 meals", UNITS)


# --- in a real browser: the pages this changed, at a tablet's size and HQ's ----------------

@pytest.fixture(scope="module")
def served(day):
    """The day's node and HQ apps on free loopback ports (plain HTTP, as loopback may)."""
    import threading

    from werkzeug.serving import make_server

    servers = [make_server("127.0.0.1", 0, day[app], threaded=True)
               for app in ("node_app", "hq_app")]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    yield [f"http://127.0.0.1:{s.server_port}" for s in servers]
    for s in servers:
        s.shutdown()


def test_the_changed_pages_in_a_browser_read_in_japan_time_and_pass_axe(day, served, browser):
    from axe_playwright_python.sync_playwright import Axe

    from .conftest import sign_in

    def accessible(page) -> None:
        results = Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"]
               if v["impact"] in ("serious", "critical")]
        assert not bad, (page.url, bad)

    node_url, hq_url = served
    context = browser.new_context(viewport={"width": 768, "height": 1024}, locale="ja-JP")
    page = context.new_page()
    try:
        sign_in(page, node_url, "manager", "demo-manager-1", "/staff")
        assert re.fullmatch(r"2026-12-02 05:3\d", page.locator("tbody td").first.inner_text())
        page.goto(f"{node_url}/staff/households/{day['households'][0]}")
        assert page.locator("dd", has_text="2026-12-02 05:3").count() == 1
        accessible(page)
        page.goto(f"{node_url}/staff/audit")
        first = page.locator("#audit tbody tr").first.locator("td")
        assert re.fullmatch(r"2026-12-02 05:\d\d:\d\d", first.nth(0).inner_text())
        assert first.nth(2).inner_text() == "世帯の閲覧"  # the look just before
        accessible(page)
        page.goto(f"{node_url}/supplies")
        assert page.locator("tr[data-item=food] td").first.inner_text() == "897食"
        accessible(page)
        page.goto(f"{node_url}/supplies/items")
        assert page.locator("tbody tr", has_text="食料").locator("td").first.inner_text() == "食"
    finally:
        context.close()
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="ja-JP")
    page = context.new_page()
    try:
        sign_in(page, hq_url, "admin", "demo-admin-1", "/hq")
        page.click("nav >> text=監査ログ")
        page.wait_for_url("**/staff/audit")
        assert page.locator("#audit td", has_text="物資の発送").count() >= 1
        accessible(page)
    finally:
        context.close()
