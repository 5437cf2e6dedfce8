"""Units, grids and location matching: what callers need to address tickets."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import jsonify, request
from pydantic import model_validator

from grids.crs import to_wgs84
from grids.matching import match_location
from grids.models import Grid
from hierarchy.models import Level, Unit
from hierarchy.scoping import in_subtree
from server.auth import current_actor
from server.core.db import db
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
    """Grids in the caller's subtree as a GeoJSON FeatureCollection."""
    actor = current_actor()
    query = sa.select(Grid).join(Unit, Unit.id == Grid.unit_id).where(
        in_subtree(Unit.path, actor.unit.path), Grid.active.is_(True))
    if unit_code := request.args.get("unit"):
        unit = db.session.execute(sa.select(Unit).where(Unit.code == unit_code)).scalar_one_or_none()
        if unit is None:
            raise InvalidInput(f"no unit with code {unit_code}", field="unit")
        query = query.where(in_subtree(Unit.path, unit.path))
    grids = db.session.execute(query.order_by(Grid.code).limit(5000)).scalars().all()
    features = []
    for grid in grids:
        worker = grid.on_duty_worker()
        features.append({
            "type": "Feature",
            "geometry": None,
            "properties": {
                "code": grid.code, "name": grid.name, "unit": grid.unit.code,
                "unit_name": grid.unit.name,
                "on_duty": worker.username if worker else None,
            },
        })
    return jsonify({"type": "FeatureCollection", "features": features})


class MatchBody(Body):
    location: Location | None = None
    lng: float | None = None
    lat: float | None = None
    crs: str = "wgs84"
    address: str | None = None

    @model_validator(mode="after")
    def something(self) -> MatchBody:
        if self.address is None and (self.lng is None or self.lat is None) \
                and self.location is None:
            raise ValueError("give lng and lat, or an address")
        return self


@bp.post("/grids/match")
def match_grid():  # type: ignore[no-untyped-def]
    """Which grid (or, failing that, which division) a point or address falls in. Reads only."""
    current_actor()
    body = parse(MatchBody, json_body())
    point = None
    if body.location is not None:
        point = to_wgs84(body.location.lng, body.location.lat, str(body.location.crs))
    elif body.lng is not None and body.lat is not None:
        point = to_wgs84(body.lng, body.lat, body.crs)
    result = match_location(point=point, address=body.address, within=None)
    return jsonify({
        "grid": result.grid.code if result.grid else None,
        "unit": result.unit.code if result.unit else None,
        "region_code": result.region_code,
        "confidence": result.confidence,
        "reason": result.reason,
    })
