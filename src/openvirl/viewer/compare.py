"""Two runs side by side: per task and split, each metric of both with the difference and its CI.

Rates are compared with Newcombe's hybrid score interval for a difference of two independent
proportions (method 10 of Newcombe 1998), built from the two Wilson intervals the runs already
store: unlike the plain Wald interval it stays sensible at 0% and 100% and for small sets
(18 routes, 48 trajectories), where evaluation rates often sit. A difference whose interval
excludes zero is marked as such; nothing is corrected for multiple comparisons.

Example
-------
>>> from openvirl.viewer.compare import compare_rows
>>> a = {("gp-l", "rule-ood"): {"eval/success": 0.05, "eval/success_n": 234}}
>>> b = {("gp-l", "rule-ood"): {"eval/success": 0.15, "eval/success_n": 234}}
>>> row = compare_rows(a, b)[0]
>>> round(row["metrics"][0]["delta"], 2), row["metrics"][0]["significant"]
(0.1, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from openvirl.evaluation.metrics import wilson_interval

COMPARED: tuple[tuple[str, str, str, bool], ...] = (
    ("eval/success", "success", "rate", True),
    ("eval/per_step_accuracy", "per-attempt accuracy", "rate", True),
    ("eval/recognition_accuracy", "recognition", "rate", True),
    ("eval/rule_collapse_rate", "rule collapse", "rate", False),
    ("eval/format_error_rate", "unreadable answers", "rate", False),
    ("eval/mean_attempts", "mean attempts", "number", False),
    ("eval/mean_return", "mean return", "number", True),
)
"""(metric key, label, kind, higher is better) of the metrics a comparison shows."""

Key = tuple[str, str]
MAX_COUNT = 10**12
"""Largest trial count believed (a bigger one in a hostile file is ignored)."""


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range (JSON allows 10**400)
        return None
    return number if math.isfinite(number) else None


def _count(metrics: Mapping[str, Any], key: str) -> int | None:
    """Trials behind a rate: ``<key>_n``, else the episode count for episode-level rates."""
    for n in (
        metrics.get(f"{key}_n"),
        metrics.get("eval/episodes") if key == "eval/success" else None,
    ):
        if isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= MAX_COUNT:
            return n
    return None


def rate_interval(metrics: Mapping[str, Any], key: str) -> tuple[float, float] | None:
    """The stored 95% interval of a rate, else a Wilson interval from its count, else None."""
    ci = metrics.get(f"{key}_ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        low, high = _number(ci[0]), _number(ci[1])
        if low is not None and high is not None and 0.0 <= low <= high <= 1.0:
            return (low, high)
    value, n = _number(metrics.get(key)), _count(metrics, key)
    if value is None or not n or not 0.0 <= value <= 1.0:  # not a rate: no interval
        return None
    return wilson_interval(round(value * n), n)


def difference_interval(
    p1: float, ci1: tuple[float, float], p2: float, ci2: tuple[float, float]
) -> tuple[float, float]:
    """Newcombe's 95% interval of ``p2 - p1`` from the two rates' Wilson intervals.

    Parameters
    ----------
    p1, ci1
        First rate and its (low, high) interval.
    p2, ci2
        Second rate and its interval.

    Returns
    -------
    tuple of float
        (low, high) of the difference, within [-1, 1].
    """
    (l1, u1), (l2, u2) = ci1, ci2
    d = p2 - p1
    low = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    high = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (max(-1.0, low), min(1.0, high))


def compare_metric(
    a: Mapping[str, Any], b: Mapping[str, Any], key: str, kind: str = "rate"
) -> dict[str, Any]:
    """One metric of both runs: values, intervals, ``delta = b - a`` and its interval."""
    va, vb = _number(a.get(key)), _number(b.get(key))
    out: dict[str, Any] = {
        "key": key,
        "a": va,
        "b": vb,
        "a_ci95": None,
        "b_ci95": None,
        "a_n": _count(a, key),
        "b_n": _count(b, key),
        "delta": None if va is None or vb is None else vb - va,
        "delta_ci95": None,
        "significant": None,
    }
    if kind != "rate":
        return out
    ci_a, ci_b = rate_interval(a, key), rate_interval(b, key)
    out["a_ci95"] = list(ci_a) if ci_a else None
    out["b_ci95"] = list(ci_b) if ci_b else None
    if va is not None and vb is not None and ci_a and ci_b:
        low, high = difference_interval(va, ci_a, vb, ci_b)
        out["delta_ci95"] = [low, high]
        out["significant"] = low > 0 or high < 0
    return out


def compare_rows(
    a: Mapping[Key, Mapping[str, Any]], b: Mapping[Key, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per (task, split), the `COMPARED` metrics that either run has.

    Parameters
    ----------
    a, b
        Metrics of each run by (task, split).

    Returns
    -------
    list of dict
        ``{"task", "split", "in_a", "in_b", "metrics": [compare_metric(...) + "label",
        "kind", "higher_is_better"]}``, settings of `a` first, then those only in `b`.
    """
    keys = list(a) + [k for k in b if k not in a]
    rows = []
    for key in keys:
        ma, mb = a.get(key, {}), b.get(key, {})
        metrics = []
        for metric, label, kind, higher in COMPARED:
            if metric not in ma and metric not in mb:
                continue
            entry = compare_metric(ma, mb, metric, kind)
            entry.update(label=label, kind=kind, higher_is_better=higher)
            metrics.append(entry)
        rows.append(
            {
                "task": key[0],
                "split": key[1],
                "in_a": key in a,
                "in_b": key in b,
                "metrics": metrics,
            }
        )
    return rows


def compare_settings(
    a: Mapping[Key, Mapping[str, Any]], b: Mapping[Key, Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], str]:
    """`compare_rows`, pairing two single-setting runs of different settings into one row.

    Returns
    -------
    tuple
        The rows (each with a ``label``) and a note for the page ("" when the settings match).
    """
    if len(a) == 1 and len(b) == 1 and set(a) != set(b):
        (key_a,), (key_b,) = list(a), list(b)
        rows = compare_rows(a, {key_a: b[key_b]})
        rows[0]["label"] = f"A {key_a[0]}/{key_a[1]} · B {key_b[0]}/{key_b[1]}"
        note = (
            f"The runs evaluate different settings (A {key_a[0]}/{key_a[1]}, B {key_b[0]}/"
            f"{key_b[1]}); their metrics are set side by side anyway."
        )
        return rows, note
    rows = compare_rows(a, b)
    for row in rows:
        row["label"] = f"{row['task'] or '—'}/{row['split'] or '—'}"
    return rows, ""
