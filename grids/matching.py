"""Where is the problem? A point or an address → grid, unit and official division code.

A point is matched, in this order, to:

1. the grid that covers it (covers: an edge counts; on a shared edge the lowest code wins);
2. the nearest grid within the tolerance (``YIHAO_GRID_TOLERANCE_M``, default 50 m) — GPS
   error and slivers between grids should not strand a ticket;
3. the village or township whose imported boundary covers it;
4. the county (or city) whose real boundary covers it (:mod:`grids.boundaries`).

An address is read for division names and gazetteer places (:mod:`grids.addresses`); a
gazetteer place with coordinates is then matched as a point inside that unit, and a village
that has exactly one grid gives that grid. With both a point and an address, a grid from the
point wins; otherwise the address may refine the point's answer when they agree.

The result always says why it is as precise as it is, so a ticket without a grid carries the
reason instead of silently stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask import current_app, has_app_context
from sqlalchemy.orm import joinedload, lazyload

from hierarchy.models import Level, Unit
from server.core.db import db

from .addresses import NameIndex, name_index
from .boundaries import boundary_index
from .models import Grid, read_tokens
from .spatial import GridHit, boundary_indexes, find_covering, find_nearest

DEFAULT_TOLERANCE_M = 50.0


@dataclass(frozen=True)
class MatchResult:
    grid: Grid | None
    unit: Unit | None
    region_code: str | None
    confidence: float
    reason: str | None
    #: The WGS-84 point that was matched (given, or found in the gazetteer).
    point: tuple[float, float] | None = None
    #: How it was found: grid, nearest, boundary, county, address, gazetteer, village_grid, none.
    method: str = "none"


def tolerance_m() -> float:
    if has_app_context():
        return float(current_app.config.get("YIHAO_GRID_TOLERANCE_M", DEFAULT_TOLERANCE_M))
    return DEFAULT_TOLERANCE_M


def region_code_of(index: NameIndex, unit_id: int) -> str | None:
    """The official code of the unit, or of its nearest ancestor that has one."""
    info = index.units.get(unit_id)
    if info is None:
        return None
    for uid in (unit_id, *reversed(info.ancestors)):
        code = index.units[uid].region_code if uid in index.units else None
        if code:
            return code
    return None


def _grid_result(hit: GridHit, index: NameIndex, confidence: float, reason: str,
                 point: tuple[float, float] | None, method: str) -> MatchResult:
    # The rota (members) loads only if the caller asks for the on-duty worker.
    grid = hit.grid or db.session.get(Grid, hit.grid_id, options=[
        lazyload(Grid.members), joinedload(Grid.unit).lazyload(Unit.parent)])
    assert grid is not None
    return MatchResult(grid, grid.unit, region_code_of(index, grid.unit_id), confidence, reason,
                       point, method)


def _unit_result(index: NameIndex, unit_id: int, confidence: float, reason: str,
                 point: tuple[float, float] | None, method: str) -> MatchResult:
    unit = db.session.get(Unit, unit_id)
    return MatchResult(None, unit, region_code_of(index, unit_id), confidence, reason, point,
                       method)


def _allowed(index: NameIndex, unit_id: int, within: Unit | None) -> bool:
    if within is None:
        return True
    info = index.units.get(unit_id)
    return info is not None and (unit_id == within.id or within.id in info.ancestors)


def match_point(point: tuple[float, float], *, within: Unit | None = None,
                tolerance: float | None = None, tokens: dict[str, str] | None = None,
                index: NameIndex | None = None) -> MatchResult:
    """A WGS-84 point → grid, or the finest unit whose boundary covers it."""
    tokens = tokens if tokens is not None else read_tokens(db.session)
    index = index or name_index(tokens)
    tolerance = tolerance_m() if tolerance is None else tolerance
    lng, lat = point
    within_path = within.path if within is not None else None
    hit = find_covering(lng, lat, tokens, within_path)
    if hit is not None:
        return _grid_result(hit, index, 1.0, f"point is inside grid {hit.code}", point, "grid")
    hit = find_nearest(lng, lat, tolerance, tokens, within_path)
    if hit is not None:
        return _grid_result(
            hit, index, 0.8, f"no grid covers the point; nearest grid {hit.code} is "
            f"{hit.distance_m:.0f} m away (tolerance {tolerance:.0f} m)", point, "nearest")
    elsewhere = ""
    if within is not None:
        outside = find_covering(lng, lat, tokens, None)
        if outside is not None:
            elsewhere = f"; it lies in grid {outside.code}, outside {within.name}"
    prefix = f"no grid within {tolerance:.0f} m of the point{elsewhere}"
    for unit_id in boundary_indexes.get(tokens.get("boundaries")).covering(lng, lat):
        if _allowed(index, unit_id, within):
            info = index.units.get(unit_id)
            if info is None:
                continue
            confidence = 0.6 if info.level == Level.village else 0.5
            return _unit_result(index, unit_id, confidence,
                                f"{prefix}; it lies in {info.name} (imported boundary)", point,
                                "boundary")
    provinces = index.province_prefixes
    regions = boundary_index(provinces).locate(lng, lat) if provinces else []
    for region in regions:
        unit_ids = index.by_code.get(region.code) or [
            # Codes change when a county is re-designated; the name within the level stays.
            uid for uid in index.by_name.get(region.name, [])
            if index.units[uid].level == region.level]
        if not unit_ids:
            continue
        if within is not None and not _allowed(index, unit_ids[0], within):
            if unit_ids[0] in index.units[within.id].ancestors:
                where = (f"{prefix}; it lies in {region.name}, and no finer boundary says "
                         f"whether it is in {within.name}")
            else:
                where = f"{prefix}; it lies in {region.name}, outside {within.name}"
            return MatchResult(None, None, region.code, 0.2, where, point, "county")
        confidence = 0.4 if region.level == "county" else 0.3
        return _unit_result(index, unit_ids[0], confidence,
                            f"{prefix}; it lies in {region.name} ({region.level} boundary)",
                            point, "county")
    if regions:
        region = regions[0]
        return MatchResult(None, None, region.code, 0.2,
                           f"{prefix}; it lies in {region.name}, which has no unit here",
                           point, "county")
    return MatchResult(None, None, None, 0.0,
                       f"{prefix}, and it is outside every known boundary", point, "none")


def match_address(address: str, *, within: Unit | None = None, tolerance: float | None = None,
                  tokens: dict[str, str] | None = None, index: NameIndex | None = None
                  ) -> MatchResult:
    """An address → the unit it names; a grid when a gazetteer point or a one-grid village
    pins it down."""
    tokens = tokens if tokens is not None else read_tokens(db.session)
    index = index or name_index(tokens)
    within_info = index.units.get(within.id) if within is not None else None
    found = index.resolve(address, within_info)
    if found.unit_id is None:
        return MatchResult(None, None, None, 0.0, found.reason, None, "none")
    info = index.units[found.unit_id]
    if found.point is not None:
        lng, lat = found.point
        hit = find_covering(lng, lat, tokens, info.path) or find_nearest(
            lng, lat, tolerance_m() if tolerance is None else tolerance, tokens, info.path)
        if hit is not None:
            return _grid_result(hit, index, 0.85, f"{found.reason}; its point is in grid "
                                f"{hit.code}", found.point, "gazetteer")
        return _unit_result(index, found.unit_id, found.confidence,
                            f"{found.reason}; no grid at its point", found.point, "gazetteer")
    if info.level == Level.village:
        grids = db.session.execute(
            sa.select(Grid).where(Grid.unit_id == found.unit_id, Grid.active.is_(True))
            .order_by(Grid.code).limit(2)
        ).scalars().all()
        if len(grids) == 1:
            grid = grids[0]
            return MatchResult(grid, grid.unit, region_code_of(index, grid.unit_id),
                               min(0.7, found.confidence + 0.1),
                               f"{found.reason}, whose only grid is {grid.code}", None,
                               "village_grid")
        if grids:
            return _unit_result(index, found.unit_id, found.confidence,
                                f"{found.reason}, which has several grids: give a point to "
                                "choose one", None, "address")
    return _unit_result(index, found.unit_id, found.confidence,
                        f"{found.reason}; no grid polygon matched", None, "address")


def match_location(
    *, point: tuple[float, float] | None, address: str | None, within: Unit | None = None,
    tolerance: float | None = None,
) -> MatchResult:
    """Match a WGS-84 point and/or an address; ``within`` limits answers to a subtree."""
    tokens = read_tokens(db.session)
    index = name_index(tokens)
    by_point = None
    if point is not None:
        by_point = match_point(point, within=within, tolerance=tolerance, tokens=tokens,
                               index=index)
        if by_point.grid is not None:
            return by_point
    if address:
        by_address = match_address(address, within=within, tolerance=tolerance, tokens=tokens,
                                   index=index)
        if by_point is None:
            return by_address
        if by_address.unit is not None and (
            by_point.unit is None or by_address.unit.is_within(by_point.unit)
        ):
            return MatchResult(by_address.grid, by_address.unit, by_address.region_code,
                               by_address.confidence,
                               f"{by_point.reason}; {by_address.reason}",
                               by_address.point or point, by_address.method)
        return by_point
    if by_point is not None:
        return by_point
    return MatchResult(None, None, None, 0.0, "neither a point nor an address was given")
