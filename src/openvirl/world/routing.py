"""Walking routes on a city's graph: turn-by-turn steps, landmark milestones, waypoint tours.

A route snaps its two ends to the nearest walkable edge (preferring the main network and
street centre-lines, where V-IRL's Street View panoramas stand), finds the cheapest path with
A* (cost = metres x `ROUTE_COST_FACTORS`), and splits it into steps at turns sharper than
`TURN_SPLIT_DEG` and at changes of street name. Each step ends at a turn point and carries
V-IRL's milestone (§4): the most prominent named POI within `LANDMARK_RADIUS_M` of the turn
point, with its egocentric relation to the walker arriving there; the last step carries the
destination's side instead.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import shapely
from shapely import ops
from shapely.geometry import Point

from openvirl.world.city import MAX_SNAP_M, STREET_HIGHWAYS, WALK_SPEED_MPS, oriented_coords
from openvirl.world.errors import NoRouteError, OutsideMapError, WorldError
from openvirl.world.geometry import (
    bearing_deg,
    compass_word,
    egocentric_relation,
    encode_polyline,
    relative_turn,
    turn_maneuver,
    xy_bearing_deg,
)
from openvirl.world.places import Place

if TYPE_CHECKING:
    from openvirl.world.city import City

TURN_SPLIT_DEG = 30.0
"""A heading change above this many degrees at a graph node starts a new step."""

TURN_PENALTY_M = 20.0
"""Routing cost of a turn sharper than `TURN_SPLIT_DEG`, metres: among paths of about equal
length (a street grid) the one with fewer turns wins; it never makes a detour longer than
this per turn avoided."""

LOCAL_BEARING_M = 15.0
"""Length over which the heading into and out of a node is measured, metres."""

MIN_STEP_M = 12.0
"""Steps shorter than this are merged into their neighbour, metres."""

MIN_UNNAMED_STEP_M = 25.0
"""Unnamed steps (crossings, footway links) shorter than this are merged too, metres."""

LANDMARK_RADIUS_M = 35.0
"""Landmarks of a turn point are named POIs within this distance of it, metres."""

MAX_LANDMARKS = 3
"""Most landmarks kept per step (the first is the milestone)."""

SNAP_PREFERENCE_M = 25.0
"""Snapping takes a main-network or street centre-line edge over a closer footway if it is
at most this much farther, metres."""

EXACT_MAX_STOPS = 10
"""Tours of up to this many free stops are solved exactly (Held-Karp); longer ones by 2-opt."""

MAX_TOUR_STOPS = 50
"""Most stops a tour accepts."""

NO_LANDMARK = "No landmarks nearby"
"""Milestone text of a turn point without a landmark (V-IRL's string)."""


@dataclass(frozen=True)
class Snap:
    """A point snapped onto the walk graph.

    Attributes
    ----------
    lat, lon
        The snapped point on the edge, degrees.
    x, y
        The same in local metres.
    u, v
        The edge's nodes.
    dist_u_m, dist_v_m
        Distance along the edge from the snapped point to `u` and to `v`, metres.
    distance_m
        Straight-line distance from the query point to the snapped point, metres.
    street
        The edge's street name ("" if none).
    """

    lat: float
    lon: float
    x: float
    y: float
    u: int
    v: int
    dist_u_m: float
    dist_v_m: float
    distance_m: float
    street: str


_RELATION_PHRASES = {
    "front": "ahead of you",
    "behind": "behind you",
    "left front": "ahead on your left",
    "right front": "ahead on your right",
    "left behind": "behind you on your left",
    "right behind": "behind you on your right",
}


def relation_phrase(relation: str) -> str:
    """An egocentric relation word as English: "front" -> "ahead of you", "left" -> "on your
    left" (never "on your front" or "on your behind")."""
    return _RELATION_PHRASES.get(relation, f"on your {relation}")


@dataclass(frozen=True)
class Landmark:
    """A named POI (or the destination) seen from a turn point.

    Attributes
    ----------
    name
        The POI's display name.
    relation
        Egocentric relation to the walker's heading: front, right front, right, right
        behind, behind, left behind, left or left front.
    distance_m
        Distance from the turn point, metres.
    place
        The POI.
    is_destination
        True for the destination at the end of the route.
    """

    name: str
    relation: str
    distance_m: float
    place: Place | None = None
    is_destination: bool = False

    @property
    def text(self) -> str:
        """V-IRL's sentence: "X is on your left front" / "The destination X is on your left"."""
        if self.is_destination:
            return f"The destination {self.name} is on your {self.relation}"
        return f"{self.name} is on your {self.relation}"

    @property
    def sentence(self) -> str:
        """The same in plain English for written directions: "X is ahead of you", "X is
        behind you on your left", "The destination X is on your right" (`text` keeps
        V-IRL's relation words, which the navigation task parses)."""
        subject = f"The destination {self.name}" if self.is_destination else self.name
        return f"{subject} is {relation_phrase(self.relation)}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "name": self.name,
            "relation": self.relation,
            "distance_m": round(self.distance_m, 1),
            "place_id": self.place.id if self.place else None,
            "lat": self.place.lat if self.place else None,
            "lon": self.place.lon if self.place else None,
            "is_destination": self.is_destination,
            "text": self.text,
        }


