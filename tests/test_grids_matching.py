"""Point → grid (covers, tie-break, nearest, boundaries) on both backends, and caching."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.grids_fixtures import (
    collection,
    drawn,  # fixture
    feature,
    matcher,  # fixture
    run_import,
    square,
    write,
)

pytestmark = pytest.mark.usefixtures("drawn")


def test_point_inside_a_grid(matcher) -> None:
    m = matcher((123.4305, 41.7420))
    assert m["grid"] == "G-HHW-01" and m["unit"] == "210102001001"
    assert m["region_code"] == "210102001001" and m["confidence"] == 1.0
    assert m["method"] == "grid"


def test_point_on_a_shared_edge_goes_to_the_lowest_code(matcher) -> None:
    """123.4270 is the edge between G-HHW-02 and G-HHW-01: covered by both, one answer."""
    assert matcher((123.4270, 41.7430))["grid"] == "G-HHW-01"


def test_point_on_a_corner_of_three_grids(matcher) -> None:
    """(123.4270, 41.7448) touches G-HHW-01, G-HHW-02 and G-CBD-01: 'G-CBD-01' sorts first."""
    assert matcher((123.4270, 41.7448))["grid"] == "G-CBD-01"


def test_point_on_an_outer_edge_belongs_to_its_grid(matcher) -> None:
    """Covers, not contains: the outer boundary is part of the grid."""
    assert matcher((123.4230, 41.7430))["grid"] == "G-HHW-02"
    assert matcher((123.4310, 41.7418))["grid"] == "G-HHW-01"


def test_point_in_a_gap_goes_to_the_nearest_grid_within_tolerance(matcher) -> None:
    # 0.0003° of longitude at 41.74° N is about 25 m: west of G-HHW-02.
    m = matcher((123.4227, 41.7430))
    assert m["grid"] == "G-HHW-02" and m["method"] == "nearest"
    assert "25 m" in m["reason"] and m["confidence"] < 1.0


def test_nearest_respects_the_tolerance(matcher) -> None:
    assert matcher((123.4227, 41.7430), tolerance=10)["grid"] is None
    assert matcher((123.4227, 41.7430), tolerance=30)["grid"] == "G-HHW-02"


def test_equidistant_gap_goes_to_the_lowest_code(app, tmp_path: Path, matcher) -> None:
    """A point midway between two grids (no grid covers it) gets the lower code."""
    doc = collection([
        feature("G-GAP-B", "缝东", "210102001001", square(123.4170, 41.7600, 123.4180, 41.7610)),
        feature("G-GAP-A", "缝西", "210102001001", square(123.4150, 41.7600, 123.4160, 41.7610)),
    ])
    report = run_import(app, write(tmp_path, "gap.geojson", doc))
    assert report.applied and not report.problems
    m = matcher((123.4165, 41.7605))
    assert m["grid"] == "G-GAP-A" and m["method"] == "nearest"


def test_outside_every_grid_falls_back_to_the_county_from_real_boundaries(matcher) -> None:
    m = matcher((123.4100, 41.7700))  # central 和平区, far from any test grid
    assert m["grid"] is None and m["unit"] == "210102" and m["region_code"] == "210102"
    assert m["method"] == "county" and "和平区" in m["reason"] and "50 m" in m["reason"]
    m = matcher((123.5352, 41.7974))  # 沈河区
    assert m["unit"] == "210103" and m["method"] == "county"
    m = matcher((123.5000, 41.8000))  # 大东区: no unit in this world, so its city
    assert m["unit"] == "210100" and "沈阳市" in m["reason"]


def test_outside_the_province_says_so(matcher) -> None:
    m = matcher((116.3913, 39.9055))  # Beijing: only Liaoning's boundaries are loaded
    assert m["grid"] is None and m["unit"] is None and m["region_code"] is None
    assert "outside every known boundary" in m["reason"] and m["confidence"] == 0.0


def test_imported_village_boundary_is_used_before_the_county(app, tmp_path: Path,
                                                              matcher) -> None:
    from grids.importer import import_boundaries_file
    from server.core.db import db

    doc = collection([{"type": "Feature", "properties": {"code": "210102002001"},
                       "geometry": {"type": "Polygon",
                                    "coordinates": square(123.40, 41.76, 123.42, 41.78)}}])
    with app.app_context():
        report = import_boundaries_file(write(tmp_path, "b.geojson", doc))
        assert report.applied, [str(p) for p in report.problems]
        db.session.commit()
    m = matcher((123.41, 41.77))
    assert m["unit"] == "210102002001" and m["method"] == "boundary"
    assert "新华社区" in m["reason"]


def test_within_limits_the_answer_to_a_subtree(matcher) -> None:
    m = matcher((123.4305, 41.7420), within="210103")  # 沈河区 asks about a 和平区 point
    assert m["grid"] is None and m["unit"] is None
    assert "G-HHW-01" in m["reason"] and "outside" in m["reason"]


def test_within_a_township_without_finer_boundaries_says_what_it_knows(matcher) -> None:
    m = matcher((123.4100, 41.7700), within="210102001")  # in 和平区; 浑河湾街道 not drawn
    assert m["unit"] is None and m["region_code"] == "210102"
    assert "no finer boundary" in m["reason"] and "浑河湾街道" in m["reason"]
    m = matcher((123.5352, 41.7974), within="210102001")  # 沈河区
    assert m["unit"] is None and "outside 浑河湾街道" in m["reason"]


def test_redrawing_a_grid_is_seen_at_once(app, tmp_path: Path, matcher) -> None:
    """The embedded STRtree is cached per process and rebuilt when the grids token changes."""
    assert matcher((123.4250, 41.7480))["grid"] is None  # 166 m from the nearest grid
    doc = collection([feature("G-HHW-02", "浑河湾第二网格", "210102001001",
                              square(123.4230, 41.7418, 123.4270, 41.7500))])
    assert run_import(app, write(tmp_path, "redraw.geojson", doc)).redrawn == ["G-HHW-02"]
    m = matcher((123.4250, 41.7480))
    assert m["grid"] == "G-HHW-02" and m["method"] == "grid"


def test_retired_grids_are_not_matched(app, matcher) -> None:
    from grids.models import Grid
    from grids.operations import do_retire_grid
    from server.core.db import db

    with app.app_context():
        grid = db.session.execute(sa.select(Grid).where(Grid.code == "G-HHW-02")).scalar_one()
        do_retire_grid(None, grid, reason="merged")
        db.session.commit()
    m = matcher((123.4266, 41.7430))  # was in G-HHW-02; 33 m from G-HHW-01
    assert m["grid"] == "G-HHW-01" and m["method"] == "nearest"


def test_a_ticket_keeps_its_grid_when_the_grid_is_redrawn(app, tmp_path: Path, accept) -> None:
    from datetime import UTC, datetime

    from grids.models import Grid
    from server.core.db import db
    from server.tickets.models import Ticket

    number = accept()["number"]
    doc = collection([feature("G-HHW-01", "浑河湾第一网格", "210102001001",
                              square(123.4270, 41.7415, 123.4310, 41.7448))])
    assert run_import(app, write(tmp_path, "r.geojson", doc)).redrawn == ["G-HHW-01"]
    with app.app_context():
        ticket = db.session.execute(sa.select(Ticket).where(Ticket.number == number)).scalar_one()
        grid = db.session.get(Grid, ticket.grid_id)
        assert grid.code == "G-HHW-01" and grid.version == 2
        old = grid.version_at(ticket.accepted_at)
        assert old is not None and old.version == 1 and old.valid_to is not None
        assert grid.version_at(datetime.now(UTC)).version == 2


def test_accepting_a_ticket_with_a_point_lands_on_the_grid_and_its_worker(as_user) -> None:
    body = {"source": "hotline", "type": "complaint", "title": "井盖缺失",
            "content": "路口井盖丢失，行人容易跌落。", "urgency": "urgent",
            "location": {"lng": 123.4250, "lat": 41.7430, "crs": "wgs84"}}
    t = as_user("hotline").post("/tickets", body).get_json()
    assert t["grid"] == "G-HHW-02", t
    grid_of_worker = {"lng": 123.4300, "lat": 41.7428, "crs": "wgs84"}
    t = as_user("hotline").post("/tickets", {**body, "location": grid_of_worker}).get_json()
    assert t["grid"] == "G-HHW-01"
    from grids.models import Grid
    from server.core.db import db

    with as_user("hotline").client.application.app_context():
        grid = db.session.execute(sa.select(Grid).where(Grid.code == t["grid"])).scalar_one()
        assert grid.on_duty_worker().username == "worker"


def test_accepting_with_a_gcj02_point_converts_before_matching(as_user) -> None:
    from grids.crs import wgs84_to_gcj02

    lng, lat = wgs84_to_gcj02(123.4305, 41.7420)  # ~480 m off in WGS-84 terms
    body = {"source": "hotline", "type": "complaint", "title": "路灯不亮", "content": "路灯不亮。",
            "location": {"lng": lng, "lat": lat, "crs": "gcj02"}}
    assert as_user("hotline").post("/tickets", body).get_json()["grid"] == "G-HHW-01"
