"""The `human` split: RUN's crowd-sourced Manhattan instructions, mapped onto the bundled city.

RUN (Paz-Argaman & Tsarfaty, 2019; Apache-2.0 text, ODbL maps; bundled with its README in
``data/run_manhattan/``) gives multi-sentence walking stories over three 2017 OSM maps, each
sentence with its path as a list of grid cells. A cell ``(x, y)`` of map N lies at
``lon = minlon + (x + 0.5) * 1e-4``, ``lat = minlat + (y + 0.5) * 1e-4`` (``SOURCES.md``).

Design (our choice; RUN paths are grid cells, not a rail): a story becomes a rail on the
bundled street graph. Its waypoints are the first cell, every cell where the path changes
street (a turn), and the last cell; turn waypoints snap to the nearest street intersection.
The city router joins consecutive waypoints, so the rail follows the path the human
described, not merely the shortest one; legs that continue straight through a waypoint are
merged. The instruction is the human text (one sentence per numbered line). Stories are
kept only when every cell lies on the bundled extract (map_1 and map_3; map_2, the East
Village, is outside it), the rail ends within `GOAL_RADIUS_M` of the story's goal cell and
it is at most `MAX_DETOUR` times the length of the cell path. In the env, the preset sets
``stop_radius_m=30``: a ``stop()`` within 30 m of the goal succeeds wherever it is said.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openvirl.envs.navigation.routes import (
    NO_LANDMARK,
    Endpoint,
    Milestone,
    NavRoute,
    route_from_world,
    street_intersections,
)
from openvirl.world.geometry import (
    bearing_deg,
    decode_polyline,
    egocentric_relation,
    encode_polyline,
    haversine_m,
    heading_change_deg,
    xy_bearing_deg,
)

if TYPE_CHECKING:
    from openvirl.world.city import City

MAP_ORIGINS = {
    "map_1": (40.74847, -73.99944),
    "map_2": (40.72301, -73.98732),
    "map_3": (40.74150, -74.00520),
}
"""``<bounds>`` min corner (lat, lon) of each RUN map, degrees (from ``SOURCES.md``)."""

CELL_DEG = 1e-4
"""Side of a RUN grid cell, degrees."""

GOAL_RADIUS_M = 30.0
"""A mapped story must end this close to its goal cell; the env's stop radius is the same."""

MAX_DETOUR = 2.0
"""A mapped rail may be at most this many times as long as the story's cell path."""

SNAP_INTERSECTION_M = 30.0
"""A turn waypoint snaps to a street intersection within this distance."""

STRAIGHT_DEG = 25.0
"""Legs meeting at a waypoint with a smaller heading change are merged into one."""

LANDMARK_RADIUS_M = 35.0
"""Landmarks at a turning point are POIs within this distance (as in the router)."""

_CELL_RE = re.compile(r"street:\s*(-?[\d.]+)\s*,\s*x:\s*(-?\d+)\s*,\s*y:\s*(-?\d+)")


def run_dir() -> Path:
    """The bundled RUN folder (``dataset.json``, maps, README with the licence)."""
    from openvirl._paths import data_dir

    return data_dir() / "run_manhattan"


def cell_latlon(map_name: str, x: int, y: int) -> tuple[float, float]:
    """The centre of RUN cell (`x`, `y`) of a map, (lat, lon) degrees (SOURCES.md formula)."""
    lat0, lon0 = MAP_ORIGINS[map_name]
    return lat0 + (y + 0.5) * CELL_DEG, lon0 + (x + 0.5) * CELL_DEG


def load_stories(path: Path | None = None) -> list[dict[str, Any]]:
    """RUN stories: ``{"map", "story", "sentences", "cells": [(street, x, y), ...]}``, in order.

    Sentences are the story's lines in ``line_number`` order with whitespace collapsed; the
    cells are the lines' paths joined, consecutive repeats dropped.
    """
    path = path or run_dir() / "dataset.json"
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    stories = []
    for map_name, items in data.items():
        by_story: dict[Any, list[dict[str, Any]]] = {}
        for item in items:
            by_story.setdefault(item["id"], []).append(item)
        for story_id, lines in by_story.items():
            lines.sort(key=lambda it: float(it.get(" line_number", it.get("line_number", 0))))
            sentences = [re.sub(r"\s+", " ", ln["instruction"]).strip() for ln in lines]
            cells: list[tuple[float, int, int]] = []
            for ln in lines:
                for raw in ln["route"]:
                    m = _CELL_RE.search(raw)
                    if not m:
                        continue
                    cell = (float(m.group(1)), int(m.group(2)), int(m.group(3)))
                    if not cells or cells[-1] != cell:
                        cells.append(cell)
            stories.append(
                {
                    "map": map_name,
                    "story": story_id,
                    "sentences": [s for s in sentences if s],
                    "cells": cells,
                }
            )
    return stories


