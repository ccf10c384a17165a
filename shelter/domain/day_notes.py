"""Notes for the daily report: what staff want the day's report (and HQ) to read, by day
in Japan time and by shelter.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlite_utils import Database

from shelter.core.events import Event, EventStore, projection
from shelter.core.sql import insert_row
from shelter.domain.households import N_
from shelter.domain.settings import sender_shelter
from shelter.domain.supplies import SupplyError, checked_text, today_jst


def add_note(store: EventStore, shelter_id: str, text: Any, actor: str) -> None:
    note = checked_text(text, 1000, "text")
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
