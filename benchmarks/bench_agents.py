"""Wall time of every V-IRL agent's baseline demo and every benchmark's default run, as JSON.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_agents.py                 # everything
    .venv/bin/python benchmarks/bench_agents.py --only agents   # or: --only benchmarks

Cities load from the user cache (run any `openvirl city` command once first). Each agent runs
its default configuration without a model (the deterministic baseline) and writes its run
folder under a temporary directory; each benchmark runs its shipped default set with the
oracle and random policies. One JSON object is printed: seconds per agent and benchmark, the
headline figure of each, and the machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path


def _agents(out: Path) -> dict[str, dict[str, float]]:
    from openvirl.agents import (
        Concierge,
        DirectionGiver,
        EstateRecommender,
        Explorer,
        PlaceRecommender,
        RouteOptimizer,
        Tourist,
        UrbanCounter,
        UrbanPlanner,
    )
    from openvirl.world import City

    City.load("manhattan")  # warm the cache so the first agent is not charged for it
    figures = {}
    runs = {
        "route_optimizer": (RouteOptimizer, lambda r: r.data["saving_m"]),
        "place_recommender": (PlaceRecommender, lambda r: r.data["ranked"][0]["rating"]),
        "estate": (EstateRecommender, lambda r: r.data["ranked"][0]["rating"]),
        "urban_counter": (UrbanCounter, lambda r: sum(r.data["counts"].values())),
        "urban_planner": (UrbanPlanner, lambda r: sum(r.data["counts"].values())),
        "explorer": (Explorer, lambda r: r.data["steps"]),
        "direction_giver": (DirectionGiver, lambda r: r.data["length_m"]),
        "tourist": (Tourist, lambda r: float(r.data["success"])),
        "concierge": (Concierge, lambda r: r.data["visits"]),
    }
    for name, (cls, headline) in runs.items():
        start = time.perf_counter()
        result = cls().run(out_dir=out / name)
        figures[name] = {
            "seconds": round(time.perf_counter() - start, 3),
            "headline": headline(result),
        }
    return figures


def _benchmarks(out: Path) -> dict[str, dict[str, float]]:
    from openvirl.benchmarks import localization, recognition, vln, vqa

    figures = {}
    jobs = {
        "vqa": (lambda: vqa.run(vqa.VQAConfig(policy="random"), out=out / "vqa"), "accuracy"),
        "recognition": (
            lambda: recognition.run(
                recognition.RecognitionConfig(policy="random"), out=out / "rec"
            ),
            "top1",
        ),
        "localization": (
            lambda: localization.run(
                localization.LocalizationConfig(policy="random"), out=out / "loc"
            ),
            "recall",
        ),
        "vln_mini": (lambda: vln.run(vln.VLNConfig(policy="random"), out=out / "vln"), "success"),
        "vln_full": (
            lambda: vln.run(vln.VLNConfig(split="full", policy="random"), out=out / "vlnf"),
            "success",
        ),
    }
    for name, (call, key) in jobs.items():
        start = time.perf_counter()
        metrics = call()
        row = {"seconds": round(time.perf_counter() - start, 3), "items": metrics["items"]}
        for label, m in metrics["policies"].items():
            row[f"{label}_{key}"] = m[key]["value"]
        figures[name] = row
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("agents", "benchmarks"), default=None)
    args = parser.parse_args()
    report: dict[str, object] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        if args.only in (None, "agents"):
            report["agents"] = _agents(Path(tmp) / "agents")
        if args.only in (None, "benchmarks"):
            report["benchmarks"] = _benchmarks(Path(tmp) / "bench")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
