"""The supplies' shapes: a stock movement (POST /api/v1/stock-movements), a request to HQ
(POST /api/v1/supply-requests), and the stock and requests the API answers.

The shape is what can be said without the books: whether an item exists, whether there is
enough of it, whether a count differs from the books (and so needs a reason), and whom a
card names, ``stock.move`` and ``supply_requests.request_supplies`` decide, with the checks
of ``shelter.domain.supplies`` that these rules share."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, NotRequired

from pydantic import ConfigDict, ValidationInfo, field_validator
from typing_extensions import TypedDict

from shelter.core.errors import N_
from shelter.domain.schemas.desk import Code
from shelter.domain.schemas.fields import (
    Body,
    Choice,
    Flag,
    Line,
    Refusal,
    Rule,
    Unread,
    When,
    nullable,
    refuse,
)
from shelter.domain.schemas.patterns import numeral, one_line
from shelter.domain.stock import KINDS, SOURCES
from shelter.domain.supplies import MAX_QUANTITY, SupplyError, checked_date, checked_quantity
from shelter.domain.supply_requests import MAX_LINES, REQUEST_STATUSES, URGENCIES
from shelter.domain.text import ascii_digits

UNKNOWN_ITEM = Refusal("unknown_item", N_("There is no such item. Choose one from the list, "
                                          "or add it first."))
NO_LINES = Refusal("invalid_lines", N_("Ask for at least one item."))
WHAT_HAPPENED = Refusal("invalid_kind", N_("Choose what happened: received, handed out, "
                                           "transferred, counted or discarded."))
NUMBER = Refusal("invalid_quantity", N_("Enter a whole number of units."))


def _shared(check: Callable[[], Any]) -> Any:
    """A check of shelter.domain.supplies, its refusal said as a field's."""
    try:
        return check()
    except SupplyError as refused:
        raise refuse(refused.message, refused.code) from None


@dataclass(frozen=True)
class ItemId(Rule):
    """An item's id (which items exist, the catalog says)."""

    def check(self, value: Any, info: ValidationInfo) -> str:
        if not isinstance(value, str) or not value:
            raise refuse(UNKNOWN_ITEM.message, UNKNOWN_ITEM.code)
        return value

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "minLength": 1}


@dataclass(frozen=True)
class Quantity(Rule):
    """A whole number of units, up to a million; more than none, or none with ``zero``
    (a stocktake's). A numeral in a string (a form's) is read too, in full-width digits as
    well (a Japanese keyboard's ５０), and so is 5.0: JSON says no difference between 5 and
    5.0, so neither does the document."""

    zero: bool = False

    def check(self, value: Any, info: ValidationInfo) -> int:
        zero = self.zero and info.data.get("kind") == "counted"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, str):
            value = ascii_digits(value, hyphens=False)
        return int(_shared(lambda: checked_quantity(value, allow_zero=zero)))

    def schema(self) -> dict[str, Any]:
        least = 0 if self.zero else 1
        return {"anyOf": [{"type": "integer", "minimum": least, "maximum": MAX_QUANTITY},
                          {"type": "string", "pattern": _wide(numeral(least, MAX_QUANTITY))}]}


_PATTERN_PARTS = re.compile(r"\\u[0-9a-fA-F]{4}|\\.|\{[^}]*\}|\[(?:\\.|[^\]\\])*\]|[0-9]")
_CLASS_PARTS = re.compile(r"\\u[0-9a-fA-F]{4}|\\.|([0-9])-([0-9])|([0-9])")


def _wide_digit(digit: str) -> str:
    return chr(0xFF10 + int(digit))


def _wide(pattern: str) -> str:
    """``pattern`` with each ASCII digit it matches also matching its full-width twin
    (``[1-9]`` becomes ``[1-9１-９]``, ``1`` ``[1１]``); counts in braces stay as they are."""
    def widen_class(body: str) -> str:
        extra = []
        for part in _CLASS_PARTS.finditer(body):
            if part.group(1):
                extra.append(f"{_wide_digit(part.group(1))}-{_wide_digit(part.group(2))}")
            elif part.group(3):
                extra.append(_wide_digit(part.group(3)))
        return f"[{body}{''.join(extra)}]"

    def widen(part: re.Match[str]) -> str:
        text = part.group(0)
        if text.isdigit():
            return f"[{text}{_wide_digit(text)}]"
        return widen_class(text[1:-1]) if text.startswith("[") else text

    return _PATTERN_PARTS.sub(widen, pattern)


@dataclass(frozen=True)
class Expiry(Rule):
    """A use-by date, year-month-day; empty when there is none."""

    def check(self, value: Any, info: ValidationInfo) -> str:
        return str(_shared(lambda: checked_date(value, "expires_on")))

    def schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "format": "date"}, {"const": ""},
                          {"type": "null"}]}


def _what_each_kind_needs(schema: dict[str, Any]) -> None:
    def needs(kind: str, field: str) -> dict[str, Any]:
        return {"if": {"required": ["kind"], "properties": {"kind": {"const": kind}}},
                "then": {"required": [field],
                         "properties": {field: {"type": "string",
                                                "pattern": one_line(200, True)}}}}

    schema["allOf"] = [
        {"if": {"properties": {"kind": {"not": {"const": "counted"}}}},
         "then": {"properties": {"quantity": Quantity().schema()}}},
        needs("discarded", "reason")]


