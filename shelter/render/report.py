"""The daily shelter report (避難所日報) as a PDF, in Japanese (default) or English.

Numbers are the shelter's state when the report is made; arrivals, departures and notes
are those of the chosen day (Japan time).
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlite_utils import Database

from shelter.domain import catalog, fonts, roster, stock, supplies, supply_requests
from shelter.domain.day_notes import notes
from shelter.domain.settings import get_settings
from shelter.render import times, words
from shelter.render.catalogs import translations
from shelter.render.outputs import pdf_text

_FIRST = "0001-01-01T00:00:00.000+00:00"  # what any stored time sorts after...
_LAST = "9999-12-31T23:59:59.999+00:00"  # ... and before


def _day_bounds(day: date) -> tuple[str, str]:
    """The stored-time (UTC) bounds of a day in Japan time. The first and last days a date
    can name have one bound outside what a datetime holds: there it is the end of time."""
    start = datetime.combine(day, time(0), supplies.JST)
    try:
        first = start.astimezone(UTC).isoformat(timespec="milliseconds")
    except OverflowError:
        first = _FIRST
    try:
        last = (start + timedelta(days=1)).astimezone(UTC).isoformat(timespec="milliseconds")
    except OverflowError:
        last = _LAST
    return first, last


_PAGE_WIDTH_MM = 180.0  # A4 less the margins of build()
_PADDING = 12.0  # a table cell's left and right padding (reportlab's 6 points each)
_SHRINK = (1.0, 0.9, 0.8, 0.7)  # how far a header's type may shrink to keep its words whole
_CELL_WORD = 48.0  # points: longer words in a cell below the header may wrap


class _Pdf:
    """What both reports draw with: fonts for every script (shelter.domain.fonts: each run
    of a text in a font that has it, embedded), three paragraph styles, and gridded tables
    of paragraphs whose headers keep their words whole."""

    def __init__(self, size: float = 10) -> None:
        from reportlab.lib.styles import ParagraphStyle

        self.size = size
        font = fonts.font_for("避難所")
        self.body = ParagraphStyle("body", fontName=font, fontSize=size, leading=size * 1.4)
        self.title = ParagraphStyle("title", parent=self.body, fontSize=size + 8,
                                    leading=(size + 8) * 1.3)
        self.heading = ParagraphStyle("heading", parent=self.body, fontSize=size + 3,
                                      leading=(size + 3) * 1.4, spaceBefore=8)

    def paragraph(self, text: object, style: Any = None) -> Any:
        """The only way text enters these PDFs: reportlab reads a Paragraph as markup, and
        names, notes and units are typed by people (``<b>`` must print as ``<b>``). Each
        run is in a font that has its glyphs (张伟, 김민준, Nguyễn print as written)."""
        from reportlab.platypus import Paragraph

        return Paragraph(_markup(str(text)), style or self.body)

    def table(self, rows: list[list[Any]], widths: list[float] | None = None) -> Any:
        """A table whose first row is its header. A header word is never cut (Elderl/y,
        高齢/者; a Japanese header is one word): its column is widened from the others'
        room or the page's, then its type shrinks a little, and a table that still does
        not fit is cut into tables of fewer columns, one under the other."""
        from reportlab.lib.units import mm
        from reportlab.platypus import KeepTogether, Spacer

        page = _PAGE_WIDTH_MM * mm
        n = max(len(row) for row in rows)
        rows = [[str(cell) for cell in row] + [""] * (n - len(row)) for row in rows]
        base = list(widths) if widths else [page / n] * n
        for scale in _SHRINK:
            size = self.size * scale
            need = [max([_longest(rows[0][k], size)] +
                        [min(_longest(row[k], self.size), _CELL_WORD) for row in rows[1:]])
                    + _PADDING for k in range(n)]
            fitted = _fit(base, need, page)
            if fitted is not None:
                return self._grid(rows, fitted, size)
        size = self.size * _SHRINK[-1]
        parts, start, used = [], 0, 0.0
        for k in range(n + 1):
            if k == n or (k > start and used + need[k] > page):
                part, wanted = [row[start:k] for row in rows], need[start:k]
                parts.append(self._grid(part, _fit([page / len(wanted)] * len(wanted),
                                                   wanted, page) or wanted, size))
                start, used = k, 0.0
            if k < n:
                used += need[k]
        story: list[Any] = []
        for part in parts:
            story += [part, Spacer(1, 2 * mm)]
        return KeepTogether(story[:-1])

    def _grid(self, rows: list[list[str]], widths: list[float], header_size: float) -> Any:
        from reportlab.lib import colors
        from reportlab.lib.styles import ParagraphStyle
        from reportlab.platypus import Table, TableStyle

        header = ParagraphStyle("header", parent=self.body, fontSize=header_size,
                                leading=header_size * 1.3, splitLongWords=0)
        t = Table([[self.paragraph(cell, header) for cell in rows[0]]] +
                  [[self.paragraph(cell) for cell in row] for row in rows[1:]],
                  colWidths=widths, hAlign="LEFT", repeatRows=1)
        t.setStyle(TableStyle([("GRID", (0, 0), (-1, -1), 0.5, colors.grey),
                               ("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#e8eef7")),
                               ("VALIGN", (0, 0), (-1, -1), "TOP")]))
        return t

    @staticmethod
    def build(story: list[Any], title: str) -> bytes:
        from reportlab.lib.pagesizes import A4
        from reportlab.lib.units import mm
        from reportlab.platypus import SimpleDocTemplate

        out = io.BytesIO()
        SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm,
                          topMargin=15 * mm, bottomMargin=15 * mm, title=title).build(story)
        return out.getvalue()


def _markup(text: str) -> str:
    """``text`` as Paragraph markup: escaped, each run in its font."""
    return "".join(f'<font name="{font}">{pdf_text(piece)}</font>'
                   for font, piece in fonts.runs(text) if piece)


def _longest(text: str, size: float) -> float:
    """The width of the widest word of ``text`` at ``size`` (a word: between spaces; a
    Japanese text without spaces is one word, never cut)."""
    return max((fonts.width(word, size) for word in text.split()), default=0.0) + 0.5


def _fit(base: list[float], need: list[float], page: float) -> list[float] | None:
    """Column widths of at least ``need`` each, as close to ``base`` as the page allows
    (the room comes from the page's width left over, then from the other columns' room
    above their need); None when the needs alone are wider than the page."""
    if sum(need) > page:
        return None
    widths = [max(b, w) for b, w in zip(base, need, strict=True)]
    over = sum(widths) - max(page, sum(base))
    if over > 0:
        room = [w - w_need for w, w_need in zip(widths, need, strict=True)]
        total = sum(room)
        widths = [w - over * r / total if total else w for w, r in zip(widths, room, strict=True)]
    return widths


def daily_report(db: Database, shelter_id: str, day: date, language: str = "ja") -> bytes:
    from reportlab.lib.units import mm
    from reportlab.platypus import Spacer

    _ = translations(language).gettext
    settings = get_settings(db)
    counts = roster.headcount(db, shelter_id, settings)
    levels = stock.stock(db, shelter_id, settings)
    start, end = _day_bounds(day)
    moves = dict(db.execute(
        "SELECT action, count(*) FROM presence_log WHERE shelter_id = ? AND at >= ? "
        "AND at < ? GROUP BY action", [shelter_id, start, end]).fetchall())
    pdf = _Pdf()
    body, title, heading, table = pdf.body, pdf.title, pdf.heading, pdf.table
    text = pdf.paragraph
    names = {i["item_id"]: catalog.item_name(i, language) for i in catalog.items(db)}
    units = {i["item_id"]: i["unit"] for i in catalog.items(db)}
    crowding, needs = words.crowding(_), words.needs(_)
    status, urgency = words.request_status(_), words.urgency(_)
    made = datetime.now(supplies.JST).strftime("%Y-%m-%d %H:%M JST")
    date_label, made_label, low_label = _("Date"), _("Made at"), _("Low")
    story: list[Any] = [
        text(_("Daily shelter report") + (" 避難所日報" if language != "ja" else ""), title),
        text(date_label + f": {day.isoformat()} · {settings['shelter_name']} "
             f"({shelter_id}) · " + made_label + f" {made}", body),
        text(_("Headcount"), heading),
        table([[_("Here now"), _("Out"), _("Registered here"), _("Staying at home"),
                _("Staying in cars"), _("Capacity"), _("Crowding")],
               [counts["present"], counts["out"], counts["registered"], counts["at_home"],
                counts["in_car"], counts["capacity"], crowding[counts["crowding"]]]]),
        Spacer(1, 3 * mm),
        table([[_("Arrivals this day"), _("Departures this day"), _("Gone out this day"),
                _("Returned this day")],
               [moves.get("check_in", 0), moves.get("check_out", 0), moves.get("go_out", 0),
                moves.get("return", 0)]]),
        text(_("Here now, by need"), heading),
        table([[needs[k] for k in counts["by_need"]], list(counts["by_need"].values())]),
        text(_("Here now, by age"), heading),
        table([[_("Unknown") if k == "unknown" else _("%(band)s years") % {"band": k}
                for k in counts["by_age"]],
               list(counts["by_age"].values())]),
        text(_("Stock and days left"), heading),
        table([[_("Item"), _("On hand"), _("Handed out in 24 hours"), _("Days left")]] + [
            [names[i["item_id"]], words.quantity(i["on_hand"], i["unit"], _),
             words.quantity(i["consumed_24h"], i["unit"], _),
             ("—" if i["days_of_supply"] is None else
              f"{i['days_of_supply']}" + (f" ({low_label})" if i["low"] else ""))]
            for i in levels["items"]], [70 * mm, 35 * mm, 40 * mm, 35 * mm]),
        text(_("Open requests to HQ"), heading),
    ]
    open_requests = supply_requests.requests(db, open_only=True)
    if open_requests:
        story.append(table([[_("Requested"), _("Urgency"), _("Status"), _("Items")]] + [
            [times.japan_date(r["requested_at"]), urgency[r["urgency"]],
             status[r["status"]] + (" · " + _("expected %(time)s") % {
                 "time": times.japan_datetime(r["expected_arrival"])}
                 if r["status"] == "dispatched" and r.get("expected_arrival") else ""),
             _(", ").join(f"{names.get(line['item_id'], line['item_id'])} " + words.quantity(
                 line["quantity"], units.get(line["item_id"], ""), _) for line in r["lines"])]
            for r in open_requests],
            [25 * mm, 30 * mm, 35 * mm, 90 * mm]))
    else:
        story.append(text(_("None."), body))
    story.append(text(_("Notes from the day"), heading))
    day_notes = notes(db, shelter_id, day)
    for note in day_notes:
        when = times.japan_time(note["at"])  # "" for a time no clock reads (9999-12-31)
        story.append(text(f"{when} ({note['actor']}): {note['text']}", body))
    if not day_notes:
        story.append(text(_("None."), body))
    return pdf.build(story, f"Daily report {day.isoformat()}")


def situation_report(rows: list[dict[str, Any]], queue: list[dict[str, Any]],
                     demand: list[dict[str, Any]], language: str = "ja",
                     items: list[dict[str, Any]] | None = None) -> bytes:
    """HQ's situation report (被害・避難状況報告) for the meeting: totals, per municipality,
    needs, supplies, requests and silent shelters, with when it was made. ``items``: the
    catalog (shelter.domain.catalog.items), for the items' names and units."""
    from reportlab.lib.units import mm
    from reportlab.platypus import Spacer

    from shelter.hq import stats
    from shelter.hq.shelters import ATTRIBUTION

    _ = translations(language).gettext
    pdf = _Pdf(9)
    body, title, heading, table = pdf.body, pdf.title, pdf.heading, pdf.table
    text = pdf.paragraph

    totals = stats.totals(rows)
    made = datetime.now(supplies.JST).strftime("%Y-%m-%d %H:%M JST")
    need_names = words.needs(_)
    names = {i["item_id"]: catalog.item_name(i, language) for i in items or []}
    units = {i["item_id"]: i["unit"] for i in items or []}
    counts_head = [_("Here now"), _("Out"), _("People registered"), _("Staying at home"),
                   _("Staying in cars"), _("Capacity")]
    story: list[Any] = [
        text(_("Situation report: evacuation shelters") +
             (" 避難所状況報告" if language != "ja" else ""), title),
        text(_("Made at") + f" {made} · " + _(
            "%(open)s of %(all)s shelters open; %(stale)s silent") % {
            "open": totals["shelters_open"], "all": totals["shelters"],
            "stale": totals["shelters_stale"]}, body),
        text(_("Totals"), heading),
        table([counts_head, [totals[k] for k in stats.TOTAL_FIELDS]]),
        text(_("Of those here now, %(n)s are counted in shelters that have gone "
               "silent (their last figures).") % {"n": totals["stale_present"]}, body),
        text(_("Here now, by need"), heading),
        table([[need_names.get(k, k) for k in totals["by_need"]],
               list(totals["by_need"].values())]) if totals["by_need"] else
        text(_("None."), body),
        text(_("By municipality"), heading),
        table([[_("Municipality"), _("Shelters open"), *counts_head[:3], _("Capacity"),
                _("Silent")]] + [
            [m["municipality"] or _("Not in the registry"), m["shelters_open"], m["present"],
             m["out"], m["registered"], m["capacity"], m["shelters_stale"]]
            for m in stats.by_municipality(rows) if m["shelters_open"] or m["present"]],
            [40 * mm, 22 * mm, 22 * mm, 18 * mm, 25 * mm, 22 * mm, 18 * mm]),
        text(_("Supplies: shelters running low"), heading),
    ]
    low = [r for r in rows if r["low_stock"]]
    story.append(table([[_("Shelter"), _("Items low")]] + [
        [r["name"], _(", ").join(names.get(i, i) for i in r["low_stock"])] for r in low],
        [70 * mm, 110 * mm])
        if low else text(_("None."), body))
    story.append(text(_("Open supply requests, by item"), heading))
    story.append(table([[_("Item"), _("Quantity asked"), _("Shelters asking")]] + [
        [names.get(d["item_id"], d["item_id"]),
         words.quantity(d["quantity"], units.get(d["item_id"], ""), _), d["shelters"]]
        for d in demand],
        [70 * mm, 40 * mm, 40 * mm]) if demand else text(_("None."), body))
    story.append(text(_("%(n)s requests open in all.") % {"n": len(queue)}, body))
    story.append(text(_("Silent shelters"), heading))
    silent = [r for r in rows if r["stale"]]
    story.append(table([[_("Shelter"), _("Municipality"), _("Last synced")]] + [
        [r["name"], r["municipality"], times.japan_datetime(r["last_synced_at"]) or _("never")]
        for r in silent], [70 * mm, 50 * mm, 50 * mm])
        if silent else text(_("None."), body))
    story.append(Spacer(1, 4 * mm))
    story.append(text(ATTRIBUTION, body))
    return pdf.build(story, f"Situation report {made}")


