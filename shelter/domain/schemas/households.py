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
TEXT_LIMIT = 200  # an address, allergies
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
        if born > ((info.context or {}).get("today") or date.today()):
            raise refuse(N_("The birth date cannot be in the future."))
        if born.year < 1900:
            raise refuse(N_("Check the year of birth."))
        return born.isoformat()

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "pattern": dates_up_to(date.today())}  # YYYY-MM-DD


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
    address: Annotated[str, Line(TEXT_LIMIT, required=True)]
    postal_code: Annotated[str, Postal()] = ""
    phone: Annotated[str, Phone()] = ""
    whereabouts: Annotated[Whereabouts, Choice(WHEREABOUTS)]
    consent: Annotated[Consent, Choice(CONSENTS)]
    members: Annotated[list[PersonIn], Members()]

    @classmethod
    def registration(cls, data: Any, today: date | None = None) -> dict[str, Any]:
        """The clean form of a registration, or InvalidBody. Furigana is required or not
        by the language it names (Japanese when that is missing or not one we know)."""
        language = data.get("language", "ja") if isinstance(data, dict) else "ja"
        context = {"language": language if language in LANGUAGES else "ja",
                   "today": today or date.today()}
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
