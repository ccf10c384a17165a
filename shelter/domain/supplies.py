"""Supplies: the item catalog, stock movements by lot, days of supply at today's headcount,
rationed items, supply requests to HQ and their life, and notes for the daily report.

Every change is an event. A movement's effect (the signed ``delta`` per lot) is decided
when it is written, inside the write transaction, and carried in the event: a stocktake
records the difference it found, and a hand-out without a lot records which lots it took
(first to expire, first out), so HQ replaying the events gets the same stock.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from sqlite_utils import Database

from shelter.core import authority
from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.sql import insert_row
from shelter.domain import presence
from shelter.domain.households import N_
from shelter.domain.settings import sender_shelter
from shelter.domain.text import clean_line

KINDS = ("received", "distributed", "transferred", "counted", "discarded")
SOURCES = ("hq_shipment", "donation", "purchase", "other")
DISCARD_REASONS = ("expired", "damaged", "other")
URGENCIES = ("normal", "urgent", "critical")
AUDIENCES = ("everyone", "infants", "elderly")
REQUEST_STATUSES = ("requested", "acknowledged", "dispatched", "received")
MAX_QUANTITY = 1_000_000
MAX_LINES = 40
JST = timezone(timedelta(hours=9), "JST")  # Japan has no summer time


class SupplyError(Exception):
    """Refused input; nothing was written. ``message`` is an English message id."""

    def __init__(self, code: str, status: int, message: str, field: str = "",
                 **params: Any) -> None:
        super().__init__(code)
        self.code, self.status, self.message, self.field, self.params = \
            code, status, message, field, params


# --- reading -------------------------------------------------------------------------------

def items(db: Database) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM items ORDER BY position, name_en"))


def item_name(item: dict[str, Any], lang: str) -> str:
    return str(item["name_ja"] if lang == "ja" else item["name_en"])


def population(db: Database, shelter_id: str, today: date | None = None) -> dict[str, int]:
    """Who the shelter supplies: people in the building, plus those registered here who stay
    at home or in a car and come to collect. By audience: everyone, infants (0-2 or marked
    as infants), elderly (65 and over)."""
    today = today or date.today()
    # Two indexed lookups, not one OR across a join: at HQ that would read every person of
    # the prefecture once per shelter.
    rows = db.execute(
        """SELECT p.birth_date, p.needs FROM presence pr
           JOIN persons p ON p.person_id = pr.person_id
           WHERE pr.shelter_id = ? AND pr.status = 'present'
           UNION ALL
           SELECT p.birth_date, p.needs FROM persons p
           JOIN households h ON h.household_id = p.household_id
           WHERE p.issuing_shelter = ? AND h.whereabouts IN ('home', 'car')
             AND NOT EXISTS (SELECT 1 FROM presence pr WHERE pr.person_id = p.person_id)""",
        [shelter_id, shelter_id]).fetchall()
    provisional = db.execute(
        "SELECT count(*) FROM presence WHERE shelter_id = ? AND status = 'present' "
        "AND provisional = 1", [shelter_id]).fetchone()[0]
    infants = elderly = 0
    for birth, needs in rows:
        age = presence.age_on(birth, today)
        if (age is not None and age <= 2) or '"infant"' in needs:
            infants += 1
        if age is not None and age >= 65:
            elderly += 1
    return {"everyone": len(rows) + provisional, "infants": infants, "elderly": elderly}


def stock(db: Database, shelter_id: str, settings: dict[str, str],
          today: date | None = None) -> dict[str, Any]:
    """Every item with on hand, lots (first to expire first), the last 24 hours' hand-outs,
    the daily need at today's headcount and the days that lasts."""
    people = population(db, shelter_id, today)
    low_days = float(settings.get("low_stock_days") or 3)
    since = (datetime.now(UTC) - timedelta(hours=24)).isoformat(timespec="milliseconds")
    consumed = dict(db.execute(
        "SELECT item_id, -sum(delta) FROM stock_movements WHERE shelter_id = ? "
        "AND kind = 'distributed' AND at >= ? GROUP BY item_id", [shelter_id, since]).fetchall())
    lots: dict[str, list[dict[str, Any]]] = {}
    for row in db.query("SELECT * FROM stock_lots WHERE shelter_id = ? AND on_hand != 0 "
                        "ORDER BY item_id, expires_on = '', expires_on, lot", [shelter_id]):
        lots.setdefault(row["item_id"], []).append(
            {"lot": row["lot"], "expires_on": row["expires_on"], "on_hand": row["on_hand"]})
    out = []
    for item in items(db):
        on_hand = sum(lot["on_hand"] for lot in lots.get(item["item_id"], []))
        norm = item["norm_per_day"]
        need = round(norm * people[item["audience"]], 2) if norm else None
        days = round(on_hand / need, 1) if need else None
        suggested = next((lot for lot in lots.get(item["item_id"], []) if lot["on_hand"] > 0),
                         None)
        out.append({
            "item_id": item["item_id"], "name": item["name_en"], "name_ja": item["name_ja"],
            "unit": item["unit"], "on_hand": on_hand, "daily_need": need,
            "days_of_supply": days, "consumed_24h": consumed.get(item["item_id"], 0) or 0,
            "low": days is not None and days < low_days,
            "rationed_hours": item["ration_hours"], "audience": item["audience"],
            "norm_per_day": norm, "lots": lots.get(item["item_id"], []),
            "suggested_lot": suggested["lot"] if suggested else None,
        })
    return {"items": out, "population": people, "low_stock_days": low_days}


