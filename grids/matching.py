"""Where is the problem? A point or an address → grid, unit and official division code.

This first version resolves addresses to the deepest division named in them; matching points
against grid polygons (PostGIS ``ST_Covers`` / a Shapely STRtree) lands with the grids issue.
The result always says why it is as precise as it is, so a ticket without a grid carries the
reason instead of silently stopping.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from hierarchy.models import Level, Unit
from hierarchy.scoping import in_subtree
from server.core.db import db

from .models import Grid


@dataclass(frozen=True)
class MatchResult:
    grid: Grid | None
    unit: Unit | None
    region_code: str | None
    confidence: float
    reason: str | None


def _division_in_address(address: str, within: Unit | None) -> Unit | None:
    """The deepest unit whose name occurs in the address (the longest name breaks a tie)."""
    depth = sa.case({lvl.value: lvl.depth for lvl in Level}, value=Unit.level, else_=0)
    query = (
        sa.select(Unit)
        .where(Unit.active.is_(True), sa.literal(address).contains(Unit.name, autoescape=False))
        .order_by(depth.desc(), sa.func.length(Unit.name).desc(), Unit.id)
        .limit(1)
    )
    if within is not None:
        query = query.where(in_subtree(Unit.path, within.path))
    return db.session.execute(query).scalar_one_or_none()


def match_location(
    *, point: tuple[float, float] | None, address: str | None, within: Unit | None = None
) -> MatchResult:
    if address:
        unit = _division_in_address(address, within)
        if unit is not None:
            return MatchResult(None, unit, unit.region_code, 0.5,
                               f"address resolved to {unit.name}; no grid polygon matched")
    if point is not None:
        return MatchResult(None, None, None, 0.0, "no grid polygon covers the point")
    return MatchResult(None, None, None, 0.0, "address names no known division")
