"""The one place an error becomes an answer: a view raises a named error (a
:class:`~shelter.core.errors.ShelterError`, or werkzeug's ``abort``) and never formats one
itself.

Under /api/ (and /sync) the answer is JSON, ``{"error": {"code", "message"[, "fields"]}}``;
anywhere else the error page (templates/error.html); both with the error's status and its
message in the request's language (``base.error_response`` decides which). A refusal that a
person corrects on the same form (the kiosk's registration, the supply forms, the desk's
scan, sign-in) is caught by its view and shown on the form again, with what they typed:
these handlers are for errors that end the request. Errors of ours (5xx, and anything
unexpected) are logged under an incident number and never show their detail.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from typing import Any

from flask import Flask, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from shelter.core.errors import Internal, ShelterError
from shelter.web import base, i18n

log = logging.getLogger("shelter")
DRAIN_LIMIT = 4 * 1024 * 1024


def init_app(app: Flask) -> None:
    app.register_error_handler(ShelterError, answer)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)


def answer(error: ShelterError) -> ResponseReturnValue:
    """The answer to a refusal, with its code, status, fields and headers."""
    if error.status >= 500:
        incident(error)
    extra: dict[str, Any] = {}
    if error.fields:
        lang = error.language if error.language in i18n.LANGUAGES else i18n.current()
        extra["fields"] = error.field_texts(i18n.translations(lang).gettext)
    extra.update(error.extra())
    body, status = base.error_response(error.status, error.code, error.text(i18n.gettext),
                                       **extra)
    return body, status, error.headers()


def http_error(error: HTTPException) -> ResponseReturnValue:
    """``abort(status)``, an unknown path, a wrong method, a body too large..."""
    if error.response is not None:
        return error.response  # already a full answer (abort(make_response(...)))
    if error.code == 413:
        _drain(request.environ)
    body, status = base.error_response(error.code or 500, _code_for(error.code or 500),
                                       _message_for(error.code or 500))
    allowed = getattr(error, "valid_methods", None)
    if allowed:  # a 405 says what is allowed (RFC 9110)
        return body, status, {"Allow": ", ".join(sorted(allowed))}
    return body, status


def unexpected(error: Exception) -> ResponseReturnValue:
    """A bug: never a stack trace to the client, the same answer as an Internal error."""
    incident(error)
    return base.error_response(500, Internal.code, i18n.gettext(Internal.message))


def incident(error: BaseException) -> str:
    """Log an error of ours under a new incident number and return it. The log gets the
    type and where it failed, never the message: it may quote what someone typed."""
    number = secrets.token_hex(4)
    log.error("unexpected error %s (%s) at\n%s", number, type(error).__name__,
              "".join(traceback.format_tb(error.__traceback__)))
    return number


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
