"""A real city from an OpenStreetMap extract: walking graph, POIs, buildings, with an on-disk cache.

`City.load` reads .osm, .osm.pbf and .osm.bz2 files with pyosmium and builds:

- `graph`: an undirected networkx graph of walkable ways (street centre-lines, plus
  sidewalks, footways, paths and steps where they connect). Nodes are OSM node ids with
  `lat`, `lon` (degrees) and `x`, `y` (local metres); a node is kept where ways meet, end, or
  change name or kind. Edges carry `length_m`, `street` (display name, "" if none),
  `local_name`, `highway`, `footway`, `street_inferred` (a sidewalk named after the parallel
  street), `weight` (the routing cost, metres scaled by `ROUTE_COST_FACTORS`), `way_ids` and
  `geometry`, a shapely LineString in local metres that runs from node `geometry_start`.
- `pois`: named POIs (nodes and building/area ways: amenity, shop, tourism, leisure, historic,
  office, craft, public transport) as `Place` objects.
- `buildings`: footprints in local metres with heights (`height`, `building:levels` x
  `LEVEL_HEIGHT_M`, or `DEFAULT_BUILDING_HEIGHT_M`).
- `intersections`: node id -> the names of its streets, for every node of degree >= 3.

The built structures are pickled in the user cache directory, keyed by the files' sha256 and
`CACHE_VERSION`, so the second load of a city is fast. A cache file is HMAC-signed with a
per-user key (`openvirl._signed`) and unpickled only after its tag verifies for this city's
sha256 and version, so a cache file from anywhere else is rebuilt, never loaded.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import networkx as nx
import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Polygon

from openvirl._paths import cache_dir
from openvirl._signed import read_signed, write_signed
from openvirl.world import catalog
from openvirl.world.categories import is_poi, types_for_tags
from openvirl.world.errors import MapFileError, OutsideMapError
from openvirl.world.geometry import LocalProjection, haversine_m, xy_bearing_deg
from openvirl.world.places import Place, prominence_of

if TYPE_CHECKING:
    from openvirl.world.places import PlaceIndex, ReverseGeocode
    from openvirl.world.routing import Route, Router, Tour

CACHE_VERSION = 7
"""Bump whenever the built structures change; older cache files are then rebuilt."""

WALK_SPEED_MPS = 1.4
"""Walking speed used for durations, metres per second (V-IRL and Google use about 1.4)."""

DEFAULT_BUILDING_HEIGHT_M = 10.0
"""Height of a building with neither `height` nor `building:levels`, metres."""

LEVEL_HEIGHT_M = 3.0
"""Height of one storey when only `building:levels` is known, metres."""

OUTSIDE_MARGIN_M = 150.0
"""Points farther than this outside the street graph's bounding box are outside the map."""

MAX_SNAP_M = 250.0
"""A point farther than this from every walkable edge is off the map, metres; POIs that far
from every walkable edge are dropped at load."""

POI_CLIP_MARGIN_M = 100.0
"""POIs farther than this outside the street graph's bounding box are dropped (Tokyo's POI
file covers a much wider area than its streets file)."""

WALKABLE_HIGHWAYS = frozenset(
    {
        "footway",
        "path",
        "pedestrian",
        "steps",
        "living_street",
        "residential",
        "service",
        "unclassified",
        "tertiary",
        "tertiary_link",
        "secondary",
        "secondary_link",
        "primary",
        "primary_link",
        "trunk",
        "trunk_link",
        "track",
        "cycleway",
        "corridor",
        "road",
        "bridleway",
    }
)
"""`highway=*` values a pedestrian may walk on (motorways, platforms and works excluded)."""

STREET_HIGHWAYS = frozenset(
    {
        "pedestrian",
        "living_street",
        "residential",
        "service",
        "unclassified",
        "tertiary",
        "tertiary_link",
        "secondary",
        "secondary_link",
        "primary",
        "primary_link",
        "trunk",
        "trunk_link",
        "road",
    }
)
"""Street centre-lines (as opposed to separately mapped footways and paths)."""

ROUTE_COST_FACTORS = {
    "residential": 1.05,
    "unclassified": 1.05,
    "living_street": 1.05,
    "sidewalk": 1.3,
    "crossing": 1.3,
    "traffic_island": 1.3,
    "steps": 1.2,
    "corridor": 1.5,
    "service": 1.1,
    "track": 1.1,
}
"""Routing cost per metre, by `footway=*` or `highway=*` value (default 1). Routes then follow
named street centre-lines, as V-IRL's Street View routes do, unless a footway is clearly
shorter, and prefer main streets to side streets among equally long grid paths (fewer
turns); `length_m` always reports true metres."""

MIN_COMPONENT_M = 100.0
"""Connected pieces of the walk graph shorter than this (metres in total) are dropped."""

MIN_FOOTPATH_COMPONENT_M = 300.0
"""A piece made only of footways and paths is kept only from this total length (metres)."""

SIDEWALK_NAME_RADIUS_M = 25.0
"""A sidewalk takes the name of a parallel named street within this distance, metres."""

_EDGE_KEY_FIELDS = ("street", "local_name", "highway", "footway")


