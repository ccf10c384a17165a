"""Supply requests to HQ and their life: the shelter asks (``request_supplies``), HQ
acknowledges and dispatches (arriving through sync), the shelter records what arrived, which
also enters the stock. A late step never moves a request backwards.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlite_utils import Database

from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.sql import insert_row
from shelter.domain.households import N_
from shelter.domain.stock import move, stock
from shelter.domain.supplies import SupplyError, checked_item, checked_quantity, checked_text

URGENCIES = ("normal", "urgent", "critical")
REQUEST_STATUSES = ("requested", "acknowledged", "dispatched", "received")
MAX_LINES = 40


def _lines(db: Database, value: Any, field: str = "lines") -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value or len(value) > MAX_LINES:
        raise SupplyError("invalid_lines", 422, N_("Ask for at least one item."), field)
    lines, seen = [], set()
    for i, line in enumerate(value):
        if not isinstance(line, dict):
            raise SupplyError("invalid_lines", 422, N_("Ask for at least one item."),
                              f"{field}.{i}")
        item = checked_item(db, line.get("item_id"))
        if item["item_id"] in seen:
            raise SupplyError("duplicate_line", 422, N_("Each item once per request."),
                              f"{field}.{i}.item_id")
        seen.add(item["item_id"])
        lines.append({"item_id": item["item_id"],
                      "quantity": checked_quantity(line.get("quantity"), f"{field}.{i}.quantity")})
    return lines


def request_supplies(store: EventStore, shelter_id: str, data: Any, actor: str = "") -> str:
    if not isinstance(data, dict):
        raise SupplyError("invalid", 422, N_("The request body must be a JSON object."))
    with store.write() as db:
        lines = _lines(db, data.get("lines"))
        urgency = data.get("urgency") or "normal"
        if urgency not in URGENCIES:
            raise SupplyError("invalid_urgency", 422, N_("Choose one of the options."),
                              "urgency")
        note = checked_text(data.get("note"), 500, "note")
        request_id = new_id()
        store.append("supply_requested", {"request_id": request_id, "shelter_id": shelter_id,
                                          "lines": lines, "urgency": urgency, "note": note,
                                          "actor": actor})
    return request_id


def acknowledge(store: EventStore, request_id: str, note: str = "") -> None:
    """HQ's step (arrives at the shelter through sync)."""
    store.append("supply_request_acknowledged", {"request_id": request_id, "note": note})


def dispatch(store: EventStore, request_id: str, lines: list[dict[str, Any]],
             expected_arrival: str, note: str = "") -> None:
    """HQ's step (arrives at the shelter through sync): what was sent and when it lands."""
    store.append("supply_dispatched", {"request_id": request_id, "lines": lines,
                                       "expected_arrival": expected_arrival, "note": note})


def receive(store: EventStore, shelter_id: str, request_id: str, data: Any,
            actor: str = "") -> None:
    """The shelter records what actually arrived; each line also enters the stock.

    Only a dispatched request can have arrived: before HQ's dispatch reaches this node a
    receipt is refused (409), unless ``data["unannounced"]`` says a delivery is here anyway
    (HQ dispatched while this node was offline, and the truck came before the sync). Such
    a receipt must name what arrived (nothing is taken from what was asked), and is marked
    as having come without notice."""
    if not isinstance(data, dict):
        raise SupplyError("invalid", 422, N_("The request body must be a JSON object."))
    with store.write() as db:
        row = db.execute("SELECT status FROM supply_requests WHERE request_id = ?",
                         [request_id]).fetchone()
        if row is None:
            raise SupplyError("unknown_request", 404, N_("There is no such request."))
        if row[0] == "received":
            raise SupplyError("already_received", 409, N_("This delivery is already "
                                                          "recorded."))
        unannounced = row[0] != "dispatched"
        if unannounced and data.get("unannounced") is not True:
            raise SupplyError("not_dispatched", 409, N_(
                "HQ has not dispatched this request yet, so nothing can have arrived for "
                "it. If a delivery for it is here anyway, count it and record it under "
                "“The delivery is here, but HQ’s notice has not reached this node”."))
        raw = [line for line in data.get("lines") or [] if isinstance(line, dict)
               and str(line.get("quantity", "0")).strip() not in ("", "0")]
        lines = _lines(db, raw) if raw else []
        if unannounced and not lines:
            raise SupplyError("nothing_arrived", 422, N_(
                "Enter how many of each item actually arrived."), "lines")
        note = checked_text(data.get("note"), 500, "note")
        store.append("supply_request_received", {"request_id": request_id, "lines": lines,
                                                 "note": note, "actor": actor,
                                                 "unannounced": unannounced})
        for line in lines:
            move(store, shelter_id, {"item_id": line["item_id"], "kind": "received",
                                     "quantity": line["quantity"], "source": "hq_shipment",
                                     "request_id": request_id,
                                     "lot": data.get("lot") or ""}, actor)