def _waypoints(map_name: str, cells: list[tuple[float, int, int]]) -> list[tuple[float, float]]:
    """Start, every street change, goal: (lat, lon) degrees, consecutive duplicates dropped."""
    points = [cells[0]]
    for prev, cur in itertools.pairwise(cells):
        if cur[0] != prev[0] and (cur[1], cur[2]) != (points[-1][1], points[-1][2]):
            points.append(cur)
    if (cells[-1][1], cells[-1][2]) != (points[-1][1], points[-1][2]):
        points.append(cells[-1])
    return [cell_latlon(map_name, x, y) for _, x, y in points]


def _path_length_m(map_name: str, cells: list[tuple[float, int, int]]) -> float:
    pts = np.array([cell_latlon(map_name, x, y) for _, x, y in cells])
    if len(pts) < 2:
        return 0.0
    return float(np.sum(haversine_m(pts[:-1, 0], pts[:-1, 1], pts[1:, 0], pts[1:, 1])))


def _snap_intersection(city: City, lat: float, lon: float) -> tuple[float, float]:
    nodes, xy, _ = street_intersections(city)
    if not nodes:
        return lat, lon
    x, y = city.to_xy(lat, lon)
    d = np.hypot(xy[:, 0] - x, xy[:, 1] - y)
    i = int(np.argmin(d))
    if d[i] > SNAP_INTERSECTION_M:
        return lat, lon
    node = city.graph.nodes[nodes[i]]
    return node["lat"], node["lon"]


def _landmark_at(
    city: City, lat: float, lon: float, heading: float, exclude: set[str]
) -> tuple[str | None, str | None, str | None]:
    """The most prominent POI near a point: (name, relation, place id), or Nones."""
    index = city.places
    if len(index.xs) == 0:
        return None, None, None
    x, y = city.to_xy(lat, lon)
    d = np.hypot(index.xs - x, index.ys - y)
    idx = np.nonzero(d <= LANDMARK_RADIUS_M)[0]
    for i in idx[np.lexsort((d[idx], -index.prominence[idx]))].tolist():
        poi = index.pois[i]
        if poi.id in exclude or not poi.name:
            continue
        rel = egocentric_relation(
            xy_bearing_deg(float(index.xs[i]) - x, float(index.ys[i]) - y), heading
        )
        return poi.name, rel, poi.id
    return None, None, None


def _merge(a: Milestone, b: Milestone, start: tuple[float, float]) -> Milestone:
    """One milestone for two legs that continue straight through `a`."""
    pa = decode_polyline(a.polyline) if a.polyline else [start, (a.lat, a.lon)]
    pb = decode_polyline(b.polyline) if b.polyline else [(a.lat, a.lon), (b.lat, b.lon)]
    poly = [*pa, *pb[1:]]
    crossings = list(a.crossings_m)
    if a.intersection:
        crossings.append(round(a.distance_m, 1))
    crossings += [round(a.distance_m + c, 1) for c in b.crossings_m]
    heading = round(bearing_deg(start[0], start[1], b.lat, b.lon)) % 360
    return Milestone(
        lat=b.lat,
        lon=b.lon,
        heading=heading,
        landmark=b.landmark,
        landmark_name=b.landmark_name,
        landmark_relation=b.landmark_relation,
        intersection=b.intersection,
        street=b.street or a.street,
        distance_m=round(a.distance_m + b.distance_m, 1),
        polyline=encode_polyline(poly),
        crossings_m=sorted(set(crossings)),
    )


