"""Words for the codes that several screens and reports show: one list each, so the desk,
the supplies pages, HQ and the PDFs say the same thing. ``_`` is the gettext of the
language wanted (a request's, or a report's)."""

from __future__ import annotations

from collections.abc import Callable

Gettext = Callable[[str], str]


def needs(_: Gettext) -> dict[str, str]:
    return {"elderly": _("Elderly"), "disability": _("Disability"),
            "wheelchair": _("Wheelchair"), "infant": _("Infant"),
            "pregnant_nursing": _("Pregnant or nursing"), "chronic_illness": _("Medication"),
            "allergy": _("Allergy"), "injury": _("Injured or sick"),
            "language_support": _("Language support"), "pet": _("Pet")}


def crowding(_: Gettext) -> dict[str, str]:
    return {"available": _("Space available"), "somewhat_crowded": _("Getting busy"),
            "crowded": _("Crowded"), "full": _("Full"), "unknown": _("Capacity not set"),
            "closed": _("Closed")}


def request_status(_: Gettext) -> dict[str, str]:
    return {"requested": _("Requested"), "acknowledged": _("Acknowledged by HQ"),
            "dispatched": _("On its way"), "received": _("Received")}


def urgency(_: Gettext) -> dict[str, str]:
    return {"normal": _("Normal"), "urgent": _("Urgent"),
            "critical": _("Critical: people at risk")}
