"""/prepare, where a family makes its household code at home: on a node and on HQ, in five
languages, without login; the code decoded from the page's own QR by zxing; nothing kept
by the server; a code changed later stays the same household."""

from __future__ import annotations

import base64
import logging
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from werkzeug.datastructures import MultiDict

from shelter.app import create_app
from shelter.domain import household_code
from shelter.web.i18n import translations

from .conftest import decode_png

FAMILY = [
    {"family_name": "山田", "given_name": "太郎", "family_name_kana": "やまだ",
     "given_name_kana": "たろう", "birth": ("１９４８", "４", "２"), "sex": "male",
     "needs": ["elderly", "chronic_illness"], "medication": "降圧剤（朝）"},
    {"family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
     "given_name_kana": "ハナコ", "birth": ("1951", "11", "20"), "sex": "female",
     "needs": ["allergy"], "allergies": "そば"},
]
NAMES = ("太郎", "花子", "ﾀﾛｳ", "タロウ", "ハナコ", "降圧剤", "そば", "ポチ")


@pytest.fixture(params=["node", "hq"])
def site(request, tmp_path):
    app = create_app(tmp_path / request.param, role=request.param,
                     test_config={"TESTING": True, "SHELTER_ID": "E2710000001111"})
    return app, app.test_client(), tmp_path / request.param


def token(client, path: str = "/prepare?lang=ja") -> str:
    page = client.get(path)
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.get_data(as_text=True)).group(1)


def family_form(csrf: str, family=FAMILY, **household) -> list[tuple[str, str]]:
    fields = [("csrf", csrf), ("count", str(len(family))), ("action", "submit")]
    for i, person in enumerate(family):
        for key in ("family_name", "given_name", "family_name_kana", "given_name_kana",
                    "sex", "allergies", "medication"):
            if key in person:
                fields.append((f"m{i}-{key}", person[key]))
        for part, value in zip(("year", "month", "day"), person["birth"], strict=True):
            fields.append((f"m{i}-birth_{part}", value))
        fields += [(f"m{i}-needs", need) for need in person["needs"]]
    values = {"address": "", "postal_code": "５４０－０００８", "phone": "06-1234-5678",
              "pets": "犬1匹（ポチ）", "whereabouts": "shelter", "consent": "relatives",
              "language": "ja", **household}
    return fields + list(values.items())


def post(client, fields, path: str = "/prepare"):
    return client.post(path, data=MultiDict(fields))


def told(answer) -> str:
    """What a page refused, for a failing assertion's message."""
    page = answer.get_data(as_text=True)
    found = re.findall(r'<li><a href="#[^"]+">([^<]+)</a>|<div class="error-box"[^>]*>'
                       r'<p>([^<]+)', page)
    return " | ".join("".join(parts) for parts in found) or page[:2000]


def code_on(page: str) -> str:
    """The household code the page shows, read from its QR image by zxing-cpp."""
    found = re.search(r'<img id="qr"[^>]*src="data:image/png;base64,([^"]+)"', page)
    assert found, page[:2000]
    decoded = decode_png(base64.b64decode(found.group(1)))
    assert len(decoded) == 1 and decoded[0].startswith("SHH1."), decoded
    return decoded[0]


class Form(HTMLParser):
    """What a browser would send from the form ``form_id``: its inputs, checked boxes and
    selected options."""

    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id, self.inside, self.fields, self.select = form_id, False, [], None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.inside = a.get("id") == self.form_id
        elif self.inside and tag == "input" and "name" in a:
            if a.get("type") in ("radio", "checkbox") and "checked" not in a:
                return
            self.fields.append((a["name"], a.get("value", "")))
        elif self.inside and tag == "select":
            self.select = a["name"]
        elif self.inside and tag == "option" and self.select and "selected" in a:
            self.fields.append((self.select, a["value"]))

    def handle_endtag(self, tag):
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self.select = None


def form_of(page: str, form_id: str = "prepare-form") -> list[tuple[str, str]]:
    parser = Form(form_id)
    parser.feed(page)
    return parser.fields


def stored(data: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in sorted(data.rglob("*")) if p.is_file()}


def kept_nothing(data: Path, before: dict[str, bytes]) -> bool:
    """No file appeared or changed with anything typed in it. (A file may change by itself:
    SQLite's shared-memory index, HQ's hourly figures.)"""
    after = stored(data)
    changed = [content for path, content in after.items() if before.get(path) != content]
    return not any(name.encode() in content for content in changed for name in NAMES)


def counts(app) -> tuple[int, ...]:
    db = app.extensions["shelter"].db
    return tuple(db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]  # noqa: S608
                 for t in ("events", "households", "persons", "audit_log"))


@pytest.mark.parametrize("lang", ["ja", "en", "zh", "ko", "vi"])
def test_the_page_opens_with_no_login_in_five_languages(site, lang):
    _, client, _ = site
    page = client.get(f"/prepare?lang={lang}")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert translations(lang).gettext("Make your household code") in html
    assert f'<html lang="{ {"zh": "zh-Hans"}.get(lang, lang)}">' in html
    assert 'value="shelter" id="whereabouts-0" checked' in html  # the default
    assert 'src="/static/prepare.js"' in html


