"""HQ's map, drawn on the server as SVG: municipality outlines with their names, and a dot
per shelter. No script, no tiles, no outside host.

The outlines (``shelter.hq.outlines``) change at an import, the dots every few seconds: the
projected outlines and the placed labels are made once per outlines version, view and
size (``_layer``), so a page pays only for its dots. A view is the whole prefecture or one
municipality (``focus``): the drawing is projected for it, so dots and names keep their
size when zoomed. Dots keep ``data-shelter`` and their classes (``dot crowd-* status-*
[stale]``): ``static/hq.js`` changes those classes live.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from markupsafe import Markup, escape

if TYPE_CHECKING:  # shapely (and numpy) load when a map is first drawn, not with the app
    from shapely.geometry.base import BaseGeometry

from shelter.hq.outlines import KM_PER_DEGREE, Outlines
from shelter.render.words import Gettext

WIDTH = 500  # user units; the page scales the drawing to its box
PAD = 12
DOT_R = 4.0
DOT_R_ZOOMED = 5.5
LABEL_SIZES = (15.0, 13.0, 11.0)  # tried in turn where a name does not fit
FOCUS_LABEL = 20.0


@dataclass(frozen=True)
class Frame:
    """Longitude/latitude onto the drawing: ``x0``/``y1`` the view's west and north edges in
    km, ``scale`` units per km."""

    kx: float
    x0: float
    y1: float
    scale: float
    width: int
    height: int
    offset_x: float
    offset_y: float

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        return (self.offset_x + (lon * self.kx - self.x0) * self.scale,
                self.offset_y + (self.y1 - lat * KM_PER_DEGREE) * self.scale)

    def inside(self, x: float, y: float, margin: float = 0.0) -> bool:
        return -margin <= x <= self.width + margin and -margin <= y <= self.height + margin


def _frame(bounds: tuple[float, float, float, float], lat0: float, width: int) -> Frame:
    """A frame fitting ``bounds`` (west, south, east, north in degrees); the height follows
    the shape, within 0.55 and 1.5 of the width."""
    kx = KM_PER_DEGREE * math.cos(math.radians(lat0))
    west, south, east, north = bounds
    span_x = max((east - west) * kx, 0.5)
    span_y = max((north - south) * KM_PER_DEGREE, 0.5)
    height = round(min(max(width * span_y / span_x, width * 0.55), width * 1.5))
    scale = min((width - 2 * PAD) / span_x, (height - 2 * PAD) / span_y)
    return Frame(kx, west * kx - (span_x - (east - west) * kx) / 2,
                 north * KM_PER_DEGREE + (span_y - (north - south) * KM_PER_DEGREE) / 2,
                 scale, width, height,
                 (width - span_x * scale) / 2, (height - span_y * scale) / 2)


def _bounds(geometries: list[BaseGeometry], points: list[tuple[float, float]]
            ) -> tuple[float, float, float, float] | None:
    boxes = [g.bounds for g in geometries if not g.is_empty] + \
        [(lon, lat, lon, lat) for lon, lat in points]
    if not boxes:
        return None
    west, south = min(b[0] for b in boxes), min(b[1] for b in boxes)
    east, north = max(b[2] for b in boxes), max(b[3] for b in boxes)
    pad_x, pad_y = (east - west) * 0.04, (north - south) * 0.04
    return (west - pad_x, south - pad_y, east + pad_x, north + pad_y)


def _path(geometry: BaseGeometry, frame: Frame) -> str:
    import shapely
    rings = []
    for polygon in shapely.get_parts(geometry):
        if polygon.geom_type != "Polygon":
            continue
        for ring in (polygon.exterior, *polygon.interiors):
            xy = [frame.xy(lon, lat) for lon, lat in ring.coords[:-1]]
            if len(xy) >= 3:
                rings.append("M" + " ".join(f"{x:.1f} {y:.1f}" for x, y in xy) + "Z")
    return "".join(rings)


def _placed_labels(outlines: Outlines, frame: Frame, focus: str | None
                   ) -> list[tuple[str, float, float, float]]:
    """(name, x, y, size) for each name that fits: inside its outline, not over another
    name. The focused municipality and then the smallest choose first; a neighbour cut by
    the edge of a zoomed view is named inside the part in view. A name that fits nowhere,
    even at the smallest size, is left out (its outline still names it when pointed at)."""
    import shapely
    from shapely.ops import polylabel
    taken: list[tuple[float, float, float, float]] = []
    placed = []
    view = shapely.box(0, 0, frame.width, frame.height)
    # The focused one first, then the smallest, which have the fewest places to go.
    order = sorted(outlines.items, key=lambda o: (o.municipality != focus, o.area_km2))
    for outline in order:
        drawn = shapely.transform(outline.geometry, lambda c: [list(frame.xy(*p)) for p in c])
        cx, cy = frame.xy(*outline.label)
        if not frame.inside(cx, cy, -PAD):
            if focus is None or not drawn.intersects(view):
                continue
            drawn = _polygonal(drawn.intersection(view.buffer(-PAD)))
            if drawn.is_empty or drawn.area < 400:  # a sliver at the edge: no room
                continue
            largest = max(shapely.get_parts(drawn), key=lambda p: p.area)
            cx, cy = polylabel(largest, tolerance=1.0).coords[0]
        sizes: tuple[float, ...]
        if outline.municipality == focus:
            sizes = (FOCUS_LABEL, *LABEL_SIZES)
        else:  # a name as large as its place is on the drawing: 忠岡町 smaller than 堺市
            room = outline.area_km2 * frame.scale ** 2 / 1000  # in 1,000 units²
            sizes = LABEL_SIZES[0 if room >= 15 else 1 if room >= 5 else 2:]
        for size in sizes:
            # as Chromium draws the bold names (measured: 1.01-1.07 em a character,
            # 1.2 em high), with a pixel to spare each side
            w, h = size * len(outline.municipality) * 1.08 + 2, size * 1.25 + 2
            spot = next((s for s in _spots(cx, cy, w, h, drawn)
                         if _fits(s, w, h, drawn, taken, frame)), None)
            if spot:
                taken.append((spot[0] - w / 2, spot[1] - h / 2, spot[0] + w / 2,
                              spot[1] + h / 2))
                placed.append((outline.municipality, spot[0], spot[1], size))
                break
    return placed


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    import shapely
    parts = [p for p in shapely.get_parts(geometry) if p.geom_type == "Polygon"]
    return shapely.MultiPolygon(parts) if parts else shapely.Polygon()


def _spots(cx: float, cy: float, w: float, h: float, drawn: BaseGeometry
           ) -> list[tuple[float, float]]:
    """Where a name may go, nearest its best point first: that point, then a grid over its
    outline a third of a name apart (a name pushed aside by a neighbour's still lands
    inside its own)."""
    west, south, east, north = drawn.bounds
    step_x, step_y = max(w / 3, 4.0), max(h / 2, 4.0)
    grid = [(cx + i * step_x, cy + j * step_y)
            for i in range(-int((cx - west) / step_x) - 1, int((east - cx) / step_x) + 2)
            for j in range(-int((cy - south) / step_y) - 1, int((north - cy) / step_y) + 2)]
    return sorted(grid, key=lambda p: (p[0] - cx) ** 2 + ((p[1] - cy) * 1.5) ** 2)[:80]


def _fits(spot: tuple[float, float], w: float, h: float, drawn: BaseGeometry,
          taken: list[tuple[float, float, float, float]], frame: Frame) -> bool:
    import shapely
    x, y = spot
    box = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)
    if box[0] < 2 or box[1] < 2 or box[2] > frame.width - 2 or box[3] > frame.height - 2:
        return False
    if any(box[0] < t[2] and t[0] < box[2] and box[1] < t[3] and t[1] < box[3]
           for t in taken):
        return False
    return bool(drawn.contains(shapely.Point(x, y)))


@dataclass(frozen=True)
class _Layer:
    frame: Frame
    outlines: str  # the outline paths, each a link that zooms to its municipality
    labels: str


_layers: dict[tuple[Any, ...], _Layer] = {}
_layers_lock = threading.Lock()


def _layer(outlines: Outlines, placed: list[tuple[float, float]], focus: str | None,
           zoom_url: str, width: int, _: Gettext) -> _Layer | None:
    """The frame, outlines and names of a view, made once per outlines version."""
    spread = (min(placed), max(placed), len(placed)) if placed else None  # a new registry
    key = (outlines.version, focus, width, zoom_url, _("Show %(place)s on the map"), spread)
    with _layers_lock:
        if key in _layers:
            return _layers[key]
    target = outlines.get(focus) if focus else None
    if focus:
        geometries = [target.geometry] if target else []
    else:
        geometries = [o.geometry for o in outlines.items]
    bounds = _bounds(geometries, placed)
    if bounds is None:
        return None
    lats = [p[1] for p in placed] or [o.label[1] for o in outlines.items]
    frame = _frame(bounds, sum(lats) / len(lats), width)
    paths = []
    show = _("Show %(place)s on the map")
    for outline in outlines.items:
        d = _path(outline.geometry, frame)
        if not d:
            continue
        name = escape(outline.municipality)
        state = "focus" if outline.municipality == focus else "area"
        paths.append(f'<a href="{escape(zoom_url + quote(outline.municipality))}" '
                     f'aria-label="{escape(show % {"place": outline.municipality})}" '
                     f'class="{state}" data-municipality="{name}"><path d="{d}" '
                     f'class="outline {outline.source}"/></a>')
    labels = "".join(
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size:g}" dy=".35em" '
        f'class="place{" focus" if name == focus else ""}">{escape(name)}</text>'
        for name, x, y, size in _placed_labels(outlines, frame, focus))
    layer = _Layer(frame, "".join(paths), labels)
    with _layers_lock:
        if len(_layers) > 256:  # versions come and go: keep the cache small
            _layers.clear()
        _layers[key] = layer
    return layer


def map_svg(rows: list[dict[str, Any]], shelter_url: str, _: Gettext, width: int = WIDTH,
            height: int | None = None, *, outlines: Outlines | None = None,
            focus: str | None = None, zoom_url: str = "") -> Markup:
    """The map of ``rows`` (every shelter, or a municipality's): a dot per shelter with
    coordinates, coloured by crowding, hollow on standby, hatched when closed, a dashed
    ring when silent, each linking to ``shelter_url`` + its id; under them the outlines,
    each linking to ``zoom_url`` + its name; the view fits ``focus`` (a municipality's
    name) or everything. ``height`` is ignored: the drawing takes the shape of its view."""
    outlines = outlines or Outlines("", ())
    placed = [r for r in rows if r["lat"] is not None and r["lon"] is not None]
    focus_rows = [r for r in placed if r["municipality"] == focus] if focus else placed
    layer = _layer(outlines, [(r["lon"], r["lat"]) for r in focus_rows], focus, zoom_url,
                   width, _)
    if layer is None:
        return Markup("")
    frame = layer.frame
    focused = focus is not None
    radius = DOT_R_ZOOMED if focused else DOT_R
    dots: list[str] = []
    for r in placed:
        x, y = frame.xy(r["lon"], r["lat"])
        if not frame.inside(x, y, radius):
            continue
        classes = f"dot crowd-{r['crowding']} status-{r['status']}" + \
            (" stale" if r["stale"] else "")
        tab = "" if focused else ' tabindex="-1"'  # 3,000 tab stops help nobody: the tables
        dots.append(f'<a href="{shelter_url}{quote(r["shelter_id"])}"{tab}><title>'
                    f'{escape(r["name"])}</title><circle cx="{x:.1f}" cy="{y:.1f}" '
                    f'r="{radius:g}" class="{classes}" data-shelter="{r["shelter_id"]}"/></a>')
    label = escape(_("Map of %(place)s: shelters coloured by crowding") % {"place": focus}
                   if focus else _("Map of shelters, coloured by crowding"))
    return Markup(
        f'<svg class="map{" zoomed" if focused else ""}" viewBox="0 0 {frame.width} '
        f'{frame.height}" role="group" aria-label="{label}" data-focus="{escape(focus or "")}">'
        f'{HATCH}<g class="outlines">{layer.outlines}</g><g class="dots">{"".join(dots)}</g>'
        f'<g class="places" aria-hidden="true">{layer.labels}</g></svg>')


# Closed shelters are hatched (static/shelter.css: fill url(#map-hatch)), so closed reads
# apart from standby (hollow) without colour. The legend's marks use it too.
HATCH = ('<defs><pattern id="map-hatch" width="3" height="3" patternUnits="userSpaceOnUse" '
         'patternTransform="rotate(45)"><rect width="3" height="3" fill="#fff"/>'
         '<rect width="1.4" height="3" fill="#555"/></pattern></defs>')


def municipalities(outlines: Outlines, rows: list[dict[str, Any]]) -> list[str]:
    """The municipalities one can zoom to: with an outline or a placed shelter."""
    return sorted({o.municipality for o in outlines.items}
                  | {r["municipality"] for r in rows
                     if r["municipality"] and r["lat"] is not None})

