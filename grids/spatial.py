"""Point → grid on both backends, with the same answers.

PostgreSQL + PostGIS: ``ST_Covers`` on the GIST-indexed ``grids.geom``; nearest-within-
tolerance prefilters with ``ST_DWithin`` in degrees (index-assisted) and measures metres in
Python. The embedded default (SQLite): every active grid's polygon in a Shapely STRtree,
built once per process and rebuilt when the ``grids`` token in ``geo_state`` changes.

Both apply the same rules so they agree exactly:

* *covers*, not *contains*: a point on an edge or a vertex belongs to a grid;
* a point covered by several grids (a shared edge, or an overlap the import warned about)
  goes to the one with the lowest code, compared byte-wise (``COLLATE "C"`` on PostgreSQL);
* the nearest grid is measured in metres with :func:`grids.crs.distance_m`; equal distances
  again go to the lowest code.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from shapely.geometry.base import BaseGeometry
from sqlalchemy.orm import contains_eager, lazyload

from hierarchy.models import Unit
from hierarchy.scoping import in_subtree, path_upper_bound
from server.core.db import db, is_postgres

from .crs import degrees_for, distance_m
from .geometry import SRID, from_wkb_many, point_sql, wkb_of
from .models import Grid, UnitBoundary


@dataclass(frozen=True)
class GridHit:
    grid_id: int
    code: str
    unit_id: int
    #: 0 when the grid covers the point.
    distance_m: float
    #: The loaded grid (with its unit) when the lookup already fetched it — PostGIS does, in
    #: the same round trip — so the caller need not load it again.
    grid: Grid | None = field(default=None, compare=False, repr=False)


class GridIndex:
    """Active grids' polygons in an STRtree (the embedded backend)."""

    def __init__(self, ids: list[int], codes: list[str], unit_ids: list[int],
                 paths: list[str], geoms: np.ndarray) -> None:
        self.ids, self.codes, self.unit_ids, self.paths = ids, codes, unit_ids, paths
        self.geoms = geoms
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)

    def __len__(self) -> int:
        return len(self.ids)

    def _allowed(self, i: int, within_path: str | None) -> bool:
        return within_path is None or self.paths[i].startswith(within_path)

    def _hit(self, i: int, distance: float) -> GridHit:
        return GridHit(self.ids[i], self.codes[i], self.unit_ids[i], distance)

    def covering(self, lng: float, lat: float, within_path: str | None = None) -> GridHit | None:
        hits = self.tree.query(shapely.Point(lng, lat), predicate="covered_by")
        best = [int(i) for i in hits if self._allowed(int(i), within_path)]
        if not best:
            return None
        return self._hit(min(best, key=lambda i: self.codes[i]), 0.0)

    def nearest(self, lng: float, lat: float, tolerance_m: float,
                within_path: str | None = None) -> GridHit | None:
        hits = self.tree.query(shapely.Point(lng, lat), predicate="dwithin",
                               distance=degrees_for(tolerance_m, lat))
        scored = []
        for i in (int(i) for i in hits):
            if self._allowed(i, within_path):
                d = distance_m(self.geoms[i], lng, lat)
                if d <= tolerance_m:
                    scored.append((d, self.codes[i], i))
        if not scored:
            return None
        d, _code, i = min(scored)
        return self._hit(i, d)


