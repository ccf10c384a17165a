"""The translation layer: Babel catalogs (``shelter/translations/<lang>/LC_MESSAGES``).

Message ids are English. Catalogs are read from their .po files and compiled in memory when
the app starts, so there is no generated file to forget. Japanese is the default language;
the self-registration pages also speak Chinese (simplified), Korean and Vietnamese, staff
pages Japanese and English.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import g, request, session

TRANSLATIONS_DIR = Path(__file__).resolve().parent.parent / "translations"
# code -> (name in its own language, Babel locale directory, html lang attribute)
LANGUAGES: dict[str, tuple[str, str, str]] = {
    "ja": ("日本語", "ja", "ja"),
    "en": ("English", "en", "en"),
    "zh": ("简体中文", "zh_Hans", "zh-Hans"),
    "ko": ("한국어", "ko", "ko"),
    "vi": ("Tiếng Việt", "vi", "vi"),
}
STAFF_LANGUAGES = ("ja", "en")
DEFAULT = "ja"


@cache
def translations(lang: str) -> NullTranslations:
    path = TRANSLATIONS_DIR / LANGUAGES[lang][1] / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=LANGUAGES[lang][1])
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return Translations(fp=buf)


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


def translate_errors(errors: dict[str, str], lang: str) -> dict[str, str]:
    t = translations(lang)
    return {field: t.gettext(message) for field, message in errors.items()}
