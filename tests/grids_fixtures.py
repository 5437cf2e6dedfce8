"""Shared pieces of the grid tests: polygons for the ``world`` fixture's villages.

The layout, in WGS-84, well inside Shenyang's 和平区 (its real boundary, the Hun River, runs
about 120 m south-east of G-HHW-01):

    41.7478            ┌──────────┐
                       │ G-CBD-01 │  长白岛社区
    41.7448 ┌──────────┼──────────┤
            │ G-HHW-02 │ G-HHW-01 │  浑河湾社区 (the accept point 123.4305, 41.7420 is in 01)
    41.7418 └──────────┴──────────┘
        123.4230   123.4270   123.4310

and G-BH-01 (滨河社区) inside 沈河区 to the north-east. Shared edges are exact, so a point on
one is covered by both neighbours and the tie-break decides.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

SQUARES = {
    "G-HHW-01": ("浑河湾第一网格", "210102001001", (123.4270, 41.7418, 123.4310, 41.7448)),
    "G-HHW-02": ("浑河湾第二网格", "210102001001", (123.4230, 41.7418, 123.4270, 41.7448)),
    "G-CBD-01": ("长白岛第一网格", "210102001002", (123.4270, 41.7448, 123.4310, 41.7478)),
    "G-BH-01": ("滨河第一网格", "210103005001", (123.4550, 41.7950, 123.4580, 41.7980)),
}


def square(min_lng: float, min_lat: float, max_lng: float, max_lat: float) -> list[Any]:
    return [[[min_lng, min_lat], [max_lng, min_lat], [max_lng, max_lat], [min_lng, max_lat],
             [min_lng, min_lat]]]


def feature(code: str, name: str, unit: str, rings: list[Any], kind: str = "Polygon",
            **extra: Any) -> dict[str, Any]:
    return {"type": "Feature", "geometry": {"type": kind, "coordinates": rings},
            "properties": {"code": code, "name": name, "unit": unit, **extra}}


def collection(features: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"type": "FeatureCollection", "features": features, **extra}


def world_collection() -> dict[str, Any]:
    return collection([feature(code, name, unit, square(*box))
                       for code, (name, unit, box) in SQUARES.items()])


def write(tmp_path: Path, name: str, doc: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def run_import(app: Flask, path: Path, **options: Any) -> Any:
    """Import in its own app context and commit when applied (as the CLI does)."""
    from grids.importer import import_grids_file
    from server.core.db import db

    with app.app_context():
        report = import_grids_file(path, **options)
        if report.applied:
            db.session.commit()
        else:
            db.session.rollback()
        return report


@pytest.fixture
def drawn(app: Flask, world: Any, tmp_path: Path) -> Any:
    """The world, with its grids drawn (and a second grid, G-HHW-02, in 浑河湾社区)."""
    report = run_import(app, write(tmp_path, "world.geojson", world_collection()))
    assert report.applied and not report.errors, [str(p) for p in report.problems]
    return world


@pytest.fixture
def matcher(app: Flask) -> Callable[..., Any]:
    """Call ``match_location`` in a fresh app context; returns plain values."""

    def _match(point: tuple[float, float] | None = None, address: str | None = None,
               within: str | None = None, **options: Any) -> dict[str, Any]:
        import sqlalchemy as sa

        from grids.matching import match_location
        from hierarchy.models import Unit
        from server.core.db import db

        with app.app_context():
            unit = db.session.execute(sa.select(Unit).where(Unit.code == within)
                                      ).scalar_one() if within else None
            r = match_location(point=point, address=address, within=unit, **options)
            out = {"grid": r.grid.code if r.grid else None, "unit": r.unit.code if r.unit else None,
                   "region_code": r.region_code, "confidence": r.confidence, "reason": r.reason,
                   "method": r.method, "point": r.point}
            db.session.remove()
            return out

    return _match
