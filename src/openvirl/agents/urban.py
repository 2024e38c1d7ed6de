"""RX-399, the urban counter, and Imani, the urban planner: count street objects and map them.

V-IRL's RX-399 (§2) walks a short route, runs an open-vocabulary detector (GLIP) on the views
ahead, re-looks at each hit and de-duplicates hits of the same object seen from several
places (same label within 30 m and about the same bearing, or LightGlue feature matches).
Imani runs the same robot over a polygon (Central Park: a grid of points every few metres,
snapped to panoramas, visited in nearest-neighbour order) and draws heatmaps of the trash bins,
hydrants and benches it found.

Offline, the street objects are OSM nodes (`amenity=waste_basket`, `amenity=bench`,
`emergency=fire_hydrant`, ... see `STREET_OBJECTS`), read from the city's own files. Two ways
of seeing them:

- ``perception="oracle"``: the walker sees every object within `sight_radius_m` of where it
  walks (no occlusion), knows its OSM id, and de-duplicates by id. Counts equal the OSM ground
  truth along the walk.
- ``perception="policy"``: at each position the policy gets one view per heading (a rendered
  street view, plus the question) and answers with the objects it sees, each with a bearing
  and a distance; detections are placed on the map and de-duplicated by position (same kind
  within `dedup_radius_m`), as a detector's would be. The rendered views draw the street
  furniture (`openvirl.world.furniture`), and the oracle policy answers with exactly the
  objects a view shows (`visible(..., furniture=True)`: in frame, within sight, not hidden
  by a building), so it is a perfect detector on the rendered views and its counts check the
  de-duplication; `benchmarks/bench_urban_perception.py` scores both against OSM.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from openvirl.agents.base import (
    AgentResult,
    check_polygon,
    draw_map,
    load_city,
    policy_name,
    resolve_place,
    square_polygon,
    street_points,
    write_agent_run,
)
from openvirl.agents.llm import LLMLog, ask_json
from openvirl.world.errors import WorldError
from openvirl.world.furniture import KINDS as FURNITURE_KINDS
from openvirl.world.furniture import StreetObject, street_objects

if TYPE_CHECKING:
    from openvirl.policies.base import Policy
    from openvirl.world import City

COUNTER = "urban_counter"
PLANNER = "urban_planner"

STREET_OBJECTS: dict[str, tuple[tuple[str, str], ...]] = {
    kind: spec.tags for kind, spec in FURNITURE_KINDS.items()
}
"""Countable street objects → the OSM node tags that mark them."""

OBJECT_WORDS: dict[str, str] = {
    "trash bin": "waste_basket",
    "trash can": "waste_basket",
    "trashbin": "waste_basket",
    "bin": "waste_basket",
    "litter bin": "waste_basket",
    "garbage can": "waste_basket",
    "waste basket": "waste_basket",
    "hydrant": "fire_hydrant",
    "fire hydrant": "fire_hydrant",
    "bench": "bench",
    "bike rack": "bicycle_parking",
    "bicycle parking": "bicycle_parking",
    "lamp": "street_lamp",
    "street lamp": "street_lamp",
    "streetlight": "street_lamp",
    "mailbox": "post_box",
    "post box": "post_box",
    "water fountain": "drinking_water",
    "drinking fountain": "drinking_water",
    "bus stop": "bus_stop",
    "toilet": "toilets",
    "tree": "tree",
    "street tree": "tree",
    "traffic light": "traffic_signals",
    "traffic signal": "traffic_signals",
    "vending machine": "vending_machine",
    "picnic table": "picnic_table",
}
"""Words people (and detectors) use → `STREET_OBJECTS` kinds."""

DEFAULT_KINDS = ("waste_basket", "bench", "fire_hydrant")
"""V-IRL's labels of interest: trash bin, bench, hydrant."""

VIEW_PROMPT = """[Role]
You are a street robot counting street objects for a city survey.

[Task]
Look at the street view (heading {heading:.0f} degrees, field of view {fov:.0f} degrees) and list
every {kinds} you can see within {radius:.0f} m, each with its compass bearing in degrees and
its distance in metres.

[Output]
Answer with JSON only: {{"objects": [{{"kind": "<one of: {kinds}>", "bearing_deg": <0-360>,
"distance_m": <metres>}}, ...]}} (an empty list if there is none)."""


