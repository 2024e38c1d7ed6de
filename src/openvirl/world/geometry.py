"""Distances, bearings, a local metric projection and the direction words agents speak in.

Headings and bearings are degrees clockwise from north in [0, 360). Distances are metres on a
sphere of radius `EARTH_RADIUS_M` (error below 0.5% anywhere, far less inside one city).
Nothing here needs the city's graph, so the navigation env can import it alone.
"""

from __future__ import annotations

import math
from typing import Any, overload

import numpy as np

EARTH_RADIUS_M = 6_371_008.8
"""Mean earth radius (IUGG), metres."""

COMPASS_WORDS = (
    "north",
    "northeast",
    "east",
    "southeast",
    "south",
    "southwest",
    "west",
    "northwest",
)
"""The 8 absolute directions, clockwise from north, each covering a 45° bin."""

EGOCENTRIC_WORDS = (
    "front",
    "right front",
    "right",
    "right behind",
    "behind",
    "left behind",
    "left",
    "left front",
)
"""The 8 egocentric relations of V-IRL, clockwise from straight ahead, 45° bins."""

RELATIVE_TURN_WORDS = ("left", "slightly left", "slightly right", "right")
"""The 4 relative turn words of the V-IRL navigation task."""

SLIGHT_TURN_MAX_DEG = 45.0
"""A heading change of at most this many degrees is a "slightly" turn."""

STRAIGHT_MAX_DEG = 15.0
"""`turn_maneuver` calls a heading change below this many degrees "straight"."""

SHARP_TURN_MIN_DEG = 135.0
"""`turn_maneuver` calls a heading change above this many degrees "sharp"."""

U_TURN_MIN_DEG = 170.0
"""`turn_maneuver` calls a heading change above this many degrees a "u-turn"."""


