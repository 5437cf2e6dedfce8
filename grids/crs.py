"""Coordinate systems: WGS-84 (GPS), GCJ-02 (the national "Mars" datum of Chinese web maps
and many phones) and BD-09 (Baidu). Stored data is WGS-84; input is converted at the edge.

GCJ-02 has no closed-form inverse; :func:`gcj02_to_wgs84` iterates the forward transform
until it agrees to well under a centimetre.

The scalar functions serve single points (a ticket, a check-in); the ``*_array`` and
``geometry_*`` functions convert whole polygons at once (imports, exports, maps) with the very
same formulas, vectorised with numpy.
"""

from __future__ import annotations

import math
from typing import TypeVar

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from server.core.errors import InvalidInput

#: The coordinate systems the API and the importers accept, by their API names.
CRS_CHOICES = ("wgs84", "gcj02", "bd09")

G = TypeVar("G", bound=BaseGeometry)

_A = 6378245.0
_EE = 0.00669342162296594323
_X_PI = math.pi * 3000.0 / 180.0


def out_of_china(lng: float, lat: float) -> bool:
    return not (72.004 <= lng <= 137.8347 and 0.8293 <= lat <= 55.8271)


def _transform_lat(x: float, y: float) -> float:
    ret = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return ret


def _transform_lng(x: float, y: float) -> float:
    ret = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    ret += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    ret += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    ret += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return ret


def wgs84_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    if out_of_china(lng, lat):
        return lng, lat
    dlat = _transform_lat(lng - 105.0, lat - 35.0)
    dlng = _transform_lng(lng - 105.0, lat - 35.0)
    radlat = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(radlat) ** 2
    sqrtmagic = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * math.pi)
    dlng = (dlng * 180.0) / (_A / sqrtmagic * math.cos(radlat) * math.pi)
    return lng + dlng, lat + dlat


def gcj02_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    if out_of_china(lng, lat):
        return lng, lat
    wlng, wlat = lng, lat
    for _ in range(30):
        glng, glat = wgs84_to_gcj02(wlng, wlat)
        dlng, dlat = glng - lng, glat - lat
        wlng, wlat = wlng - dlng, wlat - dlat
        if abs(dlng) < 1e-9 and abs(dlat) < 1e-9:
            break
    return wlng, wlat


def bd09_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    x, y = lng - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta), z * math.sin(theta)


def gcj02_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def check_lnglat(lng: float, lat: float) -> None:
    """Refuse what cannot be a place: non-numbers, out of range, the 0,0 of a missing fix.

    The message says what is wrong and, for the common mistake of swapped axes, says so.
    """
    if not (isinstance(lng, int | float) and isinstance(lat, int | float)) \
            or not (math.isfinite(lng) and math.isfinite(lat)):
        raise InvalidInput("coordinates must be finite numbers", code="invalid_coordinates")
    if not (-180.0 <= lng <= 180.0 and -90.0 <= lat <= 90.0):
        hint = ""
        if -90.0 <= lng <= 90.0 and -180.0 <= lat <= 180.0:
            hint = " — are longitude and latitude swapped?"
        raise InvalidInput(
            f"impossible coordinates: lng {lng}, lat {lat} (lng −180…180, lat −90…90){hint}",
            code="invalid_coordinates",
        )
    if lng == 0.0 and lat == 0.0:
        raise InvalidInput("coordinates 0, 0 are a missing GPS fix, not a place",
                           code="invalid_coordinates")


def check_crs(crs: str) -> str:
    if crs not in CRS_CHOICES:
        raise InvalidInput(
            f"unknown coordinate system {crs!r}; use one of {', '.join(CRS_CHOICES)}",
            code="invalid_crs")
    return crs


def wgs84_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    return gcj02_to_bd09(*wgs84_to_gcj02(lng, lat))


def bd09_to_wgs84(lng: float, lat: float) -> tuple[float, float]:
    return gcj02_to_wgs84(*bd09_to_gcj02(lng, lat))


def from_wgs84(lng: float, lat: float, crs: str) -> tuple[float, float]:
    """A stored WGS-84 point in the coordinate system a client asked for (maps, exports)."""
    check_crs(crs)
    if crs == "gcj02":
        return wgs84_to_gcj02(lng, lat)
    if crs == "bd09":
        return wgs84_to_bd09(lng, lat)
    return lng, lat


def to_wgs84(lng: float, lat: float, crs: str) -> tuple[float, float]:
    """Validate a coordinate pair and convert it to WGS-84."""
    check_lnglat(lng, lat)
    if crs == "wgs84":
        return lng, lat
    if crs == "gcj02":
        return gcj02_to_wgs84(lng, lat)
    if crs == "bd09":
        return gcj02_to_wgs84(*bd09_to_gcj02(lng, lat))
    raise InvalidInput(f"unknown coordinate system {crs!r}", code="invalid_crs")


