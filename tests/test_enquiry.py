"""HQ's safety enquiry as an operator on the phone uses it, and the public page in five
languages: where someone went after a check-out, within each consent level; an answer that
says whom it is for and what may be said, with the form empty for the next caller; the
public list in ja, en, zh, ko and vi with the date of each last report in Japan time."""

from __future__ import annotations

import re
import time

import pytest
from babel.messages.extract import extract_from_dir

from shelter.app import create_app
from shelter.core.node import NodeContext
from shelter.domain import accounts, enquiry, households, presence
from shelter.hq.shelters import import_file
from shelter.render.times import japan_datetime

from .conftest import wait_until
from .test_docs import ROOT, _catalog
from .test_hq import GSI, A, B, answer, enquire, household, push, signed_in

ABENO, KANAZUKA = "阿倍野スポーツセンター", "金塚小学校"  # A and B in the GSI registry


def scan(ctx: NodeContext, shelter: str, keys: dict, person: dict, action: str,
         destination: str = "", detail: str = "") -> None:
    presence.scan(ctx.store, shelter, keys, person["code"], action, destination, detail)


def later_than(ctx: NodeContext) -> None:
    """Until the clock is past ``ctx``'s last event: two nodes' events in one millisecond
    are concurrent, their order a toss; this test is about ones that came one after the
    other."""
    wall = int(ctx.db.execute("SELECT max(hlc) FROM events").fetchone()[0].split(".")[0])
    wait_until(lambda: time.time() * 1000 > wall + 1, timeout=5, what="the next millisecond")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """People of A with each consent, each gone somewhere; B admits some on A's cards."""
    root = tmp_path_factory.mktemp("enquiry-world")
    hq = NodeContext(root / "hq", role="hq")
    import_file(hq.store, GSI)
    accounts.add_user(hq.store, "op", "operator-pass-1", "operator")
    a, b = NodeContext(root / "a", shelter_id=A), NodeContext(root / "b", shelter_id=B)
    at_b = {**b.card_keys(), **a.card_keys()}
    people = {key: households.register_household(a.store, a.identity, household(
        consent, family, kana, birth))["members"][0]
        for key, (consent, family, kana, birth) in {
            "moved": ("relatives", "山本", "やまもと", "1950-01-01"),
            "told": ("acquaintances", "森", "もり", "1951-02-02"),
            "hospital": ("acquaintances", "林", "はやし", "1952-03-03"),
            "none": ("none", "石井", "いしい", "1953-04-04"),
            "home": ("relatives", "小野", "おの", "1954-05-05"),
            "stale": ("relatives", "池田", "いけだ", "1955-06-06")}.items()}
    for key in people:
        if key != "stale":
            scan(a, A, a.card_keys(), people[key], "check_in")
    # 山本 turns up at B before A's desk checks them out (to "金塚小学校"): B's check-in is
    # the earlier event, so HQ's presence says "left A"; the enquiry must say "at B".
    scan(b, B, at_b, people["moved"], "check_in")
    later_than(b)
    scan(a, A, a.card_keys(), people["moved"], "check_out", "other_shelter", KANAZUKA)
    # 森 is said to go to B (written with a space), and B has not seen them yet.
    scan(a, A, a.card_keys(), people["told"], "check_out", "other_shelter", "金塚 小学校")
    scan(a, A, a.card_keys(), people["hospital"], "check_out", "hospital", "骨折 市立病院")
    scan(a, A, a.card_keys(), people["none"], "check_out", "other_shelter", KANAZUKA)
    scan(a, A, a.card_keys(), people["home"], "check_out", "home", "息子宅 090-1111-2222")
    # 池田 stayed at B (never checked out there), then came to A and left it for home: B's
    # stay is from before, so the answer is "went home", not "at B".
    scan(b, B, at_b, people["stale"], "check_in")
    later_than(b)
    scan(a, A, a.card_keys(), people["stale"], "check_in")
    scan(a, A, a.card_keys(), people["stale"], "check_out", "home")
    push(a, hq)
    push(b, hq)
    hlc = dict(hq.db.execute("SELECT shelter_id || action, hlc FROM presence_log WHERE "
                             "person_id = ?", [people["moved"]["person_id"]]).fetchall())
    assert hlc[B + "check_in"] < hlc[A + "check_out"]  # the order this test is about
    app = create_app(root / "hq", role="hq", test_config={"TESTING": True})
    yield {"hq": hq, "app": app, "people": people,
           "names": {A: ABENO, B: KANAZUKA}}
    for ctx in (hq, a, b):
        ctx.db.conn.close()


