"""HQ's queue of supply requests from the shelters: the most urgent first, what all of them
ask for in sum, and HQ's two steps on one (acknowledge, dispatch), each checked, made
through the domain's events (shelter/domain/supply_requests.py) and written to the audit
log."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlite_utils import Database

from shelter.core.errors import N_, Conflict, InvalidInput
from shelter.core.events import EventStore
from shelter.domain import catalog, supply_requests
from shelter.domain.accounts import audit
from shelter.domain.supplies import JST

URGENCY_ORDER = ("critical", "urgent", "normal")
NOT_DISPATCHED = ("requested", "acknowledged")
MAX_QUANTITY = 1_000_000
NOTE_CHARS = 500
ARRIVAL_RANGE = timedelta(days=366)


def open_requests(db: Database, names: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every request not yet received, each with its ``shelter_name`` (``names``: a
    shelter's name by its id): those HQ still has to act on first (not yet dispatched),
    then those on their way; in each, the most urgent first, then the oldest."""
    out = []
    for r in supply_requests.requests(db, open_only=True):
        r["shelter_name"] = names.get(r["shelter_id"], r["shelter_id"])
        out.append(r)
    return sorted(out, key=lambda r: (r["status"] not in NOT_DISPATCHED,
                                      URGENCY_ORDER.index(r["urgency"])
                                      if r["urgency"] in URGENCY_ORDER else 3,
                                      r["requested_at"]))


def by_step(queue: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                   list[dict[str, Any]]]:
    """``queue`` (open_requests) split into those HQ has to act on and those dispatched
    (on their way, waiting for the shelter's receipt), each in the queue's order."""
    return ([r for r in queue if r["status"] in NOT_DISPATCHED],
            [r for r in queue if r["status"] not in NOT_DISPATCHED])


def demand(queue: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quantities asked for and not yet dispatched, per item, over all shelters: the item,
    the quantity and how many shelters ask; the largest first."""
    totals: dict[str, dict[str, Any]] = {}
    for r in queue:
        if r["status"] not in NOT_DISPATCHED:
            continue
        for line in r["lines"]:
            entry = totals.setdefault(line["item_id"], {"item_id": line["item_id"],
                                                        "quantity": 0, "shelters": set()})
            entry["quantity"] += int(line["quantity"])
            entry["shelters"].add(r["shelter_id"])
    return [{**e, "shelters": len(e["shelters"])} for e in
            sorted(totals.values(), key=lambda e: -e["quantity"])]


def find(db: Database, request_id: str) -> dict[str, Any] | None:
    return next((r for r in supply_requests.requests(db) if r["request_id"] == request_id),
                None)


def of_shelter(db: Database, shelter_id: str, limit: int = 20) -> list[dict[str, Any]]:
    """A shelter's requests, the newest first."""
    return [r for r in supply_requests.requests(db) if r["shelter_id"] == shelter_id][:limit]


def item_names(db: Database, lang: str) -> dict[str, str]:
    """Each item's name in ``lang``, by its id."""
    return {i["item_id"]: catalog.item_name(i, lang) for i in catalog.items(db)}


def item_units(db: Database) -> dict[str, str]:
    """Each item's unit code (render/words.py says it in words), by its id."""
    return {i["item_id"]: i["unit"] for i in catalog.items(db)}


def _note(form: Mapping[str, str]) -> str:
    return form.get("note", "").strip()[:NOTE_CHARS]


def acknowledge(store: EventStore, actor: str, found: dict[str, Any],
                form: Mapping[str, str]) -> None:
    """HQ has seen request ``found`` (with an optional ``note``). Conflict when it was
    acknowledged already."""
    if found["status"] != "requested":
        raise Conflict(N_("This request was already acknowledged."))
    supply_requests.acknowledge(store, found["request_id"], _note(form))
    audit(store, actor, "request_acknowledged", found["request_id"])


def dispatch(store: EventStore, actor: str, found: dict[str, Any],
             form: Mapping[str, str]) -> None:
    """Send what the form says for request ``found``: ``quantity-<item_id>`` per line asked
    for, ``expected_arrival`` in Japan time, and an optional ``note``. Conflict when it
    was dispatched already; InvalidInput (nothing sent) when the form will not do."""
    if found["status"] == "received":  # a truck that came before HQ's dispatch, say
        raise Conflict(N_("The shelter has already recorded this delivery as arrived."))
    if found["status"] not in NOT_DISPATCHED:
        raise Conflict(N_("This request was already dispatched."))
    lines = []
    for line in found["lines"]:
        raw = form.get(f"quantity-{line['item_id']}", "").strip()
        if not raw:
            continue
        if not raw.isdecimal() or int(raw) > MAX_QUANTITY:
            raise InvalidInput(N_("Quantities must be whole numbers."))
        if int(raw):
            lines.append({"item_id": line["item_id"], "quantity": int(raw)})
    if not lines:
        raise InvalidInput(N_("Enter the quantity of at least one item sent."))
    try:
        # The form's native date-time input gives Japan time without a zone.
        when = datetime.fromisoformat(form.get("expected_arrival", "").strip()
                                      ).replace(tzinfo=JST)
    except ValueError:
        raise InvalidInput(N_("Enter when the delivery is expected to arrive.")) from None
    if abs(when - datetime.now(JST)) > ARRIVAL_RANGE:  # a mistyped year, say 20266
        raise InvalidInput(N_("Enter an arrival date within a year from now."))
    supply_requests.dispatch(store, found["request_id"], lines,
                             when.isoformat(timespec="minutes"), _note(form))
    audit(store, actor, "request_dispatched", found["request_id"])
