"""What HQ hands on: the shelters as open data (CSV, JSON, GeoJSON: no personal data) and
the situation report PDF for the meeting."""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Response, abort, request

from shelter.domain import catalog
from shelter.domain.accounts import audit
from shelter.domain.supplies import JST
from shelter.hq import board, stats
from shelter.hq import queue as hq_queue
from shelter.render import exports
from shelter.render.report import situation_report
from shelter.web import i18n
from shelter.web.base import node, require
from shelter.web.hq import actor

bp = Blueprint("hq_exports", __name__, url_prefix="/hq")


def _stamp() -> str:
    return datetime.now(JST).strftime("%Y%m%d-%H%M")


@bp.get("/export/shelters.<kind>")
@require("operator")
def export(kind: str) -> Response:
    if kind not in exports.KINDS:
        abort(404)
    body = exports.shelters(board.export_rows(node()), kind)
    return Response(body, mimetype=exports.KINDS[kind], headers={
        "Content-Disposition": f"attachment; filename=shelters-{_stamp()}.{kind}"})


@bp.get("/report.pdf")
@require("operator")
def report_pdf() -> Response:
    language = request.args.get("language", "ja")
    if language not in i18n.STAFF_LANGUAGES:
        abort(400)
    ctx = node()
    queue = hq_queue.open_requests(ctx.db, board.shelter_names(ctx))
    pdf = situation_report(stats.cached_overview(ctx), queue, hq_queue.demand(queue),
                           language, catalog.items(ctx.db))
    audit(ctx.store, actor(), "situation_report", "prefecture", f"language={language}")
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f"inline; filename=situation-{_stamp()}.pdf"})
