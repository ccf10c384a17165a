"""Household codes (format ``SHH1``, docs/household-code.md): a family's registration, made
at home on /prepare (or by another system through POST /api/v1/household-codes), carried
as one QR code, and read at the shelter's door with one scan.

Nothing is signed: anyone can make a code, and what it says is checked at the door as a
kiosk registration is (``households.validate``). What the code does carry is an id made
when it was first created (``household_id``), from which each member's person id is
derived (``person_id``), so the same family is one household however often and wherever
it is scanned; and checks that refuse a misread or a cut-off scan.

    make(registration, household_id=None, made=None) -> "SHH1.<digits>"
    read(text) -> HouseholdCode          raises HouseholdCodeError
    looks_like(text) -> bool             whether a scan is meant as a household code
    person_id(household_id, seq) -> str  the person id of member ``seq``
    qr_png(code) -> bytes                the QR, as a PNG
"""

from __future__ import annotations

import binascii
import hashlib
import io
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import qrcode
from qrcode.constants import ERROR_CORRECT_M
from qrcode.util import MODE_ALPHA_NUM, MODE_NUMBER, QRData
from ulid import ULID

from shelter.core.errors import N_, InvalidInput
from shelter.core.ids import ULID_RE, new_id

VERSION = "SHH1"
PREFIX = VERSION + "."
# A QR code of version 40 at level M holds 5,596 digits: a longer code cannot be one.
MAX_DIGITS = 5596
MAX_MEMBERS = 20
# Seconds from this moment count a code's making (4 bytes reach 2156).
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

LANGUAGES = ("ja", "en", "zh", "ko", "vi")
CONSENTS = ("relatives", "acquaintances", "none")
WHEREABOUTS = ("shelter", "home", "car", "other")
SEXES = ("female", "male", "other", "unanswered")
# The order of the need bits (a new need is added at the end: old codes keep their meaning).
NEED_BITS = ("elderly", "disability", "wheelchair", "infant", "pregnant_nursing",
             "chronic_illness", "allergy", "injury", "language_support", "pet")
HOUSEHOLD_TEXT = ("address", "postal_code", "phone", "pets")
MEMBER_TEXT = ("family_name", "given_name", "family_name_kana", "given_name_kana",
               "allergies", "medication")


class HouseholdCodeError(InvalidInput, ValueError):
    """A scan that is not a household code we can read. ``reason``: ``version`` (a code of
    a format this node does not know), ``garbled`` (a misread: the check failed),
    ``truncated`` (part of the code is missing), ``too_large``."""

    MESSAGES = {
        "version": N_("This household code was made by a newer version. Register at the "
                      "desk with the form."),
        "garbled": N_("This household code was misread. Hold it still and scan it again."),
        "truncated": N_("Only part of this household code was read. Scan it again."),
        "too_large": N_("This is too long to be a household code."),
    }

    def __init__(self, reason: str) -> None:
        super().__init__(self.MESSAGES[reason], code=f"household_code_{reason}",
                         detail=reason)
        self.reason = reason


@dataclass(frozen=True)
class HouseholdCode:
    """What a household code says. ``registration`` has the shape of the body of POST
    /api/v1/households (``pets`` and each member's ``medication`` too); ``seqs``: each
    member's number, from which their person id is derived; ``made``: when this version
    of the code was made (UTC, ISO 8601, seconds)."""

    household_id: str
    made: str
    registration: dict[str, Any]
    seqs: tuple[int, ...]  # each member's number in the code, in the order of members
    next_seq: int = 0  # the number the next member added will get (none reused)


def looks_like(text: object) -> bool:
    """Whether a scan or typed text is meant as a household code (``SHH`` and a version,
    full-width or lower case too), as opposed to a card or a short code."""
    if not isinstance(text, str):
        return False
    head = unicodedata.normalize("NFKC", text[:8]).strip().upper()
    return head.startswith("SHH") and head[3:4].isdigit()


def person_id(household_id: str, seq: int) -> str:
    """The person id of member ``seq`` of the household: a ULID with the household id's
    time and 80 bits of SHA-256 of the household id and ``seq``."""
    household = ULID.from_str(household_id).bytes
    digest = hashlib.sha256(b"SHH1 person" + household + bytes([seq])).digest()
    return str(ULID.from_bytes(household[:6] + digest[:10]))


