"""Speed and footprint of the GeneralPoints core; prints one JSON object.

Measures, on one core in one process (no torch imported):

* ``check_per_s``: verdicts per second for a typical correct answer (``4*3+2+10`` on
  {4,3,2,10}) with the hand's solutions passed, as the env does, and looked up
  (``check_lookup_per_s``); a wrong answer that needs the prefix hint
  (``check_wrong_value_per_s``); a spaced answer with ``=24`` (``check_spaced_per_s``);
* ``parse_answer_per_s`` on the reference's answer block;
* ``deal_hand_per_s`` for each deal setting;
* ``table_load_s``: the shipped target-24 table read cold from its file and indexed;
* ``peak_rss_mb`` after everything above (``resource.getrusage``).

Run: ``.venv/bin/python benchmarks/bench_points_core.py``
"""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from collections.abc import Callable

import numpy as np

from openvirl.envs.points import solver
from openvirl.envs.points.cards import deal_hand
from openvirl.envs.points.parsing import parse_answer
from openvirl.envs.points.verifier import check

MIN_SECONDS = 1.0  # each measurement loops at least this long
HAND = [4, 3, 2, 10]
ANSWER_BLOCK = """{
  "cards": ['4', '3', '2', '10'],
  "number": [4, 3, 2, 10],
  "formula": "4*3+2+10=24",
}"""


def rate(fn: Callable[[], object], batch: int = 1000) -> float:
    """Calls per second of ``fn``, best of three runs of at least ``MIN_SECONDS / 3``."""
    best = 0.0
    for _ in range(3):
        n = 0
        t0 = time.perf_counter()
        while True:
            for _ in range(batch):
                fn()
            n += batch
            elapsed = time.perf_counter() - t0
            if elapsed >= MIN_SECONDS / 3:
                break
        best = max(best, n / elapsed)
    return best


def main() -> None:
    # Cold table load: read and index the shipped file, bypassing the per-process cache.
    path = solver.table_path(24)
    t0 = time.perf_counter()
    table = solver.SolutionTable(solver._read_table(path, 24, 4) or {})
    table_load_s = time.perf_counter() - t0
    sols = table.solutions(HAND)

    results: dict[str, object] = {
        "check_per_s": rate(lambda: check("4*3+2+10", HAND, 24, solutions=sols)),
        "check_lookup_per_s": rate(lambda: check("4*3+2+10", HAND, 24)),
        "check_spaced_per_s": rate(lambda: check(" 4 × 3 + 2 + 10 = 24", HAND, 24)),
        "check_wrong_value_per_s": rate(lambda: check("4+3+2+10", HAND, 24, solutions=sols)),
        "parse_answer_per_s": rate(lambda: parse_answer(ANSWER_BLOCK)),
    }
    deal_rates = {}
    for name, kwargs in {
        "id": {},
        "ood": {"rule": "ood"},
        "id_deck": {"deal": "deck"},
        "ood_deck_red": {"rule": "ood", "deal": "deck", "suits": "red"},
    }.items():
        rng = np.random.default_rng(0)
        deal_hand(rng, **kwargs)  # build the sampler once, outside the timing
        deal_rates[name] = rate(lambda rng=rng, kw=kwargs: deal_hand(rng, **kw))
    results["deal_hand_per_s"] = deal_rates
    t0 = time.perf_counter()
    solver.build_table(24)
    results["table_build_s"] = time.perf_counter() - t0
    results["table_load_s"] = table_load_s
    results["table_file_bytes"] = path.stat().st_size
    results["n_solutions_total"] = sum(len(table.solutions(k)) for k in table.multisets())
    # ru_maxrss is KiB on Linux, bytes on macOS.
    scale = 1 if sys.platform == "darwin" else 1024
    results["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20
    results["torch_imported"] = "torch" in sys.modules
    results["python"] = platform.python_version()
    results["cpu_count"] = os.cpu_count()
    print(json.dumps(_rounded(results), indent=2))


def _rounded(obj: object) -> object:
    """Floats to 4 significant digits: timing noise beyond that is meaningless."""
    if isinstance(obj, float):
        return float(f"{obj:.4g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    return obj


if __name__ == "__main__":
    main()
