"""Route and area maps of a city as PNG images (matplotlib, no display) and as GeoJSON.

Maps are drawn in the city's local metric projection (x east, y north, equal scale) and carry
the "© OpenStreetMap contributors" credit. GeoJSON follows RFC 7946 ([lon, lat] order).
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from openvirl.world.city import City
    from openvirl.world.places import Place
    from openvirl.world.routing import Route

DEFAULT_SIZE_PX = 1000
"""Width and height of a map image, pixels."""

ROUTE_MARGIN_M = 80.0
"""Space shown around a route, metres."""

MAX_POI_LABELS = 15
"""Most POI names written on an area map (the most prominent ones)."""

STREET_LABEL_PT = 8.5
"""Street-name size, points, with a white halo: at 7 pt grey on grey, "East 45th Street" read
as "East 43rd Street" on a 900 px heatmap."""

MAX_STREET_LABELS = 14
"""Most street names written on a map (along the longest named edges in view)."""

_COLORS = {
    "background": "#f4f1ea",
    "building": "#d9d0c1",
    "building_edge": "#bfb4a3",
    "street": "#ffffff",
    "street_casing": "#b9b2a6",
    "footway": "#a7a29a",
    "route": "#1f6fd1",
    "start": "#2e9b4e",
    "end": "#d64541",
    "milestone": "#1f3f7a",
    "landmark": "#e08a1e",
    "poi": "#7a5ea8",
    "text": "#333333",
}


CJK_FONT_FAMILIES = ("Noto Sans CJK JP", "Noto Sans CJK SC", "IPAexGothic")
"""Fallback families for names DejaVu Sans lacks (Chinese, Japanese): Debian's
fonts-noto-cjk when installed, else IPAexGothic from the `matplotlib-fontja` package (a
dependency of the `world` extra). Hangul needs fonts-noto-cjk."""


@functools.cache
def map_fonts() -> tuple[str, ...]:
    """The font family list maps are drawn with: DejaVu Sans, then the CJK fallbacks found.

    Registers matplotlib-fontja's IPAexGothic without importing that package (importing it
    switches every matplotlib figure of the process to Japanese fonts), and sets
    `font.family` to the list, so matplotlib falls back glyph by glyph: "CHILI 美麗" draws
    both parts instead of "CHILI ▯▯".
    """
    import matplotlib
    from matplotlib import font_manager

    spec = importlib.util.find_spec("matplotlib_fontja")
    if spec is not None and spec.origin:
        ttf = Path(spec.origin).parent / "fonts" / "ipaexg.ttf"
        if ttf.is_file():
            font_manager.fontManager.addfont(str(ttf))
    known = {f.name for f in font_manager.fontManager.ttflist}
    families = ("DejaVu Sans", *(f for f in CJK_FONT_FAMILIES if f in known))
    matplotlib.rcParams["font.family"] = list(families)
    return families


def new_figure(size_px: int):
    """A square Agg figure of `size_px` pixels with one frameless axis (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    map_fonts()

    dpi = 100
    fig = Figure(figsize=(size_px / dpi, size_px / dpi), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor(_COLORS["background"])
    ax.set_aspect("equal")
    ax.set_axis_off()
    fig.patch.set_facecolor(_COLORS["background"])
    return fig, ax


def square_window(x0: float, y0: float, x1: float, y1: float, margin_m: float):
    """The square (x0, y0, x1, y1) in local metres around a box, widened by `margin_m`."""
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    half = max(x1 - x0, y1 - y0) / 2 + margin_m
    return cx - half, cy - half, cx + half, cy + half


def draw_base(ax, city: City, window: tuple[float, float, float, float]) -> None:
    """Buildings, streets and street names inside `window` (local metres)."""
    import shapely
    from matplotlib import patheffects
    from matplotlib.collections import LineCollection, PolyCollection

    from openvirl.world.city import STREET_HIGHWAYS

    box = shapely.box(*window)
    # Buildings: exterior rings only (holes do not matter at map scale).
    if city.buildings:
        polys = []
        for i in city.building_tree.query(box):
            geom = city.buildings[int(i)].footprint
            for part in getattr(geom, "geoms", [geom]):
                polys.append(np.asarray(part.exterior.coords))
        if polys:
            ax.add_collection(
                PolyCollection(
                    polys,
                    facecolors=_COLORS["building"],
                    edgecolors=_COLORS["building_edge"],
                    linewidths=0.4,
                    zorder=1,
                )
            )
    router = city.router
    streets, footways, named = [], [], []
    for i in router.tree.query(box):
        u, v = router.edges[int(i)]
        data = city.graph[u][v]
        coords = np.asarray(data["geometry"].coords)
        if data["highway"] in STREET_HIGHWAYS:
            streets.append(coords)
            if data["street"] and not data["street_inferred"]:
                named.append((data["geometry"].length, data["street"], data["geometry"]))
        else:
            footways.append(coords)
    span = window[2] - window[0]
    width = max(1.0, 2600.0 / span)  # street width in points, thinner when zoomed out
    if footways:
        ax.add_collection(
            LineCollection(
                footways, colors=_COLORS["footway"], linewidths=0.5, linestyles="--", zorder=2
            )
        )
    if streets:
        ax.add_collection(
            LineCollection(
                streets, colors=_COLORS["street_casing"], linewidths=width + 1.2, zorder=2
            )
        )
        ax.add_collection(
            LineCollection(streets, colors=_COLORS["street"], linewidths=width, zorder=2)
        )
    # Street names along the longest named edges, one label per street.
    seen: set[str] = set()
    for length, name, geom in sorted(named, key=lambda t: -t[0]):
        if name in seen or len(seen) >= MAX_STREET_LABELS or length < span / 20:
            continue
        seen.add(name)
        mid = geom.interpolate(0.5, normalized=True)
        a = geom.interpolate(max(0.0, geom.project(mid) - 5))
        b = geom.interpolate(min(geom.length, geom.project(mid) + 5))
        angle = float(np.degrees(np.arctan2(b.y - a.y, b.x - a.x)))
        if angle > 90:
            angle -= 180
        elif angle < -90:
            angle += 180
        if not (window[0] < mid.x < window[2] and window[1] < mid.y < window[3]):
            continue
        ax.text(
            mid.x,
            mid.y,
            name,
            fontsize=STREET_LABEL_PT,
            color="#333333",
            rotation=angle,
            rotation_mode="anchor",
            ha="center",
            va="center",
            zorder=3,
            clip_on=True,
            path_effects=[patheffects.withStroke(linewidth=2.5, foreground="white")],
            gid=f"street-label:{name}",
        )


def draw_label(ax, x: float, y: float, text: str, window, **kwargs: Any) -> None:
    """Write a label beside a marker, on the side that keeps it inside the map."""
    right_half = x > (window[0] + window[2]) / 2
    ax.text(
        x,
        y,
        f"{text}  " if right_half else f"  {text}",
        ha="right" if right_half else "left",
        clip_on=True,
        **kwargs,
    )


def finish_map(
    fig, ax, city: City, window, title: str | None, path: str | os.PathLike[str]
) -> Path:
    ax.set_xlim(window[0], window[2])
    ax.set_ylim(window[1], window[3])
    ax.text(
        0.995,
        0.005,
        f"{city.attribution} (ODbL)",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        color=_COLORS["text"],
        bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 2},
        zorder=10,
    )
    # Scale bar: a round length near a fifth of the width.
    span = window[2] - window[0]
    bar = float(10 ** np.floor(np.log10(span / 5)))
    bar *= 5 if bar * 5 <= span / 4 else (2 if bar * 2 <= span / 4 else 1)
    x0, y0 = window[0] + span * 0.03, window[1] + span * 0.03
    ax.plot([x0, x0 + bar], [y0, y0], color="black", linewidth=2, zorder=10)
    ax.text(x0 + bar / 2, y0 + span * 0.008, f"{bar:g} m", ha="center", fontsize=8, zorder=10)
    ax.annotate(
        "N",
        xy=(0.97, 0.97),
        xytext=(0.97, 0.91),
        xycoords="axes fraction",
        ha="center",
        fontsize=10,
        arrowprops={"arrowstyle": "-|>", "color": "black"},
        zorder=10,
    )
    if title:
        ax.text(
            0.01,
            0.99,
            title,
            transform=ax.transAxes,
            ha="left",
            va="top",
            fontsize=11,
            weight="bold",
            color=_COLORS["text"],
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none", "pad": 3},
            zorder=10,
        )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", facecolor=fig.get_facecolor())
    return out


def route_map(
    city: City,
    route: Route,
    path: str | os.PathLike[str],
    *,
    margin_m: float = ROUTE_MARGIN_M,
    size_px: int = DEFAULT_SIZE_PX,
    title: str | None = None,
) -> Path:
    """Draw a route on its streets and buildings and save it as a PNG.

    Shows the route line, start (green) and end (red), numbered milestones at the turn
    points, each milestone's landmark (orange) with its name, and the credit.

    Parameters
    ----------
    city
        The city the route was computed in.
    route
        The route.
    path
        Where to write the PNG.
    margin_m
        Space shown around the route, metres.
    size_px
        Width and height of the image, pixels.
    title
        Text in the top-left corner; default "<origin> → <destination> (<length> m)".

    Returns
    -------
    Path
        The written file.
    """
    lats = np.array([p[0] for p in route.polyline])
    lons = np.array([p[1] for p in route.polyline])
    xs, ys = city.to_xy(lats, lons)
    window = square_window(xs.min(), ys.min(), xs.max(), ys.max(), margin_m)
    fig, ax = new_figure(size_px)
    draw_base(ax, city, window)
    ax.plot(
        xs, ys, color=_COLORS["route"], linewidth=4, alpha=0.85, zorder=5, solid_capstyle="round"
    )
    for k, step in enumerate(route.steps[:-1], 1):
        tx, ty = city.to_xy(*step.end)
        ax.scatter([tx], [ty], s=160, color=_COLORS["milestone"], zorder=7, edgecolors="white")
        ax.text(
            tx,
            ty,
            str(k),
            color="white",
            fontsize=8,
            ha="center",
            va="center",
            weight="bold",
            zorder=8,
        )
        if step.landmarks and step.landmarks[0].place is not None:
            lm = step.landmarks[0].place
            lx, ly = city.to_xy(lm.lat, lm.lon)
            ax.scatter([lx], [ly], s=90, marker="*", color=_COLORS["landmark"], zorder=7)
            draw_label(
                ax,
                lx,
                ly,
                lm.name,
                window,
                fontsize=7,
                color=_COLORS["text"],
                zorder=8,
                va="bottom",
            )
    for place, color, label in (
        (route.origin, _COLORS["start"], "start"),
        (route.destination, _COLORS["end"], "end"),
    ):
        px, py = city.to_xy(place.lat, place.lon)
        ax.scatter([px], [py], s=220, color=color, zorder=9, edgecolors="white", linewidths=1.5)
        draw_label(
            ax,
            px,
            py,
            f"{label}: {place.name}",
            window,
            fontsize=8,
            weight="bold",
            color=color,
            zorder=9,
            va="center",
        )
    if title is None:
        title = f"{route.origin.name} → {route.destination.name} ({route.length_m:.0f} m)"
    return finish_map(fig, ax, city, window, title, path)


def area_map(
    city: City,
    lat: float,
    lon: float,
    path: str | os.PathLike[str],
    *,
    radius_m: float = 300.0,
    category: str | None = None,
    size_px: int = DEFAULT_SIZE_PX,
    title: str | None = None,
) -> Path:
    """Draw the area around a point (streets, buildings, POIs) and save it as a PNG.

    Parameters
    ----------
    city
        The city.
    lat, lon
        Centre of the map, degrees.
    path
        Where to write the PNG.
    radius_m
        Half the width of the map, metres.
    category
        Only POIs of this type or query word ("cafe", "coffee"); all POIs when None.
    size_px
        Width and height of the image, pixels.
    title
        Text in the top-left corner; default "<city>: <category or 'places'> around ...".

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    OutsideMapError
        The centre is off the map.
    UnknownCategoryError
        `category` is not in the vocabulary.
    """
    city.check_inside(lat, lon)
    cx, cy = city.to_xy(lat, lon)
    window = (cx - radius_m, cy - radius_m, cx + radius_m, cy + radius_m)
    fig, ax = new_figure(size_px)
    draw_base(ax, city, window)
    places = city.nearby(lat, lon, radius_m * 1.42, category)  # the square's corners too
    if places:
        px, py = city.to_xy(np.array([p.lat for p in places]), np.array([p.lon for p in places]))
        ax.scatter(px, py, s=14, color=_COLORS["poi"], zorder=6, edgecolors="white", linewidths=0.4)
        order = sorted(range(len(places)), key=lambda i: (-places[i].prominence, places[i].id))
        for i in order[:MAX_POI_LABELS]:
            draw_label(
                ax,
                px[i],
                py[i],
                places[i].name,
                window,
                fontsize=7,
                color=_COLORS["text"],
                zorder=7,
                va="bottom",
            )
    ax.scatter([cx], [cy], s=120, marker="X", color=_COLORS["end"], zorder=8)
    if title is None:
        what = category or "places"
        title = f"{city.name}: {what} within {radius_m:.0f} m of ({lat:.5f}, {lon:.5f})"
    return finish_map(fig, ax, city, window, title, path)


def _point(lat: float, lon: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lon, lat]}


