"""Bad input never gives a 500, and user text cannot break what is made from it.

Against a real node and a real HQ over HTTPS: JSON nested 100,000 deep or holding a lone
surrogate, forms and query strings that are not UTF-8, all refused with a 400 in the
asker's language before any view runs; markup in a staff name, a note, an item and a
shelter name printed literally in the daily and situation report PDFs; formulas in shelter
names neutralised in HQ's CSV export; hostile frames on the desk's camera socket answered
without ending it.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import re
import sqlite3
import ssl
import struct
import zlib

import pytest
import requests
from simple_websocket import Client

from sync.client import close_socket

from .conftest import (
    VALID_HOUSEHOLD,
    decode_png,
    pdf_text,
    render_pdf,
    run_cli,
    start_hq,
    start_node,
    wait_until,
)

MARKUP = '<b>&<font name="x">'  # what reportlab's Paragraph would read as markup
STAFF = f"staff{MARKUP}"  # a staff name (the actor on the day's notes)
SHELTER_NAME = f"テスト{MARKUP}小学校"
NOTE = f"水が足りない {MARKUP} &amp; <i>"
ITEM = f"毛布{MARKUP}"
PASSWORD = "hostile-input-pass-7"
SHELTER_ID = "E2710000001111"
DEEP = b"[" * 100_000
JA = {"syntax": "JSONを読み取れませんでした。", "depth": "JSONの入れ子が深すぎます。",
      "text": "送信された文字の一部を読み取れませんでした。もう一度入力してください。"}
EN_TEXT = "Some of the text sent could not be read. Please type it again."


def body_with(raw: bytes) -> bytes:
    """A valid registration whose given name is ``raw``, written into the JSON as is."""
    data = copy.deepcopy(VALID_HOUSEHOLD)
    data["members"][0]["given_name"] = "@@NAME@@"
    return json.dumps(data, ensure_ascii=False).encode().replace(b"@@NAME@@", raw)


# Each: the body, and why it is refused.
MALFORMED = {
    "100000 [": (DEEP, "depth"),
    "33 levels inside an object": (b'{"code": ' + b"[" * 33 + b"]" * 33 + b"}", "depth"),
    "never closed, after a string": (b'["x", ' + b"{" * 50_000, "depth"),
    "lone surrogate escape in a name": (body_with(b"\\udc80"), "text"),
    "lone surrogate escape as a key": (b'{"code": "x", "\\uDC80": 1}', "text"),
    "surrogate bytes in a name": (body_with(b"\xed\xb2\x80"), "text"),  # CESU-8 style
    "not UTF-8": (body_with(b"\xff"), "text"),
    "NaN": (b'{"item_id": "water", "kind": "received", "quantity": NaN}', "syntax"),
}
NODE_POSTS = ("/api/v1/households", "/api/v1/scans", "/api/v1/stock-movements",
              "/api/v1/supply-requests")


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile-node")
    run_cli("user", "add", "--data", str(data), "--username", STAFF, "--role", "manager",
            "--password", PASSWORD)
    server = start_node(data, "--shelter-id", SHELTER_ID, "--shelter-name", SHELTER_NAME)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def token(node):
    return node.token("manager")


def post(server, path, body: bytes, token=None, **headers) -> requests.Response:
    headers = {"Content-Type": "application/json", **headers}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(f"{server.https}{path}", data=body, headers=headers,
                         verify=server.verify, timeout=20)


def rows(server, sql: str) -> list[tuple]:
    conn = sqlite3.connect(f"file:{server.data / 'shelter.db'}?mode=ro", uri=True)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def sign_in(server, username: str, password: str) -> requests.Session:
    session = requests.Session()
    session.verify = server.verify
    session.trust_env = False
    response = session.post(f"{server.https}/staff/login", timeout=20, data={
        "csrf": csrf_of(session, f"{server.https}/staff/login"), "username": username,
        "password": password}, allow_redirects=False)
    assert response.status_code == 303, response.text[:500]
    return session


def csrf_of(session: requests.Session, url: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', session.get(url, timeout=20).text).group(1)


def words(text: str) -> str:
    """Text with its spacing evened out (a PDF line may wrap at any space)."""
    return " ".join(text.split())


def assert_refused(response: requests.Response, code: str, message: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json() == {"error": {"code": code, "message": message}}


# --- JSON bodies --------------------------------------------------------------------------

@pytest.mark.parametrize("path", NODE_POSTS)
def test_malformed_json_is_refused_on_every_node_post(node, token, path):
    households = rows(node, "SELECT count(*) FROM households")
    for name, (body, reason) in MALFORMED.items():
        response = post(node, path, body, token)
        assert response.status_code == 400, (name, response.status_code, response.text[:300])
        assert response.json() == {"error": {"code": "malformed_json",
                                             "message": JA[reason]}}, name
    assert rows(node, "SELECT count(*) FROM households") == households  # nothing kept


def test_the_refusal_speaks_the_askers_language_and_needs_no_login(node):
    english = post(node, "/api/v1/households", body_with(b"\\udc80"),
                   **{"Accept-Language": "en"})
    assert_refused(english, "malformed_json", EN_TEXT)
    korean = post(node, "/api/v1/scans", DEEP, **{"Accept-Language": "ko"})
    assert_refused(korean, "malformed_json", "JSON의 중첩이 너무 깊습니다.")


def test_what_is_valid_passes_the_guard(node, token):
    """A pair of escapes (an emoji) is one character, 32 levels are allowed: the views answer."""
    emoji = post(node, "/api/v1/households", body_with("太郎".encode() + b"\\ud83d\\ude00"),
                 token)
    assert emoji.status_code == 201, emoji.text
    member = emoji.json()["members"][0]
    assert rows(node, f"SELECT given_name FROM persons WHERE person_id = "
                      f"'{member['person_id']}'") == [("太郎\U0001f600",)]
    nested = post(node, "/api/v1/scans", b'{"code": ' + b"[" * 31 + b"]" * 31 + b"}", token)
    assert nested.status_code == 422 and nested.json()["error"]["code"] != "malformed_json"


# --- forms and query strings --------------------------------------------------------------

KIOSK_FORM = ("count=1&action=submit&m0-family_name=%E5%B1%B1%E7%94%B0&m0-given_name={given}"
              "&m0-family_name_kana=%E3%82%84%E3%81%BE%E3%81%A0&m0-given_name_kana="
              "%E3%81%9F%E3%82%8D%E3%81%86&m0-birth_year=1950&m0-birth_month=1&m0-birth_day=2"
              "&m0-sex=male&address=%E5%A4%A7%E9%98%AA%E5%B8%82&whereabouts=shelter"
              "&consent=none")


def test_a_form_field_that_is_not_utf8_is_refused_and_nothing_is_saved(node):
    """Werkzeug keeps undecodable escapes as text: today "%ED%B3%80" would be saved as the
    evacuee's name. The kiosk answers in the page's language instead."""
    session = requests.Session()
    session.verify, session.trust_env = node.verify, False
    households = rows(node, "SELECT count(*) FROM households")
    for given in ("%ED%B3%80", "%FF%FE"):  # an encoded surrogate, bytes that are not UTF-8
        csrf = csrf_of(session, f"{node.https}/register")
        response = session.post(
            f"{node.https}/register", timeout=20, allow_redirects=False,
            data=f"csrf={csrf}&" + KIOSK_FORM.format(given=given),
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert response.status_code == 400, (given, response.status_code)
        assert JA["text"] in response.text and "<html" in response.text
    assert rows(node, "SELECT count(*) FROM households") == households
    csrf = csrf_of(session, f"{node.https}/register")  # the same form, readable, registers
    response = session.post(f"{node.https}/register", timeout=20, allow_redirects=False,
                            data=f"csrf={csrf}&" + KIOSK_FORM.format(given="%E5%A4%AA%E9%83%8E"),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303, response.text[:500]


def test_a_multipart_field_that_is_not_utf8_is_refused(node):
    households = rows(node, "SELECT count(*) FROM households")
    session = requests.Session()
    session.verify, session.trust_env = node.verify, False
    csrf = csrf_of(session, f"{node.https}/register")
    fields = {"csrf": csrf, "count": "1", "action": "submit", "m0-family_name": "山田",
              "m0-given_name": b"\xed\xb3\x80", "m0-birth_year": "1950", "m0-birth_month": "1",
              "m0-birth_day": "2", "address": "大阪市", "whereabouts": "shelter",
              "consent": "none"}
    response = session.post(f"{node.https}/register", timeout=20, allow_redirects=False,
                            files={k: (None, v) for k, v in fields.items()})
    assert response.status_code == 400 and JA["text"] in response.text
    assert rows(node, "SELECT count(*) FROM households") == households


def test_a_query_string_that_is_not_utf8_is_refused(node, token):
    for query in ("q=%ED%B3%80", "lang=%FF"):
        response = requests.get(f"{node.https}/api/v1/headcount?{query}", verify=node.verify,
                                headers={"Authorization": f"Bearer {token}"}, timeout=20)
        assert_refused(response, "malformed_text", JA["text"])
    session = sign_in(node, STAFF, PASSWORD)
    page = session.get(f"{node.https}/desk/find?q=%ED%B3%80", timeout=20)
    assert page.status_code == 400 and JA["text"] in page.text
    assert session.get(f"{node.https}/desk/find?q=%E5%B1%B1", timeout=20).status_code == 200


def test_a_csrf_token_that_is_not_ascii_is_refused_not_a_500(node):
    """hmac.compare_digest raises TypeError on a str with non-ASCII characters."""
    session = requests.Session()
    session.verify, session.trust_env = node.verify, False
    session.get(f"{node.https}/register", timeout=20)
    form = session.post(f"{node.https}/register", timeout=20, data="csrf=%C3%A9&count=1",
                        headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert form.status_code == 400 and "このフォームは期限切れです" in form.text
    staff = sign_in(node, STAFF, PASSWORD)
    api = staff.post(f"{node.https}/api/v1/scans", timeout=20, json={"code": "x"},
                     headers={"X-CSRF-Token": "é"})  # sent as the byte 0xE9
    assert api.status_code == 403 and api.json()["error"]["code"] == "csrf"


def test_numbers_and_addresses_too_long_for_their_use_are_refused(node):
    """A number past Python's 4,300 digits, an address no QR code can hold: 400, not 500."""
    session = sign_in(node, STAFF, PASSWORD)
    url = f"{node.https}/staff/settings"
    response = session.post(url, timeout=20, data={
        "csrf": csrf_of(session, url), "shelter_name": "テスト小学校", "wifi_name": "",
        "capacity": "9" * 5000, "crowding_busy": "50", "crowding_crowded": "80",
        "crowding_full": "100"})
    assert response.status_code == 400 and "<html" in response.text
    assert session.get(f"{node.https}/staff/poster.pdf", params={"url": "h" * 3000},
                       timeout=20).status_code == 400
    poster = session.get(f"{node.https}/staff/poster.pdf",
                         params={"url": "http://192.0.2.1:8080/register"}, timeout=20)
    assert poster.status_code == 200 and poster.content.startswith(b"%PDF-")