def object_kind(word: str) -> str:
    """A street-object kind from a kind name or a common word ("trash bin" → waste_basket).

    Raises
    ------
    WorldError
        Unknown word; the message lists the kinds.
    """
    key = word.strip().lower().replace("-", " ")
    if key.replace(" ", "_") in STREET_OBJECTS:
        return key.replace(" ", "_")
    if key in OBJECT_WORDS:
        return OBJECT_WORDS[key]
    if key.endswith("s") and key[:-1] in OBJECT_WORDS:
        return OBJECT_WORDS[key[:-1]]
    from openvirl.world.errors import did_you_mean

    close = did_you_mean(key, [*STREET_OBJECTS, *OBJECT_WORDS])
    hint = f" Did you mean: {', '.join(f'`{c}`' for c in close)}?" if close else ""
    raise WorldError(
        f"Unknown street object `{word}`.{hint} Known: {', '.join(sorted(STREET_OBJECTS))}."
    )


def _segment_distance(px: np.ndarray, py: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distances (metres) from points to the segment a-b, all in local metres."""
    ab = b - a
    denom = float(ab @ ab)
    if denom <= 1e-12:
        return np.hypot(px - a[0], py - a[1])
    t = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / denom, 0.0, 1.0)
    return np.hypot(px - (a[0] + t * ab[0]), py - (a[1] + t * ab[1]))


def cluster_detections(detections: list[dict[str, Any]], radius_m: float) -> list[dict[str, Any]]:
    """De-duplicate detections by position: same kind within `radius_m` is one object.

    Greedy in order: a detection joins the nearest cluster of its kind whose centre lies
    within `radius_m` (the centre is then the mean of its members), else starts a new one.

    >>> d = [{"kind": "bench", "x": 0.0, "y": 0.0}, {"kind": "bench", "x": 3.0, "y": 0.0},
    ...      {"kind": "bench", "x": 30.0, "y": 0.0}, {"kind": "waste_basket", "x": 1.0, "y": 0.0}]
    >>> [(c["kind"], c["n"]) for c in cluster_detections(d, 8.0)]
    [('bench', 2), ('bench', 1), ('waste_basket', 1)]

    Parameters
    ----------
    detections
        Dicts with ``kind``, ``x`` and ``y`` (local metres).
    radius_m
        Merge distance, metres.

    Returns
    -------
    list[dict]
        One per object: ``kind``, ``x``, ``y`` (the centre), ``n`` (detections merged).
    """
    clusters: list[dict[str, Any]] = []
    for det in detections:
        best, best_d = None, radius_m
        for c in clusters:
            if c["kind"] != det["kind"]:
                continue
            d = math.hypot(c["x"] - det["x"], c["y"] - det["y"])
            if d <= best_d:
                best, best_d = c, d
        if best is None:
            clusters.append({"kind": det["kind"], "x": det["x"], "y": det["y"], "n": 1})
        else:
            n = best["n"]
            best["x"] = (best["x"] * n + det["x"]) / (n + 1)
            best["y"] = (best["y"] * n + det["y"]) / (n + 1)
            best["n"] = n + 1
    return clusters


@dataclass
class _Sweep:
    """Walked positions (local metres), what was seen, and the LLM log."""

    xy: np.ndarray
    seen: dict[str, StreetObject] = field(default_factory=dict)
    detections: list[dict[str, Any]] = field(default_factory=list)


class _Survey:
    """What the counter and the planner share: the objects, the seeing and the counting."""

    def __init__(
        self,
        city: City,
        kinds: list[str],
        policy: Policy | None,
        *,
        perception: str,
        sight_radius_m: float,
        dedup_radius_m: float,
        fov: float,
        images: bool,
        image_size: int,
        agent: str,
    ) -> None:
        self.city = city
        self.kinds = kinds
        self.policy = policy
        self.perception = perception
        self.sight = sight_radius_m
        self.dedup_radius = dedup_radius_m
        self.fov = fov
        self.images = images
        self.image_size = image_size
        self.agent = agent
        self.log = LLMLog()
        objects = [o for o in street_objects(city) if o.kind in kinds]
        self.objects = objects
        self.ox = np.array([o.x for o in objects], dtype=float)
        self.oy = np.array([o.y for o in objects], dtype=float)

    # -- oracle -----------------------------------------------------------------------
    def sweep_path(self, xy: np.ndarray) -> dict[str, StreetObject]:
        """Objects within sight of the walked polyline, first seen first (ids unique)."""
        seen: dict[str, StreetObject] = {}
        if len(self.objects) == 0:
            return seen
        segments = [(xy[i], xy[i + 1]) for i in range(len(xy) - 1)] or [(xy[0], xy[0])]
        for a, b in segments:
            d = _segment_distance(self.ox, self.oy, a, b)
            for i in np.nonzero(d <= self.sight)[0]:
                o = self.objects[int(i)]
                seen.setdefault(o.id, o)
        return seen

    def sweep_points(self, xy: np.ndarray) -> dict[str, StreetObject]:
        """Objects within sight of any of the points, first seen first."""
        return (
            self.sweep_path(xy[:1])
            if len(xy) == 1
            else {k: v for p in xy for k, v in self.sweep_path(np.array([p, p])).items()}
        )

    # -- policy perception ------------------------------------------------------------
    def _in_view(self, lat: float, lon: float, heading: float) -> list[dict[str, Any]]:
        """The objects the rendered view shows within sight (not hidden): the oracle's answer."""
        from openvirl.world.streetview import visible

        size = (self.image_size, self.image_size)
        seen = visible(
            self.city,
            lat,
            lon,
            heading,
            fov=self.fov,
            size=size,
            furniture=True,
            furniture_distance_m=self.sight,
        )
        return [
            {
                "kind": v.category,
                "bearing_deg": round(v.bearing_deg, 1),
                "distance_m": round(v.distance_m, 1),
            }
            for v in seen
            if v.kind == "street_object" and v.category in self.kinds and not v.occluded
        ]

    def detect(self, positions: np.ndarray, headings: list[list[float]]) -> list[dict[str, Any]]:
        """Ask the policy about every view; return detections placed in local metres."""
        assert self.policy is not None
        prompts, experts, images, where = [], [], [], []
        kinds = ", ".join(self.kinds)
        render = self._renderer() if self.images else None
        for (x, y), hs in zip(positions, headings, strict=True):
            lat, lon = self.city.to_latlon(float(x), float(y))
            for h in hs:
                prompts.append(
                    VIEW_PROMPT.format(heading=h, fov=self.fov, kinds=kinds, radius=self.sight)
                )
                experts.append({"objects": self._in_view(lat, lon, h)})
                images.append(render(lat, lon, h) if render else None)
                where.append((float(x), float(y), h))

        def check(parsed: Any) -> list[dict[str, Any]]:
            items = parsed.get("objects") if isinstance(parsed, dict) else parsed
            if not isinstance(items, list):
                raise TypeError("expected a list `objects`")
            out = []
            for item in items:
                kind = object_kind(str(item["kind"]))
                bearing = float(item["bearing_deg"]) % 360.0
                distance = float(item["distance_m"])
                if not 0.0 <= distance <= 4 * self.sight:
                    raise ValueError(f"distance {distance} m is implausible")
                out.append({"kind": kind, "bearing_deg": bearing, "distance_m": distance})
            return out

        answers = ask_json(
            self.policy,
            prompts,
            step="detect",
            experts=experts,
            check=check,
            images=images if render else None,
            log=self.log,
            task=f"agent:{self.agent}",
        )
        detections = []
        for (x, y, h), found in zip(where, answers, strict=True):
            for det in found or []:
                if det["kind"] not in self.kinds:
                    continue
                b = math.radians(det["bearing_deg"])
                detections.append(
                    {
                        **det,
                        "x": x + det["distance_m"] * math.sin(b),
                        "y": y + det["distance_m"] * math.cos(b),
                        "view_heading": h,
                    }
                )
        return detections

    def _renderer(self):
        try:
            from openvirl.world.streetview import render_view
        except ImportError:  # the renderer lands separately: ask with text only
            return None
        size = (self.image_size, self.image_size)
        return lambda lat, lon, h: render_view(self.city, lat, lon, h, fov=self.fov, size=size)

    # -- results ------------------------------------------------------------------------
    def counted(
        self, seen: dict[str, StreetObject], detections: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """The counted objects: seen ids (oracle) or position clusters (policy)."""
        if self.perception == "oracle":
            return [{**o.to_dict(), "n": 1} for o in seen.values()]
        out = []
        for c in cluster_detections(detections, self.dedup_radius):
            lat, lon = self.city.to_latlon(c["x"], c["y"])
            out.append(
                {"id": None, "kind": c["kind"], "lat": float(lat), "lon": float(lon), "n": c["n"]}
            )
        return out

    def heatmaps(
        self,
        out: Path,
        counted: list[dict[str, Any]],
        *,
        polygon=None,
        path_latlon=None,
        title: str,
    ) -> dict[str, Path]:
        maps = {}
        for kind in self.kinds:
            pts = [(c["lat"], c["lon"]) for c in counted if c["kind"] == kind]
            lines = [(path_latlon, "#1f6fd1", "")] if path_latlon else []
            maps[kind] = draw_map(
                self.city,
                out / f"heatmap_{kind}.png",
                heat=pts,
                polygon=polygon,
                lines=lines,
                points=[(a, b, "#222222", "") for a, b in pts],
                title=f"{title}: {len(pts)} × {kind.replace('_', ' ')}",
            )
        return maps


KIND_COLOURS = {"waste_basket": "#2e7d32", "bench": "#6d4c41", "fire_hydrant": "#d32f2f"}
"""Marker colour of each street-object kind on the maps (others: `OTHER_KIND_COLOUR`)."""

OTHER_KIND_COLOUR = "#1565c0"


def kind_colour(kind: str) -> str:
    """The map colour of a street-object kind."""
    return KIND_COLOURS.get(kind, OTHER_KIND_COLOUR)


def _legend(kinds: list[str], counted: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(colour, label) legend rows: each counted kind with its count."""
    n = Counter(c["kind"] for c in counted)
    return [(kind_colour(k), f"{k.replace('_', ' ')} ({n.get(k, 0)})") for k in kinds]


def _kinds(words: list[str]) -> list[str]:
    kinds = list(dict.fromkeys(object_kind(w) for w in words))
    if not kinds:
        raise WorldError("name at least one street object to count, e.g. 'bench'.")
    return kinds


def _check_perception(perception: str, dedup: str | None) -> str:
    if perception not in ("oracle", "policy"):
        raise ValueError(f"`perception` must be 'oracle' or 'policy', got {perception!r}.")
    dedup = dedup or ("id" if perception == "oracle" else "position")
    if dedup not in ("id", "position"):
        raise ValueError(f"`dedup` must be 'id' or 'position', got {dedup!r}.")
    if perception == "policy" and dedup == "id":
        raise ValueError("a policy's detections carry no OSM id: use `dedup='position'`.")
    return dedup


@dataclass
class UrbanCounterConfig:
    """Options of RX-399, the urban counter.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    start, end
        The walk's ends: place names or "lat, lon" (routed on foot).
    kinds
        What to count: `STREET_OBJECTS` kinds or words ("trash bin", "hydrant").
    sight_radius_m
        How far the walker sees, metres.
    step_m
        Spacing of the positions where views are taken (policy perception), metres.
    perception
        "oracle" (OSM objects within sight) or "policy" (views answered by the policy).
    dedup
        "id" (OSM id; oracle only) or "position" (clusters); None picks by perception.
    dedup_radius_m
        Detections of one kind closer than this are one object (position de-dup), metres.
    fov
        Field of view of each view, degrees; views look at 0, 90, 180 and 270 degrees from
        the walking direction.
    images
        Send a rendered street view with each question (when the renderer is installed).
    image_size
        Side of each rendered view, pixels.
    """

    city: str = "manhattan"
    start: str | tuple[float, float] = "Grand Central Terminal"
    end: str | tuple[float, float] = "United Nations Headquarters"
    kinds: list[str] = field(default_factory=lambda: list(DEFAULT_KINDS))
    sight_radius_m: float = 20.0
    step_m: float = 10.0
    perception: str = "oracle"
    dedup: str | None = None
    dedup_radius_m: float = 8.0
    fov: float = 90.0
    images: bool = True
    image_size: int = 256

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        _check_perception(self.perception, self.dedup)
        if self.sight_radius_m <= 0 or self.step_m <= 0 or self.dedup_radius_m <= 0:
            raise ValueError("`sight_radius_m`, `step_m` and `dedup_radius_m` must be positive.")
        if not 10 <= self.fov <= 120:
            raise ValueError(f"`fov` must be in 10..120 degrees, got {self.fov}.")


def resample(xy: np.ndarray, step_m: float) -> np.ndarray:
    """Points every `step_m` metres along a polyline (local metres), both ends kept."""
    seg = np.diff(xy, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    total = float(lengths.sum())
    if total <= 0:
        return xy[:1]
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    s = np.append(np.arange(0.0, total, step_m), total)
    return np.column_stack([np.interp(s, cum, xy[:, 0]), np.interp(s, cum, xy[:, 1])])


def _survey_for(
    cfg: UrbanCounterConfig | UrbanPlannerConfig,
    policy: Policy | None,
    city: City | None,
    *,
    agent: str,
) -> tuple[City, _Survey]:
    """The city and the street-object survey both urban agents walk with (options checked)."""
    if cfg.perception == "policy" and policy is None:
        raise ValueError("`perception='policy'` needs a policy (e.g. 'oracle' or 'hf:...').")
    city = city if city is not None else load_city(cfg.city)
    survey = _Survey(
        city,
        _kinds(cfg.kinds),
        policy,
        perception=cfg.perception,
        sight_radius_m=cfg.sight_radius_m,
        dedup_radius_m=cfg.dedup_radius_m,
        fov=cfg.fov,
        images=cfg.images,
        image_size=cfg.image_size,
        agent=agent,
    )
    return city, survey


class UrbanCounter:
    """RX-399: walk a route and count street objects along it.

    Examples
    --------
    >>> from openvirl.agents import UrbanCounter, UrbanCounterConfig
    >>> counts = UrbanCounter(UrbanCounterConfig()).run().data["counts"]   # doctest: +SKIP
    >>> sorted(counts)                                                      # doctest: +SKIP
    ['bench', 'fire_hydrant', 'waste_basket']

    Parameters
    ----------
    config
        The options (`UrbanCounterConfig`).
    policy
        The perception policy (``perception="policy"``); ignored by the oracle.
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: UrbanCounterConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
    ) -> None:
        self.config = config or UrbanCounterConfig()
        self.config.validate()
        self.policy = policy
        self.city, self.survey = _survey_for(self.config, policy, city, agent=COUNTER)

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Walk and count; write the run folder, map and heatmaps when `out_dir` is given.

        Returns
        -------
        AgentResult
            ``data``: ``counts`` and ``ground_truth`` per kind (OSM objects within sight of
            the route), ``objects`` (the counted ones), ``route_length_m``, ``positions``
            (views taken) and, for a policy, ``detections`` and ``recall`` per kind.

        Raises
        ------
        PlaceNotFoundError
            `start` or `end` is not in the city (closest names listed).
        """
        cfg, city, survey = self.config, self.city, self.survey
        a = resolve_place(city, cfg.start, what="start")
        b = resolve_place(city, cfg.end, what="end")
        route = city.route(a, b)
        poly = np.array(route.polyline)
        xs, ys = city.to_xy(poly[:, 0], poly[:, 1])
        path = np.column_stack([xs, ys])
        truth = survey.sweep_path(path)
        positions = resample(path, cfg.step_m)
        detections: list[dict[str, Any]] = []
        if cfg.perception == "policy":
            headings = []
            for i in range(len(positions)):
                j = min(i + 1, len(positions) - 1)
                k = j - 1 if j == i else i
                dx, dy = positions[j] - positions[k]
                walk = math.degrees(math.atan2(dx, dy)) % 360.0 if (dx or dy) else 0.0
                headings.append([(walk + o) % 360.0 for o in (0.0, 90.0, 180.0, 270.0)])
            detections = survey.detect(positions, headings)
        counted = survey.counted(truth, detections)
        counts = Counter(c["kind"] for c in counted)
        gt = Counter(o.kind for o in truth.values())
        data: dict[str, Any] = {
            "city": city.name,
            "start": a.name,
            "end": b.name,
            "route_length_m": round(route.length_m, 1),
            "perception": cfg.perception,
            "dedup": _check_perception(cfg.perception, cfg.dedup),
            "counts": {k: counts.get(k, 0) for k in survey.kinds},
            "ground_truth": {k: gt.get(k, 0) for k in survey.kinds},
            "objects": counted,
            "positions": len(positions),
            "llm": survey.log.to_list(),
        }
        if cfg.perception == "policy":
            data["detections"] = len(detections)
        metrics = {f"count/{k}": v for k, v in data["counts"].items()}
        metrics.update({f"ground_truth/{k}": v for k, v in data["ground_truth"].items()})
        metrics.update(route_length_m=data["route_length_m"], **survey.log.summary())
        result = AgentResult(COUNTER, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            points = [(c["lat"], c["lon"], kind_colour(c["kind"]), "") for c in counted]
            result.map_png = draw_map(
                city,
                out / "map.png",
                lines=[(route.polyline, "#1f6fd1", "walk")],
                points=points,
                start=(a.lat, a.lon, a.name),
                legend=_legend(survey.kinds, counted),
                title="RX-399: " + ", ".join(f"{v} {k}" for k, v in data["counts"].items()),
            )
            heat = survey.heatmaps(out, counted, path_latlon=route.polyline, title="RX-399")
            data["heatmaps"] = {k: p.name for k, p in heat.items()}
            result.out_dir = out
            summary = [
                f"Walk {a.name} → {b.name} ({route.length_m:.0f} m), sight "
                f"{cfg.sight_radius_m:.0f} m, perception `{cfg.perception}`, policy "
                f"`{policy_name(self.policy)}`.",
                "",
                "| kind | counted | OSM |",
                "|---|---|---|",
            ]
            summary += [
                f"| {k} | {data['counts'][k]} | {data['ground_truth'][k]} |" for k in survey.kinds
            ]
            write_agent_run(
                out,
                agent=COUNTER,
                title="Urban counter (RX-399)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png, *heat.values()],
            )
        return result


@dataclass
class UrbanPlannerConfig:
    """Options of Imani, the urban planner.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    polygon
        The area to sweep: (lat, lon) vertices in order; None: a square of `half_side_m`
        around `centre`.
    centre
        Centre of the default square: a place name or "lat, lon".
    half_side_m
        Half the side of the default square, metres.
    kinds
        What to count (see `UrbanCounterConfig.kinds`).
    spacing_m
        Grid spacing of the sweep points, metres (V-IRL snapped a dense grid to panoramas).
    snap_m
        A grid point farther than this from a walkable street is dropped, metres.
    sight_radius_m, perception, dedup, dedup_radius_m, fov, images, image_size
        As for `UrbanCounterConfig`; views look north, east, south and west.
    """

    city: str = "manhattan"
    polygon: list[tuple[float, float]] | None = None
    centre: str | tuple[float, float] = "Grand Central Terminal"
    half_side_m: float = 300.0
    kinds: list[str] = field(default_factory=lambda: list(DEFAULT_KINDS))
    spacing_m: float = 20.0
    snap_m: float = 12.0
    sight_radius_m: float = 20.0
    perception: str = "oracle"
    dedup: str | None = None
    dedup_radius_m: float = 8.0
    fov: float = 90.0
    images: bool = True
    image_size: int = 256

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        _check_perception(self.perception, self.dedup)
        if min(self.spacing_m, self.snap_m, self.sight_radius_m, self.half_side_m) <= 0:
            raise ValueError("spacings, radii and `half_side_m` must be positive.")


class UrbanPlanner:
    """Imani: sweep a polygon, count street objects and draw their density heatmaps.

    Examples
    --------
    >>> from openvirl.agents import UrbanPlanner, UrbanPlannerConfig
    >>> result = UrbanPlanner(UrbanPlannerConfig()).run(out_dir="runs/imani")  # doctest: +SKIP
    >>> sorted(result.data["heatmaps"])                                       # doctest: +SKIP
    ['bench', 'fire_hydrant', 'waste_basket']

    Parameters
    ----------
    config
        The options (`UrbanPlannerConfig`).
    policy
        The perception policy (``perception="policy"``).
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: UrbanPlannerConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
    ) -> None:
        self.config = config or UrbanPlannerConfig()
        self.config.validate()
        self.policy = policy
        self.city, self.survey = _survey_for(self.config, policy, city, agent=PLANNER)

    def polygon(self) -> list[tuple[float, float]]:
        """The area's (lat, lon) vertices: the config's polygon or the default square."""
        cfg = self.config
        if cfg.polygon is not None:
            return [(float(a), float(b)) for a, b in cfg.polygon]
        c = resolve_place(self.city, cfg.centre, what="centre")
        return square_polygon(self.city, c.lat, c.lon, cfg.half_side_m)

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Sweep and count; write the run folder, map and heatmaps when `out_dir` is given.

        Returns
        -------
        AgentResult
            ``data``: ``counts`` per kind, ``inside_polygon`` (OSM objects inside the area),
            ``coverage`` (share of those seen), ``objects``, ``points`` (sweep points),
            ``area_m2`` and ``heatmaps`` (file names, with `out_dir`).

        Raises
        ------
        OutsideMapError
            The polygon (or part of it) is outside the map.
        """
        import shapely

        cfg, city, survey = self.config, self.city, self.survey
        polygon = self.polygon()
        area = check_polygon(city, polygon)
        points = street_points(city, area, spacing_m=cfg.spacing_m, snap_m=cfg.snap_m)
        seen = survey.sweep_points(points)
        detections: list[dict[str, Any]] = []
        if cfg.perception == "policy":
            detections = survey.detect(points, [[0.0, 90.0, 180.0, 270.0]] * len(points))
        counted = survey.counted(seen, detections)
        counts = Counter(c["kind"] for c in counted)
        inside_objects = [o for o in survey.objects if area.contains(shapely.Point(o.x, o.y))]
        inside = Counter(o.kind for o in inside_objects)
        seen_inside = Counter(o.kind for o in inside_objects if o.id in seen)
        lats, lons = city.to_latlon(points[:, 0], points[:, 1])
        data: dict[str, Any] = {
            "city": city.name,
            "polygon": polygon,
            "area_m2": round(float(area.area), 1),
            "perception": cfg.perception,
            "dedup": _check_perception(cfg.perception, cfg.dedup),
            "points": len(points),
            "counts": {k: counts.get(k, 0) for k in survey.kinds},
            "inside_polygon": {k: inside.get(k, 0) for k in survey.kinds},
            "coverage": {
                k: (seen_inside[k] / inside[k]) if inside[k] else None for k in survey.kinds
            },
            "density_per_km2": {
                k: round(counts.get(k, 0) / (area.area / 1e6), 1) for k in survey.kinds
            },
            "objects": counted,
            "llm": survey.log.to_list(),
        }
        metrics = {f"count/{k}": v for k, v in data["counts"].items()}
        metrics.update({f"inside_polygon/{k}": v for k, v in data["inside_polygon"].items()})
        metrics.update(points=len(points), area_m2=data["area_m2"], **survey.log.summary())
        result = AgentResult(PLANNER, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            path = list(zip(np.asarray(lats).tolist(), np.asarray(lons).tolist(), strict=True))
            result.map_png = draw_map(
                city,
                out / "map.png",
                polygon=polygon,
                lines=[(path, "#90a4ae", "sweep order")],
                points=[(c["lat"], c["lon"], kind_colour(c["kind"]), "") for c in counted],
                legend=_legend(survey.kinds, counted),
                title="Imani: " + ", ".join(f"{v} {k}" for k, v in data["counts"].items()),
            )
            heat = survey.heatmaps(out, counted, polygon=polygon, title="Imani")
            data["heatmaps"] = {k: p.name for k, p in heat.items()}
            result.out_dir = out
            summary = [
                f"Area {data['area_m2'] / 1e4:.1f} ha, {len(points)} sweep points every "
                f"{cfg.spacing_m:.0f} m, perception `{cfg.perception}`, policy "
                f"`{policy_name(self.policy)}`.",
                "",
                "| kind | counted | OSM inside | per km² |",
                "|---|---|---|---|",
            ]
            summary += [
                f"| {k} | {data['counts'][k]} | {data['inside_polygon'][k]} | "
                f"{data['density_per_km2'][k]:g} |"
                for k in survey.kinds
            ]
            write_agent_run(
                out,
                agent=PLANNER,
                title="Urban planner (Imani)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png, *heat.values()],
            )
        return result


__all__ = [
    "DEFAULT_KINDS",
    "OBJECT_WORDS",
    "STREET_OBJECTS",
    "StreetObject",
    "UrbanCounter",
    "UrbanCounterConfig",
    "UrbanPlanner",
    "UrbanPlannerConfig",
    "cluster_detections",
    "object_kind",
    "resample",
    "street_objects",
]
