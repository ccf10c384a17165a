"""HQ's registry of designated shelters: imported from the GSI data (GeoJSON or CSV) or the
national standard open-data CSV (指定緊急避難場所一覧 / 指定避難所一覧), kept through events.

A re-import updates the shelters it names and adds new ones; it never duplicates one. The
key is the national common id (共通ID, like E2710000001111). A row of the standard CSV with
no such id is matched to a shelter of the same municipality and name, else keyed by the
municipality code and its own ID column.
"""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

from sqlite_utils import Database

from shelter.core import ids
from shelter.core.errors import N_, InvalidInput
from shelter.core.events import Event, EventStore, projection

ATTRIBUTION = "出典：国土地理院 指定緊急避難場所・指定避難所データ"
PREFECTURES = re.compile(r"^(北海道|東京都|京都府|大阪府|.{2,3}県)")
MAX_FILE_BYTES = 64 * 1024 * 1024


class ImportProblem(InvalidInput, ValueError):
    """The file is not a shelter list this importer knows. ``str()`` says why, in English
    (for the CLI)."""

    code = "unreadable_import"
    message = N_("This file is not a shelter list that can be imported.")

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


def _municipality(full: str) -> str:
    """大阪府大阪市 -> 大阪市 (the prefecture is implied)."""
    return PREFECTURES.sub("", (full or "").strip()) or (full or "").strip()


def _number(value: Any) -> float | None:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if number == number else None  # not NaN