# --- validation helpers --------------------------------------------------------------------

def _quantity(value: Any, field: str = "quantity", allow_zero: bool = False) -> int:
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


def _text(value: Any, limit: int, field: str) -> str:
    text = clean_line(value if value is not None else "", limit)
    if text is None:
        raise SupplyError("invalid_text", 422, N_("Too long or not valid text."), field)
    return text


def _item(db: Database, item_id: Any) -> dict[str, Any]:
    row = next(iter(db.query("SELECT * FROM items WHERE item_id = ?", [str(item_id)])), None) \
        if isinstance(item_id, str) else None
    if row is None:
        raise SupplyError("unknown_item", 422, N_("There is no such item. Choose one from "
                                                  "the list, or add it first."), "item_id")
    return row


def _date(value: Any, field: str) -> str:
    if value in (None, ""):
        return ""
    try:
        return date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise SupplyError("invalid_date", 422, N_("Enter the date as year-month-day."),
                          field) from None


def _lots(db: Database, shelter_id: str, item_id: str) -> list[tuple[str, str, int]]:
    """(lot, expires_on, on_hand), first to expire first, lots without a date last."""
    return [(r[0], r[1], r[2]) for r in db.execute(
        "SELECT lot, expires_on, on_hand FROM stock_lots WHERE shelter_id = ? AND item_id = ? "
        "ORDER BY expires_on = '', expires_on, lot", [shelter_id, item_id])]


# --- movements ---------------------------------------------------------------------------

