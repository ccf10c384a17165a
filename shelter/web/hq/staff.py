"""HQ's staff blueprint: the shared sign-in (shelter/web/signin.py), HQ's audit log (admins),
and the rest of /staff leading to the dashboard: a shelter's staff pages (households,
settings...) are not HQ's."""

from __future__ import annotations

from flask import redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from shelter.domain import accounts
from shelter.domain.accounts import audit
from shelter.hq import board
from shelter.web import labels, signin
from shelter.web.base import node, require
from shelter.web.hq import actor

bp = signin.blueprint()


@bp.get("/audit")
@require("admin")
def audit_log() -> ResponseReturnValue:
    """Who signed in, enquired, reported, acknowledged, dispatched, configured or revoked.
    Admins only: operators make the enquiries this log holds to account. Reading the log
    is itself recorded."""
    ctx = node()
    who = request.args.get("actor", "").strip()[:40]
    rows = accounts.audit_entries(ctx.db, who, request.args.get("before", ""))
    audit(ctx.store, actor(), "view_audit_log", who or "-")
    return render_template("staff/audit.html", rows=labels.audit(rows, board.shelter_names(ctx)),
                           who=who, more=rows[-1]["audit_id"]
                           if len(rows) == accounts.AUDIT_PAGE else None)


@bp.route("", methods=["GET", "POST"])
@bp.route("/<path:page>", methods=["GET", "POST"])
def home(page: str = "") -> ResponseReturnValue:
    return redirect(url_for("hq_dashboard.dashboard"))
