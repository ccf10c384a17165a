"""A household's registration (POST /api/v1/households, the kiosk form) and its answer,
and the words a registration is made of. ``HouseholdIn.registration`` is the one check of
a registration (``shelter.domain.households.validate`` calls it), for the API and the kiosk
form alike: every field that needs attention is told at once."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any, ClassVar, Literal, NotRequired, Self, cast, get_args

from pydantic import ConfigDict, ValidationInfo, field_validator, model_validator
from typing_extensions import TypedDict

from shelter.core.clock import today_jst
from shelter.core.errors import N_
from shelter.domain.schemas.fields import (
    REQUIRED,
    Body,
    Choice,
    Line,
    Refusal,
    Rule,
    nullable,
    refuse,
)
from shelter.domain.schemas.patterns import SPACE, dates_up_to, kana_line, one_line
from shelter.domain.text import normalise_kana

Need = Literal["elderly", "disability", "wheelchair", "infant", "pregnant_nursing",
               "chronic_illness", "allergy", "injury", "language_support", "pet"]
Sex = Literal["female", "male", "other", "unanswered"]
Whereabouts = Literal["shelter", "home", "car", "other"]
Consent = Literal["relatives", "acquaintances", "none"]
Language = Literal["ja", "en", "zh", "ko", "vi"]
NEEDS: tuple[str, ...] = get_args(Need)
SEXES: tuple[str, ...] = get_args(Sex)
WHEREABOUTS: tuple[str, ...] = get_args(Whereabouts)
CONSENTS: tuple[str, ...] = get_args(Consent)
LANGUAGES: tuple[str, ...] = get_args(Language)
MAX_MEMBERS = 20
NAME_LIMIT = 40
KANA_LIMIT = 60
TEXT_LIMIT = 200  # an address, allergies, medication, pets
CHOOSE = N_("Choose one of the options.")
DATE_FORMAT = N_("Enter the birth date as year, month and day.")
NOBODY = N_("Register at least one person.")


@dataclass(frozen=True)
class BirthDate(Rule):
    """A birth date, YYYY-MM-DD, that exists, from 1900 to today (the context's ``today``)."""

    def check(self, value: Any, info: ValidationInfo) -> str:
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
            raise refuse(DATE_FORMAT)
        try:
            born = date.fromisoformat(value.strip())
        except ValueError:
            raise refuse(N_("This date does not exist.")) from None
        if born > ((info.context or {}).get("today") or today_jst()):
            raise refuse(N_("The birth date cannot be in the future."))
        if born.year < 1900:
            raise refuse(N_("Check the year of birth."))
        return born.isoformat()

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": dates_up_to(today_jst())}  # YYYY-MM-DD


@dataclass(frozen=True)
class Kana(Line):
    """Furigana in hiragana or katakana (half width too), stored as full-width katakana;
    with ``japanese``, required when the household registers in Japanese."""

    limit: int = KANA_LIMIT
    japanese: bool = False

    def check(self, value: Any, info: ValidationInfo) -> str:
        required = self.japanese and (info.context or {}).get("language", "ja") == "ja"
        text = Line(self.limit, required).check(value, info)
        kana = normalise_kana(text) if text else ""
        if kana is None:
            raise refuse(N_("Write this in hiragana or katakana."))
        return kana

    def schema(self) -> dict[str, Any]:
        return nullable({"type": "string", "pattern": kana_line(self.limit)})


@dataclass(frozen=True)
class Postal(Line):
    """Seven digits (ASCII or full width), any hyphens; stored as 540-0008."""

    limit: int = 10

    def check(self, value: Any, info: ValidationInfo) -> str:
        postal = super().check(value, info)
        if not postal:
            return postal
        digits = postal.replace("-", "").replace("ー", "").translate(
            str.maketrans("０１２３４５６７８９", "0123456789"))
        if not re.fullmatch(r"\d{7}", digits):
            raise refuse(N_("A postal code has seven digits, like 540-0008."))
        return f"{digits[:3]}-{digits[3:]}"

    def schema(self) -> dict[str, Any]:
        mark = "[-ー0-9０-９]"
        return nullable({"type": "string", "allOf": [
            {"pattern": one_line(self.limit, letter=mark, inner=mark)},
            {"pattern": f"^[{SPACE}]*(?:(?:[-ー]*[0-9０-９]){{7}}[-ー]*)?[{SPACE}]*$"}]})


@dataclass(frozen=True)
class Phone(Line):
    """Six to twenty digits, +, -, parentheses and spaces."""

    limit: int = 20

    def check(self, value: Any, info: ValidationInfo) -> str:
        phone = super().check(value, info)
        if phone and not re.fullmatch(r"[0-9０-９+\-() ]{6,20}", phone):
            raise refuse(N_("Enter a phone number with digits only."))
        return phone

    def schema(self) -> dict[str, Any]:
        mark = "0-9０-９+()"
        return nullable({"type": "string", "pattern": one_line(
            self.limit, letter=f"[{mark}-]", inner=f"[{mark} -]", shortest=6)})


@dataclass(frozen=True)
class Needs(Rule):
    """Needs from the list, each once, in the list's order."""

    before: ClassVar[bool] = True

    def check(self, value: Any, info: ValidationInfo) -> list[str]:
        if not isinstance(value, list) or any(n not in NEEDS for n in value):
            raise refuse(N_("Unknown need."))
        return [n for n in NEEDS if n in value]

    def schema(self) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class Members(Rule):
    """One to twenty people."""

    before: ClassVar[bool] = True

    def check(self, value: Any, info: ValidationInfo) -> list[Any]:
        if not isinstance(value, list) or not value:
            raise refuse(NOBODY)
        if len(value) > MAX_MEMBERS:
            raise refuse(N_("At most 20 people can register as one household."))
        return value

    def schema(self) -> dict[str, Any]:
        return {"minItems": 1, "maxItems": MAX_MEMBERS}


def _allergies_with_the_need(schema: dict[str, Any]) -> None:
    schema["if"] = {"required": ["needs"],
                    "properties": {"needs": {"contains": {"const": "allergy"}}}}
    schema["then"] = {"required": ["allergies"], "properties": {"allergies": {
        "type": "string", "pattern": one_line(TEXT_LIMIT, required=True)}}}


class PersonIn(Body):
    """One member of the household."""

    model_config = ConfigDict(json_schema_extra=_allergies_with_the_need)

    family_name: Annotated[str, Line(NAME_LIMIT, required=True)]
    given_name: Annotated[str, Line(NAME_LIMIT)] = ""
    family_name_kana: Annotated[str, Kana(japanese=True)] = ""
    given_name_kana: Annotated[str, Kana()] = ""
    birth_date: Annotated[str, BirthDate()]
    sex: Annotated[Sex, Choice(SEXES)] = "unanswered"
    needs: Annotated[list[Need], Needs()] = []
    allergies: Annotated[str, Line(TEXT_LIMIT)] = ""
    medication: Annotated[str, Line(TEXT_LIMIT)] = ""

    @field_validator("allergies")
    @classmethod
    def _allergies_of_an_allergy(cls, allergies: str, info: ValidationInfo) -> str:
        if not allergies and "allergy" in info.data.get("needs", ()):
            raise refuse(REQUIRED)
        return allergies

    @model_validator(mode="after")
    def _allergies_mean_an_allergy(self) -> Self:
        if self.allergies and "allergy" not in self.needs:
            self.needs = cast(list[Need], [n for n in NEEDS if n in self.needs or n == "allergy"])
        return self


def _kana_in_japanese(schema: dict[str, Any]) -> None:
    schema["if"] = {"properties": {"language": {"const": "ja"}}}  # also when it is missing
    schema["then"] = {"properties": {"members": {"items": {
        "required": ["family_name_kana"],
        "properties": {"family_name_kana": {
            "type": "string", "pattern": kana_line(KANA_LIMIT, required=True)}}}}}}


class HouseholdIn(Body):
    """A registration: the household and its members. Furigana of the family name is
    required when it registers in Japanese; an allergy needs its allergies written."""

    model_config = ConfigDict(json_schema_extra=_kana_in_japanese)
    missing: ClassVar[dict[str, Refusal]] = {
        "whereabouts": Refusal("invalid", CHOOSE), "consent": Refusal("invalid", CHOOSE),
        "members": Refusal("invalid", NOBODY), "birth_date": Refusal("invalid", DATE_FORMAT),
    }
    not_object: ClassVar[dict[str, Refusal]] = {
        "members": Refusal("invalid", N_("Each person must be an object."))}
    summary: ClassVar[Refusal | None] = Refusal("invalid", N_("Some fields need attention."))

    language: Annotated[Language, Choice(LANGUAGES, N_("Unknown language."))] = "ja"
    address: Annotated[str, Line(TEXT_LIMIT)] = ""  # tourists, no fixed address
    postal_code: Annotated[str, Postal()] = ""
    phone: Annotated[str, Phone()] = ""
    whereabouts: Annotated[Whereabouts, Choice(WHEREABOUTS)]
    consent: Annotated[Consent, Choice(CONSENTS)]
    members: Annotated[list[PersonIn], Members()]
    pets: Annotated[str, Line(TEXT_LIMIT)] = ""  # "a dog (small), a cat"

    @classmethod
    def registration(cls, data: Any, today: date | None = None) -> dict[str, Any]:
        """The clean form of a registration, or InvalidBody. Furigana is required or not
        by the language it names (Japanese when that is missing or not one we know)."""
        language = data.get("language", "ja") if isinstance(data, dict) else "ja"
        context = {"language": language if language in LANGUAGES else "ja",
                   "today": today or today_jst()}
        return cls.checked(data, context).model_dump()


class RegisteredMember(TypedDict):
    person_id: str
    display_name: NotRequired[str]
    code: str  # the QR payload (SHC1...)
    short_code: str  # the typed fallback, 7KQ3-M9TX


class Registered(TypedDict):
    """A household registered: its id and each member's card codes."""

    household_id: str
    registered_at: NotRequired[str]
    members: list[RegisteredMember]


# Numbers of the members in a household code (shelter/domain/household_code.py): 0 to 254.
MAX_SEQ = 254
# A ULID (shelter.core.ids.ULID_RE) within its 128 bits: 7ZZZZZZZZZ is its latest time.
ULID_PATTERN = r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$"
NOT_A_HOUSEHOLD_ID = N_("This is not the id of a household code.")
NOT_SEQS = N_("Give each member's number in the earlier code, from 0 to 254.")


@dataclass(frozen=True)
class HouseholdId(Rule):
    """The id of the household code this one replaces (a ULID), or nothing: a new one."""

    def check(self, value: Any, info: ValidationInfo) -> str:
        if value is None or value == "":
            return ""
        if not isinstance(value, str) or not re.fullmatch(ULID_PATTERN, value):
            raise refuse(NOT_A_HOUSEHOLD_ID)
        return value

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "pattern": ULID_PATTERN}, {"enum": ["", None]}]}


