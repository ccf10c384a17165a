"""Times as the shelter reads a clock: Japan time, whatever zone the machine is set to.

The pages' filters are these: ``jst`` (``HH:MM``), ``jst_datetime`` (``YYYY-MM-DD HH:MM``)
and ``jst_date`` (``YYYY-MM-DD``). ``japanTime`` in static/live.js is their twin in the
browser (the desk's and HQ's live screens; ``{date: true}`` gives the date and time)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from shelter.domain.supplies import JST


def _moment(iso: object) -> datetime | None:
    """A stored time (ISO 8601) in Japan time; a time without a zone is read as UTC, the way
    the store writes it. None for no time or one that does not parse."""
    if not isinstance(iso, str):
        return None
    try:
        moment = datetime.fromisoformat(iso)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(JST)
    except (ValueError, OverflowError):  # 9999-12-31T23:59:59Z is no time in Japan
        return None


def japan_time(iso: object, seconds: bool = False) -> str:
    """A stored time (ISO 8601) as ``HH:MM`` (``HH:MM:SS`` with ``seconds``) in Japan time;
    "" for no time or one that does not parse."""
    moment = _moment(iso)
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M") if moment else ""


def japan_datetime(iso: object, seconds: bool = False) -> str:
    """A stored time as ``YYYY-MM-DD HH:MM`` in Japan time (reads the same in ja and en);
    "" for no time or one that does not parse."""
    moment = _moment(iso)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") \
        if moment else ""


def japan_date(iso: object) -> str:
    """The Japan-time day of a stored time as ``YYYY-MM-DD``. A bare day (``2026-12-02``, a
    :class:`date`) is already a day and is given back as it is; "" for nothing readable."""
    if isinstance(iso, date) and not isinstance(iso, datetime):
        return iso.isoformat()
    if isinstance(iso, datetime):
        iso = iso.isoformat()
    if isinstance(iso, str) and len(iso) == 10:
        try:
            return date.fromisoformat(iso).isoformat()
        except ValueError:
            return ""
    moment = _moment(iso)
    return moment.strftime("%Y-%m-%d") if moment else ""
