"""Staff pages: sign in, households, likely duplicates, the registration poster, settings."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, Response, abort, redirect, render_template, request, session, url_for

from shelter.domain import households, presence, signin
from shelter.domain.accounts import (
    MIN_PASSWORD,
    NODE_ROLES,
    add_user,
    audit,
    authenticate,
    is_common_password,
    list_users,
    set_user_disabled,
)
from shelter.domain.settings import change_settings, get_settings
from shelter.render import poster
from shelter.web import labels
from shelter.web.base import SESSION_ABSOLUTE_SECONDS, current_principal, node, require
from shelter.web.i18n import gettext

bp = Blueprint("staff", __name__, url_prefix="/staff")


@bp.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    error, status, headers = None, 200, {}
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:40]
        ip = request.remote_addr or "-"
        store = node().store
        try:
            attempt = signin.begin_attempt(store, username or "-", ip)
        except signin.TooManyAttempts as wait:
            audit(store, username or "-", "login_refused", "-", f"ip={ip}")
            error, status = wait_message(wait.seconds), 429
            headers["Retry-After"] = str(wait.seconds)
        else:
            principal = authenticate(node().db, username, request.form.get("password", ""),
                                     node().role)
            signin.end_attempt(store, attempt, principal is not None)
            if principal is None:
                error, status = gettext("Wrong user name or password."), 401
                audit(store, username or "-", "login_failed", "-", f"ip={ip}")
            else:
                _start_session(principal.name)
                audit(store, principal.name, "login", "-", f"ip={ip}")
                target = request.args.get("next", "")
                # Only paths on this node: never an open redirect.
                if not target.startswith("/") or target.startswith("//") \
                        or urlparse(target).netloc:
                    target = url_for("staff.home")
                return redirect(target, code=303)
    # After a refusal the name stays filled in: only the password is typed again.
    return render_template("staff/login.html", error=error, username=username), status, headers


def wait_message(seconds: int) -> str:
    if seconds == 1:
        return gettext("Too many attempts. Try again in 1 second.")
    return gettext("Too many attempts. Try again in %(seconds)s seconds.", seconds=seconds)


def _start_session(username: str) -> None:
    """A new session (a new id and CSRF token: nothing from before the sign-in carries
    over, except the language)."""
    old = session.get("sid")
    if isinstance(old, str):
        signin.end_session(node().store, old)
    lang = session.get("lang")
    session.clear()
    session.permanent = True
    session["sid"] = signin.start_session(node().store, username, SESSION_ABSOLUTE_SECONDS)
    if lang:
        session["lang"] = lang


@bp.before_request
def _hq_has_its_own_pages():  # type: ignore[no-untyped-def]
    """At HQ the shelter pages (households, duplicates, poster, settings) do not apply."""
    if node().role == "hq" and request.endpoint not in ("staff.login", "staff.logout"):
        return redirect(url_for("hq_pages.dashboard"))
    return None


@bp.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    sid = session.get("sid")
    if isinstance(sid, str):
        signin.end_session(node().store, sid)  # a copy of the cookie is worth nothing now
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
        "staff/home.html", households=households.list_households(db),
        duplicates=len(households.open_duplicates(db)),
        people=db.execute("SELECT count(*) FROM persons").fetchone()[0])


@bp.get("/households/<household_id>")
@require("volunteer")
def household(household_id: str):  # type: ignore[no-untyped-def]
    ctx = node()
    found = households.get_household(ctx.db, household_id)
    if found is None:
        abort(404)
    principal = current_principal()
    assert principal is not None
    audit(ctx.store, principal.name, "view_household", household_id)
    return render_template("staff/household.html",
                           household=presence.household_presence(ctx.db, found, ctx.shelter_id),
                           labels=labels.desk(), scanning=True)


@bp.get("/duplicates")
@require("volunteer")
def duplicates():  # type: ignore[no-untyped-def]
    principal = current_principal()
    assert principal is not None
    audit(node().store, principal.name, "view_duplicates", "-")
    return render_template("staff/duplicates.html", rows=households.open_duplicates(node().db))


@bp.get("/poster.pdf")
@require("volunteer")
def poster_pdf():  # type: ignore[no-untyped-def]
    settings = get_settings(node().db)
    url = request.args.get("url") or poster.registration_url(request.host_url)
    if len(url) > 500:  # no QR code holds much more; an address is far shorter
        abort(400)
    pdf = poster.poster_pdf(url, settings["shelter_name"], settings["wifi_name"])
    return Response(pdf, mimetype="application/pdf",
                    headers={"Content-Disposition": 'inline; filename="poster.pdf"'})


@bp.route("/settings", methods=["GET", "POST"])
@require("manager")
def settings_page():  # type: ignore[no-untyped-def]
    errors: dict[str, str] = {}
    if request.method == "POST":
        changes = {k: request.form.get(k, "").strip() for k in (
            "shelter_name", "wifi_name", "capacity", "crowding_busy", "crowding_crowded",
            "crowding_full")}
        if not changes["shelter_name"] or len(changes["shelter_name"]) > 80:
            errors["shelter_name"] = gettext("This field is required.")
        if len(changes["wifi_name"]) > 32:
            errors["wifi_name"] = gettext("Too long or not valid text.")
        for key in ("capacity", "crowding_busy", "crowding_crowded", "crowding_full"):
            if not (changes[key].isascii() and changes[key].isdigit()) \
                    or len(changes[key]) > 6 or int(changes[key]) > 100000:
                errors[key] = gettext("Enter a whole number.")
        if not errors and not (0 < int(changes["crowding_busy"]) < int(
                changes["crowding_crowded"]) <= int(changes["crowding_full"])):
            errors["crowding_crowded"] = gettext(
                "Each level must start above the one before it.")
        if not errors:
            current = get_settings(node().db)
            changed = {k: v for k, v in changes.items() if current.get(k) != v}
            if changed:
                change_settings(node().store, changed)
            return redirect(url_for("staff.settings_page", saved=1), code=303)
    return render_template("staff/settings.html", errors=errors,
                           saved=request.args.get("saved")), (400 if errors else 200)


@bp.route("/users", methods=["GET", "POST"])
@require("manager")
def users():  # type: ignore[no-untyped-def]
    """Managers add desk and kiosk accounts, and disable one that is lost or misused."""
    errors: dict[str, str] = {}
    actor = current_principal()
    assert actor is not None
    if request.method == "POST":
        form = request.form
        if form.get("disable") or form.get("enable"):
            username = form.get("disable") or form.get("enable") or ""
            if username == actor.name:
                errors["username"] = gettext("You cannot disable your own account.")
            else:
                try:
                    set_user_disabled(node().store, username, bool(form.get("disable")))
                    audit(node().store, actor.name,
                          "disable_user" if form.get("disable") else "enable_user", username)
                except ValueError:
                    abort(404)
        else:
            username, password = form.get("username", "").strip(), form.get("password", "")
            role = form.get("role", "")
            if not username or len(username) > 40 or not username.isprintable() \
                    or " " in username:
                errors["username"] = gettext("1 to 40 letters or digits, without spaces.")
            elif node().db.execute("SELECT 1 FROM users WHERE username = ?",
                                   [username]).fetchone():
                errors["username"] = gettext("This user name is taken.")
            if len(password) < MIN_PASSWORD:
                errors["password"] = gettext("At least 8 characters.")
            elif is_common_password(username, password):
                errors["password"] = gettext("This password is too common.")
            if role not in NODE_ROLES:
                errors["role"] = gettext("Choose one of the options.")
            if not errors:
                add_user(node().store, username, password, role)
                audit(node().store, actor.name, "add_user", username, role)
        if not errors:
            return redirect(url_for("staff.users", saved=1), code=303)
    return render_template("staff/users.html", users=list_users(node().db), errors=errors,
                           roles=NODE_ROLES, saved=request.args.get("saved")), \
        (400 if errors else 200)


AUDIT_PAGE = 100


@bp.get("/audit")
@require("manager")
def audit_log():  # type: ignore[no-untyped-def]
    """Who looked at or changed what. Reading the log is itself recorded."""
    actor = current_principal()
    assert actor is not None
    who = request.args.get("actor", "").strip()[:40]
    before = request.args.get("before", "")
    clauses, params = [], []
    if who:
        clauses.append("actor = ?")
        params.append(who)
    if before.isascii() and before.isdigit():
        clauses.append("audit_id < ?")
        params.append(before)
    where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = list(node().db.query(
        f"SELECT * FROM audit_log {where} ORDER BY audit_id DESC LIMIT ?",
        [*params, AUDIT_PAGE]))
    audit(node().store, actor.name, "view_audit_log", who or "-")
    return render_template("staff/audit.html", rows=rows, who=who,
                           more=rows[-1]["audit_id"] if len(rows) == AUDIT_PAGE else None)