def _capacity(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None and number > 0 else 0


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _gsi_row(props: dict[str, Any], lon: Any, lat: Any, source: str) -> dict[str, Any] | None:
    shelter_id = _text(props.get("共通ID")).upper()
    name = _text(props.get("施設・場所名"))
    if not name or not ids.valid_id(shelter_id):
        return None
    return {"shelter_id": shelter_id, "name": name, "name_kana": "",
            "municipality": _municipality(_text(props.get("都道府県名及び市町村名"))),
            "municipality_code": _text(props.get("団体コード")),
            "address": _text(props.get("住所")), "lat": _number(lat), "lon": _number(lon),
            "accepts": _text(props.get("受入対象者")), "capacity": 0, "phone": "",
            "source": source}


def _standard_row(row: dict[str, Any], source: str) -> dict[str, Any] | None:
    name = _text(row.get("名称"))
    if not name:
        return None
    code = _text(row.get("全国地方公共団体コード"))
    common = _text(row.get("共通ID")).upper()  # present in some publications
    own = _text(row.get("ID")).upper()
    if ids.valid_id(common):
        shelter_id = common
    elif own.startswith("E") and ids.valid_id(own):
        shelter_id = own  # the national id in the ID column
    else:  # a municipality's own numbering: unique only with its code
        local = re.sub(r"[^0-9A-Z]", "", own)
        shelter_id = f"{code}-{local}"[:32] if code.isdigit() and local else ""
    municipality = _text(row.get("所在地_市区町村")) or _municipality(
        _text(row.get("地方公共団体名")))
    address = _text(row.get("所在地_連結表記")) or _text(row.get("住所"))
    return {"shelter_id": shelter_id, "name": name, "name_kana": _text(row.get("名称_カナ")),
            "municipality": municipality, "municipality_code": code, "address": address,
            "lat": _number(row.get("緯度")), "lon": _number(row.get("経度")),
            "accepts": "", "capacity": _capacity(row.get("想定収容人数")),
            "phone": _text(row.get("電話番号")), "source": source}


def _decode(raw: bytes) -> str:
    for encoding in ("utf-8-sig", "cp932"):  # open data comes in either
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise ImportProblem("the file is neither UTF-8 nor Shift_JIS text")


def parse(raw: bytes, name: str = "") -> tuple[str, list[dict[str, Any]], int]:
    """(format, shelters, rows skipped) from a GSI GeoJSON, a GSI CSV or a standard CSV."""
    if len(raw) > MAX_FILE_BYTES:
        raise ImportProblem("the file is larger than 64 MB")
    text = _decode(raw).lstrip()
    rows: list[dict[str, Any]] = []
    skipped = 0
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ImportProblem("the file looks like JSON but does not parse") from None
        features = data.get("features") if isinstance(data, dict) else None
        if not isinstance(features, list):
            raise ImportProblem("a GeoJSON file must be a FeatureCollection")
        for feature in features:
            props = feature.get("properties") if isinstance(feature, dict) else None
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
            if not isinstance(props, dict):
                skipped += 1
                continue
            lon, lat = (coords[0], coords[1]) if isinstance(coords, list) and \
                len(coords) >= 2 else (None, None)
            row = _gsi_row(props, lon, lat, "gsi")
            if row is None:
                skipped += 1
            else:
                rows.append(row)
        return "gsi-geojson", rows, skipped
    reader = csv.DictReader(io.StringIO(text))
    headers = set(reader.fieldnames or [])
    if "共通ID" in headers and "施設・場所名" in headers:
        kind = "gsi-csv"
        for record in reader:
            row = _gsi_row(record, record.get("経度"), record.get("緯度"), "gsi")
            if row is None:
                skipped += 1
            else:
                rows.append(row)
    elif "名称" in headers and ("全国地方公共団体コード" in headers or "地方公共団体名" in headers):
        kind = "standard-csv"
        for record in reader:
            row = _standard_row(record, "standard")
            if row is None:
                skipped += 1
            else:
                rows.append(row)
    else:
        raise ImportProblem(f"{name or 'the file'} is not GSI GeoJSON, a GSI CSV (共通ID, "
                            "施設・場所名) or a standard open-data CSV (名称, "
                            "全国地方公共団体コード)")
    return kind, rows, skipped


def import_file(store: EventStore, path: Path) -> dict[str, Any]:
    """Import (or re-import) a shelter list; returns what happened."""
    kind, rows, skipped = parse(path.read_bytes(), path.name)
    if not rows:
        raise ImportProblem(f"{path.name} holds no shelter this importer can read")
    db = store.db
    for row in rows:
        if row["shelter_id"] and row["shelter_id"][:6].isdigit():  # a local number
            same = db.execute("SELECT shelter_id FROM hq_shelters WHERE municipality = ? "
                              "AND name = ?", [row["municipality"], row["name"]]).fetchone()
            if same:
                row["shelter_id"] = same[0]
    rows = [r for r in rows if r["shelter_id"]]
    known = {r[0] for r in db.execute("SELECT shelter_id FROM hq_shelters")}
    store.append("shelter_registry_imported", {"format": kind, "file": path.name,
                                               "shelters": rows})
    ids = {r["shelter_id"] for r in rows}
    return {"format": kind, "shelters": len(ids), "new": len(ids - known),
            "updated": len(ids & known), "skipped": skipped,
            "municipalities": len({r["municipality"] for r in rows})}


def registry_entry(db: Database, shelter_id: str) -> dict[str, Any] | None:
    """The registry's row for a shelter (address, what it accepts...), or None when the
    registry does not list it (a shelter known only from its own sync)."""
    return next(iter(db.query("SELECT * FROM hq_shelters WHERE shelter_id = ?",
                              [shelter_id])), None)


@projection("shelter_registry_imported")
def _apply_registry_imported(db: Database, event: Event) -> None:
    for row in event.payload["shelters"]:
        keep_capacity = row.get("capacity", 0) == 0  # GSI has none: keep what was there
        db.execute(
            """INSERT INTO hq_shelters (shelter_id, name, name_kana, municipality,
                   municipality_code, address, lat, lon, accepts, capacity, phone, source,
                   imported_at)
               VALUES (:shelter_id, :name, :name_kana, :municipality, :municipality_code,
                   :address, :lat, :lon, :accepts, :capacity, :phone, :source, :at)
               ON CONFLICT (shelter_id) DO UPDATE SET name = excluded.name,
                   name_kana = CASE WHEN excluded.name_kana != '' THEN excluded.name_kana
                               ELSE name_kana END,
                   municipality = excluded.municipality,
                   municipality_code = CASE WHEN excluded.municipality_code != ''
                               THEN excluded.municipality_code ELSE municipality_code END,
                   address = excluded.address,
                   lat = coalesce(excluded.lat, lat), lon = coalesce(excluded.lon, lon),
                   accepts = CASE WHEN excluded.accepts != '' THEN excluded.accepts
                             ELSE accepts END,
                   capacity = CASE WHEN :keep THEN capacity ELSE excluded.capacity END,
                   phone = CASE WHEN excluded.phone != '' THEN excluded.phone ELSE phone END,
                   source = excluded.source, imported_at = excluded.imported_at""",
            {**{"name_kana": "", "accepts": "", "capacity": 0, "phone": "",
                "municipality_code": ""}, **row, "at": event.recorded_at,
             "keep": 1 if keep_capacity else 0})