def route_geojson(route: Route, *, attribution: str = "© OpenStreetMap contributors") -> dict:
    """A route as a GeoJSON FeatureCollection.

    Features: the whole route (LineString, `kind="route"`), each step (LineString,
    `kind="step"`, with street, distance, heading, turn, milestone and instruction), each
    turn point (Point, `kind="turn_point"`), each landmark (Point, `kind="landmark"`), and the
    origin and destination (Points). Coordinates are [lon, lat], degrees.

    Parameters
    ----------
    route
        The route.
    attribution
        The data credit, stored as the collection's `attribution` member.

    Returns
    -------
    dict
        The FeatureCollection, ready for `json.dump`.
    """
    features: list[dict[str, Any]] = [
        {
            "type": "Feature",
            "geometry": {
                "type": "LineString",
                "coordinates": [[lon, lat] for lat, lon in route.polyline],
            },
            "properties": {
                "kind": "route",
                "length_m": round(route.length_m, 1),
                "duration_s": round(route.duration_s, 1),
                "origin": route.origin.name,
                "destination": route.destination.name,
                "destination_relation": route.destination_relation,
            },
        }
    ]
    for k, step in enumerate(route.steps, 1):
        props = step.to_dict()
        props.pop("polyline")
        props.update(kind="step", index=k)
        line = step.polyline if len(step.polyline) > 1 else [step.start, step.end]
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[lo, la] for la, lo in line]},
                "properties": props,
            }
        )
        features.append(
            {
                "type": "Feature",
                "geometry": _point(*step.end),
                "properties": {"kind": "turn_point", "index": k, "milestone": step.milestone},
            }
        )
        for lm in step.landmarks:
            if lm.place is not None:
                features.append(
                    {
                        "type": "Feature",
                        "geometry": _point(lm.place.lat, lm.place.lon),
                        "properties": {"kind": "landmark", "step": k, **lm.to_dict()},
                    }
                )
    for place, kind in ((route.origin, "origin"), (route.destination, "destination")):
        features.append(
            {
                "type": "Feature",
                "geometry": _point(place.lat, place.lon),
                "properties": {"kind": kind, "name": place.name, "id": place.id},
            }
        )
    return {"type": "FeatureCollection", "attribution": attribution, "features": features}


def places_geojson(
    places: Iterable[Place], *, attribution: str = "© OpenStreetMap contributors"
) -> dict:
    """Places as a GeoJSON FeatureCollection of Points with their name, types and tags."""
    features = [
        {
            "type": "Feature",
            **({"id": p.id} if p.id else {}),
            "geometry": _point(p.lat, p.lon),
            "properties": {
                "name": p.name,
                "local_name": p.local_name,
                "category": p.category,
                "categories": list(p.categories),
                "prominence": p.prominence,
                "kind": p.kind,
                "tags": dict(p.tags),
            },
        }
        for p in places
    ]
    return {"type": "FeatureCollection", "attribution": attribution, "features": features}


def write_geojson(data: dict, path: str | os.PathLike[str]) -> Path:
    """Write a GeoJSON dict to `path` (UTF-8) and return the path."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return out


__all__ = ["area_map", "places_geojson", "route_geojson", "route_map", "write_geojson"]