def move(store: EventStore, shelter_id: str, data: Any, actor: str = "",
         may_override: bool = False) -> dict[str, Any]:
    """Record one movement (which may touch several lots). Returns the item's new stock.

    ``data``: item_id, kind, quantity, and as they apply lot, expires_on, source, code or
    household_id, destination, reason, override (managers: hand out more than is on hand,
    with a reason), confirm_repeat (hand a rationed item to a household again within its
    window).
    """
    if not isinstance(data, dict):
        raise SupplyError("invalid", 422, N_("The request body must be a JSON object."))
    kind = data.get("kind")
    if kind not in KINDS:
        raise SupplyError("invalid_kind", 422, N_("Choose what happened: received, handed "
                                                  "out, transferred, counted or "
                                                  "discarded."), "kind")
    with store.write() as db:
        item = _item(db, data.get("item_id"))
        quantity = _quantity(data.get("quantity"), allow_zero=kind == "counted")
        lot = _text(data.get("lot"), 40, "lot")
        reason = _text(data.get("reason"), 200, "reason")
        override = bool(data.get("override"))
        base: dict[str, Any] = {"item_id": item["item_id"], "kind": kind, "actor": actor,
                                "shelter_id": shelter_id, "reason": reason, "override": False,
                                "household_id": None, "destination": "", "source": "",
                                "request_id": data.get("request_id")}
        parts: list[tuple[str, str, int]] = []  # (lot, expires_on, delta)
        if kind == "received":
            source = data.get("source") or "other"
            if source not in SOURCES:
                raise SupplyError("invalid_source", 422, N_("Choose where it came from."),
                                  "source")
            base["source"] = source
            parts.append((lot, _date(data.get("expires_on"), "expires_on"), quantity))
        elif kind == "counted":
            current = {lt: (exp, n)
                       for lt, exp, n in _lots(db, shelter_id, item["item_id"])}
            if lot:  # that lot; without one, the whole item
                exp, had = current.get(lot, ("", 0))
                parts.append((lot, exp, quantity - had))
            else:  # the whole item: a shortfall comes off the first lots to expire
                difference = quantity - sum(n for _, n in current.values())
                if difference > 0:
                    parts.append(("", current.get("", ("", 0))[0], difference))
                for lt, (exp, n) in current.items():
                    if difference >= 0:
                        break
                    take = min(max(n, 0), -difference)
                    if take:
                        parts.append((lt, exp, -take))
                        difference += take
                if difference < 0:
                    parts.append(("", "", difference))
                if not parts:
                    parts.append((lot, "", 0))  # a count that confirms the books
            if any(delta for _, _, delta in parts) and not reason:
                raise SupplyError("reason_required", 422, N_(
                    "The count differs from the books: say why (for example, not "
                    "recorded when handed out)."), "reason")
            base["counted"] = quantity
        else:
            if kind == "distributed":  # who it is for first: a wrong card is the first news
                base["household_id"] = _household(db, data, shelter_id)
                if base["household_id"] and item["ration_hours"]:
                    _check_ration(db, item, base["household_id"],
                                  bool(data.get("confirm_repeat")))
            parts, base["override"] = _take(db, shelter_id, item, quantity, lot, reason,
                                            override, may_override)
            if kind == "transferred":
                base["destination"] = _text(data.get("destination"), 80, "destination")
                if not base["destination"]:
                    raise SupplyError("destination_required", 422, N_(
                        "Say which shelter it goes to."), "destination")
            elif kind == "discarded":
                if data.get("reason") not in DISCARD_REASONS and not reason:
                    raise SupplyError("reason_required", 422, N_(
                        "Say why it is discarded (expired, damaged)."), "reason")
        movements = []
        for lt, exp, delta in parts:
            payload = {**base, "movement_id": new_id(), "lot": lt, "expires_on": exp,
                       "delta": delta}
            store.append("stock_moved", payload)
            movements.append({k: payload[k] for k in ("movement_id", "lot", "delta")})
        from shelter.domain.settings import get_settings
        row = next(r for r in stock(db, shelter_id, get_settings(db))["items"]
                   if r["item_id"] == item["item_id"])
    return {"movements": movements, "item": row}


def _take(db: Database, shelter_id: str, item: dict[str, Any], quantity: int, lot: str,
          reason: str, override: bool,
          may_override: bool) -> tuple[list[tuple[str, str, int]], bool]:
    """Which lots a hand-out, transfer or discard comes from: the one named, else the first
    to expire. More than is on hand only by a manager's override with a reason."""
    lots = _lots(db, shelter_id, item["item_id"])
    if lot:
        lots = [x for x in lots if x[0] == lot]
        if not lots:
            raise SupplyError("unknown_lot", 422, N_("There is no stock in this lot."), "lot")
    parts: list[tuple[str, str, int]] = []
    remaining = quantity
    for lt, exp, n in lots:
        take = min(max(n, 0), remaining)
        if take:
            parts.append((lt, exp, -take))
            remaining -= take
    if remaining:
        available = quantity - remaining
        if not override:
            raise SupplyError("insufficient_stock", 409, N_(
                "Only %(available)s %(unit)s on hand. A manager may record more with a "
                "reason."), "quantity", available=available, unit=item["unit"])
        if not may_override:
            raise SupplyError("override_not_allowed", 403, N_(
                "Only a shelter manager may record more than is on hand."), "override")
        if not reason:
            raise SupplyError("reason_required", 422, N_(
                "Say why more than the books show is handed out."), "reason")
        short_lot = lot or (lots[-1][0] if lots else "")
        short_exp = next((e for lt, e, _ in lots if lt == short_lot), "")
        if parts and parts[-1][0] == short_lot:
            parts[-1] = (short_lot, short_exp, parts[-1][2] - remaining)
        else:
            parts.append((short_lot, short_exp, -remaining))
    return parts, bool(remaining)