def make(registration: dict[str, Any], household_id: str | None = None,
         made: datetime | None = None, seqs: list[int | None] | None = None,
         next_seq: int = 0) -> str:
    """The household code of a registration in its clean form (``households.validate``;
    ``pets`` and each member's ``medication`` are read where present). ``household_id``:
    the id made when the code was first created (a new one when None or not a ULID);
    ``seqs``: the
    members' numbers from the code this one replaces (0, 1, 2... when None; a member
    added since, None or past the list's end, gets a number no one had: from
    ``next_seq``, the replaced code's ``next_seq``, on). Raises
    HouseholdCodeError("too_large") when it would not fit one QR code."""
    members = registration["members"]
    if not 0 < len(members) <= MAX_MEMBERS:
        raise HouseholdCodeError("too_large")
    numbers = _numbers(len(members), seqs, next_seq)
    if household_id is None or not _ulid(household_id):
        household_id = new_id()
    moment = made or datetime.now(UTC)
    seconds = max(0, min(2**32 - 1, int((moment - EPOCH).total_seconds())))
    text = US.join(str(registration.get(f) or "") for f in HOUSEHOLD_TEXT)
    for seq, member in zip(numbers, members, strict=True):
        needs = sum(1 << NEED_BITS.index(n) for n in member.get("needs", ()) if n in NEED_BITS)
        fields = [str(seq), *(str(member.get(f) or "") for f in MEMBER_TEXT[:4]),
                  str(member.get("birth_date") or "").replace("-", ""),
                  str(SEXES.index(member.get("sex") or "unanswered")), str(needs),
                  *(str(member.get(f) or "") for f in MEMBER_TEXT[4:])]
        text += RS + US.join(fields)
    body = text.encode("utf-8")
    packed = zlib.compress(body, 9, wbits=-15)
    deflated = len(packed) < len(body)
    flags = (int(deflated) | LANGUAGES.index(registration.get("language") or "ja") << 1
             | CONSENTS.index(registration["consent"]) << 4
             | WHEREABOUTS.index(registration.get("whereabouts") or "shelter") << 6)
    payload = (bytes([flags]) + ULID.from_str(household_id).bytes
               + struct.pack(">IB", seconds, max(numbers) + 1) + (packed if deflated else body))
    if len(payload) > 0xFFFF:
        raise HouseholdCodeError("too_large")
    framed = struct.pack(">HI", len(payload), binascii.crc32(payload)) + payload
    digits = _to_digits(framed)
    digits += str(_damm(digits))
    if len(digits) > MAX_DIGITS:
        raise HouseholdCodeError("too_large")
    return PREFIX + digits


def read(text: str) -> HouseholdCode:
    """The household code scanned or typed (spaces, line breaks, full-width digits and
    lower case are read as the code). Raises HouseholdCodeError."""
    if not isinstance(text, str):
        raise HouseholdCodeError("garbled")
    if len(text) > MAX_DIGITS * 2:
        raise HouseholdCodeError("too_large")
    code = "".join(unicodedata.normalize("NFKC", text).split()).upper()
    if not code.startswith(PREFIX):
        if PREFIX.startswith(code):
            raise HouseholdCodeError("truncated")
        if looks_like(code):
            raise HouseholdCodeError("version")
        raise HouseholdCodeError("garbled")
    digits = code[len(PREFIX):]
    if not digits:
        raise HouseholdCodeError("truncated")
    if len(digits) > MAX_DIGITS:
        raise HouseholdCodeError("too_large")
    if not digits.isascii() or not digits.isdigit():
        raise HouseholdCodeError("garbled")
    if len(digits) < CHUNK_DIGITS + 1:
        raise HouseholdCodeError("truncated")
    length = int.from_bytes(_from_digits(digits[:CHUNK_DIGITS])[:2], "big")
    expected = _digit_count(6 + length) + 1
    if len(digits) < expected:
        raise HouseholdCodeError("truncated")
    if len(digits) > expected or _damm(digits) != 0:
        raise HouseholdCodeError("garbled")
    framed = _from_digits(digits[:-1])
    crc = int.from_bytes(framed[2:6], "big")
    payload = framed[6:]
    if len(payload) != length or binascii.crc32(payload) != crc:
        raise HouseholdCodeError("garbled")
    try:
        return _unpack(payload)
    except (ValueError, IndexError, UnicodeDecodeError, zlib.error, struct.error):
        raise HouseholdCodeError("garbled") from None


def qr_png(code: str, box_size: int = 4) -> bytes:
    """The code as a QR code (PNG): the prefix in alphanumeric mode, the digits in numeric
    mode, error correction M."""
    qr = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=box_size, border=4)
    qr.add_data(QRData(PREFIX.encode("ascii"), mode=MODE_ALPHA_NUM))
    qr.add_data(QRData(code[len(PREFIX):].encode("ascii"), mode=MODE_NUMBER))
    qr.make(fit=True)
    out = io.BytesIO()
    qr.make_image().save(out, "PNG")
    return out.getvalue()


# --- the parts ----------------------------------------------------------------------------

US, RS = "\x1f", "\x1e"  # between fields, before each member: text never holds them
CHUNK_BYTES, CHUNK_DIGITS = 7, 17  # 2**56 < 10**17
# Digits for a last chunk of n bytes: the fewest that hold 2**(8n) values.
_TAIL_DIGITS = {n: len(str(2 ** (8 * n) - 1)) for n in range(1, CHUNK_BYTES)}
# The Damm algorithm's quasigroup of order 10: one check digit that catches every
# single-digit error and every swap of two neighbouring digits.
_DAMM = [[int(c) for c in row] for row in (
    "0317598642", "7092154863", "4206871359", "1750983426", "6123045978",
    "3674209581", "5869720134", "8945362017", "9438617205", "2581436790")]


