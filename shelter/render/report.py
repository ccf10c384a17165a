"""The daily shelter report (避難所日報) as a PDF, in Japanese (default) or English.

Numbers are the shelter's state when the report is made; arrivals, departures and notes
are those of the chosen day (Japan time).
"""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlite_utils import Database

from shelter.domain import cards, catalog, roster, stock, supplies, supply_requests
from shelter.domain.day_notes import notes
from shelter.domain.settings import get_settings
from shelter.render import words
from shelter.render.catalogs import translations
from shelter.render.outputs import pdf_text


def _day_bounds(day: date) -> tuple[str, str]:
    start = datetime.combine(day, time(0), supplies.JST)
    return (start.astimezone(UTC).isoformat(timespec="milliseconds"),
            (start + timedelta(days=1)).astimezone(UTC).isoformat(
                timespec="milliseconds"))


class _Pdf:
    """What both reports draw with: the Japanese-capable font, three paragraph styles, and
    a gridded table of paragraphs (long cells wrap)."""

    def __init__(self, size: float = 10) -> None:
        from reportlab.lib.styles import ParagraphStyle

        font = cards.font_for("避難所", "ja")
        self.body = ParagraphStyle("body", fontName=font, fontSize=size, leading=size * 1.4)
        self.title = ParagraphStyle("title", parent=self.body, fontSize=size + 8,
                                    leading=(size + 8) * 1.3)
        self.heading = ParagraphStyle("heading", parent=self.body, fontSize=size + 3,
                                      leading=(size + 3) * 1.4, spaceBefore=8)

    def paragraph(self, text: object, style: Any = None) -> Any:
        """The only way text enters these PDFs: reportlab reads a Paragraph as markup, and
        names, notes and units are typed by people (``<b>`` must print as ``<b>``)."""
        from reportlab.platypus import Paragraph

        return Paragraph(pdf_text(text), style or self.body)

    def table(self, rows: list[list[Any]], widths: list[float] | None = None) -> Any:
        from reportlab.lib import colors
        from reportlab.platypus import Table, TableStyle

        t = Table([[self.paragraph(str(cell)) for cell in row] for row in rows],
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
        table([[_("Unknown") if k == "unknown" else k for k in counts["by_age"]],
               list(counts["by_age"].values())]),
        text(_("Stock and days left"), heading),
        table([[_("Item"), _("On hand"), _("Handed out in 24 hours"), _("Days left")]] + [
            [names[i["item_id"]], f"{i['on_hand']} {i['unit']}", i["consumed_24h"],
             ("—" if i["days_of_supply"] is None else
              f"{i['days_of_supply']}" + (f" ({low_label})" if i["low"] else ""))]
            for i in levels["items"]], [70 * mm, 35 * mm, 40 * mm, 35 * mm]),
        text(_("Open requests to HQ"), heading),
    ]
    open_requests = supply_requests.requests(db, open_only=True)
    if open_requests:
        story.append(table([[_("Requested"), _("Urgency"), _("Status"), _("Items")]] + [
            [r["requested_at"][:10], urgency[r["urgency"]], status[r["status"]],
             ", ".join(f"{names.get(line['item_id'], line['item_id'])} {line['quantity']}"
                       for line in r["lines"])] for r in open_requests],
            [25 * mm, 30 * mm, 35 * mm, 90 * mm]))
    else:
        story.append(text(_("None."), body))
    story.append(text(_("Notes from the day"), heading))
    day_notes = notes(db, shelter_id, day)
    for note in day_notes:
        when = datetime.fromisoformat(note["at"]).astimezone(supplies.JST).strftime("%H:%M")
        story.append(text(f"{when} ({note['actor']}): {note['text']}", body))
    if not day_notes:
        story.append(text(_("None."), body))
    return pdf.build(story, f"Daily report {day.isoformat()}")


def situation_report(rows: list[dict[str, Any]], queue: list[dict[str, Any]],
                     demand: list[dict[str, Any]], language: str = "ja") -> bytes:
    """HQ's situation report (被害・避難状況報告) for the meeting: totals, per municipality,
    needs, supplies, requests and silent shelters, with when it was made."""
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
    counts_head = [_("Here now"), _("Out"), _("Registered here"), _("Staying at home"),
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
        [r["name"], ", ".join(r["low_stock"])] for r in low], [70 * mm, 110 * mm])
        if low else text(_("None."), body))
    story.append(text(_("Open supply requests, by item"), heading))
    story.append(table([[_("Item"), _("Quantity asked"), _("Shelters")]] + [
        [d["item_id"], d["quantity"], d["shelters"]] for d in demand],
        [70 * mm, 40 * mm, 40 * mm]) if demand else text(_("None."), body))
    story.append(text(_("%(n)s requests open in all.") % {"n": len(queue)}, body))
    story.append(text(_("Silent shelters"), heading))
    silent = [r for r in rows if r["stale"]]
    story.append(table([[_("Shelter"), _("Municipality"), _("Last synced")]] + [
        [r["name"], r["municipality"], (r["last_synced_at"] or _("never"))[:16]]
        for r in silent], [70 * mm, 50 * mm, 50 * mm])
        if silent else text(_("None."), body))
    story.append(Spacer(1, 4 * mm))
    story.append(text(ATTRIBUTION, body))
    return pdf.build(story, f"Situation report {made}")