class Bounds(NamedTuple):
    """A lat/lon box, degrees."""

    min_lat: float
    min_lon: float
    max_lat: float
    max_lon: float

    def contains(self, lat: float, lon: float, *, margin_m: float = 0.0) -> bool:
        """Whether (`lat`, `lon`) lies in the box grown by `margin_m` metres on every side."""
        dlat = margin_m / 111_320.0  # metres per degree of latitude
        dlon = margin_m / (111_320.0 * max(0.05, math.cos(math.radians(lat))))
        return (
            self.min_lat - dlat <= lat <= self.max_lat + dlat
            and self.min_lon - dlon <= lon <= self.max_lon + dlon
        )


@dataclass(slots=True)
class Building:
    """A building footprint with its height.

    Attributes
    ----------
    id
        OSM id, "way/45" or "relation/67".
    footprint
        Polygon (or MultiPolygon) in local metres (x east, y north).
    height_m
        Height of the top, metres above ground.
    levels
        `building:levels`, if tagged.
    min_height_m
        Height of the bottom (`min_height`), metres; 0 for most buildings.
    height_source
        "height", "levels" or "default": where `height_m` came from.
    name
        Display name ("" if none).
    tags
        The OSM tags.
    """

    id: str
    footprint: Polygon | MultiPolygon
    height_m: float
    levels: float | None = None
    min_height_m: float = 0.0
    height_source: str = "default"
    name: str = ""
    tags: dict[str, str] = field(default_factory=dict)


# Reading OSM files ------------------------------------------------------------------------


@dataclass
class _Raw:
    """What one pass over the OSM files collects, before projection."""

    ways: list[tuple[int, dict[str, str], list[int], list[float], list[float]]] = field(
        default_factory=list
    )
    pois: list[tuple[str, dict[str, str], float, float]] = field(default_factory=list)
    buildings: list[tuple[str, dict[str, str], list[tuple[list, list[list]]]]] = field(
        default_factory=list
    )
    addresses: list[tuple[str, str, float, float, str, str]] = field(default_factory=list)
    n_objects: int = 0


def _osm_format(path: Path) -> str:
    """The osmium format string of a file: from its ending, else from its first bytes."""
    name = path.name.lower()
    if name.endswith((".osm.pbf", ".pbf")):
        return "pbf"
    if name.endswith(".osm.bz2"):
        return "osm.bz2"
    if name.endswith((".osm", ".xml", ".osm.xml")):
        return "osm"
    with path.open("rb") as fh:
        head = fh.read(8)
    if head.startswith(b"BZh"):
        return "osm.bz2"
    if head.lstrip().startswith(b"<"):
        return "osm"
    return "pbf"


def _check_file(path: Path) -> None:
    if not path.exists():
        raise MapFileError(path, "file not found")
    if not path.is_file():
        raise MapFileError(path, "not a file")
    if path.stat().st_size == 0:
        raise MapFileError(path, "the file is empty")


_WAY_KEYS = (
    "name",
    "name:en",
    "highway",
    "footway",
    "alt_name",
    "old_name",
    "short_name",
    "official_name",
    "ref",
    "bridge",
    "tunnel",
    "layer",
    "sidewalk",
    "surface",
)


def _walkable(tags: Any) -> bool:
    highway = tags.get("highway")
    if highway not in WALKABLE_HIGHWAYS:
        return False
    if tags.get("area") == "yes":
        return False
    foot = tags.get("foot")
    if foot in ("no", "private", "use_sidepath"):
        return False
    return not (
        tags.get("access") in ("no", "private") and foot not in ("yes", "designated", "permissive")
    )


