"""Evaluation metrics: success with Wilson intervals, per-attempt rates and diagnostic signals.

Every metric is computed from per-episode records as `evaluate` writes them to
``trajectories.jsonl`` (plain dicts), so a finished, resumed or copied run gives the same
numbers from its file alone. Keys are namespaced like CleanRL's (``eval/success``,
``eval/success_ci95``, ``eval/by_n_solutions/3-4/success``) so they can be logged as they are.

Two diagnostics come from the project's CPU study (DESIGN.md, "What a CPU can show"):

- **rule collapse** (GeneralPoints rule-OOD): an answer that writes a J, Q or K as 10, the
  in-distribution rule's value, instead of 11, 12 or 13; SFT models do this most of the time;
- **card recognition** (GP-VL): the cards an answer lists are the dealt cards (as a multiset),
  over all attempts and on the first attempt alone (spec §6, Fig. 8).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMAT_ERROR_OUTCOMES = frozenset({"no_answer", "illegal_formula"})
"""Outcomes that mean the answer could not be read as a formula at all."""

READABLE_OUTCOMES = frozenset({"correct", "wrong_value", "wrong_numbers", "wrong_observation"})
"""Outcomes that imply the verifier read a formula or an action; any other outcome (GP-VL's
``wrong_cards``, navigation's ``wrong_action``) is a format error when the text is unreadable."""

FACE_LABELS = frozenset({"J", "Q", "K"})
"""Cards whose value the OOD rule changes (11, 12, 13) from the ID rule's 10."""

ID_FACE_VALUE = 10
"""What the in-distribution rule counts J, Q and K as."""

N_SOLUTION_BUCKETS: tuple[tuple[int, int], ...] = ((1, 1), (2, 2), (3, 4), (5, 10**9))
"""Inclusive ranges of `info["difficulty"]["n_solutions"]` for difficulty-sliced success.

Solutions are counted distinct up to commutativity and associativity (1 to 22 for the
24-point hands); these buckets hold 396, 321, 359 and 286 of the 1,362 solvable four-card
hands.
"""

_INT = re.compile(r"\d+")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a binomial rate.

    Wilson rather than the normal approximation because evaluation rates sit near 0% and 100%
    (random and oracle policies, collapsed OOD models) and sets are small (234 hands, 18
    routes), where the normal interval leaves [0, 1] or collapses to a point.

    Parameters
    ----------
    successes
        Number of successes.
    n
        Number of trials; ``n == 0`` gives ``(0.0, 0.0)``.
    z
        Standard-normal quantile (1.96 for 95%).

    Returns
    -------
    tuple of float
        Lower and upper bound, within [0, 1].

    Examples
    --------
    >>> low, high = wilson_interval(35, 234)
    >>> round(low, 3), round(high, 3)
    (0.11, 0.201)
    """
    if n <= 0:
        return (0.0, 0.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # Exact ends at 0% and 100% (the formula gives them only up to rounding).
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


# ---------------------------------------------------------------------------- per-step signals
def _answer_fields(text: str) -> tuple[list[Any] | None, list[Any] | None, str | None]:
    """The ``cards``, ``number`` and ``formula`` fields of an answer, read by the env's parser.

    The same tolerant parser the verifier uses (`openvirl.envs.points.parsing`), so a metric
    never reads an answer differently from the environment that graded it. Nothing is evaluated.
    """
    from openvirl.envs.points.parsing import parse_answer

    parsed = parse_answer(text)
    return parsed.cards, parsed.numbers, parsed.formula


def _as_int(item: Any) -> int | None:
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return item
    if isinstance(item, float) and item.is_integer():
        return int(item)
    if isinstance(item, str) and item.strip().isdigit() and len(item.strip()) <= 6:
        return int(item.strip())
    return None


def _label(item: Any) -> str | None:
    try:
        from openvirl.envs.points.cards import normalize_card_label
    except ImportError:  # pragma: no cover - the cards module ships with the package
        return str(item).strip().upper() or None
    return normalize_card_label(item)


def rule_collapse(action: str, cards: Sequence[str], rule: str) -> bool | None:
    """Whether an answer counts a J, Q or K as 10 under the OOD rule (11, 12, 13).

    Two tells, either is enough: the ``number`` field puts 10 at the position of a face card
    (positions follow the answer's own ``cards`` when it lists four readable ones, else the
    dealt order); or the formula uses 10 more often than the hand has tens while leaving out
    a face card's OOD value, i.e. the 10 stands in for the face card.

    Parameters
    ----------
    action
        The model's whole answer text.
    cards
        The dealt cards' plain labels (``"A"``, ``"2"``..``"10"``, ``"J"``, ``"Q"``, ``"K"``).
    rule
        The hand's face rule; only ``"ood"`` hands can collapse.

    Returns
    -------
    bool or None
        None when the question does not apply (ID rule, or no face card in the hand) or the
        answer is unreadable (neither a ``number`` field nor a formula): collapse is measured
        among parseable answers only, so a model that breaks the format cannot look
        uncollapsed; `rule_following` counts those answers against it instead.
    """
    if rule != "ood" or not FACE_LABELS.intersection(cards):
        return None
    answer_cards, numbers, formula = _answer_fields(action)
    if numbers is None and not formula:
        return None
    if numbers is not None:
        labels = [_label(c) for c in answer_cards] if answer_cards else []
        order = labels if len(labels) == len(numbers) and None not in labels else list(cards)
        for label, number in zip(order, numbers, strict=False):
            if label in FACE_LABELS and _as_int(number) == ID_FACE_VALUE:
                return True
    if formula:
        used = Counter(int(tok) for tok in _INT.findall(formula.split("=")[0]) if len(tok) <= 6)
        tens = sum(1 for c in cards if c == "10")
        face_values = Counter({"J": 11, "Q": 12, "K": 13}[c] for c in cards if c in FACE_LABELS)
        missing_face = any(used[v] < k for v, k in face_values.items())
        if used[ID_FACE_VALUE] > tens and missing_face:
            return True
    return False


def rule_following(action: str, cards: Sequence[str], rule: str) -> bool | None:
    """Whether an answer writes every face card of an OOD hand as its OOD value (11, 12, 13).

    Read from the ``number`` field at the face cards' positions when present, else from the
    formula (every face value used as often as the hand holds it). An unreadable answer does
    not follow the rule (False): the rate's denominator is every answer to a face-card hand.

    Returns
    -------
    bool or None
        None when the question does not apply (ID rule, or no face card in the hand).
    """
    if rule != "ood" or not FACE_LABELS.intersection(cards):
        return None
    answer_cards, numbers, formula = _answer_fields(action)
    ood = {"J": 11, "Q": 12, "K": 13}
    if numbers is not None:
        labels = [_label(c) for c in answer_cards] if answer_cards else []
        order = labels if len(labels) == len(numbers) and None not in labels else list(cards)
        faces = [(lab, n) for lab, n in zip(order, numbers, strict=False) if lab in FACE_LABELS]
        if faces:
            return all(_as_int(n) == ood[str(lab)] for lab, n in faces)
    if formula:
        used = Counter(int(tok) for tok in _INT.findall(formula.split("=")[0]) if len(tok) <= 6)
        need = Counter(ood[c] for c in cards if c in FACE_LABELS)
        return all(used[v] >= k for v, k in need.items())
    return False


def unreadable(action: str, task: str | None) -> bool:
    """Whether the verifier could not read an answer at all, in any task.

    GeneralPoints: no formula could be extracted (whatever the recognition gate of GP-VL said
    about the cards). Navigation: no action could be extracted. Other tasks: never.
    """
    if task == "points":
        return _answer_fields(action)[2] is None
    if task == "navigation":
        from openvirl.envs.navigation.actions import parse_answer

        return parse_answer(action).action is None
    return False


def recognized_correctly(recognized: Sequence[Any] | None, cards: Sequence[str]) -> bool:
    """Whether the cards an answer lists are the dealt ones, as multisets of plain labels."""
    if not recognized:
        return False
    labels = [_label(c) for c in recognized]
    return None not in labels and sorted(labels) == sorted(cards)  # type: ignore[type-var]


def step_signals(
    action: str, step_info: Mapping[str, Any], reset_info: Mapping[str, Any]
) -> dict[str, Any]:
    """Diagnostic fields of one attempt, stored beside it in ``trajectories.jsonl``.

    Returns
    -------
    dict
        ``recognized_correct`` (bool, GeneralPoints only) and ``rule_collapse`` (bool, or
        None where it does not apply); empty for tasks without cards.
    """
    cards = reset_info.get("cards")
    if reset_info.get("task") != "points" or not cards:
        return {}
    recognized = step_info.get("recognized_cards")
    if recognized is None:
        recognized = _answer_fields(action)[0]
    rule = str(reset_info.get("rule", "id"))
    return {
        "recognized_correct": recognized_correctly(recognized, cards),
        "rule_collapse": rule_collapse(action, cards, rule),
        "rule_following": rule_following(action, cards, rule),
    }


# ---------------------------------------------------------------------------- aggregation
def _rate(hits: int, n: int, key: str) -> dict[str, Any]:
    low, high = wilson_interval(hits, n)
    return {key: hits / n if n else float("nan"), f"{key}_ci95": [low, high], f"{key}_n": n}


def n_solutions_bucket(n: int) -> str:
    """The label of `N_SOLUTION_BUCKETS` holding `n` (e.g. ``"1"``, ``"3-4"``, ``">4"``,
    ``"0"``)."""
    if n <= 0:
        return "0"
    for low, high in N_SOLUTION_BUCKETS:
        if low <= n <= high:
            if high >= 10**9:
                return f">{low - 1}"
            return str(low) if low == high else f"{low}-{high}"
    return f">{N_SOLUTION_BUCKETS[-1][0] - 1}"


def _signal(step: Mapping[str, Any], key: str, record: Mapping[str, Any]) -> Any:
    if key in step:
        return step[key]
    return step_signals(str(step.get("action", "")), step, record.get("reset_info", {})).get(key)


def compute_metrics(
    records: Iterable[Mapping[str, Any]],
    *,
    metric_set: Sequence[str] | None = None,
    sessions: Sequence[Mapping[str, Any]] = (),
    split_by: str | None = None,
    bootstrap_seed: int = 0,
) -> dict[str, Any]:
    """Aggregate episode records into namespaced evaluation metrics.

    Parameters
    ----------
    records
        Episode dicts as in ``trajectories.jsonl`` (see `openvirl.evaluation.evaluate`):
        ``success``, ``steps`` (each with ``outcome``, ``action`` and optional signals) and
        ``reset_info`` (``cards``, ``rule``, ``visual``, ``difficulty``).
    metric_set
        Which optional groups to report: ``"recognition"``, ``"rule_collapse"``,
        ``"difficulty"``. None infers them from the records (visual hands, OOD rule, a
        ``difficulty`` dict).
    sessions
        Timing and token counters of the runs that produced the records (one per resumed
        session): ``wall_s``, ``model_s``, ``episodes``, ``tokens_generated``.
    split_by
        The held-out unit of GeneralPoints hands (``"values"`` or ``"ranks"``) that names a
        distinct problem (`openvirl.evaluation.stats.problem_key`); None reads ``values``.
    bootstrap_seed
        Seed of the problem-level bootstrap.

    Returns
    -------
    dict
        ``eval/episodes``; ``eval/success`` with ``_ci95`` and ``_n``; ``eval/per_step_accuracy``
        (correct attempts over attempts); ``eval/format_error_rate`` (unreadable
        answers over attempts, every task: no formula / no action, or illegal_formula);
        ``eval/mean_attempts``; ``eval/mean_return``;
        ``eval/success_within/<k>``; ``eval/outcomes/<name>`` (share of attempts);
        ``eval/recognition_accuracy`` and ``eval/recognition_accuracy_first``;
        ``eval/rule_collapse_rate`` and ``eval/rule_collapse_first`` (among parseable answers),
        ``eval/rule_following_rate`` (face cards written as 11/12/13, over all answers);
        ``eval/by_<slice>/<bucket>/success``; and, from `sessions`, ``eval/wall_s``,
        ``eval/episodes_per_s``,
        ``eval/model_time_share`` and ``eval/tokens_generated``. A rate over nothing is NaN.
        Problem-level statistics (episodes that replay a problem are not independent):
        ``eval/problems`` (distinct problems played), ``eval/success_by_problem`` (mean over
        problems, each counted once) with ``_ci95`` (bootstrap over problems) and
        ``eval/ci_method``. ``eval/success_ci95`` stays the per-episode Wilson interval,
        valid only when every episode is a distinct problem.
    """
    records = sorted(records, key=lambda r: int(r.get("index", 0)))
    if metric_set is None:
        groups: set[str] = set()
        for r in records:
            info = r.get("reset_info", {})
            groups.update({"recognition"} if info.get("visual") else set())
            groups.update({"rule_collapse"} if info.get("rule") == "ood" else set())
            groups.update({"difficulty"} if isinstance(info.get("difficulty"), dict) else set())
    else:
        groups = set(metric_set)
    n = len(records)
    wins = sum(bool(r.get("success")) for r in records)
    steps = [(r, s) for r in records for s in r.get("steps", [])]
    n_steps = len(steps)
    outcomes = Counter(str(s.get("outcome", "")) for _, s in steps)
    metrics: dict[str, Any] = {"eval/episodes": n}
    metrics.update(_rate(wins, n, "eval/success"))
    metrics.update(_problem_rate(records, split_by, bootstrap_seed))
    metrics.update(_rate(outcomes.get("correct", 0), n_steps, "eval/per_step_accuracy"))
    errors = sum(_format_error(r, s) for r, s in steps)
    metrics["eval/format_error_rate"] = errors / n_steps if n_steps else float("nan")
    attempts = [len(r.get("steps", [])) for r in records]
    metrics["eval/mean_attempts"] = sum(attempts) / n if n else float("nan")
    returns = [sum(float(s.get("reward", 0.0)) for s in r.get("steps", [])) for r in records]
    metrics["eval/mean_return"] = sum(returns) / n if n else float("nan")
    # Attempts per episode only mean "tries at one problem" for single-problem tasks; a
    # navigation episode's steps are positions along a route.
    per_problem = not any((r.get("reset_info") or {}).get("task") == "navigation" for r in records)
    max_k = max(attempts, default=0) if per_problem else 0
    for k in range(1, max_k + 1):
        within = sum(bool(r.get("success")) and len(r.get("steps", [])) <= k for r in records)
        metrics[f"eval/success_within/{k}"] = within / n if n else float("nan")
    for name, count in sorted(outcomes.items()):
        metrics[f"eval/outcomes/{name}"] = count / n_steps

    if "recognition" in groups:
        seen = [bool(_signal(s, "recognized_correct", r)) for r, s in steps]
        first = [
            bool(_signal(r["steps"][0], "recognized_correct", r)) for r in records if r["steps"]
        ]
        metrics.update(_rate(sum(seen), len(seen), "eval/recognition_accuracy"))
        metrics.update(_rate(sum(first), len(first), "eval/recognition_accuracy_first"))
    if "rule_collapse" in groups:
        flags = [_signal(s, "rule_collapse", r) for r, s in steps]
        flags = [bool(f) for f in flags if f is not None]
        first = [_signal(r["steps"][0], "rule_collapse", r) for r in records if r["steps"]]
        first = [bool(f) for f in first if f is not None]
        metrics.update(_rate(sum(flags), len(flags), "eval/rule_collapse_rate"))
        metrics.update(_rate(sum(first), len(first), "eval/rule_collapse_first"))
        follow = [_signal(s, "rule_following", r) for r, s in steps]
        follow = [bool(f) for f in follow if f is not None]
        metrics.update(_rate(sum(follow), len(follow), "eval/rule_following_rate"))
    if "difficulty" in groups:
        metrics.update(_difficulty_slices(records))
    if any((r.get("reset_info") or {}).get("task") == "navigation" for r in records):
        from openvirl.envs.navigation.metrics import navigation_metrics

        metrics.update(navigation_metrics(records))

    if sessions:
        wall = sum(float(s.get("wall_s", 0.0)) for s in sessions)
        model = sum(float(s.get("model_s", 0.0)) for s in sessions)
        done = sum(int(s.get("episodes", 0)) for s in sessions)
        tokens = [s.get("tokens_generated") for s in sessions]
        metrics["eval/wall_s"] = wall
        metrics["eval/episodes_per_s"] = done / wall if wall > 0 else float("nan")
        metrics["eval/model_time_share"] = model / wall if wall > 0 else float("nan")
        known = [int(t) for t in tokens if t is not None]
        metrics["eval/tokens_generated"] = sum(known) if known else None
    return metrics


def _format_error(record: Mapping[str, Any], step: Mapping[str, Any]) -> bool:
    """An unreadable answer: a format-error outcome, or an outcome that does not imply the
    answer was read (GP-VL's wrong cards, navigation's wrong action) on unreadable text."""
    outcome = str(step.get("outcome", ""))
    if outcome in FORMAT_ERROR_OUTCOMES:
        return True
    if outcome in READABLE_OUTCOMES:
        return False
    task = (record.get("reset_info") or {}).get("task")
    return unreadable(str(step.get("action", "")), task)


def _problem_rate(
    records: Sequence[Mapping[str, Any]], split_by: str | None, seed: int
) -> dict[str, Any]:
    """Success over distinct problems with a bootstrap interval over problems."""
    from openvirl.evaluation.stats import problem_key, rate_interval

    keys = [problem_key(r, split_by) for r in records]
    r = rate_interval([float(bool(x.get("success"))) for x in records], keys, seed=seed)
    return {
        "eval/problems": r["problems"],
        "eval/success_by_problem": r["estimate"],
        "eval/success_by_problem_ci95": r["ci95"],
        "eval/ci_method": r["method"],
    }


def _difficulty_slices(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Success by solution-count bucket and by whether fractions are needed."""
    slices: dict[str, dict[str, list[bool]]] = {"n_solutions": {}, "needs_fractions": {}}
    for r in records:
        difficulty = r.get("reset_info", {}).get("difficulty")
        if not isinstance(difficulty, dict):
            continue
        won = bool(r.get("success"))
        if "n_solutions" in difficulty:
            bucket = n_solutions_bucket(int(difficulty["n_solutions"]))
            slices["n_solutions"].setdefault(bucket, []).append(won)
        if "needs_fractions" in difficulty:
            key = "yes" if difficulty["needs_fractions"] else "no"
            slices["needs_fractions"].setdefault(key, []).append(won)
    out: dict[str, Any] = {}
    for name, buckets in slices.items():
        for bucket in sorted(buckets, key=_bucket_order):
            wins = buckets[bucket]
            prefix = f"eval/by_{name}/{bucket}"
            low, high = wilson_interval(sum(wins), len(wins))
            out[f"{prefix}/success"] = sum(wins) / len(wins)
            out[f"{prefix}/success_ci95"] = [low, high]
            out[f"{prefix}/episodes"] = len(wins)
    return out


def _bucket_order(label: str) -> tuple[int, str]:
    digits = _INT.findall(label)
    return (int(digits[0]) if digits else -1, label)


def slice_table(metrics: Mapping[str, Any], name: str) -> list[dict[str, Any]]:
    """The ``eval/by_<name>/<bucket>/...`` entries of `metrics` as rows, in bucket order."""
    prefix = f"eval/by_{name}/"
    buckets = sorted(
        {k[len(prefix) :].rsplit("/", 1)[0] for k in metrics if k.startswith(prefix)},
        key=_bucket_order,
    )
    return [
        {
            "bucket": b,
            "success": metrics[f"{prefix}{b}/success"],
            "ci95": metrics[f"{prefix}{b}/success_ci95"],
            "episodes": metrics[f"{prefix}{b}/episodes"],
        }
        for b in buckets
    ]
