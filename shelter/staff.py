"""Staff pages: sign in, households, likely duplicates, the registration poster, settings."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for

from . import poster, registry
from .auth import audit, authenticate
from .i18n import gettext
from .settings import change_settings, get_settings
from .web import current_principal, node, require

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    error = None
    if request.method == "POST":
        principal = authenticate(node().db, request.form.get("username", "").strip(),
                                 request.form.get("password", ""))
        if principal is None:
            error = gettext("Wrong user name or password.")
            audit(node().store, request.form.get("username", "")[:40] or "-", "login_failed", "-")
        else:
            lang = session.get("lang")
            session.clear()
            session.permanent = True
            session.update(user=principal.name, role=principal.role)
            if lang:
                session["lang"] = lang
            audit(node().store, principal.name, "login", "-")
            target = request.args.get("next", "")
            # Only paths on this node: never an open redirect.
            if not target.startswith("/") or target.startswith("//") or urlparse(target).netloc:
                target = url_for("staff.home")
            return redirect(target, code=303)
    return render_template("staff/login.html", error=error), (401 if error else 200)


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("staff.login"), code=303)


@bp.get("")
@require("volunteer")
def home():  # type: ignore[no-untyped-def]
    db = node().db
    return render_template(
        "staff/home.html", households=registry.list_households(db),
        duplicates=len(registry.open_duplicates(db)),
        people=db.execute("SELECT count(*) FROM persons").fetchone()[0])


@bp.get("/households/<household_id>")
@require("volunteer")
def household(household_id: str):  # type: ignore[no-untyped-def]
    found = registry.get_household(node().db, household_id)
    if found is None:
        abort(404)
    principal = current_principal()
    assert principal is not None
    audit(node().store, principal.name, "view_household", household_id)
    return render_template("staff/household.html", household=found)


@bp.get("/duplicates")
@require("volunteer")
def duplicates():  # type: ignore[no-untyped-def]
    principal = current_principal()
    assert principal is not None
    audit(node().store, principal.name, "view_duplicates", "-")
    return render_template("staff/duplicates.html", rows=registry.open_duplicates(node().db))


@bp.get("/poster.pdf")
@require("volunteer")
def poster_pdf():  # type: ignore[no-untyped-def]
    settings = get_settings(node().db)
    url = request.args.get("url") or poster.registration_url(request.host_url)
    pdf = poster.poster_pdf(url, settings["shelter_name"], settings["wifi_name"])
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="poster.pdf"'})


@bp.route("/settings", methods=["GET", "POST"])
@require("manager")
def settings_page():  # type: ignore[no-untyped-def]
    errors: dict[str, str] = {}
    if request.method == "POST":
        changes = {k: request.form.get(k, "").strip() for k in ("shelter_name", "wifi_name",
                                                                "capacity")}
        if not changes["shelter_name"] or len(changes["shelter_name"]) > 80:
            errors["shelter_name"] = gettext("This field is required.")
        if len(changes["wifi_name"]) > 32:
            errors["wifi_name"] = gettext("Too long or not valid text.")
        if not changes["capacity"].isdigit() or int(changes["capacity"]) > 100000:
            errors["capacity"] = gettext("Enter a whole number.")
        if not errors:
            current = get_settings(node().db)
            changed = {k: v for k, v in changes.items() if current.get(k) != v}
            if changed:
                change_settings(node().store, changed)
            return redirect(url_for("staff.settings_page", saved=1), code=303)
    return render_template("staff/settings.html", errors=errors,
                           saved=request.args.get("saved")), (400 if errors else 200)