@dataclass
class Step:
    """One leg of a route, from one turn point to the next.

    Attributes
    ----------
    street
        Street name of the leg ("" for an unnamed footway).
    distance_m
        Length, metres (the first and last steps include the walk from and to the street).
    heading
        Bearing from the leg's start to its end (its turn point), degrees clockwise from
        north: the heading V-IRL computes between consecutive route points.
    turn
        Relative turn onto this leg from the previous leg's heading: left, slightly left,
        slightly right or right (`geometry.relative_turn`); "depart" for the first leg unless
        the route was given an initial heading.
    landmarks
        POIs at the leg's end, most prominent first; for the last leg, the destination.
    compass
        `heading` as one of 8 compass words.
    maneuver
        Finer turn word for written directions (`geometry.turn_maneuver`), or "depart".
    duration_s
        Walking time, seconds.
    start, end
        (lat, lon) of the leg's ends, degrees; `end` is the turn point.
    polyline
        The leg's (lat, lon) points, degrees.
    instruction
        The written direction (deterministic template).
    """

    street: str
    distance_m: float
    heading: float
    turn: str
    landmarks: list[Landmark] = field(default_factory=list)
    compass: str = ""
    maneuver: str = ""
    duration_s: float = 0.0
    start: tuple[float, float] = (0.0, 0.0)
    end: tuple[float, float] = (0.0, 0.0)
    polyline: list[tuple[float, float]] = field(default_factory=list)
    instruction: str = ""

    @property
    def milestone(self) -> str:
        """The milestone text at the leg's end: the first landmark's sentence or
        "No landmarks nearby"."""
        return self.landmarks[0].text if self.landmarks else NO_LANDMARK

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "street": self.street,
            "distance_m": round(self.distance_m, 1),
            "duration_s": round(self.duration_s, 1),
            "heading": round(self.heading, 1),
            "compass": self.compass,
            "turn": self.turn,
            "maneuver": self.maneuver,
            "start": list(self.start),
            "end": list(self.end),
            "landmarks": [lm.to_dict() for lm in self.landmarks],
            "milestone": self.milestone,
            "instruction": self.instruction,
            "polyline": [list(p) for p in self.polyline],
        }


