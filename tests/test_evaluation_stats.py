"""Problem-level intervals: coverage, degenerate cases, pairing, distinct-problem keys."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from openvirl.evaluation.stats import (
    by_problem,
    clopper_pearson_extreme,
    paired_interval,
    paired_ratio_interval,
    problem_key,
    rate_interval,
    ratio_interval,
)

outcomes = st.lists(st.booleans(), min_size=1, max_size=60)


@settings(max_examples=40, deadline=None)
@given(outcomes, st.integers(1, 8))
def test_rate_interval_contains_estimate_and_is_never_a_point(wins, n_problems):
    keys = [f"p{i % n_problems}" for i in range(len(wins))]
    r = rate_interval([float(w) for w in wins], keys, resamples=300, seed=1)
    low, high = r["ci95"]
    assert 0.0 <= low <= r["estimate"] <= high <= 1.0
    assert high - low > 0  # exact bound when there is no spread, never [p, p]
    assert r["problems"] == len(set(keys)) and r["episodes"] == len(wins)
    assert r == rate_interval([float(w) for w in wins], keys, resamples=300, seed=1)


def test_repeats_count_once_and_widen_the_interval():
    # 10 problems each played 20 times, outcomes identical within a problem
    keys = [f"p{i}" for i in range(10) for _ in range(20)]
    wins = [float(i < 3) for i in range(10) for _ in range(20)]
    clustered = rate_interval(wins, keys, seed=0)
    naive = rate_interval(wins, [str(i) for i in range(200)], seed=0)
    assert clustered["problems"] == 10 and clustered["episodes"] == 200
    assert clustered["estimate"] == naive["estimate"] == 0.3
    width = lambda r: r["ci95"][1] - r["ci95"][0]  # noqa: E731
    assert width(clustered) > 2.5 * width(naive)
    # weighting: a problem repeated 5x does not count 5x
    r = rate_interval([1, 1, 1, 1, 1, 0], ["a"] * 5 + ["b"], seed=0)
    assert r["estimate"] == 0.5


def test_all_failures_give_the_exact_clopper_pearson_bound():
    r = rate_interval([0.0] * 30, [f"p{i}" for i in range(30)])
    assert r["ci95"][0] == 0.0
    assert abs(r["ci95"][1] - (1 - 0.025 ** (1 / 30))) < 1e-12  # 0.116
    assert clopper_pearson_extreme(30, True)[0] == 1 - r["ci95"][1]


def test_bootstrap_coverage_is_near_nominal():
    rng = np.random.default_rng(0)
    hits = 0
    trials = 150
    for t in range(trials):
        p = rng.uniform(0.1, 0.9, size=40)  # per-problem solve rates, true mean = p.mean()
        wins = (rng.random((40, 3)) < p[:, None]).astype(float)
        keys = [f"p{i}" for i in range(40) for _ in range(3)]
        r = rate_interval(list(wins.ravel()), keys, resamples=500, seed=t)
        # the target is the mean over problems of each problem's expected rate, within
        # this sample of problems as drawn from the same population (mean 0.5)
        hits += r["ci95"][0] <= 0.5 <= r["ci95"][1]
    assert 0.86 <= hits / trials <= 0.995


def test_paired_no_difference_is_an_exact_nonzero_interval():
    keys = [f"p{i}" for i in range(25)]
    same = [1.0] * 10 + [0.0] * 15
    r = paired_interval(same, same, keys)
    assert r["delta"] == 0.0
    assert r["note"] == "no difference on any of 25 problems"
    bound = 1 - 0.025 ** (1 / 25)
    assert r["ci95"] == [-bound, bound] and bound > 0.1


def test_paired_all_improved_and_mixed():
    keys = [f"p{i}" for i in range(20)]
    r = paired_interval([1.0] * 20, [0.0] * 20, keys)
    assert r["delta"] == 1.0 and r["ci95"][1] == 1.0 and 0.8 < r["ci95"][0] < 1.0
    after = [1.0] * 12 + [0.0] * 8
    before = [0.0] * 6 + [1.0] * 6 + [0.0] * 8
    r = paired_interval(after, before, keys, seed=3)
    assert r["note"] is None and r["delta"] == 0.3
    assert r["ci95"][0] < 0.3 < r["ci95"][1]
    # pairing matters: the same marginal rates, different pairing, different spread
    assert r == paired_interval(after, before, keys, seed=3)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_paired_interval_contains_delta(pairs):
    after = [float(a) for a, _ in pairs]
    before = [float(b) for _, b in pairs]
    keys = [f"p{i % 7}" for i in range(len(pairs))]
    r = paired_interval(after, before, keys, resamples=300)
    low, high = r["ci95"]
    assert -1.0 <= low <= r["delta"] <= high <= 1.0 and high > low


def test_problem_key_units_and_routes():
    hand = {"task": "points", "cards": ["K", "3", "6"], "numbers": [10, 3, 6]}
    rec = {"reset_info": {**hand, "target": 12, "rule": "id"}}
    other = {"reset_info": {**hand, "cards": ["Q", "6", "3"], "target": 12, "rule": "id"}}
    assert problem_key(rec) == problem_key(other)  # same values: one problem
    assert problem_key(rec, "ranks") != problem_key(other, "ranks")
    nav = {"reset_info": {"task": "navigation", "city": "x", "route_id": "r1"}}
    assert problem_key(nav) == "navigation:x:r1"
    names, means = by_problem([1, 0, 1], ["a", "b", "a"])
    assert names == ["a", "b"] and list(means) == [1.0, 0.0]


def test_compute_metrics_reports_distinct_problems():
    from openvirl.evaluation.metrics import compute_metrics

    def rec(i, cards, won):
        info = {"task": "points", "cards": cards, "numbers": [int(c) for c in cards]}
        info.update(target=24, rule="id")
        step = {"outcome": "correct" if won else "wrong_value", "action": "", "reward": 0}
        return {"index": i, "success": won, "steps": [step], "reset_info": info}

    records = [rec(i, ["1", "2", "3", "4"], True) for i in range(9)] + [
        rec(9, ["5", "5", "5", "5"], False)
    ]
    m = compute_metrics(records, metric_set=())
    assert m["eval/episodes"] == 10 and m["eval/problems"] == 2
    assert m["eval/success"] == 0.9 and m["eval/success_by_problem"] == 0.5
    assert "bootstrap over distinct problems" in m["eval/ci_method"]


# ---------------------------------------------------------------------------- ratio of sums
def test_ratio_interval_is_by_route_and_wider_than_per_step():
    """Per-step accuracy of 10 routes x 20 steps where each route is all right or all wrong:
    200 steps but only 10 independent units; the by-route interval is far wider than a
    binomial interval over steps, and the estimate is sum(correct) / sum(steps)."""
    from openvirl.evaluation.metrics import wilson_interval

    correct = [20.0] * 4 + [0.0] * 6
    steps = [20.0] * 10
    keys = [f"route-{i}" for i in range(10)]
    out = ratio_interval(correct, steps, keys, seed=1)
    assert out["estimate"] == 0.4 and out["problems"] == 10 and out["steps"] == 200
    low, high = out["ci95"]
    w_low, w_high = wilson_interval(80, 200)
    assert low <= 0.4 <= high and (high - low) > 2 * (w_high - w_low)
    # Unequal route lengths: the ratio of sums, not the mean of per-route ratios
    mixed = ratio_interval([1.0, 9.0], [2.0, 10.0], ["a", "b"])
    assert mixed["estimate"] == 10 / 12


def test_ratio_interval_all_wrong_is_exact_over_routes():
    out = ratio_interval([0.0] * 5, [3.0, 1.0, 2.0, 4.0, 2.0], list("abcde"))
    assert out["estimate"] == 0.0
    assert out["ci95"] == [0.0, clopper_pearson_extreme(5, False)[1]]
    empty = ratio_interval([], [], [])
    assert np.isnan(empty["estimate"]) and empty["ci95"] == [0.0, 1.0]


def test_paired_ratio_interval_same_counts_and_improvement():
    keys = [f"r{i}" for i in range(8)]
    steps = [float(2 + i % 3) for i in range(8)]
    same = paired_ratio_interval(([1.0] * 8, steps), ([1.0] * 8, steps), keys)
    assert same["delta"] == 0.0 and "no difference on any of 8" in same["note"]
    low, high = same["ci95"]
    assert low < 0 < high  # never [0, 0]
    better = paired_ratio_interval((steps, steps), ([0.0] * 8, steps), keys, seed=3)
    assert better["delta"] == 1.0 and better["ci95"][0] > 0.5
    mixed = paired_ratio_interval(
        ([1.0, 2.0, 0.0, 3.0] * 2, steps), ([0.0, 2.0, 1.0, 1.0] * 2, steps), keys, seed=3
    )
    assert mixed["note"] is None and mixed["ci95"][0] <= mixed["delta"] <= mixed["ci95"][1]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 12), st.integers(1, 12)).map(lambda t: (min(t), t[1])),
        min_size=1,
        max_size=15,
    )
)
def test_ratio_interval_contains_estimate(routes):
    num = [float(a) for a, _ in routes]
    den = [float(b) for _, b in routes]
    keys = [str(i) for i in range(len(routes))]
    out = ratio_interval(num, den, keys, resamples=200)
    low, high = out["ci95"]
    assert 0.0 <= low <= out["estimate"] <= high <= 1.0
    assert out["estimate"] == sum(num) / sum(den)
    paired = paired_ratio_interval((num, den), (den, den), keys, resamples=200)
    assert paired["ci95"][0] <= paired["delta"] <= paired["ci95"][1] and paired["ci95"][0] < 0
