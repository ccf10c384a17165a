"""What anyone may see, with no login: which shelters are open and how crowded, and when
that was last known. Japanese and English; made for a phone. No person, no count by need
or age, no contact other than the shelter's own."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Blueprint, jsonify, render_template

from . import hqstats
from .shelters import ATTRIBUTION
from .web import node

bp = Blueprint("public", __name__)
CACHE_SECONDS = 10.0  # the feed may be polled by many phones and sites at once
PUBLIC_FIELDS = ("shelter_id", "name", "municipality", "address", "lat", "lon", "status",
                 "crowding", "occupancy", "last_synced_at", "as_of", "stale")
_cache: dict[str, Any] = {"at": -1e9, "rows": []}
_cache_lock = threading.Lock()


def public_rows() -> list[dict[str, Any]]:
    """Open (or full) shelters, as the public sees them: freshest figures, no people."""
    with _cache_lock:
        if time.monotonic() - _cache["at"] > CACHE_SECONDS:
            rows = [r for r in hqstats.cached_overview(node()) if r["status"] in ("open", "full")]
            _cache.update(at=time.monotonic(), rows=[
                {k: r[k] for k in PUBLIC_FIELDS} for r in sorted(
                    rows, key=lambda r: (r["municipality"], r["name"]))])
        return list(_cache["rows"])


@bp.get("/public")
def page():  # type: ignore[no-untyped-def]
    from .hq_pages import labels

    rows = public_rows()
    municipalities: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        municipalities.setdefault(r["municipality"], []).append(r)
    return render_template("public/shelters.html", municipalities=municipalities,
                           labels=labels(), attribution=ATTRIBUTION, count=len(rows))


@bp.get("/api/v1/public/shelters")
def feed():  # type: ignore[no-untyped-def]
    response = jsonify({"shelters": public_rows(), "attribution": ATTRIBUTION})
    response.headers["Cache-Control"] = f"public, max-age={int(CACHE_SECONDS)}"
    response.headers["Access-Control-Allow-Origin"] = "*"  # other sites may show it
    return response
