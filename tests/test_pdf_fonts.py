"""Every PDF prints every name, and the small things around them.

Cards, the poster and both reports embed fonts that have Japanese, simplified Chinese,
Korean and Vietnamese (pdffonts: nothing left to the reader but the standard 14), and their
text reads back exactly (pdftotext); a table header never breaks inside a word; a day or a
stored time far off renders; a backup on the node's own disk is no green line; and a device
that does not trust the node's CA is said once per address in the log, not per connection.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
from pathlib import Path

import pytest
import requests

from shelter.core import backups, meta, server, tls
from shelter.core.node import NodeContext
from shelter.core.server import UntrustedClients
from shelter.core.server import free_loopback_port as free_port
from shelter.domain import accounts, cards, day_notes, fonts, households
from shelter.render import poster, report

from .conftest import VALID_HOUSEHOLD, pdf_text, render_pdf, stop_group, wait_until

NAMES = ("张伟", "김민준", "Nguyễn Văn An")
BASE14 = {"Helvetica", "Helvetica-Bold", "Courier", "Courier-Bold", "Times-Roman", "Symbol",
          "ZapfDingbats"}


def embedded_fonts(pdf: bytes, tmp_path) -> set[str]:
    """The PDF's fonts by name (subset tag and collection index dropped); fails on a font
    that is not embedded, other than the standard 14 every reader has."""
    source = tmp_path / "fonts.pdf"
    source.write_bytes(pdf)
    lines = subprocess.run(["pdffonts", str(source)], capture_output=True, text=True,
                           check=True, timeout=30).stdout.splitlines()[2:]
    names = set()
    for line in lines:
        parts = line.split()
        name, embedded = re.sub(r"^[A-Z]{6}\+|-\d+$", "", parts[0]), parts[-5] == "yes"
        assert embedded or name in BASE14, f"{name} is not embedded: {line}"
        names.add(name)
    return names


def household_of_three() -> dict:
    body = copy.deepcopy(VALID_HOUSEHOLD)
    member = body["members"][0]
    body["members"] = [
        {**member, "family_name": "张", "given_name": "伟", "family_name_kana": "ちょう",
         "given_name_kana": "うぇい", "needs": []},
        {**member, "family_name": "김", "given_name": "민준", "family_name_kana": "きむ",
         "given_name_kana": "みんじゅん", "needs": []},
        {**member, "family_name": "Nguyễn", "given_name": "Văn An",
         "family_name_kana": "グエン", "given_name_kana": "ヴァンアン", "needs": []}]
    return body


def test_the_fonts_chosen_have_every_glyph_of_each_name():
    assert fonts.runs("张伟") == [("WenQuanYiZenHei", "张伟")]
    assert fonts.runs("김민준", "ko") == [("WenQuanYiZenHei", "김민준")]
    assert fonts.runs("Nguyễn Văn An", "vi") == [("DejaVuSans", "Nguyễn Văn An")]
    assert fonts.runs("山田 太郎") == [("IPAGothic", "山田 太郎")]  # Japanese shapes
    assert fonts.runs("Nguyễn 张伟") == [("DejaVuSans", "Nguyễn "), ("WenQuanYiZenHei", "张伟")]


def test_without_zen_hei_pdfs_still_print_and_the_log_says_once_what_is_missing(
        monkeypatch, caplog, tmp_path):
    """A fresh demo laptop without fonts-wqy-zenhei: a CID font the reader supplies."""
    ready = {k: v for k, v in fonts._ready.items() if k != "WenQuanYiZenHei"}
    monkeypatch.setattr(fonts, "_ready", ready)
    monkeypatch.setitem(fonts._TTF, "WenQuanYiZenHei",
                        ((tmp_path / "no-such-font.ttc",), 0, "fonts-wqy-zenhei"))
    with caplog.at_level(logging.WARNING, logger="shelter"):
        assert fonts.runs("김민준", "ko") == [("HYGothic-Medium", "김민준")]
        assert fonts.runs("张伟") == [("STSong-Light", "张伟")]
        printed = [cards.PrintedCard("SHC1.TEST", name, "ABCD2345") for name in NAMES]
        text = pdf_text(cards.pdf_sheet(printed, "cards", "避難所", "ja"), tmp_path)
    assert "Nguyễn Văn An" in text and "김민준" in text
    said = [r.getMessage() for r in caplog.records if "WenQuanYiZenHei" in r.getMessage()]
    assert len(said) == 1 and "fonts-wqy-zenhei" in said[0], said


def test_a_card_sheet_prints_chinese_korean_and_vietnamese_names(app, tmp_path):
    ctx = app.extensions["shelter"]
    household = households.register_household(ctx.store, ctx.identity, household_of_three())
    token = accounts.create_token(ctx.store, "volunteer", "")
    answer = app.test_client().get(f"/api/v1/households/{household['household_id']}/cards.pdf",
                                   headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    text = pdf_text(answer.data, tmp_path)
    for member in household_of_three()["members"]:
        name = cards.display_name(member["family_name"], member["given_name"])
        # 张 伟: Zen Hei's space is a narrow one, which pdftotext reads as no space
        assert name in text or ("张" in name and name.replace(" ", "") in text), (name, text)
    assert {"IPAGothic", "WenQuanYiZenHei", "DejaVuSans"} <= embedded_fonts(answer.data,
                                                                           tmp_path)
    assert len(render_pdf(answer.data, tmp_path, dpi=40)) == 1  # poppler draws it


def test_the_poster_prints_its_chinese_korean_and_vietnamese_lines(tmp_path):
    pdf = poster.poster_pdf("http://192.168.1.10:8080/register", "大阪市立中央小学校", "wifi")
    text = pdf_text(pdf, tmp_path)
    for line in ("用手机扫描二维码登记", "휴대폰으로 QR 코드를 스캔하여 등록하세요",
                 "Quét mã QR bằng điện thoại để đăng ký", "大阪市立中央小学校"):
        assert line in text, line
    assert {"IPAGothic", "WenQuanYiZenHei", "DejaVuSans"} <= embedded_fonts(pdf, tmp_path)


def assert_whole(headers: list[list[str]], text: str) -> None:
    """Each header word is in the text whole (a Japanese header, without spaces, is one)."""
    words = set(text.split())
    assert headers
    for row in headers:
        for cell in row:
            for word in cell.split():
                assert (word in text) if re.search(r"[^\x00-\x7f]", word) else \
                    (word in words), (word, cell)


def test_the_daily_report_prints_every_name_and_keeps_header_words_whole(tmp_path, headers):
    ctx = NodeContext(tmp_path / "node", shelter_id="E2710000001111")
    day_notes.add_note(ctx.store, ctx.shelter_id, "薬を預かった: " + "、".join(NAMES), "staff")
    from shelter.domain.supplies import today_jst
    for language in ("ja", "en"):
        headers.clear()
        pdf = report.daily_report(ctx.db, ctx.shelter_id, today_jst(), language)
        text = pdf_text(pdf, tmp_path)
        for name in NAMES:
            assert name in text, (language, name)
        assert_whole(headers, text)
        # Age bands say they are ages (65+ beside 高齢者 read as a second count of the same)
        assert {"ja": "65+歳", "en": "65+ years"}[language] in "".join(headers[3]), headers
        assert {"IPAGothic", "WenQuanYiZenHei", "DejaVuSans"} <= embedded_fonts(pdf, tmp_path)


def test_the_situation_report_prints_every_name_keeps_headers_whole_and_far_times(
        tmp_path, headers):
    from shelter.demo import seed_hq
    from shelter.hq import stats
    hq = NodeContext(tmp_path / "hq", role="hq")
    seed_hq(hq)
    rows = [dict(r) for r in stats.cached_overview(hq)]
    assert rows
    rows[0].update(name=" ".join(NAMES), status="open", stale=True, present=3,
                   last_synced_at="9999-12-31T23:59:59Z")
    for language in ("ja", "en"):
        headers.clear()
        pdf = report.situation_report(rows, [], [], language)
        text = pdf_text(pdf, tmp_path)
        assert " ".join(NAMES) in text
        assert_whole(headers, text)
        assert {"IPAGothic", "WenQuanYiZenHei", "DejaVuSans"} <= embedded_fonts(pdf, tmp_path)
    hq.db.conn.close()


def test_a_day_or_a_stored_time_far_off_renders_and_is_no_500(app, tmp_path):
    ctx = app.extensions["shelter"]
    day_notes.add_note(ctx.store, ctx.shelter_id, "a note from a clock gone wrong", "staff")
    ctx.db.execute("UPDATE day_notes SET at = '9999-12-31T23:59:59Z'")  # synced so
    ctx.db.conn.commit()
    token = accounts.create_token(ctx.store, "manager", "")
    client = app.test_client()
    for day in ("9999-12-31", "0001-01-01", ""):
        answer = client.get(f"/supplies/report.pdf?day={day}",
                            headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, (day, answer.status_code)
        assert day in pdf_text(answer.data, tmp_path)
    assert "a note from a clock gone wrong" in pdf_text(answer.data, tmp_path)
    answer = client.get("/supplies/report.pdf?day=10000-01-01",
                        headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 400


def backup_line(page: str) -> tuple[list[str], str]:
    found = re.search(r'<p class="([^"]*)" id="backup-status"[^>]*>(.*?)</p>', page, re.S)
    assert found, page[:300]
    return found[1].split(), " ".join(found[2].split())


def test_a_backup_on_the_nodes_own_disk_is_yellow_and_says_why(app, tmp_path):
    ctx = app.extensions["shelter"]
    token = accounts.create_token(ctx.store, "volunteer", "")
    client = app.test_client()
    same = tmp_path / "same-disk"
    same.mkdir()
    backups.configure(ctx, same)
    assert backups.run_once(ctx, same, 2) is None and backups.status(ctx.db)["same_disk"]

    def line(lang: str) -> tuple[list[str], str]:
        return backup_line(client.get(f"/desk?lang={lang}", headers={
            "Authorization": f"Bearer {token}"}).get_data(as_text=True))

    classes, text = line("ja")
    assert "sync-caution" in classes and "sync-on" not in classes
    assert "backup-warn" not in classes  # yellow, not the red of a missing stick
    assert "同じディスク上" in text and "失われます" in text
    classes, text = line("en")
    assert "a lost or broken laptop takes these copies with it" in text
    # On another disk (here: /dev/shm, when it is one), the line is green.
    shm = "/dev/shm"
    if os.path.isdir(shm) and os.stat(shm).st_dev != os.stat(tmp_path).st_dev:
        other = Path(shm) / f"shelter-test-{os.getpid()}"
        other.mkdir()
        try:
            backups.configure(ctx, other)
            assert backups.run_once(ctx, other, 2) is None
            classes, _ = line("ja")
            assert "sync-on" in classes and "sync-caution" not in classes
        finally:
            shutil.rmtree(other)
    meta.commit(ctx.store, {"backup_dir": ""})


def test_gunicorns_per_connection_tls_warning_becomes_one_line_per_address():
    said: list[str] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    log = logging.getLogger("test.untrusted")
    log.propagate = False
    log.addHandler(Catch())
    quiet = UntrustedClients(log)
    log.addFilter(quiet)
    for ip in ("192.168.1.23", "192.168.1.23", "192.168.1.24", "192.168.1.23"):
        log.warning("Invalid request from ip=%s: [SSL: SSLV3_ALERT_CERTIFICATE_UNKNOWN] "
                    "sslv3 alert certificate unknown (_ssl.c:2580)", ip)
    log.warning("Invalid request from ip=192.168.1.23: Invalid HTTP Version 'x'")
    assert len(said) == 3
    assert said[0].startswith("192.168.1.23 does not trust") and "/trust" in said[0]
    assert said[1].startswith("192.168.1.24 does not trust")
    assert "Invalid HTTP Version" in said[2]  # other warnings are left as they were


TINY_APP = """def app(environ, start_response):
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]
"""


def test_a_device_that_does_not_trust_the_node_is_one_line_per_address(tmp_path):
    """The node's own gunicorn set-up (worker, TLS, log level) around a tiny app: what is
    under test is the connection handling, and the node's app would only add start-up."""
    cert, key = tls.ensure_certificates(tmp_path, "test")
    (tmp_path / "tinyapp.py").write_text(TINY_APP)
    port = free_port()
    listener = server.Listener("https test", f"127.0.0.1:{port}", {}, tls=(cert, key))
    command = [*listener.command()[:-1], "--pythonpath", str(tmp_path), "tinyapp:app"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(process.stdout.readline, "")),
                              daemon=True)
    reader.start()
    trusted = str(tls.ca_paths(tmp_path)[0])

    def untrusted(source: str) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=10,
                                      source_address=(source, 0)) as raw:
            with pytest.raises(ssl.SSLCertVerificationError):
                ssl.create_default_context().wrap_socket(raw, server_hostname="localhost")

    try:
        wait_until(lambda: requests.get(f"https://127.0.0.1:{port}/", verify=trusted,
                                        timeout=2).ok, timeout=60, what="gunicorn")
        for _ in range(4):
            untrusted("127.0.0.1")
        untrusted("127.0.0.2")
        wait_until(lambda: sum("does not trust" in line for line in lines) >= 2,
                   timeout=10, what="the untrusted lines")
        for _ in range(3):
            untrusted("127.0.0.2")
        assert requests.get(f"https://127.0.0.1:{port}/", verify=trusted, timeout=10).ok
    finally:
        stop_group(process)
        reader.join(timeout=10)
    said = [line for line in lines if "does not trust" in line]
    assert len(said) == 2, said
    assert "127.0.0.1 does not trust" in said[0] and "127.0.0.2 does not trust" in said[1]
    assert not any("CERTIFICATE" in line or "UNKNOWN_CA" in line for line in lines)
