"""What every agent shares: its result, the run folder it writes, the map it draws, place lookup.

An agent run folder is what the viewer opens (`openvirl view DIR`): ``config.json`` (``kind``
"agent", the agent's name, its policy and every option), ``result.json`` (the agent's answer),
``metrics.json`` (its numbers, LLM call and fallback counts included), ``report.md`` and the
map PNG(s) beside them. When some of the policy's answers could not be used, the report says
so under its title (who answered, and how many answers the baseline replaced), and
``config.json`` records ``answered_by``, so no fallback is presented as the model's output.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openvirl._text import clean_text
from openvirl.world.errors import OutsideMapError, WorldError

if TYPE_CHECKING:
    from openvirl.policies.base import Policy
    from openvirl.world import City, Place

RESULT = "result.json"
CONFIG = "config.json"
METRICS = "metrics.json"
REPORT = "report.md"


@dataclass
class AgentResult:
    """What an agent run returns.

    Attributes
    ----------
    agent
        The agent's name ("route_optimizer").
    data
        The JSON-able answer (the agent's own fields).
    map_png
        The map drawn for the run, or None when no output folder was given.
    out_dir
        The run folder, or None.
    metrics
        Flat numbers of the run (also in ``metrics.json``).
    """

    agent: str
    data: dict[str, Any]
    map_png: Path | None = None
    out_dir: Path | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict: the data plus `agent`, `map_png` and `metrics`."""
        return {
            "agent": self.agent,
            **self.data,
            "metrics": self.metrics,
            "map_png": str(self.map_png) if self.map_png else None,
        }


def load_city(city: City | str) -> City:
    """A `City` as is, or loaded by name or path."""
    if isinstance(city, str):
        from openvirl.world import City

        return City.load(city)
    return city


def policy_name(policy: Policy | None) -> str:
    """The policy's name, or "baseline" when the agent runs without one."""
    return "baseline" if policy is None else str(getattr(policy, "name", type(policy).__name__))


def rated_by(row: Mapping[str, Any], policy: Policy | None) -> str:
    """Who produced a row of a report: the policy's name, or "baseline" (no model, or the
    model's answer for this row could not be used: ``row["source"] != "llm"``)."""
    if policy is None or row.get("source") != "llm":
        return "baseline"
    return policy_name(policy)


def resolve_place(city: City, where: Place | str | Sequence[float], *, what: str) -> Place:
    """A Place from a Place, a text to geocode, or a (lat, lon) pair in degrees.

    Raises
    ------
    PlaceNotFoundError
        The text names nothing in the city; the message lists the closest names.
    OutsideMapError
        The point is off the map.
    WorldError
        `where` is none of the above (the message names `what`).
    """
    return city.router.as_place(_as_where(where, what), what=what)


def _as_where(where: Any, what: str) -> Any:
    from openvirl.world import Place

    if isinstance(where, (Place, str)):
        return where
    try:
        lat, lon = (float(v) for v in where)
    except (TypeError, ValueError):
        raise WorldError(
            f"`{what}` must be a place name, a Place or a (lat, lon) pair; got {where!r}."
        ) from None
    if not (math.isfinite(lat) and math.isfinite(lon)):
        raise WorldError(f"`{what}` has a non-finite coordinate: {where!r}.")
    return (lat, lon)


def parse_latlon(text: str) -> tuple[float, float] | None:
    """``"40.75, -73.98"`` (parentheses optional) as (lat, lon) degrees; None if not a point."""
    cleaned = text.strip().strip("()[] ")
    parts = [p for p in cleaned.replace(";", ",").split(",") if p.strip()]
    if len(parts) != 2:
        return None
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return None
    return lat, lon


def place_or_point(text: str) -> str | tuple[float, float]:
    """A command-line place argument: a "lat, lon" pair becomes a point, anything else text."""
    point = parse_latlon(text)
    return point if point is not None else text


def check_polygon(city: City, polygon: Sequence[Sequence[float]], *, what: str = "polygon"):
    """A (lat, lon) polygon as a shapely Polygon in the city's local metres, checked.

    Raises
    ------
    WorldError
        Fewer than 3 vertices, or a degenerate (zero-area) polygon.
    OutsideMapError
        Any vertex is off the map: the message gives the map's bounds.
    """
    from shapely.geometry import Polygon

    points = [(float(p[0]), float(p[1])) for p in polygon]
    if len(points) < 3:
        raise WorldError(f"`{what}` needs at least 3 (lat, lon) vertices, got {len(points)}.")
    outside = []
    for lat, lon in points:
        try:
            city.check_inside(lat, lon)
        except OutsideMapError:
            outside.append((lat, lon))
    if outside:
        b = city.bounds
        raise OutsideMapError(
            f"`{what}` has {len(outside)} of {len(points)} vertices outside the map of "
            f"`{city.name}` (first: {outside[0][0]:.6f}, {outside[0][1]:.6f}); the map covers "
            f"lat {b.min_lat:.5f}..{b.max_lat:.5f}, lon {b.min_lon:.5f}..{b.max_lon:.5f}. "
            "Pass a polygon inside it or load the city that contains it."
        )
    xs, ys = city.to_xy([p[0] for p in points], [p[1] for p in points])
    poly = Polygon(list(zip(xs, ys, strict=True)))
    if not poly.is_valid:
        poly = poly.buffer(0)
    if poly.is_empty or poly.area <= 1.0:
        raise WorldError(f"`{what}` encloses no area; give its vertices in order.")
    return poly


def street_points(city: City, area: Any, *, spacing_m: float, snap_m: float) -> Any:
    """Points every `spacing_m` over a polygon, snapped onto walkable streets, in
    nearest-neighbour order: V-IRL's polygon sweep (a grid snapped to panoramas, ordered by
    TSP), with spacing and order in metres (V-IRL's were in degrees).

    Parameters
    ----------
    city
        The city.
    area
        A shapely Polygon in the city's local metres (see `check_polygon`).
    spacing_m
        Grid spacing, metres; snapped points closer than half of it are merged.
    snap_m
        Grid points farther than this from a walkable street are dropped, metres.

    Returns
    -------
    numpy.ndarray
        (n, 2) local metres, in visiting order.

    Raises
    ------
    WorldError
        No grid point lies near a street.
    """
    import numpy as np
    import shapely

    x0, y0, x1, y1 = area.bounds
    gx, gy = np.meshgrid(np.arange(x0, x1 + 1e-9, spacing_m), np.arange(y0, y1 + 1e-9, spacing_m))
    pts = shapely.points(gx.ravel(), gy.ravel())
    inside = shapely.contains(area, pts)
    router = city.router
    snapped: list[tuple[float, float]] = []
    for p in np.asarray(pts)[inside]:
        idx, d = router.tree.query_nearest(p, return_distance=True, all_matches=False)
        if len(idx) == 0 or d[0] > snap_m:
            continue
        geom = router.edge_geoms[int(idx[0])]
        q = geom.interpolate(geom.project(p))
        if all(math.hypot(q.x - a, q.y - b) >= spacing_m / 2 for a, b in snapped[-50:]):
            snapped.append((q.x, q.y))
    if not snapped:
        raise WorldError("the polygon holds no walkable street; draw it around some streets.")
    todo = np.array(snapped)
    order = [0]
    left = np.ones(len(todo), dtype=bool)
    left[0] = False
    while left.any():
        last = todo[order[-1]]
        d = np.where(left, np.hypot(todo[:, 0] - last[0], todo[:, 1] - last[1]), np.inf)
        k = int(np.argmin(d))
        order.append(k)
        left[k] = False
    return todo[order]


def square_polygon(
    city: City, lat: float, lon: float, half_side_m: float
) -> list[tuple[float, float]]:
    """The (lat, lon) corners of a square of side 2 x `half_side_m` metres around a point."""
    x, y = city.to_xy(lat, lon)
    h = half_side_m
    corners = [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    return [tuple(float(v) for v in city.to_latlon(px, py)) for px, py in corners]


def parse_polygon(text: str) -> list[tuple[float, float]]:
    """``"lat,lon; lat,lon; ..."`` or a file with one ``lat, lon`` per line (V-IRL's format)."""
    path = Path(text)
    if len(text) < 4096 and path.suffix and path.is_file():
        lines = path.read_text(encoding="utf-8").splitlines()
    else:
        lines = text.split(";")
    points = []
    for line in lines:
        if not line.strip():
            continue
        point = parse_latlon(line)
        if point is None:
            raise WorldError(f"cannot read the polygon vertex {line.strip()!r}; write 'lat, lon'.")
        points.append(point)
    return points


# ---------------------------------------------------------------------------- run folders
def _jsonable(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {clean_text(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return clean_text(value)  # model text may hold lone surrogates
    if value is None or isinstance(value, (int, float, bool)):
        return value
    return clean_text(str(value))


def write_json(path: Path, payload: Any) -> Path:
    """Write JSON atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, ensure_ascii=False) + "\n", "utf-8")
    tmp.replace(path)
    return path


def write_agent_run(
    out_dir: Path,
    *,
    agent: str,
    title: str,
    config: Any,
    policy: Policy | None,
    data: Mapping[str, Any],
    metrics: Mapping[str, Any],
    summary: Sequence[str],
    images: Sequence[Path] = (),
) -> None:
    """Write the run folder of one agent run (see the module docstring).

    Parameters
    ----------
    out_dir
        The folder (created).
    agent
        The agent's name.
    title
        The report's title.
    config
        The agent's config dataclass.
    policy
        The policy, or None for the baseline.
    data
        The result (``result.json``).
    metrics
        Flat numbers (``metrics.json``).
    summary
        Markdown lines for the report's body.
    images
        PNGs to show in the report (paths inside `out_dir`).
    """
    from openvirl.agents.llm import answered_by, fallback_notice

    out_dir.mkdir(parents=True, exist_ok=True)
    name = policy_name(policy)
    calls = int(metrics.get("llm/calls") or 0)
    fallbacks = int(metrics.get("llm/fallbacks") or 0)
    by = answered_by(calls, fallbacks) if policy is not None else "baseline"
    write_json(
        out_dir / CONFIG,
        {
            "kind": "agent",
            "agent": agent,
            "name": agent,
            "policy": name,
            "answered_by": by,
            "config": config,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        },
    )
    write_json(out_dir / RESULT, {"agent": agent, **data})
    write_json(out_dir / METRICS, {"agent": agent, "policy": name, **metrics})
    head = f"Agent `{agent}` · policy `{name}`"
    if policy is not None and calls:
        head += f" · answers used: {calls - fallbacks} of {calls} (answered by: {by})"
    notice = fallback_notice(metrics, f"`{name}`") if policy is not None else ""
    md = [f"# {title}", "", head, ""]
    if notice:
        md += [f"> **Warning:** {notice}", ""]
    md += [*summary, ""]
    for image in images:
        rel = Path(image).relative_to(out_dir).as_posix()
        md += [f"![{rel}]({rel})", ""]
    md += ["Map data © OpenStreetMap contributors (ODbL).", ""]
    (out_dir / REPORT).write_text("\n".join(md), encoding="utf-8")


# ---------------------------------------------------------------------------- maps
MAP_SIZE_PX = 900
"""Width and height of an agent's map, pixels."""

MAP_MARGIN_M = 60.0
"""Space shown around everything drawn on an agent's map, metres."""


def draw_map(
    city: City,
    path: Path,
    *,
    lines: Sequence[tuple[Sequence[tuple[float, float]], str, str]] = (),
    points: Sequence[tuple[float, float, str, str]] = (),
    heat: Sequence[tuple[float, float]] = (),
    polygon: Sequence[tuple[float, float]] | None = None,
    start: tuple[float, float, str] | None = None,
    title: str | None = None,
    numbered: bool = False,
    size_px: int = MAP_SIZE_PX,
    heat_cell_m: float = 8.0,
    legend: Sequence[tuple[str, str]] = (),
) -> Path:
    """Draw polylines, labelled points and an optional density layer over the city's streets.

    Parameters
    ----------
    city
        The city.
    path
        The PNG to write.
    lines
        ``(polyline of (lat, lon), colour, label)`` each.
    points
        ``(lat, lon, colour, label)`` each; with `numbered`, points get 1, 2, ... markers.
    heat
        (lat, lon) points whose density is drawn as a heatmap (a Gaussian-smoothed
        histogram on `heat_cell_m` cells).
    polygon
        A (lat, lon) outline to draw.
    start
        ``(lat, lon, label)`` of a start marker (green), or None.
    title
        The map's title.
    numbered
        Number the points in order.
    size_px
        Image side, pixels.
    heat_cell_m
        Heatmap cell side, metres.
    legend
        ``(colour, label)`` rows for the point markers, shown in the legend with the
        labelled lines and the start marker.

    Returns
    -------
    Path
        The written file.
    """
    import numpy as np

    from openvirl.world import maps

    every: list[tuple[float, float]] = []
    for poly, _, _ in lines:
        every.extend(poly)
    every.extend((p[0], p[1]) for p in points)
    every.extend(heat)
    if polygon:
        every.extend(polygon)
    if start is not None:
        every.append((start[0], start[1]))
    if not every:
        every = [city.center]
    lats = np.array([p[0] for p in every])
    lons = np.array([p[1] for p in every])
    xs, ys = city.to_xy(lats, lons)
    window = maps.square_window(xs.min(), ys.min(), xs.max(), ys.max(), MAP_MARGIN_M)
    fig, ax = maps.new_figure(size_px)
    maps.draw_base(ax, city, window)
    if heat:
        hx, hy = city.to_xy(np.array([p[0] for p in heat]), np.array([p[1] for p in heat]))
        _heat_layer(ax, np.asarray(hx), np.asarray(hy), window, heat_cell_m)
    if polygon:
        px, py = city.to_xy(np.array([p[0] for p in polygon]), np.array([p[1] for p in polygon]))
        ax.fill(px, py, facecolor="#1f6fd1", alpha=0.08, edgecolor="#1f6fd1", lw=1.5, zorder=4)
    for poly, colour, label in lines:
        if len(poly) < 2:
            continue
        lx, ly = city.to_xy(np.array([p[0] for p in poly]), np.array([p[1] for p in poly]))
        ax.plot(
            lx,
            ly,
            color=colour,
            lw=3.5,
            alpha=0.85,
            zorder=5,
            label=label or None,
            solid_capstyle="round",
        )
    for k, (lat, lon, colour, label) in enumerate(points, 1):
        x, y = city.to_xy(lat, lon)
        size = 180 if numbered else 60
        ax.scatter([x], [y], s=size, color=colour, zorder=7, edgecolors="white", linewidths=1.2)
        if numbered:
            ax.text(
                x,
                y,
                str(k),
                color="white",
                fontsize=8,
                ha="center",
                va="center",
                weight="bold",
                zorder=8,
            )
        if label:
            maps.draw_label(
                ax, x, y, label, window, fontsize=7, color="#222222", zorder=8, va="bottom"
            )
    if start is not None:
        x, y = city.to_xy(start[0], start[1])
        ax.scatter([x], [y], s=200, color="#2e9b4e", zorder=9, edgecolors="white", linewidths=1.5)
        maps.draw_label(
            ax,
            x,
            y,
            f"start: {start[2]}",
            window,
            fontsize=8,
            weight="bold",
            color="#2e9b4e",
            zorder=9,
            va="center",
        )
    handles, _ = ax.get_legend_handles_labels()
    if legend:
        from matplotlib.lines import Line2D

        marker = {"marker": "o", "linestyle": "", "markeredgecolor": "white", "markersize": 8}
        if start is not None:
            handles.append(Line2D([], [], markerfacecolor="#2e9b4e", label="start", **marker))
        handles += [Line2D([], [], markerfacecolor=c, label=lab, **marker) for c, lab in legend]
    if handles:
        ax.legend(
            handles=handles,
            loc="lower right",
            bbox_to_anchor=(1.0, 0.03),
            fontsize=8,
            framealpha=0.85,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # glyphs (CJK names) the map font lacks
        return maps.finish_map(fig, ax, city, window, title, path)


def _heat_layer(ax: Any, xs: Any, ys: Any, window: Sequence[float], cell_m: float) -> None:
    import numpy as np

    x0, y0, x1, y1 = window
    nx = max(4, int((x1 - x0) / cell_m))
    ny = max(4, int((y1 - y0) / cell_m))
    grid, _, _ = np.histogram2d(ys, xs, bins=[ny, nx], range=[[y0, y1], [x0, x1]])
    # Separable Gaussian blur (sigma 2.5 cells, 20 m at the default 8 m cells) so single
    # objects read as soft blobs and clusters as hot spots.
    kernel = np.exp(-0.5 * (np.arange(-8, 9) / 2.5) ** 2)
    kernel /= kernel.sum()
    for axis in (0, 1):
        grid = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), axis, grid)
    if grid.max() <= 0:
        return
    masked = np.ma.masked_less(grid, grid.max() * 0.03)
    image = ax.imshow(
        masked,
        extent=(x0, x1, y0, y1),
        origin="lower",
        cmap="inferno_r",
        alpha=0.6,
        zorder=3,
        interpolation="bilinear",
    )
    colorbar = ax.figure.colorbar(image, cax=ax.inset_axes((0.93, 0.08, 0.02, 0.3)))
    colorbar.set_label("objects per cell (smoothed)", fontsize=7)
    colorbar.ax.tick_params(labelsize=6)


__all__ = [
    "AgentResult",
    "check_polygon",
    "draw_map",
    "load_city",
    "parse_latlon",
    "parse_polygon",
    "place_or_point",
    "policy_name",
    "rated_by",
    "resolve_place",
    "square_polygon",
    "street_points",
    "write_agent_run",
    "write_json",
]