def _household(db: Database, data: dict[str, Any], shelter_id: str) -> str | None:
    code, household_id = data.get("code"), data.get("household_id")
    if code:
        keys = {r[0]: r[1] for r in db.execute("SELECT node_id, public_key FROM card_keys")}
        try:
            subject = presence.identify(db, keys, code)
        except presence.ScanError as refused:
            raise SupplyError(refused.code, refused.status, refused.message, "code") from None
        row = db.execute("SELECT household_id FROM persons WHERE person_id = ?",
                         [subject.person_id]).fetchone()
        if row is None:
            raise SupplyError("not_registered_here", 422, N_(
                "This person is not registered at this shelter yet. Hand out for general "
                "use, or register the household."), "code")
        return str(row[0])
    if household_id:
        if db.execute("SELECT 1 FROM households WHERE household_id = ?",
                      [str(household_id)]).fetchone() is None:
            raise SupplyError("unknown_household", 422, N_("There is no such household."),
                              "household_id")
        return str(household_id)
    return None


def _check_ration(db: Database, item: dict[str, Any], household_id: str,
                  confirmed: bool) -> None:
    since = (datetime.now(UTC) - timedelta(hours=item["ration_hours"])).isoformat(
        timespec="milliseconds")
    last = db.execute(
        "SELECT at, -sum(delta) FROM stock_movements WHERE household_id = ? AND item_id = ? "
        "AND kind = 'distributed' AND at >= ? GROUP BY movement_id ORDER BY at DESC LIMIT 1",
        [household_id, item["item_id"], since]).fetchone()
    if last and not confirmed:
        when = datetime.fromisoformat(last[0]).astimezone(JST).strftime("%H:%M")
        raise SupplyError("collected_recently", 409, N_(
            "This household already received %(quantity)s %(unit)s at %(time)s (within "
            "%(hours)s hours). Give again only if it is really needed."), "code",
            quantity=last[1], unit=item["unit"], time=when, hours=item["ration_hours"])


@projection("stock_moved")
def _apply_stock_moved(db: Database, event: Event) -> None:
    p = event.payload
    insert_row(db, "stock_movements", {
        "movement_id": p["movement_id"], "event_id": event.event_id,
        "shelter_id": p["shelter_id"], "item_id": p["item_id"],
        "kind": p["kind"], "delta": p["delta"], "lot": p["lot"],
        "household_id": p.get("household_id"), "destination": p.get("destination", ""),
        "source": p.get("source", ""), "reason": p.get("reason", ""),
        "override": 1 if p.get("override") else 0, "request_id": p.get("request_id"),
        "at": event.recorded_at, "hlc": event.hlc, "actor": p.get("actor", "")})
    db.execute(
        """INSERT INTO stock_lots (shelter_id, item_id, lot, expires_on, on_hand)
           VALUES (?, ?, ?, ?, ?)
           ON CONFLICT (shelter_id, item_id, lot) DO UPDATE
           SET on_hand = on_hand + excluded.on_hand,
               expires_on = CASE WHEN excluded.expires_on != '' THEN excluded.expires_on
                                 ELSE stock_lots.expires_on END""",
        [p["shelter_id"], p["item_id"], p["lot"], p.get("expires_on", ""), p["delta"]])


# --- the catalog ----------------------------------------------------------------------------

