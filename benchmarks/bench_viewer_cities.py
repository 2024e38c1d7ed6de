"""Memory of the viewer's city explorer under many spellings of city names, as JSON.

Run it from the repository root::

    PYTHONPATH=src .venv/bin/python benchmarks/bench_viewer_cities.py
    PYTHONPATH=src .venv/bin/python benchmarks/bench_viewer_cities.py --cities monaco manhattan

Issue 17: every new spelling of a name in ``/api/cities/<name>`` used to load and keep another
copy of the city. This asks the viewer (in process, FastAPI's TestClient, loopback Host) for
`--spellings` case variants of each city in turn, then for each city again, and prints the
process's resident memory before and after, how many times a city was parsed, and which cities
stay loaded (the viewer keeps `MAX_LOADED`). Cities load from the user cache (run any
`openvirl city` command once first, or the first load builds it).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time


def _rss_mb() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--cities", nargs="+", default=["monaco"])
    parser.add_argument("--spellings", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from fastapi.testclient import TestClient

    from openvirl.viewer import create_app
    from openvirl.world import City

    loads: list[str] = []
    real_load = City.load

    def counting_load(name, **kwargs):
        loads.append(name)
        return real_load(name, **kwargs)

    City.load = counting_load  # type: ignore[method-assign]
    app = create_app([])
    client = TestClient(app, base_url="http://127.0.0.1")
    rng = random.Random(args.seed)
    before = _rss_mb()
    start = time.perf_counter()
    statuses: dict[int, int] = {}
    for name in [*args.cities, *args.cities]:
        for _ in range(args.spellings):
            spelling = "".join(c.upper() if rng.random() < 0.5 else c for c in name)
            code = client.get(f"/api/cities/{spelling}").status_code
            statuses[code] = statuses.get(code, 0) + 1
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "cities": args.cities,
                "requests": sum(statuses.values()),
                "statuses": statuses,
                "city_loads": len(loads),
                "loaded_at_end": app.state.cities.loaded(),
                "max_loaded": app.state.cities.max_loaded,
                "rss_before_mb": round(before, 1),
                "rss_after_mb": round(_rss_mb(), 1),
                "seconds": round(seconds, 2),
                "python": platform.python_version(),
                "machine": platform.machine(),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
