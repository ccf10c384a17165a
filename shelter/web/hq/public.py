"""What anyone may see, with no login: which shelters are open and how crowded, and when
that was last known (the date and time, in Japan time). In the five languages of the
registration pages (shelter/web/hooks.py: EVERY_LANGUAGE); made for a phone. No person, no
count by need or age."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template

from shelter.hq import stats
from shelter.hq.shelters import ATTRIBUTION
from shelter.web import labels
from shelter.web.base import node

bp = Blueprint("public", __name__)
PUBLIC_FIELDS = ("shelter_id", "name", "municipality", "address", "lat", "lon", "status",
                 "crowding", "occupancy", "last_synced_at", "as_of", "stale")


def public_rows() -> list[dict[str, Any]]:
    """Open (or full) shelters, as the public sees them: freshest figures, no people. Made
    once per overview, however many phones ask."""
    def make(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        shown = [r for r in rows if r["status"] in ("open", "full")]
        return [{k: r[k] for k in PUBLIC_FIELDS}
                for r in sorted(shown, key=lambda r: (r["municipality"], r["name"]))]

    return stats.cached(node(), "public", make)


@bp.get("/public")
def page() -> str:
    rows = public_rows()
    municipalities: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        municipalities.setdefault(r["municipality"], []).append(r)
    return render_template("public/shelters.html", municipalities=municipalities,
                           labels=labels.hq(), attribution=ATTRIBUTION, count=len(rows))


@bp.get("/api/v1/public/shelters")
def feed() -> Response:
    response = jsonify({"shelters": public_rows(), "attribution": ATTRIBUTION})
    response.headers["Cache-Control"] = f"public, max-age={int(stats.CACHE_SECONDS)}"
    response.headers["Access-Control-Allow-Origin"] = "*"  # other sites may show it
    return response
