"""HQ's open-data exports of the shelters (rows from hq.board.export_rows: no person, no
count by need or age) as JSON, GeoJSON or CSV, with the registry's attribution."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

from shelter.hq.board import EXPORT_FIELDS
from shelter.hq.shelters import ATTRIBUTION
from shelter.render.outputs import csv_cell

KINDS = {"json": "application/json", "geojson": "application/geo+json", "csv": "text/csv"}


def shelters(rows: list[dict[str, Any]], kind: str) -> str:
    """The export in ``kind`` (one of KINDS; its media type is KINDS[kind])."""
    if kind == "json":
        return json.dumps({"generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
                           "attribution": ATTRIBUTION, "shelters": rows}, ensure_ascii=False)
    if kind == "geojson":
        return json.dumps({"type": "FeatureCollection", "attribution": ATTRIBUTION,
                           "features": [{
                               "type": "Feature", "properties": {
                                   k: v for k, v in r.items() if k not in ("lat", "lon")},
                               "geometry": {"type": "Point", "coordinates": [r["lon"], r["lat"]]}
                               if r["lat"] is not None else None} for r in rows]},
                          ensure_ascii=False)
    if kind == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\r\n")
        writer.writeheader()
        # A name from a registry file or a shelter's laptop must not run as a formula.
        writer.writerows({k: csv_cell(v) for k, v in r.items()} for r in rows)
        return "\ufeff" + out.getvalue()  # BOM: Excel opens UTF-8 Japanese correctly
    raise ValueError(f"no export as {kind!r}")
