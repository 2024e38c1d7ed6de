"""Geometry and direction words of `openvirl.world.geometry` (no city needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openvirl.world.geometry import (
    COMPASS_WORDS,
    EGOCENTRIC_WORDS,
    RELATIVE_TURN_WORDS,
    LocalProjection,
    bearing_deg,
    compass_word,
    decode_polyline,
    destination_point,
    egocentric_relation,
    encode_polyline,
    haversine_m,
    heading_change_deg,
    relative_turn,
    turn_maneuver,
)

headings = st.floats(min_value=0.0, max_value=359.999, allow_nan=False)


def test_haversine_known_distance_and_arrays():
    # One degree of latitude is about 111.2 km on the mean sphere.
    assert haversine_m(0.0, 0.0, 1.0, 0.0) == pytest.approx(111_195, rel=1e-3)
    # Empire State Building to Grand Central: about 860 m.
    assert 840 < haversine_m(40.7484, -73.9857, 40.7527, -73.9772) < 880
    out = haversine_m(
        np.array([0.0, 0.0]), np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, 1.0])
    )
    assert isinstance(out, np.ndarray) and out.shape == (2,)
    assert out[0] == pytest.approx(out[1], rel=1e-9)


def test_bearing_cardinal_directions():
    assert bearing_deg(0, 0, 1, 0) == pytest.approx(0.0)
    assert bearing_deg(0, 0, 0, 1) == pytest.approx(90.0)
    assert bearing_deg(0, 0, -1, 0) == pytest.approx(180.0)
    assert bearing_deg(0, 0, 0, -1) == pytest.approx(270.0)


@settings(max_examples=60, deadline=None)
@given(
    lat=st.floats(-60, 60),
    lon=st.floats(-170, 170),
    bearing=headings,
    dist=st.floats(1.0, 5000.0),
)
def test_destination_point_round_trip(lat, lon, bearing, dist):
    lat2, lon2 = destination_point(lat, lon, bearing, dist)
    assert haversine_m(lat, lon, lat2, lon2) == pytest.approx(dist, rel=1e-6, abs=1e-3)
    back = bearing_deg(lat, lon, lat2, lon2)
    assert abs(heading_change_deg(bearing, back)) < 1e-3


def test_compass_words_bins():
    assert [compass_word(h) for h in (0, 45, 90, 135, 180, 225, 270, 315)] == list(COMPASS_WORDS)
    assert compass_word(337.5) == "north"
    assert compass_word(22.4) == "north"
    assert compass_word(22.5) == "northeast"
    assert compass_word(-90) == "west"
    assert compass_word(720 + 90) == "east"


def test_egocentric_relation_bins():
    heading = 100.0
    expected = dict(zip(range(0, 360, 45), EGOCENTRIC_WORDS, strict=True))
    for offset, word in expected.items():
        assert egocentric_relation(heading + offset, heading) == word
    assert egocentric_relation(10, 350) == "front"  # 20° to the right across north
    assert egocentric_relation(300, 20) == "left"  # -80°
    assert egocentric_relation(20 + 200, 20) == "behind"


def test_relative_turn_wraps_across_north():
    assert relative_turn(270, 0) == "right"  # the reference's wrap bug said "left"
    assert relative_turn(10, 350) == "slightly left"  # the reference said "right"
    assert relative_turn(350, 10) == "slightly right"
    assert relative_turn(0, 270) == "left"
    assert relative_turn(90, 90) == "slightly right"  # d = 0
    assert relative_turn(0, 180) == "left"  # d = -180
    assert heading_change_deg(270, 0) == 90
    assert heading_change_deg(10, 350) == -20


@settings(max_examples=200, deadline=None)
@given(old=headings, d=st.floats(-179.9, 179.9))
def test_relative_turn_matches_thresholds(old, d):
    new = (old + d) % 360.0
    change = heading_change_deg(old, new)
    assert change == pytest.approx(d, abs=1e-6)
    word = relative_turn(old, new)
    assert word in RELATIVE_TURN_WORDS
    if abs(abs(d) - 45) < 1e-6 or abs(d) < 1e-6:
        return  # on a threshold: float rounding may pick either side
    if d < -45:
        assert word == "left"
    elif d < 0:
        assert word == "slightly left"
    elif d <= 45:
        assert word == "slightly right"
    else:
        assert word == "right"


def test_turn_maneuver_words():
    assert turn_maneuver(0, 5) == "straight"
    assert turn_maneuver(0, 30) == "slightly right"
    assert turn_maneuver(0, 270) == "left"
    assert turn_maneuver(350, 200) == "sharply left"
    assert turn_maneuver(0, 180) == "u-turn"


def test_polyline_encoding_matches_google_example():
    points = [(38.5, -120.2), (40.7, -120.95), (43.252, -126.453)]
    encoded = encode_polyline(points)
    assert encoded == "_p~iF~ps|U_ulLnnqC_mqNvxq`@"
    assert np.allclose(decode_polyline(encoded), points)


@settings(max_examples=40, deadline=None)
@given(dx=st.floats(-3000, 3000), dy=st.floats(-3000, 3000))
def test_local_projection_is_metric_and_invertible(dx, dy):
    proj = LocalProjection(40.75, -73.98)
    lat, lon = proj.to_latlon(dx, dy)
    x, y = proj.to_xy(lat, lon)
    assert x == pytest.approx(dx, abs=1e-4) and y == pytest.approx(dy, abs=1e-4)
    # Distance from the centre is exact in an azimuthal equidistant projection (on the
    # ellipsoid; the sphere differs by < 0.5%).
    assert haversine_m(40.75, -73.98, lat, lon) == pytest.approx(
        math.hypot(dx, dy), rel=5e-3, abs=1e-3
    )
    if math.hypot(dx, dy) > 1:
        north_up = math.degrees(math.atan2(dx, dy)) % 360
        assert abs(heading_change_deg(north_up, bearing_deg(40.75, -73.98, lat, lon))) < 0.5
