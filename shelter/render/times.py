"""Times as the shelter reads a clock: Japan time, whatever zone the machine is set to.

The pages' ``jst`` filter is this; ``japanTime`` in static/live.js is its twin in the
browser (the desk's and HQ's live screens)."""

from __future__ import annotations

from datetime import datetime

from shelter.domain.supplies import JST


def japan_time(iso: object, seconds: bool = False) -> str:
    """A stored time (ISO 8601) as ``HH:MM`` (``HH:MM:SS`` with ``seconds``) in Japan time;
    "" for no time or one that does not parse."""
    if not isinstance(iso, str):
        return ""
    try:
        moment = datetime.fromisoformat(iso).astimezone(JST)
    except (ValueError, OverflowError):  # 9999-12-31T23:59:59Z is no time in Japan
        return ""
    return moment.strftime("%H:%M:%S" if seconds else "%H:%M")
