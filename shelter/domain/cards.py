"""Evacuee cards: the QR payload (format ``SHC1``, see docs/card-format.md), PNG and PDF.

The payload is plain uppercase letters, digits and dots, so it fits the QR code's compact
alphanumeric mode and a handheld scanner that "types" it does so identically on Japanese and
US keyboard layouts. It carries the person's id, display name and issuing shelter, signed
with the issuing node's Ed25519 key: a typo or a forged card fails verification.
"""

from __future__ import annotations

import binascii
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from typing import Any

import qrcode
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from qrcode.constants import ERROR_CORRECT_M

from shelter.core import shortcode
from shelter.core.errors import N_, InvalidInput
from shelter.core.ids import ULID_RE, valid_id
from shelter.core.keys import b32, unb32
from shelter.domain import fonts

VERSION = "SHC1"
MAX_NAME_BYTES = 60


class CardError(InvalidInput, ValueError):
    """A scanned or typed code that is not a genuine card. ``reason`` says which way (and
    is the code)."""

    message = N_("This code cannot be read. Scan it again or type the short code printed "
                 "under the QR.")

    def __init__(self, reason: str) -> None:
        forged = N_("This card is not genuine. Nothing was changed. Ask the shelter manager.")
        super().__init__(forged if reason == "forged" else None, code=reason, detail=reason)
        self.reason = reason  # "garbled" or "forged"


@dataclass(frozen=True)
class Card:
    person_id: str
    shelter_id: str
    node_id: str
    issued_on: str
    display_name: str
    verified: bool  # False: well formed, but the issuer's key is not known here yet


def display_name(family: str, given: str) -> str:
    name = f"{family} {given}".strip()
    raw = name.encode("utf-8")[:MAX_NAME_BYTES]
    return raw.decode("utf-8", errors="ignore")


# --- keys -------------------------------------------------------------------------------

# --- payload ----------------------------------------------------------------------------

def make_code(key: Ed25519PrivateKey, person_id: str, shelter_id: str, node_id: str,
              name: str, issued_on: date) -> str:
    body = ".".join([VERSION, person_id, shelter_id, node_id, issued_on.strftime("%Y%m%d"),
                     b32(name.encode("utf-8"))]) + "."
    return body + b32(key.sign(body.encode("ascii")))


def parse_code(text: str, public_keys: dict[str, str]) -> Card:
    """Read a scanned payload. ``public_keys`` maps node ids to their public keys.

    Raises CardError("garbled") for anything that is not an SHC1 payload and
    CardError("forged") for one whose signature does not match its issuer's key.
    """
    text = text.strip()
    parts = text.split(".")
    if len(parts) != 7 or parts[0] != VERSION:
        raise CardError("garbled")
    _, person_id, shelter_id, node_id, issued, name_b32, sig_b32 = parts
    if not (ULID_RE.match(person_id) and valid_id(shelter_id) and valid_id(node_id)
            and re.fullmatch(r"\d{8}", issued)):
        raise CardError("garbled")
    try:
        name = unb32(name_b32).decode("utf-8")
        signature = unb32(sig_b32)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise CardError("garbled") from None
    if len(signature) != 64:
        raise CardError("garbled")
    verified = False
    public = public_keys.get(node_id)
    if public is not None:
        if not _signature_valid(public, signature, text[: len(text) - len(sig_b32)]):
            raise CardError("forged")
        verified = True
    return Card(person_id, shelter_id, node_id, issued, name, verified)


@lru_cache(maxsize=4096)
def _signature_valid(public: str, signature: bytes, body: str) -> bool:
    """Cached: a desk sees the same cards all day (out, back, out again), and a signature
    checked once against the same key does not change."""
    try:
        Ed25519PublicKey.from_public_bytes(unb32(public)).verify(signature, body.encode("ascii"))
    except InvalidSignature:
        return False
    return True


# --- rendering --------------------------------------------------------------------------

def _qr(code: str) -> qrcode.QRCode:
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=10, border=4)
    qr.add_data(code)
    qr.make(fit=True)
    return qr


def png(code: str, box_size: int = 10) -> bytes:
    qr = _qr(code)
    qr.box_size = box_size
    image = qr.make_image(fill_color="black", back_color="white")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


@dataclass(frozen=True)
class PrintedCard:
    code: str
    name: str
    short_code: str


def draw_qr(c: Any, text: str, x: float, y: float, size: float) -> None:
    """Draw a QR code on a reportlab canvas, module by module: sharp at any print size."""
    matrix = _qr(text).get_matrix()
    module = size / len(matrix)
    c.setFillGray(0)
    for r, line in enumerate(matrix):
        for k, dark in enumerate(line):
            if dark:
                c.rect(x + k * module, y + size - (r + 1) * module, module, module,
                       stroke=0, fill=1)


def pdf_sheet(cards: Iterable[PrintedCard], title: str, shelter_name: str,
              language: str) -> bytes:
    """An A4 sheet: eight cards (2 x 4) per page, dashed cut lines, name and code under QR."""
    from reportlab.lib.pagesizes import A4
    from reportlab.lib.units import mm
    from reportlab.pdfgen import canvas

    out = io.BytesIO()
    page_w, page_h = A4
    card_w, card_h = 95 * mm, 68 * mm
    cols, rows = 2, 4
    left = (page_w - cols * card_w) / 2
    top = page_h - (page_h - rows * card_h) / 2
    c = canvas.Canvas(out, pagesize=A4)
    c.setTitle(title)
    c.setAuthor("Shelter")
    cards = list(cards)
    for index, card in enumerate(cards):
        slot = index % (cols * rows)
        if index and slot == 0:
            c.showPage()
        col, row = slot % cols, slot // cols
        x, y = left + col * card_w, top - (row + 1) * card_h
        c.setDash(3, 3)
        c.setLineWidth(0.5)
        c.setStrokeGray(0.4)
        c.rect(x, y, card_w, card_h)
        c.setDash()
        size = 44 * mm
        draw_qr(c, card.code, x + (card_w - size) / 2, y + card_h - size - 2 * mm, size)
        fonts.draw(c, card.name, x + card_w / 2, y + 14 * mm, 13, language)
        c.setFont("Courier-Bold", 14)
        c.drawCentredString(x + card_w / 2, y + 8 * mm, shortcode.display(card.short_code))
        fonts.draw(c, shelter_name, x + card_w / 2, y + 3.5 * mm, 7)
    if not cards:
        c.drawString(20 * mm, page_h - 20 * mm, "-")
    c.showPage()
    c.save()
    return out.getvalue()