def map_story(city: City, story: dict[str, Any]) -> tuple[NavRoute | None, str]:
    """Map one RUN story onto the city: the route, or None and the reason it was skipped."""
    from openvirl.world.errors import WorldError

    map_name, cells = story["map"], story["cells"]
    if len(cells) < 2 or not story["sentences"]:
        return None, "no path"
    for _, x, y in cells:
        lat, lon = cell_latlon(map_name, x, y)
        if not city.bounds.contains(lat, lon):
            return None, "outside the bundled extract"
    waypoints = _waypoints(map_name, cells)
    if len(waypoints) < 2:
        return None, "no path"
    snapped = [waypoints[0]] + [_snap_intersection(city, *w) for w in waypoints[1:-1]]
    snapped.append(waypoints[-1])
    milestones: list[Milestone] = []
    start_end: Endpoint | None = None
    for i in range(len(snapped) - 1):
        a, b = snapped[i], snapped[i + 1]
        if haversine_m(a[0], a[1], b[0], b[1]) < 5.0:
            continue
        try:
            leg = city.route(a, b)
        except WorldError:
            return None, "no walking route"
        placeholder = Endpoint(name="start", lat=a[0], lon=a[1], kind="point")
        part = route_from_world(city, leg, start=placeholder, route_id="tmp")
        if start_end is None:
            start_end = part.start
        elif milestones:
            # The previous leg ended where this one starts; it is a real turning point.
            milestones[-1].intersection = True
        milestones.extend(part.milestones)
    if start_end is None or not milestones:
        return None, "no path"
    # Merge legs that go straight on through a waypoint.
    merged: list[Milestone] = []
    for m in milestones:
        if merged:
            prev_start = (
                (start_end.lat, start_end.lon)
                if len(merged) == 1
                else (merged[-2].lat, merged[-2].lon)
            )
            if abs(heading_change_deg(merged[-1].heading, m.heading)) < STRAIGHT_DEG:
                merged[-1] = _merge(merged[-1], m, prev_start)
                continue
        merged.append(m)
    # Landmarks: turning points get the most prominent POI near them, the goal its POI.
    for _k, m in enumerate(merged[:-1]):
        name, rel, _ = _landmark_at(city, m.lat, m.lon, m.heading, set())
        m.intersection = True
        m.landmark_name, m.landmark_relation = name, rel
        m.landmark = f"{name} is on your {rel}" if name else NO_LANDMARK
    goal_lat, goal_lon = cell_latlon(map_name, cells[-1][1], cells[-1][2])
    last = merged[-1]
    if haversine_m(last.lat, last.lon, goal_lat, goal_lon) > GOAL_RADIUS_M:
        return None, "rail ends too far from the goal"
    length = sum(m.distance_m for m in merged)
    if length > MAX_DETOUR * max(_path_length_m(map_name, cells), 50.0):
        return None, "detour"
    name, rel, pid = _landmark_at(city, last.lat, last.lon, last.heading, set())
    last.landmark_name, last.landmark_relation = name, rel
    last.landmark = f"The destination {name} is on your {rel}" if name else NO_LANDMARK
    route_id = (
        f"run-{map_name.replace('_', '')}-{story['story']:03d}"
        if isinstance(story["story"], int)
        else f"run-{map_name}-{story['story']}"
    )
    return (
        NavRoute(
            route_id=route_id,
            city=city.name,
            start=Endpoint(
                name="the start",
                lat=start_end.lat,
                lon=start_end.lon,
                kind="point",
                intersection=start_end.intersection,
            ),
            destination=Endpoint(
                name=name or "the goal",
                lat=last.lat,
                lon=last.lon,
                kind="point",
                place_id=pid or "",
                intersection=last.intersection,
                place_lat=goal_lat,
                place_lon=goal_lon,
            ),
            milestones=merged,
            split="human",
            source="run",
            instruction=list(story["sentences"]),
            meta={"run_map": map_name, "run_story": story["story"], "goal": [goal_lat, goal_lon]},
        ),
        "",
    )


_LAST_REPORT: dict[str, Any] = {}


def build_human_routes(city: City | str = "manhattan") -> list[NavRoute]:
    """Map every RUN story that fits the bundled Manhattan extract (see the module docstring).

    Returns
    -------
    list[NavRoute]
        The mapped stories in RUN order; `human_manifest` reports the skipped ones.
    """
    from openvirl.world import City

    if isinstance(city, str):
        city = City.load(city)
    routes = []
    reasons: Counter[str] = Counter()
    stories = load_stories()
    for story in stories:
        route, reason = map_story(city, story)
        if route is None:
            reasons[reason] += 1
        else:
            routes.append(route)
    _LAST_REPORT.update(stories=len(stories), mapped=len(routes), skipped=dict(reasons))
    return routes


def human_manifest(routes: list[NavRoute]) -> dict[str, Any]:
    """Provenance and mapping rule of the human split, for its manifest."""
    return {
        "preset": "human",
        "source": "RUN (Paz-Argaman & Tsarfaty 2019), data/run_manhattan/dataset.json",
        "licence": "instructions Apache-2.0 (RUN authors); map data ODbL 1.0, "
        "(c) OpenStreetMap contributors",
        "cell_formula": "lon = minlon + (x+0.5)*1e-4, lat = minlat + (y+0.5)*1e-4",
        "map_origins": {k: list(v) for k, v in MAP_ORIGINS.items()},
        "mapping": "waypoints = first cell, cells where the street changes (snapped to street "
        f"intersections within {SNAP_INTERSECTION_M} m), last cell; legs routed on the bundled "
        f"Manhattan graph; straight continuations (< {STRAIGHT_DEG} deg) merged; kept when the "
        f"rail ends within {GOAL_RADIUS_M} m of the goal cell and is at most {MAX_DETOUR}x the "
        "cell path",
        "success": f"stop() within {GOAL_RADIUS_M} m of the goal",
        "report": dict(_LAST_REPORT),
        "n_routes": len(routes),
    }


__all__ = [
    "GOAL_RADIUS_M",
    "MAP_ORIGINS",
    "build_human_routes",
    "cell_latlon",
    "human_manifest",
    "load_stories",
    "map_story",
    "run_dir",
]
