"""Supplies pages: stock and hand-outs (volunteers), receiving, counts, requests to HQ, the
catalog and the daily report (managers). Plain forms; a handheld scanner types into the
card field and its Enter submits. A refusal is shown on the page the form was on, with the
reason in the reader's language."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from shelter.domain import catalog, day_notes, stock, supplies, supply_requests
from shelter.domain.accounts import audit
from shelter.domain.settings import get_settings
from shelter.domain.text import ascii_digits
from shelter.render import report, words
from shelter.web import labels
from shelter.web.base import current_principal, node, require
from shelter.web.i18n import current, gettext

bp = Blueprint("supplies", __name__, url_prefix="/supplies")


def _actor() -> tuple[str, bool]:
    principal = current_principal()
    assert principal is not None
    return principal.name, principal.can("manager")


def _message(refused: supplies.SupplyError) -> str:
    if isinstance(refused.params.get("unit"), str):  # "320 pieces", "320 個": not "piece"
        refused.params["unit"] = words.units(gettext).get(refused.params["unit"],
                                                          refused.params["unit"])
    return refused.text(gettext)


def _number(value: str | None) -> str:
    """A number as a Japanese keyboard types it (５０, １．５) in ASCII, for the checks."""
    return ascii_digits(value or "", hyphens=False).replace("．", ".").strip()


def _names() -> dict[str, str]:
    return {i["item_id"]: catalog.item_name(i, current()) for i in catalog.items(node().db)}


def _page(status: int = 200, **context: Any) -> ResponseReturnValue:
    ctx = node()
    data = stock.stock(ctx.db, ctx.shelter_id, get_settings(ctx.db))
    context.setdefault("form", {})
    # scanning: a card shown to the camera or a handheld scanner fills the hand-out form.
    return render_template("supplies/stock.html", stock=data, names=_names(),
                           labels=labels.supplies(), scanning=True, **context), status


@bp.get("")
@require("volunteer")
def stock_page() -> ResponseReturnValue:
    return _page(done=request.args.get("done"))


@bp.post("/move")
@require("volunteer")
def move() -> ResponseReturnValue:
    actor, manager = _actor()
    form = request.form.to_dict()
    if form.get("kind") != "distributed" and not manager:
        abort(403)
    if "quantity" in form:
        form["quantity"] = _number(form["quantity"])
    data: dict[str, Any] = {k: v for k, v in form.items() if k != "csrf" and v != ""}
    data["override"] = form.get("override") == "1"
    # "Give anyway" confirms the hand-out it was shown for, not the next card scanned into the form
    data["confirm_repeat"] = form.get("confirm_repeat", "") == \
        f"{form.get('item_id', '')} {form.get('code', '')}"
    try:
        result = stock.move(node().store, node().shelter_id, data, actor, manager)
    except supplies.SupplyError as refused:
        return _page(refused.status, error=_message(refused), field=refused.field, form=form,
                     confirm=refused.code == "collected_recently")
    item = result["item"]
    return redirect(url_for("supplies.stock_page", done=item["item_id"]), code=303)


@bp.route("/items", methods=["GET", "POST"])
@require("manager")
def items_page() -> ResponseReturnValue:
    error, field = None, None
    if request.method == "POST":
        form = request.form
        try:
            if form.get("item_id"):
                catalog.change_norm(node().store, form["item_id"],
                                    _number(form.get("norm_per_day")),
                                    _number(form.get("ration_hours")))
            else:
                catalog.add_item(node().store, {**form.to_dict(), **{
                    k: _number(form[k]) for k in ("norm_per_day", "ration_hours") if k in form}})
            return redirect(url_for("supplies.items_page"), code=303)
        except supplies.SupplyError as refused:
            error, field = _message(refused), refused.field
    return render_template("supplies/items.html", items=catalog.items(node().db),
                           labels=labels.supplies(), error=error, field=field), \
        400 if error else 200


def _requests(status: int = 200, error: str | None = None) -> ResponseReturnValue:
    """The requests page, with ``error`` (a refusal, in the reader's language) if any."""
    ctx = node()
    settings = get_settings(ctx.db)
    suggested = {line["item_id"]: line["quantity"]
                 for line in supply_requests.suggested_request(ctx.db, ctx.shelter_id, settings)}
    return render_template("supplies/requests.html", requests=supply_requests.requests(ctx.db),
                           stock=stock.stock(ctx.db, ctx.shelter_id, settings),
                           suggested=suggested, names=_names(), labels=labels.supplies(),
                           units={i["item_id"]: i["unit"] for i in catalog.items(ctx.db)},
                           error=error, days=settings["request_days"],
                           sent=request.args.get("sent")), status


@bp.route("/requests", methods=["GET", "POST"])
@require("volunteer")
def requests_page() -> ResponseReturnValue:
    if request.method == "GET":
        return _requests()
    actor, manager = _actor()
    if not manager:
        abort(403)
    form = request.form
    lines = [{"item_id": key[4:], "quantity": _number(value)}
             for key, value in form.items() if key.startswith("qty-") and _number(value)
             and _number(value) != "0"]
    try:
        supply_requests.request_supplies(node().store, node().shelter_id, {
            "lines": lines, "urgency": form.get("urgency"), "note": form.get("note")}, actor)
    except supplies.SupplyError as refused:
        return _requests(400, _message(refused))
    return redirect(url_for("supplies.requests_page", sent=1), code=303)


@bp.post("/requests/<request_id>/received")
@require("manager")
def received(request_id: str) -> ResponseReturnValue:
    actor, _ = _actor()
    form = request.form
    lines = [{"item_id": key[4:], "quantity": _number(value)}
             for key, value in form.items() if key.startswith("got-")]
    try:
        supply_requests.receive(node().store, node().shelter_id, request_id,
                                {"lines": lines, "note": form.get("note"),
                                 "unannounced": form.get("unannounced") == "1"}, actor)
    except supplies.SupplyError as refused:
        if refused.status == 404:
            raise  # no such request: nothing to show the form again for (shelter/web/errors.py)
        return _requests(refused.status, _message(refused))
    return redirect(url_for("supplies.requests_page"), code=303)


@bp.route("/report", methods=["GET", "POST"])
@require("manager")
def report_page() -> ResponseReturnValue:
    actor, _ = _actor()
    error = None
    if request.method == "POST":
        try:
            day_notes.add_note(node().store, node().shelter_id, request.form.get("text"),
                               actor)
            return redirect(url_for("supplies.report_page"), code=303)
        except supplies.SupplyError as refused:
            error = _message(refused)
    today = supplies.today_jst()
    return render_template("supplies/report.html",
                           notes=day_notes.notes(node().db, node().shelter_id, today),
                           today=today, error=error), 400 if error else 200


@bp.get("/report.pdf")
@require("manager")
def report_pdf() -> ResponseReturnValue:
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
