"""What the map screen reads and writes: each grid's open load, open tickets as points, the
boundary of the actor's county, and a grid drawn or redrawn by hand.

Reads are scoped like every ticket read (:func:`server.tickets.queries.visible_clause`) and
answer in one or two statements whatever the number of grids, so the map stays fast with
100,000 tickets (``bench/pages.py``). The grid polygons themselves come from
``GET /api/v1/grids`` (GeoJSON, bounding-box filter).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import shapely
import sqlalchemy as sa
from flask import jsonify
from pydantic import Field, StringConstraints

from grids import operations as grid_ops
from grids.export import feature as grid_feature
from grids.models import Grid
from hierarchy.models import Level, Role, Unit, User
from hierarchy.scoping import ancestor_ids, in_subtree
from server.auth import current_actor
from server.core.db import db, utcnow
from server.tickets.models import OPEN_STATUSES, Crs, Ticket
from server.tickets.queries import visible_clause
from server.tickets.schemas import Body

from . import bp
from .common import int_arg, json_body, parse, run_write
from .reference import _bbox_arg

#: Load thresholds for the map's colours (open tickets per grid): up to LIGHT is light,
#: up to HEAVY is busy, above is overloaded. The legend on the page shows the same numbers.
LIGHT, HEAVY = 2, 5
POINT_LIMIT = 5000


def load_level(count: int) -> str:
    """'none', 'light', 'busy' or 'heavy': what colour a grid's open load is drawn in."""
    if count == 0:
        return "none"
    if count <= LIGHT:
        return "light"
    return "busy" if count <= HEAVY else "heavy"


def grid_loads(actor: User, now: datetime,
               grid_ids: list[int] | None = None) -> dict[int, dict[str, int]]:
    """{grid id: {open, overdue}} over the tickets the actor can see — one grouped query.

    Staff: the subtree's units joined to their tickets, read from the covering index
    (unit, status, grid, handling due) of migration 0008 — 15 ms for a county of 100,000
    tickets where grouping through the grid index took 150 ms (``bench/pages.py``).
    """
    overdue = sa.func.sum(sa.case((Ticket.handling_due < now, 1), else_=0))
    query = sa.select(Ticket.grid_id, sa.func.count(), overdue)
    if actor.role == Role.grid_worker:
        query = query.where(visible_clause(actor))
    else:
        query = query.select_from(Unit).join(Ticket, Ticket.unit_id == Unit.id).where(
            in_subtree(Unit.path, actor.unit.path))
    query = query.where(Ticket.status.in_([str(s) for s in OPEN_STATUSES]),
                        Ticket.grid_id.is_not(None)).group_by(Ticket.grid_id)
    if grid_ids is not None:
        query = query.where(Ticket.grid_id.in_(grid_ids))
    return {gid: {"open": n, "overdue": int(late or 0)}
            for gid, n, late in db.session.execute(query)}


@bp.get("/map/load")
def map_load():  # type: ignore[no-untyped-def]
    """Open tickets per grid the caller can see (``bbox`` narrows to grids meeting the box):
    ``{"grids": {code: {open, overdue, level}}, "thresholds": …}``."""
    actor = current_actor()
    now = utcnow()
    loads = grid_loads(actor, now)
    query = sa.select(Grid.id, Grid.code).where(Grid.id.in_(list(loads)) if loads else sa.false())
    if (box := _bbox_arg()) is not None:
        min_lng, min_lat, max_lng, max_lat = box
        query = query.where(Grid.max_lng >= min_lng, Grid.min_lng <= max_lng,
                            Grid.max_lat >= min_lat, Grid.min_lat <= max_lat)
    grids = {code: {**loads[gid], "level": load_level(loads[gid]["open"])}
             for gid, code in db.session.execute(query)}
    return jsonify({"grids": grids, "thresholds": {"light": LIGHT, "heavy": HEAVY},
                    "at": now.isoformat()})


