"""Navigation metrics from episode records: route success, per-step accuracy, recognition.

The evaluation module's generic metrics already give ``eval/success`` and a per-step
accuracy (correct answers over answers). Navigation adds what spec §6 and the issue ask for:

- ``eval/per_step_accuracy_reference``: the reference's count (spec §3.6), whose
  denominator also holds one extra "Exceed maximum verify steps" step per failed episode
  (our env ends such an episode on the last failed answer instead of asking once more);
- ``eval/landmark_accuracy`` and ``eval/intersection_accuracy``: how often the stated
  ``current observation`` names the right landmark (or none) and says correctly whether the
  walker is at an intersection, over every answer and over first answers at a position;
- ``eval/progress``: the mean share of rail positions passed, a softer signal than success.

Records are plain dicts as ``trajectories.jsonl`` stores them: ``success``, ``reset_info``
(``rail_length``), and ``steps`` with ``outcome`` and the env's step info
(``landmark_correct``, ``intersection_correct``, ``answer_attempt``, ``answered_position``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any


def _rate(hits: int, n: int, key: str) -> dict[str, Any]:
    from openvirl.evaluation.metrics import wilson_interval

    low, high = wilson_interval(hits, n)
    return {key: hits / n if n else float("nan"), f"{key}_ci95": [low, high], f"{key}_n": n}


def navigation_metrics(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate navigation episode records into namespaced metrics.

    Parameters
    ----------
    records
        Episode dicts (see the module docstring); records of other tasks are skipped.

    Returns
    -------
    dict
        ``eval/route_success`` (with ``_ci95`` and ``_n``), ``eval/per_step_accuracy``,
        ``eval/per_step_accuracy_reference``, ``eval/landmark_accuracy``,
        ``eval/landmark_accuracy_first``, ``eval/landmark_accuracy_at_landmarks`` (positions
        that have a landmark only), ``eval/intersection_accuracy``,
        ``eval/intersection_accuracy_first``, ``eval/progress`` and
        ``eval/outcomes/<name>``. A rate over nothing is NaN.
    """
    episodes = [r for r in records if (r.get("reset_info") or {}).get("task") == "navigation"]
    steps = [s for r in episodes for s in r.get("steps", [])]
    n_steps = len(steps)
    correct = sum(s.get("outcome") == "correct" for s in steps)
    failed = sum(not r.get("success") for r in episodes if r.get("steps"))
    wins = sum(bool(r.get("success")) for r in episodes)
    out: dict[str, Any] = {}
    out.update(_rate(wins, len(episodes), "eval/route_success"))
    out.update(_rate(correct, n_steps, "eval/per_step_accuracy"))
    out.update(_rate(correct, n_steps + failed, "eval/per_step_accuracy_reference"))
    for key, name in (("landmark_correct", "landmark"), ("intersection_correct", "intersection")):
        seen = [bool(s[key]) for s in steps if key in s]
        first = [bool(s[key]) for s in steps if key in s and s.get("answer_attempt", 1) == 1]
        out.update(_rate(sum(seen), len(seen), f"eval/{name}_accuracy"))
        out.update(_rate(sum(first), len(first), f"eval/{name}_accuracy_first"))
    # Most positions have no landmark, and "no landmarks nearby" is easy to say: recognition
    # of the landmarks themselves is reported on the positions that have one.
    at = [bool(s["landmark_correct"]) for s in steps if s.get("answered_has_landmark")]
    out.update(_rate(sum(at), len(at), "eval/landmark_accuracy_at_landmarks"))
    progress = []
    for r in episodes:
        length = int((r.get("reset_info") or {}).get("rail_length") or 0)
        if length <= 0:
            continue
        passed = sum(s.get("outcome") == "correct" for s in r.get("steps", []))
        progress.append(min(1.0, passed / length))
    out["eval/progress"] = sum(progress) / len(progress) if progress else float("nan")
    outcomes: dict[str, int] = {}
    for s in steps:
        outcomes[str(s.get("outcome", ""))] = outcomes.get(str(s.get("outcome", "")), 0) + 1
    for name, count in sorted(outcomes.items()):
        out[f"eval/outcomes/{name}"] = count / n_steps
    return out


__all__ = ["navigation_metrics"]
