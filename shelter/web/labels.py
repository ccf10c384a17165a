"""The words screens show for codes, in the reader's language: one table per role, read by
the pages (Jinja) and by the scripts (desk.js, hq.js) alike."""

from __future__ import annotations

from typing import Any

from shelter.domain import audit_subjects, catalog
from shelter.render import words
from shelter.web import i18n
from shelter.web.base import node


def desk() -> dict[str, Any]:
    """Every word the desk screens show for a code, in the staff member's language (the
    pages and desk.js read the same table)."""
    _ = i18n.gettext
    return {
        "status": {"present": _("Here"), "out": _("Out"), "left": _("Left the shelter"),
                   "not_arrived": _("Not arrived"), "elsewhere": _("At another shelter")},
        "action": {"auto": _("Check in or out"), "check_in": _("Check in"),
                   "go_out": _("Go out"), "return": _("Return"), "check_out": _("Check out")},
        "done": {"check_in": _("Checked in"), "go_out": _("Gone out"),
                 "return": _("Returned"), "check_out": _("Checked out")},
        "outcome": {"already": _("No change: already so"),
                    "repeated": _("Same card just now: counted once")},
        "flags": {"allergy": _("Allergy"), "chronic_illness": _("Medication"),
                  "wheelchair": _("Wheelchair"), "infant": _("Infant")},
        "needs": words.needs(_),
        "destinations": {"home": _("Home"), "relatives": _("Relatives or friends"),
                         "hospital": _("Hospital"),
                         "welfare_shelter": _("Welfare shelter (福祉避難所)"),
                         "other_shelter": _("Another shelter")},
        "crowding": words.crowding(_),
        "household": household(),
        # The standby at the shelter (templates/desk/_counts.html: standby_line).
        "standby": {"ok": _("Standby: up to date"), "behind": _("Standby: %(n)s behind"),
                    "off": _("Standby: not connected"),
                    "alone": _("Standby not answering: this node is alone (what is saved "
                               "now is on this laptop only)")},
        "words": {"age": _("age %(n)s"), "household": _("Household"),
                  "provisional": _("Registered at shelter %(shelter)s: admitted "
                                   "provisionally"),
                  "unverified": _("Card not yet verifiable here (issuer unknown)"),
                  "offline": _("No connection to the node. Scans are not being saved."),
                  "camera_off": _("Camera is off"), "camera_on": _("Looking for a card…"),
                  "camera_denied": _("The camera could not be started. Type the short code "
                                     "or use a handheld scanner."),
                  "unreadable": _("The answer from the node could not be read. Try again."),
                  "sync_on": _("HQ: connected"), "sync_off": _("HQ: not connected"),
                  "sync_last": _("last sync %(time)s"),
                  "sync_hq": _("HQ address %(url)s"),
                  "sync_waiting": _("%(n)s changes waiting to go"),
                  "sync_revoked": _("HQ refused this node: re-enroll it (ask HQ for a "
                                    "new enrollment code)"),
                  "sync_refused": _("%(n)s updates from HQ refused"),
                  "sync_problems": _("HQ did not take %(n)s changes: ask the manager"),
                  "backup_last": _("Last backup %(time)s"),
                  "backup_none": _("No backup yet"),
                  "backup_stale": _("no good backup for over an hour: tell the manager"),
                  "backup_same_disk": _("on the node's own disk: a lost or broken laptop "
                                        "takes these copies with it (use a USB stick)"),
                  "backup_error": {
                      "missing": _("Backup location not found (USB stick removed?)"),
                      "unwritable": _("Cannot write to the backup location"),
                      "full": _("The backup location is full"),
                      "damaged": _("The last backup failed its check"),
                      "failed": _("The last backup failed")}},
    }


def supplies() -> dict[str, Any]:
    """The words the supplies pages show for codes: movements, sources, urgencies, a
    request's steps, who an item is for."""
    _ = i18n.gettext
    return {
        "kinds": {"received": _("Received"), "distributed": _("Handed out"),
                  "transferred": _("Transferred to another shelter"),
                  "counted": _("Stocktake (set the count)"), "discarded": _("Discarded")},
        "sources": {"hq_shipment": _("Shipment from HQ"), "donation": _("Donation"),
                    "purchase": _("Purchase"), "other": _("Other")},
        "urgency": words.urgency(_), "status": words.request_status(_),
        "audience": {"everyone": _("Everyone"), "infants": _("Infants"),
                     "elderly": _("Elderly")},
    }


def hq() -> dict[str, Any]:
    """The words HQ's pages, the public page and hq.js show for codes."""
    _ = i18n.gettext
    return {
        "crowding": words.crowding(_),
        "status": {"standby": _("Standby"), "open": _("Open"), "full": _("Full"),
                   "closed": _("Closed")},
        "need": words.needs(_),
        "stale": _("silent"), "never": _("never"),
        "items": {i["item_id"]: catalog.item_name(i, i18n.current())
                  for i in catalog.items(node().db)},
        "request": words.request_status(_), "urgency": words.urgency(_),
    }


def household() -> dict[str, Any]:
    """The words of a household code read at the desk or the kiosk (the family, then what
    admitting them did) and of "all N of this household": the kiosk's in all five
    languages, as evacuees read them."""
    _ = i18n.gettext
    return {
        "people": _("%(n)s people"),
        "comma": _(", "),
        "allergies": _("Allergy: %(text)s"), "medication": _("Medication: %(text)s"),
        "pets": _("Pets: %(text)s"),
        "known": _("Already registered here"),
        "question": _("Is this right?"),
        "admit": _("Register and check in all %(n)s"),
        "admit_known": _("Check in all %(n)s"),
        "done": {"check_in": _("%(n)s people checked in"),
                 "return": _("%(n)s people back in"),
                 "go_out": _("%(n)s people gone out"),
                 "check_out": _("%(n)s people checked out")},
        "already": _("%(n)s people: no change, already so"),
        "registered": _("Registered at this shelter now"),
        "print": _("Print their cards (PDF)"),
        "all": {"check_in": _("Check in all %(n)s of this household"),
                "go_out": _("All %(n)s of this household go out"),
                "return": _("All %(n)s of this household are back"),
                "check_out": _("Check out all %(n)s of this household")},
        "all_here": _("All %(n)s are here already."),
        "cancel": _("Not them: scan again"),
    }


def audit(rows: list[dict[str, Any]], shelters: dict[str, str] | None = None
          ) -> list[dict[str, Any]]:
    """The audit log's rows as the audit page (node and HQ) shows them: Japan time, actions
    and details in words, and the households, people, requests and shelters they are about
    by name (``shelters``: HQ's names by id)."""
    db = node().db
    names = {i["item_id"]: catalog.item_name(i, i18n.current()) for i in catalog.items(db)}
    return words.audit_entries(rows, audit_subjects.named(db, rows, shelters), names,
                               i18n.gettext)