def add_item(store: EventStore, data: Any) -> str:
    if not isinstance(data, dict):
        raise SupplyError("invalid", 422, N_("The request body must be a JSON object."))
    name_ja = _text(data.get("name_ja"), 40, "name_ja")
    name_en = _text(data.get("name_en"), 40, "name_en") or name_ja
    unit = _text(data.get("unit"), 12, "unit")
    if not name_ja:
        raise SupplyError("name_required", 422, N_("This field is required."), "name_ja")
    if not unit:
        raise SupplyError("unit_required", 422, N_("This field is required."), "unit")
    norm = _norm(data.get("norm_per_day"))
    audience = data.get("audience") or "everyone"
    if audience not in AUDIENCES:
        raise SupplyError("invalid_audience", 422, N_("Choose one of the options."),
                          "audience")
    ration = _quantity(data.get("ration_hours") or 0, "ration_hours", allow_zero=True)
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
        _item(db, item_id)
        store.append("item_changed", {
            "item_id": item_id, "norm_per_day": _norm(norm),
            "ration_hours": min(_quantity(ration_hours or 0, "ration_hours", True), 24 * 14)})


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


# --- requests to HQ --------------------------------------------------------------------------

def _lines(db: Database, value: Any, field: str = "lines") -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value or len(value) > MAX_LINES:
        raise SupplyError("invalid_lines", 422, N_("Ask for at least one item."), field)
    lines, seen = [], set()
    for i, line in enumerate(value):
        if not isinstance(line, dict):
            raise SupplyError("invalid_lines", 422, N_("Ask for at least one item."),
                              f"{field}.{i}")
        item = _item(db, line.get("item_id"))
        if item["item_id"] in seen:
            raise SupplyError("duplicate_line", 422, N_("Each item once per request."),
                              f"{field}.{i}.item_id")
        seen.add(item["item_id"])
        lines.append({"item_id": item["item_id"],
                      "quantity": _quantity(line.get("quantity"), f"{field}.{i}.quantity")})
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
        note = _text(data.get("note"), 500, "note")
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
    """The shelter records what actually arrived; each line also enters the stock."""
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
        raw = [line for line in data.get("lines") or [] if isinstance(line, dict)
               and str(line.get("quantity", "0")).strip() not in ("", "0")]
        lines = _lines(db, raw) if raw else []
        note = _text(data.get("note"), 500, "note")
        store.append("supply_request_received", {"request_id": request_id, "lines": lines,
                                                 "note": note, "actor": actor})
        for line in lines:
            move(store, shelter_id, {"item_id": line["item_id"], "kind": "received",
                                     "quantity": line["quantity"], "source": "hq_shipment",
                                     "request_id": request_id,
                                     "lot": data.get("lot") or ""}, actor)


def _step(db: Database, event: Event, status: str, **columns: Any) -> None:
    row = db.execute("SELECT history, status FROM supply_requests WHERE request_id = ?",
                     [event.payload["request_id"]]).fetchone()
    if row is None:
        return  # a step for a request this store never saw (HQ data from elsewhere)
    history = json.loads(row[0])
    history.append({"status": status, "at": event.recorded_at,
                    "note": event.payload.get("note", "")})
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
    _step(db, event, "received", received=json.dumps(event.payload["lines"]))


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


# --- notes for the daily report -------------------------------------------------------------

def today_jst() -> date:
    return datetime.now(JST).date()


def add_note(store: EventStore, shelter_id: str, text: Any, actor: str) -> None:
    note = _text(text, 1000, "text")
    if not note:
        raise SupplyError("note_required", 422, N_("This field is required."), "text")
    store.append("day_note_added", {"day": today_jst().isoformat(), "text": note,
                                    "actor": actor, "shelter_id": shelter_id})


@projection("day_note_added")
def _apply_day_note(db: Database, event: Event) -> None:
    p = event.payload
    insert_row(db, "day_notes", {"event_id": event.event_id, "day": p["day"],
                                 "text": p["text"], "actor": p["actor"],
                                 "at": event.recorded_at,
                                 # Older notes do not name their shelter: the sender's.
                                 "shelter_id": p.get("shelter_id") or sender_shelter(db, event)})


def notes(db: Database, shelter_id: str, day: date) -> list[dict[str, Any]]:
    return list(db.query("SELECT * FROM day_notes WHERE shelter_id = ? AND day = ? ORDER BY at",
                         [shelter_id, day.isoformat()]))


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
