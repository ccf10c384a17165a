"""What HQ staff (operator, admin) use: the live dashboard with its map and charts, a page per
shelter and per municipality, the supply request queue, safety enquiries (安否確認), exports
without personal data, and the situation report PDF.

Every number comes from hqstats (kept ready per shelter), so a page over 3,000 shelters
reads 3,000 rows, not 1.5 million people.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from markupsafe import Markup, escape

from shelter.core.authority import Refusal
from shelter.domain import supplies
from shelter.domain.accounts import audit
from shelter.domain.households import N_
from shelter.domain.settings import STATUSES, configure_shelter, send_message
from shelter.domain.text import kana_key, name_key
from shelter.hq import stats
from shelter.hq.shelters import ATTRIBUTION
from shelter.render.outputs import csv_cell
from shelter.web import i18n, labels
from shelter.web.base import Recheck, current_principal, node, require, sock, websocket_view
from sync import enrollment
from sync.apply import refusals_by_shelter, refused_events

bp = Blueprint("hq_pages", __name__, url_prefix="/hq")
LIVE_POLL_SECONDS = 1.0  # a dashboard looks for news this often (or at once on a commit)
LIVE_KEEPALIVE_SECONDS = 10.0
MIN_PUSH_SECONDS = 0.5
ENQUIRIES_PER_WINDOW = 20
ENQUIRY_WINDOW = timedelta(minutes=10)
ATTENTION_ROWS = 60  # the dashboard's table: silent and most crowded first; the rest by
PAGE_ROWS = 100  # municipality, a page at a time (thousands of rows help nobody, and cost)
CROWDING_ORDER = ("full", "crowded", "somewhat_crowded", "available", "unknown", "closed")


def active(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shelters worth a row: operating, holding people, or gone silent (the rest are on
    standby and show on the map only). Silent first, then the most crowded."""
    shown = [r for r in rows if r["status"] != "standby" or r["present"] or r["registered"]
             or r["stale"] or r["last_synced_at"]]
    return sorted(shown, key=lambda r: (not r["stale"], CROWDING_ORDER.index(r["crowding"])
                                        if r["crowding"] in CROWDING_ORDER else 9,
                                        r["municipality"], r["name"]))


# --- drawings (server-side SVG: no script, no tiles, no outside host) ----------------------

def map_svg(rows: list[dict[str, Any]], width: int = 640, height: int = 600) -> Markup:
    """Every shelter with coordinates as a dot: colour by crowding, a ring when silent,
    grouped by municipality; each dot links to the shelter's page."""
    placed = [r for r in rows if r["lat"] is not None and r["lon"] is not None]
    if not placed:
        return Markup("")
    lats = [r["lat"] for r in placed]
    lons = [r["lon"] for r in placed]
    south, north, west, east = min(lats), max(lats), min(lons), max(lons)
    mid = math.cos(math.radians((south + north) / 2))
    span_x = max((east - west) * mid, 1e-6)
    span_y = max(north - south, 1e-6)
    scale = min((width - 20) / span_x, (height - 20) / span_y)
    groups: dict[str, list[str]] = {}
    base = url_for("hq_pages.shelter_page", shelter_id="-")[:-1]
    for r in placed:
        x = 10 + (r["lon"] - west) * mid * scale
        y = 10 + (north - r["lat"]) * scale
        link = base + quote(r["shelter_id"])
        classes = f"dot crowd-{r['crowding']} status-{r['status']}" + \
            (" stale" if r["stale"] else "")
        groups.setdefault(r["municipality"], []).append(
            f'<a href="{link}"><title>{escape(r["name"])}</title><circle cx="{x:.1f}" '
            f'cy="{y:.1f}" r="4" class="{classes}" data-shelter="{r["shelter_id"]}"/></a>')
    body = "".join(f'<g data-municipality="{escape(name)}">{"".join(dots)}</g>'
                   for name, dots in sorted(groups.items()))
    label = escape(i18n.gettext("Map of shelters, coloured by crowding"))
    return Markup(f'<svg class="map" viewBox="0 0 {width} {height}" role="group" '
                  f'aria-label="{label}">{body}</svg>')