def ask(world, key: str, relation: str) -> list[dict]:
    family, birth = {"moved": ("山本", "1950-01-01"), "told": ("森", "1951-02-02"),
                     "hospital": ("林", "1952-03-03"), "none": ("石井", "1953-04-04"),
                     "home": ("小野", "1954-05-05"), "stale": ("池田", "1955-06-06")}[key]
    return enquiry.enquire(world["hq"].db, family, "太郎", birth, relation, world["names"])


def logged_at(world, key: str, shelter: str, action: str) -> str:
    return world["hq"].db.execute(
        "SELECT at FROM presence_log WHERE person_id = ? AND shelter_id = ? AND action = ?",
        [world["people"][key]["person_id"], shelter, action]).fetchone()[0]


def test_where_someone_went_within_each_consent(world):
    # consent "relatives", checked in at B before A checked them out: at B, since then.
    [moved] = ask(world, "moved", "relative")
    assert (moved["status"], moved["shelter"], moved["came_from"]) == \
        ("present", KANAZUKA, ABENO)
    assert moved["since"] == logged_at(world, "moved", B, "check_in")
    assert ask(world, "moved", "acquaintance") == []  # the consent is for relatives only
    # consent "acquaintances", only said at check-out: the registry's name for what was
    # written; an acquaintance hears name and whereabouts, no time.
    [told] = ask(world, "told", "relative")
    assert (told["status"], told["shelter"], told["went"], told["went_to"],
            told["went_known"]) == ("left", ABENO, "other_shelter", KANAZUKA, True)
    [heard] = ask(world, "told", "acquaintance")
    assert (heard["name"], heard["went_to"], heard["since"]) == ("森 太郎", KANAZUKA, "")
    # A hospital is health information: a relative hears it, an acquaintance only "left";
    # the desk's note (here a diagnosis) reaches nobody.
    [relative] = ask(world, "hospital", "relative")
    [acquaintance] = ask(world, "hospital", "acquaintance")
    assert (relative["went"], relative["went_to"]) == ("hospital", "")
    assert (acquaintance["status"], acquaintance["went"], acquaintance["went_to"]) == \
        ("left", "", "")
    assert "骨折" not in repr([relative, acquaintance])
    # consent "none": nothing, to anyone.
    assert ask(world, "none", "relative") == ask(world, "none", "acquaintance") == []
    # home: the category, never the note (a phone number here).
    [home] = ask(world, "home", "relative")
    assert (home["went"], home["went_to"]) == ("home", "") and "090" not in repr(home)
    # a stay at B from before A is stale: they left A for home.
    [stale] = ask(world, "stale", "relative")
    assert (stale["status"], stale["shelter"], stale["went"]) == ("left", ABENO, "home")


