"""Street furniture from OpenStreetMap: what it is, where it stands, and how a view draws it.

V-IRL's urban robots count trash bins, hydrants and benches in Street View images. Offline,
those objects are OSM nodes (`amenity=waste_basket`, `emergency=fire_hydrant`, ...; trees also
from `natural=tree_row` ways, one every `TREE_ROW_SPACING_M`), read once per city with
pyosmium and cached on disk as JSON. Each kind has a plausible size and a look made of a few
boxes and ellipses (`KINDS`), so the renderer can draw every object at its mapped position
and `visible()` can list the ones a view shows: a detector or a VLM then has something real to
count, and the ground truth is known.

Objects are camera-facing billboards: their primitives are laid out across the view
direction, depth-tested against the facades, and drawn far to near after the signs. Tree
canopies start above the storefront signs (`CANOPY_BASE_M`) so that POI names stay legible.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import weakref
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from openvirl._paths import cache_dir

if TYPE_CHECKING:
    from openvirl.world.city import City

FURNITURE_VERSION = 1
"""Bump when what is read (kinds, tags, tree-row spacing) changes; old caches are ignored."""

TREE_ROW_SPACING_M = 8.0
"""Trees of a `natural=tree_row` way stand this far apart, metres."""

DRAW_DISTANCE_M = 90.0
"""Street furniture farther than this is not drawn (it would be a pixel or two), metres."""

VISIBLE_DISTANCE_M = 40.0
"""`visible(..., furniture=True)` lists objects up to this far by default, metres."""

MIN_OBJECT_HEIGHT_PX = 3.0
"""Objects projected shorter than this are not listed by `visible()`."""

CANOPY_BASE_M = 5.0
"""Street-tree canopies start here, above the storefront fascias (3.1-4.7 m), metres."""

# A look: (shape, x0, x1, z0, z1, rgb): "box" or "ellipse" across the view (x, metres from the
# object's centre, left to right) and up (z, metres above the street).
Look = tuple[tuple[str, float, float, float, float, tuple[int, int, int]], ...]


@dataclass(frozen=True)
class Kind:
    """A kind of street object: the OSM tags that mark it, words for it, and its look."""

    tags: tuple[tuple[str, str], ...]
    words: str
    look: Look


_DARK = (52, 56, 60)
_STEEL = (150, 156, 162)

KINDS: dict[str, Kind] = {
    "tree": Kind(
        (("natural", "tree"),),
        "tree",
        (
            ("box", -0.16, 0.16, 0.0, CANOPY_BASE_M + 0.6, (92, 70, 48)),
            ("ellipse", -2.2, 2.2, CANOPY_BASE_M, CANOPY_BASE_M + 4.4, (64, 112, 52)),
            ("ellipse", -1.4, 1.2, CANOPY_BASE_M + 1.6, CANOPY_BASE_M + 4.0, (84, 136, 64)),
        ),
    ),
    "street_lamp": Kind(
        (("highway", "street_lamp"),),
        "street lamp",
        (
            ("box", -0.08, 0.08, 0.0, 7.0, _DARK),
            ("box", -0.08, 0.9, 6.85, 7.05, _DARK),
            ("box", 0.5, 0.95, 6.6, 6.85, (246, 232, 170)),
        ),
    ),
    "traffic_signals": Kind(
        (("highway", "traffic_signals"),),
        "traffic light",
        (
            ("box", -0.09, 0.09, 0.0, 3.4, _DARK),
            ("box", -0.2, 0.2, 3.4, 4.5, (34, 36, 38)),
            ("ellipse", -0.12, 0.12, 4.15, 4.4, (220, 50, 40)),
            ("ellipse", -0.12, 0.12, 3.82, 4.07, (230, 180, 40)),
            ("ellipse", -0.12, 0.12, 3.5, 3.75, (60, 200, 90)),
        ),
    ),
    "fire_hydrant": Kind(
        (("emergency", "fire_hydrant"),),
        "fire hydrant",
        (
            ("box", -0.15, 0.15, 0.0, 0.62, (196, 38, 32)),
            ("box", -0.24, 0.24, 0.34, 0.44, (196, 38, 32)),
            ("ellipse", -0.15, 0.15, 0.55, 0.78, (214, 176, 44)),
        ),
    ),
    "bench": Kind(
        (("amenity", "bench"),),
        "bench",
        (
            ("box", -0.85, -0.75, 0.0, 0.45, _DARK),
            ("box", 0.75, 0.85, 0.0, 0.45, _DARK),
            ("box", -0.9, 0.9, 0.42, 0.5, (132, 92, 56)),
            ("box", -0.9, 0.9, 0.58, 0.9, (120, 84, 52)),
        ),
    ),
    "waste_basket": Kind(
        (("amenity", "waste_basket"),),
        "trash bin",
        (
            ("box", -0.27, 0.27, 0.0, 0.88, (46, 84, 60)),
            ("box", -0.3, 0.3, 0.84, 0.94, (30, 40, 34)),
        ),
    ),
    "bicycle_parking": Kind(
        (("amenity", "bicycle_parking"),),
        "bike rack",
        (
            ("box", -0.9, -0.82, 0.0, 0.85, _STEEL),
            ("box", -0.9, -0.1, 0.8, 0.88, _STEEL),
            ("box", -0.18, -0.1, 0.0, 0.85, _STEEL),
            ("box", 0.1, 0.18, 0.0, 0.85, _STEEL),
            ("box", 0.1, 0.9, 0.8, 0.88, _STEEL),
            ("box", 0.82, 0.9, 0.0, 0.85, _STEEL),
        ),
    ),
    "bus_stop": Kind(
        (("highway", "bus_stop"),),
        "bus stop",
        (
            ("box", -0.05, 0.05, 0.0, 2.9, _STEEL),
            ("box", -0.3, 0.3, 2.2, 2.9, (30, 84, 170)),
            ("box", -0.24, 0.24, 2.45, 2.62, (240, 240, 240)),
        ),
    ),
    "post_box": Kind(
        (("amenity", "post_box"),),
        "mailbox",
        (
            ("box", -0.28, 0.28, 0.0, 1.05, (36, 70, 140)),
            ("ellipse", -0.28, 0.28, 0.92, 1.22, (36, 70, 140)),
        ),
    ),
    "drinking_water": Kind(
        (("amenity", "drinking_water"),),
        "drinking fountain",
        (("box", -0.18, 0.18, 0.0, 0.95, (120, 124, 128)),),
    ),
    "vending_machine": Kind(
        (("amenity", "vending_machine"),),
        "vending machine",
        (
            ("box", -0.45, 0.45, 0.0, 1.85, (200, 40, 46)),
            ("box", -0.35, 0.1, 0.7, 1.7, (226, 226, 232)),
        ),
    ),
    "recycling": Kind(
        (("amenity", "recycling"),),
        "recycling bin",
        (("box", -0.6, 0.6, 0.0, 1.3, (40, 120, 70)),),
    ),
    "toilets": Kind(
        (("amenity", "toilets"),),
        "public toilet",
        (("box", -1.0, 1.0, 0.0, 2.6, (44, 82, 66)),),
    ),
    "picnic_table": Kind(
        (("leisure", "picnic_table"),),
        "picnic table",
        (
            ("box", -0.9, 0.9, 0.7, 0.78, (140, 100, 62)),
            ("box", -0.8, -0.7, 0.0, 0.7, (120, 84, 52)),
            ("box", 0.7, 0.8, 0.0, 0.7, (120, 84, 52)),
        ),
    ),
}
"""Every street-object kind → its tags, words and look."""

KIND_NAMES = tuple(KINDS)
_KIND_INDEX = {k: i for i, k in enumerate(KIND_NAMES)}
_POST_BOX_COLOURS = {"us": (36, 70, 140), "fi": (232, 150, 30), "default": (196, 40, 36)}


@dataclass(frozen=True)
class StreetObject:
    """A street object from OSM.

    Attributes
    ----------
    id
        OSM id ("node/123"), or "way/45#3" for the fourth tree of a tree row.
    kind
        Its `KINDS` key.
    lat, lon
        Position, degrees.
    x, y
        Position in the city's local metres.
    """

    id: str
    kind: str
    lat: float
    lon: float
    x: float
    y: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {"id": self.id, "kind": self.kind, "lat": self.lat, "lon": self.lon}


def _read_osm(files: Iterable[Any]) -> list[tuple[str, str, float, float]]:
    """(id, kind, lat, lon) of every street object in the files (nodes, and tree rows)."""
    import osmium

    wanted = {tag: kind for kind, spec in KINDS.items() for tag in spec.tags}
    found: dict[str, tuple[str, float, float]] = {}
    for path in files:
        fmt = "osm" if str(path).endswith(".osm") else ""
        source = osmium.io.File(str(path), fmt) if fmt else str(path)
        processor = osmium.FileProcessor(source, osmium.osm.NODE | osmium.osm.WAY)
        for obj in processor.with_locations():
            tags = obj.tags
            if obj.is_node():
                if not len(tags) or not obj.location.valid():
                    continue
                for (k, v), kind in wanted.items():
                    if tags.get(k) == v:
                        found[f"node/{obj.id}"] = (kind, obj.location.lat, obj.location.lon)
                        break
            elif tags.get("natural") == "tree_row":
                pts = [(n.lat, n.lon) for n in obj.nodes if n.location.valid()]
                for k, (lat, lon) in enumerate(_along(pts, TREE_ROW_SPACING_M)):
                    found[f"way/{obj.id}#{k}"] = ("tree", lat, lon)
    return [(oid, kind, lat, lon) for oid, (kind, lat, lon) in sorted(found.items())]


def _along(pts: list[tuple[float, float]], spacing_m: float) -> list[tuple[float, float]]:
    """Points every `spacing_m` metres along a polyline of (lat, lon), from its start."""
    if len(pts) < 2:
        return pts
    out = [pts[0]]
    carry = 0.0
    for (a_lat, a_lon), (b_lat, b_lon) in itertools.pairwise(pts):
        kx = 111_320.0 * math.cos(math.radians(a_lat))
        seg = math.hypot((b_lat - a_lat) * 111_320.0, (b_lon - a_lon) * kx)
        d = spacing_m - carry
        while d <= seg:
            f = d / seg
            out.append((a_lat + f * (b_lat - a_lat), a_lon + f * (b_lon - a_lon)))
            d += spacing_m
        carry = seg - (d - spacing_m)
    return out


def _cache_file(city: City) -> Any:
    return cache_dir("world") / f"furniture-{city.sha256[:32]}-v{FURNITURE_VERSION}.json"


_OBJECTS: weakref.WeakKeyDictionary[Any, list[StreetObject]] = weakref.WeakKeyDictionary()


def street_objects(city: City) -> list[StreetObject]:
    """Every street object of the city (read once, then from a JSON cache), sorted by id.

    Objects farther than 150 m outside the city's box are dropped.
    """
    cached = _OBJECTS.get(city)
    if cached is not None:
        return cached
    path = _cache_file(city)
    rows: list[Any] | None = None
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data["objects"] if data.get("version") == FURNITURE_VERSION else None
        except (OSError, ValueError, KeyError, TypeError):
            rows = None  # a torn or foreign cache is rebuilt
    if rows is None:
        rows = _read_osm(city.files)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"version": FURNITURE_VERSION, "objects": rows}))
        os.replace(tmp, path)
    objects = []
    for oid, kind, lat, lon in rows:
        if kind not in KINDS or not city.bounds.contains(lat, lon, margin_m=150.0):
            continue
        x, y = city.to_xy(lat, lon)
        objects.append(
            StreetObject(str(oid), str(kind), float(lat), float(lon), float(x), float(y))
        )
    _OBJECTS[city] = objects
    return objects


class Furniture:
    """The street objects of a city as arrays, with a grid for radius queries (see `for_city`)."""

    def __init__(self, city: City) -> None:
        from openvirl.world.scene import GridIndex

        self.objects = street_objects(city)
        self.kind = np.array([_KIND_INDEX[o.kind] for o in self.objects], np.int16)
        self.x = np.array([o.x for o in self.objects], float)
        self.y = np.array([o.y for o in self.objects], float)
        self.grid = GridIndex(self.x, self.y, cell_m=50.0)
        b = city.bounds
        lat, lon = (b.min_lat + b.max_lat) / 2, (b.min_lon + b.max_lon) / 2
        # Mailboxes are blue in the US, orange in Finland, red in most other places.
        if -130 < lon < -60 and 20 < lat < 50:
            country = "us"
        elif 59 < lat < 71 and 19 < lon < 32:
            country = "fi"
        else:
            country = "default"
        self.post_box_rgb = _POST_BOX_COLOURS[country]

    def near(self, x: float, y: float, radius_m: float) -> np.ndarray:
        """Indices of the objects within `radius_m` of (x, y)."""
        idx = self.grid.query(x, y, radius_m)
        if len(idx) == 0:
            return idx
        d = np.hypot(self.x[idx] - x, self.y[idx] - y)
        return idx[d <= radius_m]


_FURNITURE: weakref.WeakKeyDictionary[Any, Furniture] = weakref.WeakKeyDictionary()


def furniture_for(city: City) -> Furniture:
    """The city's `Furniture`, built on first use and kept as long as the city lives."""
    f = _FURNITURE.get(city)
    if f is None:
        f = Furniture(city)
        _FURNITURE[city] = f
    return f


