"""Steps 20-21: a shelter's long day (issue 16): corrections by staff, HQ's map outlines.

Reserved: step 20 for corrections of a household or person (``m020_corrections``), step 21
for the municipality outlines HQ's map draws (``m021_outlines``)."""

from __future__ import annotations

from sqlite_utils import Database


def m020_corrections(db: Database) -> None:
    """Staff corrections of a household or a person (shelter/domain/corrections.py): the
    clock of the last correction applied to each field of each, so that corrections
    arriving out of order (a restored node's epoch, a courier bundle carried late) end the
    same everywhere: the latest clock wins a field, as it wins a person's presence."""
    db.execute("""CREATE TABLE corrected_fields (
        subject_id TEXT NOT NULL,
        field TEXT NOT NULL,
        hlc TEXT NOT NULL,
        PRIMARY KEY (subject_id, field)
    ) WITHOUT ROWID""")


def m021_outlines(db: Database) -> None:
    """HQ: each municipality's outline for the map (shelter/hq/outlines.py), derived from
    the registry's shelters or imported from a boundary file (``source``), in GeoJSON
    (longitude/latitude), with the point its name is drawn at."""
    db.execute("""CREATE TABLE hq_outlines (
        municipality TEXT PRIMARY KEY,
        municipality_code TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL CHECK (source IN ('derived', 'imported')),
        geometry TEXT NOT NULL,
        label_lon REAL NOT NULL,
        label_lat REAL NOT NULL,
        area_km2 REAL NOT NULL,
        updated_at TEXT NOT NULL
    )""")
