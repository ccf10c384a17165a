"""HQ's municipality outlines, for the map: derived from the registry's shelters, or
imported from a boundary file, which wins.

Derived (``derive``): the shelters' points cut the prefecture into Voronoi cells (each
place goes to its nearest shelter), the cells of a municipality are merged, and everything
is clipped to the land within ``REACH_KM`` of some shelter (a hull would draw the bay and
the mountains as if people lived there). The merged outlines are simplified together as
one coverage, so neighbours keep one shared border: no overlaps, no slivers. A cell always
holds its own shelter, so every shelter lies in its municipality's outline (up to the
simplification, ``SIMPLIFY_KM``). A raster traced to polygons would do as well but needs a
grid fine enough for 忠岡町 (4 km²) and gives staircase borders; Voronoi is exact and quick
(~0.5 s for Osaka's 2,975 shelters). It is an approximation: borders fall halfway between
shelters, not on the river or the street the real one follows.

Imported (``import_file``): GeoJSON polygons with a municipality's name or code (MLIT's
国土数値情報 N03 administrative boundaries, whose wards are merged into their city). Those
municipalities are drawn as imported; the others keep derived outlines, clipped to stay
off the imported ones.

Outlines are reference geometry HQ draws, not a shelter's state: they are written to
``hq_outlines`` directly (one transaction, through the store's writer), not as events, and
are not synced. Each write moves ``hq_outlines_version`` in meta, which the map's caches
key on. Geometry is kept in longitude/latitude; the work is done in kilometres on a plane
tangent at the prefecture's mean latitude (good to 0.1 % over 100 km).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlite_utils import Database

if TYPE_CHECKING:  # shapely (and numpy) load when a map is first drawn, not with the app
    from shapely.geometry.base import BaseGeometry

from shelter.core import meta
from shelter.core.errors import N_, InvalidInput
from shelter.core.events import EventStore, utc_now_iso
from shelter.core.ids import new_id

REACH_KM = 2.5  # land this close to a shelter is drawn as its municipality's
SIMPLIFY_KM = 0.08  # borders are simplified by this much (well under a pixel at full view)
IMPORT_SIMPLIFY_KM = 0.03
KM_PER_DEGREE = 111.32  # along a meridian (close enough in Japan) and along the equator
MAX_FILE_BYTES = 200 * 1024 * 1024
NAME_KEYS = ("N03_004", "municipality", "name", "市区町村名", "市町村名", "N03_003")
CODE_KEYS = ("N03_007", "団体コード", "code", "全国地方公共団体コード")
VERSION_KEY = "hq_outlines_version"


class OutlineProblem(InvalidInput, ValueError):
    """A boundary file that cannot be used. ``str()`` says why, in English (for the CLI)."""

    code = "unreadable_outlines"
    message = N_("This file is not a boundary file that can be imported.")

    def __init__(self, detail: str) -> None:
        super().__init__(detail=detail)


@dataclass(frozen=True)
class Outline:
    """A municipality's outline (longitude/latitude) and where its name goes."""

    municipality: str
    code: str
    source: str  # "derived" or "imported"
    geometry: BaseGeometry
    label: tuple[float, float]  # lon, lat: a point well inside its largest part
    area_km2: float


@dataclass(frozen=True)
class Outlines:
    """Every stored outline, as of ``version`` (changes with each write)."""

    version: str
    items: tuple[Outline, ...]

    def get(self, municipality: str) -> Outline | None:
        return next((o for o in self.items if o.municipality == municipality), None)


class _Plane:
    """Longitude/latitude to kilometres and back, tangent at ``lat0``."""

    def __init__(self, lat0: float) -> None:
        self.kx = KM_PER_DEGREE * math.cos(math.radians(lat0))

    def to_km(self, geometry: BaseGeometry) -> BaseGeometry:
        import shapely
        return shapely.transform(geometry, lambda c: c * [self.kx, KM_PER_DEGREE])

    def to_degrees(self, geometry: BaseGeometry) -> BaseGeometry:
        import shapely
        return shapely.transform(geometry, lambda c: c / [self.kx, KM_PER_DEGREE])


