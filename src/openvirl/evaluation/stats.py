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

- `ratio_interval` and `paired_ratio_interval` do the same for a ratio of sums, navigation's
  per-step accuracy (correct steps over all logged attempts, spec §3.6): a route contributes
  many steps that are not independent, so the resampling unit is the route, and the ratio
  ``sum(correct) / sum(steps)`` is recomputed on each resample (a cluster bootstrap).

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


RATIO_METHOD = (
    "percentile bootstrap over distinct problems ({resamples} resamples, seed {seed}) of the "
    "ratio sum(correct steps) / sum(steps), each resample recomputing the ratio of its "
    "problems' sums (a cluster bootstrap: a route's steps move together); exact "
    "Clopper-Pearson interval over problems when every problem has the same ratio of 0 or 1"
)
PAIRED_RATIO_METHOD = (
    "paired percentile bootstrap over distinct problems ({resamples} resamples, seed {seed}) of "
    "the difference of the two ratios sum(correct steps) / sum(steps); exact Clopper-Pearson "
    "bound on the share of problems whose counts differ when the bootstrap has no spread"
)


def _sums_by_problem(
    numerators: Sequence[float], denominators: Sequence[float], keys: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    if not len(numerators) == len(denominators) == len(keys):
        raise ValueError(
            f"{len(numerators)} numerators, {len(denominators)} denominators but "
            f"{len(keys)} problem keys"
        )
    num: dict[str, float] = {}
    den: dict[str, float] = {}
    for a, b, k in zip(numerators, denominators, keys, strict=True):
        num[k] = num.get(k, 0.0) + float(a)
        den[k] = den.get(k, 0.0) + float(b)
    names = list(num)
    return np.array([num[k] for k in names]), np.array([den[k] for k in names])


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Row-wise ``sum(num) / sum(den)`` of resampled index matrices (NaN where no steps)."""
    total = den.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, num.sum(axis=-1) / np.where(total > 0, total, 1), np.nan)


def ratio_interval(
    numerators: Sequence[float],
    denominators: Sequence[float],
    keys: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """A ratio of sums (per-step accuracy) with a bootstrap interval over problems.

    `numerators[i]` and `denominators[i]` are episode ``i``'s correct steps and logged steps;
    repeats of a problem are pooled. The estimate is ``sum(num) / sum(den)``, the same number
    as the per-step metric over all steps, and the interval resamples whole problems.

    Returns
    -------
    dict
        ``estimate``, ``ci95``, ``problems``, ``episodes``, ``steps`` and ``method``. With no
        steps at all: NaN estimate and ``[0, 1]``.
    """
    num, den = _sums_by_problem(numerators, denominators, keys)
    n = len(num)
    method = RATIO_METHOD.format(resamples=resamples, seed=seed)
    out = {"problems": n, "episodes": len(keys), "steps": float(den.sum()), "method": method}
    if n == 0 or den.sum() <= 0:
        return {**out, "estimate": float("nan"), "ci95": [0.0, 1.0]}
    estimate = float(num.sum() / den.sum())
    live = den > 0
    ratios = num[live] / den[live]
    if np.all(ratios == ratios[0]) and ratios[0] in (0.0, 1.0):
        low, high = clopper_pearson_extreme(int(live.sum()), bool(ratios[0] == 1.0), level)
    else:
        rng = np.random.default_rng(seed)
        idx = rng.integers(0, n, size=(resamples, n))
        boot = _ratio(num[idx], den[idx])
        alpha = (1.0 - level) / 2.0
        low, high = (float(x) for x in np.nanquantile(boot, [alpha, 1.0 - alpha]))
    return {**out, "estimate": estimate, "ci95": [float(low), float(high)]}


def paired_ratio_interval(
    after: tuple[Sequence[float], Sequence[float]],
    before: tuple[Sequence[float], Sequence[float]],
    keys: Sequence[str],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Difference of two checkpoints' ratios of sums on the same problems, paired by problem.

    `after` and `before` are ``(numerators, denominators)`` per episode, episode ``i`` being
    the same problem for both. Each resample draws problems once and recomputes both ratios
    on them. When the resamples do not spread (every problem's counts equal, typically), the
    interval is the exact Clopper-Pearson bound on the share of problems whose counts differ,
    as in `paired_interval`, never ``[0, 0]``.

    Returns
    -------
    dict
        ``delta``, ``ci95``, ``problems``, ``episodes``, ``method`` and ``note``.
    """
    a_num, a_den = _sums_by_problem(after[0], after[1], keys)
    b_num, b_den = _sums_by_problem(before[0], before[1], keys)
    n = len(a_num)
    method = PAIRED_RATIO_METHOD.format(resamples=resamples, seed=seed)
    out: dict[str, Any] = {"problems": n, "episodes": len(keys), "method": method, "note": None}
    if n == 0 or a_den.sum() <= 0 or b_den.sum() <= 0:
        return {**out, "delta": float("nan"), "ci95": [-1.0, 1.0]}
    delta = float(a_num.sum() / a_den.sum() - b_num.sum() / b_den.sum())
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    boot = _ratio(a_num[idx], a_den[idx]) - _ratio(b_num[idx], b_den[idx])
    boot = boot[np.isfinite(boot)]
    if boot.size and boot.max() > boot.min():
        alpha = (1.0 - level) / 2.0
        low, high = (float(x) for x in np.quantile(boot, [alpha, 1.0 - alpha]))
        return {**out, "delta": delta, "ci95": [low, high]}
    differ = int(np.sum((a_num != b_num) | (a_den != b_den)))
    if differ in (0, n):
        low_share, high_share = clopper_pearson_extreme(n, differ == n, level)
    else:
        low_share, high_share = _wilson(differ, n, _z(level))
    if delta == 0.0:
        out["note"] = f"no difference on any of {n} problems"
        return {**out, "delta": delta, "ci95": [-high_share, high_share]}
    # The same difference on every resample: scale it by the exact bounds of the share of
    # problems that changed (all of them here), as `paired_interval` does for 0/1 outcomes.
    out["note"] = f"the same difference ({delta:+.2f}) on every resample of {n} problems"
    ends = sorted((delta * low_share, delta * high_share))
    return {**out, "delta": delta, "ci95": [ends[0], ends[1]]}


def _z(level: float) -> float:
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2.0)


__all__ = [
    "DEFAULT_RESAMPLES",
    "by_problem",
    "clopper_pearson_extreme",
    "paired_interval",
    "paired_ratio_interval",
    "problem_key",
    "rate_interval",
    "ratio_interval",
]
