"""What every page and API call shares: who is asking, CSRF, error responses."""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlparse

from flask import (
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_sock import Sock

from shelter.core.node import NodeContext
from shelter.domain import signin
from shelter.domain.accounts import ROLES, Principal, principal_for_token
from sync.ws_link import finish_session

F = TypeVar("F", bound=Callable[..., Any])
# The websocket routes of both roles (desk /live and /camera, HQ /sync and /live).
sock = Sock()
# What may be served over plain HTTP on the LAN: evacuees' own phones register there and
# must see their own cards (which are checked against the registering session, not a login),
# and make their household code (/prepare, which keeps nothing).
PLAIN_HTTP_OK = ("kiosk.", "trust.", "static", "api.card_png", "api.cards_pdf",
                 "prepare.")
# A sign-in lasts at most one long shift, however busy; PERMANENT_SESSION_LIFETIME (idle
# time) ends it sooner on a tablet left alone. Both are checked against the session's row
# in the database (shelter/domain/signin.py), not against what the cookie says.
SESSION_ABSOLUTE_SECONDS = 14 * 3600


def node() -> NodeContext:
    return cast(NodeContext, current_app.extensions["shelter"])


def is_api() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str,
                   **extra: Any) -> tuple[Response | str, int]:
    """The answer to a refusal: JSON under /api/ (and /sync), else the error page."""
    if is_api() or request.path == "/sync":
        return jsonify({"error": {"code": code, "message": message, **extra}}), status
    return render_template("error.html", status=status, message=message), status


def current_principal() -> Principal | None:
    """Who is asking: a bearer token, else the signed-in session; None for anyone else, and
    for a principal whose role belongs to the other side (a node role at HQ, or the other
    way round): it reaches nothing here."""
    if "principal" in g:
        return cast(Principal | None, g.principal)
    principal = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        principal = principal_for_token(node().db, header[7:].strip(), node().role)
    elif isinstance(session.get("sid"), str):
        principal = signin.session_principal(
            node().store, session["sid"], node().role, SESSION_ABSOLUTE_SECONDS,
            current_app.permanent_session_lifetime.total_seconds())
    g.principal = principal
    return principal


RECHECK_SECONDS = 30.0  # how often a long-lived socket asks again who holds it


class Recheck:
    """For a socket that stays open for hours (live screens): whether whoever opened it
    still may, asked again every RECHECK_SECONDS, so logging out, disabling the account or
    expiry closes it too, not only the next page."""

    def __init__(self, role: str) -> None:
        self.role, self.at = role, time.monotonic()

    def still_allowed(self) -> bool:
        if time.monotonic() - self.at < RECHECK_SECONDS:
            return True
        self.at = time.monotonic()
        g.pop("principal", None)
        principal = current_principal()
        return principal is not None and principal.can(self.role)


def require(role: str) -> Callable[[F], F]:
    """Only principals of ``role`` or above on its own side (``require("admin")`` for what
    only HQ's admins may do: accounts, enrollment codes, revocation); people without a
    session go to the login page."""
    if not any(role in roles for roles in ROLES.values()):
        raise ValueError(f"unknown role {role!r}")

    def wrap(view: F) -> F:
        @wraps(view)
        def inner(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                if is_api():
                    abort(401)
                return redirect(url_for("staff.login", next=request.full_path))
            if not principal.can(role):
                abort(403)
            return view(*args, **kwargs)

        return cast(F, inner)

    return wrap


SOCKET_CLOSE_SECONDS = 5.0


def websocket_view(view: F) -> F:
    """For every websocket route (under ``sock.route``): when the view ends, close the socket
    and wait for simple-websocket's reader thread to stop before gunicorn closes the socket.

    Otherwise that thread can still be inside OpenSSL's read, which holds the file descriptor
    by number; gunicorn closes it, the next connection accepted gets the same number, and
    the dead session reads the newcomer's TLS handshake (seen as "unexpected message" on
    connections right after a refused sync session).
    """

    @wraps(view)
    def inner(ws: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return view(ws, *args, **kwargs)
        finally:
            finish_session(ws, SOCKET_CLOSE_SECONDS)

    return cast(F, inner)


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return cast(str, token)


def check_request() -> ResponseReturnValue | None:
    """Before every view (shelter/web/hooks.py): plain HTTP only for what may travel so,
    CSRF on every form and on the API called with a session, websockets from our pages."""
    https_port = current_app.config.get("HTTPS_PORT")
    if https_port and not (request.endpoint or "").startswith(PLAIN_HTTP_OK) \
            and request.remote_addr not in ("127.0.0.1", "::1"):
        # Staff pages and the API never travel unencrypted over the shelter's Wi-Fi.
        host = request.host.rsplit(":", 1)[0]
        return redirect(f"https://{host}:{https_port}{request.full_path.rstrip('?')}")
    if request.method in ("POST", "PUT", "PATCH", "DELETE") and is_api() \
            and not request.headers.get("Authorization") and session.get("sid"):
        # The pages call the API with their session cookie: they must prove they are ours.
        sent = request.headers.get("X-CSRF-Token", "")
        if not sent or not hmac.compare_digest(  # bytes: a non-ASCII str raises TypeError
                sent.encode(), session.get("csrf", "").encode()):
            from shelter.web.i18n import gettext
            return error_response(403, "csrf", gettext(
                "This page has expired. Please reload it and try again."))
    if request.environ.get("HTTP_UPGRADE", "").lower() == "websocket":
        origin = request.headers.get("Origin")
        if origin and urlparse(origin).netloc != request.host:
            return error_response(403, "forbidden", "cross-site websocket refused")
    if request.method == "POST" and not is_api():
        sent = request.form.get("csrf", "")
        if not sent or not hmac.compare_digest(  # bytes: a non-ASCII str raises TypeError
                sent.encode(), session.get("csrf", "").encode()):
            from shelter.web.i18n import gettext
            return error_response(400, "csrf", gettext(
                "This form has expired. Please go back, reload the page and try again."))
    return None

