"""Supplies pages: stock and hand-outs (volunteers), receiving, counts, requests to HQ, the
catalog and the daily report (managers). Plain forms; a handheld scanner types into the
card field and its Enter submits."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from shelter.domain import supplies
from shelter.domain.accounts import audit
from shelter.domain.settings import get_settings
from shelter.render import report, words
from shelter.web.base import current_principal, node, require
from shelter.web.i18n import current, gettext

bp = Blueprint("supplies", __name__, url_prefix="/supplies")


def labels() -> dict[str, Any]:
    _ = gettext
    return {
        "kinds": {"received": _("Received"), "distributed": _("Handed out"),
                  "transferred": _("Transferred to another shelter"),
                  "counted": _("Stocktake (set the count)"), "discarded": _("Discarded")},
        "sources": {"hq_shipment": _("Shipment from HQ"), "donation": _("Donation"),
                    "purchase": _("Purchase"), "other": _("Other")},
        "urgency": words.urgency(_), "status": words.request_status(_),
        "audience": {"everyone": _("Everyone"), "infants": _("Infants"),
                     "elderly": _("Elderly")},
    }


def _actor() -> tuple[str, bool]:
    principal = current_principal()
    assert principal is not None
    return principal.name, principal.can("manager")


def _message(refused: supplies.SupplyError) -> str:
    text = gettext(refused.message)
    return text % refused.params if refused.params else text


def _page(status: int = 200, **context: Any):  # type: ignore[no-untyped-def]
    ctx = node()
    settings = get_settings(ctx.db)
    data = supplies.stock(ctx.db, ctx.shelter_id, settings)
    names = {i["item_id"]: supplies.item_name(i, current()) for i in supplies.items(ctx.db)}
    context.setdefault("form", {})
    # scanning: a card shown to the camera or a handheld scanner fills the hand-out form.
    return render_template("supplies/stock.html", stock=data, names=names, labels=labels(),
                           scanning=True, **context), status


@bp.get("")
@require("volunteer")
def stock_page():  # type: ignore[no-untyped-def]
    return _page(done=request.args.get("done"))


@bp.post("/move")
@require("volunteer")
def move():  # type: ignore[no-untyped-def]
    actor, manager = _actor()
    form = request.form.to_dict()
    if form.get("kind") != "distributed" and not manager:
        abort(403)
    data: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf" and v != ""}
    data["override"] = form.get("override") == "1"
    data["confirm_repeat"] = form.get("confirm_repeat") == "1"
    try:
        result = supplies.move(node().store, node().shelter_id, data, actor, manager)
    except supplies.SupplyError as refused:
        return _page(refused.status, error=_message(refused), field=refused.field, form=form,
                     confirm=refused.code == "collected_recently")
    item = result["item"]
    return redirect(url_for("supplies.stock_page", done=item["item_id"]), code=303)


@bp.route("/items", methods=["GET", "POST"])
@require("manager")
def items_page():  # type: ignore[no-untyped-def]
    error, field = None, None
    if request.method == "POST":
        form = request.form
        try:
            if form.get("item_id"):
                supplies.change_norm(node().store, form["item_id"], form.get("norm_per_day"),
                                     form.get("ration_hours"))
            else:
                supplies.add_item(node().store, form.to_dict())
            return redirect(url_for("supplies.items_page"), code=303)
        except supplies.SupplyError as refused:
            error, field = _message(refused), refused.field
    return render_template("supplies/items.html", items=supplies.items(node().db),
                           labels=labels(), error=error, field=field), 400 if error else 200


@bp.route("/requests", methods=["GET", "POST"])
@require("volunteer")
def requests_page():  # type: ignore[no-untyped-def]
    ctx = node()
    error = None
    if request.method == "POST":
        actor, manager = _actor()
        if not manager:
            abort(403)
        form = request.form
        lines = [{"item_id": key[4:], "quantity": value.strip()}
                 for key, value in form.items() if key.startswith("qty-") and value.strip()
                 and value.strip() != "0"]
        try:
            supplies.request_supplies(ctx.store, ctx.shelter_id, {
                "lines": lines, "urgency": form.get("urgency"), "note": form.get("note")},
                actor)
            return redirect(url_for("supplies.requests_page", sent=1), code=303)
        except supplies.SupplyError as refused:
            error = _message(refused)
    settings = get_settings(ctx.db)
    suggested = {line["item_id"]: line["quantity"]
                 for line in supplies.suggested_request(ctx.db, ctx.shelter_id, settings)}
    names = {i["item_id"]: supplies.item_name(i, current()) for i in supplies.items(ctx.db)}
    return render_template("supplies/requests.html", requests=supplies.requests(ctx.db),
                           stock=supplies.stock(ctx.db, ctx.shelter_id, settings),
                           suggested=suggested, names=names, labels=labels(), error=error,
                           days=settings["request_days"], sent=request.args.get("sent")), \
        400 if error else 200


@bp.post("/requests/<request_id>/received")
@require("manager")
def received(request_id: str):  # type: ignore[no-untyped-def]
    actor, _ = _actor()
    form = request.form
    lines = [{"item_id": key[4:], "quantity": value.strip()}
             for key, value in form.items() if key.startswith("got-")]
    try:
        supplies.receive(node().store, node().shelter_id, request_id,
                         {"lines": lines, "note": form.get("note")}, actor)
    except supplies.SupplyError as refused:
        if refused.status == 404:
            abort(404)
        return redirect(url_for("supplies.requests_page", error=refused.code), code=303)
    return redirect(url_for("supplies.requests_page"), code=303)


@bp.route("/report", methods=["GET", "POST"])
@require("manager")
def report_page():  # type: ignore[no-untyped-def]
    actor, _ = _actor()
    error = None
    if request.method == "POST":
        try:
            supplies.add_note(node().store, node().shelter_id, request.form.get("text"),
                              actor)
            return redirect(url_for("supplies.report_page"), code=303)
        except supplies.SupplyError as refused:
            error = _message(refused)
    today = supplies.today_jst()
    return render_template("supplies/report.html",
                           notes=supplies.notes(node().db, node().shelter_id, today),
                           today=today, error=error), 400 if error else 200


@bp.get("/report.pdf")
@require("manager")
def report_pdf():  # type: ignore[no-untyped-def]
    actor, _ = _actor()
    try:
        day = date.fromisoformat(request.args.get("day") or supplies.today_jst().isoformat())
    except ValueError:
        abort(400)
    language = request.args.get("language", "ja")  # not ?lang=: that switches the pages
    if language not in ("ja", "en"):
        abort(400)
    ctx = node()
    pdf = report.daily_report(ctx.db, ctx.shelter_id, day, language)
    audit(ctx.store, actor, "daily_report", day.isoformat(), language)
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f'inline; filename="daily-report-{day.isoformat()}.pdf"'})