def test_the_poster_fetched_over_https_sends_phones_to_the_plain_http_port(node, tmp_path):
    """Phones must never meet the certificate warning: the QR names the registration port
    (--http-port), also when the manager prints the poster from the HTTPS staff pages."""
    session = sign_in(node, STAFF, PASSWORD)
    poster = session.get(f"{node.https}/staff/poster.pdf", timeout=20)
    assert poster.status_code == 200
    found = [text for page in render_pdf(poster.content, tmp_path) for text in decode_png(page)]
    assert len(found) == 1 and found[0].startswith("http://"), found
    assert found[0].endswith(f":{node.http_port}/register"), found


# --- the daily report ---------------------------------------------------------------------

def test_markup_in_names_and_notes_prints_literally_in_the_daily_report(node, tmp_path):
    session = sign_in(node, STAFF, PASSWORD)
    note = session.post(f"{node.https}/supplies/report", timeout=20, allow_redirects=False,
                        data={"csrf": csrf_of(session, f"{node.https}/supplies/report"),
                              "text": NOTE})
    assert note.status_code == 303, note.text[:500]
    item = session.post(f"{node.https}/supplies/items", timeout=20, allow_redirects=False,
                        data={"csrf": csrf_of(session, f"{node.https}/supplies/items"),
                              "name_ja": ITEM, "name_en": f"Blanket{MARKUP}",
                              "unit": "<i>&", "audience": "everyone"})
    assert item.status_code == 303, item.text[:500]
    for language, item_name in (("ja", ITEM), ("en", f"Blanket{MARKUP}")):
        response = session.get(f"{node.https}/supplies/report.pdf?language={language}",
                               timeout=30)
        assert response.status_code == 200, response.text[:500]
        assert response.content.startswith(b"%PDF-")
        text = words(pdf_text(response.content, tmp_path))
        for literal in (STAFF, NOTE, item_name, SHELTER_NAME, "<i>&"):
            assert words(literal) in text, (language, literal)


