"""Place localization: find the places of V-IRL's 20 types along the streets of an area.

V-IRL's Place Localization (§3.2) walks a grid of points every 20 m over a small polygon,
takes 360° of views at each, runs an open-vocabulary detector with the 20 type names, and
matches each box to the nearest ground-truth place within 25 m whose bearing falls in the
box's bearing range; a match is a true positive when the box's label is one of the place's
types. Recall per type = places found / places there; AR20 averages all 20 types, AR10 ten
sub-sampled ones.

Here the points are snapped onto the street graph, each point gets `headings` views (four of
90° by default), and the ground truth is OSM: the named POIs of the 20 types inside the
polygon within `match_radius_m` of a point. The policy answers each view with the places it
sees, each a type and a bearing; a detection matches the ground-truth place in that view whose
bearing is within `bearing_tolerance_deg`. The model sees the rendered view (``visual=True``)
or, as text, the signs the renderer shows in it with their bearings (what an OCR would read),
so a text model must tell the type from the name.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openvirl.benchmarks.common import (
    act_batched,
    default_out,
    headline_and_breakdown_plots,
    load_or_build,
    policies_for,
    rate,
    request,
    write_bench_run,
)
from openvirl.world.categories import VIRL_TYPES_20

NAME = "localization"
VERSION = 1
RANDOM_ANSWERS = 6
"""Random detection sets offered to the random baseline per view."""


@dataclass
class LocalizationConfig:
    """Options of the Place Localization benchmark.

    Attributes
    ----------
    city
        The city.
    polygon
        The area: (lat, lon) vertices; None: a square of `half_side_m` around `centre`.
    centre
        Centre of the default square: a place name or (lat, lon).
    half_side_m
        Half the side of the default square, metres.
    spacing_m
        Spacing of the sweep points, metres (V-IRL: 20).
    match_radius_m
        Ground truth: places within this distance of a sweep point, metres (V-IRL: 25).
    fov
        Field of view of each view, degrees.
    headings
        Views per point, evenly spaced from north.
    bearing_tolerance_deg
        A detection matches a place whose bearing is this close, degrees.
    seed
        Seed of the random baseline and of the AR10 type subset.
    policy
        The model policy's spec.
    visual
        Send the rendered view with each question (else the visible signs as text).
    image_size
        Side of each rendered view, pixels.
    batch
        Requests per policy call.
    """

    city: str = "manhattan"
    polygon: list[tuple[float, float]] | None = None
    centre: str | tuple[float, float] = "Bryant Park"
    half_side_m: float = 150.0
    spacing_m: float = 20.0
    match_radius_m: float = 25.0
    fov: float = 90.0
    headings: int = 4
    bearing_tolerance_deg: float = 10.0
    seed: int = 0
    policy: str = "oracle"
    visual: bool = False
    image_size: int = 384
    batch: int = 32

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.headings < 1 or self.headings * self.fov < 360.0 - 1e-6:
            raise ValueError("`headings` x `fov` must cover 360 degrees (e.g. 4 x 90, 6 x 60).")
        if min(self.spacing_m, self.match_radius_m, self.half_side_m) <= 0:
            raise ValueError("`spacing_m`, `match_radius_m` and `half_side_m` must be positive.")

    def data_params(self) -> dict[str, Any]:
        """What fixes the items."""
        return {
            "benchmark": NAME,
            "version": VERSION,
            "city": self.city,
            "polygon": self.polygon,
            "centre": self.centre,
            "half_side_m": self.half_side_m,
            "spacing_m": self.spacing_m,
            "match_radius_m": self.match_radius_m,
            "fov": self.fov,
            "headings": self.headings,
        }


def _types20(place: Any) -> list[str]:
    return [t for t in place.categories if t in VIRL_TYPES_20]


def _off(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def build_items(config: LocalizationConfig) -> list[dict[str, Any]]:
    """One item per view: its pose, the signs it shows and the ground-truth places in it."""
    import shapely

    from openvirl.agents.base import (
        check_polygon,
        resolve_place,
        square_polygon,
        street_points,
    )
    from openvirl.world import City
    from openvirl.world.geometry import xy_bearing_deg

    city = City.load(config.city)
    if config.polygon is not None:
        polygon = [(float(a), float(b)) for a, b in config.polygon]
    else:
        c = resolve_place(city, config.centre, what="centre")
        polygon = square_polygon(city, c.lat, c.lon, config.half_side_m)
    area = check_polygon(city, polygon)
    points = street_points(city, area, spacing_m=config.spacing_m, snap_m=config.spacing_m)
    index = city.places
    typed = [
        i
        for i, p in enumerate(index.pois)
        if _types20(p) and area.contains(shapely.Point(float(index.xs[i]), float(index.ys[i])))
    ]
    txy = np.array([[index.xs[i], index.ys[i]] for i in typed]).reshape(-1, 2)
    try:
        from openvirl.world.streetview import visible
    except ImportError:
        visible = None
    items = []
    for k, (x, y) in enumerate(points):
        lat, lon = (float(v) for v in city.to_latlon(float(x), float(y)))
        d = np.hypot(txy[:, 0] - x, txy[:, 1] - y) if len(typed) else np.zeros(0)
        near = [(typed[j], float(d[j])) for j in np.nonzero(d <= config.match_radius_m)[0]]
        for h in range(config.headings):
            heading = (360.0 * h / config.headings) % 360.0
            truth = []
            for i, dist in near:
                p = index.pois[i]
                b = xy_bearing_deg(float(index.xs[i]) - x, float(index.ys[i]) - y)
                if _off(b, heading) <= config.fov / 2:
                    truth.append(
                        {
                            "id": p.id,
                            "name": p.name,
                            "types": _types20(p),
                            "bearing_deg": round(b, 1),
                            "distance_m": round(dist, 1),
                        }
                    )
            if visible is not None:
                seen = visible(
                    city, lat, lon, heading, fov=config.fov, size=(256, 256), max_distance_m=60.0
                )
                signs = [
                    {
                        "text": o.label,
                        "bearing_deg": round(o.bearing_deg, 1),
                        "distance_m": round(o.distance_m, 1),
                    }
                    for o in seen
                    if o.kind == "poi" and not o.occluded
                ]
            else:
                signs = [
                    {
                        "text": t["name"],
                        "bearing_deg": t["bearing_deg"],
                        "distance_m": t["distance_m"],
                    }
                    for t in truth
                ]
            items.append(
                {
                    "id": f"{NAME}-{config.city}-{k}-{h}",
                    "point": [lat, lon],
                    "point_index": k,
                    "heading": heading,
                    "fov": config.fov,
                    "signs": signs,
                    "truth": truth,
                }
            )
    return items


def ground_truth(items: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Every ground-truth place of the area (id → its types among the 20)."""
    out: dict[str, list[str]] = {}
    for item in items:
        for t in item["truth"]:
            out[t["id"]] = t["types"]
    return out


