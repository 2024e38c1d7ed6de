"""Speed and memory of the real-city platform (`openvirl.world`), printed as one JSON object.

Run it from the repository root::

    .venv/bin/python benchmarks/bench_world.py                  # manhattan and monaco
    .venv/bin/python benchmarks/bench_world.py --cities helsinki --pairs 20

Each city is measured in fresh subprocesses with a fresh temporary `OPENVIRL_CACHE`: the first
(uncached) load, then a cached load in a new process, the median time of routes between
random POI pairs (seeded) and of searches (random POI names, category words, "X near Y"), and
the peak resident memory of each process. The issue's targets for Manhattan are: first load
<= 60 s, cached load <= 2 s, route <= 20 ms median, search <= 10 ms median, memory <= 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {
    "first_load_s": 60.0,
    "cached_load_s": 2.0,
    "route_median_ms": 20.0,
    "search_median_ms": 10.0,
    "peak_rss_mb": 1536.0,
}


def _peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _child(city_name: str, mode: str, pairs: int, queries: int, seed: int) -> dict:
    start = time.perf_counter()
    from openvirl.world import City, WorldError

    import_s = time.perf_counter() - start
    start = time.perf_counter()
    city = City.load(city_name, progress=False)
    load_s = time.perf_counter() - start
    out = {
        "load_s": round(load_s, 3),
        "import_s": round(import_s, 3),
        "from_cache": city.from_cache,
    }
    if mode == "build":
        out["peak_rss_mb"] = round(_peak_rss_mb(), 1)
        return out
    rng = random.Random(seed)
    # First use builds the search and routing indexes; time it apart.
    start = time.perf_counter()
    city.places  # noqa: B018
    city.router  # noqa: B018
    out["index_build_s"] = round(time.perf_counter() - start, 3)
    route_ms, failures, lengths = [], 0, []
    for _ in range(pairs):
        a, b = rng.sample(city.pois, 2)
        t0 = time.perf_counter()
        try:
            route = city.route(a, b)
        except WorldError:
            failures += 1
            continue
        route_ms.append((time.perf_counter() - t0) * 1000)
        lengths.append(route.length_m)
    texts = [rng.choice(city.pois).name for _ in range(queries // 2)]
    words = ["coffee", "restaurant", "pharmacy", "hotel", "bank", "gym", "bar", "bakery"]
    texts += [rng.choice(words) for _ in range(queries // 4)]
    texts += [
        f"{rng.choice(words)} near {rng.choice(city.pois).name}"
        for _ in range(queries - len(texts))
    ]
    search_ms, hits = [], 0
    for text in texts:
        t0 = time.perf_counter()
        result = city.search(text)
        search_ms.append((time.perf_counter() - t0) * 1000)
        hits += bool(result)
    out.update(
        route_median_ms=round(statistics.median(route_ms), 2) if route_ms else None,
        route_p90_ms=round(sorted(route_ms)[int(0.9 * (len(route_ms) - 1))], 2)
        if route_ms
        else None,
        route_pairs=pairs,
        route_failures=failures,
        route_median_length_m=round(statistics.median(lengths), 1) if lengths else None,
        search_median_ms=round(statistics.median(search_ms), 2),
        search_p90_ms=round(sorted(search_ms)[int(0.9 * (len(search_ms) - 1))], 2),
        search_queries=len(texts),
        search_with_hits=hits,
        graph_nodes=city.graph.number_of_nodes(),
        graph_edges=city.graph.number_of_edges(),
        pois=len(city.pois),
        buildings=len(city.buildings),
        peak_rss_mb=round(_peak_rss_mb(), 1),
    )
    return out


def _run_child(city: str, mode: str, cache: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, OPENVIRL_CACHE=cache)
    cmd = [
        sys.executable,
        __file__,
        "--child",
        city,
        "--mode",
        mode,
        "--pairs",
        str(args.pairs),
        "--queries",
        str(args.queries),
        "--seed",
        str(args.seed),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"benchmark child failed for {city} ({mode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cities", default="manhattan,monaco", help="Comma-separated cities.")
    parser.add_argument("--pairs", type=int, default=50, help="Random POI pairs to route.")
    parser.add_argument("--queries", type=int, default=60, help="Searches to time.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the pairs and queries.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--mode", default="use", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, args.mode, args.pairs, args.queries, args.seed)))
        return
    report: dict = {
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
        "targets": TARGETS,
    }
    for city in args.cities.split(","):
        with tempfile.TemporaryDirectory(prefix="openvirl-bench-") as cache:
            build = _run_child(city, "build", cache, args)
            use = _run_child(city, "use", cache, args)
        result = {
            "first_load_s": build["load_s"],
            "cached_load_s": use["load_s"],
            "import_s": use["import_s"],
            **{
                k: v
                for k, v in use.items()
                if k not in ("load_s", "import_s", "from_cache", "peak_rss_mb")
            },
            "peak_rss_mb": max(build["peak_rss_mb"], use["peak_rss_mb"]),
            "cache_hit": use["from_cache"] and not build["from_cache"],
        }
        result["meets_targets"] = all(
            result.get(k) is not None and result[k] <= limit for k, limit in TARGETS.items()
        )
        report[city] = result
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