# --- the desk's camera socket -------------------------------------------------------------

def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` (CRCs right) with one tiny IDAT."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                              8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def qr_png(text: str) -> bytes:
    import qrcode
    out = io.BytesIO()
    qrcode.make(text, border=4, box_size=6).save(out, format="PNG")
    return out.getvalue()


def test_hostile_camera_frames_are_answered_and_the_socket_stays_open(node):
    session = sign_in(node, STAFF, PASSWORD)
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    context = ssl.create_default_context(cafile=node.verify)
    ws = Client.connect(f"wss://127.0.0.1:{node.port}/desk/camera", ssl_context=context,
                        headers={"Cookie": cookie})
    jpeg = io.BytesIO()
    from PIL import Image
    Image.new("L", (200, 200), 128).save(jpeg, format="JPEG")
    frames = {
        "60000 x 60000 (past PIL's bomb limit)": (png_header(60000, 60000), "frame too large"),
        "10000 x 10000": (png_header(10000, 10000), "frame too large"),
        "5000 x 1 (too wide)": (png_header(5000, 1), "frame too large"),
        "garbage": (b"this is not a picture" * 10, "not an image"),
        "a PNG cut after its header": (png_header(640, 480)[:40], "not an image"),
        "a JPEG cut in half": (jpeg.getvalue()[: len(jpeg.getvalue()) // 2], "not an image"),
        "a GIF (not what a camera page sends)": (b"GIF89a" + b"\x01\x00\x01\x00" + b"\x00" * 20,
                                                 "not an image"),
    }
    try:
        for name, (frame, error) in frames.items():
            ws.send(frame)
            answer = json.loads(ws.receive(timeout=20))
            assert answer == {"codes": [], "error": error}, name
        ws.send(qr_png("SHC1.TEST.CARD"))  # the same socket still reads a real card
        assert json.loads(ws.receive(timeout=20)) == {"codes": ["SHC1.TEST.CARD"]}
    finally:
        close_socket(ws)


# --- HQ: JSON, forms, the CSV export and the situation report -------------------------------

HOSTILE_SHELTERS = {  # shelter id -> (name, municipality as the file says it, address)
    "E2710000009901": ('=HYPERLINK("http://evil.example","x")', "大阪府@SUM(1+1)", "+1 大阪市"),
    "E2710000009902": ("-2+3", "大阪府大阪市", "@cmd"),
    "E2710000009903": (f"避難所{MARKUP}", "大阪府大阪市", "\t=1"),
}


@pytest.fixture(scope="module")
def hq(tmp_path_factory):
    data = tmp_path_factory.mktemp("hostile-hq")
    registry = data.parent / "hostile-registry.geojson"
    registry.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [135.5, 34.69]},
        "properties": {"共通ID": sid, "施設・場所名": name, "都道府県名及び市町村名": town,
                       "住所": address, "団体コード": "271004"}}
        for sid, (name, town, address) in HOSTILE_SHELTERS.items()]}, ensure_ascii=False),
        encoding="utf-8")
    run_cli("hq", "import", "--data", str(data), str(registry))
    run_cli("user", "add", "--data", str(data), "--username", "op", "--role", "operator",
            "--password", PASSWORD)
    server = start_hq(data)
    yield server
    server.stop()


def test_malformed_json_and_forms_are_refused_at_hq(hq):
    token = run_cli("token", "create", "--data", str(hq.data), "--role", "operator"
                    ).stdout.strip()
    for body, message in ((DEEP, "The JSON is nested too deeply."),
                          (b'{"\\udc80": 1}', EN_TEXT)):
        for path in ("/api/v1/summary", "/api/v1/shelters"):
            assert_refused(post(hq, path, body, token, **{"Accept-Language": "en"}),
                           "malformed_json", message)
    session = sign_in(hq, "op", PASSWORD)
    shelter = next(iter(HOSTILE_SHELTERS))
    url = f"{hq.url}/hq/shelters/{shelter}"
    response = session.post(url, timeout=20, allow_redirects=False,
                            data=f"csrf={csrf_of(session, url)}&status=open&capacity=50"
                                 "&contact=%ED%B3%80",
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400 and JA["text"] in response.text
    assert "%ED%B3%80" not in session.get(url, timeout=20).text


def test_hq_csv_export_neutralises_formulas(hq):
    session = sign_in(hq, "op", PASSWORD)
    response = session.get(f"{hq.url}/hq/export/shelters.csv", timeout=30)
    assert response.status_code == 200
    table = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    by_id = {r["shelter_id"]: r for r in table}
    for sid, (name, town, address) in HOSTILE_SHELTERS.items():
        row = by_id[sid]
        for cell in (row["name"], row["municipality"], row["address"]):
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (sid, cell)
        assert row["name"] == (name if name.startswith("避難所") else "'" + name)
    assert by_id["E2710000009901"]["municipality"] == "'@SUM(1+1)"
    assert by_id["E2710000009902"]["address"] == "'@cmd"


def test_markup_in_a_shelter_name_prints_literally_in_the_situation_report(hq, tmp_path):
    session = sign_in(hq, "op", PASSWORD)
    shelter = "E2710000009903"
    url = f"{hq.url}/hq/shelters/{shelter}"
    opened = session.post(url, timeout=20, allow_redirects=False, data={
        "csrf": csrf_of(session, url), "status": "open", "capacity": "50", "contact": MARKUP})
    assert opened.status_code in (302, 303), opened.text[:500]

    def report() -> str | None:  # the open shelter that never synced is listed as silent
        response = session.get(f"{hq.url}/hq/report.pdf?language=en", timeout=30)
        assert response.status_code == 200 and response.content.startswith(b"%PDF-")
        text = words(pdf_text(response.content, tmp_path))
        return text if words(HOSTILE_SHELTERS[shelter][0]) in text else None

    wait_until(report, timeout=20, what="the shelter in the situation report")