@overload
def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float: ...
@overload
def haversine_m(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray: ...
def haversine_m(lat1, lon1, lat2, lon2):
    """Great-circle distance between two points.

    Scalars in give a float out; arrays (broadcast together) give an array out.

    Parameters
    ----------
    lat1, lon1
        First point, degrees.
    lat2, lon2
        Second point, degrees.

    Returns
    -------
    float or numpy.ndarray
        Distance, metres.
    """
    if all(isinstance(v, (int, float)) for v in (lat1, lon1, lat2, lon2)):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        dp, dl = p2 - p1, math.radians(lon2 - lon1)
        a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
        return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.subtract(lon2, lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.minimum(1.0, np.sqrt(a)))


@overload
def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float: ...
@overload
def bearing_deg(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> np.ndarray: ...
def bearing_deg(lat1, lon1, lat2, lon2):
    """Initial bearing of the great circle from point 1 to point 2.

    Scalars in give a float out; arrays give an array out. Identical points give 0.

    Parameters
    ----------
    lat1, lon1
        Start point, degrees.
    lat2, lon2
        End point, degrees.

    Returns
    -------
    float or numpy.ndarray
        Bearing, degrees clockwise from north in [0, 360).
    """
    if all(isinstance(v, (int, float)) for v in (lat1, lon1, lat2, lon2)):
        p1, p2 = math.radians(lat1), math.radians(lat2)
        dl = math.radians(lon2 - lon1)
        y = math.sin(dl) * math.cos(p2)
        x = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
        return math.degrees(math.atan2(y, x)) % 360.0
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dl = np.radians(np.subtract(lon2, lon1))
    y = np.sin(dl) * np.cos(p2)
    x = np.cos(p1) * np.sin(p2) - np.sin(p1) * np.cos(p2) * np.cos(dl)
    return np.degrees(np.arctan2(y, x)) % 360.0


def destination_point(
    lat: float, lon: float, bearing: float, distance_m: float
) -> tuple[float, float]:
    """Point reached by walking `distance_m` along a great circle from (`lat`, `lon`).

    Parameters
    ----------
    lat, lon
        Start point, degrees.
    bearing
        Initial bearing, degrees clockwise from north.
    distance_m
        Distance to walk, metres.

    Returns
    -------
    tuple[float, float]
        The end point (lat, lon), degrees.
    """
    delta = distance_m / EARTH_RADIUS_M  # angular distance, radians
    theta = math.radians(bearing)
    p1, l1 = math.radians(lat), math.radians(lon)
    p2 = math.asin(
        math.sin(p1) * math.cos(delta) + math.cos(p1) * math.sin(delta) * math.cos(theta)
    )
    l2 = l1 + math.atan2(
        math.sin(theta) * math.sin(delta) * math.cos(p1),
        math.cos(delta) - math.sin(p1) * math.sin(p2),
    )
    return math.degrees(p2), (math.degrees(l2) + 540.0) % 360.0 - 180.0


def xy_bearing_deg(dx: float, dy: float) -> float:
    """Bearing of a displacement in a local metric frame (x east, y north).

    Parameters
    ----------
    dx, dy
        Displacement east and north, metres.

    Returns
    -------
    float
        Bearing, degrees clockwise from north in [0, 360); 0 for a zero displacement.
    """
    return math.degrees(math.atan2(dx, dy)) % 360.0


class LocalProjection:
    """Azimuthal equidistant projection centred on a city: x metres east, y metres north.

    Distances and bearings from the centre are exact; over a city-sized extract (a few km)
    the scale error elsewhere stays below 0.01%, so planar geometry in (x, y) is metric.

    Parameters
    ----------
    center_lat, center_lon
        Centre of the projection, degrees.
    """

    def __init__(self, center_lat: float, center_lon: float) -> None:
        from pyproj import Transformer

        self.center_lat = float(center_lat)
        self.center_lon = float(center_lon)
        crs = (
            f"+proj=aeqd +lat_0={self.center_lat} +lon_0={self.center_lon} "
            "+x_0=0 +y_0=0 +ellps=WGS84 +units=m +no_defs"
        )
        self._forward = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
        self._inverse = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)

    @overload
    def to_xy(self, lat: float, lon: float) -> tuple[float, float]: ...
    @overload
    def to_xy(self, lat: Any, lon: Any) -> tuple[np.ndarray, np.ndarray]: ...
    def to_xy(self, lat, lon):
        """Project degrees to local metres.

        Parameters
        ----------
        lat, lon
            Point(s), degrees; scalars or arrays.

        Returns
        -------
        tuple
            (x, y), metres east and north of the centre; floats for scalars, arrays otherwise.
        """
        x, y = self._forward.transform(lon, lat)
        if isinstance(x, float):
            return x, y
        return np.asarray(x, dtype=float), np.asarray(y, dtype=float)

    @overload
    def to_latlon(self, x: float, y: float) -> tuple[float, float]: ...
    @overload
    def to_latlon(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]: ...
    def to_latlon(self, x, y):
        """Unproject local metres to degrees.

        Parameters
        ----------
        x, y
            Point(s), metres east and north of the centre; scalars or arrays.

        Returns
        -------
        tuple
            (lat, lon), degrees; floats for scalars, arrays otherwise.
        """
        lon, lat = self._inverse.transform(x, y)
        if isinstance(lat, float):
            return lat, lon
        return np.asarray(lat, dtype=float), np.asarray(lon, dtype=float)

    def __reduce__(self):
        # Transformers do not pickle; rebuild from the centre.
        return (LocalProjection, (self.center_lat, self.center_lon))


def compass_word(heading: float) -> str:
    """Name the absolute 8-way direction of a heading.

    Bins are 45° wide and centred on the words: north covers [337.5, 22.5).

    Parameters
    ----------
    heading
        Degrees clockwise from north (any real value; it is wrapped).

    Returns
    -------
    str
        One of `COMPASS_WORDS`.
    """
    return COMPASS_WORDS[int(((heading % 360.0) + 22.5) // 45.0) % 8]


def egocentric_relation(bearing_to_target: float, heading: float) -> str:
    """Say where a target lies for a walker facing `heading` (V-IRL's 8 relations).

    The relative angle `bearing_to_target - heading` is wrapped to [0, 360) and binned in 45°
    bins centred on the words: front covers [-22.5, 22.5), right front [22.5, 67.5), right
    [67.5, 112.5), right behind [112.5, 157.5), behind [157.5, 202.5), and so on to left front
    [292.5, 337.5).

    Parameters
    ----------
    bearing_to_target
        Bearing from the walker to the target, degrees clockwise from north.
    heading
        The walker's heading, degrees clockwise from north.

    Returns
    -------
    str
        One of `EGOCENTRIC_WORDS`.
    """
    relative = (bearing_to_target - heading) % 360.0
    return EGOCENTRIC_WORDS[int((relative + 22.5) // 45.0) % 8]


def heading_change_deg(old: float, new: float) -> float:
    """Signed change from heading `old` to heading `new`, wrapped across north.

    `d = ((new - old + 540) % 360) - 180`, so 270 → 0 is +90 (a right turn) and 10 → 350 is
    -20 (slightly left). A reversal gives -180.

    Parameters
    ----------
    old, new
        Headings, degrees clockwise from north.

    Returns
    -------
    float
        The change, degrees in [-180, 180); positive turns right (clockwise).
    """
    return ((new - old + 540.0) % 360.0) - 180.0


def relative_turn(old: float, new: float) -> str:
    """The 4-word relative turn of the V-IRL navigation task, with wrap-around across north.

    With `d = heading_change_deg(old, new)`:

    ============================  =================
    condition                     word
    ============================  =================
    d < -45                       ``left``
    -45 <= d < 0                  ``slightly left``
    0 <= d <= 45                  ``slightly right``
    d > 45                        ``right``
    ============================  =================

    This fixes the reference's bug (it used `new - old` unwrapped, so 270 → 0 read "left").

    Parameters
    ----------
    old
        Heading before the turn, degrees clockwise from north.
    new
        Heading after the turn, degrees clockwise from north.

    Returns
    -------
    str
        One of `RELATIVE_TURN_WORDS`.
    """
    d = heading_change_deg(old, new)
    if d < -SLIGHT_TURN_MAX_DEG:
        return "left"
    if d < 0:
        return "slightly left"
    if d <= SLIGHT_TURN_MAX_DEG:
        return "slightly right"
    return "right"


def turn_maneuver(old: float, new: float) -> str:
    """A finer turn word for written directions, with wrap-around across north.

    With `a = |heading_change_deg(old, new)|`: ``straight`` below `STRAIGHT_MAX_DEG` (15°),
    ``slightly left|right`` up to 45°, ``left|right`` up to `SHARP_TURN_MIN_DEG` (135°),
    ``sharply left|right`` up to `U_TURN_MIN_DEG` (170°), then ``u-turn``.

    Parameters
    ----------
    old, new
        Headings before and after, degrees clockwise from north.

    Returns
    -------
    str
        The maneuver word.
    """
    d = heading_change_deg(old, new)
    a = abs(d)
    side = "right" if d >= 0 else "left"
    if a < STRAIGHT_MAX_DEG:
        return "straight"
    if a <= SLIGHT_TURN_MAX_DEG:
        return f"slightly {side}"
    if a <= SHARP_TURN_MIN_DEG:
        return side
    if a < U_TURN_MIN_DEG:
        return f"sharply {side}"
    return "u-turn"


def polyline_length_m(points: list[tuple[float, float]]) -> float:
    """Length of a polyline of (lat, lon) points, metres (sum of great-circle legs)."""
    if len(points) < 2:
        return 0.0
    arr = np.asarray(points, dtype=float)
    return float(np.sum(haversine_m(arr[:-1, 0], arr[:-1, 1], arr[1:, 0], arr[1:, 1])))


def encode_polyline(points: list[tuple[float, float]], *, precision: int = 5) -> str:
    """Encode (lat, lon) points in Google's encoded-polyline format (V-IRL's `polyline`).

    Parameters
    ----------
    points
        The (lat, lon) points, degrees.
    precision
        Decimal digits kept (Google uses 5).

    Returns
    -------
    str
        The encoded polyline.
    """
    factor = 10**precision
    out: list[str] = []
    prev_lat = prev_lon = 0
    for lat, lon in points:
        ilat, ilon = round(lat * factor), round(lon * factor)
        for delta in (ilat - prev_lat, ilon - prev_lon):
            value = ~(delta << 1) if delta < 0 else delta << 1
            while value >= 0x20:
                out.append(chr((0x20 | (value & 0x1F)) + 63))
                value >>= 5
            out.append(chr(value + 63))
        prev_lat, prev_lon = ilat, ilon
    return "".join(out)


def decode_polyline(text: str, *, precision: int = 5) -> list[tuple[float, float]]:
    """Decode Google's encoded-polyline format into (lat, lon) points, degrees."""
    factor = 10**precision
    points: list[tuple[float, float]] = []
    index = lat = lon = 0
    while index < len(text):
        deltas = []
        for _ in range(2):
            shift = result = 0
            while True:
                b = ord(text[index]) - 63
                index += 1
                result |= (b & 0x1F) << shift
                shift += 5
                if b < 0x20:
                    break
            deltas.append(~(result >> 1) if result & 1 else result >> 1)
        lat += deltas[0]
        lon += deltas[1]
        points.append((lat / factor, lon / factor))
    return points


__all__ = [
    "COMPASS_WORDS",
    "EARTH_RADIUS_M",
    "EGOCENTRIC_WORDS",
    "RELATIVE_TURN_WORDS",
    "LocalProjection",
    "bearing_deg",
    "compass_word",
    "decode_polyline",
    "destination_point",
    "egocentric_relation",
    "encode_polyline",
    "haversine_m",
    "heading_change_deg",
    "polyline_length_m",
    "relative_turn",
    "turn_maneuver",
    "xy_bearing_deg",
]
