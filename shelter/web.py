"""What every page and API call shares: who is asking, CSRF, error responses."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import (
    Flask,
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

from .auth import Principal, principal_for_token
from .node import NodeContext

F = TypeVar("F", bound=Callable[..., Any])
# What may be served over plain HTTP on the LAN: evacuees' own phones register there and
# must see their own cards (which are checked against the registering session, not a login).
PLAIN_HTTP_OK = ("kiosk.", "trust.", "static", "api.card_png", "api.cards_pdf")


def node() -> NodeContext:
    return cast(NodeContext, current_app.extensions["shelter"])


def is_api() -> bool:
    return request.path.startswith("/api/")


def error_response(status: int, code: str, message: str, **extra: Any):  # type: ignore[no-untyped-def]
    if is_api() or request.path == "/sync":
        return jsonify({"error": {"code": code, "message": message, **extra}}), status
    return render_template("error.html", status=status, message=message), status


def current_principal() -> Principal | None:
    if "principal" in g:
        return cast(Principal | None, g.principal)
    principal = None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        principal = principal_for_token(node().db, header[7:].strip())
    elif session.get("user") and session.get("role"):
        principal = Principal(session["user"], session["role"])
    g.principal = principal
    return principal


def require(role: str) -> Callable[[F], F]:
    """Only principals of ``role`` or above; people without a session go to the login page."""

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


def csrf_token() -> str:
    token = session.get("csrf")
    if not token:
        token = secrets.token_urlsafe(24)
        session["csrf"] = token
    return cast(str, token)


def _check_request() -> Any:
    https_port = current_app.config.get("HTTPS_PORT")
    if https_port and not (request.endpoint or "").startswith(PLAIN_HTTP_OK) \
            and request.remote_addr not in ("127.0.0.1", "::1"):
        # Staff pages and the API never travel unencrypted over the shelter's Wi-Fi.
        host = request.host.rsplit(":", 1)[0]
        return redirect(f"https://{host}:{https_port}{request.full_path.rstrip('?')}")
    if request.method == "POST" and not is_api():
        sent = request.form.get("csrf", "")
        if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
            from .i18n import gettext
            return error_response(400, "csrf", gettext(
                "This form has expired. Please go back, reload the page and try again."))
    return None


def init_app(app: Flask) -> None:
    app.before_request(_check_request)
