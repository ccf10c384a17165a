"""HQ's map over the real GSI registry (2,975 shelters, 43 municipalities): the outlines
derived from the shelters' points, a boundary file an operator imports (a good one wins, a
bad one is refused and changes nothing), and the pages that draw them."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import shapely
import shapely.prepared
from click.testing import CliRunner

from shelter.app import create_app
from shelter.cli import main
from shelter.core import meta
from shelter.core.node import NodeContext
from shelter.domain import accounts
from shelter.hq import outlines
from shelter.hq.shelters import import_file

from .test_hq_registry import GSI


@pytest.fixture(scope="module")
def prefecture(tmp_path_factory):
    data = tmp_path_factory.mktemp("map-hq") / "hq"
    hq = NodeContext(data, role="hq")
    import_file(hq.store, GSI)
    drawn = outlines.refresh(hq.store)
    accounts.add_user(hq.store, "op", "operator-pass-1", "operator")
    return hq, drawn


def registry(hq) -> list[tuple[str, float, float]]:
    return list(hq.db.execute("SELECT municipality, lon, lat FROM hq_shelters"))


def stored(hq) -> tuple[list[tuple], str | None]:
    return (list(hq.db.execute("SELECT * FROM hq_outlines ORDER BY municipality")),
            meta.get(hq.db, outlines.VERSION_KEY))


def overlaps(items) -> list[tuple[str, str, float]]:
    """Pairs of outlines that share more than a border (area in km², roughly)."""
    tree = shapely.STRtree([o.geometry for o in items])
    found = []
    for i, j in zip(*tree.query([o.geometry for o in items], predicate="intersects"),
                    strict=True):
        if i < j:
            area = items[i].geometry.intersection(items[j].geometry).area * 111 * 92
            if area > 0.001:  # 1,000 m²: more than the rounding of a shared border
                found.append((items[i].municipality, items[j].municipality, area))
    return found


def test_every_municipality_gets_an_outline_holding_its_shelters_and_none_overlap(prefecture):
    hq, drawn = prefecture
    shapes = outlines.load(hq.db)
    assert drawn == {"derived": 43, "imported": 0} and len(shapes.items) == 43
    by_name = {o.municipality: o for o in shapes.items}
    points = registry(hq)
    assert {m for m, _, _ in points} == set(by_name)
    # Every shelter inside its own municipality's outline: measured, all 2,975 are (a
    # Voronoi cell holds its own point; the tolerance, ~10 m, only absorbs the rounding
    # of stored coordinates to 1e-5 degrees).
    near = {m: shapely.prepared.prep(o.geometry.buffer(1e-4)) for m, o in by_name.items()}
    outside = [(m, lon, lat) for m, lon, lat in points
               if not near[m].covers(shapely.Point(lon, lat))]
    assert outside == []
    assert overlaps(shapes.items) == []
    for outline in shapes.items:  # each name is drawn at a point inside its outline
        assert outline.geometry.is_valid and outline.area_km2 > 0
        assert outline.geometry.contains(shapely.Point(outline.label)), outline.municipality
    # Small municipalities are kept: 忠岡町 (4 km², 9 shelters) is a few km² here too.
    assert 1 < by_name["忠岡町"].area_km2 < 10


def boundary_file(path, features) -> str:
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features},
                               ensure_ascii=False), encoding="utf-8")
    return str(path)


def box_feature(props, west, south, east, north):
    return {"type": "Feature", "properties": props,
            "geometry": shapely.geometry.mapping(shapely.box(west, south, east, north))}


def test_an_imported_boundary_file_wins_and_a_bad_one_changes_nothing(prefecture, tmp_path):
    source, _ = prefecture
    data = tmp_path / "hq"
    shutil.copytree(source.data_dir, data)
    hq = NodeContext(data, role="hq")
    tadaoka = [(lon, lat) for m, lon, lat in registry(hq) if m == "忠岡町"]
    west, east = min(p[0] for p in tadaoka) - 0.004, max(p[0] for p in tadaoka) + 0.004
    south, north = min(p[1] for p in tadaoka) - 0.004, max(p[1] for p in tadaoka) + 0.004
    good = boundary_file(tmp_path / "n03.geojson", [  # as MLIT's N03 spells them
        # two wards of 大阪市, merged into their city (by N03_003)
        box_feature({"N03_001": "大阪府", "N03_003": "大阪市", "N03_004": "北区",
                     "N03_007": "27127"}, 135.47, 34.68, 135.52, 34.72),
        box_feature({"N03_001": "大阪府", "N03_003": "大阪市", "N03_004": "中央区",
                     "N03_007": "27128"}, 135.47, 34.64, 135.52, 34.68),
        box_feature({"N03_007": "27341"}, west, south, east, north),  # 忠岡町, by code only
        box_feature({"N03_001": "奈良県", "N03_004": "奈良市", "N03_007": "29201"},
                    135.7, 34.6, 135.9, 34.8),  # another prefecture's: ignored
    ])
    runner = CliRunner()
    done = runner.invoke(main, ["hq", "import-outlines", "--data", str(data), good])
    assert done.exit_code == 0, done.output
    assert "2 municipality outlines from n03.geojson, 41 derived" in done.output
    assert "1 features of no municipality" in done.output
    shapes = outlines.load(hq.db)
    by_name = {o.municipality: o for o in shapes.items}
    assert {o.municipality for o in shapes.items if o.source == "imported"} == {"大阪市",
                                                                                "忠岡町"}
    osaka = shapely.box(135.47, 34.64, 135.52, 34.72)
    assert abs(by_name["大阪市"].geometry.area - osaka.area) < osaka.area * 0.01
    assert by_name["大阪市"].geometry.contains(shapely.Point(by_name["大阪市"].label))
    assert overlaps(shapes.items) == []  # derived ones keep off the imported ones
    before = stored(hq)

    bad = {
        "not.geojson": (b"{not json", "not GeoJSON"),
        "points.geojson": (json.dumps({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {"N03_004": "堺市"},
             "geometry": {"type": "Point", "coordinates": [135.48, 34.57]}}]}).encode(),
            "no Polygon or MultiPolygon"),
        "metres.geojson": (json.dumps({"type": "FeatureCollection", "features": [
            box_feature({"N03_004": "堺市"}, 500000, 3800000, 510000, 3810000)]}).encode(),
            "not in longitude/latitude"),
        "hokkaido.geojson": (json.dumps({"type": "FeatureCollection", "features": [
            box_feature({"N03_004": "札幌市", "N03_007": "01100"}, 141.2, 43.0, 141.4,
                        43.1)]}, ensure_ascii=False).encode(),
            "no feature names a municipality of the registry"),
    }
    for name, (raw, reason) in bad.items():
        (tmp_path / name).write_bytes(raw)
        refused = runner.invoke(main, ["hq", "import-outlines", "--data", str(data),
                                       str(tmp_path / name)])
        assert refused.exit_code == 1 and reason in refused.output, (name, refused.output)
        assert stored(hq) == before, name

    # The registry imported again: outlines are derived anew, the imported ones stay.
    assert outlines.refresh(hq.store) == {"derived": 41, "imported": 2}
    assert outlines.load(hq.db).get("大阪市").source == "imported"


def signed_in(app):
    client = app.test_client()
    page = client.get("/staff/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    answer = client.post("/staff/login", data={"username": "op",
                                               "password": "operator-pass-1", "csrf": csrf})
    assert answer.status_code in (302, 303)
    return client


def test_the_pages_draw_outlines_names_and_zoom(prefecture):
    hq, _ = prefecture
    app = create_app(hq.data_dir, role="hq", test_config={"TESTING": True})
    assert app.test_client().get("/hq/map").status_code == 302  # to the login
    client = signed_in(app)
    whole = client.get("/hq/map").get_data(as_text=True)
    assert whole.count('class="outline derived"') == 43
    assert whole.count('<circle ') == 2975 + 8  # every shelter, and the legend's marks
    assert 'data-municipality="忠岡町"' in whole and ">大阪市</text>" in whole
    assert "/hq/map?m=%E5%BF%A0%E5%B2%A1%E7%94%BA" in whole  # 忠岡町's outline zooms to it
    view = re.search(r'<svg class="map" viewBox="([^"]+)"', whole).group(1)
    zoomed = client.get("/hq/map?m=忠岡町").get_data(as_text=True)
    assert 'data-focus="忠岡町"' in zoomed and 'class="focus" data-municipality="忠岡町"' in zoomed
    assert ">忠岡町</text>" in zoomed and 'selected>忠岡町</option>' in zoomed
    assert zoomed.count('class="dot ') < 300  # only what is in view
    assert re.search(r'<svg class="map zoomed" viewBox="([^"]+)"', zoomed).group(1) != view
    missing = client.get("/hq/map?m=どこにもない町")
    assert missing.status_code == 404
    own = client.get("/hq/municipalities/忠岡町").get_data(as_text=True)
    assert 'data-focus="忠岡町"' in own and own.count('class="dot ') == 9 + 8
    dashboard = client.get("/hq").get_data(as_text=True)
    assert dashboard.count('class="outline derived"') == 43 and 'href="/hq/map"' in dashboard
    for page in (whole, dashboard, own):  # every state in the legend, each its own mark
        for mark in ("crowd-available status-open", "crowd-full status-open",
                     "crowd-unknown status-standby", "crowd-closed status-closed",
                     "crowd-unknown status-open stale"):
            assert f'<circle r="5" class="dot {mark}"/>' in page, mark


def test_an_hq_whose_registry_came_before_the_outlines_draws_them_at_start(tmp_path):
    """`shelter hq` derives the outlines when there are none but the registry has places
    (an HQ imported its registry before HQ drew outlines), and only then."""
    hq = NodeContext(tmp_path / "hq", role="hq")
    assert outlines.ensure(hq.store) is False  # no registry yet: nothing to draw
    import_file(hq.store, GSI)
    assert not outlines.load(hq.db).items
    assert outlines.ensure(hq.store) is True
    drawn = stored(hq)
    assert {m for (m, *_rest) in registry(hq)} == {r[0] for r in drawn[0]}
    assert outlines.ensure(hq.store) is False and stored(hq) == drawn  # once
