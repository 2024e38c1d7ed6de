"""The GeneralPoints figures the issue asks for, at the environment level; prints one JSON object.

On one core (the process pins itself to CPU 0 where it can):

* ``reset_per_s``: text-only `reset()` of the unwrapped env (deal + table lookup + prompt);
* ``check_per_s``: `check` of a typical correct answer;
* ``episode_per_s``: `reset()` then one correct answer through `step()` (parse + verify);
* ``image_ms``: one 1200x1200 card image, warm (cards drawn once) and cold;
* ``peak_rss_mb``: the process after loading every table and rendering.

Details of the core pieces: `bench_points_core.py` and `bench_points_render.py`.
Run: ``.venv/bin/python benchmarks/bench_points.py``
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import time

from openvirl.envs.points.env import GeneralPointsEnv
from openvirl.envs.points.render import render_hand
from openvirl.envs.points.verifier import check


def per_second(fn, seconds: float = 1.0) -> float:
    """Calls per second of `fn`, best of three timed loops."""
    best = 0.0
    for _ in range(3):
        n, t0 = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - t0) < seconds / 3:
            for _ in range(200):
                fn()
            n += 200
        best = max(best, n / elapsed)
    return best


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})
    env = GeneralPointsEnv()
    env.reset(seed=0)
    reset_rate = per_second(env.reset)

    def episode() -> None:
        _, info = env.reset()
        env.step(info["expert_answer"])

    episode_rate = per_second(episode)
    check_rate = per_second(lambda: check("4*3+2+10", [4, 3, 2, 10], 24))
    hand = env.cards
    t0 = time.perf_counter()
    render_hand(hand, size=1200)
    cold_ms = (time.perf_counter() - t0) * 1000
    warm = []
    for seed in range(50):
        env.reset(seed=seed)
        render_hand(env.cards, size=1200)  # draw this hand's cards once
        t0 = time.perf_counter()
        render_hand(env.cards, size=1200)
        warm.append((time.perf_counter() - t0) * 1000)
    GeneralPointsEnv(rule="ood").reset(seed=0)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "reset_per_s": round(reset_rate),
                "check_per_s": round(check_rate),
                "episode_per_s": round(episode_rate),
                "image_ms_warm_median": round(statistics.median(warm), 3),
                "image_ms_cold_first": round(cold_ms, 1),
                "peak_rss_mb": round(peak_mb, 1),
                "targets": {
                    "reset_per_s": 20000,
                    "check_per_s": 50000,
                    "episode_per_s": 12000,
                    "image_ms": 20,
                    "peak_rss_mb": 300,
                },
            }
        )
    )


if __name__ == "__main__":
    main()
