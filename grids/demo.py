"""Clearly labelled demo grids inside a real county boundary.

Real grid polygons belong to each county's grid office; the demo cannot ship them. It makes
its own instead, inside the real county outline (:mod:`grids.boundaries`), and labels every
one as a demo (``"demo": true``, "演示" in the name) so nobody mistakes them for survey data.

Each village gets the ground nearest its centre (a Voronoi cell among the villages, kept
within ``radius_m`` of the centre and inside the county); that ground is cut into
``per_village`` strips of equal area, west to east. Villages without a centre are placed on
a lattice across the county's interior. The result is an ordinary GeoJSON FeatureCollection
(properties ``code``, ``name``, ``unit``), so it goes through the same importer and checks
as an administrator's file: :func:`import_demo_grids`.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from hierarchy.models import User

from .boundaries import boundary_index
from .crs import degrees_for, metres_per_degree
from .io import RawFeature, SourceFile

DEMO_LABEL = "演示"


def default_code(village_code: str, n: int) -> str:
    return f"{village_code}-{n:02d}"


def _village_fields(village: Any) -> tuple[str, str, tuple[float, float] | None]:
    """(code, name, centre) from a code, a (code, name[, lng, lat]) tuple or an object."""
    if isinstance(village, str):
        return village, village, None
    if isinstance(village, tuple | list):
        code, name = str(village[0]), str(village[1]) if len(village) > 1 else str(village[0])
        centre = (float(village[2]), float(village[3])) if len(village) >= 4 else None
        return code, name, centre
    code, name = str(village.code), str(getattr(village, "name", village.code))
    lng, lat = getattr(village, "lng", None), getattr(village, "lat", None)
    return code, name, (float(lng), float(lat)) if lng is not None and lat is not None else None


def _lattice_centres(county: BaseGeometry, count: int) -> list[tuple[float, float]]:
    """``count`` points spread over the county's interior, west to east, south to north."""
    inner = county.buffer(-degrees_for(300, county.centroid.y)) or county
    if inner.is_empty:
        inner = county
    min_x, min_y, max_x, max_y = inner.bounds
    step = math.sqrt(inner.area / max(count, 1)) * 0.9
    while step > 1e-5:
        xs = np.arange(min_x + step / 2, max_x, step)
        ys = np.arange(min_y + step / 2, max_y, step)
        points = [shapely.Point(x, y) for y in ys for x in xs]
        inside = [p for p in points if inner.contains(p)]
        if len(inside) >= count:
            picked = [inside[int(i * len(inside) / count)] for i in range(count)]
            return [(p.x, p.y) for p in picked]
        step *= 0.8
    c = county.representative_point()
    return [(c.x, c.y)] * count


def _strips(area: BaseGeometry, parts: int) -> list[BaseGeometry]:
    """Cut ``area`` into ``parts`` west-to-east strips of (nearly) equal area."""
    if parts <= 1:
        return [area]
    min_x, min_y, max_x, max_y = area.bounds
    total = area.area
    cuts = [min_x]
    for k in range(1, parts):
        lo, hi = cuts[-1], max_x
        for _ in range(40):
            mid = (lo + hi) / 2
            if area.intersection(shapely.box(min_x, min_y, mid, max_y)).area < total * k / parts:
                lo = mid
            else:
                hi = mid
        cuts.append((lo + hi) / 2)
    cuts.append(max_x)
    return [area.intersection(shapely.box(a, min_y, b, max_y))
            for a, b in itertools.pairwise(cuts)]


def generate_demo_grids(
    county_code: str, villages: Sequence[Any], per_village: int | Mapping[str, int] = 3, *,
    radius_m: float = 450.0, code_for: Callable[[str, int], str] = default_code,
) -> dict[str, Any]:
    """Demo grid polygons for ``villages`` of the county ``county_code`` (6 digits).

    ``villages``: unit codes, ``(code, name)`` or ``(code, name, lng, lat)`` tuples, or objects
    with ``code``, ``name`` and optionally ``lng``/``lat`` (WGS-84 centre). ``per_village``:
    grids per village, or a mapping from village code to its count. Returns a GeoJSON
    FeatureCollection in WGS-84 with properties ``code``, ``name``, ``unit`` and
    ``demo: true``. Deterministic: the same arguments give the same polygons.
    """
    county = boundary_index((county_code[:2],)).boundary(county_code)
    if county is None:
        raise KeyError(f"no boundary for county {county_code} in the boundaries package")
    fields = [_village_fields(v) for v in villages]
    missing = [i for i, (_, _, centre) in enumerate(fields) if centre is None]
    lattice = iter(_lattice_centres(county, len(missing))) if missing else iter(())
    centres = [centre if centre is not None else next(lattice) for _, _, centre in fields]
    points = shapely.MultiPoint([shapely.Point(c) for c in centres])
    envelope = shapely.box(*county.bounds).buffer(0.1)
    cells = shapely.voronoi_polygons(points, extend_to=envelope) if len(centres) > 1 \
        else shapely.GeometryCollection([envelope])
    features = []
    for (code, name, _), centre in zip(fields, centres, strict=True):
        point = shapely.Point(centre)
        cell = next((c for c in shapely.get_parts(cells) if c.covers(point)), envelope)
        mx, my = metres_per_degree(centre[1])
        reach = shapely.box(centre[0] - radius_m / mx, centre[1] - radius_m / my,
                            centre[0] + radius_m / mx, centre[1] + radius_m / my)
        ground = shapely.intersection_all([cell, reach, county])
        if ground.is_empty:
            continue
        count = per_village.get(code, 1) if isinstance(per_village, Mapping) else per_village
        for n, strip in enumerate(_strips(ground, count), start=1):
            polygons = [p for p in shapely.get_parts(strip) if p.geom_type == "Polygon"
                        and p.area > 0]
            if not polygons:
                continue
            features.append({
                "type": "Feature",
                "geometry": shapely.geometry.mapping(shapely.MultiPolygon(polygons)),
                "properties": {"code": code_for(code, n), "unit": code, "demo": True,
                               "name": f"{name}第{n}网格（{DEMO_LABEL}）"},
            })
    return {"type": "FeatureCollection", "name": f"{DEMO_LABEL}网格 {county_code}",
            "features": features}


def as_source(collection: dict[str, Any]) -> SourceFile:
    """A generated FeatureCollection as the importer's input (no file round trip)."""
    return SourceFile([RawFeature(i, {k.lower(): v for k, v in f["properties"].items()},
                                  f["geometry"]) for i, f in enumerate(collection["features"], 1)],
                      "wgs84", ["generated demo grids"])


def import_demo_grids(county_code: str, villages: Sequence[Any],
                      per_village: int | Mapping[str, int] = 3, *, actor: User | None = None,
                      **options: Any) -> Any:
    """Generate and import demo grids in the caller's transaction; returns the import report.

    Idempotent like any import: running the demo seed again changes nothing.
    """
    from .importer import import_grids

    collection = generate_demo_grids(county_code, villages, per_village, **options)
    return import_grids(as_source(collection), actor=actor,
                        source_name=f"demo grids {county_code}")
