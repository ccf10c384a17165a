"""Supplies: what the supplies modules share, the error they raise, Japan time, and the
checks every supplies input goes through. The rest is in its own module:

    catalog          the items a shelter stocks, their daily norms and ration windows
    stock            stock by lot, movements (received, handed out, counted...), days of supply
    supply_requests  requests to HQ and their life (requested, acknowledged, dispatched, received)
    day_notes        notes for the daily report

Every change is an event, written and projected through the core's pipeline.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sqlite_utils import Database

from shelter.core.clock import JST, today_jst  # noqa: F401  (re-exported: JST, today_jst)
from shelter.core.errors import InvalidInput
from shelter.domain.households import N_
from shelter.domain.text import clean_line

MAX_QUANTITY = 1_000_000


class SupplyError(InvalidInput):
    """Refused input; nothing was written. ``message`` is an English message id; ``status``
    the HTTP status that fits (422; 409 for not enough stock, 403 for an override only a
    manager may make, 404 for an unknown request); ``field`` the form field at fault."""

    def __init__(self, code: str, status: int, message: str, field: str = "",
                 **params: Any) -> None:
        super().__init__(message, code=code, status=status, detail=code,
                         fields={field: message} if field else None, **params)
        self.field = field

    def extra(self) -> dict[str, Any]:
        # A repeat collection goes ahead when the same movement says it is meant.
        return {"confirm_with": {"confirm_repeat": True}} \
            if self.code == "collected_recently" else {}



# --- the checks on input -------------------------------------------------------------------

def checked_quantity(value: Any, field: str = "quantity", allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SupplyError("invalid_quantity", 422, N_("Enter a whole number of units."), field)
    text = str(value).strip()
    if not re.fullmatch(r"-?[0-9]{1,9}", text):
        raise SupplyError("invalid_quantity", 422, N_("Enter a whole number of units."), field)
    number = int(text)
    if number < (0 if allow_zero else 1):
        raise SupplyError("invalid_quantity", 422, N_("The quantity must be more than zero."),
                          field)
    if number > MAX_QUANTITY:
        raise SupplyError("invalid_quantity", 422, N_("That quantity is not plausible. "
                                                      "Check the number."), field)
    return number


def checked_text(value: Any, limit: int, field: str) -> str:
    text = clean_line(value if value is not None else "", limit)
    if text is None:
        raise SupplyError("invalid_text", 422, N_("Too long or not valid text."), field)
    return text


def checked_item(db: Database, item_id: Any) -> dict[str, Any]:
    row = next(iter(db.query("SELECT * FROM items WHERE item_id = ?", [str(item_id)])), None) \
        if isinstance(item_id, str) else None
    if row is None:
        raise SupplyError("unknown_item", 422, N_("There is no such item. Choose one from "
                                                  "the list, or add it first."), "item_id")
    return row


def checked_date(value: Any, field: str) -> str:
    if value in (None, ""):
        return ""
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise SupplyError("invalid_date", 422, N_("Enter the date as year-month-day."),
                          field) from None