def _label(km: BaseGeometry, plane: _Plane) -> tuple[float, float]:
    """The pole of inaccessibility of the largest part: the point inside it farthest from
    its border (a centroid can fall outside a crescent, or in the sea)."""
    import shapely
    from shapely.ops import polylabel
    parts = [p for p in shapely.get_parts(km) if not p.is_empty]
    if not parts:
        return (0.0, 0.0)
    largest = max(parts, key=lambda p: p.area)
    point = polylabel(largest, tolerance=0.05)
    lon, lat = plane.to_degrees(point).coords[0]
    return (round(lon, 5), round(lat, 5))


def _outlines(named: list[tuple[str, str, BaseGeometry]], source: str, plane: _Plane,
              tolerance: float) -> list[Outline]:
    """Outlines from (municipality, code, geometry in km), simplified together."""
    import shapely
    named = [(m, c, g) for m, c, g in named if not g.is_empty and g.area > 0]
    if not named:
        return []
    geometries = [g for _, _, g in named]
    try:
        simple = list(shapely.coverage_simplify(geometries, tolerance))
    except shapely.errors.GEOSException:  # not a clean coverage (a file's own topology)
        simple = [shapely.simplify(g, tolerance, preserve_topology=True) for g in geometries]
    out = []
    for (municipality, code, raw), geometry in zip(named, simple, strict=True):
        geometry = shapely.make_valid(geometry) if not geometry.is_valid else geometry
        if geometry.is_empty or geometry.area <= 0:
            geometry = raw
        out.append(Outline(municipality, code, source,
                           shapely.set_precision(plane.to_degrees(geometry), 1e-5),
                           _label(geometry, plane), round(geometry.area, 2)))
    return out


