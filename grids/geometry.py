"""Polygons in the database and in memory.

One column type, :class:`GeomType`, stores a grid's polygon on both backends and hands back a
Shapely geometry on both: on PostgreSQL it is a PostGIS ``geometry(MULTIPOLYGON, 4326)``
(GeoAlchemy2, so ``ST_Covers`` and the GIST index work on it); on SQLite it is the same WKB in
a BLOB, with the bounding box kept in four float columns beside it for prefiltering. Code
above this module never sees the difference.

Polygons are normalised on the way in (:func:`normalise`): MultiPolygon, coordinates rounded
to 1e-7 degrees (about a centimetre) and put in canonical order, so the same shape drawn from
another starting vertex, or re-imported after a round trip through GCJ-02, hashes the same
(:func:`geometry_hash`) — which is what makes re-imports idempotent.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import shapely
import sqlalchemy as sa
from geoalchemy2 import Geometry, WKBElement
from shapely.geometry.base import BaseGeometry

from server.core.db import is_postgres

SRID = 4326
#: Decimal places kept: 1e-7 degrees is about 1 cm.
PRECISION = 7


class GeomType(sa.types.TypeDecorator[BaseGeometry]):
    """A WGS-84 MultiPolygon: PostGIS geometry on PostgreSQL, WKB bytes on SQLite.

    ``impl`` is the GeoAlchemy2 type so that its column and bind expressions (EWKB in and
    out) apply on PostgreSQL and its tooling recognises the column; SQLite gets a plain BLOB.
    """

    impl = Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False)
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect is None or dialect.name == "postgresql":
            return Geometry("MULTIPOLYGON", srid=SRID, spatial_index=False)
        return sa.LargeBinary()

    def process_bind_param(self, value: BaseGeometry | bytes | None, dialect: Any) -> Any:
        if value is None:
            return None
        # Bulk writers may pass WKB they made in one vectorised call.
        wkb = value if isinstance(value, bytes) else shapely.to_wkb(value, include_srid=False)
        if dialect.name == "postgresql":
            return WKBElement(wkb, srid=SRID)
        return wkb

    def process_result_value(self, value: Any, dialect: Any) -> BaseGeometry | None:
        if value is None:
            return None
        if isinstance(value, WKBElement):
            data = value.data
            return shapely.from_wkb(data if isinstance(data, str) else bytes(data))
        return shapely.from_wkb(bytes(value))


def wkb_of(column: Any) -> Any:
    """A select expression that yields plain WKB bytes for ``column`` on either backend.

    Used where thousands of rows are read at once (building the spatial index, exports) so
    that they can be decoded in one vectorised :func:`shapely.from_wkb` call.
    """
    if is_postgres():
        return sa.func.ST_AsBinary(column, type_=sa.LargeBinary)
    return sa.type_coerce(column, sa.LargeBinary)


def from_wkb_many(values: list[Any]) -> np.ndarray:
    return shapely.from_wkb(np.array([bytes(v) for v in values], dtype=object))


def to_multipolygon(geom: BaseGeometry) -> shapely.MultiPolygon:
    """Polygon → MultiPolygon; MultiPolygon as is; anything else is refused (ValueError)."""
    if isinstance(geom, shapely.MultiPolygon):
        return geom
    if isinstance(geom, shapely.Polygon):
        return shapely.MultiPolygon([geom])
    raise ValueError(f"a grid must be a Polygon or MultiPolygon, not a {geom.geom_type}")


def round_coordinates(geom: BaseGeometry) -> BaseGeometry:
    return shapely.transform(geom, lambda xy: np.round(xy, PRECISION))


def normalise(geom: BaseGeometry) -> shapely.MultiPolygon:
    """What is stored: MultiPolygon, rounded to ~1 cm, in canonical vertex order."""
    return shapely.normalize(to_multipolygon(round_coordinates(geom)))  # type: ignore[return-value]


def normalise_many(geoms: np.ndarray) -> np.ndarray:
    """:func:`normalise` for an array of geometries at once (imports)."""
    geoms = shapely.transform(geoms, lambda xy: np.round(xy, PRECISION))
    types = shapely.get_type_id(geoms)
    if not np.isin(types, (3, 6)).all():
        bad = geoms[~np.isin(types, (3, 6))][0]
        raise ValueError(f"a grid must be a Polygon or MultiPolygon, not a {bad.geom_type}")
    single = types == 3
    if single.any():
        geoms = geoms.copy()
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(single.sum()))
    return shapely.normalize(geoms)


def geometry_hash(geom: BaseGeometry, *, normalised: bool = False) -> str:
    """SHA-256 of the normalised WKB: equal for the same shape however it was written down.

    ``normalised``: ``geom`` already came out of :func:`normalise` (skip doing it again)."""
    geom = geom if normalised else normalise(geom)
    return hashlib.sha256(shapely.to_wkb(geom, include_srid=False)).hexdigest()


def bbox_columns(geom: BaseGeometry | None) -> dict[str, float | None]:
    if geom is None or geom.is_empty:
        return {"min_lng": None, "min_lat": None, "max_lng": None, "max_lat": None}
    min_lng, min_lat, max_lng, max_lat = geom.bounds
    return {"min_lng": min_lng, "min_lat": min_lat, "max_lng": max_lng, "max_lat": max_lat}


def point_sql(lng: float, lat: float) -> Any:
    """A PostGIS point with the right SRID (GeoAlchemy2 would otherwise leave it at 0)."""
    return sa.func.ST_SetSRID(sa.func.ST_MakePoint(lng, lat), SRID)