def chart_svg(points: list[dict[str, Any]], title: str, width: int = 640,
              height: int = 180) -> Markup:
    """People present (line) over time, with the first and last labels."""
    if not points:
        empty = i18n.gettext("No history yet: HQ records the numbers every hour.")
        return Markup(f'<p class="hint">{escape(empty)}</p>')
    top = max(max(p["present"] for p in points), 1)
    step = (width - 60) / max(len(points) - 1, 1)
    xy = [(50 + i * step, height - 25 - (p["present"] / top) * (height - 45))
          for i, p in enumerate(points)]
    coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5"><title>{escape(p["at"])}: '
                   f'{p["present"]}</title></circle>' for (x, y), p in zip(xy, points,
                                                                          strict=True))
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><text x="4" y="14">{top}</text>'
        f'<text x="4" y="{height - 25}">0</text>'
        f'<line x1="48" y1="{height - 25}" x2="{width - 8}" y2="{height - 25}" class="axis"/>'
        f'<polyline points="{coords}" class="line"/>{dots}'
        f'<text x="50" y="{height - 6}">{escape(points[0]["at"])}</text>'
        f'<text x="{width - 8}" y="{height - 6}" text-anchor="end">'
        f'{escape(points[-1]["at"])}</text></svg>')


def charts(key: str) -> dict[str, Markup]:
    db = node().db
    _ = i18n.gettext
    return {"hourly": chart_svg(stats.history(db, key), _("People here, per hour (JST)")),
            "daily": chart_svg(stats.history(db, key, daily=True),
                               _("People here, per day (JST)"))}


# --- pages ---------------------------------------------------------------------------------

@bp.get("")
@require("operator")
def dashboard():  # type: ignore[no-untyped-def]
    ctx, lang = node(), i18n.current()
    attention = stats.cached(ctx, "attention", active)
    return render_template(
        "hq/dashboard.html", totals=stats.cached(ctx, "totals", stats.totals),
        rows=attention[:ATTENTION_ROWS], more=len(attention) - ATTENTION_ROWS,
        municipalities=stats.cached(ctx, "municipalities", stats.by_municipality),
        map=stats.cached(ctx, f"map:{lang}", map_svg), labels=labels.hq(),
        charts=charts("prefecture"), attribution=ATTRIBUTION,
        unplaced=stats.cached(ctx, "unplaced", lambda rows: sum(r["lat"] is None
                                                                   for r in rows)),
        stale_minutes=_stale_minutes(), refusals=refusals_by_shelter(ctx.db),
        names=shelter_names(), reason=refusal_text)


@bp.get("/sync")
@require("operator")
def sync_page():  # type: ignore[no-untyped-def]
    db = node().db
    return render_template(
        "hq/sync.html",
        origins=list(db.query("SELECT * FROM sync_origins ORDER BY shelter_id")),
        quarantined=db.execute("SELECT count(*) FROM sync_quarantine").fetchone()[0],
        refusals=refusals_by_shelter(db, 100), names=shelter_names(), reason=refusal_text,
        conflicts=db.execute("SELECT count(*) FROM sync_conflicts").fetchone()[0],
        flags=db.execute("SELECT count(*) FROM presence_flags WHERE status = 'open'"
                         ).fetchone()[0])


def _stale_minutes() -> str:
    return f"{stats.stale_after(node().db).total_seconds() / 60:g}"


@bp.get("/municipalities/<name>")
@require("operator")
def municipality_page(name: str):  # type: ignore[no-untyped-def]
    rows = [r for r in stats.cached_overview(node()) if r["municipality"] == name]
    if not rows:
        abort(404)
    listed = active(rows)
    pages = max(1, math.ceil(len(listed) / PAGE_ROWS))
    page = min(max(request.args.get("page", 1, type=int) or 1, 1), pages)
    return render_template(
        "hq/municipality.html", name=name, totals=stats.totals(rows),
        rows=listed[(page - 1) * PAGE_ROWS:page * PAGE_ROWS], page=page, pages=pages,
        map=map_svg(rows, 480, 420), labels=labels.hq(), charts=charts(f"municipality:{name}"),
        attribution=ATTRIBUTION, stale_minutes=_stale_minutes())


def _shelter(shelter_id: str) -> dict[str, Any]:
    row = next((r for r in stats.cached_overview(node()) if r["shelter_id"] == shelter_id), None)
    if row is None:
        abort(404)
    return row


