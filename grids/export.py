"""Grids back out as GeoJSON (``yihao export grids FILE``, and the API's map layer).

Coordinates are WGS-84 unless a web map's system is asked for (GCJ-02, BD-09): conversion
happens here, at the edge, never in storage. An exported file imports back unchanged.
"""

from __future__ import annotations

from typing import Any

import shapely
import sqlalchemy as sa
from sqlalchemy.orm import undefer

from hierarchy.models import Unit
from hierarchy.scoping import in_subtree
from server.core.db import db

from .crs import check_crs, geometry_from_wgs84
from .models import Grid


def feature(grid: Grid, crs: str = "wgs84", extra: dict[str, Any] | None = None
            ) -> dict[str, Any]:
    geom = grid.geom
    geometry = None
    if geom is not None:
        geometry = shapely.geometry.mapping(geometry_from_wgs84(geom, crs))
    return {
        "type": "Feature",
        "geometry": geometry,
        "properties": {
            "code": grid.code, "name": grid.name, "unit": grid.unit.code,
            "unit_name": grid.unit.name, "version": grid.version,
            "valid_from": grid.valid_from.isoformat() if grid.valid_from else None,
            **(extra or {}),
        },
    }


def grids_query(unit: Unit | None = None, include_retired: bool = False) -> sa.Select[Any]:
    query = sa.select(Grid).join(Unit, Unit.id == Grid.unit_id).options(undefer(Grid.geom))
    if unit is not None:
        query = query.where(in_subtree(Unit.path, unit.path))
    if not include_retired:
        query = query.where(Grid.active.is_(True))
    return query.order_by(Grid.code)


def export_grids(unit: Unit | None = None, *, crs: str = "wgs84",
                 include_retired: bool = False) -> dict[str, Any]:
    """A FeatureCollection of the (active) grids, in ``crs``; RFC 7946 has no ``crs`` member,
    so a non-WGS-84 export says so in a foreign member instead."""
    check_crs(crs)
    grids = db.session.execute(grids_query(unit, include_retired)).scalars().all()
    collection: dict[str, Any] = {
        "type": "FeatureCollection",
        "features": [feature(g, crs, {"active": g.active} if include_retired else None)
                     for g in grids],
    }
    if crs != "wgs84":
        collection["yihao:crs"] = crs
    return collection