def test_a_family_gets_its_code_and_the_server_keeps_nothing(site, caplog):
    app, client, data = site
    csrf = token(client)
    before, files = counts(app), stored(data)
    caplog.set_level(logging.DEBUG)
    answer = post(client, family_form(csrf))
    assert answer.status_code == 200, told(answer)
    assert answer.headers["Cache-Control"] == "no-store"
    page = answer.get_data(as_text=True)
    code = household_code.read(code_on(page))
    members = code.registration["members"]
    assert [(m["family_name"], m["given_name"]) for m in members] == [
        ("山田", "太郎"), ("山田", "花子")]
    assert members[0]["birth_date"] == "1948-04-02"  # typed in full-width digits
    assert members[0]["family_name_kana"] == "ヤマダ" and members[0]["medication"] == "降圧剤（朝）"
    assert members[1]["needs"] == ["allergy"] and members[1]["allergies"] == "そば"
    assert code.registration["pets"] == "犬1匹（ポチ）"
    assert code.registration["postal_code"] == "540-0008"
    assert code.seqs == (0, 1)
    # What the page shows and offers: the names, "save the image", print, change.
    assert "<li>山田 太郎</li>" in page and "<li>山田 花子</li>" in page
    assert re.search(r'id="save" href="data:image/png;base64,[^"]+" download="household-code-'
                     r'\d{8}-\d{4}\.png"', page)
    assert re.search(r'<time datetime="[^"]+">\d{4}-\d{2}-\d{2} \d{2}:\d{2}</time>', page)
    assert 'id="print"' in page and 'action="/prepare/edit"' in page
    # Nothing kept: no event, no row, no audit, not a byte of any file, nothing logged.
    assert counts(app) == before
    assert kept_nothing(data, files)
    for content in files.values():
        assert not any(name.encode() in content for name in NAMES)
    assert not any(name in caplog.text for name in NAMES)
    session = client.get_cookie("shelter_session")
    saved = app.session_interface.get_signing_serializer(app).loads(session.value)
    assert set(saved) <= {"csrf", "lang"}


def test_what_needs_attention_is_told_per_field_and_linked(site):
    app, client, data = site
    csrf = token(client, "/prepare?lang=en")
    family = [dict(FAMILY[0], family_name="", birth=("1948", "2", "30")),
              dict(FAMILY[1], allergies="")]
    files = stored(data)
    answer = post(client, family_form(csrf, family, postal_code="12",
                                                      consent=""))
    assert answer.status_code == 422
    page = answer.get_data(as_text=True)
    for target, message in (("m0-family_name", "This field is required."),
                            ("m0-birth_year", "This date does not exist."),
                            ("m1-allergies", "This field is required."),
                            ("postal_code", "A postal code has seven digits, like 540-0008."),
                            ("consent-0", "Choose one of the options.")):
        assert re.search(f'<a href="#{target}">[^<]*{re.escape(message)}</a>', page), target
        assert f'id="{target}"' in page
    assert 'aria-invalid="true" aria-describedby="err-members-0-family_name"' in page
    assert 'value="花子"' in page  # what was typed stays
    assert kept_nothing(data, files)
    # In the page's language: Vietnamese.
    fields = [(k, v) for k, v in family_form(csrf, family) if k != "action"]
    page = post(client, fields + [("action", "lang:vi")])
    assert page.status_code == 200 and '<html lang="vi">' in page.get_data(as_text=True)
    answer = post(client, family_form(csrf, family, language="vi"))
    assert answer.status_code == 422
    assert translations("vi").gettext("This field is required.") in answer.get_data(as_text=True)


def test_buttons_add_and_remove_people_and_switch_language_keeping_what_was_typed(site):
    _, client, _ = site
    csrf = token(client)
    fields = [(k, v) for k, v in family_form(csrf) if k != "action"]
    added = post(client, fields + [("action", "add")]).get_data(as_text=True)
    assert 'id="m2-family_name"' in added and 'value="花子"' in added
    removed = post(client, fields + [("action", "remove")])
    assert 'id="m1-family_name"' not in removed.get_data(as_text=True)
    korean = post(client, fields + [("action", "lang:ko")]).get_data(
        as_text=True)
    assert '<html lang="ko">' in korean and 'value="太郎"' in korean
    assert translations("ko").gettext("Make your household code") in korean