def _ulid(text: str) -> bool:
    """Whether ``text`` is a ULID (the pattern allows a first character past 7, whose
    time would not fit 48 bits)."""
    if not ULID_RE.match(text):
        return False
    try:
        ULID.from_str(text)
    except ValueError:
        return False
    return True


def _damm(digits: str) -> int:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][ord(ch) - 48]
    return interim


def _digit_count(n_bytes: int) -> int:
    full, tail = divmod(n_bytes, CHUNK_BYTES)
    return full * CHUNK_DIGITS + (_TAIL_DIGITS[tail] if tail else 0)


def _to_digits(data: bytes) -> str:
    out = []
    for start in range(0, len(data), CHUNK_BYTES):
        chunk = data[start:start + CHUNK_BYTES]
        width = CHUNK_DIGITS if len(chunk) == CHUNK_BYTES else _TAIL_DIGITS[len(chunk)]
        out.append(str(int.from_bytes(chunk, "big")).zfill(width))
    return "".join(out)


def _from_digits(digits: str) -> bytes:
    """Bytes of chunked digits; raises HouseholdCodeError for a length or value no chunk
    can have."""
    out = bytearray()
    for start in range(0, len(digits), CHUNK_DIGITS):
        piece = digits[start:start + CHUNK_DIGITS]
        size = CHUNK_BYTES if len(piece) == CHUNK_DIGITS else next(
            (n for n, d in _TAIL_DIGITS.items() if d == len(piece)), 0)
        value = int(piece)
        if not size or value >= 2 ** (8 * size):
            raise HouseholdCodeError("garbled")
        out += value.to_bytes(size, "big")
    return bytes(out)


def _numbers(count: int, seqs: list[int | None] | None, next_seq: int) -> list[int]:
    given = [s if isinstance(s, int) and 0 <= s <= 255 else None
             for s in (seqs or [])[:count]]
    if seqs is None:
        given = list(range(count))
    given += [None] * (count - len(given))
    taken = {s for s in given if s is not None}
    fresh = max([next_seq - 1, *taken], default=-1) + 1
    out = []
    for s in given:
        if s is None or s in out:
            while fresh in taken:
                fresh += 1
            s, fresh = fresh, fresh + 1
        out.append(s)
    if max(out) > 254:
        raise HouseholdCodeError("too_large")
    return out


def _unpack(payload: bytes) -> HouseholdCode:
    flags = payload[0]
    household_id = str(ULID.from_bytes(payload[1:17]))
    seconds, next_seq = struct.unpack(">IB", payload[17:22])
    body = payload[22:]
    if flags & 1:
        inflater = zlib.decompressobj(wbits=-15)
        body = inflater.decompress(body, MAX_BODY_BYTES)
        if inflater.unconsumed_tail or not inflater.eof:
            raise ValueError("not one deflate stream of a sane size")
    records = body.decode("utf-8").split(RS)
    household = records[0].split(US)
    if len(household) != len(HOUSEHOLD_TEXT) or not 1 < len(records) <= MAX_MEMBERS + 1:
        raise ValueError("shape")
    language, consent, where = (flags >> 1) & 7, (flags >> 4) & 3, flags >> 6
    if language >= len(LANGUAGES) or consent >= len(CONSENTS):
        raise ValueError("choice")
    registration: dict[str, Any] = dict(zip(HOUSEHOLD_TEXT, household, strict=True))
    registration.update(language=LANGUAGES[language], consent=CONSENTS[consent],
                        whereabouts=WHEREABOUTS[where], members=[])
    seqs = []
    for record in records[1:]:
        fields = record.split(US)
        if len(fields) != 10:
            raise ValueError("shape")
        seq, born, sex, needs = int(fields[0]), fields[5], int(fields[6]), int(fields[7])
        if not 0 <= seq < next_seq or seq in seqs or sex >= len(SEXES) \
                or not 0 <= needs < 1 << len(NEED_BITS) \
                or not (born == "" or (len(born) == 8 and born.isdigit())):
            raise ValueError("value")
        seqs.append(seq)
        member: dict[str, Any] = dict(zip(MEMBER_TEXT[:4], fields[1:5], strict=True))
        member.update(birth_date=f"{born[:4]}-{born[4:6]}-{born[6:]}" if born else "",
                      sex=SEXES[sex], needs=[n for i, n in enumerate(NEED_BITS)
                                             if needs >> i & 1],
                      allergies=fields[8], medication=fields[9])
        registration["members"].append(member)
    made = (EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")
    return HouseholdCode(household_id, made.replace("+00:00", "Z"), registration,
                         tuple(seqs), next_seq)


# What a code's text may inflate to: 20 people's fields, generously.
MAX_BODY_BYTES = 64 * 1024
