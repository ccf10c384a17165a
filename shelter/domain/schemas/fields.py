"""What the shapes are made of: rules for one field, each carrying its check and its JSON
Schema side by side, and the turning of pydantic's refusals into one message per field.

A rule's check is the truth, and its schema says exactly what the check accepts (spaces
around a line included: ``patterns``), so that the document neither calls valid what is
refused nor invalid what is taken. A flag is documented as a boolean, though any value is
read for its truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, NotRequired, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    ValidationError,
    ValidationInfo,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema
from typing_extensions import TypedDict

from shelter.core.errors import N_, InvalidInput
from shelter.domain.schemas.patterns import one_line
from shelter.domain.text import clean_line

REQUIRED = N_("This field is required.")
NOT_TEXT = N_("Too long or not valid text.")


class Refusal(NamedTuple):
    code: str
    message: str  # an English message id


def refuse(message: str, code: str = "invalid", at: str | None = None) -> PydanticCustomError:
    """A field's refusal: ``code`` is what the API answers, ``message`` a message id;
    ``at``, where a check of a whole list names one of its items (``lines.1.item_id``)."""
    return PydanticCustomError(code, message, {"at": at} if at else None)


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}]}


# What a person would call empty, read as nothing: "", null, false, 0, [], {}.
BLANK: list[dict[str, Any]] = [{"enum": ["", None, False, 0]}, {"type": "array", "maxItems": 0},
                               {"type": "object", "maxProperties": 0}]


class Rule:
    """One field's rule. ``check`` gets the value as sent (a plain rule) or checks it before
    the annotated type's own validation (``before``); ``schema`` is what the document says."""

    before: ClassVar[bool] = False

    def check(self, value: Any, info: ValidationInfo) -> Any:
        raise NotImplementedError

    @property
    def needs_value(self) -> bool:
        """Whether nothing (missing, null, "") is refused."""
        return False

    def schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def __get_pydantic_core_schema__(self, source: Any,
                                     handler: GetCoreSchemaHandler) -> CoreSchema:
        if self.before:
            return core_schema.with_info_before_validator_function(self.check, handler(source))
        return core_schema.with_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(self, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        if self.before:
            return {**handler(schema), **self.schema()}
        return self.schema()


@dataclass(frozen=True)
class Line(Rule):
    """One line of someone's text: stripped, NFC, no control characters, at most ``limit``
    long; missing or null reads as empty, which ``required`` refuses."""

    limit: int
    required: bool = False
    code: str = "invalid"
    empty: Refusal | None = None  # what empty is told, when not "This field is required."

    def check(self, value: Any, info: ValidationInfo) -> str:
        text = clean_line("" if value is None else value, self.limit)
        if text is None:
            raise refuse(NOT_TEXT, self.code)
        if self.required and not text:
            empty = self.empty or Refusal(self.code, REQUIRED)
            raise refuse(empty.message, empty.code)
        return text

    @property
    def needs_value(self) -> bool:
        return self.required

    def schema(self) -> dict[str, Any]:
        text = {"type": "string", "pattern": one_line(self.limit, self.required)}
        return text if self.required else nullable(text)


@dataclass(frozen=True)
class Choice(Rule):
    """One of ``options``; with ``blank``, what is empty (missing, null, "") means that."""

    options: tuple[str, ...]
    message: str = N_("Choose one of the options.")
    code: str = "invalid"
    blank: str | None = None

    def check(self, value: Any, info: ValidationInfo) -> str:
        if self.blank is not None and not value:
            return self.blank
        if not isinstance(value, str) or value not in self.options:
            raise refuse(self.message, self.code)
        return value

    @property
    def needs_value(self) -> bool:
        return self.blank is None

    def schema(self) -> dict[str, Any]:
        choice = {"type": "string", "enum": list(self.options)}
        return {"anyOf": [choice, *BLANK]} if self.blank is not None else choice


@dataclass(frozen=True)
class When(Rule):
    """``rule``, where the body's ``kind`` field (``key``) is one of ``kinds``; elsewhere
    the field is not read, and anything goes (``Body`` puts each condition in the
    document)."""

    kinds: tuple[str, ...]
    rule: Rule
    key: str = "kind"

    def check(self, value: Any, info: ValidationInfo) -> Any:
        if info.data.get(self.key) in self.kinds:
            return self.rule.check(value, info)
        return value

    def schema(self) -> dict[str, Any]:
        return {}  # anything; the body's schema says what, where it is read (``condition``)

    def condition(self, field: str) -> dict[str, Any]:
        then: dict[str, Any] = {"properties": {field: self.rule.schema()}}
        if self.rule.needs_value:
            then["required"] = [field]
        return {"if": {"required": [self.key], "properties": {self.key: {
                    "enum": list(self.kinds)}}}, "then": then}


class Unread(Rule):
    """A field this shape does not check (the domain reads it as it likes); the document
    says ``described``."""

    def __init__(self, described: dict[str, Any]) -> None:
        self.described = described

    def check(self, value: Any, info: ValidationInfo) -> Any:
        return value

    def schema(self) -> dict[str, Any]:
        return self.described


@dataclass(frozen=True)
class Flag(Rule):
    """Yes or no: anything a person would call empty is no."""

    def check(self, value: Any, info: ValidationInfo) -> bool:
        return bool(value)

    def schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class InvalidBody(InvalidInput, ValueError):
    """A request body that does not have its shape (422): ``fields`` maps each field that
    needs attention (``members.0.birth_date``) to a message id; ``code`` and ``message``
    sum them up."""

    def __init__(self, code: str, message: str, fields: dict[str, str]) -> None:
        super().__init__(message, code=code, fields=fields,
                         detail="; ".join(f"{k}: {v}" for k, v in fields.items()))


NOT_AN_OBJECT = Refusal("invalid", N_("The request body must be a JSON object."))


class Body(BaseModel):
    """A request body. Unknown keys are ignored; defaults go through the checks too (a
    missing field is checked as its default, as the API always did). ``missing`` and
    ``not_object`` say what a missing field, or a list entry that is no object, is told;
    ``summary`` is the answer's code and message when any field is refused (without one,
    the first refused field's)."""

    model_config = ConfigDict(extra="ignore", validate_default=True)
    missing: ClassVar[dict[str, Refusal]] = {}
    not_object: ClassVar[dict[str, Refusal]] = {}
    summary: ClassVar[Refusal | None] = None

    @classmethod
    def __get_pydantic_json_schema__(cls, schema: CoreSchema,
                                     handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The model's schema, with what each field read only for some kinds says there."""
        json_schema = handler.resolve_ref_schema(handler(schema))
        conditions = [rule.condition(name) for name, field in cls.model_fields.items()
                      for rule in field.metadata if isinstance(rule, When)]
        if conditions:
            json_schema["allOf"] = [*json_schema.get("allOf", []), *conditions]
        return json_schema

    @classmethod
    def checked(cls, data: Any, context: dict[str, Any] | None = None) -> Self:
        """``data`` as this shape, or InvalidBody with a message for every field at once."""
        try:
            return cls.model_validate(data, context=context)
        except ValidationError as invalid:
            refusals = cls.refusals(invalid)
        fields = {key: refusal.message for key, refusal in refusals.items()}
        first = next(iter(refusals.values()))
        code, message = cls.summary or first
        raise InvalidBody(code, message, fields)

    @classmethod
    def refusals(cls, invalid: ValidationError) -> dict[str, Refusal]:
        found: dict[str, Refusal] = {}
        for error in invalid.errors():
            loc = error["loc"]
            key = (error.get("ctx") or {}).get("at") or ".".join(str(p) for p in loc) or "body"
            name = next((str(p) for p in reversed(loc) if isinstance(p, str)), "")
            if error["type"] == "missing":
                refusal = cls.missing.get(name, Refusal("invalid", REQUIRED))
            elif error["type"] in ("model_type", "model_attributes_type", "dict_type"):
                refusal = cls.not_object.get(name, NOT_AN_OBJECT) if loc else NOT_AN_OBJECT
            elif "url" in error:  # pydantic's own, which a rule here should have said
                refusal = Refusal("invalid", NOT_TEXT)
            else:  # a rule's: its code and message id
                refusal = Refusal(error["type"], error["msg"])
            found.setdefault(key, refusal)
        return found


class ErrorDetail(TypedDict):
    code: str  # stable, snake_case: what a program acts on
    message: str  # in the language of the request
    fields: NotRequired[dict[str, str]]  # a message per field that needs attention
    confirm_with: NotRequired[dict[str, bool]]  # send again with these to go ahead


class Error(TypedDict):
    """Every refusal: a 4xx with this body, never a stack trace."""

    error: ErrorDetail
