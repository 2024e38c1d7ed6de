"""Vector maps for the browser: a city's streets and buildings as inline SVG, with overlays.

`openvirl.world` draws route and area maps as images; the viewer needs maps a page can zoom
and click, so it draws SVG itself from the same bundled data (`City.graph` edge geometries and
`City.buildings` footprints, in the city's local metres), with no tile server. One SVG unit is
one metre; x grows east and y south from the frame's top-left corner. The root element carries
an affine map from SVG units to degrees (``data-geo``), so a page turns a click into
(lat, lon) without a round trip.

Overlays: a route polyline, numbered place markers, a view point with its heading and field of
view, and a navigation agent's poses, each tagged ``data-step`` so a page can show the poses
"so far" while stepping through an episode.

Example
-------
>>> from openvirl.world import City
>>> from openvirl.viewer.mapsvg import MapFrame, city_svg
>>> city = City.load("monaco")  # doctest: +SKIP
>>> frame = MapFrame.around(city, [(43.7396, 7.4276)], margin_m=300)  # doctest: +SKIP
>>> svg = city_svg(city, frame, markers=[(43.7396, 7.4276, "A", "origin")])  # doctest: +SKIP
>>> svg.startswith("<svg")  # doctest: +SKIP
True
"""

from __future__ import annotations

import html
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from openvirl.viewer.episodes import NavTrack
    from openvirl.world import City

ROAD_GROUPS: dict[str, tuple[str, ...]] = {
    "major": ("motorway", "trunk", "primary", "secondary", "motorway_link", "trunk_link",
              "primary_link", "secondary_link"),
    "minor": ("tertiary", "tertiary_link", "residential", "unclassified", "living_street",
              "road", "service"),
    "foot": ("footway", "pedestrian", "path", "steps", "cycleway", "track", "corridor",
             "bridleway"),
}  # fmt: skip
"""OSM `highway` values drawn in each style; other values are drawn as ``minor``."""

MAX_BUILDINGS = 6000
"""Above this many footprints in the frame the buildings are left out (an overview map)."""

CITY_MAP_ASPECT = 1.6
"""Width/height of the city explorer's map box (CSS), so its frames fill it."""

EPISODE_MAP_ASPECT = 1.3
"""Width/height of an episode's map box (CSS)."""

DEFAULT_MARGIN_M = 120.0
"""Space around the points a map frames, metres."""

MIN_SPAN_M = 250.0
"""Smallest width or height of a frame, metres (a single point still gets some streets)."""

_COORD_DECIMALS = 1
"""Decimals of SVG coordinates (metres): 0.1 m is finer than any screen shows."""

_ATTRIBUTION = "© OpenStreetMap contributors"