@dataclass
class Route:
    """A walking route.

    Attributes
    ----------
    length_m
        Total walking length, metres, including the walks from the origin to the street and
        from the street to the destination.
    duration_s
        Walking time at the route's speed, seconds.
    polyline
        (lat, lon) points from the origin to the destination, degrees.
    steps
        The legs, split at turns and street-name changes.
    origin, destination
        The two ends as places.
    origin_snap, destination_snap
        Where the ends meet the walk graph (V-IRL's `relocated_geocode`), (lat, lon) degrees.
    destination_relation
        Side of the destination for the walker at the end: left, right, front, ...
    node_path
        Graph node ids along the path.
    speed_mps
        Walking speed, metres per second.
    """

    length_m: float
    duration_s: float
    polyline: list[tuple[float, float]]
    steps: list[Step]
    origin: Place
    destination: Place
    origin_snap: tuple[float, float]
    destination_snap: tuple[float, float]
    destination_relation: str
    node_path: list[int] = field(default_factory=list)
    speed_mps: float = WALK_SPEED_MPS

    def __repr__(self) -> str:
        # Short on purpose: steps, polyline and node path are in the fields / `to_dict()`.
        return (
            f"Route({self.origin.name!r} -> {self.destination.name!r}, "
            f"length_m={self.length_m:.0f}, duration_s={self.duration_s:.0f}, "
            f"steps={len(self.steps)})"
        )

    @property
    def turn_points(self) -> list[tuple[float, float]]:
        """Each step's end point (V-IRL's `geocode_list`), the destination's snap last."""
        return [s.end for s in self.steps]

    @property
    def instructions(self) -> list[str]:
        """The written direction of each step."""
        return [s.instruction for s in self.steps]

    @property
    def text(self) -> str:
        """The numbered written directions, one per line."""
        return "\n".join(f"{i}. {s.instruction}" for i, s in enumerate(self.steps, 1))

    def milestone_info(self, *, init_heading: float = 0.0) -> str:
        """V-IRL's milestone template (§4), one `{...}` block per turn point.

        Parameters
        ----------
        init_heading
            The walker's heading at the start, degrees clockwise from north (V-IRL uses 0).

        Returns
        -------
        str
            Blocks with `intersection_idx`, `human_heading` (heading before the leg),
            `to_next_intersection_heading` ("298 (northwest)"), `distance` and `landmarks`.
        """
        blocks = []
        human = init_heading % 360.0
        for i, step in enumerate(self.steps, 1):
            lines = [
                f'    "intersection_idx": {i},',
                f'    "human_heading": "{round(human) % 360} ({compass_word(human)})",',
                f'    "to_next_intersection_heading": "{round(step.heading) % 360} '
                f'({step.compass})",',
                f'    "distance": "{round(step.distance_m)} m",',
                f'    "landmarks": "{step.milestone}",',
            ]
            blocks.append("{\n" + "\n".join(lines) + "\n}")
            human = step.heading
        return "\n".join(blocks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of the whole route."""
        return {
            "length_m": round(self.length_m, 1),
            "duration_s": round(self.duration_s, 1),
            "speed_mps": self.speed_mps,
            "origin": self.origin.to_dict(),
            "destination": self.destination.to_dict(),
            "origin_snap": list(self.origin_snap),
            "destination_snap": list(self.destination_snap),
            "destination_relation": self.destination_relation,
            "steps": [s.to_dict() for s in self.steps],
            "polyline": [list(p) for p in self.polyline],
            "text": self.text,
        }

    def to_geojson(self) -> dict[str, Any]:
        """The route as a GeoJSON FeatureCollection; see `maps.route_geojson`."""
        from openvirl.world.maps import route_geojson

        return route_geojson(self)

    def to_virl_dict(self, *, init_heading: float = 0.0) -> dict[str, Any]:
        """The route as a V-IRL route record (§4: `route_infos` entries).

        Parameters
        ----------
        init_heading
            The walker's initial heading, degrees clockwise from north.

        Returns
        -------
        dict
            `start_place`, `dest_place` (place dicts with `relocated_geocode`),
            `route_results` (`geocode_list`, encoded `polyline` per step, `instructions`,
            `distance_list`, `time_list`, `time`, `distance`, `n_landmarks`,
            `landmark_list`), `init_heading`, `milestone_info` and `instruction`.
        """
        start = self.origin.to_virl_dict()
        start["relocated_geocode"] = self.origin_snap
        dest = self.destination.to_virl_dict(self.origin.latlon)
        dest["relocated_geocode"] = self.destination_snap
        landmark_list: list[dict[str, Any] | None] = []
        for step in self.steps[:-1]:
            if step.landmarks and step.landmarks[0].place is not None:
                lm = step.landmarks[0]
                entry = lm.place.to_virl_dict(step.end)
                entry["spatial_relation"] = lm.relation
                entry["expression"] = lm.text
                landmark_list.append(entry)
            else:
                landmark_list.append(None)
        return {
            "start_place": start,
            "dest_place": dest,
            "route_results": {
                "geocode_list": self.turn_points,
                "polyline": [encode_polyline(s.polyline) for s in self.steps],
                "instructions": self.instructions,
                "distance_list": [round(s.distance_m, 1) for s in self.steps],
                "time_list": [round(s.duration_s, 1) for s in self.steps],
                "time": round(self.duration_s, 1),
                "distance": round(self.length_m, 1),
                "n_landmarks": sum(1 for x in landmark_list if x is not None),
                "landmark_list": landmark_list,
            },
            "init_heading": init_heading,
            "milestone_info": self.milestone_info(init_heading=init_heading),
            "instruction": self.text,
        }


@dataclass
class Tour:
    """The best order to visit a set of stops, and the routes between them.

    Attributes
    ----------
    order
        Indices into the `stops` argument, in visiting order.
    stops
        The stops as places, in visiting order (without `start` and `end`).
    legs
        The routes between consecutive points (start, stops..., end or back to start).
    length_m
        Total walking length, metres.
    duration_s
        Total walking time, seconds.
    method
        "exact" (Held-Karp) or "2-opt".
    points
        Every point of the problem as places: start (if given), the stops, end (if given).
    distance_matrix_m
        Walking distances between `points`, metres; `distance_matrix_m[i][j]` from i to j.
    """

    order: list[int]
    stops: list[Place]
    legs: list[Route]
    length_m: float
    duration_s: float
    method: str
    points: list[Place]
    distance_matrix_m: list[list[float]]

    def __repr__(self) -> str:
        # Short on purpose: the stops' tags and the legs' steps are in the fields.
        return (
            f"Tour(stops={[p.name for p in self.stops]!r}, order={self.order!r}, "
            f"length_m={self.length_m:.0f}, duration_s={self.duration_s:.0f}, "
            f"method={self.method!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "order": self.order,
            "stops": [p.to_dict() for p in self.stops],
            "length_m": round(self.length_m, 1),
            "duration_s": round(self.duration_s, 1),
            "method": self.method,
            "legs": [leg.to_dict() for leg in self.legs],
        }


# Tour solver ----------------------------------------------------------------------------------


def _path_cost(dist: Sequence[Sequence[float]], seq: Sequence[int], round_trip: bool) -> float:
    cost = sum(dist[a][b] for a, b in itertools.pairwise(seq))
    if round_trip and len(seq) > 1:
        cost += dist[seq[-1]][seq[0]]
    return cost


def solve_tour(
    dist: Sequence[Sequence[float]],
    *,
    start: int | None = None,
    end: int | None = None,
    round_trip: bool = False,
) -> tuple[list[int], float, str]:
    """Order in which to visit every point of a distance matrix at least total cost.

    Exact (Held-Karp dynamic programming, O(2^n n^2)) when at most `EXACT_MAX_STOPS` points
    are free to move; otherwise nearest-neighbour construction improved by 2-opt until no
    reversal helps (a local optimum).

    Parameters
    ----------
    dist
        Square matrix of costs, `dist[i][j]` from point i to point j (metres).
    start
        Index of a fixed first point, or None to let the solver choose.
    end
        Index of a fixed last point, or None.
    round_trip
        Return to the first point at the end (then `end` must be None; without `start`,
        point 0 is taken as the first, which loses nothing on a cycle).

    Returns
    -------
    tuple
        (order, cost, method): the visiting order of all point indices, its total cost, and
        "exact" or "2-opt".

    Raises
    ------
    WorldError
        Inconsistent arguments.
    """
    n = len(dist)
    if n == 0:
        return [], 0.0, "exact"
    if round_trip and end is not None:
        raise WorldError("`end` cannot be combined with `round_trip=True` (it ends at start).")
    if round_trip and start is None:
        start = 0
    if start is not None and start == end:
        raise WorldError("`start` and `end` must be different points.")
    fixed = {i for i in (start, end) if i is not None}
    free = [i for i in range(n) if i not in fixed]
    if len(free) <= EXACT_MAX_STOPS:
        order = _held_karp(dist, free, start, end, round_trip)
        method = "exact"
    else:
        order = _two_opt(dist, free, start, end, round_trip)
        method = "2-opt"
    return order, _path_cost(dist, order, round_trip), method


def _held_karp(dist, free, start, end, round_trip) -> list[int]:
    head = [start] if start is not None else []
    tail = [end] if end is not None else []
    if not free:
        return head + tail
    k = len(free)
    full = (1 << k) - 1
    inf = math.inf
    dp = [[inf] * k for _ in range(1 << k)]
    parent = [[-1] * k for _ in range(1 << k)]
    for j in range(k):
        dp[1 << j][j] = dist[start][free[j]] if start is not None else 0.0
    for mask in range(1, full + 1):
        row = dp[mask]
        for j in range(k):
            cost = row[j]
            if cost == inf or not (mask >> j) & 1:
                continue
            fj = free[j]
            for t in range(k):
                if (mask >> t) & 1:
                    continue
                nmask = mask | (1 << t)
                c = cost + dist[fj][free[t]]
                if c < dp[nmask][t]:
                    dp[nmask][t] = c
                    parent[nmask][t] = j

    def closing(j: int) -> float:
        if end is not None:
            return dist[free[j]][end]
        if round_trip:
            return dist[free[j]][start]
        return 0.0

    last = min(range(k), key=lambda j: (dp[full][j] + closing(j), j))
    seq = []
    mask, j = full, last
    while j != -1:
        seq.append(free[j])
        prev = parent[mask][j]
        mask ^= 1 << j
        j = prev
    return head + seq[::-1] + tail


def _two_opt(dist, free, start, end, round_trip) -> list[int]:
    # Nearest-neighbour start, then segment reversals while they shorten the tour.
    remaining = list(free)
    seq = [start] if start is not None else [remaining.pop(0)]
    while remaining:
        last = seq[-1]
        nxt = min(remaining, key=lambda j: (dist[last][j], j))
        remaining.remove(nxt)
        seq.append(nxt)
    if end is not None:
        seq.append(end)
    lo = 1 if start is not None else 0
    hi = len(seq) - (2 if end is not None else 1)
    best = _path_cost(dist, seq, round_trip)
    improved = True
    while improved:
        improved = False
        for i in range(lo, hi):
            for j in range(i + 1, hi + 1):
                cand = seq[:i] + seq[i : j + 1][::-1] + seq[j + 1 :]
                cost = _path_cost(dist, cand, round_trip)
                if cost < best - 1e-9:
                    seq, best, improved = cand, cost, True
    return seq


# Router ---------------------------------------------------------------------------------------


def _local_bearing(coords: np.ndarray, *, at_end: bool) -> float:
    """Bearing of the first (or last) `LOCAL_BEARING_M` of a polyline in local metres."""
    pts = coords[::-1] if at_end else coords
    origin = pts[0]
    travelled = 0.0
    target = pts[-1]
    for a, b in itertools.pairwise(pts):
        travelled += float(np.hypot(*(b - a)))
        if travelled >= LOCAL_BEARING_M:
            target = b
            break
    dx, dy = target - origin
    if at_end:
        dx, dy = -dx, -dy
    return xy_bearing_deg(float(dx), float(dy))


@dataclass
class _Piece:
    coords: np.ndarray
    length_m: float
    street: str
    highway: str
    connector: bool = False


class Router:
    """Routing structures over a city's walk graph, built on first use by `City.router`.

    Parameters
    ----------
    city
        The loaded city.
    """

    def __init__(self, city: City) -> None:
        import networkx as nx

        self.city = city
        G = city.graph
        self.ids: list[int] = list(G.nodes)
        self.index = {n: i for i, n in enumerate(self.ids)}
        self.xs = [G.nodes[n]["x"] for n in self.ids]
        self.ys = [G.nodes[n]["y"] for n in self.ids]
        self.node_xy = np.column_stack([self.xs, self.ys]) if self.ids else np.zeros((0, 2))
        # Directed adjacency: (to, cost, bearing leaving `from`, bearing arriving at `to`, id).
        self.adj: list[list[tuple[int, float, float, float, int]]] = [[] for _ in self.ids]
        self.edge_to: list[int] = []
        self.arrive: dict[tuple[int, int], float] = {}
        for u, v, d in G.edges(data=True):
            coords = oriented_coords(d, u)
            b_out_u = _local_bearing(coords, at_end=False)
            b_in_v = _local_bearing(coords, at_end=True)
            iu, iv = self.index[u], self.index[v]
            for i, j, leave, arrive in (
                (iu, iv, b_out_u, b_in_v),
                (iv, iu, (b_in_v + 180.0) % 360.0, (b_out_u + 180.0) % 360.0),
            ):
                self.adj[i].append((j, d["weight"], leave, arrive, len(self.edge_to)))
                self.edge_to.append(j)
                self.arrive[(i, j)] = arrive
        # Components, the largest (by length) first.
        comps = sorted(
            nx.connected_components(G),
            key=lambda c: -sum(d["length_m"] for _, _, d in G.subgraph(c).edges(data=True)),
        )
        self.component = {}
        for k, comp in enumerate(comps):
            for n in comp:
                self.component[n] = k
        self.edges: list[tuple[int, int]] = list(G.edges)
        geoms = [G[u][v]["geometry"] for u, v in self.edges]
        self.edge_geoms = np.array(geoms, dtype=object)
        self.tree = shapely.STRtree(geoms)
        self.edge_main = np.array([self.component[u] == 0 for u, _ in self.edges], dtype=bool)
        self.edge_street = np.array(
            [G[u][v]["highway"] in STREET_HIGHWAYS for u, v in self.edges], dtype=bool
        )
        self.edge_named = np.array([bool(G[u][v]["street"]) for u, v in self.edges], dtype=bool)

    # Snapping ---------------------------------------------------------------------------

    def nearest_node(self, x: float, y: float) -> int:
        """The graph node nearest to local point (`x`, `y`) metres."""
        d = np.hypot(self.node_xy[:, 0] - x, self.node_xy[:, 1] - y)
        return self.ids[int(np.argmin(d))]

    def nearest_street(self, x: float, y: float) -> tuple[str, float]:
        """Name of, and distance to (metres), the nearest named edge around (`x`, `y`)."""
        pt = Point(x, y)
        idx, d = self.tree.query_nearest(pt, return_distance=True, all_matches=False)
        if len(idx) == 0:
            return "", math.inf
        cands = self.tree.query(pt, predicate="dwithin", distance=float(d[0]) + 30.0)
        cands = cands[self.edge_named[cands]]
        if len(cands) == 0:
            return "", math.inf
        ds = shapely.distance(self.edge_geoms[cands], pt)
        k = int(np.argmin(ds))
        u, v = self.edges[int(cands[k])]
        return self.city.graph[u][v]["street"], float(ds[k])

    def snap(self, lat: float, lon: float) -> Snap:
        """Snap a point onto the walk graph.

        The nearest edge wins, except that an edge of the main network, then a street
        centre-line, is preferred when it is at most `SNAP_PREFERENCE_M` farther.

        Parameters
        ----------
        lat, lon
            The point, degrees.

        Returns
        -------
        Snap
            The snapped point.

        Raises
        ------
        OutsideMapError
            The point is off the map or farther than `MAX_SNAP_M` from any walkable edge.
        """
        city = self.city
        city.check_inside(lat, lon)
        x, y = city.to_xy(lat, lon)
        pt = Point(x, y)
        idx, d = self.tree.query_nearest(pt, return_distance=True, all_matches=False)
        if len(idx) == 0 or d[0] > MAX_SNAP_M:
            raise OutsideMapError(
                f"Point ({lat:.6f}, {lon:.6f}) is more than {MAX_SNAP_M:.0f} m from any walkable "
                f"street of `{city.name}`; pass a point on or near a street."
            )
        cands = self.tree.query(pt, predicate="dwithin", distance=float(d[0]) + SNAP_PREFERENCE_M)
        ds = shapely.distance(self.edge_geoms[cands], pt)
        main = self.edge_main[cands]
        if main.any():
            cands, ds = cands[main], ds[main]
        street = self.edge_street[cands]
        if street.any():
            cands, ds = cands[street], ds[street]
        k = int(np.argmin(ds))
        e = int(cands[k])
        u, v = self.edges[e]
        data = city.graph[u][v]
        geom = self.edge_geoms[e]
        s = geom.project(pt)
        p = geom.interpolate(s)
        scale = data["length_m"] / geom.length if geom.length > 0 else 1.0
        along_start = s * scale  # metres from the geometry's start node
        if data["geometry_start"] == u:
            du, dv = along_start, data["length_m"] - along_start
        else:
            du, dv = data["length_m"] - along_start, along_start
        plat, plon = city.to_latlon(p.x, p.y)
        return Snap(plat, plon, p.x, p.y, u, v, du, dv, float(ds[k]), data["street"])

    def street_heading(self, lat: float, lon: float) -> float:
        """The direction of the street nearest a point, degrees clockwise from north.

        Of the street's two directions, the one within 90° of north (east when it runs
        exactly east-west), so the default view of a point looks along the street rather
        than at a wall (Manhattan's grid is tilted 29° from north).
        """
        snap = self.snap(lat, lon)
        geom = self.city.graph[snap.u][snap.v]["geometry"]
        s = geom.project(Point(snap.x, snap.y))
        a = geom.interpolate(max(0.0, s - 3.0))
        b = geom.interpolate(min(geom.length, s + 3.0))
        if a.distance(b) < 1e-6:
            return 0.0
        heading = xy_bearing_deg(b.x - a.x, b.y - a.y)
        if 90.0 < heading <= 270.0:
            heading = (heading + 180.0) % 360.0
        return round(float(heading), 2)

    # Shortest paths -----------------------------------------------------------------------

    def _astar(
        self,
        starts: dict[int, tuple[float, float | None]],
        goals: dict[int, tuple[float, float | None]],
        gx: float,
        gy: float,
    ) -> tuple[float, list[int]]:
        """Turn-aware A* from several start nodes to several goal nodes.

        States are directed edges, so a heading change above `TURN_SPLIT_DEG` at a node can
        cost `TURN_PENALTY_M` extra: among equally long grid paths the one with fewer turns
        wins. `starts` and `goals` map node index -> (cost of the partial edge to/from the
        snapped point, the heading along it at the node, or None). The heuristic, 0.999 x
        the straight-line distance to (`gx`, `gy`), never overestimates (costs are metres x
        factor >= 1, plus penalties).
        """
        xs, ys, adj, edge_to = self.xs, self.ys, self.adj, self.edge_to
        hypot = math.hypot
        penalty, limit = TURN_PENALTY_M, TURN_SPLIT_DEG
        dist: dict[int, float] = {}
        prev: dict[int, int] = {}
        heap: list[tuple[float, float, int, int, float | None, int]] = []
        for i, (c, bearing) in starts.items():
            state = -1 - i  # a start state: standing on node i
            dist[state] = c
            prev[state] = 0
            h = 0.999 * hypot(xs[i] - gx, ys[i] - gy)
            heapq.heappush(heap, (c + h, c, state, i, bearing, -1))
        best, best_state = math.inf, 0
        done: set[int] = set()
        while heap:
            f, g, state, i, into, came_from = heapq.heappop(heap)
            if f >= best:
                break
            if state in done:
                continue
            done.add(state)
            goal = goals.get(i)
            if goal is not None:
                total = g + goal[0]
                if (
                    into is not None
                    and goal[1] is not None
                    and abs((goal[1] - into + 540.0) % 360.0 - 180.0) > limit
                ):
                    total += penalty
                if total < best:
                    best, best_state = total, state
            for j, w, leave, arrive, eid in adj[i]:
                if j == came_from:
                    continue  # walking straight back is never part of a cheapest path
                ng = g + w
                if into is not None and abs((leave - into + 540.0) % 360.0 - 180.0) > limit:
                    ng += penalty
                if ng < dist.get(eid, math.inf):
                    dist[eid] = ng
                    prev[eid] = state
                    heapq.heappush(
                        heap,
                        (ng + 0.999 * hypot(xs[j] - gx, ys[j] - gy), ng, eid, j, arrive, i),
                    )
        if best == math.inf:
            return math.inf, []
        nodes = []
        state = best_state
        while state >= 0:
            nodes.append(edge_to[state])
            state = prev[state]
        nodes.append(-1 - state)
        return best, [self.ids[i] for i in reversed(nodes)]

    def _cost_factor(self, u: int, v: int) -> float:
        d = self.city.graph[u][v]
        return d["weight"] / d["length_m"] if d["length_m"] > 0 else 1.0

    def _ends(self, snap: Snap, *, leaving: bool) -> dict[int, tuple[float, float | None]]:
        """For each node of a snap's edge: the cost along the edge between node and snap, and
        the heading there (arriving at the node when `leaving` the snap, else departing)."""
        factor = self._cost_factor(snap.u, snap.v)
        iu, iv = self.index[snap.u], self.index[snap.v]
        out: dict[int, tuple[float, float | None]] = {}
        for node, other, d in ((iu, iv, snap.dist_u_m), (iv, iu, snap.dist_v_m)):
            # Walking snap -> node runs like the directed edge other -> node.
            bearing = self.arrive.get((other, node))
            if bearing is not None and not leaving:
                bearing = (bearing + 180.0) % 360.0  # node -> snap runs the other way
            if node not in out or d * factor < out[node][0]:
                out[node] = (d * factor, bearing)
        return out

    def _shortest(self, a: Snap, b: Snap) -> tuple[float, list[int] | None]:
        """Cheapest connection of two snaps: (cost, node path), or (cost, None) when both lie
        on the same edge and walking along it directly is cheapest. Cost is inf if none."""
        cost, path = self._astar(
            self._ends(a, leaving=True), self._ends(b, leaving=False), b.x, b.y
        )
        if {a.u, a.v} == {b.u, b.v}:
            b_from_a_u = b.dist_u_m if b.u == a.u else b.dist_v_m
            direct = abs(b_from_a_u - a.dist_u_m) * self._cost_factor(a.u, a.v)
            if direct <= cost:
                return direct, None
        return cost, path

    def walking_distance_m(self, a: Snap, b: Snap) -> float:
        """Walking length (metres) of the cheapest path between two snaps; inf if none."""
        cost, path = self._shortest(a, b)
        if math.isinf(cost):
            return math.inf
        return sum(p.length_m for p in self._pieces(a, b, path))

    # Geometry of a path -------------------------------------------------------------------

    def _partial(self, u: int, v: int, from_m: float, to_node: int) -> _Piece | None:
        """The part of edge (u, v) from `from_m` metres along it (measured from `u`) to the
        node `to_node`."""
        data = self.city.graph[u][v]
        coords = oriented_coords(data, u)
        line = shapely.LineString(coords)
        scale = line.length / data["length_m"] if data["length_m"] > 0 else 1.0
        s = from_m * scale
        e = 0.0 if to_node == u else line.length
        length = abs(e - s) / scale if scale > 0 else 0.0
        if length < 0.05:
            return None
        sub = ops.substring(line, s, e)
        pts = np.asarray(sub.coords)
        if len(pts) < 2:
            return None
        return _Piece(pts, length, data["street"], data["highway"])

    def _pieces(self, a: Snap, b: Snap, path: list[int] | None) -> list[_Piece]:
        G = self.city.graph
        if path is None:  # both on the same edge
            data = G[a.u][a.v]
            coords = oriented_coords(data, a.u)
            line = shapely.LineString(coords)
            scale = line.length / data["length_m"] if data["length_m"] > 0 else 1.0
            b_from_u = b.dist_u_m if b.u == a.u else b.dist_v_m
            length = abs(b_from_u - a.dist_u_m)
            if length < 0.05:
                return []
            sub = ops.substring(line, a.dist_u_m * scale, b_from_u * scale)
            return [_Piece(np.asarray(sub.coords), length, data["street"], data["highway"])]
        pieces: list[_Piece] = []
        first, last = path[0], path[-1]
        p = self._partial(a.u, a.v, a.dist_u_m, first)
        if p is not None:
            pieces.append(p)
        for u, v in itertools.pairwise(path):
            data = G[u][v]
            pieces.append(
                _Piece(oriented_coords(data, u), data["length_m"], data["street"], data["highway"])
            )
        # The last partial edge runs from node `last` to the snap: build it reversed.
        p = self._partial(b.u, b.v, b.dist_u_m, last)
        if p is not None:
            pieces.append(_Piece(p.coords[::-1].copy(), p.length_m, p.street, p.highway))
        return pieces

    # Public API -----------------------------------------------------------------------------

    def as_place(self, where: Place | tuple[float, float] | str, *, what: str) -> Place:
        """Turn a route end (a Place, (lat, lon) degrees, or a text to geocode) into a Place."""
        if isinstance(where, Place):
            return where
        if isinstance(where, str):
            return self.city.places.geocode(where)
        try:
            lat, lon = float(where[0]), float(where[1])
        except (TypeError, ValueError, IndexError):
            raise WorldError(
                f"`{what}` must be a Place, a (lat, lon) tuple or a text to geocode; got {where!r}."
            ) from None
        self.city.check_inside(lat, lon)
        return Place(
            name=f"({lat:.6f}, {lon:.6f})", lat=lat, lon=lon, category="point", kind="point"
        )

    def route(
        self,
        origin: Place | tuple[float, float] | str,
        destination: Place | tuple[float, float] | str,
        *,
        speed_mps: float = WALK_SPEED_MPS,
        initial_heading: float | None = None,
    ) -> Route:
        """Walking route between two points, with steps, landmarks and written directions.

        Parameters
        ----------
        origin, destination
            Each a Place, a (lat, lon) tuple (degrees), or a text to geocode.
        speed_mps
            Walking speed for durations, metres per second.
        initial_heading
            The walker's heading at the start, degrees clockwise from north; when given, the
            first step's `turn` is relative to it, otherwise it is "depart".

        Returns
        -------
        Route
            The route; a route between two points on the same spot has one step of length 0.

        Raises
        ------
        OutsideMapError
            An end is off the map, or too far from any walkable street.
        NoRouteError
            The two ends have no walking connection (they lie on separate networks).
        PlaceNotFoundError
            A text end could not be geocoded.
        """
        if speed_mps <= 0:
            raise WorldError(f"`speed_mps` must be positive, got {speed_mps}.")
        o = self.as_place(origin, what="origin")
        t = self.as_place(destination, what="destination")
        a, b = self.snap(o.lat, o.lon), self.snap(t.lat, t.lon)
        cost, path = self._shortest(a, b)
        if math.isinf(cost):
            raise NoRouteError(
                f"No walking connection between {o.name} and {t.name} in `{self.city.name}`: "
                "they lie on separate walking networks. Pick ends on the same network."
            )
        pieces = self._pieces(a, b, path)
        return self._assemble(o, t, a, b, pieces, path or [], speed_mps, initial_heading)

    def _assemble(
        self,
        origin: Place,
        destination: Place,
        a: Snap,
        b: Snap,
        pieces: list[_Piece],
        path: list[int],
        speed_mps: float,
        initial_heading: float | None,
    ) -> Route:
        city = self.city
        ox, oy = city.to_xy(origin.lat, origin.lon)
        tx, ty = city.to_xy(destination.lat, destination.lon)
        # Group pieces into legs: split at sharp turns and at changes of street name.
        groups: list[list[_Piece]] = []
        for piece in pieces:
            if not groups:
                groups.append([piece])
                continue
            cur = groups[-1]
            street = next((p.street for p in reversed(cur) if p.street), "")
            renamed = bool(piece.street and street and piece.street != street)
            into = _local_bearing(np.vstack([p.coords for p in cur[-3:]]), at_end=True)
            out = _local_bearing(piece.coords, at_end=False)
            sharp = abs(((out - into + 540.0) % 360.0) - 180.0) > TURN_SPLIT_DEG
            if renamed or sharp:
                groups.append([piece])
            else:
                cur.append(piece)
        groups = _merge_short(groups)
        if not groups:
            groups = [[_Piece(np.array([[a.x, a.y], [b.x, b.y]]), 0.0, a.street, "")]]
        # Project every vertex back to lat/lon in one call.
        coords = [np.vstack([g[0].coords[:1]] + [p.coords[1:] for p in g]) for g in groups]
        all_xy = np.vstack([np.array([[ox, oy]]), *coords, np.array([[tx, ty]])])
        lats, lons = city.to_latlon(all_xy[:, 0], all_xy[:, 1])
        latlon = list(zip(lats.tolist(), lons.tolist(), strict=True))
        access_m = a.distance_m
        egress_m = b.distance_m
        steps: list[Step] = []
        cursor = 1
        exclude = {origin.id, destination.id} - {""}
        for k, (group, xy) in enumerate(zip(groups, coords, strict=True)):
            pts = latlon[cursor : cursor + len(xy)]
            cursor += len(xy)
            length = sum(p.length_m for p in group)
            if k == 0:
                length += access_m
            if k == len(groups) - 1:
                length += egress_m
            start, end = pts[0], pts[-1]
            if math.dist(xy[0], xy[-1]) >= 1.0:
                heading = bearing_deg(start[0], start[1], end[0], end[1])
            else:
                heading = _local_bearing(xy, at_end=False) if len(xy) > 1 else 0.0
            previous = steps[-1].heading if steps else initial_heading
            if previous is None:
                turn = maneuver = "depart"
            else:
                turn, maneuver = relative_turn(previous, heading), turn_maneuver(previous, heading)
            street = next((p.street for p in group if p.street), "")
            step = Step(
                street=street,
                distance_m=length,
                heading=heading,
                turn=turn,
                compass=compass_word(heading),
                maneuver=maneuver,
                duration_s=length / speed_mps,
                start=start,
                end=end,
                polyline=pts if len(pts) > 1 else [start, end],
            )
            if k < len(groups) - 1:
                step.landmarks = self._landmarks(xy[-1], heading, exclude)
            steps.append(step)
        # The destination's side, seen from the last turn point's leg.
        last = steps[-1]
        dist_to_dest = math.hypot(tx - b.x, ty - b.y)
        if dist_to_dest < 2.0:
            relation = "front"
        else:
            relation = egocentric_relation(xy_bearing_deg(tx - b.x, ty - b.y), last.heading)
        dest_name = destination.name if destination.kind != "point" else "destination point"
        last.landmarks = [
            Landmark(dest_name, relation, dist_to_dest, destination, is_destination=True)
        ]
        for k, step in enumerate(steps):
            step.instruction = _instruction(step, k, k == len(steps) - 1)
        length_m = sum(s.distance_m for s in steps)
        return Route(
            length_m=length_m,
            duration_s=length_m / speed_mps,
            polyline=[latlon[0], *latlon[1:-1], latlon[-1]],
            steps=steps,
            origin=origin,
            destination=destination,
            origin_snap=(a.lat, a.lon),
            destination_snap=(b.lat, b.lon),
            destination_relation=relation,
            node_path=path,
            speed_mps=speed_mps,
        )

    def _landmarks(self, at: np.ndarray, heading: float, exclude: set[str]) -> list[Landmark]:
        index = self.city.places
        if len(index.xs) == 0:
            return []
        x, y = float(at[0]), float(at[1])
        d = np.hypot(index.xs - x, index.ys - y)
        idx = np.nonzero(d <= LANDMARK_RADIUS_M)[0]
        if idx.size == 0:
            return []
        order = idx[np.lexsort((d[idx], -index.prominence[idx]))]
        out: list[Landmark] = []
        for i in order.tolist():
            poi = index.pois[i]
            if poi.id in exclude:
                continue
            rel = egocentric_relation(
                xy_bearing_deg(float(index.xs[i]) - x, float(index.ys[i]) - y), heading
            )
            out.append(Landmark(poi.name, rel, float(d[i]), poi))
            if len(out) >= MAX_LANDMARKS:
                break
        return out

    def tour(
        self,
        stops: Sequence[Place | tuple[float, float] | str],
        *,
        start: Place | tuple[float, float] | str | None = None,
        end: Place | tuple[float, float] | str | None = None,
        round_trip: bool = False,
        speed_mps: float = WALK_SPEED_MPS,
    ) -> Tour:
        """Best order to visit stops on foot, with the routes between them.

        Walking distances between every pair of points are computed on the graph; the order
        is exact for up to `EXACT_MAX_STOPS` stops and 2-opt beyond (see `solve_tour`).

        Parameters
        ----------
        stops
            The places to visit (Place, (lat, lon) degrees, or text), at most
            `MAX_TOUR_STOPS`.
        start
            A fixed first point, or None to start at whichever stop is best.
        end
            A fixed last point, or None.
        round_trip
            Come back to `start` (or to the first stop) at the end.
        speed_mps
            Walking speed, metres per second.

        Returns
        -------
        Tour
            The order, the legs and the totals.

        Raises
        ------
        WorldError
            No stop, too many stops, or `end` together with `round_trip`.
        NoRouteError
            Two of the points have no walking connection.
        """
        if not stops:
            raise WorldError("`stops` must name at least one place to visit.")
        if len(stops) > MAX_TOUR_STOPS:
            raise WorldError(f"`stops` holds {len(stops)} places; at most {MAX_TOUR_STOPS}.")
        if round_trip and end is not None:
            raise WorldError("`end` cannot be combined with `round_trip=True`.")
        stop_places = [self.as_place(s, what="stops") for s in stops]
        points = list(stop_places)
        start_i = end_i = None
        if start is not None:
            points.insert(0, self.as_place(start, what="start"))
            start_i = 0
        offset = 1 if start is not None else 0
        if end is not None:
            points.append(self.as_place(end, what="end"))
            end_i = len(points) - 1
        snaps = [self.snap(p.lat, p.lon) for p in points]
        n = len(points)
        matrix = [[0.0] * n for _ in range(n)]
        for i, j in itertools.combinations(range(n), 2):
            d = self.walking_distance_m(snaps[i], snaps[j])
            if math.isinf(d):
                raise NoRouteError(
                    f"No walking connection between {points[i].name} and {points[j].name}."
                )
            d += snaps[i].distance_m + snaps[j].distance_m
            matrix[i][j] = matrix[j][i] = d
        order, _, method = solve_tour(matrix, start=start_i, end=end_i, round_trip=round_trip)
        sequence = order + ([order[0]] if round_trip and len(order) > 1 else [])
        legs = [
            self.route(points[i], points[j], speed_mps=speed_mps)
            for i, j in itertools.pairwise(sequence)
        ]
        stop_order = [i - offset for i in order if i not in (start_i, end_i)]
        length = sum(leg.length_m for leg in legs)
        return Tour(
            order=stop_order,
            stops=[stop_places[i] for i in stop_order],
            legs=legs,
            length_m=length,
            duration_s=length / speed_mps,
            method=method,
            points=points,
            distance_matrix_m=matrix,
        )


def _merge_short(groups: list[list[_Piece]]) -> list[list[_Piece]]:
    """Merge legs shorter than `MIN_STEP_M` (unnamed ones: `MIN_UNNAMED_STEP_M`) into the
    next leg (the last into the previous)."""
    groups = [g for g in groups if g]
    changed = True
    while changed and len(groups) > 1:
        changed = False
        for k, g in enumerate(groups):
            named = any(p.street for p in g)
            if sum(p.length_m for p in g) >= (MIN_STEP_M if named else MIN_UNNAMED_STEP_M):
                continue
            if k + 1 < len(groups):
                groups[k + 1] = g + groups[k + 1]
            else:
                groups[k - 1] = groups[k - 1] + g
            del groups[k]
            changed = True
            break
    return groups


def _distance_text(distance_m: float) -> str:
    if distance_m < 100:
        return f"{max(5, round(distance_m / 5) * 5)} m"
    if distance_m < 1000:
        return f"{round(distance_m / 10) * 10} m"
    return f"{distance_m / 1000:.1f} km"


def _instruction(step: Step, index: int, is_last: bool) -> str:
    """The deterministic written direction of one step."""
    dist = _distance_text(step.distance_m)
    on = f" on {step.street}" if step.street else ""
    onto = f" onto {step.street}" if step.street else ""
    if index == 0 or step.maneuver == "depart":
        text = f"Head {step.compass}{on} for {dist}."
    elif step.maneuver == "straight":
        text = f"Continue straight{onto} for {dist}."
    elif step.maneuver == "u-turn":
        text = f"Make a u-turn and walk {dist}{on}."
    else:
        text = f"Turn {step.maneuver}{onto} and walk {dist}."
    if is_last:
        if step.landmarks:
            text += f" {step.landmarks[0].sentence}."
    elif step.landmarks:
        text += f" At the next turn, {step.landmarks[0].sentence}."
    return text


__all__ = [
    "LANDMARK_RADIUS_M",
    "MIN_STEP_M",
    "NO_LANDMARK",
    "TURN_SPLIT_DEG",
    "Landmark",
    "Route",
    "Router",
    "Snap",
    "Step",
    "Tour",
    "relation_phrase",
    "solve_tour",
]
