"""WGS-84 ⇄ GCJ-02 ⇄ BD-09: published reference pairs, an independent implementation, round
trips under half a metre, and clear refusals of impossible coordinates."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from grids import crs
from server.core.errors import InvalidInput

# The reference vectors published with the widely used coordtransform implementations
# (README of wandergis/coordtransform), for the point (116.404, 39.915).
PUBLISHED = [
    (crs.wgs84_to_gcj02, (116.41024449916938, 39.91640428150164)),
    (crs.gcj02_to_bd09, (116.41036949371029, 39.92133699351021)),
    (crs.bd09_to_gcj02, (116.39762729119315, 39.90865673957631)),
    (crs.wgs84_to_bd09, (116.41662724378733, 39.922699552216216)),
]

china = st.tuples(st.floats(min_value=73.7, max_value=134.7),
                  st.floats(min_value=18.2, max_value=53.5))


@pytest.mark.parametrize(("fn", "expected"), PUBLISHED)
def test_published_reference_pairs(fn, expected) -> None:
    lng, lat = fn(116.404, 39.915)
    assert lng == pytest.approx(expected[0], abs=1e-12)
    assert lat == pytest.approx(expected[1], abs=1e-12)


@settings(max_examples=300, deadline=None)
@given(china)
def test_forward_transforms_agree_with_an_independent_implementation(point) -> None:
    """fast-geocn carries its own implementation of the GCJ-02 formula. (Not of BD-09: its
    ``gcj02_to_bd09`` uses π where the published formula has π·3000/180, so it disagrees with
    the reference pairs above by tens of metres; we do not use it.)"""
    from fast_geocn import coord

    lng, lat = point
    ours = crs.wgs84_to_gcj02(lng, lat)
    theirs = coord.wgs84_to_gcj02(lng, lat)
    assert crs.haversine_m(*ours, *theirs) < 0.01


@settings(max_examples=300, deadline=None)
@given(china)
def test_round_trips_within_half_a_metre(point) -> None:
    lng, lat = point
    back = crs.to_wgs84(*crs.wgs84_to_gcj02(lng, lat), "gcj02")
    assert crs.haversine_m(lng, lat, *back) < 0.5
    back = crs.to_wgs84(*crs.wgs84_to_bd09(lng, lat), "bd09")
    assert crs.haversine_m(lng, lat, *back) < 0.5
    assert crs.from_wgs84(*crs.to_wgs84(lng, lat, "gcj02"), "gcj02") == pytest.approx(
        (lng, lat), abs=5e-6)


def test_gcj02_offsets_are_hundreds_of_metres_in_liaoning() -> None:
    """If the conversion silently did nothing, matching would be ~500 m off."""
    shifted = crs.wgs84_to_gcj02(123.4305, 41.7420)
    assert 300 < crs.haversine_m(123.4305, 41.7420, *shifted) < 800


def test_outside_china_gcj02_is_the_identity() -> None:
    assert crs.wgs84_to_gcj02(2.35, 48.85) == (2.35, 48.85)
    assert crs.to_wgs84(2.35, 48.85, "gcj02") == (2.35, 48.85)


def test_vectorised_conversion_matches_the_scalar_one() -> None:
    rng = np.random.default_rng(7)
    xy = np.column_stack([rng.uniform(118, 126, 200), rng.uniform(38, 44, 200)])
    for name, forward in (("gcj02", crs.wgs84_to_gcj02), ("bd09", crs.wgs84_to_bd09)):
        converted = crs.from_wgs84_array(xy, name)
        assert np.allclose(converted, [forward(x, y) for x, y in xy], atol=1e-12, rtol=0)
        back = crs.to_wgs84_array(converted, name)
        assert np.abs(back - xy).max() < 5e-6  # < 0.5 m


def test_geometries_convert_vertex_by_vertex() -> None:
    box = shapely.box(123.4270, 41.7418, 123.4310, 41.7448)
    gcj = crs.geometry_from_wgs84(box, "gcj02")
    assert gcj.is_valid and not gcj.equals(box)
    assert crs.geometry_to_wgs84(gcj, "gcj02").equals_exact(box, tolerance=5e-6)


@pytest.mark.parametrize(("lng", "lat", "hint"), [
    (math.nan, 41.7, "finite"),
    (123.4, math.inf, "finite"),
    (200.0, 41.7, "impossible"),
    (123.4, -91.0, "impossible"),
    (41.742, 123.4305, "swapped"),
    (0.0, 0.0, "missing GPS fix"),
])
def test_impossible_coordinates_are_refused_clearly(lng: float, lat: float, hint: str) -> None:
    with pytest.raises(InvalidInput) as info:
        crs.to_wgs84(lng, lat, "wgs84")
    assert info.value.code == "invalid_coordinates" and hint in info.value.message


def test_unknown_coordinate_system() -> None:
    with pytest.raises(InvalidInput) as info:
        crs.to_wgs84(123.4, 41.7, "mars")
    assert info.value.code == "invalid_crs"


def test_distances_in_metres() -> None:
    square = shapely.box(123.4270, 41.7418, 123.4310, 41.7448)
    assert crs.distance_m(square, 123.4300, 41.7430) == 0.0
    east = crs.distance_m(square, 123.4313, 41.7430)  # 0.0003° of longitude at 41.74° N
    assert east == pytest.approx(0.0003 * 111_320 * math.cos(math.radians(41.743)), rel=1e-6)
    assert east == pytest.approx(crs.haversine_m(123.4310, 41.7430, 123.4313, 41.7430), rel=5e-3)
    assert crs.area_m2(square) == pytest.approx(333 * 333, rel=0.01)