@dataclass(frozen=True)
class MapFrame:
    """A rectangle of a city in its local metres: what one SVG map shows.

    Attributes
    ----------
    x0, y0, x1, y1
        West, south, east and north edges, metres from the city's projection centre.
    """

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def width_m(self) -> float:
        return self.x1 - self.x0

    @property
    def height_m(self) -> float:
        return self.y1 - self.y0

    @classmethod
    def around(
        cls,
        city: City,
        points: Iterable[tuple[float, float]],
        *,
        margin_m: float = DEFAULT_MARGIN_M,
        min_span_m: float = MIN_SPAN_M,
        aspect: float | None = None,
    ) -> MapFrame:
        """The frame around (lat, lon) `points`, grown by `margin_m` metres and widened to the
        width/height ratio `aspect` when given; the whole city when `points` is empty."""
        pts = list(points)
        if not pts:
            return cls.whole(city).with_aspect(aspect)
        lats = np.array([p[0] for p in pts], dtype=float)
        lons = np.array([p[1] for p in pts], dtype=float)
        xs, ys = city.to_xy(lats, lons)
        x0, x1 = float(np.min(xs)) - margin_m, float(np.max(xs)) + margin_m
        y0, y1 = float(np.min(ys)) - margin_m, float(np.max(ys)) + margin_m
        return cls(x0, y0, x1, y1).at_least(min_span_m).with_aspect(aspect)

    def with_aspect(self, aspect: float | None) -> MapFrame:
        """This frame grown about its centre to the width/height ratio `aspect` (None: as is),
        so a map fills its box instead of being letterboxed."""
        if not aspect or aspect <= 0 or self.height_m <= 0:
            return self
        width, height = self.width_m, self.height_m
        if width / height < aspect:
            width = height * aspect
        else:
            height = width / aspect
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        return MapFrame(cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2)

    @classmethod
    def whole(cls, city: City) -> MapFrame:
        """The frame of the city's whole street graph."""
        xs = np.fromiter((d["x"] for _, d in city.graph.nodes(data=True)), float)
        ys = np.fromiter((d["y"] for _, d in city.graph.nodes(data=True)), float)
        if xs.size == 0:
            return cls(-500.0, -500.0, 500.0, 500.0)
        pad = 40.0
        return cls(
            float(xs.min()) - pad, float(ys.min()) - pad, float(xs.max()) + pad,
            float(ys.max()) + pad,
        )  # fmt: skip

    @classmethod
    def from_latlon_box(
        cls, city: City, south: float, west: float, north: float, east: float
    ) -> MapFrame:
        """The frame of a (lat, lon) box."""
        xs, ys = city.to_xy(np.array([south, north]), np.array([west, east]))
        return cls(float(min(xs)), float(min(ys)), float(max(xs)), float(max(ys))).at_least(
            MIN_SPAN_M
        )

    def at_least(self, span_m: float) -> MapFrame:
        """This frame, widened about its centre to at least `span_m` metres each way."""
        cx, cy = (self.x0 + self.x1) / 2, (self.y0 + self.y1) / 2
        half_w = max(self.width_m, span_m) / 2
        half_h = max(self.height_m, span_m) / 2
        return MapFrame(cx - half_w, cy - half_h, cx + half_w, cy + half_h)

    def svg_xy(self, x: Any, y: Any) -> tuple[Any, Any]:
        """SVG coordinates of local metres (scalars or arrays)."""
        return (np.asarray(x) - self.x0, self.y1 - np.asarray(y))

    def geo_transform(self, city: City) -> list[float]:
        """Affine ``[a0, a1, a2, b0, b1, b2]``: lat = a0 + a1·sx + a2·sy, lon = b0 + b1·sx + b2·sy.

        Fitted through three corners of the frame; over a city-sized frame the error is far
        below a metre.
        """
        corners_x = np.array([self.x0, self.x1, self.x0])
        corners_y = np.array([self.y1, self.y1, self.y0])
        lats, lons = city.to_latlon(corners_x, corners_y)
        w, h = self.width_m or 1.0, self.height_m or 1.0
        a0, b0 = float(lats[0]), float(lons[0])
        a1, b1 = (float(lats[1]) - a0) / w, (float(lons[1]) - b0) / w
        a2, b2 = (float(lats[2]) - a0) / h, (float(lons[2]) - b0) / h
        return [a0, a1, a2, b0, b1, b2]


# ---------------------------------------------------------------------------- spatial index
class _CityIndex:
    """STRtrees over a city's edges and buildings, built once per city."""

    def __init__(self, city: City) -> None:
        import shapely

        edges = list(city.graph.edges(data=True))
        self.edge_geoms = [d["geometry"] for _, _, d in edges]
        self.edge_group = [_group(str(d.get("highway", ""))) for _, _, d in edges]
        self.edge_names = [str(d.get("street") or "") for _, _, d in edges]
        self.edge_tree = shapely.STRtree(self.edge_geoms)
        self.buildings = [b.footprint for b in city.buildings]
        self.building_tree = shapely.STRtree(self.buildings) if self.buildings else None


_INDEXES: dict[str, _CityIndex] = {}
_INDEX_LOCK = threading.Lock()


def _index(city: City) -> _CityIndex:
    key = f"{city.name}:{city.sha256}"
    with _INDEX_LOCK:
        found = _INDEXES.get(key)
        if found is None:
            found = _INDEXES[key] = _CityIndex(city)
        return found


def _group(highway: str) -> str:
    for group, values in ROAD_GROUPS.items():
        if highway in values:
            return group
    return "minor"


# ---------------------------------------------------------------------------- drawing
def _fmt(value: float) -> str:
    text = f"{value:.{_COORD_DECIMALS}f}"
    return text[:-2] if text.endswith(".0") else text


def _path_d(xs: np.ndarray, ys: np.ndarray) -> str:
    parts = [f"M{_fmt(xs[0])} {_fmt(ys[0])}"]
    parts += [f"L{_fmt(x)} {_fmt(y)}" for x, y in zip(xs[1:], ys[1:], strict=True)]
    return "".join(parts)


def _ring_d(frame: MapFrame, coords: Any) -> str:
    arr = np.asarray(coords)
    sx, sy = frame.svg_xy(arr[:, 0], arr[:, 1])
    return _path_d(sx, sy) + "Z"


def _polygon_d(frame: MapFrame, geom: Any) -> str:
    polygons = getattr(geom, "geoms", [geom])
    parts = []
    for polygon in polygons:
        if polygon.is_empty:
            continue
        parts.append(_ring_d(frame, polygon.exterior.coords))
        parts += [_ring_d(frame, ring.coords) for ring in polygon.interiors]
    return "".join(parts)


