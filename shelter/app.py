"""The application factory: one package, two roles ("node" for a shelter, "hq")."""

from __future__ import annotations

import logging
import secrets
import traceback
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, request
from werkzeug.exceptions import HTTPException

import shelter.hq  # noqa: F401  (the domain's projections, HQ's store hooks)
from shelter.core.node import NodeContext
from shelter.web import i18n, inputs, labels

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("shelter")


def create_app(data_dir: str | Path | None = None, role: str = "node",
               test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask("shelter", template_folder=str(ROOT / "templates"),
                static_folder=str(ROOT / "static"))
    app.config.from_mapping(
        DATA_DIR=str(data_dir) if data_dir else "data",
        ROLE=role,  # "node" or "hq"; must match the data directory's
        SHELTER_ID=None,
        CLOCK_OFFSET_SECONDS=0.0,
        MAX_CONTENT_LENGTH=256 * 1024,
        SESSION_COOKIE_NAME="shelter_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=False,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=4),  # idle time; see web.py
        HTTPS_PORT=None,  # set when this server is the plain-HTTP one beside an HTTPS one
        JSON_SORT_KEYS=False,
        # Websockets. No protocol-level pings: simple-websocket then waits in select() on
        # the raw socket, which misses data TLS has already buffered, and a camera frame
        # would sit unread for a whole ping interval. The live screen sends its own
        # keepalive instead. A camera frame is a small JPEG.
        SOCK_SERVER_OPTIONS={"max_message_size": 1_500_000},
    )
    app.config.from_prefixed_env("SHELTER")
    if test_config:
        app.config.update(test_config)
    node = NodeContext(app.config["DATA_DIR"], role=app.config["ROLE"],
                       shelter_id=app.config["SHELTER_ID"],
                       clock_offset_seconds=float(app.config["CLOCK_OFFSET_SECONDS"]))
    app.extensions["shelter"] = node
    app.secret_key = node.secret_key
    app.json.ensure_ascii = False  # type: ignore[attr-defined]  # Japanese stays readable
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True)
    app.jinja_env.policies["ext.i18n.trimmed"] = True

    from shelter.web import base, trust
    from shelter.web.node import api, desk, kiosk, staff, supplies_pages

    @app.before_request
    def _language() -> None:
        allowed = tuple(i18n.LANGUAGES) if request.blueprint in ("kiosk", "api", None) \
            else i18n.STAFF_LANGUAGES
        g.lang = i18n.pick_language(allowed)
        g.languages_offered = allowed

    @app.before_request
    def _readable_input():  # type: ignore[no-untyped-def]
        # Before anything reads the body or the query (web's checks read the form): one
        # strict reading for every route of both roles, so no view meets what cannot be kept.
        try:
            inputs.check_request(request)
        except inputs.MalformedInput as refused:
            return base.error_response(400, refused.code, _malformed_message(refused.reason))
        return None

    base.sock.init_app(app)
    base.init_app(app)  # after the language is known: its refusals are translated
    app.register_blueprint(staff.bp)
    app.register_blueprint(trust.bp)
    if node.role == "hq":
        from shelter.hq import stats
        from shelter.web.hq import api as hq_api
        from shelter.web.hq import pages, public
        app.register_blueprint(hq_api.bp)
        app.register_blueprint(hq_api.api)
        app.register_blueprint(pages.bp)
        app.register_blueprint(public.bp)
        stats.ensure_refresher(node)
    else:
        app.register_blueprint(kiosk.bp)
        app.register_blueprint(api.bp)
        app.register_blueprint(desk.bp)
        app.register_blueprint(supplies_pages.bp)

    @app.template_filter("jst")
    def _jst(iso: str, seconds: bool = False) -> str:
        """A stored UTC time as the shelter reads a clock: Japan time, HH:MM."""
        from datetime import datetime

        from shelter.domain.supplies import JST
        try:
            moment = datetime.fromisoformat(iso).astimezone(JST)
        except (TypeError, ValueError):
            return ""
        return moment.strftime("%H:%M:%S" if seconds else "%H:%M")

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        from shelter.domain.settings import get_settings
        lang = i18n.current()
        settings = get_settings(node.db)
        return {
            # What the header and titles name: the shelter, or the HQ.
            "brand": i18n.gettext("Prefecture HQ") if node.role == "hq"
            else settings["shelter_name"],
            "lang": lang, "html_lang": i18n.LANGUAGES[lang][2],
            "languages": i18n.LANGUAGES, "staff_languages": i18n.STAFF_LANGUAGES,
            "csrf_token": base.csrf_token, "principal": base.current_principal(),
            "desk_labels": labels.desk,
            "settings": settings,
        }

    @app.after_request
    def _headers(response):  # type: ignore[no-untyped-def]
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault(
            "Content-Security-Policy",
            "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
            "script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
        if request.path.startswith(("/register", "/staff", "/api/")):
            response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):  # type: ignore[no-untyped-def]
        if error.response is not None:
            return error.response  # already a full answer (abort(make_response(...)))
        if error.code == 413:
            _drain(request.environ)
        response = base.error_response(error.code or 500, _code_for(error.code or 500),
                                      _message_for(error.code or 500))
        allowed = getattr(error, "valid_methods", None)
        if allowed:  # a 405 says what is allowed (RFC 9110)
            body, status = response
            return body, status, {"Allow": ", ".join(sorted(allowed))}
        return response

    @app.errorhandler(Exception)
    def _unexpected(error: Exception):  # type: ignore[no-untyped-def]
        # Never a stack trace to the client; the log gets the type only (no personal data).
        incident = secrets.token_hex(4)
        # The message may quote what someone typed: log where it failed, not what it said.
        log.error("unexpected error %s (%s) at\n%s", incident, type(error).__name__,
                  "".join(traceback.format_tb(error.__traceback__)))
        return base.error_response(500, "internal", i18n.gettext(
            "Something went wrong. Nothing you entered was saved twice; please try again."))

    return app


DRAIN_LIMIT = 4 * 1024 * 1024


def _drain(environ: dict[str, Any]) -> None:
    """Read (and drop) an oversize body before answering, up to a limit.

    Answering while the client is still sending makes the server close the connection
    under it: over TLS the client sees a broken pipe instead of our 413 and its message.
    """
    stream = environ.get("wsgi.input")
    remaining = min(int(environ.get("CONTENT_LENGTH") or 0), DRAIN_LIMIT)
    try:
        while stream is not None and remaining > 0:
            chunk = stream.read(min(65536, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
    except OSError:
        pass


def _malformed_message(reason: str) -> str:
    _ = i18n.gettext
    return {
        "syntax": _("The JSON could not be read."),
        "depth": _("The JSON is nested too deeply."),
    }.get(reason) or _("Some of the text sent could not be read. Please type it again.")


def _code_for(status: int) -> str:
    return {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
            405: "method_not_allowed", 413: "too_large", 415: "unsupported_media_type",
            429: "too_many_requests"}.get(status, "error")


def _message_for(status: int) -> str:
    _ = i18n.gettext
    return {
        400: _("The request could not be understood."),
        401: _("Please sign in."),
        403: _("You do not have access to this."),
        404: _("This page does not exist."),
        405: _("This action is not allowed here."),
        413: _("What was sent is too large."),
        415: _("Send the data as JSON."),
        429: _("Too many attempts. Please wait a moment."),
    }.get(status, _("Something went wrong. Please try again."))
