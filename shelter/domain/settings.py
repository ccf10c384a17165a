"""Shelter settings (name, Wi-Fi name for the poster, capacity): changed through events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlite_utils import Database

from shelter.core import authority, lineage, meta
from shelter.core.errors import N_, InvalidInput
from shelter.core.events import Event, EventStore, projection
from shelter.domain.text import ascii_digits

# A shelter's status as HQ's registry and the public page know it.
STATUSES = ("standby", "open", "full", "closed")

DEFAULTS: dict[str, str] = {
    "shelter_name": "避難所",
    "wifi_name": "",
    "capacity": "0",
    # How HQ and the public reach the shelter (a phone number, a radio channel): set by HQ.
    "contact": "",
    # standby, open, full or closed: set by HQ (comes down by sync) or the manager.
    "status": "open",
    # Crowding levels by occupancy, in percent of capacity: やや混雑, 混雑, 満員.
    "crowding_busy": "50",
    "crowding_crowded": "80",
    "crowding_full": "100",
    # Supplies: warn when an item lasts fewer days than this; a suggested request to HQ
    # tops stock up to this many days.
    "low_stock_days": "3",
    "request_days": "3",
}


def get_settings(db: Database) -> dict[str, str]:
    values = dict(DEFAULTS)
    values.update({row["key"]: row["value"] for row in db.query("SELECT * FROM settings")})
    return values


def change_settings(store: EventStore, changes: dict[str, Any]) -> None:
    unknown = set(changes) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown settings: {sorted(unknown)}")
    store.append("settings_changed", {k: str(v) for k, v in changes.items()})


# What a shelter's manager sets on the settings page (the rest is HQ's, or the CLI's).
MANAGER_SETTINGS = ("shelter_name", "wifi_name", "capacity", "crowding_busy",
                    "crowding_crowded", "crowding_full")
_NUMBERS = ("capacity", "crowding_busy", "crowding_crowded", "crowding_full")


def save_manager_settings(store: EventStore, form: Mapping[str, str]) -> None:
    """The manager's settings form: refused field by field (InvalidInput with ``fields``)
    unless every value is usable, the name given and the crowding levels rising; then only
    what differs from the current settings is changed (nothing at all when nothing does)."""
    changes = {key: form.get(key, "").strip() for key in MANAGER_SETTINGS}
    changes.update({key: ascii_digits(changes[key], hyphens=False) for key in _NUMBERS})
    fields: dict[str, str] = {}
    if not changes["shelter_name"] or len(changes["shelter_name"]) > 80:
        fields["shelter_name"] = N_("This field is required.")
    if len(changes["wifi_name"]) > 32:
        fields["wifi_name"] = N_("Too long or not valid text.")
    for key in _NUMBERS:
        if not (changes[key].isascii() and changes[key].isdigit()) \
                or len(changes[key]) > 6 or int(changes[key]) > 100000:
            fields[key] = N_("Enter a whole number.")
    if not fields and not (0 < int(changes["crowding_busy"]) < int(
            changes["crowding_crowded"]) <= int(changes["crowding_full"])):
        fields["crowding_crowded"] = N_("Each level must start above the one before it.")
    if fields:
        raise InvalidInput(fields=fields)
    current = get_settings(store.db)
    changed = {key: value for key, value in changes.items() if current.get(key) != value}
    if changed:
        change_settings(store, changed)


@projection("settings_changed")
def _apply_settings_changed(db: Database, event: Event) -> None:
    """A node's own settings go to `settings` (also those of the node it replaced, rebuilt
    from HQ: shelter/core/lineage.py); another node's (at HQ) to `shelter_settings` under
    the shelter that node belongs to."""
    own = meta.get(db, "node_id")
    if own is None or own == event.node_id or event.node_id in lineage.inherited(db):
        for key, value in event.payload.items():
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value", [key, value])
        return
    shelter = sender_shelter(db, event)
    for key, value in event.payload.items():
        db.execute("INSERT INTO shelter_settings (shelter_id, key, value) VALUES (?, ?, ?) "
                   "ON CONFLICT (shelter_id, key) DO UPDATE SET value = excluded.value",
                   [shelter, key, value])


def sender_shelter(db: Database, event: Event) -> str:
    """The shelter of the node that made ``event``: as HQ enrolled it, else this store's."""
    row = db.execute("SELECT shelter_id FROM sync_origins WHERE node_id = ?",
                     [event.node_id]).fetchone()
    if row:
        return str(row[0])
    own = meta.get(db, "shelter_id")
    return own if own is not None else event.node_id


def shelter_settings(db: Database, shelter_id: str) -> dict[str, str]:
    """Another shelter's settings as HQ knows them (defaults for what it has not heard)."""
    values = dict(DEFAULTS)
    values.update(dict(db.execute("SELECT key, value FROM shelter_settings WHERE shelter_id = ?",
                                  [shelter_id]).fetchall()))
    return values


def configure_shelter(store: EventStore, shelter_id: str, changes: dict[str, str]) -> None:
    """HQ sets a shelter's capacity or status; the shelter's node receives it by sync."""
    allowed = {"capacity", "status", "shelter_name", "contact"}
    if set(changes) - allowed:
        raise ValueError(f"HQ may set only {sorted(allowed)}")
    store.append("shelter_configured", {"shelter_id": shelter_id,
                                        "changes": {k: str(v) for k, v in changes.items()}})


@projection("shelter_configured")
def _apply_shelter_configured(db: Database, event: Event) -> None:
    p = event.payload
    own = meta.get(db, "shelter_id")
    for key, value in p["changes"].items():
        if own == p["shelter_id"]:
            db.execute("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) "
                       "DO UPDATE SET value = excluded.value", [key, value])
        db.execute("INSERT INTO shelter_settings (shelter_id, key, value) VALUES (?, ?, ?) "
                   "ON CONFLICT (shelter_id, key) DO UPDATE SET value = excluded.value",
                   [p["shelter_id"], key, value])


def send_message(store: EventStore, shelter_id: str, text: str) -> None:
    store.append("hq_message", {"shelter_id": shelter_id, "text": text})


def hq_messages(db: Database, shelter_id: str, limit: int = 5) -> list[dict[str, Any]]:
    """HQ's latest messages to a shelter (they come down by sync), newest first: each with
    ``text`` and ``at``."""
    return list(db.query("SELECT text, at FROM hq_messages WHERE shelter_id = ? "
                         "ORDER BY at DESC LIMIT ?", [shelter_id, limit]))


@projection("hq_message")
def _apply_hq_message(db: Database, event: Event) -> None:
    db.execute("INSERT OR IGNORE INTO hq_messages (event_id, shelter_id, text, at) "
               "VALUES (?, ?, ?, ?)", [event.event_id, event.payload["shelter_id"],
                                       event.payload["text"], event.recorded_at])


@authority.value_check("settings_changed")
def _unusable_setting(payload: dict[str, Any]) -> str | None:
    """The first setting HQ could not compute with (other shelters' figures use them)."""
    for key, value in payload.items():
        if key not in DEFAULTS:
            return str(key)[:40]
        if key in ("capacity", "crowding_busy", "crowding_crowded", "crowding_full",
                   "low_stock_days", "request_days"):
            if not authority.whole(value, 1_000_000):
                return key
        elif key == "status":
            if value not in STATUSES:
                return key
        elif not authority.text(value, 200):
            return key
    return None
