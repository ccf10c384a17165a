"""One error tree: every refusal the system makes on purpose, said one way.

A :class:`ShelterError` carries a stable machine ``code`` (snake_case: the API's
``{"error": {"code", "message"}}``), an English ``message`` template marked for the
catalogs (``%(name)s`` filled from ``params``) and the HTTP ``status`` that fits. The core
and the domain only say what went wrong; the web translates it and answers, JSON under
/api/ or the error page, in one handler (shelter/web/errors.py). Nothing here knows Flask.

The kinds, each with its status, code and message (raised as they are, or subclassed)::

    ShelterError                 400 error
      InvalidInput               422 invalid   (400 for what cannot even be read)
      NotFound                   404 not_found
      Forbidden                  403 forbidden
      Conflict                   409 conflict
      TooMany                    429 too_many_requests
      Internal                   500 internal  a fault of ours, never the asker's: answered
                                               and logged as any unexpected error

Where each named error of the system sits:

    InvalidInput   households.ValidationError, cards.CardError, accounts.RoleError,
                   presence.ScanError and supplies.SupplyError (these two choose their
                   status per refusal: 404 for an unknown card, 409 for a conflict...),
                   clock.ClockDriftError, shelters.ImportProblem,
                   inputs.MalformedInput (400), sync.protocol.ProtocolError (400),
                   sync.bundle.BundleRefused (400), household_code.HouseholdCodeError
    Conflict       households.CodeTaken (a household code whose ids are someone else's)
    Forbidden      sync.enrollment.EnrollmentError, sync.client.SyncRefused,
                   sync.standby.StandbyError
    TooMany        signin.TooManyAttempts
    Internal       authority.Refused, events.UnknownEventType (bugs, never user input)
    ShelterError   commands.common.ShelterCommandError (also a click exception: the CLI prints it)

``str(error)`` stays the English detail the raiser gave, for logs and the CLI; ``message``
is what a person is shown, translated where they read it. Errors between machines
(ProtocolError, EnrollmentError, SyncRefused) and the CLI's keep their ``message`` as
English detail, as their peers read it; their class's ``message`` is the catalog's.
Errors that were ``ValueError`` before stay ``ValueError`` too, for the callers that
catch one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def N_(message: str) -> str:
    """Marks a message id for the catalogs; it is translated where a person reads it."""
    return message


def _same(message: str) -> str:
    return message


def fill(template: str, english: str, params: Mapping[str, Any]) -> str:
    """``template`` (a translation of ``english``) with ``params`` put in; the English when a
    translation does not fit its parameters."""
    if not params:
        return template
    for text in (template, english):
        try:
            return text % params
        except (KeyError, TypeError, ValueError):
            continue
    return english


class ShelterError(Exception):
    """A refusal: nothing was changed. Raise a kind below, or a named subclass of one.

    ``message`` and the messages in ``fields`` (field name -> message id, for forms and the
    API's ``fields``) share ``params``. ``language``: the language the asker chose in what
    they sent (a registration says which), that field messages are given in; None: the
    request's.
    """

    code: str = "error"
    status: int = 400
    message: str = N_("The request could not be understood.")
    language: str | None = None

    def __init__(self, message: str | None = None, /, *, code: str | None = None,
                 status: int | None = None, detail: str | None = None,
                 fields: Mapping[str, str] | None = None, **params: Any) -> None:
        if message is not None:
            self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.params: dict[str, Any] = dict(params)
        self.fields: dict[str, str] = dict(fields or {})
        super().__init__(self.text() if detail is None else detail)

    def text(self, gettext: Callable[[str], str] = _same) -> str:
        """The message for a person, through ``gettext`` (by default the English)."""
        return fill(gettext(self.message), self.message, self.params)

    def field_texts(self, gettext: Callable[[str], str] = _same) -> dict[str, str]:
        """Each field's message, through ``gettext``."""
        return {field: fill(gettext(message), message, self.params)
                for field, message in self.fields.items()}

    def extra(self) -> dict[str, Any]:
        """Further members of the API's error object, beside code, message and fields."""
        return {}

    def headers(self) -> dict[str, str]:
        """HTTP headers that belong with the answer."""
        return {}


class InvalidInput(ShelterError):
    """What was sent cannot be used (422), or cannot even be read (400)."""

    code = "invalid"
    status = 422
    message = N_("What was sent cannot be used. Check it and try again.")


class NotFound(ShelterError):
    """Nothing here by that id, or nothing the asker may know of (the same answer)."""

    code = "not_found"
    status = 404
    message = N_("This was not found.")


class Forbidden(ShelterError):
    """The asker may not do this."""

    code = "forbidden"
    status = 403
    message = N_("You do not have access to this.")


class Conflict(ShelterError):
    """Not in the state things are in now (already done, not enough left...)."""

    code = "conflict"
    status = 409
    message = N_("This cannot be done as things are now. Reload and check.")


class TooMany(ShelterError):
    """Not yet: ``retry_after`` seconds until it may be tried again (None: not known)."""

    code = "too_many_requests"
    status = 429
    message = N_("Too many attempts. Please wait a moment.")
    retry_after: int | None = None

    def headers(self) -> dict[str, str]:
        return {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}


class Internal(ShelterError):
    """A fault of ours (a bug), never the asker's: answered as any unexpected error."""

    code = "internal"
    status = 500
    message = N_("Something went wrong. Nothing you entered was saved twice; please try "
                 "again.")