def _prompt(item: dict[str, Any], visual: bool) -> str:
    types = ", ".join(t.replace("_", " ") for t in VIRL_TYPES_20)
    head = (
        f"You look at a street view (heading {item['heading']:.0f} degrees, field of view "
        f"{item['fov']:.0f} degrees, bearings in degrees clockwise from north)."
    )
    if not visual:
        signs = (
            "; ".join(f'"{s["text"]}" at bearing {s["bearing_deg"]:.0f}' for s in item["signs"])
            or "none"
        )
        head += f" The signs you can read: {signs}."
    return (
        f"{head}\nWhich places of these types do you see: {types}?\n"
        'Answer with JSON only: {"places": [{"type": "<type>", "bearing_deg": <degrees>}, '
        "...]} (an empty list if none)."
    )


def parse_detections(reply: str) -> list[dict[str, Any]]:
    """The detections of a reply (type among the 20, bearing); unusable entries dropped."""
    from openvirl.agents.llm import parse_json_reply
    from openvirl.world.categories import resolve_category

    try:
        parsed = parse_json_reply(reply)
    except ValueError:
        return []
    items = parsed.get("places", []) if isinstance(parsed, dict) else parsed
    out = []
    for entry in items if isinstance(items, list) else []:
        if not isinstance(entry, dict):
            continue
        raw = str(entry.get("type", "")).strip().lower()
        kind = (
            raw.replace(" ", "_")
            if raw.replace(" ", "_") in VIRL_TYPES_20
            else next((t for t in resolve_category(raw) or () if t in VIRL_TYPES_20), None)
        )
        try:
            bearing = float(entry.get("bearing_deg", entry.get("bearing")))
        except (TypeError, ValueError):
            continue
        if kind is not None:
            out.append({"type": kind, "bearing_deg": bearing % 360.0})
    return out


