"""HQ's large map, the one the meeting looks at: the whole prefecture, or one municipality
(``?m=NAME``: its outline fills the view), with the legend, a list to zoom from, and the
chosen municipality's figures. Dots follow the shelters live (static/hq-map.js)."""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request, url_for

from shelter.hq import board, outlines, stats
from shelter.hq.shelters import ATTRIBUTION
from shelter.render import mapping
from shelter.web import i18n, labels
from shelter.web.base import node, require

bp = Blueprint("hq_map", __name__)


def zoom_url() -> str:
    """Where an outline leads, less the municipality's name."""
    return url_for("hq_map.map_page") + "?m="


@bp.get("/hq/map")
@require("operator")
def map_page() -> str:
    ctx, lang = node(), i18n.current()
    shapes = outlines.cached(ctx.db)
    names = stats.cached(ctx, f"map-places:{shapes.version}",
                         lambda rows: mapping.municipalities(shapes, rows))
    focus = request.args.get("m", "").strip() or None
    if focus is not None and focus not in names:
        abort(404)  # only the prefecture's own names: each view is cached
    shelter_url = url_for("hq_shelters.shelter_page", shelter_id="-")[:-1]
    drawn = stats.cached(ctx, f"map:{lang}:{shapes.version}:{focus or ''}",
                         lambda rows: mapping.map_svg(
                             rows, shelter_url, i18n.gettext, outlines=shapes, focus=focus,
                             zoom_url=zoom_url()))
    rows = board.municipality_rows(ctx, focus) if focus else []
    return render_template(
        "hq/map.html", map=drawn, names=names, focus=focus,
        totals=stats.totals(rows) if focus else stats.cached(ctx, "totals", stats.totals),
        sources={o.source for o in shapes.items}, labels=labels.hq(),
        attribution=ATTRIBUTION, unplaced=board.unplaced(ctx),
        stale_minutes=board.stale_minutes(ctx))
