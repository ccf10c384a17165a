"""The supply catalog: the items a shelter stocks, each with its unit, the daily norm per
person of its audience (everyone, infants, elderly) and, for rationed items, the hours before
a household may collect again. HQ checks a new item's fields before it takes it in.
"""

from __future__ import annotations

import math
from typing import Any

from sqlite_utils import Database

from shelter.core import authority
from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.sql import insert_row
from shelter.domain.households import N_
from shelter.domain.supplies import SupplyError, checked_item, checked_quantity, checked_text

AUDIENCES = ("everyone", "infants", "elderly")


def items(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM items ORDER BY position, name_en"))


def item_name(item: dict[str, Any], lang: str) -> str:
    return str(item["name_ja"] if lang == "ja" else item["name_en"])


def add_item(store: EventStore, data: Any) -> str:
    if not isinstance(data, dict):
        raise SupplyError("invalid", 422, N_("The request body must be a JSON object."))
    name_ja = checked_text(data.get("name_ja"), 40, "name_ja")
    name_en = checked_text(data.get("name_en"), 40, "name_en") or name_ja
    unit = checked_text(data.get("unit"), 12, "unit")
    if not name_ja:
        raise SupplyError("name_required", 422, N_("This field is required."), "name_ja")
    if not unit:
        raise SupplyError("unit_required", 422, N_("This field is required."), "unit")
    norm = _norm(data.get("norm_per_day"))
    audience = data.get("audience") or "everyone"
    if audience not in AUDIENCES:
        raise SupplyError("invalid_audience", 422, N_("Choose one of the options."),
                          "audience")
    ration = checked_quantity(data.get("ration_hours") or 0, "ration_hours", allow_zero=True)
    if store.db.execute("SELECT 1 FROM items WHERE name_ja = ? OR name_en = ?",
                        [name_ja, name_en]).fetchone():
        raise SupplyError("item_exists", 409, N_("An item with this name exists."), "name_ja")
    item_id = new_id()
    store.append("item_added", {"item_id": item_id, "name_ja": name_ja, "name_en": name_en,
                                "unit": unit, "norm_per_day": norm, "audience": audience,
                                "ration_hours": min(ration, 24 * 14)})
    return item_id


def _norm(value: Any) -> float | None:
    if value in (None, ""):
        return None
    try:
        norm = float(str(value).strip())
    except ValueError:
        raise SupplyError("invalid_norm", 422, N_("Enter a number, like 3 or 0.5."),
                          "norm_per_day") from None
    if not math.isfinite(norm) or norm < 0 or norm > 1000:
        raise SupplyError("invalid_norm", 422, N_("Enter a number, like 3 or 0.5."),
                          "norm_per_day")
    return norm or None


def change_norm(store: EventStore, item_id: str, norm: Any, ration_hours: Any) -> None:
    with store.write() as db:
        checked_item(db, item_id)
        store.append("item_changed", {
            "item_id": item_id, "norm_per_day": _norm(norm),
            "ration_hours": min(checked_quantity(ration_hours or 0, "ration_hours", True),
                                24 * 14)})


@projection("item_added")
def _apply_item_added(db: Database, event: Event) -> None:
    p = event.payload
    position = db.execute("SELECT coalesce(max(position), 0) + 1 FROM items").fetchone()[0]
    insert_row(db, "items", {"item_id": p["item_id"], "name_ja": p["name_ja"],
                             "name_en": p["name_en"], "unit": p["unit"],
                             "norm_per_day": p["norm_per_day"], "audience": p["audience"],
                             "ration_hours": p["ration_hours"], "position": position},
               or_ignore=True)


@projection("item_changed")
def _apply_item_changed(db: Database, event: Event) -> None:
    p = event.payload
    db.execute("UPDATE items SET norm_per_day = ?, ration_hours = ? WHERE item_id = ?",
               [p["norm_per_day"], p["ration_hours"], p["item_id"]])


@authority.value_check("item_added")
def _unusable_item(payload: dict[str, Any]) -> str | None:
    """The first field of a new catalog item HQ could not use, or None."""
    text, number = authority.text, authority.number
    checks = {"item_id": text(payload.get("item_id"), 64) and bool(payload.get("item_id")),
              "name_ja": text(payload.get("name_ja"), 100),
              "name_en": text(payload.get("name_en"), 100),
              "unit": text(payload.get("unit"), 20),
              "norm_per_day": number(payload.get("norm_per_day"), 1000),
              "audience": payload.get("audience") in AUDIENCES,
              "ration_hours": isinstance(payload.get("ration_hours"), int)
              and number(payload.get("ration_hours"), 24 * 14)}
    return next((field for field, ok in checks.items() if not ok), None)
