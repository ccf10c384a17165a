"""The translation catalogs: Babel, read from ``shelter/translations/<lang>/LC_MESSAGES``.

Message ids are English. Catalogs are read from their .po files and compiled in memory when
first used, so there is no generated file to forget. Japanese is the default language; the
self-registration pages also speak Chinese (simplified), Korean and Vietnamese, staff pages
Japanese and English. The web picks a request's language (shelter/web/i18n.py); PDFs are
made in the language they are asked for.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

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


def translate_errors(errors: dict[str, str], lang: str) -> dict[str, str]:
    t = translations(lang)
    return {field: t.gettext(message) for field, message in errors.items()}