@bp.get("/shelters/<shelter_id>")
@require("operator")
def shelter_page(shelter_id: str, problem: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    db = node().db
    row = _shelter(shelter_id)
    registry = next(iter(db.query("SELECT * FROM hq_shelters WHERE shelter_id = ?",
                                  [shelter_id])), None)
    shelter_requests = [r for r in supplies.requests(db) if r["shelter_id"] == shelter_id][:20]
    return render_template(
        "hq/shelter.html", s=row, registry=registry, nodes=enrollment.nodes_of(db, shelter_id),
        labels=labels.hq(), requests=shelter_requests, item_names=_item_names(),
        statuses=STATUSES, charts=charts(shelter_id), problem=problem,
        refused=refused_events(db, shelter_id), reason=refusal_text), status


def refusal_text(reason: Refusal | str) -> str:
    """Why an event was refused, in the reader's language (older rows: as stored)."""
    if isinstance(reason, str):
        return reason
    try:
        return i18n.gettext(reason.template) % reason.params
    except (KeyError, TypeError, ValueError):  # a catalog entry that does not fit
        return reason.text()


@bp.post("/shelters/<shelter_id>/nodes/<node_id>/revoke")
@require("admin")
def revoke_node(shelter_id: str, node_id: str):  # type: ignore[no-untyped-def]
    """A stolen or replaced laptop: HQ refuses its credential from now on (all its
    epochs); the shelter's history stays, and a new code enrolls its replacement."""
    _shelter(shelter_id)
    if not any(n["node_id"] == node_id for n in enrollment.nodes_of(node().db, shelter_id)):
        abort(404)
    if request.form.get("confirm") != "yes":
        return shelter_page(shelter_id, i18n.gettext(
            "Tick the box to confirm that this node should stop syncing."), 422)
    with node().store.write() as db:
        revoked = enrollment.revoke(db, node_id)
    audit(node().store, _actor(), "revoke_node", node_id, " ".join(revoked))
    return redirect(url_for("hq_pages.shelter_page", shelter_id=shelter_id))


@bp.post("/shelters/<shelter_id>")
@require("operator")
def configure(shelter_id: str):  # type: ignore[no-untyped-def]
    _shelter(shelter_id)
    form = request.form
    status = form.get("status", "")
    capacity = form.get("capacity", "").strip()
    contact = form.get("contact", "").strip()
    if status not in STATUSES:
        return shelter_page(shelter_id, i18n.gettext("Choose a status from the list."), 422)
    if not capacity.isdigit() or int(capacity) > 100_000:
        return shelter_page(shelter_id, i18n.gettext(
            "Capacity must be a whole number of people (0 to 100,000)."), 422)
    if len(contact) > 200:
        return shelter_page(shelter_id, i18n.gettext("The contact is too long (200 "
                                                     "characters at most)."), 422)
    configure_shelter(node().store, shelter_id, {"status": status, "capacity": str(int(capacity)),
                                                 "contact": contact})
    stats.bump()  # the next page shows it at once
    audit(node().store, _actor(), "shelter_configured", shelter_id,
          f"status={status} capacity={capacity}")
    return redirect(url_for("hq_pages.shelter_page", shelter_id=shelter_id))


@bp.post("/shelters/<shelter_id>/message")
@require("operator")
def message(shelter_id: str):  # type: ignore[no-untyped-def]
    _shelter(shelter_id)
    text = request.form.get("text", "").strip()
    if not text or len(text) > 500:
        return shelter_page(shelter_id, i18n.gettext(
            "Write the message (500 characters at most)."), 422)
    send_message(node().store, shelter_id, text)
    audit(node().store, _actor(), "hq_message", shelter_id)
    return redirect(url_for("hq_pages.shelter_page", shelter_id=shelter_id))


def _actor() -> str:
    principal = current_principal()
    return principal.name if principal else "-"


def _item_names() -> dict[str, str]:
    lang = i18n.current()
    return {i["item_id"]: supplies.item_name(i, lang) for i in supplies.items(node().db)}


# --- supply requests -----------------------------------------------------------------------

def shelter_names() -> dict[str, str]:
    """Each shelter's name as HQ shows it (the overview's: set by HQ or the shelter, else
    the registry's)."""
    return stats.cached(node(), "names",  # type: ignore[no-any-return]
                          lambda rows: {r["shelter_id"]: r["name"] for r in rows})


def _open_requests() -> list[dict[str, Any]]:
    names = shelter_names()
    out = []
    for r in supplies.requests(node().db, open_only=True):
        r["shelter_name"] = names.get(r["shelter_id"], r["shelter_id"])
        out.append(r)
    order = ("critical", "urgent", "normal")
    return sorted(out, key=lambda r: (order.index(r["urgency"]) if r["urgency"] in order
                                      else 3, r["requested_at"]))


def demand(open_requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Quantities asked for and not yet dispatched, per item, over all shelters."""
    totals: dict[str, dict[str, Any]] = {}
    for r in open_requests:
        if r["status"] not in ("requested", "acknowledged"):
            continue
        for line in r["lines"]:
            entry = totals.setdefault(line["item_id"], {"item_id": line["item_id"],
                                                        "quantity": 0, "shelters": set()})
            entry["quantity"] += int(line["quantity"])
            entry["shelters"].add(r["shelter_id"])
    return [{**e, "shelters": len(e["shelters"])} for e in
            sorted(totals.values(), key=lambda e: -e["quantity"])]


@bp.get("/requests")
@require("operator")
def requests_page(problem: str | None = None, status: int = 200):  # type: ignore[no-untyped-def]
    queue = _open_requests()
    return render_template("hq/requests.html", queue=queue, demand=demand(queue),
                           item_names=_item_names(), labels=labels.hq(), problem=problem), status


def _request_or_404(request_id: str) -> dict[str, Any]:
    found = next((r for r in supplies.requests(node().db) if r["request_id"] == request_id),
                 None)
    if found is None:
        abort(404)
    return found


@bp.post("/requests/<request_id>/acknowledge")
@require("operator")
def acknowledge(request_id: str):  # type: ignore[no-untyped-def]
    found = _request_or_404(request_id)
    if found["status"] != "requested":
        return requests_page(i18n.gettext("This request was already acknowledged."), 409)
    note = request.form.get("note", "").strip()[:500]
    supplies.acknowledge(node().store, request_id, note)
    audit(node().store, _actor(), "request_acknowledged", request_id)
    return redirect(url_for("hq_pages.requests_page"))


@bp.post("/requests/<request_id>/dispatch")
@require("operator")
def dispatch(request_id: str):  # type: ignore[no-untyped-def]
    found = _request_or_404(request_id)
    if found["status"] not in ("requested", "acknowledged"):
        return requests_page(i18n.gettext("This request was already dispatched."), 409)
    lines = []
    for line in found["lines"]:
        raw = request.form.get(f"quantity-{line['item_id']}", "").strip()
        if not raw:
            continue
        if not raw.isdigit() or int(raw) > 1_000_000:
            return requests_page(i18n.gettext("Quantities must be whole numbers."), 422)
        if int(raw):
            lines.append({"item_id": line["item_id"], "quantity": int(raw)})
    if not lines:
        return requests_page(i18n.gettext("Enter the quantity of at least one item sent."),
                             422)
    arrival = request.form.get("expected_arrival", "").strip()
    try:
        when = datetime.fromisoformat(arrival).replace(tzinfo=supplies.JST)
    except ValueError:
        return requests_page(i18n.gettext("Enter when the delivery is expected to arrive."),
                             422)
    supplies.dispatch(node().store, request_id, lines, when.isoformat(timespec="minutes"),
                      request.form.get("note", "").strip()[:500])
    audit(node().store, _actor(), "request_dispatched", request_id)
    return redirect(url_for("hq_pages.requests_page"))


# --- safety enquiries (安否確認) -------------------------------------------------------------

RELATIONS = ("relative", "acquaintance")


def enquire(db: Any, family: str, given: str, birth_date: str,
            relation: str) -> list[dict[str, Any]]:
    """What may be told to a relative or an acquaintance about the people of this name
    (kanji or any kana) and birth date. Empty means "no information can be given": the
    same answer whether nobody matches or nobody consented."""
    nk, kk = name_key(family, given), kana_key(family, given)
    found = db.execute(
        """SELECT p.person_id, p.family_name, p.given_name, h.consent, h.whereabouts,
                  p.issuing_shelter FROM persons p
           JOIN households h ON h.household_id = p.household_id
           WHERE p.birth_date = ? AND (p.name_key = ? OR (? != '' AND p.kana_key = ?))
           LIMIT 5""", [birth_date, nk, kk, kk]).fetchall()
    out = []
    for person_id, fam, giv, consent, whereabouts, issuing in found:
        allowed = consent == "acquaintances" or (consent == "relatives"
                                                 and relation == "relative")
        if not allowed:
            continue
        where = db.execute("SELECT shelter_id, status FROM presence WHERE person_id = ?",
                           [person_id]).fetchone()
        shelter_id = where[0] if where else issuing
        name = shelter_names().get(shelter_id, shelter_id)
        state = where[1] if where else ("registered_" + whereabouts)
        entry = {"shelter": name, "state": state}
        if relation == "acquaintance":  # name and whereabouts only
            entry = {"name": f"{fam} {giv}".strip(), "shelter": name,
                     "state": "left" if state == "left" else "in_shelter"
                     if state in ("present", "out") else "registered"}
        out.append(entry)
    return out


def _too_many_enquiries(actor: str) -> bool:
    since = (datetime.now(UTC) - ENQUIRY_WINDOW).isoformat(timespec="milliseconds")
    done = node().db.execute("SELECT count(*) FROM audit_log WHERE action = 'safety_enquiry' "
                             "AND actor = ? AND at >= ?", [actor, since]).fetchone()[0]
    return bool(done >= ENQUIRIES_PER_WINDOW)


@bp.route("/enquiry", methods=["GET", "POST"])
@require("operator")
def enquiry():  # type: ignore[no-untyped-def]
    if request.method == "GET":
        return render_template("hq/enquiry.html", form={}, results=None, problem=None)
    form = {k: request.form.get(k, "").strip()[:100] for k in (
        "family_name", "given_name", "birth_date", "relation", "enquirer", "enquirer_contact")}
    problem = None
    try:
        datetime.strptime(form["birth_date"], "%Y-%m-%d")
    except ValueError:
        problem = N_("Enter the birth date as YYYY-MM-DD.")
    if not form["family_name"]:
        problem = N_("Enter the family name (kanji or kana).")
    elif form["relation"] not in RELATIONS:
        problem = N_("Say whether the person asking is a relative or an acquaintance.")
    elif not form["enquirer"]:
        problem = N_("Enter who is asking (name), for the record.")
    if problem:
        return render_template("hq/enquiry.html", form=form, results=None,
                               problem=i18n.gettext(problem)), 422
    actor = _actor()
    if _too_many_enquiries(actor):
        return render_template("hq/enquiry.html", form=form, results=None, problem=i18n.gettext(
            "Too many searches in the last 10 minutes. Wait a few minutes.")), 429
    results = enquire(node().db, form["family_name"], form["given_name"], form["birth_date"],
                      form["relation"])
    audit(node().store, actor, "safety_enquiry", f"{form['family_name']} {form['given_name']}",
          json.dumps({"birth_date": form["birth_date"], "relation": form["relation"],
                      "enquirer": form["enquirer"], "contact": form["enquirer_contact"],
                      "answered": len(results)}, ensure_ascii=False))
    return render_template("hq/enquiry.html", form=form, results=results, problem=None)


# --- exports and the situation report ------------------------------------------------------

EXPORT_FIELDS = ("shelter_id", "name", "municipality", "address", "lat", "lon", "status",
                 "capacity", "present", "occupancy", "crowding", "at_home", "in_car",
                 "last_synced_at", "as_of", "stale")


def export_rows() -> list[dict[str, Any]]:
    """Per-shelter aggregates for the open data portal: no person, and no counts by need or
    age (a single pregnant evacuee at a small shelter would be recognisable)."""
    return [{k: r[k] for k in EXPORT_FIELDS} for r in stats.cached_overview(node())]


@bp.get("/export/shelters.<kind>")
@require("operator")
def export(kind: str):  # type: ignore[no-untyped-def]
    rows = export_rows()
    stamp = datetime.now(supplies.JST).strftime("%Y%m%d-%H%M")
    if kind == "json":
        body = json.dumps({"generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "attribution": ATTRIBUTION, "shelters": rows}, ensure_ascii=False)
        mimetype = "application/json"
    elif kind == "geojson":
        body = json.dumps({"type": "FeatureCollection", "attribution": ATTRIBUTION,
                           "features": [{
                               "type": "Feature", "properties": {
                                   k: v for k, v in r.items() if k not in ("lat", "lon")},
                               "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]}
                               if r["lat"] is not None else None} for r in rows]},
                          ensure_ascii=False)
        mimetype = "application/geo+json"
    elif kind == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        # A name from a registry file or a shelter's laptop must not run as a formula.
        writer.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
        body = "\ufeff" + out.getvalue()  # BOM: Excel opens UTF-8 Japanese correctly
        mimetype = "text/csv"
    else:
        abort(404)
    return Response(body, mimetype=mimetype, headers={
        "Content-Disposition": f"attachment; filename=shelters-{stamp}.{kind}"})


@bp.get("/report.pdf")
@require("operator")
def report_pdf():  # type: ignore[no-untyped-def]
    from shelter.render.report import situation_report

    language = request.args.get("language", "ja")
    if language not in i18n.STAFF_LANGUAGES:
        abort(400)
    rows = stats.cached_overview(node())
    queue = _open_requests()
    pdf = situation_report(rows, queue, demand(queue), language)
    audit(node().store, _actor(), "situation_report", "prefecture", f"language={language}")
    stamp = datetime.now(supplies.JST).strftime("%Y%m%d-%H%M")
    return Response(pdf, mimetype="application/pdf", headers={
        "Content-Disposition": f"inline; filename=situation-{stamp}.pdf"})


# --- live ----------------------------------------------------------------------------------

def live_state() -> dict[str, Any]:
    """Totals, the listed shelters' rows and every dot, made once per overview for every
    open dashboard of this process."""
    def make(rows: list[dict[str, Any]]) -> dict[str, Any]:
        attention = stats.cached(node(), "attention", active)[:ATTENTION_ROWS]
        return {
            "totals": stats.cached(node(), "totals", stats.totals),
            "rows": {r["shelter_id"]: {k: r[k] for k in (
                "name", "municipality", "present", "out", "registered", "at_home", "in_car",
                "capacity", "crowding", "status", "stale", "last_synced_at", "open_requests",
                "low_stock")} for r in attention},
            "dots": {r["shelter_id"]: [r["crowding"], r["status"], r["stale"]]
                     for r in rows if r["lat"] is not None}}

    return stats.cached(node(), "live", make)  # type: ignore[no-any-return]


@sock.route("/live", bp=bp)
@websocket_view
def live(ws: Any) -> None:
    """Pushes what changed (totals, rows, map dots) to an open dashboard."""
    principal = current_principal()
    if principal is None or not principal.can("operator"):
        ws.close(reason=1008, message="sign in as HQ staff")
        return
    watcher = node().watcher
    seen = -1
    sent_rows: dict[str, Any] = {}
    sent_dots: dict[str, Any] = {}
    sent_totals = None
    quiet_since = time.monotonic()
    allowed = Recheck("operator")
    while ws.connected:
        seen = watcher.wait(seen, LIVE_POLL_SECONDS)
        if not allowed.still_allowed():
            ws.close(reason=1008, message="signed out")
            return
        state = live_state()
        rows = {k: v for k, v in state["rows"].items() if sent_rows.get(k) != v}
        dots = {k: v for k, v in state["dots"].items() if sent_dots.get(k) != v}
        if rows or dots or state["totals"] != sent_totals:
            ws.send(json.dumps({"totals": state["totals"], "rows": rows, "dots": dots},
                               ensure_ascii=False))
            sent_rows, sent_dots = dict(state["rows"]), dict(state["dots"])
            sent_totals = state["totals"]
            quiet_since = time.monotonic()
            time.sleep(MIN_PUSH_SECONDS)  # later changes are gathered into the next push
        elif time.monotonic() - quiet_since > LIVE_KEEPALIVE_SECONDS:
            ws.send('{"keepalive": true}')  # finds a closed dashboard, keeps proxies open
            quiet_since = time.monotonic()
