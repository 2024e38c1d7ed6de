"""Problem-level statistics: distinct problems, bootstrap intervals and paired comparisons.

Why not a binomial interval over episodes: an evaluation that deals 200 hands from a split
holding 31 distinct problems plays each problem ~6 times, and the repeats of one problem are
not independent trials (a greedy model answers them alike). Treating them as 200 trials makes
the interval 3-4x too narrow. The unit of evidence is the *problem*: a held-out hand (its
multiset under the split's unit, values or ranks, plus the target and rule) or a route.

- `problem_key` names the problem of an episode record;
- `rate_interval` averages repeats within a problem (so no problem counts more than once) and
  bootstraps over problems;
- `paired_interval` compares two checkpoints that played the same problems: the per-problem
  difference, bootstrapped over problems. When every problem's difference is the same (all
  zero, typically), the bootstrap has no spread and would print a meaningless [0, 0]; the
  interval is then exact instead: the Clopper-Pearson bound on the share of discordant
  problems, which bounds any difference (``|after - before| <= discordant share``).

Every result carries a ``method`` sentence for the report. Everything is seeded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DEFAULT_RESAMPLES = 2000
"""Bootstrap resamples; the percentile ends move by well under a point beyond this."""

RATE_METHOD = (
    "percentile bootstrap over distinct problems ({resamples} resamples, seed {seed}); "
    "repeats of a problem are averaged so each problem counts once; exact Clopper-Pearson "
    "interval when every problem has the same outcome"
)
PAIRED_METHOD = (
    "paired percentile bootstrap over distinct problems ({resamples} resamples, seed {seed}) "
    "of the per-problem difference; exact Clopper-Pearson bound on the share of discordant "
    "problems when every problem's difference is the same"
)


def problem_key(record: Mapping[str, Any], unit: str | None = None) -> str:
    """The problem an episode record plays, as a string that repeats compare equal on.

    GeneralPoints: the held-out unit of its split (``split_by``) -- the sorted card values
    under the rule (``"values"``, the default) or the sorted ranks (``"ranks"``) -- plus the
    target and the rule. Navigation: city and route id. Anything else: its reset seed.
    `unit` overrides the split unit (records do not store it; the study knows it).
    """
    info = record.get("reset_info") or {}
    if info.get("task") == "points" and info.get("cards"):
        unit = unit or str(info.get("split_by") or "values")
        if unit == "ranks":
            items = sorted(str(c) for c in info["cards"])
        else:
            items = sorted(str(v) for v in info.get("numbers") or info["cards"])
        return f"points:{info.get('target')}:{info.get('rule')}:{unit}:" + ",".join(items)
    if info.get("task") == "navigation" and info.get("route_id") is not None:
        return f"navigation:{info.get('city')}:{info.get('route_id')}"
    return f"seed:{record.get('seed', record.get('index'))}"


def by_problem(values: Sequence[float], keys: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Each distinct problem (first-seen order) and the mean of its values over repeats."""
    if len(values) != len(keys):
        raise ValueError(f"{len(values)} values but {len(keys)} problem keys")
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for v, k in zip(values, keys, strict=True):
        sums[k] = sums.get(k, 0.0) + float(v)
        counts[k] = counts.get(k, 0) + 1
    names = list(sums)
    return names, np.array([sums[k] / counts[k] for k in names], dtype=float)


def clopper_pearson_extreme(n: int, all_success: bool, level: float = 0.95) -> tuple[float, float]:
    """Exact Clopper-Pearson interval of a rate when 0 of `n` (or `n` of `n`) succeeded.

    Closed form (no beta quantile needed): with 0 successes the upper end solves
    ``(1 - p)^n = alpha/2``.
    """
    if n <= 0:
        return (0.0, 1.0)
    bound = 1.0 - ((1.0 - level) / 2.0) ** (1.0 / n)
    return (1.0 - bound, 1.0) if all_success else (0.0, bound)


def _wilson(k: float, n: int, z: float) -> tuple[float, float]:
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _percentile(means: np.ndarray, resamples: int, seed: int, level: float) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(means), size=(resamples, len(means)))
    boot = means[idx].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return float(low), float(high)


def rate_interval(
    values: Sequence[float],
    keys: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """A rate over distinct problems with a bootstrap interval over problems.

    Returns
    -------
    dict
        ``estimate`` (mean over problems of each problem's mean), ``ci95``, ``problems``,
        ``episodes`` and ``method``. Over nothing: NaN estimate and ``[0, 1]``.
    """
    _, means = by_problem(values, keys)
    n = len(means)
    method = RATE_METHOD.format(resamples=resamples, seed=seed)
    if n == 0:
        return {
            "estimate": float("nan"),
            "ci95": [0.0, 1.0],
            "problems": 0,
            "episodes": 0,
            "method": method,
        }
    estimate = float(means.mean())
    if np.all(means == means[0]):
        if means[0] in (0.0, 1.0):
            low, high = clopper_pearson_extreme(n, bool(means[0] == 1.0), level)
        else:  # every problem half-solved, say: no spread to resample, Wilson on problems
            low, high = _wilson(estimate * n, n, _z(level))
    else:
        low, high = _percentile(means, resamples, seed, level)
    return {
        "estimate": estimate,
        "ci95": [low, high],
        "problems": n,
        "episodes": len(values),
        "method": method,
    }


def paired_interval(
    after: Sequence[float],
    before: Sequence[float],
    keys: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Difference ``after - before`` on the same episodes, bootstrapped over problems.

    `after[i]` and `before[i]` must be the same episode (same problem) played by two
    checkpoints. When every problem's difference is equal -- most often "no difference on any
    of N problems" -- the interval is exact: with ``D`` problems discordant (here 0 or all),
    the Clopper-Pearson interval of the discordant share bounds the difference.

    Returns
    -------
    dict
        ``delta``, ``ci95``, ``problems``, ``episodes``, ``method`` and ``note`` (a sentence
        for degenerate cases, else None).
    """
    if not len(after) == len(before) == len(keys):
        raise ValueError(
            f"paired samples differ in length: {len(after)}, {len(before)}, {len(keys)}"
        )
    diffs = [float(a) - float(b) for a, b in zip(after, before, strict=True)]
    _, means = by_problem(diffs, keys)
    n = len(means)
    method = PAIRED_METHOD.format(resamples=resamples, seed=seed)
    out: dict[str, Any] = {"problems": n, "episodes": len(diffs), "method": method, "note": None}
    if n == 0:
        return {**out, "delta": float("nan"), "ci95": [-1.0, 1.0]}
    delta = float(means.mean())
    if np.all(means == means[0]):
        # Discordant share is |d| when all problems agree; bound it exactly.
        share = abs(delta)
        if share in (0.0, 1.0):
            low_share, high_share = clopper_pearson_extreme(n, share == 1.0, level)
        else:
            low_share, high_share = _wilson(share * n, n, _z(level))
        sign = 1.0 if delta >= 0 else -1.0
        if delta == 0.0:
            low, high = -high_share, high_share
            out["note"] = f"no difference on any of {n} problems"
        else:
            ends = sorted((sign * low_share, sign * high_share))
            low, high = ends[0], ends[1]
            out["note"] = f"the same difference ({delta:+.2f}) on every one of {n} problems"
    else:
        low, high = _percentile(means, resamples, seed, level)
    return {**out, "delta": delta, "ci95": [low, high]}


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2.0)


__all__ = [
    "DEFAULT_RESAMPLES",
    "by_problem",
    "clopper_pearson_extreme",
    "paired_interval",
    "problem_key",
    "rate_interval",
]
