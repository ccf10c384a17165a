"""The household code's format (SHH1, docs/household-code.md): what goes in comes out, in
all five scripts; a misread, a dropped or a cut-off scan is refused, never read as another
family; the QR holds it in numeric mode, and a different library than the one that draws
it reads it back."""

from __future__ import annotations

import io
import random
import string
import struct
import zlib
from datetime import UTC, datetime

import pytest
import zxingcpp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from shelter.core.ids import ULID_RE
from shelter.domain import household_code as hc
from shelter.domain.household_code import HouseholdCodeError

# Names as families write them, one script each (and Vietnamese with its marks).
NAMES = {
    "ja": [("山田", "太郎", "ヤマダ", "タロウ"), ("髙橋", "美咲", "タカハシ", "ミサキ"),
           ("佐々木", "翔太", "ササキ", "ショウタ")],
    "en": [("Smith", "Olivia", "", ""), ("O'Brien", "Liam", "", "")],
    "zh": [("张", "伟", "", ""), ("王", "秀英", "", "")],
    "ko": [("김", "민준", "", ""), ("이", "서연", "", "")],
    "vi": [("Nguyễn", "Thị Hương", "", ""), ("Trần", "Văn Đức", "", "")],
}


def household(language: str, size: int, seed: int = 0) -> dict:
    rng = random.Random(seed)
    people = NAMES[language]
    members = []
    for i in range(size):
        family, given, family_kana, given_kana = people[i % len(people)]
        needs = sorted(rng.sample(hc.NEED_BITS, rng.randint(0, 3)), key=hc.NEED_BITS.index)
        members.append({
            "family_name": family, "given_name": given, "family_name_kana": family_kana,
            "given_name_kana": given_kana,
            "birth_date": f"{rng.randint(1925, 2025)}-{rng.randint(1, 12):02d}-"
                          f"{rng.randint(1, 28):02d}",
            "sex": rng.choice(hc.SEXES), "needs": needs,
            "allergies": "卵、そば" if "allergy" in needs else "",
            "medication": "降圧剤 朝1錠" if rng.random() < 0.3 else ""})
    return {"language": language, "address": "大阪府大阪市中央区大手前2丁目1-22",
            "postal_code": "540-0008", "phone": "06-1234-5678", "pets": "犬 1匹",
            "whereabouts": rng.choice(hc.WHEREABOUTS), "consent": rng.choice(hc.CONSENTS),
            "members": members}


FAMILY = household("ja", 8, seed=8)
CODE = hc.make(FAMILY, made=datetime(2026, 11, 30, 9, 0, tzinfo=UTC))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(language=st.sampled_from(sorted(NAMES)), size=st.integers(1, 10),
       seed=st.integers(0, 10_000))
def test_every_household_of_one_to_ten_comes_back_as_it_went_in(language, size, seed):
    family = household(language, size, seed)
    code = hc.make(family)
    back = hc.read(code)
    assert back.registration == family
    assert back.seqs == tuple(range(size)) and back.next_seq == size
    assert ULID_RE.match(back.household_id)
    assert code.startswith("SHH1.") and code[5:].isdigit()


def test_the_same_family_keeps_its_id_and_numbers_when_it_updates_its_code():
    first = hc.read(CODE)
    fewer = {**FAMILY, "members": FAMILY["members"][1:]}  # the grandfather moved out
    second = hc.read(hc.make(fewer, first.household_id, seqs=list(first.seqs[1:]),
                             next_seq=first.next_seq))
    assert second.household_id == first.household_id and second.seqs == first.seqs[1:]
    newborn = {**FAMILY["members"][0], "given_name": "陽向", "birth_date": "2026-11-01"}
    third = hc.read(hc.make({**fewer, "members": [*fewer["members"], newborn]},
                            second.household_id, seqs=list(second.seqs),
                            next_seq=second.next_seq))
    # The newborn gets a number no one had, not the one of the person who left.
    assert third.seqs == (*second.seqs, 8) and 0 not in third.seqs
    assert hc.person_id(first.household_id, 0) not in {
        hc.person_id(third.household_id, s) for s in third.seqs}


def test_an_id_that_is_no_ulid_gets_a_new_one():
    assert hc.read(hc.make(FAMILY, "Z" * 26)).household_id != "Z" * 26


def test_person_ids_are_ulids_derived_from_the_household_and_the_number():
    household_id = hc.read(CODE).household_id
    ids = [hc.person_id(household_id, s) for s in range(20)]
    assert len(set(ids)) == 20 and all(ULID_RE.match(i) for i in ids)
    assert ids == [hc.person_id(household_id, s) for s in range(20)]
    assert all(i[:10] == household_id[:10] for i in ids)  # the household's time


