"""HQ's pages and API, a blueprint per module (none imports another):

    dashboard   the live dashboard with its map and charts, a municipality's page, the sync page
    maps        the large map (the whole prefecture, or zoomed to a municipality)
    shelters    a shelter's page, and what HQ staff do there (configure, message, revoke)
    requests    the supply request queue (acknowledge, dispatch)
    enquiry     safety enquiries (安否確認), within each person's consent
    exports     exports without personal data, the situation report PDF
    sync        the /sync websocket shelters' nodes speak
    api         GET /api/v1/shelters and /api/v1/summary, HQ's OpenAPI document
    public      the public page and feed (no login, no personal data)
    staff       signing in, and /staff leading to the dashboard

What several of them need is here: who is acting, and why an event was refused.
"""

from __future__ import annotations

from shelter.core.authority import Refusal
from shelter.web import i18n
from shelter.web.base import current_principal


def actor() -> str:
    """Who the audit log names for this request."""
    principal = current_principal()
    return principal.name if principal else "-"


def refusal_text(reason: Refusal | str) -> str:
    """Why an event was refused, in the reader's language (older rows: as stored)."""
    if isinstance(reason, str):
        return reason
    try:
        return i18n.gettext(reason.template) % reason.params
    except (KeyError, TypeError, ValueError):  # a catalog entry that does not fit
        return reason.text()