def _latlon_svg(city: City, frame: MapFrame, points: Sequence[tuple[float, float]]) -> tuple:
    if not points:
        return np.array([]), np.array([])
    xs, ys = city.to_xy(
        np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    )
    return frame.svg_xy(xs, ys)


def base_layers(city: City, frame: MapFrame, *, buildings: bool = True) -> list[str]:
    """The SVG groups of buildings and streets inside `frame`."""
    import shapely

    index = _index(city)
    box = shapely.box(frame.x0, frame.y0, frame.x1, frame.y1)
    out: list[str] = []
    if buildings and index.building_tree is not None:
        hits = index.building_tree.query(box)
        if 0 < len(hits) <= MAX_BUILDINGS:
            d = "".join(_polygon_d(frame, index.buildings[i]) for i in sorted(hits.tolist()))
            out.append(f'<path class="bldg" d="{d}"/>')
    by_group: dict[str, list[str]] = {"foot": [], "minor": [], "major": []}
    for i in sorted(index.edge_tree.query(box).tolist()):
        coords = np.asarray(index.edge_geoms[i].coords)
        sx, sy = frame.svg_xy(coords[:, 0], coords[:, 1])
        by_group[index.edge_group[i]].append(_path_d(sx, sy))
    for group in ("foot", "minor", "major"):
        if by_group[group]:
            out.append(f'<path class="road {group}" d="{"".join(by_group[group])}"/>')
    return out


def _marker(x: float, y: float, label: str, kind: str, r: float) -> str:
    text = html.escape(label)
    return (
        f'<g class="marker {html.escape(kind)}" transform="translate({_fmt(x)} {_fmt(y)})">'
        f'<circle r="{_fmt(r)}"/><text dy="{_fmt(r * 0.36)}" font-size="{_fmt(r * 1.05)}">'
        f"{text}</text></g>"
    )


def _arrow(x: float, y: float, heading: float | None, size: float, cls: str, step: int) -> str:
    """An agent pose: a triangle pointing along `heading` (a dot when the heading is unknown)."""
    if heading is None:
        return (
            f'<circle class="{cls}" data-step="{step}" cx="{_fmt(x)}" cy="{_fmt(y)}" '
            f'r="{_fmt(size * 0.5)}"/>'
        )
    pts = f"0,{_fmt(-size)} {_fmt(size * 0.62)},{_fmt(size * 0.7)} 0,{_fmt(size * 0.32)} " + (
        f"{_fmt(-size * 0.62)},{_fmt(size * 0.7)}"
    )
    return (
        f'<polygon class="{cls}" data-step="{step}" points="{pts}" '
        f'transform="translate({_fmt(x)} {_fmt(y)}) rotate({_fmt(heading)})"/>'
    )


def view_cone(x: float, y: float, heading: float, fov: float, length: float) -> str:
    """A wedge from (x, y) along `heading` (degrees clockwise from north), `fov` degrees wide."""
    a0, a1 = math.radians(heading - fov / 2), math.radians(heading + fov / 2)
    p0 = (x + length * math.sin(a0), y - length * math.cos(a0))
    p1 = (x + length * math.sin(a1), y - length * math.cos(a1))
    large = 1 if fov > 180 else 0
    return (
        f'<path class="cone" d="M{_fmt(x)} {_fmt(y)}L{_fmt(p0[0])} {_fmt(p0[1])}'
        f'A{_fmt(length)} {_fmt(length)} 0 {large} 1 {_fmt(p1[0])} {_fmt(p1[1])}Z"/>'
    )


def _scale_bar(frame: MapFrame) -> str:
    target = frame.width_m / 5
    nice = max(v for v in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if v <= max(target, 10))
    unit = f"{nice // 1000} km" if nice >= 1000 else f"{nice} m"
    pad = frame.width_m / 40
    y = frame.height_m - pad
    fs = frame.width_m / 60
    return (
        f'<g class="scale"><path d="M{_fmt(pad)} {_fmt(y)}h{_fmt(nice)}"/>'
        f'<text x="{_fmt(pad)}" y="{_fmt(y - fs * 0.5)}" font-size="{_fmt(fs)}">{unit}</text></g>'
    )