def test_the_answer_reads_out_and_the_form_waits_empty_for_the_next_caller(world):
    client, csrf = signed_in(world["app"])
    response = enquire(client, csrf, "やまもと", "たろう", "1950-01-01", "relative")
    page = response.get_data(as_text=True)
    said = answer(response)
    since = japan_datetime(logged_at(world, "moved", B, "check_in"))
    assert KANAZUKA in said and ABENO in said and since in said, said
    assert "避難所にいます" in said and "日本時間" in said
    utc = logged_at(world, "moved", B, "check_in")[:16].replace("T", " ")
    assert utc not in page and "+00:00" not in said  # Japan time only, never UTC
    # whom the answer is for, and what may be said to this caller
    assert "問い合わせ者" in page and "このご親族には" in page
    # The form is for the next caller: nothing of this one in it, no autofill.
    form = page[page.index('<form method="post" class="stack enquiry-form"'):]
    form = form[:form.index("</form>")]
    assert 'autocomplete="off"' in form
    typed = re.findall(r'name="(family_name|given_name|birth_date|enquirer|enquirer_contact)"'
                       r' value="([^"]*)"', form)
    assert len(typed) == 5 and all(value == "" for _, value in typed), typed
    assert "やまもと" not in form and "checked" not in form  # nor the relation ticked
    assert 'href="/hq/enquiry"' in page  # the next-caller action: a fresh, empty page
    fresh = client.get("/hq/enquiry").get_data(as_text=True)
    assert 'id="answer"' not in fresh and "やまもと" not in fresh
    # Kept: every search audited with who asked.
    detail = world["hq"].db.execute(
        "SELECT detail FROM audit_log WHERE action = 'safety_enquiry' AND actor = 'op' "
        "ORDER BY audit_id DESC LIMIT 1").fetchone()[0]
    assert "問い合わせ者" in detail and '"answered": 1' in detail
    # An acquaintance asking about 林: left A, no hospital, no time; in English too.
    client.get("/hq/enquiry?lang=en")
    said = answer(enquire(client, csrf, "林", "太郎", "1952-03-03", "acquaintance"))
    assert "林 太郎" in said and "Has left the shelter" in said and ABENO in said
    assert "Hospital" not in said and "Since" not in said and "骨折" not in said
    # 森: said at check-out to go to B, with the registry's name.
    said = answer(enquire(client, csrf, "森", "太郎", "1951-02-02", "relative"))
    assert f"{KANAZUKA} (said at check-out" in said and "金塚 小学校" not in said
    # A refused form keeps what was typed, for the same caller to correct.
    bad = enquire(client, csrf, "森", "太郎", "2/2/1951", "relative")
    assert bad.status_code == 422 and 'value="森"' in bad.get_data(as_text=True)


def test_the_public_page_speaks_five_languages_with_dated_reports(world):
    client = world["app"].test_client()
    heading = {"ja": "開設中の避難所", "en": "Open evacuation shelters",
               "zh": "开放中的避难所", "ko": "운영 중인 피난소", "vi": "Các nơi sơ tán đang mở"}
    last = world["hq"].db.execute("SELECT max(last_batch_at) FROM sync_origins").fetchone()[0]
    for lang, words in heading.items():
        page = client.get(f"/public?lang={lang}").get_data(as_text=True)
        assert words in page, lang
        assert japan_datetime(last)[:10] in page, lang  # the date of the last report
        for code in ("ja", "en", "zh", "ko", "vi"):  # a language switch on every page
            assert f'href="?lang={code}"' in page
        for person in world["people"].values():  # nobody, in any language
            for value in (person["person_id"], person["short_code"]):
                assert value not in page
        for name in ("山本", "森 太郎", "石井", "小野", "池田"):
            assert name not in page
    zh = client.get("/public?lang=zh").get_data(as_text=True)
    assert '<html lang="zh-Hans">' in zh and "最后更新" in zh and "（日本时间）" in zh
    assert any(word in zh for word in ("有空位", "人较多", "拥挤", "已满", "未设定容纳人数"))
    # Every message of the public page has its words in the three added languages.
    messages = {m for _, _, m, _, _ in extract_from_dir(
        str(ROOT), [("templates/public/**.html", "jinja2"), ("templates/base.html", "jinja2")],
        keywords={"_": None})}
    messages |= {"Space available", "Getting busy", "Crowded", "Full", "Capacity not set",
                 "Closed", "Prefecture HQ"}
    for locale in ("zh_Hans", "ko", "vi"):
        catalog = _catalog(locale)
        assert not sorted(m for m in messages if not catalog.get(m)), locale