def load_grid_index() -> GridIndex:
    rows = db.session.execute(
        sa.select(Grid.id, Grid.code, Grid.unit_id, Unit.path, wkb_of(Grid.geom))
        .join(Unit, Unit.id == Grid.unit_id)
        .where(Grid.active.is_(True), Grid.geom.is_not(None))
        .order_by(Grid.id)
    ).all()
    geoms = from_wkb_many([r[4] for r in rows]) if rows else np.array([], dtype=object)
    return GridIndex([r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                     [r[3] for r in rows], geoms)


# ---------------------------------------------------------------- PostGIS


@functools.cache
def _covering_statement(within: bool) -> sa.Select[tuple[Grid]]:
    """The covering query, built once per process with the point (and subtree) as bound
    parameters: building a select with its loader options costs more Python than PostGIS
    spends answering it."""
    point = sa.func.ST_SetSRID(sa.func.ST_MakePoint(sa.bindparam("x", type_=sa.Float),
                                                    sa.bindparam("y", type_=sa.Float)), SRID)
    query = (
        sa.select(Grid)
        .options(contains_eager(Grid.unit).lazyload(Unit.parent), lazyload(Grid.members))
        .join(Unit, Unit.id == Grid.unit_id)
        .where(Grid.active.is_(True), sa.func.ST_Covers(Grid.geom, point))
        .order_by(Grid.code.collate("C"))
        .limit(1)
    )
    if within:
        query = query.where(Unit.path >= sa.bindparam("low", type_=sa.String),
                            Unit.path < sa.bindparam("high", type_=sa.String))
    return query


def pg_covering(lng: float, lat: float, within_path: str | None = None) -> GridHit | None:
    """The covering grid, loaded with its unit in the same round trip (one statement is
    most of what a match costs once PostGIS answers in a tenth of a millisecond)."""
    params: dict[str, Any] = {"x": lng, "y": lat}
    if within_path is not None:
        params.update(low=within_path, high=path_upper_bound(within_path))
    grid = db.session.execute(_covering_statement(within_path is not None),
                              params).scalars().first()
    return GridHit(grid.id, grid.code, grid.unit_id, 0.0, grid) if grid is not None else None


def pg_nearest(lng: float, lat: float, tolerance_m: float,
               within_path: str | None = None) -> GridHit | None:
    query = (
        sa.select(Grid.id, Grid.code, Grid.unit_id, wkb_of(Grid.geom))
        .where(Grid.active.is_(True),
               sa.func.ST_DWithin(Grid.geom, point_sql(lng, lat), degrees_for(tolerance_m, lat)))
    )
    if within_path is not None:
        query = query.join(Unit, Unit.id == Grid.unit_id).where(in_subtree(Unit.path, within_path))
    scored = []
    for grid_id, code, unit_id, wkb in db.session.execute(query):
        d = distance_m(shapely.from_wkb(bytes(wkb)), lng, lat)
        if d <= tolerance_m:
            scored.append((d, code, grid_id, unit_id))
    if not scored:
        return None
    d, code, grid_id, unit_id = min(scored)
    return GridHit(grid_id, code, unit_id, d)


# ---------------------------------------------------------------- unit boundaries


class UnitBoundaryIndex:
    """Imported township and village boundaries (both backends use this in memory: there
    are few of them and they are only consulted when no grid is near)."""

    def __init__(self, unit_ids: list[int], depths: list[int], codes: list[str],
                 geoms: np.ndarray) -> None:
        self.unit_ids, self.depths, self.codes, self.geoms = unit_ids, depths, codes, geoms
        shapely.prepare(self.geoms)
        self.tree = shapely.STRtree(self.geoms)
        self.by_unit = {u: i for i, u in enumerate(unit_ids)}

    def covering(self, lng: float, lat: float) -> list[int]:
        """Unit ids whose boundary covers the point, deepest level first, then lowest code."""
        hits = [int(i) for i in self.tree.query(shapely.Point(lng, lat), predicate="covered_by")]
        hits.sort(key=lambda i: (-self.depths[i], self.codes[i]))
        return [self.unit_ids[i] for i in hits]

    def boundary(self, unit_id: int) -> BaseGeometry | None:
        i = self.by_unit.get(unit_id)
        return None if i is None else self.geoms[i]


def load_boundary_index() -> UnitBoundaryIndex:
    from hierarchy.models import Level

    depth = {str(lv): lv.depth for lv in Level}
    rows = db.session.execute(
        sa.select(UnitBoundary.unit_id, Unit.level, Unit.code, wkb_of(UnitBoundary.geom))
        .join(Unit, Unit.id == UnitBoundary.unit_id).order_by(UnitBoundary.id)
    ).all()
    geoms = from_wkb_many([r[3] for r in rows]) if rows else np.array([], dtype=object)
    return UnitBoundaryIndex([r[0] for r in rows], [depth.get(str(r[1]), 0) for r in rows],
                             [r[2] for r in rows], geoms)


# ---------------------------------------------------------------- the per-process cache


class TokenCache:
    """One value per database engine, rebuilt when that database's token changes.

    Keyed by engine (weakly) so that two apps in one process — the test suite — never share
    an index, and by the ``geo_state`` token, which any change to the data replaces.
    """

    def __init__(self, build: Callable[[], Any]) -> None:
        self.build = build
        self.lock = threading.Lock()
        self.entries: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = \
            weakref.WeakKeyDictionary()

    def get(self, token: Any) -> Any:
        engine = db.engine
        entry = self.entries.get(engine)
        if entry is not None and entry[0] == token:
            return entry[1]
        with self.lock:
            entry = self.entries.get(engine)
            if entry is not None and entry[0] == token:
                return entry[1]
            value = self.build()
            self.entries[engine] = (token, value)
            return value

    def clear(self) -> None:
        with self.lock:
            self.entries.clear()


grid_indexes = TokenCache(load_grid_index)
boundary_indexes = TokenCache(load_boundary_index)


def find_covering(lng: float, lat: float, tokens: dict[str, str],
                  within_path: str | None = None) -> GridHit | None:
    if is_postgres():
        return pg_covering(lng, lat, within_path)
    return grid_indexes.get(tokens.get("grids")).covering(lng, lat, within_path)


def find_nearest(lng: float, lat: float, tolerance_m: float, tokens: dict[str, str],
                 within_path: str | None = None) -> GridHit | None:
    if tolerance_m <= 0:
        return None
    if is_postgres():
        return pg_nearest(lng, lat, tolerance_m, within_path)
    return grid_indexes.get(tokens.get("grids")).nearest(lng, lat, tolerance_m, within_path)
