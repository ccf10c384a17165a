"""HQ's shelter registry from the real GSI file (2,975 shelters in 43 municipalities), from
a GSI CSV and from the standard open-data CSV; re-imports update and never duplicate."""

from __future__ import annotations

import csv
import json

import pytest

from shelter.core.node import NodeContext
from shelter.hq.shelters import ImportProblem, import_file

from .conftest import SHARED_DATA, run_cli

GSI = SHARED_DATA / "osaka-designated-shelters.geojson"  # read there, never copied


def count(hq: NodeContext, sql: str = "SELECT count(*) FROM hq_shelters") -> int:
    return hq.db.execute(sql).fetchone()[0]


def test_the_real_gsi_file_imports_once_however_often(tmp_path):
    data = tmp_path / "hq"
    first = run_cli("hq", "import", "--data", str(data), str(GSI)).stdout
    assert "2975 shelters in 43 municipalities (2975 new, 0 updated" in first
    again = run_cli("hq", "import", "--data", str(data), str(GSI)).stdout
    assert "(0 new, 2975 updated" in again
    hq = NodeContext(data, role="hq")
    assert count(hq) == 2975
    assert count(hq, "SELECT count(DISTINCT municipality) FROM hq_shelters") == 43
    row = next(iter(hq.db.query("SELECT * FROM hq_shelters WHERE shelter_id = ?",
                                ["E2710000001111"])))
    assert (row["name"], row["municipality"], row["municipality_code"]) == \
        ("阿倍野スポーツセンター", "大阪市", "271004")
    assert (round(row["lat"], 4), round(row["lon"], 4)) == (34.6419, 135.5108)
    # Every coordinate lies in Osaka prefecture.
    assert count(hq, "SELECT count(*) FROM hq_shelters WHERE lat BETWEEN 34.2 AND 35.1 "
                     "AND lon BETWEEN 135.0 AND 135.8") == 2975


def test_a_gsi_csv_and_the_standard_csv_update_the_same_shelters(tmp_path):
    hq = NodeContext(tmp_path / "hq", role="hq")
    import_file(hq.store, GSI)
    features = json.loads(GSI.read_text())["features"][3:6]  # not 阿倍野 (below)
    gsi_csv = tmp_path / "gsi.csv"
    with gsi_csv.open("w", encoding="cp932", newline="") as f:  # as municipalities publish
        writer = csv.writer(f)
        writer.writerow(["NO", "共通ID", "施設・場所名", "住所", "緯度", "経度", "受入対象者"])
        for feature in features:
            p, (lon, lat) = feature["properties"], feature["geometry"]["coordinates"]
            address = p["住所"].replace("\xa0", " ")  # no such character in Shift_JIS
            writer.writerow([p["NO"], p["共通ID"], p["施設・場所名"] + "（改）", address, lat,
                             lon, ""])
    done = import_file(hq.store, gsi_csv)
    assert (done["format"], done["new"], done["updated"]) == ("gsi-csv", 0, 3)
    renamed = features[0]["properties"]
    assert hq.db.execute("SELECT name FROM hq_shelters WHERE shelter_id = ?",
                         [renamed["共通ID"]]).fetchone()[0] == renamed["施設・場所名"] + "（改）"
    standard = tmp_path / "standard.csv"
    standard.write_text(
        "全国地方公共団体コード,ID,地方公共団体名,名称,名称_カナ,所在地_連結表記,緯度,経度,"
        "電話番号,想定収容人数\n"
        "271004,0001,大阪府大阪市,阿倍野スポーツセンター,アベノスポーツセンター,"
        "大阪府大阪市阿倍野区阿倍野筋3-10-1-100,34.641893,135.51077,06-0000-0000,800\n"
        "271004,9999,大阪府大阪市,新設の避難所,シンセツ,大阪府大阪市北区1,34.7,135.5,,50\n",
        encoding="utf-8-sig")
    done = import_file(hq.store, standard)
    assert (done["format"], done["new"], done["updated"]) == ("standard-csv", 1, 1)
    assert count(hq) == 2976  # matched by municipality and name: no duplicate
    row = next(iter(hq.db.query("SELECT * FROM hq_shelters WHERE shelter_id = ?",
                                ["E2710000001111"])))
    assert (row["capacity"], row["name_kana"], row["phone"]) == (800, "アベノスポーツセンター",
                                                                 "06-0000-0000")
    assert hq.db.execute("SELECT shelter_id FROM hq_shelters WHERE name = '新設の避難所'"
                         ).fetchone()[0] == "271004-9999"
    import_file(hq.store, GSI)  # GSI has no capacity: the known one stays
    assert hq.db.execute("SELECT capacity FROM hq_shelters WHERE shelter_id = ?",
                         ["E2710000001111"]).fetchone()[0] == 800


@pytest.mark.parametrize("content, message", [
    (b"not,a,shelter,list\n1,2,3,4\n", "not GSI GeoJSON"),
    (b'{"type": "FeatureCollection"', "does not parse"),
    (b'{"type": "Feature"}', "FeatureCollection"),
    (b"\xff\xfe\x00garbage\x81\x00", "neither UTF-8 nor Shift_JIS"),
])
def test_files_that_are_not_shelter_lists_are_refused_with_a_reason(tmp_path, content,
                                                                     message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    hq = NodeContext(tmp_path / "hq", role="hq")
    with pytest.raises(ImportProblem, match=message):
        import_file(hq.store, path)
    assert count(hq) == 0
    refused = run_cli("hq", "import", "--data", str(tmp_path / "hq"), str(path), check=False)
    assert refused.returncode != 0 and message in refused.stderr
    assert "Traceback" not in refused.stderr
