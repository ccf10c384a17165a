"""Staff sign-in and sign-out, the same on both sides: each role's "staff" blueprint (/staff)
starts as :func:`blueprint` and adds its own pages (web/node/staff.py, web/hq/staff.py).
After signing in, a person goes where they were going, else to the role's ``staff.home``."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue

from shelter.domain import signin
from shelter.domain.accounts import audit, authenticate
from shelter.web.base import SESSION_ABSOLUTE_SECONDS, node
from shelter.web.i18n import gettext


def blueprint() -> Blueprint:
    """A new "staff" blueprint holding /staff/login and /staff/logout."""
    bp = Blueprint("staff", __name__, url_prefix="/staff")
    bp.add_url_rule("/login", view_func=login, methods=["GET", "POST"])
    bp.add_url_rule("/logout", view_func=logout, methods=["POST"])
    return bp


def login() -> ResponseReturnValue:
    error: str | None = None
    status = 200
    headers: dict[str, str] = {}
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()[:40]
        ip = request.remote_addr or "-"
        store = node().store
        try:
            attempt = signin.begin_attempt(store, username or "-", ip)
        except signin.TooManyAttempts as wait:
            audit(store, username or "-", "login_refused", "-", f"ip={ip}")
            error, status = wait.text(gettext), wait.status
            headers.update(wait.headers())  # Retry-After
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
                    # A kiosk account has no staff pages: its tablet goes into kiosk mode.
                    target = url_for("kiosk.kiosk_mode" if principal.role == "kiosk"
                                     else "staff.home")
                return redirect(target, code=303)
    # After a refusal the name stays filled in: only the password is typed again.
    return render_template("staff/login.html", error=error, username=username), status, headers


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


def logout() -> ResponseReturnValue:
    sid = session.get("sid")
    if isinstance(sid, str):
        signin.end_session(node().store, sid)  # a copy of the cookie is worth nothing now
    lang = session.get("lang")
    session.clear()
    if lang:
        session["lang"] = lang
    return redirect(url_for("staff.login"), code=303)