def is_readable(reply: str) -> bool:
    """Whether a reply holds JSON at all; an unreadable one counts as no detection, and the
    report shows their share (``unreadable_rate``) so it is never read as the model's "I see
    nothing"."""
    from openvirl.agents.llm import parse_json_reply

    try:
        parse_json_reply(reply)
    except ValueError:
        return False
    return True


def score(
    items: list[dict[str, Any]], replies: list[str], config: LocalizationConfig
) -> dict[str, Any]:
    """Recall per type, AR20, AR10 (a seeded subset of 10 types) and detection precision."""
    truth = ground_truth(items)
    found: set[tuple[str, str]] = set()
    n_det = n_tp = unreadable = 0
    records = []
    for item, reply in zip(items, replies, strict=True):
        dets = parse_detections(reply)
        readable = is_readable(reply)
        unreadable += not readable
        tps = 0
        for det in dets:
            n_det += 1
            cands = [(_off(det["bearing_deg"], t["bearing_deg"]), t) for t in item["truth"]]
            cands = [c for c in cands if c[0] <= config.bearing_tolerance_deg]
            if not cands:
                continue
            _, place = min(cands, key=lambda c: (c[0], c[1]["id"]))
            if det["type"] in place["types"]:
                found.add((place["id"], det["type"]))
                n_tp += 1
                tps += 1
        records.append(
            {
                "id": item["id"],
                "success": tps > 0 or (not item["truth"] and not dets),
                "answer": reply[:500],
                "detections": dets,
                "true_positives": tps,
                "truth": [t["name"] for t in item["truth"]],
                "outcome": "correct"
                if tps
                else ("unreadable" if not readable else "no_detection" if not dets else "wrong"),
            }
        )
    totals: dict[str, int] = defaultdict(int)
    hits: dict[str, int] = defaultdict(int)
    for pid, types in truth.items():
        for t in types:
            totals[t] += 1
            hits[t] += (pid, t) in found
    recall = {t: hits[t] / totals[t] for t in sorted(totals)}
    present = sorted(recall)
    rng = np.random.default_rng([config.seed, VERSION])
    subset = (
        sorted(rng.choice(present, size=min(10, len(present)), replace=False).tolist())
        if present
        else []
    )
    metrics = {
        "ar20": sum(recall.values()) / len(recall) if recall else None,
        "ar10": sum(recall[t] for t in subset) / len(subset) if subset else None,
        "ar10_types": subset,
        "recall": rate(sum(hits.values()), sum(totals.values())),
        "per_type": recall,
        "types_present": len(present),
        "places": len(truth),
        "precision": rate(n_tp, n_det) if n_det else {"value": None, "ci95": None, "n": 0},
        "detections": n_det,
        "unreadable_rate": unreadable / len(items) if items else 0.0,
    }
    return {"metrics": metrics, "records": records}