def test_a_code_reads_the_same_as_typed_full_width_lower_case_or_broken_in_lines():
    digits = CODE[5:]
    wide = str.maketrans(string.digits, "０１２３４５６７８９")
    full_width = "ＳＨＨ１．" + digits.translate(wide)
    broken = "shh1.\n" + " ".join(digits[i:i + 40] for i in range(0, len(digits), 40))
    assert hc.read(full_width) == hc.read(broken) == hc.read(CODE)


def test_every_single_character_misread_is_refused():
    alphabet = string.digits + string.ascii_uppercase + "."
    for position, original in enumerate(CODE):
        for other in alphabet:
            if other == original:
                continue
            misread = CODE[:position] + other + CODE[position + 1:]
            with pytest.raises(HouseholdCodeError) as refused:
                hc.read(misread)
            assert refused.value.reason in ("garbled", "truncated", "version"), misread


def test_every_truncation_and_every_dropped_digit_is_refused():
    for end in range(len(CODE)):
        with pytest.raises(HouseholdCodeError) as refused:
            hc.read(CODE[:end])
        assert refused.value.reason in ("truncated", "garbled")
    assert all(_refused(CODE[:i] + CODE[i + 1:]) for i in range(5, len(CODE)))
    assert _refused(CODE + "0") and _refused(CODE + CODE[5:])


def _refused(text: str) -> bool:
    try:
        hc.read(text)
    except HouseholdCodeError:
        return True
    return False


def test_a_cut_off_scan_says_so_and_a_newer_format_says_that():
    with pytest.raises(HouseholdCodeError) as cut:
        hc.read(CODE[: len(CODE) // 2])
    assert cut.value.reason == "truncated" and cut.value.status == 422
    for stub in ("SHH1.", "SHH", "S"):
        with pytest.raises(HouseholdCodeError) as cut:
            hc.read(stub)
        assert cut.value.reason == "truncated", stub
    with pytest.raises(HouseholdCodeError) as newer:
        hc.read("SHH2." + CODE[5:])
    assert newer.value.reason == "version"
    assert hc.looks_like("ｓｈｈ１．123") and hc.looks_like("SHH2.1")
    assert not hc.looks_like("SHC1.ABC") and not hc.looks_like("7KQ3-M9TX")


def _framed(payload: bytes) -> str:
    framed = struct.pack(">HI", len(payload), zlib.crc32(payload)) + payload
    digits = hc._to_digits(framed)
    return hc.PREFIX + digits + str(hc._damm(digits))


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=0, max_size=400))
def test_any_payload_with_valid_checks_reads_or_is_refused_never_crashes(payload):
    """A code made by anyone (checks and all) is read or refused: nothing else."""
    try:
        back = hc.read(_framed(payload))
    except HouseholdCodeError as refused:
        assert refused.reason in ("garbled", "truncated")  # too short to hold a household
    else:
        assert back.registration["members"]


def test_a_code_that_inflates_past_any_household_is_refused():
    bomb = zlib.compress(b"\x1f" * 3 + b"\x1e0" + b"A" * 2_000_000, 9, wbits=-15)
    header = bytes([1]) + bytes(16) + struct.pack(">IB", 0, 1)
    with pytest.raises(HouseholdCodeError):
        hc.read(_framed(header + bomb))
    assert len(_framed(header + bomb)) < hc.MAX_DIGITS


def test_a_household_of_eight_fits_a_qr_code_a_phone_and_a_scanner_read():
    image = Image.open(io.BytesIO(hc.qr_png(CODE)))
    found = zxingcpp.read_barcodes(image)
    assert [r.text for r in found] == [CODE]
    modules = image.width // 4 - 8  # box size 4, border 4
    version = (modules - 17) // 4
    assert version <= 22, version  # on a phone's screen and on paper, both read it


def test_twenty_people_with_long_texts_are_refused_as_too_large_not_cut():
    big = household("vi", 20, seed=3)
    for m in big["members"]:
        m.update(allergies="đậu phộng, tôm, cua, trứng, sữa bò " * 5, medication="x" * 190)
    try:
        code = hc.make(big)
    except HouseholdCodeError as refused:
        assert refused.reason == "too_large"
    else:
        assert hc.read(code).registration == big and len(code) <= hc.MAX_DIGITS + 5