# Projection and drawing ------------------------------------------------------------------------


@dataclass
class FurnitureHit:
    """One object as a view sees it: its pixel box, and how much of it is not hidden."""

    index: int
    depth_m: float
    distance_m: float
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    visible_px: int
    total_px: int


def _look(f: Furniture, i: int) -> Look:
    name = KIND_NAMES[int(f.kind[i])]
    look = KINDS[name].look
    if name == "post_box":
        return tuple((s, a, b, c, d, f.post_box_rgb) for s, a, b, c, d, _ in look)
    if name == "tree":  # trees differ in size (0.8-1.2x, from the id) above a common trunk base
        k = 0.8 + 0.4 * (zlib.crc32(f.objects[i].id.encode()) % 1000) / 999
        base = CANOPY_BASE_M
        return tuple(
            (s, a * k, b * k, c if c < base else base + (c - base) * k, base + (d - base) * k, rgb)
            if d > base
            else (s, a, b, c, d, rgb)
            for s, a, b, c, d, rgb in look
        )
    return look


def _pixel_span(lo: float, hi: float, limit: int) -> tuple[int, int]:
    """Pixel index range [a, b) covering the continuous span, at least one pixel wide."""
    a = math.floor(lo + 0.5)
    b = math.floor(hi + 0.5)
    if b <= a:
        b = a + 1
    return max(0, a), min(limit, b)


