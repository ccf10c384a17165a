"""What HQ staff (operator, admin) see first: the live dashboard over every shelter, with
its map and charts, a page per municipality, and the sync page."""

from __future__ import annotations

import json
import math
import time
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from markupsafe import Markup
from werkzeug.wrappers import Response

from shelter.hq import board, outlines, replica, stats
from shelter.hq.shelters import ATTRIBUTION
from shelter.hq.sync_status import sync_status
from shelter.render import drawings, mapping
from shelter.web import i18n, labels
from shelter.web.base import Recheck, current_principal, node, require, sock, websocket_view
from shelter.web.hq import refusal_text
from sync import log as hq_log
from sync import projector
from sync.apply import refusals_by_shelter

bp = Blueprint("hq_dashboard", __name__)
LIVE_POLL_SECONDS = 1.0  # a dashboard looks for news this often (or at once on a commit)
LIVE_KEEPALIVE_SECONDS = 10.0
MIN_PUSH_SECONDS = 0.5


def _shelter_url() -> str:
    """A shelter's page, less its id (the map's links)."""
    return url_for("hq_shelters.shelter_page", shelter_id="-")[:-1]


def _zoom_url() -> str:
    """The large map zoomed to a municipality, less its name (the outlines' links)."""
    return url_for("hq_map.map_page") + "?m="


def _charts(key: str) -> dict[str, Markup]:
    return drawings.charts(node().db, key, i18n.gettext)


@bp.get("/")
def root() -> Response:
    return redirect(url_for("hq_dashboard.dashboard"))


@bp.get("/hq")
@require("operator")
def dashboard() -> str:
    ctx, lang = node(), i18n.current()
    attention = board.attention(ctx)
    shelter_url = _shelter_url()
    shapes = outlines.cached(ctx.db)
    return render_template(
        "hq/dashboard.html", totals=stats.cached(ctx, "totals", stats.totals),
        rows=attention[:board.ATTENTION_ROWS], more=len(attention) - board.ATTENTION_ROWS,
        municipalities=stats.cached(ctx, "municipalities", stats.by_municipality),
        map=stats.cached(ctx, f"map:{lang}:{shapes.version}:", lambda rows: mapping.map_svg(
            rows, shelter_url, i18n.gettext, outlines=shapes, zoom_url=_zoom_url())),
        labels=labels.hq(), charts=_charts("prefecture"), attribution=ATTRIBUTION,
        unplaced=board.unplaced(ctx), stale_minutes=board.stale_minutes(ctx),
        refusals=refusals_by_shelter(ctx.db), names=board.shelter_names(ctx),
        reason=refusal_text, projection=projector.status(ctx),
        unkept=hq_log.unkept(hq_log.of(ctx.data_dir)))


@bp.get("/hq/sync")
@require("operator")
def sync_page() -> str:
    ctx = node()
    return render_template(
        "hq/sync.html", **sync_status(ctx.db), refusals=refusals_by_shelter(ctx.db, 100),
        names=board.shelter_names(ctx), reason=refusal_text,
        replica=replica.status(ctx.data_dir), projection=projector.status(ctx),
        unkept=hq_log.unkept(hq_log.of(ctx.data_dir)))


@bp.get("/hq/municipalities/<name>")
@require("operator")
def municipality_page(name: str) -> str:
    ctx = node()
    rows = board.municipality_rows(ctx, name)
    if not rows:
        abort(404)
    listed = board.active(rows)
    pages = max(1, math.ceil(len(listed) / board.PAGE_ROWS))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    return render_template(
        "hq/municipality.html", name=name, totals=stats.totals(rows),
        rows=listed[(page - 1) * board.PAGE_ROWS:page * board.PAGE_ROWS], page=page,
        pages=pages, map=mapping.map_svg(rows, _shelter_url(), i18n.gettext, focus=name,
                                         outlines=outlines.cached(ctx.db),
                                         zoom_url=_zoom_url()),
        labels=labels.hq(), charts=_charts(f"municipality:{name}"), attribution=ATTRIBUTION,
        stale_minutes=board.stale_minutes(ctx))


@sock.route("/hq/live", bp=bp)
@websocket_view
def live(ws: Any) -> None:
    """Pushes what changed (totals, rows, map dots) to an open dashboard."""
    principal = current_principal()
    if principal is None or not principal.can("operator"):
        ws.close(reason=1008, message="sign in as HQ staff")
        return
    ctx = node()
    watcher = ctx.watcher
    seen = -1
    sent_rows: dict[str, Any] = {}
    sent_dots: dict[str, Any] = {}
    sent_totals = sent_projection = None
    quiet_since = time.monotonic()
    allowed = Recheck("operator")
    while ws.connected:
        seen = watcher.wait(seen, LIVE_POLL_SECONDS)
        if not allowed.still_allowed():
            ws.close(reason=1008, message="signed out")
            return
        state = board.live_state(ctx)
        rows = {k: v for k, v in state["rows"].items() if sent_rows.get(k) != v}
        dots = {k: v for k, v in state["dots"].items() if sent_dots.get(k) != v}
        # How far the figures are: the page's own line, in its language (the page names
        # it in the URL: a browser need not send Accept-Language with a websocket), when
        # it changes.
        projection = render_template("hq/_projection.html",
                                     projection=projector.status(ctx))
        if rows or dots or state["totals"] != sent_totals or projection != sent_projection:
            ws.send(json.dumps({"totals": state["totals"], "rows": rows, "dots": dots,
                                "projection": projection}, ensure_ascii=False))
            sent_rows, sent_dots = dict(state["rows"]), dict(state["dots"])
            sent_totals, sent_projection = state["totals"], projection
            quiet_since = time.monotonic()
            time.sleep(MIN_PUSH_SECONDS)  # later changes are gathered into the next push
        elif time.monotonic() - quiet_since > LIVE_KEEPALIVE_SECONDS:
            ws.send('{"keepalive": true}')  # finds a closed dashboard, keeps proxies open
            quiet_since = time.monotonic()