@bp.get("/map/tickets")
def map_tickets():  # type: ignore[no-untyped-def]
    """Open tickets the caller can see that have a location, newest first, as GeoJSON points
    (``bbox``, ``limit`` up to 5000; ``truncated`` says when there were more)."""
    actor = current_actor()
    limit = int_arg("limit", 1000, 1, POINT_LIMIT)
    now = utcnow()
    query = (sa.select(Ticket.number, Ticket.title, Ticket.status, Ticket.urgency, Ticket.lng,
                       Ticket.lat, Ticket.handling_due, Grid.code)
             .outerjoin(Grid, Grid.id == Ticket.grid_id)
             .where(visible_clause(actor), Ticket.status.in_([str(s) for s in OPEN_STATUSES]),
                    Ticket.lng.is_not(None), Ticket.lat.is_not(None)))
    if (box := _bbox_arg()) is not None:
        min_lng, min_lat, max_lng, max_lat = box
        query = query.where(Ticket.lng.between(min_lng, max_lng),
                            Ticket.lat.between(min_lat, max_lat))
    rows = db.session.execute(query.order_by(Ticket.id.desc()).limit(limit + 1)).all()
    features = [{
        "type": "Feature",
        "geometry": {"type": "Point", "coordinates": [r.lng, r.lat]},
        "properties": {"number": r.number, "title": r.title, "status": r.status,
                       "urgency": r.urgency, "grid": r.code,
                       "overdue": r.handling_due is not None and r.handling_due < now},
    } for r in rows[:limit]]
    return jsonify({"type": "FeatureCollection", "features": features,
                    "truncated": len(rows) > limit})


def boundary_unit(actor: User) -> Unit | None:
    """The county the actor works in (its own unit when a city or province): the outline the
    map draws when no tiles are configured."""
    ids = ancestor_ids(actor.unit)
    units = {u.id: u for u in db.session.execute(sa.select(Unit).where(Unit.id.in_(ids)))
             .scalars()}
    chain = [units[i] for i in ids if i in units]
    for unit in reversed(chain):
        if unit.level in (Level.county, Level.city, Level.province) and unit.code.isdigit():
            return unit
    return None


@bp.get("/map/boundary")
def map_boundary():  # type: ignore[no-untyped-def]
    """The outline of the actor's county (or city, province) as GeoJSON, simplified to about
    50 m — from the packaged boundaries, so no map service is asked."""
    from grids.boundaries import boundary_index

    actor = current_actor()
    unit = boundary_unit(actor)
    features = []
    if unit is not None:
        geom = boundary_index((unit.code[:2],)).boundary(unit.code)
        if geom is not None:
            features.append({
                "type": "Feature",
                "geometry": shapely.geometry.mapping(geom.simplify(0.0005)),
                "properties": {"code": unit.code, "name": unit.name, "level": str(unit.level)},
            })
    return jsonify({"type": "FeatureCollection", "features": features})


class DrawGridBody(Body):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=80)]
    unit: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)]
    geometry: dict[str, Any] = Field(description="A GeoJSON Polygon or MultiPolygon")
    crs: Crs = Crs.wgs84


@bp.put("/grids/<code>")
def draw_grid(code: str):  # type: ignore[no-untyped-def]
    """Create grid ``code`` or redraw it (a new version; tickets keep their grid), through the
    grid importer's validation: a refused drawing answers 422 ``grid_refused`` with the
    report's problems in ``details.problems``."""
    if len(code) > 40 or not code.strip():
        from server.core.errors import InvalidInput

        raise InvalidInput("a grid code has 1 to 40 characters", field="code")
    raw = json_body()
    body = parse(DrawGridBody, raw)

    def handler(actor: User) -> tuple[dict[str, Any], int]:
        checked = grid_ops.check_draw_grid(actor, code=code, name=body.name,
                                           unit_code=body.unit, geometry=body.geometry,
                                           crs=str(body.crs))
        created = checked.grid is None
        grid = grid_ops.do_draw_grid(checked)
        out = grid_feature(grid)
        out["properties"]["warnings"] = list(checked.warnings)
        return out, 201 if created else 200

    return run_write(handler, {"code": code, **raw})


def openapi_paths() -> dict[str, Any]:
    from .openapi import _body, _query, _responses

    box = _query("bbox", "minlng,minlat,maxlng,maxlat (WGS-84)")
    return {
        "/api/v1/map/load": {"get": {
            "summary": "Open tickets per grid", "operationId": "mapLoad", "parameters": [box],
            "responses": _responses(200)}},
        "/api/v1/map/tickets": {"get": {
            "summary": "Open tickets as GeoJSON points", "operationId": "mapTickets",
            "parameters": [box, _query("limit", f"1–{POINT_LIMIT}", type="integer", minimum=1,
                                       maximum=POINT_LIMIT)],
            "responses": _responses(200)}},
        "/api/v1/map/boundary": {"get": {
            "summary": "The caller's county outline", "operationId": "mapBoundary",
            "responses": _responses(200)}},
        "/api/v1/grids/{code}": {"put": {
            "summary": "Draw or redraw a grid (validated like an import)",
            "operationId": "drawGrid",
            "parameters": [{"name": "code", "in": "path", "required": True,
                            "schema": {"type": "string", "maxLength": 40}}],
            "requestBody": _body(DrawGridBody),
            "responses": _responses(200, None, 403, 404, 409)}},
    }