def _read_file(path: Path, raw: _Raw) -> None:
    """Collect walkable ways, POIs, buildings and addresses of one OSM file into `raw`."""
    import osmium

    _check_file(path)
    try:
        fmt = _osm_format(path)
        source = osmium.FileProcessor(osmium.io.File(str(path), fmt))
        processor = source.with_locations().with_areas()
        for obj in processor:
            raw.n_objects += 1
            tags = obj.tags
            if len(tags) == 0:
                continue
            kind = obj.type_str()
            if kind == "n":
                loc = obj.location
                if not loc.valid():
                    continue
                _collect_point(raw, f"node/{obj.id}", tags, loc.lat, loc.lon)
            elif kind == "w":
                if _walkable(tags):
                    refs, lats, lons = [], [], []
                    for n in obj.nodes:
                        if n.location.valid():
                            refs.append(n.ref)
                            lats.append(n.lat)
                            lons.append(n.lon)
                        else:
                            refs.append(0)  # a gap: the way is cut here
                            lats.append(math.nan)
                            lons.append(math.nan)
                    wtags = {k: tags[k] for k in _WAY_KEYS if k in tags}
                    raw.ways.append((obj.id, wtags, refs, lats, lons))
                if not obj.is_closed() and (is_poi(tags) or "addr:housenumber" in tags):
                    # A POI drawn as a line: place it at its middle node.
                    nodes = [n for n in obj.nodes if n.location.valid()]
                    if nodes:
                        mid = nodes[len(nodes) // 2]
                        _collect_point(raw, f"way/{obj.id}", tags, mid.lat, mid.lon)
            elif kind == "a":
                _collect_area(raw, obj, tags)
    except MapFileError:
        raise
    except (RuntimeError, OSError, ValueError, KeyError) as err:
        problem = str(err).strip() or type(err).__name__
        raise MapFileError(path, f"not a readable OSM file, or truncated ({problem})") from None


def _collect_point(raw: _Raw, oid: str, tags: Any, lat: float, lon: float) -> None:
    poi = is_poi(tags)
    has_addr = "addr:housenumber" in tags and "addr:street" in tags
    if not (poi or has_addr):
        return
    tag_dict = dict(tags)
    if poi:
        raw.pois.append((oid, tag_dict, lat, lon))
    if has_addr:
        raw.addresses.append(
            (
                tag_dict["addr:housenumber"],
                tag_dict["addr:street"],
                lat,
                lon,
                oid,
                tag_dict.get("name:en") or tag_dict.get("name", ""),
            )
        )


def _collect_area(raw: _Raw, area: Any, tags: Any) -> None:
    building = tags.get("building")
    poi = is_poi(tags)
    has_addr = "addr:housenumber" in tags and "addr:street" in tags
    if not (poi or has_addr or (building and building != "no")):
        return
    oid = f"{'way' if area.from_way() else 'relation'}/{area.orig_id()}"
    rings: list[tuple[list, list[list]]] = []
    for outer in area.outer_rings():
        shell = [(n.lon, n.lat) for n in outer]
        holes = [[(n.lon, n.lat) for n in inner] for inner in area.inner_rings(outer)]
        if len(shell) >= 4:
            rings.append((shell, holes))
    if not rings:
        return
    tag_dict = dict(tags)
    if building and building != "no":
        raw.buildings.append((oid, tag_dict, rings))
    if poi or has_addr:
        # A POI or address area is placed at the centre of its largest ring.
        shell = max((r[0] for r in rings), key=len)
        try:
            centre = Polygon(shell).representative_point()
        except (ValueError, shapely.errors.GEOSException):
            return
        _collect_point(raw, oid, tags, centre.y, centre.x)


# Building the graph -------------------------------------------------------------------------


def _display_name(tags: dict[str, str]) -> tuple[str, str]:
    """(display name, local name): `name:en` preferred for display, `name` kept as local."""
    local = tags.get("name", "")
    return tags.get("name:en") or local, local


def _segments(raw: _Raw) -> tuple[list[tuple[int, dict, list[int]]], dict[int, tuple]]:
    """Split walkable ways at shared nodes, ends and gaps; return segments and node coords."""
    usage: Counter[int] = Counter()
    coords: dict[int, tuple[float, float]] = {}
    for _, _, refs, lats, lons in raw.ways:
        for ref, lat, lon in zip(refs, lats, lons, strict=True):
            if ref:
                usage[ref] += 1
                coords[ref] = (lat, lon)
        runs = [r for r in refs if r]
        if runs:
            usage[runs[0]] += 1  # way ends are graph nodes
            usage[runs[-1]] += 1
    segments: list[tuple[int, dict, list[int]]] = []
    for way_id, tags, refs, _, _ in raw.ways:
        current: list[int] = []
        for ref in refs:
            if not ref:  # gap (node outside the extract): cut
                if len(current) >= 2:
                    segments.append((way_id, tags, current))
                current = []
                continue
            if current and ref == current[-1]:
                continue
            current.append(ref)
            if len(current) >= 2 and usage[ref] >= 2:
                segments.append((way_id, tags, current))
                current = [ref]
        if len(current) >= 2:
            segments.append((way_id, tags, current))
    return segments, coords


def _edge_attrs(
    way_id: int, tags: dict[str, str], refs: list[int], xy: dict[int, tuple], ll: dict[int, tuple]
) -> dict[str, Any]:
    street, local = _display_name(tags)
    highway = tags.get("highway", "")
    footway = tags.get("footway", "")
    lats = np.fromiter((ll[r][0] for r in refs), float, len(refs))
    lons = np.fromiter((ll[r][1] for r in refs), float, len(refs))
    length = float(np.sum(haversine_m(lats[:-1], lons[:-1], lats[1:], lons[1:])))
    factor = ROUTE_COST_FACTORS.get(footway) or ROUTE_COST_FACTORS.get(highway, 1.0)
    return {
        "length_m": length,
        "weight": length * factor,
        "street": street,
        "local_name": local,
        "highway": highway,
        "footway": footway,
        "street_inferred": False,
        "way_ids": (way_id,),
        "geometry": LineString([xy[r] for r in refs]),
        "geometry_start": refs[0],
    }


def _add_segment(
    graph: nx.Graph, way_id: int, tags: dict, refs: list[int], xy: dict, ll: dict
) -> None:
    """Add one way segment, splitting it where it would make a loop or a parallel edge."""
    G = graph
    u, v = refs[0], refs[-1]
    if u == v:
        if len(refs) < 4:
            return
        k1, k2 = len(refs) // 3, (2 * len(refs)) // 3
        if len({refs[0], refs[k1], refs[k2]}) < 3 or k2 <= k1:
            return
        for part in (refs[: k1 + 1], refs[k1 : k2 + 1], refs[k2:]):
            _add_segment(G, way_id, tags, part, xy, ll)
        return
    if G.has_edge(u, v):
        if len(refs) < 3:
            return  # the same straight piece twice: keep the first
        k = len(refs) // 2
        _add_segment(G, way_id, tags, refs[: k + 1], xy, ll)
        _add_segment(G, way_id, tags, refs[k:], xy, ll)
        return
    for node in (u, v):
        if node not in G:
            lat, lon = ll[node]
            x, y = xy[node]
            G.add_node(node, lat=lat, lon=lon, x=x, y=y)
    G.add_edge(u, v, **_edge_attrs(way_id, tags, refs, xy, ll))


def oriented_coords(edge: dict[str, Any], start: int) -> np.ndarray:
    """The (n, 2) local-metre coordinates of an edge, running from node `start`.

    Parameters
    ----------
    edge
        The edge's attribute dict (`graph[u][v]`).
    start
        One of the edge's two nodes.

    Returns
    -------
    numpy.ndarray
        The vertices, metres, from `start` to the other node.
    """
    coords = np.asarray(edge["geometry"].coords)
    return coords if edge["geometry_start"] == start else coords[::-1]


def _merge_chains(graph: nx.Graph) -> None:
    """Remove degree-2 nodes between two edges of the same street, joining the edges."""
    G = graph
    for n in list(G.nodes):
        if G.degree(n) != 2:
            continue
        a, b = list(G.neighbors(n))
        e1, e2 = G[a][n], G[n][b]
        if any(e1[k] != e2[k] for k in _EDGE_KEY_FIELDS) or G.has_edge(a, b):
            continue
        c1, c2 = oriented_coords(e1, a), oriented_coords(e2, n)
        data = dict(e1)
        data.update(
            length_m=e1["length_m"] + e2["length_m"],
            weight=e1["weight"] + e2["weight"],
            way_ids=tuple(dict.fromkeys(e1["way_ids"] + e2["way_ids"])),
            geometry=LineString(np.vstack([c1, c2[1:]])),
            geometry_start=a,
        )
        G.remove_node(n)
        G.add_edge(a, b, **data)


def _prune_components(graph: nx.Graph) -> None:
    """Drop tiny pieces, and footway-only pieces that touch no street ("where they connect")."""
    G = graph
    for comp in list(nx.connected_components(G)):
        sub = G.subgraph(comp)
        total = sum(d["length_m"] for _, _, d in sub.edges(data=True))
        has_street = any(d["highway"] in STREET_HIGHWAYS for _, _, d in sub.edges(data=True))
        if total < MIN_COMPONENT_M or (not has_street and total < MIN_FOOTPATH_COMPONENT_M):
            G.remove_nodes_from(comp)


def _name_sidewalks(graph: nx.Graph) -> None:
    """Give unnamed sidewalks the name of the parallel named street next to them."""
    G = graph
    streets = [
        (u, v, d)
        for u, v, d in G.edges(data=True)
        if d["street"] and d["highway"] in STREET_HIGHWAYS
    ]
    if not streets:
        return
    tree = shapely.STRtree([d["geometry"] for _, _, d in streets])
    for _, _, d in G.edges(data=True):
        if d["street"] or d["footway"] != "sidewalk":
            continue
        line = d["geometry"]
        mid = line.interpolate(0.5, normalized=True)
        (x0, y0), (x1, y1) = line.coords[0], line.coords[-1]
        if math.hypot(x1 - x0, y1 - y0) < 1.0:
            continue
        own = xy_bearing_deg(x1 - x0, y1 - y0)
        best, best_dist = "", SIDEWALK_NAME_RADIUS_M
        for i in tree.query(mid, predicate="dwithin", distance=SIDEWALK_NAME_RADIUS_M):
            other = streets[int(i)][2]
            geom = other["geometry"]
            dist = geom.distance(mid)
            if dist >= best_dist:
                continue
            s = geom.project(mid)
            p0 = geom.interpolate(max(0.0, s - 5.0))
            p1 = geom.interpolate(min(geom.length, s + 5.0))
            if p0.distance(p1) < 0.5:
                continue
            theirs = xy_bearing_deg(p1.x - p0.x, p1.y - p0.y)
            diff = abs((own - theirs + 90.0) % 180.0 - 90.0)  # undirected angle, degrees
            if diff <= 30.0:
                best, best_dist = other["street"], dist
        if best:
            d["street"] = best
            d["street_inferred"] = True


def _intersections(graph: nx.Graph) -> dict[int, tuple[str, ...]]:
    G = graph
    result: dict[int, tuple[str, ...]] = {}
    for n in G.nodes:
        if G.degree(n) < 3:
            continue
        names = sorted({d["street"] for _, _, d in G.edges(n, data=True) if d["street"]})
        result[n] = tuple(names)
    return result


def _parse_length_m(text: str | None) -> float | None:
    """Parse an OSM length ("25", "25 m", "82 ft", "30'") into metres; None if unreadable."""
    if not text:
        return None
    m = re.match(r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(m|meters?|metres?|ft|feet|')?\s*$", text.lower())
    if not m:
        return None
    value = float(m.group(1).replace(",", "."))
    if m.group(2) in ("ft", "feet", "'"):
        value *= 0.3048  # feet to metres
    return value


def _building(oid: str, tags: dict[str, str], rings, proj: LocalProjection) -> Building | None:
    polys = []
    for shell, holes in rings:
        sx, sy = proj.to_xy(np.array([p[1] for p in shell]), np.array([p[0] for p in shell]))
        hole_xy = []
        for hole in holes:
            if len(hole) >= 4:
                hx, hy = proj.to_xy(np.array([p[1] for p in hole]), np.array([p[0] for p in hole]))
                hole_xy.append(np.column_stack([hx, hy]))
        poly = Polygon(np.column_stack([sx, sy]), hole_xy)
        if not poly.is_valid:
            poly = poly.buffer(0)
        if not poly.is_empty and poly.area > 0:
            polys.append(poly)
    if not polys:
        return None
    footprint = (
        polys[0]
        if len(polys) == 1
        else MultiPolygon(
            [g for p in polys for g in (p.geoms if isinstance(p, MultiPolygon) else [p])]
        )
    )
    height = _parse_length_m(tags.get("height"))
    levels = None
    try:
        levels = float(tags["building:levels"]) if "building:levels" in tags else None
    except ValueError:
        levels = None
    if height is not None and height > 0:
        source = "height"
    elif levels is not None and levels > 0:
        height, source = levels * LEVEL_HEIGHT_M, "levels"
    else:
        height, source = DEFAULT_BUILDING_HEIGHT_M, "default"
    min_height = _parse_length_m(tags.get("min_height")) or 0.0
    name, _ = _display_name(tags)
    return Building(oid, footprint, float(height), levels, float(min_height), source, name, tags)


def _reachable(pois: list[Place], graph: nx.Graph, proj: LocalProjection) -> list[Place]:
    """Keep the POIs within `MAX_SNAP_M` of a walkable edge (the others cannot be routed to)."""
    if not pois:
        return pois
    tree = shapely.STRtree([d["geometry"] for _, _, d in graph.edges(data=True)])
    xs, ys = proj.to_xy(np.array([p.lat for p in pois]), np.array([p.lon for p in pois]))
    hits = tree.query_nearest(shapely.points(xs, ys), max_distance=MAX_SNAP_M)
    near = set(hits[0].tolist())
    return [p for i, p in enumerate(pois) if i in near]


def _dedupe_pois(pois: list[Place]) -> list[Place]:
    """Keep one of several same-name, same-category POIs within 10 m (the most prominent)."""
    groups: dict[tuple[str, str | None], list[Place]] = defaultdict(list)
    for p in pois:
        groups[(p.name.lower(), p.category)].append(p)
    keep: list[Place] = []
    for group in groups.values():
        group.sort(key=lambda p: (-p.prominence, p.id))
        chosen: list[Place] = []
        for p in group:
            if all(haversine_m(p.lat, p.lon, q.lat, q.lon) > 10.0 for q in chosen):
                chosen.append(p)
        keep.extend(chosen)
    order = {p.id: i for i, p in enumerate(pois)}
    keep.sort(key=lambda p: order[p.id])
    return keep


def _build(files: Sequence[Path], progress: _Progress) -> dict[str, Any]:
    """Read the files and build every structure a City holds (the pickled part)."""
    raw = _Raw()
    for path in files:
        progress.phase(f"reading {path.name}")
        _read_file(path, raw)
    if raw.n_objects == 0:
        raise MapFileError(files[0], "contains no OSM objects (empty or not an OSM file)")
    if not raw.ways:
        raise MapFileError(
            files[0] if len(files) == 1 else ", ".join(map(str, files)),
            "contains no walkable street (no highway=* way a pedestrian may use)",
        )

    progress.phase("building the street graph")
    segments, ll = _segments(raw)
    lats = np.array([c[0] for c in ll.values()])
    lons = np.array([c[1] for c in ll.values()])
    center = (float((lats.min() + lats.max()) / 2), float((lons.min() + lons.max()) / 2))
    proj = LocalProjection(*center)
    xs, ys = proj.to_xy(lats, lons)
    xy = dict(zip(ll.keys(), zip(xs.tolist(), ys.tolist(), strict=True), strict=True))
    G = nx.Graph()
    for way_id, tags, refs in segments:
        _add_segment(G, way_id, tags, refs, xy, ll)
    _prune_components(G)
    if G.number_of_edges() == 0:
        raise MapFileError(files[0], "its walkable ways form no connected street network")
    _merge_chains(G)
    _name_sidewalks(G)
    node_lats = np.array([d["lat"] for _, d in G.nodes(data=True)])
    node_lons = np.array([d["lon"] for _, d in G.nodes(data=True)])
    bounds = Bounds(
        float(node_lats.min()),
        float(node_lons.min()),
        float(node_lats.max()),
        float(node_lons.max()),
    )

    progress.phase("collecting places")
    pois: list[Place] = []
    seen: set[str] = set()
    for oid, tags, lat, lon in raw.pois:
        if oid in seen or not bounds.contains(lat, lon, margin_m=POI_CLIP_MARGIN_M):
            continue
        seen.add(oid)
        name, local = _display_name(tags)
        types = types_for_tags(tags)
        pois.append(
            Place(
                name=name,
                lat=lat,
                lon=lon,
                category=types[0],
                tags=tags,
                id=oid,
                local_name=local or name,
                categories=types,
                prominence=prominence_of(tags),
            )
        )
    pois = _dedupe_pois(pois)
    pois = _reachable(pois, G, proj)
    addresses = [a for a in raw.addresses if bounds.contains(a[2], a[3], margin_m=50.0)]

    progress.phase("building footprints")
    buildings = [
        b
        for oid, tags, rings in raw.buildings
        if (b := _building(oid, tags, rings, proj)) is not None
    ]
    return {
        "graph": G,
        "pois": pois,
        "buildings": buildings,
        "intersections": _intersections(G),
        "addresses": addresses,
        "bounds": bounds,
        "center": center,
        "n_objects": raw.n_objects,
    }


# Progress and cache --------------------------------------------------------------------------


class _Progress:
    """Rich progress on stderr for a first (uncached) load; silent when disabled."""

    def __init__(self, enabled: bool, total: int, title: str) -> None:
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(title, total=total)
        self._title = title
        self._started = False

    def phase(self, text: str) -> None:
        if self._progress is None:
            return
        if self._started:
            self._progress.advance(self._task)
        self._started = True
        self._progress.update(self._task, description=f"{self._title}: {text}")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def files_sha256(files: Iterable[Path]) -> str:
    """The sha256 (hex) of the files' contents, in order; the cache key of a city."""
    total = hashlib.sha256()
    for path in files:
        _check_file(path)
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(chunk)
        total.update(h.digest())
    return total.hexdigest()


def _cache_path(sha256: str) -> Path:
    # Keyed by content only: a file added under a new name reuses its cache.
    # ".signed": unsigned pickles of versions <= 6 (".pkl") are never opened.
    return cache_dir("world") / f"city-{sha256[:32]}-v{CACHE_VERSION}.signed"


def _cache_purpose(sha256: str) -> str:
    """What a cache file's signature binds it to: this format version and these OSM files."""
    return f"openvirl city cache v{CACHE_VERSION} {sha256}"


def cache_file(entry: catalog.CityEntry) -> Path | None:
    """The cache file of a catalog entry if it exists (built by an earlier load), else None."""
    try:
        path = _cache_path(files_sha256(entry.files))
    except MapFileError:
        return None
    return path if path.is_file() else None


def _read_cache(path: Path, sha256: str) -> dict[str, Any] | None:
    """The built structures cached at `path`, or None: unpickled only once the file's HMAC
    verifies (we wrote it, for these files), so a foreign cache file never runs code."""
    payload = read_signed(path, _cache_purpose(sha256))
    if payload is None:
        return None
    try:
        data = pickle.loads(payload)
    except (EOFError, pickle.UnpicklingError, AttributeError, ImportError, ValueError):
        return None  # ours, but from a code version whose classes changed: rebuild
    if not isinstance(data, dict):
        return None
    if data.get("version") != CACHE_VERSION or data.get("sha256") != sha256:
        return None
    return data.get("built")


def _write_cache(path: Path, sha256: str, built: dict[str, Any]) -> None:
    payload = pickle.dumps(
        {"version": CACHE_VERSION, "sha256": sha256, "built": built},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    write_signed(path, payload, _cache_purpose(sha256))


# The City -----------------------------------------------------------------------------------


class City:
    """A real city built from an OpenStreetMap extract, offline.

    Load one with `City.load`; the data attributes are described in the module docstring.

    Examples
    --------
    >>> from openvirl.world import City
    >>> city = City.load("monaco")
    >>> place = city.search("Casino de Monte-Carlo")[0]
    >>> route = city.route(place, city.search("pharmacy")[0])
    >>> route.length_m > 0
    True

    Attributes
    ----------
    name
        The city's name ("manhattan").
    files
        The OSM files it was built from.
    sha256
        The files' combined sha256, the cache key.
    attribution
        "© OpenStreetMap contributors": show it with anything derived from the data.
    license
        The data licence (ODbL 1.0).
    graph, pois, buildings, intersections
        See the module docstring.
    bounds
        Bounding box of the street graph (`Bounds`, degrees).
    center
        (lat, lon) centre of the local projection, degrees.
    from_cache
        Whether this load came from the cache.
    load_seconds
        Wall time of this load, seconds.
    """

    attribution = catalog.ATTRIBUTION
    license = catalog.LICENSE

    def __init__(
        self,
        *,
        name: str,
        files: Sequence[Path],
        sha256: str,
        built: dict[str, Any],
        description: str = "",
        from_cache: bool = False,
        load_seconds: float = 0.0,
    ) -> None:
        self.name = name
        self.files = tuple(files)
        self.sha256 = sha256
        self.description = description
        self.graph: nx.Graph = built["graph"]
        self.pois: list[Place] = built["pois"]
        self.buildings: list[Building] = built["buildings"]
        self.intersections: dict[int, tuple[str, ...]] = built["intersections"]
        self.addresses: list[tuple[str, str, float, float, str, str]] = built["addresses"]
        self.bounds: Bounds = built["bounds"]
        self.center: tuple[float, float] = built["center"]
        self.n_osm_objects: int = built.get("n_objects", 0)
        self.projection = LocalProjection(*self.center)
        self.from_cache = from_cache
        self.load_seconds = load_seconds

    # Loading ---------------------------------------------------------------------------

    @classmethod
    def load(
        cls,
        name_or_path: str | os.PathLike[str] | None = None,
        *,
        cache: bool = True,
        progress: bool | None = None,
    ) -> City:
        """Load a bundled city, a user-added city, or any OSM file.

        The first load parses the files with pyosmium and builds the graph, POIs and buildings
        (seconds); the result is pickled in the user cache directory (`OPENVIRL_CACHE`
        overrides it) under the files' sha256 and signed, so later loads only verify and
        unpickle it.

        Parameters
        ----------
        name_or_path
            "manhattan" (the default when None), "helsinki", "monaco", "tokyo-shibuya",
            "singapore", a name added with `openvirl city add`, or the path of an .osm,
            .osm.pbf or .osm.bz2 file.
        cache
            Read and write the cache. False always rebuilds and writes nothing.
        progress
            Show a rich progress bar on stderr during a build; None shows it when stderr is a
            terminal.

        Returns
        -------
        City
            The loaded city.

        Raises
        ------
        UnknownCityError
            Unknown name; the message lists the known cities.
        MapFileError
            A file is missing, empty, truncated, not OSM, or has no walkable street.
        """
        start = time.perf_counter()
        entry = catalog.resolve(name_or_path)
        sha = files_sha256(entry.files)
        path = _cache_path(sha)
        built = _read_cache(path, sha) if cache else None
        from_cache = built is not None
        if built is None:
            show = sys.stderr.isatty() if progress is None else progress
            bar = _Progress(show, total=len(entry.files) + 3, title=f"Loading {entry.name}")
            try:
                built = _build(entry.files, bar)
            finally:
                bar.close()
            if cache:
                _write_cache(path, sha, built)
        return cls(
            name=entry.name,
            files=entry.files,
            sha256=sha,
            built=built,
            description=entry.description,
            from_cache=from_cache,
            load_seconds=time.perf_counter() - start,
        )

    @classmethod
    def fetch(
        cls,
        query: str | None = None,
        *,
        bbox: tuple[float, float, float, float] | None = None,
        around: tuple[float, float] | None = None,
        radius_m: float | None = None,
        name: str | None = None,
        progress: bool | None = None,
        replace: bool = False,
        **options: Any,
    ) -> City:
        """Any city on demand: geocode, download from Overpass, cache, register, load.

        In the spirit of OSMnx's ``graph_from_place``; see `openvirl.world.fetch` for the
        servers, the etiquette, the size guards and the provenance file. `options` are
        `FetchOptions` fields (``overpass_url``, ``nominatim_url``, ``max_area_km2``, ...).

        >>> City.fetch("Brera, Milan, Italy", radius_m=600)   # doctest: +SKIP
        >>> City.fetch(bbox=(43.727, 7.414, 43.735, 7.428), name="monaco-port")  # doctest: +SKIP
        """
        from dataclasses import fields

        from openvirl.world.fetch import FetchError, FetchOptions, fetch_city

        known = {f.name for f in fields(FetchOptions)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise FetchError(f"unknown fetch option(s) {unknown}; known: {sorted(known)}.")
        return fetch_city(
            query,
            bbox=bbox,
            around=around,
            radius_m=radius_m,
            name=name,
            options=FetchOptions(**options),
            progress=progress,
            replace=replace,
        )

    def __repr__(self) -> str:
        return (
            f"City({self.name!r}, nodes={self.graph.number_of_nodes()}, "
            f"edges={self.graph.number_of_edges()}, pois={len(self.pois)}, "
            f"buildings={len(self.buildings)})"
        )

    # Geometry --------------------------------------------------------------------------

    def to_xy(self, lat, lon):
        """Project (lat, lon) degrees to local (x, y) metres; scalars or arrays (see
        `LocalProjection.to_xy`)."""
        return self.projection.to_xy(lat, lon)

    def to_latlon(self, x, y):
        """Unproject local (x, y) metres to (lat, lon) degrees; scalars or arrays."""
        return self.projection.to_latlon(x, y)

    def check_inside(self, lat: float, lon: float) -> None:
        """Raise `OutsideMapError` unless (`lat`, `lon`) lies on this city's map.

        The map is the street graph's bounding box grown by `OUTSIDE_MARGIN_M`.
        """
        if not (math.isfinite(lat) and math.isfinite(lon)) or not self.bounds.contains(
            lat, lon, margin_m=OUTSIDE_MARGIN_M
        ):
            b = self.bounds
            raise OutsideMapError(
                f"Point ({lat:.6f}, {lon:.6f}) is outside the map of `{self.name}` "
                f"(lat {b.min_lat:.5f}..{b.max_lat:.5f}, lon {b.min_lon:.5f}..{b.max_lon:.5f}); "
                "pass a point inside it or load the city that contains it."
            )

    def edge_xy(self, u: int, v: int) -> np.ndarray:
        """The (n, 2) local-metre vertices of edge (`u`, `v`), running from `u` to `v`."""
        return oriented_coords(self.graph[u][v], u)

    def nearest_node(self, lat: float, lon: float) -> int:
        """The graph node nearest to (`lat`, `lon`) (straight-line); raises `OutsideMapError`
        outside the map."""
        self.check_inside(lat, lon)
        return self.router.nearest_node(*self.to_xy(lat, lon))

    # Indexes, built on first use -----------------------------------------------------------

    @cached_property
    def places(self) -> PlaceIndex:
        """The search index over POIs, streets, intersections and addresses."""
        from openvirl.world.places import PlaceIndex

        return PlaceIndex(self)

    @cached_property
    def router(self) -> Router:
        """The walking router over `graph`."""
        from openvirl.world.routing import Router

        return Router(self)

    @cached_property
    def building_tree(self) -> shapely.STRtree:
        """An STRtree over `buildings` footprints (local metres), for spatial queries."""
        return shapely.STRtree([b.footprint for b in self.buildings])

    # Places ------------------------------------------------------------------------------

    def search(
        self,
        text: str,
        *,
        near: Place | tuple[float, float] | str | None = None,
        radius_m: float | None = None,
        limit: int = 10,
        category: str | None = None,
    ) -> list[Place]:
        """Fuzzy search of POIs by name, brand, alternative name or category; best first.

        See `PlaceIndex.search`. "coffee near Bryant Park" works: the text after "near" is
        geocoded and used as `near`. A search with no hit returns [].
        """
        return self.places.search(
            text, near=near, radius_m=radius_m, limit=limit, category=category
        )

    def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float = 200.0,
        category: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[Place]:
        """POIs within `radius_m` metres of (`lat`, `lon`), nearest first; see
        `PlaceIndex.nearby`."""
        return self.places.nearby(lat, lon, radius_m, category, limit=limit)

    def geocode(self, text: str) -> Place:
        """The place, intersection ("W 34th St & 7th Ave"), address or street a text names;
        see `PlaceIndex.geocode`."""
        return self.places.geocode(text)

    def reverse(self, lat: float, lon: float) -> ReverseGeocode:
        """The nearest street and intersection of a point; see `PlaceIndex.reverse`."""
        return self.places.reverse(lat, lon)

    def details(self, place: Place | str) -> dict[str, Any]:
        """Details of a POI from its tags; see `PlaceIndex.details`."""
        return self.places.details(place)

    def place(self, place_id: str) -> Place:
        """The POI with an OSM id such as "node/123" or "way/45"; see `PlaceIndex.get`."""
        return self.places.get(place_id)

    # Routes ------------------------------------------------------------------------------

    def route(
        self,
        origin: Place | tuple[float, float] | str,
        destination: Place | tuple[float, float] | str,
        *,
        speed_mps: float = WALK_SPEED_MPS,
        initial_heading: float | None = None,
    ) -> Route:
        """Walking route with turn-by-turn steps and landmark milestones.

        See `Router.route`. Raises `OutsideMapError` for a point off the map and
        `NoRouteError` when the two points have no walking connection.
        """
        return self.router.route(
            origin, destination, speed_mps=speed_mps, initial_heading=initial_heading
        )

    def tour(
        self,
        stops: Sequence[Place | tuple[float, float] | str],
        *,
        start: Place | tuple[float, float] | str | None = None,
        end: Place | tuple[float, float] | str | None = None,
        round_trip: bool = False,
        speed_mps: float = WALK_SPEED_MPS,
    ) -> Tour:
        """Best order to visit `stops` on foot; see `Router.tour`."""
        return self.router.tour(
            stops, start=start, end=end, round_trip=round_trip, speed_mps=speed_mps
        )

    # Maps --------------------------------------------------------------------------------

    def route_map(self, route: Route, path: str | os.PathLike[str], **options: Any) -> Path:
        """Save a PNG map of `route`; see `maps.route_map` for the options."""
        from openvirl.world.maps import route_map

        return route_map(self, route, path, **options)

    def area_map(
        self, lat: float, lon: float, path: str | os.PathLike[str], **options: Any
    ) -> Path:
        """Save a PNG map of the area around (`lat`, `lon`); see `maps.area_map`."""
        from openvirl.world.maps import area_map

        return area_map(self, lat, lon, path, **options)

    # Street views (openvirl.world.streetview, openvirl.world.panoramas) -----------------------

    def street_view(
        self,
        lat: float,
        lon: float,
        heading: float | None = None,
        fov: float = 90.0,
        pitch: float = 0.0,
        size: tuple[int, int] | int = (512, 512),
    ) -> Any:
        """A street view (PIL image) at a point and heading; see `streetview.render_view`.
        Without `heading` it looks along the nearest street (`Router.street_heading`)."""
        from openvirl.world.streetview import render_view

        if heading is None:
            heading = self.router.street_heading(lat, lon)
        return render_view(self, lat, lon, heading, fov=fov, pitch=pitch, size=size)

    def visible(
        self, lat: float, lon: float, heading: float, fov: float = 90.0, **options: Any
    ) -> list[Any]:
        """The POI and street-name signs that view shows (`VisibleObject`s, nearest first);
        see `streetview.visible`."""
        from openvirl.world.streetview import visible

        return visible(self, lat, lon, heading, fov=fov, **options)

    def view_grid(self, lat: float, lon: float, heading: float, **options: Any) -> Any:
        """Four views [front, right; back, left] in a labelled 2x2 grid (PIL image); see
        `streetview.view_grid`."""
        from openvirl.world.streetview import view_grid

        return view_grid(self, lat, lon, heading, **options)

    @cached_property
    def panoramas(self) -> Any:
        """Virtual panoramas every ~10 m along `graph` (`panoramas.Panoramas`)."""
        from openvirl.world.panoramas import Panoramas

        return Panoramas(self)

    # Summary -----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """A JSON-able summary: sizes, bounds, sources and attribution."""
        G = self.graph
        total_m = sum(d["length_m"] for _, _, d in G.edges(data=True))
        categories = Counter(p.category for p in self.pois)
        return {
            "name": self.name,
            "description": self.description,
            "files": [str(f) for f in self.files],
            "sha256": self.sha256,
            "attribution": self.attribution,
            "license": self.license,
            "bounds": self.bounds._asdict(),
            "center": list(self.center),
            "nodes": G.number_of_nodes(),
            "edges": G.number_of_edges(),
            "walk_length_km": round(total_m / 1000.0, 2),
            "intersections": len(self.intersections),
            "named_intersections": sum(1 for v in self.intersections.values() if len(v) >= 2),
            "pois": len(self.pois),
            "top_categories": dict(categories.most_common(10)),
            "buildings": len(self.buildings),
            "addresses": len(self.addresses),
            "from_cache": self.from_cache,
            "load_seconds": round(self.load_seconds, 3),
        }


__all__ = [
    "CACHE_VERSION",
    "DEFAULT_BUILDING_HEIGHT_M",
    "LEVEL_HEIGHT_M",
    "ROUTE_COST_FACTORS",
    "WALK_SPEED_MPS",
    "Bounds",
    "Building",
    "City",
    "cache_file",
    "files_sha256",
    "oriented_coords",
]