def _step(db: Database, event: Event, status: str, mark: dict[str, Any] | None = None,
          **columns: Any) -> None:
    row = db.execute("SELECT history, status FROM supply_requests WHERE request_id = ?",
                     [event.payload["request_id"]]).fetchone()
    if row is None:
        return  # a step for a request this store never saw (HQ data from elsewhere)
    history = json.loads(row[0])
    history.append({"status": status, "at": event.recorded_at,
                    "note": event.payload.get("note", ""), **(mark or {})})
    # A late step never moves a request backwards.
    order = REQUEST_STATUSES.index
    new_status = status if order(status) >= order(row[1]) else row[1]
    sets = ", ".join(f"{k} = ?" for k in columns)
    db.execute(f"UPDATE supply_requests SET status = ?, updated_at = ?, history = ?"
               f"{', ' + sets if sets else ''} WHERE request_id = ?",
               [new_status, event.recorded_at, json.dumps(history, ensure_ascii=False),
                *columns.values(), event.payload["request_id"]])


@projection("supply_requested")
def _apply_supply_requested(db: Database, event: Event) -> None:
    p = event.payload
    insert_row(db, "supply_requests", {
        "request_id": p["request_id"], "shelter_id": p["shelter_id"], "status": "requested",
        "urgency": p["urgency"], "note": p["note"], "lines": json.dumps(p["lines"]),
        "requested_at": event.recorded_at, "updated_at": event.recorded_at,
        "history": json.dumps([{"status": "requested", "at": event.recorded_at,
                                "note": p["note"]}], ensure_ascii=False)})


@projection("supply_request_acknowledged")
def _apply_acknowledged(db: Database, event: Event) -> None:
    _step(db, event, "acknowledged")


@projection("supply_dispatched")
def _apply_dispatched(db: Database, event: Event) -> None:
    _step(db, event, "dispatched", dispatched=json.dumps(event.payload["lines"]),
          expected_arrival=event.payload.get("expected_arrival", ""))


@projection("supply_request_received")
def _apply_received(db: Database, event: Event) -> None:
    # Recorded before HQ's dispatch reached the node (``receive``): say so in its history.
    mark = {"unannounced": True} if event.payload.get("unannounced") else None
    _step(db, event, "received", mark, received=json.dumps(event.payload["lines"]))


def requests(db: Database, open_only: bool = False) -> list[dict[str, Any]]:
    where = "WHERE status != 'received'" if open_only else ""
    out = []
    for row in db.query(f"SELECT * FROM supply_requests {where} ORDER BY requested_at DESC"):
        row = dict(row)
        for key in ("lines", "dispatched", "received", "history"):
            row[key] = json.loads(row[key]) if row[key] else None
        out.append(row)
    return out


def suggested_request(db: Database, shelter_id: str, settings: dict[str, str]) -> list[
        dict[str, Any]]:
    """Enough to last ``request_days`` at today's headcount, less what is on hand and what
    is already on its way."""
    days = float(settings.get("request_days") or 3)
    coming: dict[str, int] = {}
    for request in requests(db, open_only=True):
        for line in request["dispatched"] or request["lines"]:
            coming[line["item_id"]] = coming.get(line["item_id"], 0) + int(line["quantity"])
    lines = []
    for item in stock(db, shelter_id, settings)["items"]:
        if not item["daily_need"]:
            continue
        short = math.ceil(item["daily_need"] * days - item["on_hand"]
                          - coming.get(item["item_id"], 0))
        if short > 0:
            lines.append({"item_id": item["item_id"], "quantity": short})
    return lines
