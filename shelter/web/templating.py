"""What every template has: translation (``_`` and ``{% trans %}``), the ``jst`` filter, and
the globals of the page (language, who is signed in, CSRF, settings), with what differs by
role handed in by the factory as a :class:`Look`: templates never ask the role."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Flask

from shelter.domain.settings import get_settings
from shelter.render import words
from shelter.render.times import japan_date, japan_datetime, japan_time
from shelter.web import base, i18n, labels


@dataclass(frozen=True)
class Look:
    """What the pages both roles share (the header, the staff menu, the error page) show."""

    start: str  # the endpoint "Back to the start" leads to
    staff_menu: str  # the template of the staff pages' menu
    brand: str | None = None  # the header's name (a message id); None: the shelter's name


def init_app(app: Flask, look: Look) -> None:
    app.jinja_env.add_extension("jinja2.ext.i18n")
    app.jinja_env.install_gettext_callables(  # type: ignore[attr-defined]
        i18n.gettext, i18n.ngettext, newstyle=True)
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.add_template_filter(japan_time, "jst")  # Japan time, HH:MM (static/live.js: twin)
    app.add_template_filter(japan_datetime, "jst_datetime")  # YYYY-MM-DD HH:MM, Japan time
    app.add_template_filter(japan_date, "jst_date")  # YYYY-MM-DD, the Japan-time day
    # An item's quantity and unit in words (render/words.py): {{ n|quantity(unit) }} is
    # "900食" / "900 meals"; {{ unit|unit }} is "食" / "meals"; a unit a manager typed as typed.
    app.add_template_filter(lambda n, unit: words.quantity(n, unit, i18n.gettext), "quantity")
    app.add_template_filter(lambda unit: words.units(i18n.gettext).get(unit, unit), "unit")

    @app.context_processor
    def _template_globals() -> dict[str, Any]:
        lang = i18n.current()
        settings = get_settings(base.node().db)
        return {
            # What the header and titles name: the shelter, or the HQ.
            "brand": i18n.gettext(look.brand) if look.brand else settings["shelter_name"],
            "start_page": look.start, "staff_menu": look.staff_menu,
            "lang": lang, "html_lang": i18n.LANGUAGES[lang][2],
            "languages": i18n.LANGUAGES, "staff_languages": i18n.STAFF_LANGUAGES,
            "csrf_token": base.csrf_token, "principal": base.current_principal(),
            "desk_labels": labels.desk,
            "settings": settings,
        }
