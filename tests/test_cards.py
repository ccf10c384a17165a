"""Card payloads, PNG and PDF: decoded by zxing-cpp and poppler, not by what made them."""

from __future__ import annotations

import subprocess
from datetime import date

import pytest

from shelter.core import keys, shortcode
from shelter.domain import cards
from shelter.domain.cards import CardError, PrintedCard

from .conftest import decode_png, pdf_text, render_pdf

PERSON = "01JDQ3W8X2Y4Z6A8B0C2D4E6F8"


@pytest.fixture(scope="module")
def key():
    return keys.load_private_key(keys.new_private_key_pem())


def test_payload_round_trip_carries_only_id_name_and_issuer(key):
    code = cards.make_code(key, PERSON, "E2710000001111", "NABCDEFGH1", "山田 太郎",
                           date(2026, 11, 25))
    assert set(code) <= set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ.")  # QR alphanumeric
    card = cards.parse_code(code, {"NABCDEFGH1": keys.public_key_text(key)})
    assert card == cards.Card(PERSON, "E2710000001111", "NABCDEFGH1", "20261125",
                              "山田 太郎", True)


def test_forged_typo_and_garbage_are_told_apart(key):
    known = {"NABCDEFGH1": keys.public_key_text(key)}
    code = cards.make_code(key, PERSON, "E2710000001111", "NABCDEFGH1", "山田 太郎",
                           date(2026, 11, 25))
    # someone edits the name on a genuine card: the signature no longer matches
    parts = code.split(".")
    parts[5] = keys.b32("山田 次郎".encode())
    with pytest.raises(CardError) as forged:
        cards.parse_code(".".join(parts), known)
    assert forged.value.reason == "forged"
    # a card signed by another key claiming to be this node
    other = keys.load_private_key(keys.new_private_key_pem())
    with pytest.raises(CardError, match="forged"):
        cards.parse_code(cards.make_code(other, PERSON, "E2710000001111", "NABCDEFGH1",
                                         "山田 太郎", date(2026, 11, 25)), known)
    for garbage in ("", "hello", "SHC1.x.y", code[:-5], code.replace("SHC1", "SHC9"),
                    "SHC1." + "." * 6, code + ".EXTRA"):
        with pytest.raises(CardError) as garbled:
            cards.parse_code(garbage, known)
        assert garbled.value.reason in ("garbled", "forged")
    with pytest.raises(CardError, match="garbled"):
        cards.parse_code("https://example.invalid/", known)


def test_unknown_issuer_reads_but_is_not_verified(key):
    code = cards.make_code(key, PERSON, "E2710000009999", "NOTHERNODE", "Nguyễn Lan",
                           date(2026, 11, 25))
    card = cards.parse_code(code, {})
    assert card.display_name == "Nguyễn Lan" and not card.verified


def test_png_decodes_with_zxing(key):
    code = cards.make_code(key, PERSON, "E2710000001111", "NABCDEFGH1", "김 민준",
                           date(2026, 11, 25))
    assert decode_png(cards.png(code)) == [code]


def test_pdf_sheet_decodes_and_reads_back(key, tmp_path):
    people = [("山田 太郎", "ja"), ("Nguyễn Thị Lan", "vi"), ("김 민준", "ko"), ("王 小明", "zh")]
    printed = []
    for i, (name, _) in enumerate(people * 3):  # twelve cards: two pages
        person = PERSON[:-2] + f"{i:02d}"
        printed.append(PrintedCard(cards.make_code(key, person, "E2710000001111",
                                                   "NABCDEFGH1", name, date(2026, 11, 25)),
                                   name, shortcode.generate()))
    pdf = cards.pdf_sheet(printed, "Evacuee cards", "大阪市立テスト小学校", "ja")
    pages = render_pdf(pdf, tmp_path)
    assert len(pages) == 2
    found = [c for page in pages for c in decode_png(page)]
    assert sorted(found) == sorted(p.code for p in printed)
    text = pdf_text(pdf, tmp_path)
    assert "山田 太郎" in text and "大阪市立テスト小学校" in text
    assert "Nguyễn Thị Lan" in text  # Vietnamese diacritics survive (embedded DejaVu)
    for p in printed:
        assert shortcode.display(p.short_code) in text
    fonts = subprocess.run(["pdffonts", str(tmp_path / "text.pdf")], capture_output=True,
                           text=True, check=True).stdout
    # Japanese and Vietnamese glyphs travel inside the PDF (.ci/run installs the fonts)
    assert "IPAGothic" in fonts and "DejaVuSans" in fonts