def derive(points: Iterable[tuple[str, str, float, float]],
           imported: Iterable[Outline] = ()) -> list[Outline]:
    """Outlines for every municipality among ``points`` (municipality, code, lon, lat) that
    ``imported`` has none for, kept off the imported ones."""
    import shapely
    imported = list(imported)
    taken = {o.municipality for o in imported}
    points = [p for p in points if p[0] and p[0] not in taken]
    lats = [p[3] for p in points] + [o.label[1] for o in imported]
    if not points:
        return []
    plane = _Plane(sum(lats) / len(lats))
    # One owner per place: shelters sharing a point (a school that is two shelters) vote.
    owners: dict[tuple[float, float], dict[str, int]] = {}
    codes: dict[str, str] = {}
    for municipality, code, lon, lat in points:
        at = (round(lon * plane.kx, 4), round(lat * KM_PER_DEGREE, 4))
        votes = owners.setdefault(at, {})
        votes[municipality] = votes.get(municipality, 0) + 1
        codes.setdefault(municipality, code)
    places = list(owners)
    sites = shapely.points(places)
    reach = shapely.union_all(shapely.buffer(sites, REACH_KM, quad_segs=6))
    reach = reach.buffer(0.6, quad_segs=4).buffer(-0.6, quad_segs=4)  # close narrow gaps
    if imported:
        reach = reach.difference(shapely.union_all(
            [plane.to_km(o.geometry) for o in imported]))
    cells = shapely.get_parts(shapely.voronoi_polygons(
        shapely.multipoints(places), extend_to=reach.envelope.buffer(REACH_KM),
        ordered=True)) if len(places) > 1 else [reach.envelope.buffer(REACH_KM)]
    merged: dict[str, list[BaseGeometry]] = {}
    for place, cell in zip(places, cells, strict=True):
        votes = owners[place]
        merged.setdefault(max(votes, key=lambda m: (votes[m], m)), []).append(cell)
    # Voronoi cells meet edge to edge: a coverage, which merges far faster than a union.
    named = [(m, codes[m], shapely.intersection(shapely.coverage_union_all(c), reach))
             for m, c in sorted(merged.items())]
    return _outlines([(m, c, _polygonal(g)) for m, c, g in named], "derived", plane,
                     SIMPLIFY_KM)


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Only the areas of a geometry (an intersection may leave stray lines or points)."""
    import shapely
    if geometry.geom_type in ("Polygon", "MultiPolygon"):
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type in ("Polygon",
                                                                      "MultiPolygon")]
    return shapely.union_all(parts) if parts else shapely.Polygon()


# -- stored ------------------------------------------------------------------------------

def _rows(outlines: Iterable[Outline], at: str) -> list[dict[str, Any]]:
    import shapely
    return [{"municipality": o.municipality, "municipality_code": o.code, "source": o.source,
             "geometry": shapely.to_geojson(o.geometry), "label_lon": o.label[0],
             "label_lat": o.label[1], "area_km2": o.area_km2, "updated_at": at}
            for o in outlines]


def load(db: Database) -> Outlines:
    """Every stored outline (a fresh read; ``cached`` for pages)."""
    import shapely
    version = meta.get(db, VERSION_KEY) or ""
    items = tuple(
        Outline(r["municipality"], r["municipality_code"], r["source"],
                shapely.from_geojson(r["geometry"]), (r["label_lon"], r["label_lat"]),
                r["area_km2"])
        for r in db.query("SELECT * FROM hq_outlines ORDER BY municipality"))
    return Outlines(version, items)


_cache: dict[str, Outlines] = {}
_cache_lock = threading.Lock()


def cached(db: Database) -> Outlines:
    """``load``, read again only when another write moved the version (one indexed read
    per call): the outlines change at an import, not per request."""
    version = meta.get(db, VERSION_KEY) or ""
    key = db.execute("PRAGMA database_list").fetchone()[2] or str(id(db))
    with _cache_lock:
        known = _cache.get(key)
        if known is None or known.version != version:
            known = _cache[key] = load(db)
        return known


def _registry_points(db: Database) -> list[tuple[str, str, float, float]]:
    return [(r[0], r[1], r[2], r[3]) for r in db.execute(
        "SELECT municipality, municipality_code, lon, lat FROM hq_shelters "
        "WHERE lat IS NOT NULL AND lon IS NOT NULL AND municipality != ''")]


def ensure(store: EventStore) -> bool:
    """Derive the outlines if there are none but the registry has places (an HQ whose
    registry was imported before HQ drew outlines); True if it did. Cheap when there are."""
    if store.db.execute("SELECT 1 FROM hq_outlines LIMIT 1").fetchone() or \
            not store.db.execute("SELECT 1 FROM hq_shelters WHERE lat IS NOT NULL AND lon IS "
                                 "NOT NULL AND municipality != '' LIMIT 1").fetchone():
        return False
    refresh(store)
    return True


def _store(store: EventStore, outlines: list[Outline], keep_imported: bool) -> None:
    at = utc_now_iso()
    with store.write() as db:
        if keep_imported:
            db.execute("DELETE FROM hq_outlines WHERE source = 'derived'")
        else:
            db.execute("DELETE FROM hq_outlines")
        if outlines:
            db.table("hq_outlines").insert_all(_rows(outlines, at), pk="municipality",
                                               replace=True)
        meta.put(db, VERSION_KEY, new_id())  # what the map's caches key on


def refresh(store: EventStore) -> dict[str, int]:
    """Derive again the outlines of every municipality with no imported one (after the
    registry changed). Returns how many of each kind there are."""
    imported = [o for o in load(store.db).items if o.source == "imported"]
    derived = derive(_registry_points(store.db), imported)
    _store(store, derived, keep_imported=True)
    return {"derived": len(derived), "imported": len(imported)}


# -- a boundary file ---------------------------------------------------------------------

def _strip_prefecture(name: str) -> str:
    from shelter.hq.shelters import PREFECTURES  # the registry's own rule for names
    return PREFECTURES.sub("", name.strip()) or name.strip()


def _match(props: dict[str, Any], names: dict[str, str], codes: dict[str, str]) -> str | None:
    """The registry's municipality a feature is of: by its name (a ward by its city's,
    N03_003), else by its code's first five digits (the sixth is a check digit)."""
    for key in CODE_KEYS:
        code = str(props.get(key) or "").strip()
        if len(code) >= 5 and code[:5] in codes:
            return codes[code[:5]]
    for key in NAME_KEYS:
        name = _strip_prefecture(str(props.get(key) or ""))
        if name in names:
            return names[name]
    return None