def run(config: LocalizationConfig, *, out: str | Path | None = None) -> dict[str, Any]:
    """Build (or load) the views, ask every policy, and write the run folder.

    Examples
    --------
    >>> from openvirl.benchmarks.localization import LocalizationConfig, run
    >>> cfg = LocalizationConfig(city="monaco", centre="Casino de Monte-Carlo", half_side_m=60)
    >>> run(cfg)["policies"]["oracle"]["ar20"]                        # doctest: +SKIP
    1.0

    Returns
    -------
    dict
        The ``metrics.json`` content.
    """
    config.validate()
    shipped = f"{NAME}-{config.city}" if config.polygon is None else None
    items, manifest = load_or_build(
        NAME, config.data_params(), lambda: build_items(config), shipped=shipped
    )
    images: list[Any] = [None] * len(items)
    if config.visual:
        from openvirl.benchmarks.common import storefront_view  # noqa: F401  (renderer check)
        from openvirl.world import City
        from openvirl.world.streetview import render_view

        city = City.load(config.city)
        size = (config.image_size, config.image_size)
        images = [
            render_view(
                city, it["point"][0], it["point"][1], it["heading"], fov=it["fov"], size=size
            )
            for it in items
        ]
    results = {}
    for label, policy in policies_for(config.policy, seed=config.seed):
        reqs = []
        for idx, (item, image) in enumerate(zip(items, images, strict=True)):
            expert = json.dumps(
                {
                    "places": [
                        {"type": t, "bearing_deg": p["bearing_deg"]}
                        for p in item["truth"]
                        for t in p["types"]
                    ]
                }
            )
            rng = np.random.default_rng([config.seed, VERSION, idx])
            valid = []
            for _ in range(RANDOM_ANSWERS):
                n = int(rng.integers(0, 3))
                valid.append(
                    json.dumps(
                        {
                            "places": [
                                {
                                    "type": VIRL_TYPES_20[int(rng.integers(len(VIRL_TYPES_20)))],
                                    "bearing_deg": round(
                                        float(
                                            item["heading"] + rng.uniform(-0.5, 0.5) * item["fov"]
                                        )
                                        % 360.0,
                                        1,
                                    ),
                                }
                                for _ in range(n)
                            ]
                        }
                    )
                )
            reqs.append(
                request(
                    _prompt(item, config.visual and image is not None),
                    expert=expert,
                    valid=valid,
                    task=f"bench:{NAME}",
                    image=image,
                )
            )
        replies = act_batched(policy, reqs, batch=config.batch)
        results[label] = score(items, replies, config)
    folder = Path(out) if out is not None else default_out(NAME, config.policy, config.seed)
    plots = headline_and_breakdown_plots(
        folder,
        results,
        key="recall",
        caption="Recall by policy",
        title="Place localization (all places)",
        ylabel="recall",
        breakdown_key="per_type",
        breakdown_caption="Per place type",
        breakdown_title="Recall per place type",
    )
    return write_bench_run(
        folder,
        name=NAME,
        title=f"Place localization · {config.city}",
        spec=config.policy,
        config=asdict(config),
        manifest=manifest,
        items=items,
        results=results,
        headline=[
            ("ar10", "AR10 (mean recall, 10 sampled types)"),
            ("ar20", "AR20 (mean recall over the types present)"),
            ("recall", "Recall over all places"),
            ("precision", "Detection precision"),
            ("unreadable_rate", "Unreadable answers"),
            ("places", "Ground-truth places"),
            ("types_present", "Types present"),
        ],
        plots=plots,
        notes=[
            f"{len(items)} views ({config.headings} per point, FOV {config.fov:.0f}°); "
            "ground truth: OSM POIs of V-IRL's 20 types inside the area within "
            f"{config.match_radius_m:.0f} m of a sweep point."
        ],
    )


__all__ = ["LocalizationConfig", "build_items", "ground_truth", "parse_detections", "run", "score"]
