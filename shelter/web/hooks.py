"""What runs around every request, of either role: its language, one strict reading of what
came in, the HTTPS and CSRF checks (shelter/web/base.py) and the security headers. Errors,
HTTP's and ours, are answered in shelter/web/errors.py.
"""

from __future__ import annotations

from flask import Flask, Response, g, request

from shelter.web import base, i18n, inputs

# The pages evacuees and the public meet speak all five languages; staff pages Japanese
# and English. Blueprints (None: the app's own, e.g. static).
EVERY_LANGUAGE = ("kiosk", "arrival", "prepare", "api", "public", None)


def init_app(app: Flask) -> None:
    base.sock.init_app(app)
    app.before_request(_language)
    app.before_request(_readable_input)
    app.before_request(base.check_request)  # after the language: its refusals are translated
    app.after_request(_headers)


def _language() -> None:
    allowed = tuple(i18n.LANGUAGES) if request.blueprint in EVERY_LANGUAGE \
        else i18n.STAFF_LANGUAGES
    g.lang = i18n.pick_language(allowed)
    g.languages_offered = allowed


def _readable_input() -> None:
    """Before anything reads the body or the query (web's checks read the form): one strict
    reading for every route of both roles, so no view meets what cannot be kept. What
    cannot be read raises inputs.MalformedInput (400), answered by shelter/web/errors.py."""
    inputs.check_request(request)


def _headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
        "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
    # Pages that show people (names at the desk, enquiries at HQ) stay out of any cache.
    # The public feed is the exception: other sites may cache it (web/hq/public.py).
    if request.path.startswith(("/register", "/staff", "/api/", "/desk", "/hq", "/kiosk")) \
            and not request.path.startswith("/api/v1/public/"):
        response.headers["Cache-Control"] = "no-store"
    return response
