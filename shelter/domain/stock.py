"""Stock by lot: movements (received, handed out, transferred, counted, discarded), rationed
items, and days of supply at today's headcount.

A movement's effect (the signed ``delta`` per lot) is decided when it is written, inside the
write transaction, and carried in the event: a stocktake records the difference it found,
and a hand-out without a lot records which lots it took (first to expire, first out), so HQ
replaying the events gets the same stock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlite_utils import Database

from shelter.core.clock import today_jst
from shelter.core.events import Event, EventStore, new_id, projection
from shelter.core.sql import insert_row
from shelter.domain import presence, roster
from shelter.domain.catalog import items
from shelter.domain.households import N_
from shelter.domain.supplies import (
    JST,
    SupplyError,
    checked_date,
    checked_item,
    checked_quantity,
    checked_text,
)

KINDS = ("received", "distributed", "transferred", "counted", "discarded")
SOURCES = ("hq_shipment", "donation", "purchase", "other")
DISCARD_REASONS = ("expired", "damaged", "other")


def population(db: Database, shelter_id: str, today: date | None = None) -> dict[str, int]:
    """Who the shelter supplies: people in the building, plus those registered here who stay
    at home or in a car and come to collect. By audience: everyone, infants (0-2 or marked
    as infants), elderly (65 and over)."""
    today = today or today_jst()
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
        age = roster.age_on(birth, today)
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
        item = checked_item(db, data.get("item_id"))
        quantity = checked_quantity(data.get("quantity"), allow_zero=kind == "counted")
        lot = checked_text(data.get("lot"), 40, "lot")
        reason = checked_text(data.get("reason"), 200, "reason")
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
            parts.append((lot, checked_date(data.get("expires_on"), "expires_on"), quantity))
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
                base["destination"] = checked_text(data.get("destination"), 80, "destination")
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