def _whole(value: Any, most: int) -> int | None:
    """A whole number from 0 to ``most`` (1.0 too, as JSON Schema's integers), else None."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= most:
        return value
    return None


@dataclass(frozen=True)
class Seqs(Rule):
    """The members' numbers in the code this one replaces, in the order of ``members``;
    null for a member added since. Missing or null: 0, 1, 2..."""

    def check(self, value: Any, info: ValidationInfo) -> list[int | None] | None:
        if value is None:
            return None
        if not isinstance(value, list) or len(value) > MAX_MEMBERS:
            raise refuse(NOT_SEQS)
        seqs = [None if s is None else _whole(s, MAX_SEQ) for s in value]
        if any(s is None for s, sent in zip(seqs, value, strict=True) if sent is not None):
            raise refuse(NOT_SEQS)
        return seqs

    def schema(self) -> dict[str, Any]:
        return nullable({"type": "array", "maxItems": MAX_MEMBERS, "items": {"anyOf": [
            {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}, {"type": "null"}]}})


@dataclass(frozen=True)
class NextSeq(Rule):
    """The number the code this one replaces would give a member added next (its
    ``next_seq``): a member removed since never lends a new one their number."""

    def check(self, value: Any, info: ValidationInfo) -> int:
        if value is None:
            return 0
        seq = _whole(value, MAX_SEQ + 1)
        if seq is None:
            raise refuse(NOT_SEQS)
        return seq

    def schema(self) -> dict[str, Any]:
        return nullable({"type": "integer", "minimum": 0, "maximum": MAX_SEQ + 1})


class HouseholdCodeIn(HouseholdIn):
    """What POST /api/v1/household-codes makes a code of: a registration as for POST
    /api/v1/households, and, to replace an earlier code, its ``household_id``, the
    members' ``seqs`` in it and its ``next_seq`` (docs/household-code.md)."""

    household_id: Annotated[str, HouseholdId()] = ""
    seqs: Annotated[list[int | None] | None, Seqs()] = None
    next_seq: Annotated[int, NextSeq()] = 0

    @classmethod
    def for_code(cls, data: Any, today: date | None = None
                 ) -> tuple[dict[str, Any], str | None, list[int | None] | None, int]:
        """The clean registration, and the earlier code's id, numbers and next number."""
        clean = cls.registration(data, today)
        household_id, seqs = clean.pop("household_id") or None, clean.pop("seqs")
        return clean, household_id, seqs, clean.pop("next_seq")


class CodeMade(TypedDict):
    """A household code (format: docs/household-code.md), made and kept nowhere."""

    code: str
