"""``yihao import grids``: the report names each mistake; dry runs; idempotent re-import;
versions; shapefiles and declared coordinate systems; export round trips."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import pytest
import shapely
import sqlalchemy as sa

from server.cli import main
from tests.grids_fixtures import (
    SQUARES,
    collection,
    drawn,  # fixture
    feature,
    run_import,
    square,
    world_collection,
    write,
)

VILLAGE = "210102001001"  # 浑河湾社区, in 和平区


def _kinds(report: Any) -> dict[int | None, set[str]]:
    out: dict[int | None, set[str]] = {}
    for p in report.problems:
        out.setdefault(p.feature, set()).add(p.kind)
    return out


def mistakes() -> dict[str, Any]:
    ok = square(123.4270, 41.7418, 123.4310, 41.7448)
    bowtie = [[[123.44, 41.74], [123.45, 41.75], [123.45, 41.74], [123.44, 41.75],
               [123.44, 41.74]]]
    return collection([
        feature("G-OK-01", "好网格", VILLAGE, ok),                                  # 1
        feature("G-BOW-01", "蝴蝶结", VILLAGE, bowtie),                              # 2
        {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square(
            123.40, 41.70, 123.401, 41.701)}, "properties": {"code": "G-NONAME", "unit": VILLAGE}},
        feature("G-NOUNIT", "无此村", "210102001999", square(123.41, 41.70, 123.411, 41.701)),
        feature("G-TOWN", "乡镇不是村", "210102001", square(123.42, 41.70, 123.421, 41.701)),
        feature("G-OK-01", "重复编码", VILLAGE, square(123.43, 41.70, 123.431, 41.701)),  # 6
        feature("G-SAME", "同一图形", VILLAGE, ok),                                   # 7
        {"type": "Feature", "geometry": {"type": "Point", "coordinates": [123.4, 41.7]},
         "properties": {"code": "G-POINT", "name": "点", "unit": VILLAGE}},          # 8
        feature("G-SWAP", "经纬颠倒", VILLAGE, [[[41.70, 123.40], [41.71, 123.40],
                                                [41.71, 123.41], [41.70, 123.40]]]),  # 9
        feature("G-THIN", "太少的点", VILLAGE, [[[123.40, 41.70], [123.41, 41.70],
                                               [123.40, 41.70]]]),                   # 10
        feature("G-OVER", "压盖", VILLAGE, square(123.4290, 41.7430, 123.4310, 41.7460)),  # 11
        feature("G-FAR", "跑到沈河区", VILLAGE, square(123.5300, 41.7950, 123.5330, 41.7980)),
    ])


def test_import_with_mistakes_names_each_and_writes_nothing(app, world, tmp_path: Path) -> None:
    from grids.models import Grid
    from server.core.db import db

    report = run_import(app, write(tmp_path, "bad.geojson", mistakes()))
    kinds = _kinds(report)
    assert "self_intersection" in kinds[2]
    bow = next(p for p in report.problems if p.feature == 2)
    assert bow.where is not None and abs(bow.where[0] - 123.445) < 1e-6  # where it crosses
    assert kinds[3] == {"missing_property"}
    assert kinds[4] == {"unknown_unit"}
    assert kinds[5] == {"not_a_village"}
    assert kinds[6] == {"duplicate_code"}
    assert kinds[7] == {"duplicate_geometry"}
    assert kinds[8] == {"wrong_type"}
    assert kinds[9] == {"impossible_coordinates"}
    assert "swapped" in next(p for p in report.problems if p.feature == 9).message
    assert kinds[10] == {"invalid_geometry"}
    assert kinds[11] == {"overlap"}
    overlap = next(p for p in report.problems if p.feature == 11)
    assert "G-OK-01" in overlap.message and overlap.severity == "warning"
    assert kinds[12] == {"outside_county"}
    assert not report.applied and "nothing was imported" in report.summary()
    for problem in report.problems:  # every line names the feature and, where it can, a place
        assert f"feature {problem.feature}" in str(problem) or problem.feature is None
    with app.app_context():
        assert db.session.execute(sa.select(Grid).where(Grid.code == "G-OK-01")).first() is None


def test_gaps_inside_a_village_are_reported(app, world, tmp_path: Path) -> None:
    """Four grids around an empty middle: the hole they enclose is a gap."""
    ring = [(123.40, 41.77, 123.403, 41.771), (123.40, 41.772, 123.403, 41.773),
            (123.40, 41.771, 123.401, 41.772), (123.402, 41.771, 123.403, 41.772)]
    doc = collection([feature(f"G-R{i}", f"环{i}", VILLAGE, square(*b))
                      for i, b in enumerate(ring)])
    report = run_import(app, write(tmp_path, "ring.geojson", doc))
    gaps = [p for p in report.problems if p.kind == "gap"]
    assert len(gaps) == 1 and "浑河湾社区" in gaps[0].message
    assert abs(gaps[0].where[0] - 123.4015) < 1e-3 and abs(gaps[0].where[1] - 41.7715) < 1e-3
    assert report.applied  # a warning does not stop the import …
    report = run_import(app, write(tmp_path, "ring.geojson", doc), strict=True)
    assert report.unchanged and not report.errors  # … unless strict (and here nothing changed)


def test_village_boundary_finds_uncovered_ground_and_grids_outside(app, world,
                                                                   tmp_path: Path) -> None:
    from grids.importer import import_boundaries_file
    from server.core.db import db

    bdoc = collection([{"type": "Feature", "properties": {"code": VILLAGE},
                        "geometry": {"type": "Polygon",
                                     "coordinates": square(123.40, 41.77, 123.41, 41.78)}}])
    with app.app_context():
        assert import_boundaries_file(write(tmp_path, "b.geojson", bdoc)).applied
        db.session.commit()
    doc = collection([feature("G-W", "西", VILLAGE, square(123.40, 41.77, 123.405, 41.78)),
                      feature("G-E", "东", VILLAGE, square(123.405, 41.77, 123.412, 41.78))])
    report = run_import(app, write(tmp_path, "g.geojson", doc), dry_run=True)
    kinds = _kinds(report)
    assert kinds[2] == {"outside_village"}  # G-E reaches 0.002° past the village's east edge
    assert not report.applied and sorted(report.created) == ["G-E", "G-W"]
    doc = collection([feature("G-W", "西", VILLAGE, square(123.40, 41.77, 123.405, 41.78))])
    report = run_import(app, write(tmp_path, "g2.geojson", doc), dry_run=True)
    gaps = [p for p in report.problems if p.kind == "gap"]
    assert len(gaps) == 1 and "not covered by any grid" in gaps[0].message


def test_dry_run_reports_and_writes_nothing(app, world, tmp_path: Path) -> None:
    from grids.models import Grid
    from server.core.db import db

    report = run_import(app, write(tmp_path, "w.geojson", world_collection()), dry_run=True)
    assert not report.problems and not report.applied
    assert report.created == ["G-HHW-02"] and sorted(report.redrawn) == [
        "G-BH-01", "G-CBD-01", "G-HHW-01"]  # the world's grids had no polygon yet
    with app.app_context():
        assert db.session.execute(sa.select(sa.func.count()).select_from(Grid)).scalar() == 3
        assert db.session.execute(sa.select(Grid.geom_hash).where(
            Grid.code == "G-HHW-01")).scalar() is None


def test_reimport_is_idempotent_and_a_changed_polygon_is_a_new_version(app, world,
                                                                      tmp_path: Path) -> None:
    from grids.models import Grid, GridVersion
    from server.core.audit import Event
    from server.core.db import db

    path = write(tmp_path, "w.geojson", world_collection())
    first = run_import(app, path)
    assert first.applied and len(first.created) + len(first.redrawn) == 4

    def counts() -> tuple[int, int]:
        with app.app_context():
            versions = db.session.execute(sa.select(sa.func.count()).select_from(GridVersion)
                                          ).scalar()
            events = db.session.execute(sa.select(sa.func.count()).select_from(Event).where(
                Event.stream == "grids")).scalar()
            return versions, events

    before = counts()
    second = run_import(app, path)
    assert second.unchanged and not second.created and not second.redrawn
    assert counts() == before == (4, 1)
    # The same polygon written from another starting vertex is the same polygon.
    doc = world_collection()
    ring = doc["features"][0]["geometry"]["coordinates"][0]
    doc["features"][0]["geometry"]["coordinates"][0] = [*ring[2:-1], *ring[:3]]
    assert len(run_import(app, write(tmp_path, "rot.geojson", doc)).unchanged) == 4
    # A changed polygon: a new version, the old one closed.
    doc = world_collection()
    doc["features"][0]["geometry"]["coordinates"] = square(123.4270, 41.7415, 123.4310, 41.7448)
    third = run_import(app, write(tmp_path, "w2.geojson", doc))
    assert third.redrawn == ["G-HHW-01"] and len(third.unchanged) == 3
    with app.app_context():
        grid = db.session.execute(sa.select(Grid).where(Grid.code == "G-HHW-01")).scalar_one()
        assert grid.version == 2
        assert [(v.version, v.valid_to is None) for v in grid.versions] == [(1, False), (2, True)]
        assert grid.versions[0].valid_to == grid.versions[1].valid_from
        assert grid.geom.bounds[1] == pytest.approx(41.7415)
        assert [m.user.username for m in grid.members] == ["worker", "backup"]  # rota kept


def test_retire_missing(app, drawn, tmp_path: Path) -> None:
    from grids.models import Grid
    from server.core.db import db

    doc = collection([f for f in world_collection()["features"]
                      if f["properties"]["code"] != "G-HHW-02"])
    report = run_import(app, write(tmp_path, "less.geojson", doc), retire_missing=True)
    assert report.retired == ["G-HHW-02"]
    with app.app_context():
        grid = db.session.execute(sa.select(Grid).where(Grid.code == "G-HHW-02")).scalar_one()
        assert not grid.active and grid.versions[-1].valid_to is not None


def _shapefile_zip(features: list[tuple[str, str, str, list[Any]]], prj: str | None) -> bytes:
    import shapefile

    shp, shx, dbf = io.BytesIO(), io.BytesIO(), io.BytesIO()
    with shapefile.Writer(shp=shp, shx=shx, dbf=dbf, shapeType=shapefile.POLYGON,
                          encoding="utf-8") as writer:
        writer.field("CODE", "C", size=40)
        writer.field("NAME", "C", size=80)
        writer.field("UNIT", "C", size=20)
        for code, name, unit, rings in features:
            writer.poly(rings)
            writer.record(code, name, unit)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("grids.shp", shp.getvalue())
        archive.writestr("grids.shx", shx.getvalue())
        archive.writestr("grids.dbf", dbf.getvalue())
        archive.writestr("grids.cpg", "UTF-8")
        if prj is not None:
            archive.writestr("grids.prj", prj)
    return out.getvalue()


WGS84_PRJ = ('GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,'
             '298.257223563]],PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]')


def test_zipped_shapefile_with_prj(app, world, tmp_path: Path) -> None:
    from grids.models import Grid
    from server.core.db import db

    name, unit, box = SQUARES["G-HHW-01"]
    # Shapefile outer rings run clockwise.
    ring = [list(reversed(square(*box)[0]))]
    path = tmp_path / "grids.zip"
    path.write_bytes(_shapefile_zip([("G-HHW-01", name, unit, ring)], WGS84_PRJ))
    report = run_import(app, path)
    assert report.applied and report.crs == "wgs84", [str(p) for p in report.problems]
    with app.app_context():
        grid = db.session.execute(sa.select(Grid).where(Grid.code == "G-HHW-01")).scalar_one()
        assert grid.geom.equals(shapely.box(*box))


def test_shapefile_without_prj_needs_a_declared_crs(app, world, tmp_path: Path) -> None:
    from grids.crs import wgs84_to_gcj02
    from grids.models import Grid
    from server.core.db import db

    name, unit, box = SQUARES["G-HHW-01"]
    gcj = [[list(wgs84_to_gcj02(x, y)) for x, y in reversed(square(*box)[0])]]
    path = tmp_path / "gcj.zip"
    path.write_bytes(_shapefile_zip([("G-HHW-01", name, unit, gcj)], None))
    report = run_import(app, path)
    assert [p.kind for p in report.errors] == ["unknown_crs"]
    report = run_import(app, path, crs="gcj02")
    assert report.applied and report.crs == "gcj02"
    with app.app_context():
        grid = db.session.execute(sa.select(Grid).where(Grid.code == "G-HHW-01")).scalar_one()
        # Converted back to WGS-84 at the edge: within a centimetre of the original square.
        assert grid.geom.equals_exact(shapely.MultiPolygon([shapely.box(*box)]).normalize(),
                                      tolerance=2e-7)


def test_projected_prj_is_refused_clearly(app, world, tmp_path: Path) -> None:
    name, unit, box = SQUARES["G-HHW-01"]
    path = tmp_path / "utm.zip"
    path.write_bytes(_shapefile_zip([("G-HHW-01", name, unit, square(*box))],
                                    'PROJCS["WGS_1984_UTM_Zone_51N",GEOGCS["GCS_WGS_1984"]]'))
    report = run_import(app, path)
    assert report.errors[0].kind == "unsupported_crs" and "projected" in report.errors[0].message


def test_export_imports_back_unchanged(app, drawn, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    out = tmp_path / "export.geojson"
    result = runner.invoke(main, ["export", "grids", str(out)])
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert {f["properties"]["code"] for f in doc["features"]} == set(SQUARES)
    assert all(f["geometry"]["type"] == "MultiPolygon" for f in doc["features"])
    assert len(run_import(app, out).unchanged) == 4
    # In GCJ-02 for a web map, and back: still unchanged (it declares yihao:crs).
    gcj = tmp_path / "gcj.geojson"
    assert runner.invoke(main, ["export", "grids", str(gcj), "--crs", "gcj02"]).exit_code == 0
    assert json.loads(gcj.read_text(encoding="utf-8"))["yihao:crs"] == "gcj02"
    assert len(run_import(app, gcj).unchanged) == 4


def test_cli_import_reports_and_exits_non_zero_on_errors(app, world, tmp_path: Path) -> None:
    runner = app.test_cli_runner()
    bad = write(tmp_path, "bad.geojson", mistakes())
    result = runner.invoke(main, ["import", "grids", str(bad)])
    assert result.exit_code == 1
    assert "feature 2 (G-BOW-01) [self_intersection]" in result.output
    assert "feature 4 (G-NOUNIT) [unknown_unit]" in result.output
    assert "nothing was imported" in result.output
    good = write(tmp_path, "good.geojson", world_collection())
    result = runner.invoke(main, ["import", "grids", str(good), "--dry-run"])
    assert result.exit_code == 0 and "would be created" in result.output
    result = runner.invoke(main, ["import", "grids", str(good)])
    assert result.exit_code == 0 and "1 grids were created, 3 redrawn" in result.output
    result = runner.invoke(main, ["import", "grids", str(good), "--json"])
    assert sorted(json.loads(result.stdout)["unchanged"]) == sorted(SQUARES)


def test_gazetteer_import(app, world, tmp_path: Path) -> None:
    from grids.models import GazetteerEntry
    from server.core.db import db

    csv = tmp_path / "places.csv"
    csv.write_text("name,unit,kind,aliases,lng,lat\n"
                   "锦绣家园,210102001001,community,锦绣小区|锦绣家园小区,123.4300,41.7425\n"
                   "浑河湾菜市场,210102001,landmark,,,\n"
                   "无此处,999999,landmark,,,\n", encoding="utf-8")
    runner = app.test_cli_runner()
    result = runner.invoke(main, ["import", "gazetteer", str(csv)])
    assert result.exit_code == 1 and "row 4: no unit with code '999999'" in result.output
    csv.write_text("\n".join(csv.read_text(encoding="utf-8").splitlines()[:3]) + "\n",
                   encoding="utf-8")
    result = runner.invoke(main, ["import", "gazetteer", str(csv)])
    assert result.exit_code == 0 and "2 entries added" in result.output, result.output
    result = runner.invoke(main, ["import", "gazetteer", str(csv)])
    assert "0 entries added or updated, 2 unchanged" in result.output
    with app.app_context():
        entry = db.session.execute(sa.select(GazetteerEntry).where(
            GazetteerEntry.name == "锦绣家园")).scalar_one()
        assert entry.aliases == ["锦绣家园小区", "锦绣小区"] and entry.lng == 123.43
