"""The navigation figures the issue asks for; prints one JSON object.

On one core (the process pins itself to CPU 0 where it can):

* ``make_s``: `NavigationEnv()` with the shipped Manhattan training routes (no city load);
* ``text_step_ms``: one `step()` of a text episode (parse + verify + next prompt), median over
  oracle episodes of the training preset (target <= 5 ms);
* ``text_reset_ms``: one `reset()` (route draw + rail + first prompt);
* ``visual_step_ms``: one `step()` that moves the VL walker, i.e. four rendered 512 px views in
  a 1029 px grid, median in Manhattan after the scene is built (target <= 300 ms); null with a
  reason when the street-view renderer is missing;
* ``route_generation_per_s``: `generate_routes` on Manhattan (city loaded from its cache),
  200 training routes (target >= 20 routes/s);
* ``peak_rss_mb``: the process at the end.

Run: ``.venv/bin/python benchmarks/bench_navigation.py``
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time

from openvirl.envs.navigation.env import NavigationEnv
from openvirl.envs.navigation.routes import generate_routes


def text_figures() -> dict[str, float]:
    t0 = time.perf_counter()
    env = NavigationEnv()
    make_s = time.perf_counter() - t0
    steps, resets = [], []
    for seed in range(60):
        t0 = time.perf_counter()
        _, info = env.reset(seed=seed)
        resets.append(time.perf_counter() - t0)
        while True:
            t0 = time.perf_counter()
            _, _, terminated, _, info = env.step(info["expert_answer"])
            steps.append(time.perf_counter() - t0)
            if terminated:
                break
    return {
        "make_s": round(make_s, 4),
        "text_reset_ms": round(1000 * statistics.median(resets), 3),
        "text_step_ms": round(1000 * statistics.median(steps), 3),
        "text_step_ms_p95": round(1000 * sorted(steps)[int(0.95 * len(steps))], 3),
        "text_steps_timed": len(steps),
    }


def visual_figures() -> dict[str, object]:
    try:
        import openvirl.world.streetview  # noqa: F401
    except ImportError as err:
        return {"visual_step_ms": None, "visual_skipped": f"no street-view renderer: {err}"}
    env = NavigationEnv(split="test", visual=True)
    t0 = time.perf_counter()
    _, info = env.reset(seed=0)
    first_reset_s = time.perf_counter() - t0  # includes loading the city and building its scene
    steps = []
    for seed in range(3):
        if seed:
            _, info = env.reset(seed=seed)
        for _ in range(6):
            t0 = time.perf_counter()
            _, _, terminated, _, info = env.step(info["expert_answer"])
            steps.append(time.perf_counter() - t0)
            if terminated:
                break
    return {
        "visual_first_reset_s": round(first_reset_s, 3),
        "visual_step_ms": round(1000 * statistics.median(steps), 1),
        "visual_step_ms_max": round(1000 * max(steps), 1),
        "visual_steps_timed": len(steps),
        "visual_grid_px": env.config.image_size,
    }


def generation_figures(n: int = 200) -> dict[str, float]:
    from openvirl.world import City

    t0 = time.perf_counter()
    city = City.load("manhattan")
    city.places  # noqa: B018  (build the search index outside the timed loop)
    city.router  # noqa: B018
    load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    routes = generate_routes(city, n, seed=11, split="train")
    elapsed = time.perf_counter() - t0
    return {
        "manhattan_load_s": round(load_s, 3),
        "route_generation_per_s": round(len(routes) / elapsed, 1),
        "routes_generated": len(routes),
    }


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    figures: dict[str, object] = {}
    figures.update(text_figures())
    figures.update(generation_figures())
    figures.update(visual_figures())
    figures["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    figures["targets"] = {
        "text_step_ms": 5.0,
        "visual_step_ms": 300.0,
        "route_generation_per_s": 20.0,
    }
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