def city_svg(
    city: City,
    frame: MapFrame,
    *,
    route: Sequence[tuple[float, float]] = (),
    markers: Sequence[tuple[float, float, str, str]] = (),
    view: tuple[float, float, float, float] | None = None,
    track: NavTrack | None = None,
    buildings: bool = True,
    element_id: str = "map",
    title: str = "",
) -> str:
    """An SVG map of `frame` with optional overlays.

    Parameters
    ----------
    city
        The city whose streets and buildings are drawn.
    frame
        What the map shows (`MapFrame`).
    route
        A (lat, lon) polyline drawn as the route.
    markers
        ``(lat, lon, label, kind)`` circles; kind is a CSS class: ``origin``, ``destination``,
        ``result`` or ``landmark``.
    view
        ``(lat, lon, heading, fov)`` of a street view: a camera marker and its view cone,
        heading and fov in degrees.
    track
        A navigation episode (`openvirl.viewer.episodes.NavTrack`): its route, rail points and
        the agent's poses, each pose tagged ``data-step`` (0 = reset, k = after step k).
    buildings
        Draw building footprints (left out anyway when more than `MAX_BUILDINGS` are in view).
    element_id
        The ``id`` of the ``<svg>`` element.
    title
        Accessible title.

    Returns
    -------
    str
        An ``<svg>`` element, sized by CSS, ``viewBox`` in metres, with ``data-geo`` holding
        `MapFrame.geo_transform` as comma-separated numbers.
    """
    w, h = frame.width_m, frame.height_m
    unit = max(w, h) / 100.0  # overlay size: 1% of the longer side
    geo = ",".join(repr(v) for v in frame.geo_transform(city))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{html.escape(element_id)}" class="map" '
        f'viewBox="0 0 {_fmt(w)} {_fmt(h)}" data-geo="{geo}" data-unit="{_fmt(unit)}" '
        f'preserveAspectRatio="xMidYMid meet" role="img">',
        f"<title>{html.escape(title or city.name)}</title>",
        f'<rect class="bg" width="{_fmt(w)}" height="{_fmt(h)}"/>',
        '<g class="base">',
        *base_layers(city, frame, buildings=buildings),
        "</g>",
    ]
    lines = [route] if route else []
    if track is not None and track.route:
        lines.append(track.route)
    for line in lines:
        sx, sy = _latlon_svg(city, frame, line)
        if len(sx) >= 2:
            d = _path_d(sx, sy)
            parts.append(f'<path class="route-casing" d="{d}"/><path class="route" d="{d}"/>')
    if track is not None:
        parts.append(_track_layers(city, frame, track, unit))
    if view is not None:
        lat, lon, heading, fov = view
        (vx,), (vy,) = _latlon_svg(city, frame, [(lat, lon)])
        parts.append(view_cone(float(vx), float(vy), heading, fov, unit * 6))
        parts.append(_marker(float(vx), float(vy), "", "camera", unit * 0.9))
    for lat, lon, label, kind in markers:
        (mx,), (my,) = _latlon_svg(city, frame, [(lat, lon)])
        parts.append(_marker(float(mx), float(my), label, kind, unit * 1.6))
    parts.append(_scale_bar(frame))
    fs = w / 75
    parts.append(
        f'<text class="attribution" x="{_fmt(w - fs / 2)}" y="{_fmt(h - fs / 2)}" '
        f'font-size="{_fmt(fs)}" text-anchor="end">{_ATTRIBUTION}</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _track_layers(city: City, frame: MapFrame, track: NavTrack, unit: float) -> str:
    parts = ['<g class="track">']
    if track.rail:
        sx, sy = _latlon_svg(city, frame, [(p.lat, p.lon) for p in track.rail])
        for x, y in zip(sx, sy, strict=True):
            parts.append(
                f'<circle class="rail" cx="{_fmt(x)}" cy="{_fmt(y)}" r="{_fmt(unit * 0.45)}"/>'
            )
    known = [(k, p) for k, p in enumerate(track.poses) if p is not None]
    if known:
        sx, sy = _latlon_svg(city, frame, [(p.lat, p.lon) for _, p in known])
        previous: tuple[float, float] | None = None
        for (step, _), x, y in zip(known, sx, sy, strict=True):
            if previous is not None and (previous[0] != x or previous[1] != y):
                parts.append(
                    f'<path class="trail" data-step="{step}" d="M{_fmt(previous[0])} '
                    f'{_fmt(previous[1])}L{_fmt(x)} {_fmt(y)}"/>'
                )
            previous = (float(x), float(y))
        for (step, pose), x, y in zip(known, sx, sy, strict=True):
            parts.append(_arrow(float(x), float(y), pose.heading, unit * 2.2, "pose", step))
        first_x, first_y = float(sx[0]), float(sy[0])
        parts.append(_marker(first_x, first_y, "S", "origin start", unit * 1.4))
    if track.route:
        (ex,), (ey,) = _latlon_svg(city, frame, [track.route[-1]])
        parts.append(_marker(float(ex), float(ey), "D", "destination", unit * 1.4))
    parts.append("</g>")
    return "".join(parts)