def haversine_m(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    """Great-circle distance in metres (good to ~0.5 % at check-in distances)."""
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(min(1.0, math.sqrt(a)))


# ---------------------------------------------------------------- arrays and geometries


def _in_china(xy: np.ndarray) -> np.ndarray:
    x, y = xy[:, 0], xy[:, 1]
    return (x >= 72.004) & (x <= 137.8347) & (y >= 0.8293) & (y <= 55.8271)


def _gcj_offset(xy: np.ndarray) -> np.ndarray:
    """The GCJ-02 offset (degrees) at WGS-84 points: the forward formula, vectorised."""
    x = xy[:, 0] - 105.0
    y = xy[:, 1] - 35.0
    pi = math.pi
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * np.sqrt(np.abs(x))
    dlat += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlat += (20.0 * np.sin(y * pi) + 40.0 * np.sin(y / 3.0 * pi)) * 2.0 / 3.0
    dlat += (160.0 * np.sin(y / 12.0 * pi) + 320 * np.sin(y * pi / 30.0)) * 2.0 / 3.0
    dlng = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * np.sqrt(np.abs(x))
    dlng += (20.0 * np.sin(6.0 * x * pi) + 20.0 * np.sin(2.0 * x * pi)) * 2.0 / 3.0
    dlng += (20.0 * np.sin(x * pi) + 40.0 * np.sin(x / 3.0 * pi)) * 2.0 / 3.0
    dlng += (150.0 * np.sin(x / 12.0 * pi) + 300.0 * np.sin(x / 30.0 * pi)) * 2.0 / 3.0
    radlat = xy[:, 1] / 180.0 * pi
    magic = 1 - _EE * np.sin(radlat) ** 2
    sqrtmagic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_A * (1 - _EE)) / (magic * sqrtmagic) * pi)
    dlng = (dlng * 180.0) / (_A / sqrtmagic * np.cos(radlat) * pi)
    return np.column_stack([dlng, dlat])


def _wgs_to_gcj_array(xy: np.ndarray) -> np.ndarray:
    out = xy.copy()
    inside = _in_china(xy)
    if inside.any():
        out[inside] = xy[inside] + _gcj_offset(xy[inside])
    return out


def _gcj_to_wgs_array(xy: np.ndarray) -> np.ndarray:
    out = xy.copy()
    inside = _in_china(xy)
    if not inside.any():
        return out
    target = xy[inside]
    guess = target.copy()
    for _ in range(30):
        delta = (guess + _gcj_offset(guess)) - target
        guess = guess - delta
        if np.abs(delta).max() < 1e-9:
            break
    out[inside] = guess
    return out


def _bd_to_gcj_array(xy: np.ndarray) -> np.ndarray:
    x, y = xy[:, 0] - 0.0065, xy[:, 1] - 0.006
    z = np.sqrt(x * x + y * y) - 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _X_PI)
    return np.column_stack([z * np.cos(theta), z * np.sin(theta)])


def _gcj_to_bd_array(xy: np.ndarray) -> np.ndarray:
    x, y = xy[:, 0], xy[:, 1]
    z = np.sqrt(x * x + y * y) + 0.00002 * np.sin(y * _X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _X_PI)
    return np.column_stack([z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006])


def to_wgs84_array(xy: np.ndarray, crs: str) -> np.ndarray:
    """An (n, 2) array of lng/lat in ``crs`` as WGS-84."""
    check_crs(crs)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if crs == "gcj02":
        return _gcj_to_wgs_array(xy)
    if crs == "bd09":
        return _gcj_to_wgs_array(_bd_to_gcj_array(xy))
    return xy.copy()


def from_wgs84_array(xy: np.ndarray, crs: str) -> np.ndarray:
    """An (n, 2) array of WGS-84 lng/lat in ``crs``."""
    check_crs(crs)
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    if crs == "gcj02":
        return _wgs_to_gcj_array(xy)
    if crs == "bd09":
        return _gcj_to_bd_array(_wgs_to_gcj_array(xy))
    return xy.copy()


def geometry_to_wgs84(geom: G, crs: str) -> G:
    """Every vertex of ``geom`` converted from ``crs`` to WGS-84 (topology kept as is)."""
    if crs == "wgs84":
        return geom
    return shapely.transform(geom, lambda xy: to_wgs84_array(xy, crs))  # type: ignore[return-value]


def geometry_from_wgs84(geom: G, crs: str) -> G:
    if crs == "wgs84":
        return geom
    return shapely.transform(geom, lambda xy: from_wgs84_array(xy, crs))  # type: ignore[return-value]


# ---------------------------------------------------------------- metres near a point

#: Metres per degree of latitude (WGS-84 mean; good to 0.5 % anywhere in China).
M_PER_DEG_LAT = 110_950.0


def metres_per_degree(lat: float) -> tuple[float, float]:
    """Metres per degree of longitude and of latitude near ``lat`` (a local flat projection).

    Grids are a few hundred metres across, so an equirectangular projection about the point
    in question errs by well under a metre at the distances that matter here (tolerances of
    tens of metres); both database backends use this same function so they agree exactly.
    """
    return 111_320.0 * math.cos(math.radians(lat)), M_PER_DEG_LAT


def local_metres(geom: G, lng0: float, lat0: float) -> G:
    """``geom`` in metres on a plane tangent at (lng0, lat0)."""
    mx, my = metres_per_degree(lat0)
    return shapely.transform(  # type: ignore[return-value]
        geom, lambda xy: np.column_stack([(xy[:, 0] - lng0) * mx, (xy[:, 1] - lat0) * my]))


def area_m2(geom: BaseGeometry) -> float:
    """Approximate area in square metres (local projection at the geometry's centre)."""
    if geom.is_empty:
        return 0.0
    c = geom.centroid
    return float(local_metres(geom, c.x, c.y).area)


def distance_m(geom: BaseGeometry, lng: float, lat: float) -> float:
    """Shortest distance in metres from the point to ``geom`` (0 when it covers the point)."""
    local = local_metres(geom, lng, lat)
    return float(local.distance(shapely.Point(0.0, 0.0)))


def degrees_for(metres: float, lat: float) -> float:
    """A distance in degrees that is at least ``metres`` in every direction near ``lat``."""
    mx, my = metres_per_degree(min(abs(lat), 89.0))
    return metres / min(mx, my)
