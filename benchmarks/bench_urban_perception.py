"""How well RX-399 counts street objects from rendered views, against OSM, printed as JSON.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_urban_perception.py                  # the oracle detector
    .venv/bin/python benchmarks/bench_urban_perception.py --policy hf:PATH  # a VLM's eyes

Each walk is routed in a bundled city; the urban counter takes four views every `step_m`
metres (256x256, fov 90) and asks the perception policy for the objects it sees, with their
bearing and distance; detections are placed on the map and de-duplicated by position. The
counted objects are matched to the OSM ground truth (objects of the same kind within the sight
radius of the walked line), nearest first within `--match-m` metres, each truth object at most
once. Precision = matched / counted and recall = matched / truth, per kind and overall.

The `oracle` policy is a perfect detector *on the rendered views*: it answers with exactly the
objects a view shows (`visible(..., furniture=True)`), so its recall below 1 measures what the
views cannot show (objects hidden by buildings or too small at that distance) and its precision
below 1 measures the de-duplication. A vision model plugs in with `--policy hf:...` or
`--policy openai:...` (the embedded Gemma-3-270M reads no images). `random` is no floor here:
the agents offer it the baseline answer as its only valid action.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter

import numpy as np

WALKS = (
    ("helsinki", "Kauppatori", "Stockmann"),
    ("manhattan", "Grand Central Terminal", "Bryant Park"),
)


def match(counted: list[dict], truth: list, city, radius_m: float) -> dict[str, Counter]:
    """Greedy nearest matching of counted objects to truth objects of the same kind."""
    pairs = []
    for i, c in enumerate(counted):
        cx, cy = city.to_xy(c["lat"], c["lon"])
        for j, o in enumerate(truth):
            if o.kind == c["kind"]:
                d = math.hypot(float(cx) - o.x, float(cy) - o.y)
                if d <= radius_m:
                    pairs.append((d, i, j))
    used_c, used_t = set(), set()
    tp: Counter = Counter()
    for _, i, j in sorted(pairs):
        if i not in used_c and j not in used_t:
            used_c.add(i)
            used_t.add(j)
            tp[counted[i]["kind"]] += 1
    return {
        "tp": tp,
        "counted": Counter(c["kind"] for c in counted),
        "truth": Counter(o.kind for o in truth),
    }


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 3) if b else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--policy", action="append", help="policy specs (default: oracle)")
    parser.add_argument("--sight-m", type=float, default=20.0)
    parser.add_argument("--step-m", type=float, default=10.0)
    parser.add_argument("--match-m", type=float, default=8.0)
    args = parser.parse_args()

    from openvirl.agents.urban import UrbanCounter, UrbanCounterConfig
    from openvirl.policies.registry import make_policy
    from openvirl.world import City
    from openvirl.world.furniture import KIND_NAMES

    policies = args.policy or ["oracle"]
    report: dict = {"walks": [], "policies": {}, "method": __doc__.split("\n\n")[2]}
    totals = {p: {"tp": Counter(), "counted": Counter(), "truth": Counter()} for p in policies}
    for city_name, start, end in WALKS:
        city = City.load(city_name, progress=False)
        for spec in policies:
            config = UrbanCounterConfig(
                city=city_name,
                start=start,
                end=end,
                kinds=list(KIND_NAMES),
                sight_radius_m=args.sight_m,
                step_m=args.step_m,
                perception="policy",
            )
            counter = UrbanCounter(config, make_policy(spec), city=city)
            t0 = time.perf_counter()
            data = counter.run().data
            seconds = time.perf_counter() - t0
            route = city.route(city.geocode(start), city.geocode(end))
            xs, ys = city.to_xy(*zip(*route.polyline, strict=True))
            truth = list(counter.survey.sweep_path(np.column_stack([xs, ys])).values())
            m = match(data["objects"], truth, city, args.match_m)
            for key in ("tp", "counted", "truth"):
                totals[spec][key].update(m[key])
            report["walks"].append(
                {
                    "city": city_name,
                    "walk": f"{start} -> {end}",
                    "policy": spec,
                    "route_length_m": data["route_length_m"],
                    "views": 4 * data["positions"],
                    "seconds": round(seconds, 1),
                    "truth": sum(m["truth"].values()),
                    "counted": sum(m["counted"].values()),
                    "matched": sum(m["tp"].values()),
                    "fallback_rate": counter.survey.log.summary().get("llm/fallback_rate"),
                }
            )
    for spec, t in totals.items():
        by_kind = {}
        for kind in sorted(set(t["truth"]) | set(t["counted"])):
            by_kind[kind] = {
                "truth": t["truth"][kind],
                "counted": t["counted"][kind],
                "precision": _ratio(t["tp"][kind], t["counted"][kind]),
                "recall": _ratio(t["tp"][kind], t["truth"][kind]),
            }
        tp, counted, truth = (sum(t[k].values()) for k in ("tp", "counted", "truth"))
        report["policies"][spec] = {
            "precision": _ratio(tp, counted),
            "recall": _ratio(tp, truth),
            "by_kind": by_kind,
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
