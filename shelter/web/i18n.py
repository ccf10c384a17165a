"""The translation layer on the web: the language of this request, and gettext in it.

Message ids are English. Catalogs are read from their .po files and compiled in memory when
the app starts, so there is no generated file to forget. Japanese is the default language;
the self-registration pages and the public page also speak Chinese (simplified), Korean
and Vietnamese (shelter/web/hooks.py: EVERY_LANGUAGE), staff pages Japanese and English.
"""

from __future__ import annotations

from flask import g, request, session

from shelter.render.catalogs import (
    DEFAULT,
    LANGUAGES,
    STAFF_LANGUAGES,
    translate_errors,
    translations,
)

__all__ = ["DEFAULT", "LANGUAGES", "STAFF_LANGUAGES", "current", "gettext", "ngettext",
           "pick_language", "translate_errors", "translations"]

def pick_language(allowed: tuple[str, ...] = tuple(LANGUAGES)) -> str:
    """?lang= (remembered in the session), then the session, then the browser, then ja."""
    asked = request.args.get("lang")
    if asked in allowed:
        session["lang"] = asked
        return asked
    remembered = session.get("lang")
    if remembered in allowed:
        return remembered
    best = request.accept_languages.best_match(
        [LANGUAGES[code][2] for code in allowed] + list(allowed))
    for code in allowed:
        if best and (best == code or best == LANGUAGES[code][2] or best.startswith(code)):
            return code
    return DEFAULT


def current() -> str:
    return getattr(g, "lang", DEFAULT)


def gettext(message: str, **variables: object) -> str:
    text = translations(current()).gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, n: int, **variables: object) -> str:
    text = translations(current()).ngettext(singular, plural, n)
    return text % {"num": n, **variables}


_ = gettext
