"""Navigation route datasets: generate them in any city, store them as JSONL, read V-IRL files.

A route is what the V-IRL navigation task reads (spec §3.1): a start, a named destination, and
the turning points between them, each with the heading of the leg that arrives there and the
landmark milestone seen there. Here each turning point also carries the leg's street geometry
(so forward positions lie on the real street), whether it is a street intersection, and
where the leg crosses other streets (so no forward position is put on a crossing).

Generation (`generate_routes`) is deterministic per seed: route ``i`` comes from a generator
seeded with ``(seed, i)``, and a candidate is kept only if it passes every check of
`GenerationConfig`. Train and test are disjoint by route and, where the city allows, by area:
the map is cut into `GenerationConfig.cell_deg` cells and a cell belongs to ``test`` when a
hash of its index falls in the first `test_percent` of 100 buckets; a route belongs to a side
only if its start and its destination both lie in that side's cells (`describe_split`).

Files: JSONL (optionally gzipped), one `NavRoute.to_dict` per line, with
``<name>.manifest.json`` beside it (the generator options, the split rule, counts and the
file's sha256). `read_routes` also reads V-IRL / SFTvsRL ``route_infos.json`` files, and
`write_virl` writes them, so the original route files run here and ours run there.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openvirl.world.geometry import (
    bearing_deg,
    compass_word,
    decode_polyline,
    encode_polyline,
    haversine_m,
    heading_change_deg,
)

if TYPE_CHECKING:
    from openvirl.world.city import City
    from openvirl.world.routing import Route

NO_LANDMARK = "No landmarks nearby"
"""Milestone text of a turning point without a landmark (V-IRL's string)."""

SPLIT_VERSION = "nav-area-split-v1"
"""Changes whenever the area split rule changes (it is written into every manifest)."""

ROUTE_SPLITS = ("train", "test")

INTERSECTION_RADIUS_M = 10.0
"""A point this close to a street intersection node counts as being at the intersection."""

AMBIGUOUS_TURN_DEG = 3.0
"""Generated routes avoid turns within this many degrees of a relative-word boundary (0°, ±45°,
180°), so the left/right word never depends on rounding a heading."""


class RouteFormatError(ValueError):
    """A route record lacks a field or has a bad value; the message names route and field."""


class RouteGenerationError(ValueError):
    """A city cannot give the routes asked for (too few places, or every candidate rejected)."""


# ---------------------------------------------------------------------------- records
@dataclass
class Endpoint:
    """The start or the destination of a route.

    Attributes
    ----------
    name
        Display name (a POI's name, or "A & B" for an intersection).
    lat, lon
        Where the walker stands: the point snapped onto the street, degrees.
    kind
        "poi", "intersection" or "point".
    category
        The V-IRL place type of a POI destination ("cafe"), else None.
    place_id
        OSM id ("node/123") or "".
    intersection
        Whether the point is at a street intersection (the walker would see one).
    place_lat, place_lon
        The place itself (a POI's node), degrees; None when it is the snapped point.
    """

    name: str
    lat: float
    lon: float
    kind: str = "poi"
    category: str | None = None
    place_id: str = ""
    intersection: bool = False
    place_lat: float | None = None
    place_lon: float | None = None


@dataclass
class Milestone:
    """A turning point (or the destination, last) and the leg that arrives there.

    Attributes
    ----------
    lat, lon
        The point, degrees.
    heading
        Bearing of the arriving leg, whole degrees clockwise from north in [0, 360): the
        "to_next_intersection_heading" of V-IRL. Whole degrees, because the relative-turn
        words are computed from exactly the numbers a prompt can show.
    landmark
        The milestone sentence: "X is on your left front", "The destination X is on your
        left", or "No landmarks nearby".
    landmark_name, landmark_relation
        The landmark's name and egocentric relation, or None.
    intersection
        Whether the point is a street intersection.
    street
        Street name of the arriving leg ("" if unnamed).
    distance_m
        Walking length of the arriving leg, metres.
    polyline
        The arriving leg's geometry, Google encoded polyline (5 decimals); "" for a straight
        line from the previous point.
    crossings_m
        Distances along the leg (metres from its start) where it crosses other streets.
    """

    lat: float
    lon: float
    heading: int
    landmark: str = NO_LANDMARK
    landmark_name: str | None = None
    landmark_relation: str | None = None
    intersection: bool = True
    street: str = ""
    distance_m: float = 0.0
    polyline: str = ""
    crossings_m: list[float] = field(default_factory=list)

    @property
    def compass(self) -> str:
        """The heading as one of the 8 compass words."""
        return compass_word(self.heading)


@dataclass
class NavRoute:
    """One navigation route, as stored in a JSONL line.

    Attributes
    ----------
    route_id
        Stable id, e.g. ``manhattan-3f2a9c01d4``.
    city
        Name of the city the route lies in (`City.load` name).
    start, destination
        The two ends.
    milestones
        The turning points in order; the last is the destination's point.
    init_heading
        The walker's heading at the start, whole degrees, or None to draw one per episode.
    split
        "train", "test", or a preset name ("visual-ood", "human").
    source
        "generated", "virl" (imported route_infos) or "run" (human instructions).
    instruction
        Human-written instruction sentences that replace the synthesized ones, or None.
    meta
        Free-form provenance (RUN story id, V-IRL index, generator seed...).
    """

    route_id: str
    city: str
    start: Endpoint
    destination: Endpoint
    milestones: list[Milestone]
    init_heading: int | None = None
    split: str = ""
    source: str = "generated"
    instruction: list[str] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def length_m(self) -> float:
        """Walking length, metres."""
        return float(sum(m.distance_m for m in self.milestones))

    @property
    def n_turns(self) -> int:
        """Turning points before the destination."""
        return max(0, len(self.milestones) - 1)

    @property
    def goal(self) -> tuple[float, float]:
        """Where the walker stops, (lat, lon) degrees."""
        last = self.milestones[-1]
        return (last.lat, last.lon)

    def points(self) -> list[tuple[float, float]]:
        """Start and every milestone, (lat, lon) degrees."""
        return [(self.start.lat, self.start.lon), *((m.lat, m.lon) for m in self.milestones)]

    def leg_polyline(self, k: int) -> list[tuple[float, float]]:
        """The (lat, lon) points of leg `k`, from the previous point to milestone `k`.

        The stored polyline is rounded to 5 decimals; its ends are replaced by the exact
        points so consecutive legs meet.
        """
        points = self.points()
        a, b = points[k], points[k + 1]
        inner = decode_polyline(self.milestones[k].polyline) if self.milestones[k].polyline else []
        return [a, *inner[1:-1], b]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict (one JSONL line)."""
        out = asdict(self)
        out["length_m"] = round(self.length_m, 1)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "route") -> NavRoute:
        """Rebuild a route from `to_dict` output.

        Raises
        ------
        RouteFormatError
            A required field is missing or has the wrong type; the message names the route
            (its id, else `where`) and the field.
        """
        if not isinstance(data, dict):
            raise RouteFormatError(f"{where}: expected a JSON object, got {type(data).__name__}")
        name = f"route {data.get('route_id')!r}" if data.get("route_id") else where
        for key in ("route_id", "city", "start", "destination", "milestones"):
            if key not in data:
                raise RouteFormatError(f"{name}: missing field `{key}`")
        start = _endpoint(data["start"], f"{name}: field `start`")
        dest = _endpoint(data["destination"], f"{name}: field `destination`")
        raw = data["milestones"]
        if not isinstance(raw, list) or not raw:
            raise RouteFormatError(f"{name}: field `milestones` must be a non-empty list")
        milestones = [_milestone(m, f"{name}: field `milestones[{i}]`") for i, m in enumerate(raw)]
        init = data.get("init_heading")
        instruction = data.get("instruction")
        if instruction is not None and not (
            isinstance(instruction, list) and all(isinstance(s, str) for s in instruction)
        ):
            raise RouteFormatError(f"{name}: field `instruction` must be a list of sentences")
        return cls(
            route_id=str(data["route_id"]),
            city=str(data["city"]),
            start=start,
            destination=dest,
            milestones=milestones,
            init_heading=None if init is None else round(float(init)) % 360,
            split=str(data.get("split", "")),
            source=str(data.get("source", "generated")),
            instruction=instruction,
            meta=dict(data.get("meta") or {}),
        )


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _endpoint(data: Any, where: str) -> Endpoint:
    if not isinstance(data, dict):
        raise RouteFormatError(f"{where} must be an object")
    for key in ("name", "lat", "lon"):
        if key not in data:
            raise RouteFormatError(f"{where}: missing field `{key}`")
    try:
        return Endpoint(**_known(Endpoint, data))
    except TypeError as err:
        raise RouteFormatError(f"{where}: {err}") from None


def _milestone(data: Any, where: str) -> Milestone:
    if not isinstance(data, dict):
        raise RouteFormatError(f"{where} must be an object")
    for key in ("lat", "lon", "heading"):
        if key not in data:
            raise RouteFormatError(f"{where}: missing field `{key}`")
    try:
        values = _known(Milestone, data)
        values["heading"] = round(float(values["heading"])) % 360
        return Milestone(**values)
    except (TypeError, ValueError) as err:
        raise RouteFormatError(f"{where}: {err}") from None


# ---------------------------------------------------------------------------- area split
def area_cell(lat: float, lon: float, cell_deg: float) -> tuple[int, int]:
    """The index of the `cell_deg` x `cell_deg` lat/lon cell holding a point.

    Cells are in degrees (not projected metres) so the split does not depend on how a city
    is projected; 0.005° is about 550 m north-south.
    """
    return (math.floor(lat / cell_deg), math.floor(lon / cell_deg))


def cell_split(city: str, cell: tuple[int, int], test_percent: int) -> str:
    """``"test"`` or ``"train"`` for an area cell of a city (hashed, see `describe_split`)."""
    key = f"{SPLIT_VERSION}:{city}:{cell[0]}:{cell[1]}"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def route_hash_split(route_id: str, test_percent: int) -> str:
    """The fallback split by route (for cities too small to split by area)."""
    key = f"{SPLIT_VERSION}:route:{route_id}"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def describe_split(cell_deg: float, test_percent: int, *, by_area: bool = True) -> dict[str, Any]:
    """The split rule as a JSON-able dict, written into manifests so anyone can recompute it."""
    if by_area:
        rule = (
            f"cell = (floor(lat/{cell_deg}), floor(lon/{cell_deg})); "
            f"sha256('{SPLIT_VERSION}:<city>:<cell lat>:<cell lon>'), first 8 bytes big-endian, "
            f"mod 100 < {test_percent} -> test cell, else train cell; a route belongs to a side "
            "when its start place and its destination place (place_lat, place_lon) both lie "
            "in cells of that side"
        )
    else:
        rule = (
            f"sha256('{SPLIT_VERSION}:route:<route_id>'), first 8 bytes big-endian, mod 100 < "
            f"{test_percent} -> test, else train (the city is too small to split by area)"
        )
    return {
        "version": SPLIT_VERSION,
        "unit": "area cells (start and destination)" if by_area else "route",
        "cell_deg": cell_deg,
        "test_percent": test_percent,
        "rule": rule,
    }


# ---------------------------------------------------------------------------- generation
@dataclass
class GenerationConfig:
    """What a generated route must satisfy.

    `validate()` raises `ValueError` naming the bad option.
    """

    min_length_m: float = 150.0  # shortest walking length, metres
    max_length_m: float = 1500.0  # longest walking length, metres
    min_turns: int = 1  # fewest turning points before the destination
    max_turns: int = 5  # most turning points before the destination
    min_leg_m: float = 12.0  # shortest leg between turning points, metres
    intersection_start_share: float = 0.3  # share of routes that start at an intersection
    cell_deg: float = 0.005  # side of an area cell of the split, degrees
    test_percent: int = 20  # share of area cells held out for test
    max_tries: int = 400  # candidates tried per route before giving up

    def validate(self) -> None:
        """Check every option; raise `ValueError` naming the bad one."""
        if not 0 < self.min_length_m < self.max_length_m:
            raise ValueError(
                f"need 0 < `min_length_m` < `max_length_m`, got {self.min_length_m}, "
                f"{self.max_length_m}."
            )
        if not 0 <= self.min_turns <= self.max_turns:
            raise ValueError(
                f"need 0 <= `min_turns` <= `max_turns`, got {self.min_turns}, {self.max_turns}."
            )
        if not 0.0 <= self.intersection_start_share <= 1.0:
            raise ValueError("`intersection_start_share` must be in [0, 1].")
        if not 0 < self.test_percent < 100:
            raise ValueError(f"`test_percent` must be in 1..99, got {self.test_percent}.")
        if self.cell_deg <= 0 or self.max_tries < 1:
            raise ValueError("`cell_deg` must be positive and `max_tries` >= 1.")


class _Pools:
    """Candidate starts and destinations of one city, with their positions and area sides."""

    def __init__(self, city: City, config: GenerationConfig) -> None:
        from openvirl.world.categories import VIRL_TYPES_20

        self.city = city
        index = city.places
        pois = index.pois
        named = np.array([bool(p.name.strip()) for p in pois], dtype=bool)
        virl = np.array(
            [bool(set(p.categories or (p.category,)) & set(VIRL_TYPES_20)) for p in pois],
            dtype=bool,
        )
        self.pois = pois
        self.poi_xy = np.column_stack([index.xs, index.ys]) if len(pois) else np.zeros((0, 2))
        self.dest_idx = np.nonzero(named & virl)[0]
        self.start_idx = np.nonzero(named)[0]
        self.int_nodes, self.int_xy, self.int_names = street_intersections(city)
        lats = [p.lat for p in pois]
        lons = [p.lon for p in pois]
        self.poi_side = np.array(
            [
                cell_split(city.name, area_cell(a, b, config.cell_deg), config.test_percent)
                for a, b in zip(lats, lons, strict=True)
            ]
        )
        G = city.graph
        self.int_side = np.array(
            [
                cell_split(
                    city.name,
                    area_cell(G.nodes[n]["lat"], G.nodes[n]["lon"], config.cell_deg),
                    config.test_percent,
                )
                for n in self.int_nodes
            ]
        )

    def has_side(self, side: str) -> bool:
        return bool(np.any(self.poi_side[self.dest_idx] == side)) if self.dest_idx.size else False


_INTERSECTION_CACHE: dict[tuple[str, str], tuple[list[int], np.ndarray, list[str]]] = {}


def street_intersections(city: City) -> tuple[list[int], np.ndarray, list[str]]:
    """The street intersections of a city: node ids, (n, 2) local metres, display names.

    A node is a street intersection when at least three street centre-line edges meet there
    or it joins two differently named streets; sidewalk and footway junctions do not count.
    """
    key = (city.name, city.sha256)
    if key in _INTERSECTION_CACHE:
        return _INTERSECTION_CACHE[key]
    from openvirl.world.city import STREET_HIGHWAYS

    G = city.graph
    nodes: list[int] = []
    names: list[str] = []
    for node in city.intersections:
        streets = [d for _, _, d in G.edges(node, data=True) if d.get("highway") in STREET_HIGHWAYS]
        distinct = sorted({d["street"] for d in streets if d.get("street")})
        if len(streets) >= 3 or len(distinct) >= 2:
            nodes.append(node)
            names.append(" & ".join(distinct[:2]) if distinct else "")
    xy = np.array([[G.nodes[n]["x"], G.nodes[n]["y"]] for n in nodes], dtype=float)
    _INTERSECTION_CACHE[key] = (nodes, xy.reshape(-1, 2), names)
    return _INTERSECTION_CACHE[key]


def _near_intersection(xy: np.ndarray, x: float, y: float, radius_m: float) -> bool:
    if xy.size == 0:
        return False
    return bool(np.min(np.hypot(xy[:, 0] - x, xy[:, 1] - y)) <= radius_m)


def _ambiguous(d: float) -> bool:
    a = abs(d)
    return min(a, abs(a - 45.0), 180.0 - a) < AMBIGUOUS_TURN_DEG


def _route_id(city: str, start_key: str, dest_key: str) -> str:
    digest = hashlib.sha256(f"{city}|{start_key}|{dest_key}".encode()).hexdigest()[:10]
    return f"{city}-{digest}"


def route_from_world(
    city: City,
    route: Route,
    *,
    start: Endpoint,
    route_id: str,
    split: str = "",
    meta: dict[str, Any] | None = None,
) -> NavRoute:
    """Convert a `openvirl.world.Route` into a navigation route record.

    Parameters
    ----------
    city
        The city the route was planned in.
    route
        The planned route; each step becomes a milestone at the step's end.
    start
        The start endpoint (its position is replaced by the route's snapped origin).
    route_id, split, meta
        Stored as they are.
    """
    _, int_xy, _ = street_intersections(city)
    points = [route.origin_snap, *(s.end for s in route.steps)]
    steps = route.steps
    path_nodes = [n for n in route.node_path if n in _intersection_set(city)]
    G = city.graph
    node_xy = np.array([[G.nodes[n]["x"], G.nodes[n]["y"]] for n in path_nodes]).reshape(-1, 2)
    milestones: list[Milestone] = []
    for k, step in enumerate(steps):
        lat, lon = points[k + 1]
        x, y = city.to_xy(lat, lon)
        last = k == len(steps) - 1
        lm = step.landmarks[0] if step.landmarks else None
        heading = (
            round(bearing_deg(*points[k], lat, lon)) % 360
            if step.distance_m > 1
            else (round(step.heading) % 360)
        )
        crossings = _crossings(city, step.polyline, node_xy)
        milestones.append(
            Milestone(
                lat=round(lat, 7),
                lon=round(lon, 7),
                heading=heading,
                landmark=lm.text if lm else NO_LANDMARK,
                landmark_name=lm.name if lm else None,
                landmark_relation=lm.relation if lm else None,
                intersection=_near_intersection(int_xy, x, y, INTERSECTION_RADIUS_M)
                if last
                else True,
                street=step.street,
                distance_m=round(step.distance_m, 1),
                polyline=encode_polyline(step.polyline),
                crossings_m=crossings,
            )
        )
    sx, sy = city.to_xy(*route.origin_snap)
    origin = route.origin
    endpoint = Endpoint(
        name=start.name,
        lat=round(route.origin_snap[0], 7),
        lon=round(route.origin_snap[1], 7),
        kind=start.kind,
        category=start.category,
        place_id=start.place_id,
        intersection=start.kind == "intersection"
        or _near_intersection(int_xy, sx, sy, INTERSECTION_RADIUS_M),
        place_lat=origin.lat,
        place_lon=origin.lon,
    )
    dest = route.destination
    destination = Endpoint(
        name=dest.name,
        lat=round(route.destination_snap[0], 7),
        lon=round(route.destination_snap[1], 7),
        kind=dest.kind,
        category=dest.category,
        place_id=dest.id,
        intersection=milestones[-1].intersection,
        place_lat=dest.lat,
        place_lon=dest.lon,
    )
    return NavRoute(
        route_id=route_id,
        city=city.name,
        start=endpoint,
        destination=destination,
        milestones=milestones,
        split=split,
        source="generated",
        meta=dict(meta or {}),
    )


_INT_SET_CACHE: dict[tuple[str, str], frozenset[int]] = {}


def _intersection_set(city: City) -> frozenset[int]:
    key = (city.name, city.sha256)
    if key not in _INT_SET_CACHE:
        _INT_SET_CACHE[key] = frozenset(street_intersections(city)[0])
    return _INT_SET_CACHE[key]


def _crossings(city: City, polyline: Sequence[tuple[float, float]], node_xy: np.ndarray) -> list:
    """Arc positions (metres) where a leg passes a street intersection, ends excluded."""
    if node_xy.size == 0 or len(polyline) < 2:
        return []
    arr = np.asarray(polyline, dtype=float)
    xs, ys = city.to_xy(arr[:, 0], arr[:, 1])
    seg = np.column_stack([xs, ys])
    a, b = seg[:-1], seg[1:]
    ab = b - a
    seg_len = np.hypot(ab[:, 0], ab[:, 1])
    cum = np.concatenate([[0.0], np.cumsum(seg_len)])
    total = cum[-1]
    out: list[float] = []
    for px, py in node_xy:
        ap = np.column_stack([px - a[:, 0], py - a[:, 1]])
        t = np.clip(np.einsum("ij,ij->i", ap, ab) / np.maximum(seg_len**2, 1e-9), 0.0, 1.0)
        proj = a + ab * t[:, None]
        d = np.hypot(proj[:, 0] - px, proj[:, 1] - py)
        i = int(np.argmin(d))
        if d[i] > 3.0:
            continue
        s = float(cum[i] + t[i] * seg_len[i])
        if 5.0 < s < total - 5.0:
            out.append(round(s, 1))
    return sorted(set(out))


def generate_routes(
    city: City | str,
    n: int,
    *,
    seed: int = 0,
    split: str | None = None,
    config: GenerationConfig | None = None,
    exclude: Iterable[str] = (),
    progress: bool = False,
) -> list[NavRoute]:
    """Generate `n` distinct navigation routes in a city, deterministically from `seed`.

    Route ``i`` draws from ``numpy.random.default_rng([seed, i])``: a destination (a named
    POI of one of V-IRL's 20 place types), then a start (a named POI or, for a share of
    routes, a street intersection) whose straight-line distance makes the walk plausible;
    the city's router plans the walk, and the candidate is kept only if its length, turn
    count, leg lengths and turn angles pass `config` and every turning point is a street
    intersection (the instruction says "until you reach the next intersection").

    Parameters
    ----------
    city
        A loaded `City` or a name for `City.load`.
    n
        Routes to generate.
    seed
        The dataset seed.
    split
        ``"train"`` or ``"test"``: keep only routes whose start and destination lie in area
        cells of that side; None: any route. When one side has no destinations (a tiny map),
        the split falls back to a hash of the route id and ``meta["split_by"]`` says so.
    config
        The route checks (`GenerationConfig`).
    exclude
        Route ids never to return (e.g. the other side's routes).
    progress
        Show a progress bar.

    Returns
    -------
    list[NavRoute]
        `n` routes with distinct ids, in index order.

    Raises
    ------
    RouteGenerationError
        The city has too few named places of the V-IRL types, or no candidate passed the
        checks within `config.max_tries` tries; the message gives the counts of each reason.
    ValueError
        A negative `n`, an unknown `split` or a bad `config`.
    """
    from openvirl.world import City
    from openvirl.world.errors import WorldError

    config = config or GenerationConfig()
    config.validate()
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"`n` (routes to generate) must be an integer >= 0, got {n!r}.")
    if split is not None and split not in ROUTE_SPLITS:
        raise ValueError(f"`split` must be None or one of {ROUTE_SPLITS}, got {split!r}.")
    if isinstance(city, str):
        city = City.load(city)
    pools = _Pools(city, config)
    if pools.dest_idx.size == 0 or pools.start_idx.size < 2:
        raise RouteGenerationError(
            f"`{city.name}` has {pools.dest_idx.size} named POIs of the V-IRL place types "
            f"(bank, restaurant, cafe, ...) and {pools.start_idx.size} named POIs in all; a "
            "route needs a named destination of one of those types and a different start. "
            "Load a larger OSM extract of this city."
        )
    by_area = split is None or (pools.has_side("train") and pools.has_side("test"))
    seen = set(exclude)
    routes: list[NavRoute] = []
    reasons: Counter[str] = Counter()
    from rich.progress import Progress

    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task(f"routes in {city.name}", total=n)
        for i in range(n):
            rng = np.random.default_rng([seed, i])
            for _ in range(config.max_tries):
                try:
                    candidate = _candidate(city, pools, rng, config, split, by_area, reasons)
                except WorldError:
                    reasons["no walking route"] += 1
                    continue
                if candidate is None:
                    continue
                if candidate.route_id in seen:
                    reasons["duplicate"] += 1
                    continue
                other = split is not None and not by_area
                if other and route_hash_split(candidate.route_id, config.test_percent) != split:
                    reasons["other side (route hash)"] += 1
                    continue
                candidate.meta.update(
                    seed=seed, index=i, split_by="area" if by_area else "route hash"
                )
                seen.add(candidate.route_id)
                routes.append(candidate)
                bar.advance(task)
                break
            else:
                summary = ", ".join(f"{k}: {v}" for k, v in reasons.most_common())
                raise RouteGenerationError(
                    f"could only generate {len(routes)} of {n} routes in `{city.name}` "
                    f"(split {split}); route {i} failed {config.max_tries} candidates. "
                    f"Rejections: {summary or 'none'}. Ask for fewer routes or relax "
                    "`GenerationConfig` (lengths, turns)."
                )
    return routes


def _candidate(
    city: City,
    pools: _Pools,
    rng: np.random.Generator,
    config: GenerationConfig,
    split: str | None,
    by_area: bool,
    reasons: Counter[str],
) -> NavRoute | None:
    from openvirl.world.places import Place

    dests = pools.dest_idx
    if split is not None and by_area:
        dests = dests[pools.poi_side[dests] == split]
        if dests.size == 0:
            reasons["no destination on this side"] += 1
            return None
    di = int(dests[rng.integers(dests.size)])
    dest = pools.pois[di]
    dx, dy = pools.poi_xy[di]
    low, high = config.min_length_m / 1.5, config.max_length_m
    use_int = pools.int_xy.size > 0 and rng.random() < config.intersection_start_share
    if use_int:
        d = np.hypot(pools.int_xy[:, 0] - dx, pools.int_xy[:, 1] - dy)
        ok = (d >= low) & (d <= high)
        if split is not None and by_area:
            ok &= pools.int_side == split
        idx = np.nonzero(ok)[0]
        if idx.size == 0:
            reasons["no start in range"] += 1
            return None
        j = int(idx[rng.integers(idx.size)])
        node = pools.int_nodes[j]
        lat, lon = city.graph.nodes[node]["lat"], city.graph.nodes[node]["lon"]
        name = pools.int_names[j] or f"the intersection at ({lat:.5f}, {lon:.5f})"
        origin = Place(name=name, lat=lat, lon=lon, category="intersection", kind="intersection")
        start = Endpoint(name=name, lat=lat, lon=lon, kind="intersection", intersection=True)
        start_key = f"node/{node}"
    else:
        cand = pools.start_idx
        d = np.hypot(pools.poi_xy[cand, 0] - dx, pools.poi_xy[cand, 1] - dy)
        ok = (d >= low) & (d <= high)
        if split is not None and by_area:
            ok &= pools.poi_side[cand] == split
        idx = cand[np.nonzero(ok)[0]]
        idx = idx[idx != di]
        if idx.size == 0:
            reasons["no start in range"] += 1
            return None
        origin = pools.pois[int(idx[rng.integers(idx.size)])]
        if origin.name == dest.name:
            reasons["start named like destination"] += 1
            return None
        start = Endpoint(
            name=origin.name,
            lat=origin.lat,
            lon=origin.lon,
            kind="poi",
            category=origin.category,
            place_id=origin.id,
        )
        start_key = origin.id or f"{origin.lat:.6f},{origin.lon:.6f}"
    route = city.route(origin, dest)
    reason = _check(city, route, config)
    if reason:
        reasons[reason] += 1
        return None
    route_id = _route_id(city.name, start_key, dest.id or dest.name)
    return route_from_world(city, route, start=start, route_id=route_id, split=split or "")


def _check(city: City, route: Route, config: GenerationConfig) -> str | None:
    """Why a planned route is rejected, or None when it passes."""
    if not config.min_length_m <= route.length_m <= config.max_length_m:
        return "length out of range"
    turns = len(route.steps) - 1
    if turns < config.min_turns:
        return "too few turns"
    if turns > config.max_turns:
        return "too many turns"
    if any(s.distance_m < config.min_leg_m for s in route.steps):
        return "leg too short"
    headings = [
        round(bearing_deg(*a, *b)) % 360
        for a, b in zip(
            [route.origin_snap, *route.turn_points[:-1]], route.turn_points, strict=True
        )
    ]
    for h0, h1 in itertools.pairwise(headings):
        if _ambiguous(heading_change_deg(h0, h1)):
            return "ambiguous turn angle"
    _, int_xy, _ = street_intersections(city)
    for step in route.steps[:-1]:
        x, y = city.to_xy(*step.end)
        if not _near_intersection(int_xy, x, y, INTERSECTION_RADIUS_M):
            return "turn point is not an intersection"
    return None


# ---------------------------------------------------------------------------- files
def _open_text(path: Path, mode: str):
    if path.name.endswith(".gz"):
        return gzip.open(path, mode + "t", encoding="utf-8")
    return path.open(mode, encoding="utf-8")


def manifest_path(path: Path) -> Path:
    """``routes.jsonl.gz`` → ``routes.manifest.json`` (next to the data)."""
    name = path.name
    for suffix in (".jsonl.gz", ".jsonl", ".json"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return path.with_name(f"{name}.manifest.json")


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_routes(
    routes: Sequence[NavRoute], path: Path | str, *, manifest: dict[str, Any] | None = None
) -> Path:
    """Write routes as JSONL (gzipped when the name ends in ``.gz``) plus a manifest.

    The manifest (``<name>.manifest.json``) holds `manifest` plus the route counts per split
    and city, the sha256 of the data file and of the sorted route ids, so a copy can be
    checked and a split recomputed.

    Returns
    -------
    Path
        The manifest's path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.name.endswith(".gz"):
        # A fixed mtime and no file name keep the bytes (and the manifest hash) reproducible.
        with (
            path.open("wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
        ):
            for route in routes:
                gz.write((json.dumps(route.to_dict(), ensure_ascii=False) + "\n").encode())
    else:
        with path.open("w", encoding="utf-8") as handle:
            for route in routes:
                handle.write(json.dumps(route.to_dict(), ensure_ascii=False) + "\n")
    ids = sorted(r.route_id for r in routes)
    from openvirl import __version__

    body = {
        "dataset": "openvirl-navigation-routes",
        "openvirl_version": __version__,
        **(manifest or {}),
        "file": path.name,
        "format": "JSONL, one NavRoute.to_dict() per line"
        + (" (gzip)" if ".gz" in path.name else ""),
        "counts": {
            "routes": len(routes),
            "by_split": dict(Counter(r.split for r in routes)),
            "by_city": dict(Counter(r.city for r in routes)),
        },
        "sha256": {
            path.name: sha256_file(path),
            "route_ids": hashlib.sha256("\n".join(ids).encode()).hexdigest(),
        },
    }
    out = manifest_path(path)
    out.write_text(json.dumps(body, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def read_routes(path: Path | str, *, city: str | None = None) -> list[NavRoute]:
    """Read routes from our JSONL (``.jsonl``/``.jsonl.gz``) or a V-IRL ``route_infos.json``.

    Parameters
    ----------
    path
        The file.
    city
        City name for V-IRL files (they do not name their city); ignored for JSONL.

    Raises
    ------
    RouteFormatError
        A record lacks a field (the message names the route and the field) or the file is
        neither format.
    FileNotFoundError
        No such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no route file at {path}")
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        routes = []
        with _open_text(path, "r") as handle:
            for line_no, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    data = json.loads(line)
                except json.JSONDecodeError as err:
                    raise RouteFormatError(
                        f"{path.name} line {line_no}: not JSON ({err})"
                    ) from None
                routes.append(NavRoute.from_dict(data, where=f"{path.name} line {line_no}"))
        return routes
    with _open_text(path, "r") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as err:
            raise RouteFormatError(f"{path.name}: not JSON ({err})") from None
    return from_virl(data, city=city or "unknown", name=path.stem)


# ---------------------------------------------------------------------------- V-IRL format
_LANDMARK_RE = re.compile(r"^(?:The destination\s+)?(.*?)\s+is on your\s+(.+?)\.?$", re.IGNORECASE)
_HEADING_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)")


def parse_milestone_info(text: str) -> list[dict[str, str]]:
    """Split V-IRL's ``milestone_info`` string into one dict per ``{ ... }`` block.

    Lines are read as V-IRL's env reads them (spec §3.1): split on the first ``:``, strip
    quotes and a trailing comma.
    """
    blocks: list[dict[str, str]] = []
    current: dict[str, str] | None = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("{"):
            current = {}
            s = s[1:].strip()
        if current is None:
            continue
        closing = s.endswith("}") or s.endswith("},")
        if closing:
            s = s.rstrip(",").rstrip("}").strip()
        if ":" in s:
            key, value = s.split(":", 1)
            current[key.strip().strip("\"'")] = value.strip().rstrip(",").strip().strip("\"'")
        if closing:
            blocks.append(current)
            current = None
    return blocks


def split_landmark(text: str) -> tuple[str | None, str | None]:
    """``"Aritzia is on your left front"`` → ``("Aritzia", "left front")``; none → (None, None)."""
    if not text or text.strip().lower().startswith("no landmark"):
        return None, None
    m = _LANDMARK_RE.match(text.strip())
    if not m:
        return None, None
    return m.group(1).strip(), m.group(2).strip()


def _get(record: dict[str, Any], dotted: str, where: str) -> Any:
    value: Any = record
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value or value[part] is None:
            raise RouteFormatError(f"{where}: missing field `{dotted}`")
        value = value[part]
    return value


def _latlon(value: Any, where: str, what: str) -> tuple[float, float]:
    try:
        lat, lon = float(value[0]), float(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        raise RouteFormatError(f"{where}: field `{what}` must be [lat, lng]") from None
    return lat, lon


def from_virl(data: Any, *, city: str = "unknown", name: str = "route_infos") -> list[NavRoute]:
    """Import V-IRL / SFTvsRL route records (``route_infos.json``, spec §3.1 and platform §4).

    Reads exactly what the reference env reads: ``start_place.relocated_geocode`` (or
    ``geocode``), ``init_heading`` (0 or missing → drawn per episode),
    ``route_results.geocode_list``, ``milestone_info`` (landmarks and
    ``to_next_intersection_heading``) and ``dest_place.name``; plus, when present,
    ``route_results.polyline`` (one encoded polyline per step) and ``distance_list``.

    Parameters
    ----------
    data
        The parsed JSON: one route record (``data/tourist/route_infos_*.json``),
        ``[route_list, route_num]``, or a bare list of records.
    city
        The city the routes lie in.
    name
        Prefix of the route ids (``<name>-0003``).

    Raises
    ------
    RouteFormatError
        A record lacks a field; the message names the route (index and destination) and the
        field, e.g. ``route 3 (MoMA Design Store): missing field `milestone_info```.
    """
    from openvirl.envs.navigation.virl_io import virl_records

    records = virl_records(data, name=name)
    return [_from_virl_record(r, i, city, name) for i, r in enumerate(records)]


OPENVIRL_KEY = "openvirl_route"
"""Key of the full `NavRoute.to_dict()` record that `to_virl` adds to a V-IRL record."""


def _embedded(record: dict[str, Any], i: int) -> NavRoute | None:
    """The route `to_virl` embedded in a record, when it still matches the record's own
    V-IRL fields (an edited file falls back to those fields)."""
    data = record.get(OPENVIRL_KEY)
    if not isinstance(data, dict):
        return None
    try:
        route = NavRoute.from_dict(data, where=f"route {i} `{OPENVIRL_KEY}`")
    except RouteFormatError:
        return None
    geocodes = (record.get("route_results") or {}).get("geocode_list")
    if geocodes != [[m.lat, m.lon] for m in route.milestones]:
        return None
    return route


def _from_virl_record(record: Any, i: int, city: str, name: str) -> NavRoute:
    if not isinstance(record, dict):
        raise RouteFormatError(f"route {i}: expected an object, got {type(record).__name__}")
    embedded = _embedded(record, i)
    if embedded is not None:
        return embedded
    if isinstance(record.get("city"), str) and record["city"] and city == "unknown":
        city = record["city"]  # written by `to_virl`; an explicit --city still wins
    dest_name = (
        (record.get("dest_place") or {}).get("name")
        if isinstance(record.get("dest_place"), dict)
        else None
    )
    where = f"route {i}" + (f" ({dest_name})" if dest_name else "")
    start_place = _get(record, "start_place", where)
    if not isinstance(start_place, dict):
        raise RouteFormatError(f"{where}: field `start_place` must be an object")
    if start_place.get("relocated_geocode") is not None:
        s_lat, s_lon = _latlon(
            start_place["relocated_geocode"], where, "start_place.relocated_geocode"
        )
    elif start_place.get("geocode") is not None:
        s_lat, s_lon = _latlon(start_place["geocode"], where, "start_place.geocode")
    else:
        raise RouteFormatError(f"{where}: missing field `start_place.relocated_geocode`")
    geocodes = _get(record, "route_results.geocode_list", where)
    if not isinstance(geocodes, list) or not geocodes:
        raise RouteFormatError(f"{where}: field `route_results.geocode_list` must be a list")
    points = [_latlon(g, where, f"route_results.geocode_list[{k}]") for k, g in enumerate(geocodes)]
    info = _get(record, "milestone_info", where)
    if not isinstance(info, str):
        raise RouteFormatError(f"{where}: field `milestone_info` must be a string")
    blocks = parse_milestone_info(info)
    if len(blocks) != len(points):
        raise RouteFormatError(
            f"{where}: field `milestone_info` has {len(blocks)} blocks but "
            f"`route_results.geocode_list` has {len(points)} points"
        )
    results = record.get("route_results") or {}
    polylines = results.get("polyline") if isinstance(results.get("polyline"), list) else None
    distances = (
        results.get("distance_list") if isinstance(results.get("distance_list"), list) else None
    )
    milestones: list[Milestone] = []
    prev = (s_lat, s_lon)
    for k, (block, point) in enumerate(zip(blocks, points, strict=True)):
        raw_heading = block.get("to_next_intersection_heading")
        if raw_heading is None:
            raise RouteFormatError(
                f"{where}: missing field `milestone_info[{k}].to_next_intersection_heading`"
            )
        m = _HEADING_RE.match(raw_heading)
        if not m:
            raise RouteFormatError(
                f"{where}: field `milestone_info[{k}].to_next_intersection_heading` is "
                f"{raw_heading!r}, expected e.g. '298 (northwest)'"
            )
        landmark = block.get("landmarks") or NO_LANDMARK
        lm_name, lm_rel = split_landmark(landmark)
        polyline = ""
        if polylines and k < len(polylines) and isinstance(polylines[k], str):
            polyline = polylines[k]
        distance = (
            float(distances[k])
            if distances and k < len(distances) and isinstance(distances[k], (int, float))
            else haversine_m(prev[0], prev[1], point[0], point[1])
        )
        milestones.append(
            Milestone(
                lat=point[0],
                lon=point[1],
                heading=round(float(m.group(1))) % 360,
                landmark=landmark,
                landmark_name=lm_name,
                landmark_relation=lm_rel,
                intersection=k < len(points) - 1,
                distance_m=round(distance, 1),
                polyline=polyline,
            )
        )
        prev = point
    dest = record.get("dest_place") or {}
    d_lat, d_lon = points[-1]
    if isinstance(dest, dict) and dest.get("geocode") is not None:
        place_lat, place_lon = _latlon(dest["geocode"], where, "dest_place.geocode")
    else:
        place_lat, place_lon = d_lat, d_lon
    init = record.get("init_heading")
    init_heading = None if not init else round(float(init)) % 360
    route_id = record.get("route_id")
    return NavRoute(
        route_id=route_id if isinstance(route_id, str) and route_id else f"{name}-{i:04d}",
        city=city,
        start=Endpoint(
            name=str(start_place.get("name", "start")),
            lat=s_lat,
            lon=s_lon,
            place_id=str(start_place.get("place_id", "")),
        ),
        destination=Endpoint(
            name=str(dest.get("name", "the destination")) if isinstance(dest, dict) else "",
            lat=d_lat,
            lon=d_lon,
            category=(dest.get("place_types") or [None])[0] if isinstance(dest, dict) else None,
            place_id=str(dest.get("place_id", "")) if isinstance(dest, dict) else "",
            place_lat=place_lat,
            place_lon=place_lon,
        ),
        milestones=milestones,
        init_heading=init_heading,
        source="virl",
        meta={"virl_index": i},
    )


def milestone_info_text(route: NavRoute, *, init_heading: int = 0) -> str:
    """V-IRL's ``milestone_info`` string for a route (one block per milestone)."""
    blocks = []
    human = init_heading % 360
    for i, m in enumerate(route.milestones, 1):
        lines = [
            f'    "intersection_idx": {i},',
            f'    "human_heading": "{human} ({compass_word(human)})",',
            f'    "to_next_intersection_heading": "{m.heading} ({m.compass})",',
            f'    "distance": "{round(m.distance_m)} m",',
            f'    "landmarks": "{m.landmark}",',
        ]
        blocks.append("{\n" + "\n".join(lines) + "\n}")
        human = m.heading
    return "\n".join(blocks)


def to_virl(route: NavRoute, *, instruction: str | None = None) -> dict[str, Any]:
    """One route as a V-IRL route record (the fields the SFTvsRL env reads, and more).

    ``init_heading`` is written as 0 when the route has none, which the SFTvsRL env reads as
    "draw a random heading", as ours does.
    """
    s, d = route.start, route.destination
    start_place = {
        "name": s.name,
        "geocode": [
            s.place_lat if s.place_lat is not None else s.lat,
            s.place_lon if s.place_lon is not None else s.lon,
        ],
        "relocated_geocode": [s.lat, s.lon],
        "place_id": s.place_id,
        "place_types": [s.category or s.kind],
    }
    dest_place = {
        "name": d.name,
        "geocode": [
            d.place_lat if d.place_lat is not None else d.lat,
            d.place_lon if d.place_lon is not None else d.lon,
        ],
        "relocated_geocode": [d.lat, d.lon],
        "place_id": d.place_id,
        "place_types": [d.category or d.kind],
    }
    landmark_list: list[dict[str, Any] | None] = []
    for m in route.milestones[:-1]:
        if m.landmark_name:
            landmark_list.append(
                {
                    "name": m.landmark_name,
                    "geocode": [m.lat, m.lon],
                    "spatial_relation": m.landmark_relation,
                    "expression": m.landmark,
                }
            )
        else:
            landmark_list.append(None)
    init = route.init_heading or 0
    return {
        "start_place": start_place,
        "dest_place": dest_place,
        "route_results": {
            "geocode_list": [[m.lat, m.lon] for m in route.milestones],
            "polyline": [m.polyline for m in route.milestones],
            "distance_list": [m.distance_m for m in route.milestones],
            "distance": round(route.length_m, 1),
            "n_landmarks": sum(1 for x in landmark_list if x is not None),
            "landmark_list": landmark_list,
        },
        "init_heading": init,
        "milestone_info": milestone_info_text(route, init_heading=init),
        "instruction": instruction or "",
        "route_id": route.route_id,
        "city": route.city,
        # Our whole record, so jsonl -> json -> jsonl is lossless (start kind, street names,
        # crossings, split...); V-IRL and SFTvsRL readers ignore the extra key.
        OPENVIRL_KEY: route.to_dict(),
    }


def write_virl(routes: Sequence[NavRoute], path: Path | str) -> Path:
    """Write routes as a V-IRL ``route_infos.json``: ``[route_list, route_num]``."""
    from openvirl.envs.navigation.rail import synthesize_instruction

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    records = []
    for route in routes:
        sentences = route.instruction or synthesize_instruction(
            route, route.init_heading or 0, style="reference"
        )
        text = "\n".join(f"{i}. {s}" for i, s in enumerate(sentences, 1))
        records.append(to_virl(route, instruction=text))
    path.write_text(
        json.dumps([records, len(records)], indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return path


__all__ = [
    "NO_LANDMARK",
    "OPENVIRL_KEY",
    "Endpoint",
    "GenerationConfig",
    "Milestone",
    "NavRoute",
    "RouteFormatError",
    "RouteGenerationError",
    "area_cell",
    "cell_split",
    "describe_split",
    "from_virl",
    "generate_routes",
    "manifest_path",
    "milestone_info_text",
    "parse_milestone_info",
    "read_routes",
    "route_from_world",
    "split_landmark",
    "street_intersections",
    "to_virl",
    "write_routes",
    "write_virl",
]