def parse(raw: bytes, names: dict[str, str], codes: dict[str, str]
          ) -> tuple[dict[str, list[BaseGeometry]], int]:
    """The polygons of each known municipality in a GeoJSON FeatureCollection, and how many
    features were of none (another prefecture's, a sea area). Raises OutlineProblem."""
    import shapely
    if len(raw) > MAX_FILE_BYTES:
        raise OutlineProblem("the file is larger than 200 MB")
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, ValueError):
        raise OutlineProblem("the file is not GeoJSON (it does not parse as UTF-8 JSON)"
                             ) from None
    features = data.get("features") if isinstance(data, dict) else None
    if not isinstance(features, list) or not features:
        raise OutlineProblem("a boundary file must be a GeoJSON FeatureCollection with "
                             "features")
    found: dict[str, list[BaseGeometry]] = {}
    other = polygons = 0
    for number, feature in enumerate(features, 1):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon",
                                                                         "MultiPolygon"):
            continue
        polygons += 1
        try:
            shape = shapely.from_geojson(json.dumps(geometry))
        except (shapely.errors.GEOSException, ValueError):
            raise OutlineProblem(f"feature {number} has a geometry that cannot be read"
                                 ) from None
        west, south, east, north = shape.bounds
        if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):
            raise OutlineProblem(f"feature {number} is not in longitude/latitude (WGS 84 or "
                                 "JGD2011 degrees): its coordinates run past ±180/±90")
        props = feature.get("properties")
        municipality = _match(props if isinstance(props, dict) else {}, names, codes)
        if municipality is None:
            other += 1
        else:
            found.setdefault(municipality, []).append(shapely.make_valid(shape))
    if not polygons:
        raise OutlineProblem("the file holds no Polygon or MultiPolygon feature")
    if not found:
        raise OutlineProblem("no feature names a municipality of the registry (by a "
                             "property such as N03_004, name or 団体コード); import the "
                             "registry first (shelter hq import), then this file")
    return found, other


def import_file(store: EventStore, path: Path) -> dict[str, Any]:
    """Import a boundary file: its municipalities drawn as it says (replacing any earlier
    import), the others derived. All or nothing: a refused file changes nothing."""
    import shapely
    registry = store.db.execute("SELECT DISTINCT municipality, municipality_code FROM "
                                "hq_shelters WHERE municipality != ''").fetchall()
    if not registry:
        raise OutlineProblem("HQ's registry is empty: import the shelters first "
                             "(shelter hq import), then their municipalities' outlines")
    names = {m: m for m, _ in registry}
    codes = {c[:5]: m for m, c in registry if len(c) >= 5}
    found, other = parse(path.read_bytes(), names, codes)
    points = _registry_points(store.db)
    lats = [p[3] for p in points] or [
        shapely.union_all(g).centroid.y for g in found.values()]
    plane = _Plane(sum(lats) / len(lats))
    code_of = dict(registry)
    imported = _outlines(
        [(m, code_of.get(m, ""), plane.to_km(_polygonal(shapely.union_all(parts))))
         for m, parts in sorted(found.items())], "imported", plane, IMPORT_SIMPLIFY_KM)
    derived = derive(points, imported)
    _store(store, imported + derived, keep_imported=False)
    missing = sorted(set(names) - set(found))
    return {"imported": len(imported), "derived": len(derived), "ignored": other,
            "without": missing}
