"""A shelter's staff pages: households, likely duplicates, the registration poster,
settings, users and the audit log; on the shared sign-in (shelter/web/signin.py)."""

from __future__ import annotations

from flask import Response, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from shelter.core.errors import InvalidInput
from shelter.domain import accounts, households, roster
from shelter.domain.accounts import NODE_ROLES, audit
from shelter.domain.settings import get_settings, save_manager_settings
from shelter.render import poster
from shelter.web import labels, signin
from shelter.web.base import current_principal, node, require
from shelter.web.i18n import gettext

bp = signin.blueprint()


@bp.get("")
@require("volunteer")
def home() -> ResponseReturnValue:
    db = node().db
    return render_template(
        "staff/home.html", households=households.list_households(db),
        duplicates=len(households.open_duplicates(db)), people=households.count_persons(db))


@bp.get("/households/<household_id>")
@require("volunteer")
def household(household_id: str) -> ResponseReturnValue:
    ctx = node()
    found = households.get_household(ctx.db, household_id)
    if found is None:
        abort(404)
    audit(ctx.store, _actor(), "view_household", household_id)
    return render_template("staff/household.html",
                           household=roster.household_presence(ctx.db, found, ctx.shelter_id),
                           labels=labels.desk(), scanning=True)


@bp.get("/duplicates")
@require("volunteer")
def duplicates() -> ResponseReturnValue:
    audit(node().store, _actor(), "view_duplicates", "-")
    return render_template("staff/duplicates.html", rows=households.open_duplicates(node().db))


@bp.get("/poster.pdf")
@require("volunteer")
def poster_pdf() -> ResponseReturnValue:
    settings = get_settings(node().db)
    url = request.args.get("url") or poster.registration_url(
        request.host_url, current_app.config.get("PUBLIC_HTTP_PORT"))
    if len(url) > 500:  # no QR code holds much more; an address is far shorter
        abort(400)
    pdf = poster.poster_pdf(url, settings["shelter_name"], settings["wifi_name"])
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="poster.pdf"'})


@bp.route("/settings", methods=["GET", "POST"])
@require("manager")
def settings_page() -> ResponseReturnValue:
    errors: dict[str, str] = {}
    if request.method == "POST":
        try:
            save_manager_settings(node().store, request.form)
        except InvalidInput as refused:
            errors = refused.field_texts(gettext)
        else:
            return redirect(url_for("staff.settings_page", saved=1), code=303)
    return render_template("staff/settings.html", errors=errors,
                           saved=request.args.get("saved")), (400 if errors else 200)


@bp.route("/users", methods=["GET", "POST"])
@require("manager")
def users() -> ResponseReturnValue:
    """Managers add desk and kiosk accounts, and disable one that is lost or misused."""
    errors: dict[str, str] = {}
    actor = _actor()
    if request.method == "POST":
        form = request.form
        if form.get("disable") or form.get("enable"):
            username = form.get("disable") or form.get("enable") or ""
            if username == actor:
                errors["username"] = gettext("You cannot disable your own account.")
            else:
                try:
                    accounts.set_user_disabled(node().store, username, bool(form.get("disable")))
                    audit(node().store, actor,
                          "disable_user" if form.get("disable") else "enable_user", username)
                except ValueError:
                    abort(404)
        else:
            username, password = form.get("username", "").strip(), form.get("password", "")
            role = form.get("role", "")
            try:
                accounts.check_new_user(node().db, username, password, role)
            except InvalidInput as refused:
                errors = refused.field_texts(gettext)
            else:
                accounts.add_user(node().store, username, password, role)
                audit(node().store, actor, "add_user", username, role)
        if not errors:
            return redirect(url_for("staff.users", saved=1), code=303)
    return render_template("staff/users.html", users=accounts.list_users(node().db),
                           errors=errors, roles=NODE_ROLES, saved=request.args.get("saved")), \
        (400 if errors else 200)


@bp.get("/audit")
@require("manager")
def audit_log() -> ResponseReturnValue:
    """Who looked at or changed what. Reading the log is itself recorded."""
    who = request.args.get("actor", "").strip()[:40]
    rows = accounts.audit_entries(node().db, who, request.args.get("before", ""))
    audit(node().store, _actor(), "view_audit_log", who or "-")
    return render_template("staff/audit.html", rows=labels.audit(rows), who=who,
                           more=rows[-1]["audit_id"] if len(rows) == accounts.AUDIT_PAGE
                           else None)


def _actor() -> str:
    """Who is signed in (every page here requires someone)."""
    principal = current_principal()
    assert principal is not None
    return principal.name
