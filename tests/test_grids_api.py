"""GET /api/v1/grids (GeoJSON with polygons, unit and bbox filters) and POST /grids/match."""

from __future__ import annotations

import pytest
import shapely
from shapely.geometry import shape

from tests.grids_fixtures import SQUARES, drawn  # fixture

pytestmark = pytest.mark.usefixtures("drawn")


def test_grids_are_geojson_with_their_polygons(as_user) -> None:
    doc = as_user("county").get("/grids").get_json()
    assert doc["type"] == "FeatureCollection" and doc["truncated"] is False
    features = {f["properties"]["code"]: f for f in doc["features"]}
    assert set(features) == {"G-HHW-01", "G-HHW-02", "G-CBD-01"}  # 和平区's, not 沈河区's
    hhw = features["G-HHW-01"]
    assert hhw["geometry"]["type"] == "MultiPolygon"
    assert shape(hhw["geometry"]).equals(shapely.box(*SQUARES["G-HHW-01"][2]))
    props = hhw["properties"]
    assert props["unit"] == "210102001001" and props["name"] == "浑河湾第一网格"
    assert props["on_duty"] == "worker" and props["version"] == 1


def test_unit_filter(as_user) -> None:
    doc = as_user("hotline").get("/grids", unit="210102001002").get_json()
    assert [f["properties"]["code"] for f in doc["features"]] == ["G-CBD-01"]
    assert as_user("hotline").get("/grids", unit="nope").status_code == 422


def test_bbox_filter_meets_polygons_not_just_boxes(as_user) -> None:
    api = as_user("hotline")
    # A box over the west half of G-HHW-02 only.
    doc = api.get("/grids", bbox="123.4200,41.7420,123.4250,41.7440").get_json()
    assert [f["properties"]["code"] for f in doc["features"]] == ["G-HHW-02"]
    # Touching the shared edge counts as meeting both.
    doc = api.get("/grids", bbox="123.4269,41.7420,123.4270,41.7440").get_json()
    assert {f["properties"]["code"] for f in doc["features"]} == {"G-HHW-01", "G-HHW-02"}
    assert api.get("/grids", bbox="0,0,1,1").get_json()["features"] == []


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d", "10,0,0,10", "0,0,200,1", "nan,0,1,1"])
def test_bad_bbox_is_422(as_user, bbox: str) -> None:
    resp = as_user("hotline").get("/grids", bbox=bbox)
    assert resp.status_code == 422 and resp.get_json()["details"]["field"] == "bbox"


def test_grids_in_gcj02_for_web_maps(as_user) -> None:
    from grids.crs import wgs84_to_gcj02

    doc = as_user("hotline").get("/grids", unit="210102001002", crs="gcj02").get_json()
    assert doc["yihao:crs"] == "gcj02"
    ring = doc["features"][0]["geometry"]["coordinates"][0][0]
    min_lng, min_lat = SQUARES["G-CBD-01"][2][:2]
    assert min(ring) == pytest.approx(list(wgs84_to_gcj02(min_lng, min_lat)), abs=1e-9)


def test_match_a_point(as_user) -> None:
    resp = as_user("hotline").post("/grids/match", {"lng": 123.4305, "lat": 41.7420})
    body = resp.get_json()
    assert resp.status_code == 200
    assert body["grid"] == "G-HHW-01" and body["unit"] == "210102001001"
    assert body["region_code"] == "210102001001" and body["confidence"] == 1.0
    assert body["reason"] and body["method"] == "grid" and body["grid_name"] == "浑河湾第一网格"


def test_match_a_bd09_point(as_user) -> None:
    from grids.crs import wgs84_to_bd09

    lng, lat = wgs84_to_bd09(123.4250, 41.7430)
    body = as_user("hotline").post("/grids/match", {"location": {
        "lng": lng, "lat": lat, "crs": "bd09"}}).get_json()
    assert body["grid"] == "G-HHW-02"


def test_match_an_address(as_user) -> None:
    body = as_user("hotline").post("/grids/match", {"address": "沈阳市和平区新华街道"}).get_json()
    assert body["grid"] is None and body["unit"] == "210102002"
    assert body["region_code"] == "210102002" and 0 < body["confidence"] < 1
    assert body["level"] == "township"


def test_match_answers_within_the_callers_jurisdiction(as_user) -> None:
    body = as_user("county2").post("/grids/match", {"lng": 123.4305, "lat": 41.7420}).get_json()
    assert body["grid"] is None and "outside" in body["reason"]


@pytest.mark.parametrize(("body", "code"), [
    ({"lng": 123.4, "lat": 141.7}, "invalid_coordinates"),
    ({"lng": 0, "lat": 0}, "invalid_coordinates"),
    ({"lng": 123.4, "lat": 41.7, "crs": "mars"}, "invalid_crs"),
    ({}, "invalid_input"),
    ({"location": {"lng": 500, "lat": 41.7}}, "invalid_input"),
])
def test_match_rejects_bad_input_with_a_clear_error(as_user, body: dict, code: str) -> None:
    resp = as_user("hotline").post("/grids/match", body)
    assert resp.status_code == 422 and resp.get_json()["code"] == code


def test_accept_rejects_impossible_coordinates(as_user) -> None:
    body = {"source": "hotline", "type": "complaint", "title": "t", "content": "c",
            "location": {"lng": 41.742, "lat": 123.4305, "crs": "wgs84"}}
    resp = as_user("hotline").post("/tickets", body)
    assert resp.status_code == 422