def furniture_pass(
    city: City,
    cam: Any,
    zbuf: np.ndarray,
    canvas: np.ndarray | None,
    *,
    haze_rgb: np.ndarray,
    fog: Any,
    max_distance_m: float = DRAW_DISTANCE_M,
) -> list[FurnitureHit]:
    """Draw (when `canvas` is given) and measure the street objects in front of `cam`.

    Objects are drawn far to near; each pixel is drawn only where the object is nearer than
    the facade there (`zbuf`, depth along the view axis). Returns one hit per object whose
    box falls in the frame, nearest first.
    """
    f = furniture_for(city)
    idx = f.near(cam.x_m, cam.y_m, max_distance_m)
    if len(idx) == 0:
        return []
    fx, fy = cam.forward
    rx, ry = cam.right
    dx = f.x[idx] - cam.x_m
    dy = f.y[idx] - cam.y_m
    t = dx * fx + dy * fy
    u = dx * rx + dy * ry
    half = math.tan(math.radians(cam.fov_deg) / 2)
    keep = (t > 0.6) & (np.abs(u) <= t * half + 2.5)
    H, W = zbuf.shape
    focal, cx, cy, eye = cam.focal_px, cam.cx, cam.cy, cam.eye_height_m
    order = np.argsort(-t[keep], kind="stable")
    hits: list[FurnitureHit] = []
    for j in order:
        k = int(np.nonzero(keep)[0][j])
        i, tk, uk = int(idx[k]), float(t[k]), float(u[k])
        look = _look(f, i)
        s = focal / tk
        x0 = cx + s * (uk + min(p[1] for p in look))
        x1 = cx + s * (uk + max(p[2] for p in look))
        top = cy - s * (max(p[4] for p in look) - eye)
        bottom = cy - s * (min(p[3] for p in look) - eye)
        if x1 < 0 or x0 > W or bottom < 0 or top > H:
            continue
        visible = total = 0
        shade = None
        if canvas is not None:
            haze = float(fog(np.array([tk]))[0])
            shade = (1.0 - haze, haze * haze_rgb)
        for shape, a, b, z0, z1, rgb in look:
            c0, c1 = _pixel_span(cx + s * (uk + a), cx + s * (uk + b), W)
            r0, r1 = _pixel_span(cy - s * (z1 - eye), cy - s * (z0 - eye), H)
            if c1 <= c0 or r1 <= r0:
                continue
            mask = zbuf[r0:r1, c0:c1] > tk
            if shape == "ellipse" and (c1 - c0 > 2 and r1 - r0 > 2):
                xs = (np.arange(c0, c1) + 0.5 - (cx + s * (uk + (a + b) / 2))) / (s * (b - a) / 2)
                ys = (np.arange(r0, r1) + 0.5 - (cy - s * ((z0 + z1) / 2 - eye))) / (
                    s * (z1 - z0) / 2
                )
                inside = ys[:, None] ** 2 + xs[None, :] ** 2 <= 1.0
                total += int(inside.sum())
                mask &= inside
            else:
                total += mask.size
            visible += int(mask.sum())
            if canvas is not None and shade is not None and mask.any():
                colour = np.asarray(rgb, np.float32) * shade[0] + shade[1]
                region = canvas[r0:r1, c0:c1]
                region[mask] = np.clip(colour + 0.5, 0, 255).astype(np.uint8)
        hits.append(
            FurnitureHit(
                index=i,
                depth_m=tk,
                distance_m=float(math.hypot(dx[k], dy[k])),
                x_min=max(0.0, x0),
                x_max=min(float(W), x1),
                y_min=max(0.0, top),
                y_max=min(float(H), bottom),
                visible_px=visible,
                total_px=max(1, total),
            )
        )
    hits.sort(key=lambda h: (h.distance_m, h.index))
    return hits


__all__ = [
    "CANOPY_BASE_M",
    "DRAW_DISTANCE_M",
    "KINDS",
    "KIND_NAMES",
    "TREE_ROW_SPACING_M",
    "VISIBLE_DISTANCE_M",
    "Furniture",
    "FurnitureHit",
    "Kind",
    "StreetObject",
    "furniture_for",
    "furniture_pass",
    "street_objects",
]
