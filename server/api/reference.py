"""Units, grids and location matching: what callers need to address tickets."""

from __future__ import annotations

import math
from typing import Annotated, Any

import shapely
import sqlalchemy as sa
from flask import jsonify, request
from pydantic import StringConstraints, model_validator

from grids.crs import CRS_CHOICES, to_wgs84
from grids.export import feature as grid_feature
from grids.export import grids_query
from grids.geometry import SRID
from grids.matching import match_location
from grids.models import Grid
from hierarchy.models import Level, Unit
from hierarchy.scoping import in_subtree
from server.auth import current_actor
from server.core.db import db, is_postgres
from server.core.errors import InvalidInput
from server.tickets.schemas import Body, Location

from . import bp
from .common import decode_cursor, encode_cursor, int_arg, json_body, parse


def unit_dict(unit: Unit) -> dict[str, Any]:
    return {
        "code": unit.code, "name": unit.name, "level": str(unit.level),
        "parent": unit.parent.code if unit.parent else None, "region_code": unit.region_code,
    }


@bp.get("/units")
def list_units():  # type: ignore[no-untyped-def]
    """Units in the caller's subtree (with their own unit first), filterable by parent/level."""
    actor = current_actor()
    limit = int_arg("limit", 200, 1, 1000)
    query = sa.select(Unit).where(in_subtree(Unit.path, actor.unit.path))
    if level := request.args.get("level"):
        if level not in {str(lv) for lv in Level}:
            raise InvalidInput(f"level must be one of {[str(lv) for lv in Level]}", field="level")
        query = query.where(Unit.level == level)
    if parent_code := request.args.get("parent"):
        parent_id = sa.select(Unit.id).where(Unit.code == parent_code).scalar_subquery()
        query = query.where(Unit.parent_id == parent_id)
    if q := request.args.get("q"):
        query = query.where(Unit.name.contains(q[:50], autoescape=True))
    if (after := decode_cursor(request.args.get("cursor"))) is not None:
        query = query.where(Unit.id > after)
    rows = db.session.execute(query.order_by(Unit.id).limit(limit + 1)).scalars().all()
    items = rows[:limit]
    return jsonify({
        "items": [unit_dict(u) for u in items],
        "next_cursor": encode_cursor(items[-1].id) if len(rows) > limit else None,
    })


@bp.get("/grids")
def list_grids():  # type: ignore[no-untyped-def]
    """Grids in the caller's subtree as a GeoJSON FeatureCollection with their polygons.

    Filters: ``unit`` (a village or any ancestor), ``bbox=minlng,minlat,maxlng,maxlat``
    (WGS-84; grids whose polygon meets the box), ``crs`` of the returned coordinates
    (wgs84 by default; gcj02 or bd09 for Chinese web maps).
    """
    actor = current_actor()
    crs = request.args.get("crs") or "wgs84"
    if crs not in CRS_CHOICES:
        raise InvalidInput(f"crs must be one of {', '.join(CRS_CHOICES)}", field="crs")
    query = grids_query().where(in_subtree(Unit.path, actor.unit.path))
    if unit_code := request.args.get("unit"):
        unit = db.session.execute(
            sa.select(Unit).where(Unit.code == unit_code)).scalar_one_or_none()
        if unit is None:
            raise InvalidInput(f"no unit with code {unit_code}", field="unit")
        query = query.where(in_subtree(Unit.path, unit.path))
    box = _bbox_arg()
    if box is not None:
        min_lng, min_lat, max_lng, max_lat = box
        if is_postgres():
            query = query.where(sa.func.ST_Intersects(
                Grid.geom, sa.func.ST_MakeEnvelope(min_lng, min_lat, max_lng, max_lat, SRID)))
        else:
            query = query.where(Grid.max_lng >= min_lng, Grid.min_lng <= max_lng,
                                Grid.max_lat >= min_lat, Grid.min_lat <= max_lat)
    grids = db.session.execute(query.limit(GRID_LIMIT + 1)).scalars().all()
    if box is not None and not is_postgres():
        envelope = shapely.box(*box)
        grids = [g for g in grids if g.geom is not None and g.geom.intersects(envelope)]
    features = []
    for grid in grids[:GRID_LIMIT]:
        worker = grid.on_duty_worker()
        features.append(grid_feature(grid, crs, {"on_duty": worker.username if worker else None}))
    collection: dict[str, Any] = {"type": "FeatureCollection", "features": features,
                                  "truncated": len(grids) > GRID_LIMIT}
    if crs != "wgs84":
        collection["yihao:crs"] = crs
    return jsonify(collection)


GRID_LIMIT = 5000


def _bbox_arg() -> tuple[float, float, float, float] | None:
    raw = request.args.get("bbox")
    if not raw:
        return None
    try:
        values = tuple(float(v) for v in raw.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise InvalidInput("bbox must be four numbers: minlng,minlat,maxlng,maxlat", field="bbox")
    min_lng, min_lat, max_lng, max_lat = values
    if not (-180 <= min_lng <= max_lng <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise InvalidInput("bbox must be minlng,minlat,maxlng,maxlat within −180…180, −90…90, "
                           "minimum before maximum", field="bbox")
    return min_lng, min_lat, max_lng, max_lat


class MatchBody(Body):
    location: Location | None = None
    lng: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    address: Annotated[str, StringConstraints(strip_whitespace=True, max_length=300)] | None = None

    @model_validator(mode="after")
    def point_or_address(self) -> MatchBody:
        if not self.address and (self.lng is None or self.lat is None) \
                and self.location is None:
            raise ValueError("give lng and lat, or an address")
        return self


@bp.post("/grids/match")
def match_grid():  # type: ignore[no-untyped-def]
    """Which grid (or, failing that, which division) a point or address falls in. Reads only.

    Answers within the caller's jurisdiction, exactly as accepting a ticket would.
    """
    actor = current_actor()
    body = parse(MatchBody, json_body())
    point = None
    if body.location is not None:
        point = to_wgs84(body.location.lng, body.location.lat, str(body.location.crs))
    elif body.lng is not None and body.lat is not None:
        point = to_wgs84(body.lng, body.lat, body.crs)
    result = match_location(point=point, address=body.address or None, within=actor.unit)
    return jsonify({
        "grid": result.grid.code if result.grid else None,
        "unit": result.unit.code if result.unit else None,
        "region_code": result.region_code,
        "confidence": result.confidence,
        "reason": result.reason,
        "grid_name": result.grid.name if result.grid else None,
        "unit_name": result.unit.name if result.unit else None,
        "level": str(result.unit.level) if result.unit else None,
        "method": result.method,
        "point": list(result.point) if result.point else None,
    })
