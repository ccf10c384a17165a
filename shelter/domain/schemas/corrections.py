"""What staff correct (shelter/domain/corrections.py), in the words of a registration: a
household's facts and a person's are the fields of ``HouseholdIn`` and ``PersonIn``, with
the same rules, taken from those shapes rather than declared again. The correction events
carry only the fields that changed (``changes``); HQ checks each value with the rule the
node's form used (``canonical``), so a value the form would not have made is refused."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from pydantic import TypeAdapter, ValidationError, create_model
from typing_extensions import TypedDict

from shelter.core.clock import today_jst
from shelter.domain.schemas.fields import Body
from shelter.domain.schemas.households import HouseholdIn, PersonIn

# A household's facts: everything of a registration but its members.
HOUSEHOLD_FIELDS = ("address", "postal_code", "phone", "whereabouts", "consent", "language",
                    "pets")
# A person's: everything the registration form asks of them.
PERSON_FIELDS = tuple(PersonIn.model_fields)
NAME_FIELDS = ("family_name", "given_name", "family_name_kana", "given_name_kana")


def _annotated(model: type[Body], name: str) -> Any:
    field = model.model_fields[name]
    return Annotated[(field.annotation, *field.metadata)]


def _facts() -> type[Body]:
    fields: dict[str, Any] = {}
    for name in HOUSEHOLD_FIELDS:
        field = HouseholdIn.model_fields[name]
        default = ... if field.is_required() else field.default
        fields[name] = (_annotated(HouseholdIn, name), default)
    return create_model("HouseholdFactsIn", __base__=Body,
                        __doc__="A household's facts, as the registration has them.", **fields)


HouseholdFactsIn = _facts()
# One check per field, for the values a correction event carries.
_RULES: dict[str, dict[str, TypeAdapter[Any]]] = {
    "household": {n: TypeAdapter(_annotated(HouseholdIn, n)) for n in HOUSEHOLD_FIELDS},
    "person": {n: TypeAdapter(_annotated(PersonIn, n)) for n in PERSON_FIELDS},
}


def canonical(kind: str, changes: Any) -> str | None:
    """The first field of ``changes`` (a household's or a person's, by ``kind``) that is
    not one of its fields, or not a value its rule would have made; None when all are.
    Furigana is not required here (the form asked for it where the language needs it)."""
    if not isinstance(changes, dict) or not changes:
        return "changes"
    rules = _RULES[kind]
    context = {"language": "en", "today": today_jst() + timedelta(days=2)}
    for name, value in changes.items():
        if name not in rules:
            return f"changes.{name}"
        try:
            clean = rules[name].validate_python(value, context=context)
        except ValidationError:
            return f"changes.{name}"
        if clean != value:
            return f"changes.{name}"
    return None


class HouseholdCorrected(TypedDict):
    """``household_corrected``: what staff changed of a household's facts."""

    household_id: str
    shelter_id: str
    changes: dict[str, Any]  # HOUSEHOLD_FIELDS that changed, each as its rule cleans it


class PersonCorrected(TypedDict):
    """``person_corrected``: what staff changed of a person (PERSON_FIELDS; with a name,
    ``card_code``: their card signed again with the new name)."""

    person_id: str
    household_id: str
    shelter_id: str
    changes: dict[str, Any]


class PersonAdded(TypedDict):
    """``person_added``: members who joined a registered household (a newborn), each as a
    registration's member: PersonIn's fields, ``person_id``, ``short_code``, ``card_code``."""

    household_id: str
    shelter_id: str
    members: list[dict[str, Any]]
