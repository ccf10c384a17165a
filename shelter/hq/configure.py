"""What HQ staff set for a shelter (its status, capacity and contact) and say to it (a
message shown on its headcount screen): the form's rules, then the domain's events, which
go down to the shelter the next time it syncs, and the audit log."""

from __future__ import annotations

from collections.abc import Mapping

from shelter.core.errors import N_, InvalidInput
from shelter.core.events import EventStore
from shelter.domain.accounts import audit
from shelter.domain.settings import STATUSES, configure_shelter, send_message
from shelter.hq import stats

MAX_CAPACITY = 100_000
CONTACT_CHARS = 200
MESSAGE_CHARS = 500


def configure(store: EventStore, actor: str, shelter_id: str,
              form: Mapping[str, str]) -> None:
    """Set the shelter's ``status``, ``capacity`` and ``contact`` from the form;
    InvalidInput (nothing changed) when the form will not do."""
    status = form.get("status", "")
    capacity = form.get("capacity", "").strip()
    contact = form.get("contact", "").strip()
    if status not in STATUSES:
        raise InvalidInput(N_("Choose a status from the list."))
    if not capacity.isdecimal() or int(capacity) > MAX_CAPACITY:
        raise InvalidInput(N_("Capacity must be a whole number of people (0 to 100,000)."))
    if len(contact) > CONTACT_CHARS:
        raise InvalidInput(N_("The contact is too long (200 characters at most)."))
    configure_shelter(store, shelter_id, {"status": status, "capacity": str(int(capacity)),
                                          "contact": contact})
    stats.bump()  # the next page shows it at once
    audit(store, actor, "shelter_configured", shelter_id,
          f"status={status} capacity={capacity}")


def message(store: EventStore, actor: str, shelter_id: str,
            form: Mapping[str, str]) -> None:
    """Send the form's ``text`` to the shelter; InvalidInput when there is none, or too
    much."""
    text = form.get("text", "").strip()
    if not text or len(text) > MESSAGE_CHARS:
        raise InvalidInput(N_("Write the message (500 characters at most)."))
    send_message(store, shelter_id, text)
    audit(store, actor, "hq_message", shelter_id)