def test_changing_the_code_keeps_the_household_and_each_members_number(site):
    _, client, _ = site
    csrf = token(client)
    first = household_code.read(code_on(post(client, family_form(csrf)).get_data(
        as_text=True)))
    # "Change my details": the form comes back filled from the code.
    edit = client.post("/prepare/edit", data={"csrf": csrf, "code": household_code.make(
        first.registration, first.household_id, seqs=list(first.seqs))})
    assert edit.status_code == 200
    fields = form_of(edit.get_data(as_text=True))
    got = dict(fields)
    assert got["household_id"] == first.household_id and got["m1-seq"] == "1"
    assert got["m0-family_name"] == "山田" and got["m1-allergies"] == "そば"
    assert got["m0-birth_year"] == "1948" and got["m0-birth_month"] == "4"
    assert got["pets"] == "犬1匹（ポチ）" and got["consent"] == "relatives"
    # Remove the last person, add a child: the child gets a number nobody had.
    fields = [(k, v) for k, v in fields if k != "action"]
    page = post(client, fields + [("action", "remove")]).get_data(as_text=True)
    fields = [(k, v) for k, v in form_of(page) if k != "action"]
    page = post(client, fields + [("action", "add")]).get_data(as_text=True)
    fields = [(k, v) for k, v in form_of(page) if k != "action" and not k.startswith("m1-")]
    fields += [("m1-family_name", "山田"), ("m1-family_name_kana", "やまだ"),
               ("m1-given_name", "一郎"), ("m1-birth_year", "2020"), ("m1-birth_month", "1"),
               ("m1-birth_day", "5"), ("m1-sex", "male"), ("action", "submit")]
    answer = post(client, fields)
    assert answer.status_code == 200, told(answer)
    second = household_code.read(code_on(answer.get_data(as_text=True)))
    assert second.household_id == first.household_id
    assert second.seqs == (0, 2)
    assert [m["given_name"] for m in second.registration["members"]] == ["太郎", "一郎"]
    assert household_code.person_id(second.household_id, 0) == household_code.person_id(
        first.household_id, 0)


def test_a_code_that_cannot_be_read_is_told_clearly(site):
    _, client, _ = site
    csrf = token(client, "/prepare?lang=en")
    good = code_on(post(client, family_form(csrf)).get_data(as_text=True))
    broken = good[:-3] + str((int(good[-3]) + 1) % 10) + good[-2:]
    for code in ("garbage", broken, good[:40], "SHH9.1234", "", "x" * 20000):
        answer = client.post("/prepare/edit", data={"csrf": csrf, "code": code})
        assert answer.status_code == 422, code[:20]
        assert 'id="error-summary"' in answer.get_data(as_text=True)
    page = client.post("/prepare/edit", data={"csrf": csrf, "code": "garbage"})
    assert "could not read the code you are changing" in page.get_data(as_text=True)
    # Hidden fields no code gave: refused with a message, never a 500.
    for bad in ({"household_id": "not-an-id"}, {"household_id": "01JB2Q0000000000000000000A",
                                                "m0-seq": "x"},
                {"household_id": "01JB2Q0000000000000000000A", "next_seq": "99999"}):
        fields = [(k, v) for k, v in family_form(csrf) if k not in bad] + list(bad.items())
        assert post(client, fields).status_code == 400


def test_a_post_without_the_form_token_is_refused_but_not_with_a_500(site):
    _, client, _ = site
    answer = post(client, family_form("wrong"))
    assert answer.status_code == 400


def test_the_service_worker_may_look_after_the_page(site):
    _, client, _ = site
    worker = client.get("/prepare/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Service-Worker-Allowed"] == "/prepare"
    assert b'"/prepare"' in worker.data


def test_the_nodes_plain_http_port_serves_the_page(tmp_path):
    """Phones on the shelter's Wi-Fi reach it over plain HTTP (no certificate to trust)."""
    app = create_app(tmp_path / "node", test_config={
        "TESTING": True, "SHELTER_ID": "E2710000001111", "HTTPS_PORT": 8443})
    client = app.test_client()
    lan = {"REMOTE_ADDR": "192.168.10.23"}
    assert client.get("/prepare", environ_base=lan).status_code == 200
    assert client.get("/prepare/sw.js", environ_base=lan).status_code == 200
    assert client.get("/staff/login", environ_base=lan).status_code == 302


def test_an_added_person_starts_with_the_familys_name_and_calendar_and_showa_is_read(site):
    """What a household shares is typed once; a year in 昭和 is the year it means."""
    _, client, _ = site
    csrf = token(client)
    showa = [{**FAMILY[0], "birth": ("２３", "4", "2")}]
    fields = [(k, v) for k, v in family_form(csrf, showa) if k != "action"]
    fields.append(("m0-birth_era", "showa"))
    added = post(client, fields + [("action", "add")]).get_data(as_text=True)
    person = re.sub(r"\s+", " ", added[added.index('id="person-1"'):])
    assert 'name="m1-family_name" value="山田"' in person
    assert 'name="m1-family_name_kana" value="やまだ"' in person
    assert re.search(r'<option value="showa" ?selected>', person)
    made = post(client, family_form(csrf, showa) + [("m0-birth_era", "showa")])
    assert made.status_code == 200, told(made)
    code = household_code.read(code_on(made.get_data(as_text=True)))
    assert code.registration["members"][0]["birth_date"] == "1948-04-02"
    outside = post(client, family_form(csrf, [{**FAMILY[0], "birth": ("70", "1", "1")}])
                   + [("m0-birth_era", "showa")])
    assert outside.status_code == 422