class StockMovementIn(Body):
    """One movement of an item: received (with its source, lot and use-by date), handed
    out (to the household of a card or short code, or for general use), transferred (to
    which shelter), counted (the number found, 0 allowed; a reason when it differs from
    the books) or discarded (why). More than is on hand: a manager's ``override``, with a
    reason; a rationed item again within its window: ``confirm_repeat``."""

    model_config = ConfigDict(json_schema_extra=_what_each_kind_needs)
    missing: ClassVar[dict[str, Refusal]] = {
        "kind": WHAT_HAPPENED, "item_id": UNKNOWN_ITEM, "quantity": NUMBER}

    kind: Annotated[str, Choice(KINDS, WHAT_HAPPENED.message, WHAT_HAPPENED.code)]
    item_id: Annotated[str, ItemId()]
    quantity: Annotated[int, Quantity(zero=True)]
    lot: Annotated[str, Line(40, code="invalid_text")] = ""
    reason: Annotated[str, Line(200, code="invalid_text")] = ""
    override: Annotated[bool, Flag()] = False
    source: Annotated[Any, When(("received",), Choice(
        SOURCES, N_("Choose where it came from."), "invalid_source", blank="other"))] = None
    expires_on: Annotated[Any, When(("received",), Expiry())] = None
    code: Annotated[Any, When(("distributed",), Code(optional=True))] = None
    household_id: Annotated[Any, Unread(nullable({"type": "string"}))] = None
    destination: Annotated[Any, When(("transferred",), Line(
        80, required=True, code="invalid_text",
        empty=Refusal("destination_required", N_("Say which shelter it goes to."))))] = ""
    confirm_repeat: Annotated[bool, Flag()] = False

    @classmethod
    def read(cls, data: Any) -> dict[str, Any]:
        """``data`` as ``stock.move`` takes it: as sent, once it has this shape, with its
        quantity as read here; or InvalidBody."""
        return {**data, "quantity": cls.checked(data).quantity}

    @field_validator("reason")
    @classmethod
    def _why_discarded(cls, reason: str, info: ValidationInfo) -> str:
        if info.data.get("kind") == "discarded" and not reason:
            raise refuse(N_("Say why it is discarded (expired, damaged)."), "reason_required")
        return reason


class LineIn(Body):
    item_id: Annotated[str, ItemId()]
    quantity: Annotated[int, Quantity()]


@dataclass(frozen=True)
class Lines(Rule):
    """One to forty lines, each item once."""

    before: ClassVar[bool] = True

    def check(self, value: Any, info: ValidationInfo) -> list[Any]:
        if not isinstance(value, list) or not value or len(value) > MAX_LINES:
            raise refuse(NO_LINES.message, NO_LINES.code)
        return value

    def schema(self) -> dict[str, Any]:
        return {"minItems": 1, "maxItems": MAX_LINES}


class SupplyRequestIn(Body):
    """What to ask HQ for: lines of item and quantity (each item once), how urgent, and a
    note."""

    missing: ClassVar[dict[str, Refusal]] = {
        "lines": NO_LINES, "item_id": UNKNOWN_ITEM, "quantity": NUMBER}
    not_object: ClassVar[dict[str, Refusal]] = {"lines": NO_LINES}

    lines: Annotated[list[LineIn], Lines()]
    urgency: Annotated[str, Choice(URGENCIES, code="invalid_urgency", blank="normal")] = \
        "normal"
    note: Annotated[str, Line(500, code="invalid_text")] = ""

    @classmethod
    def read(cls, data: Any) -> dict[str, Any]:
        """``data`` as ``request_supplies`` takes it, its lines as read here; or
        InvalidBody."""
        return {**data, "lines": [line.model_dump() for line in cls.checked(data).lines]}

    @field_validator("lines")
    @classmethod
    def _each_item_once(cls, lines: list[LineIn]) -> list[LineIn]:
        seen: set[str] = set()
        for index, line in enumerate(lines):
            if line.item_id in seen:
                raise refuse(N_("Each item once per request."), "duplicate_line",
                             at=f"lines.{index}.item_id")
            seen.add(line.item_id)
        return lines


class Lot(TypedDict):
    lot: str
    expires_on: str
    on_hand: int


class StockItem(TypedDict):
    """One item's stock; ``days_of_supply`` at today's headcount (null: nobody to supply)."""

    item_id: str
    name: str
    name_ja: NotRequired[str]
    unit: str
    on_hand: int
    days_of_supply: float | None
    daily_need: NotRequired[float | None]
    consumed_24h: NotRequired[int]
    low: NotRequired[bool]
    lots: NotRequired[list[dict[str, Any]]]
    suggested_lot: NotRequired[str | None]


class Stock(TypedDict):
    items: list[StockItem]
    population: NotRequired[dict[str, int]]
    low_stock_days: NotRequired[float]


class Movement(TypedDict):
    movement_id: str
    lot: str
    delta: int


class Moved(TypedDict):
    """A movement recorded (one per lot it touched), and the item's stock after it."""

    movements: list[Movement]
    item: StockItem


class SupplyRequest(TypedDict):
    request_id: str
    status: Annotated[str, Choice(REQUEST_STATUSES)]
    urgency: NotRequired[Annotated[str, Choice(URGENCIES)]]
    lines: list[dict[str, Any]]
    dispatched: NotRequired[list[dict[str, Any]] | None]
    received: NotRequired[list[dict[str, Any]] | None]
    expected_arrival: NotRequired[str | None]
    history: NotRequired[list[dict[str, Any]] | None]


class SupplyRequests(TypedDict):
    requests: list[SupplyRequest]
