"""Evaluation metrics: Wilson intervals, rule collapse, recognition, aggregation of records."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from openvirl.evaluation.metrics import (
    compute_metrics,
    n_solutions_bucket,
    recognized_correctly,
    rule_collapse,
    slice_table,
    wilson_interval,
)


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_interval_contains_the_rate_and_stays_in_unit_range(k: int, n: int) -> None:
    k = min(k, n)
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n + 1e-12
    assert k / n - 1e-12 <= high <= 1.0


def test_wilson_interval_known_values() -> None:
    assert wilson_interval(0, 0) == (0.0, 0.0)
    low, high = wilson_interval(35, 234)  # 15% of the paper's 234 hands
    assert (round(low, 3), round(high, 3)) == (0.11, 0.201)
    low, high = wilson_interval(10, 10)
    assert high == pytest.approx(1.0) and 0.69 < low < 0.73


def answer(cards: list[str], numbers: list[int], formula: str) -> str:
    return json.dumps({"cards": cards, "number": numbers, "formula": formula})


CARDS = ["K", "3", "7", "2"]  # OOD values 13, 3, 7, 2


def test_rule_collapse_from_the_number_field() -> None:
    assert rule_collapse(answer(CARDS, [10, 3, 7, 2], "13+7+3+2=24"), CARDS, "ood") is True


def test_rule_collapse_from_the_formula() -> None:
    # 10 stands in for the king: one 10 too many and 13 missing.
    assert rule_collapse(answer(CARDS, [13, 3, 7, 2], "10+7+3*2-2=24"), CARDS, "ood") is True
    text = "\"cards\": ['K', '3', '7', '2'],\n\"formula\": \"(10-7)*2*3=18\","
    assert rule_collapse(text, CARDS, "ood") is True


def test_correct_ood_answers_and_real_tens_are_not_collapse() -> None:
    assert rule_collapse(answer(CARDS, [13, 3, 7, 2], "13+7+3+2=25"), CARDS, "ood") is False
    hand = ["10", "Q", "A", "2"]  # a real ten: using 10 once is legitimate
    assert rule_collapse(answer(hand, [10, 12, 1, 2], "10+12+1*2=24"), hand, "ood") is False
    assert rule_collapse("no json at all", CARDS, "ood") is None  # unparseable: not counted


def test_rule_collapse_does_not_apply_in_distribution_or_without_faces() -> None:
    assert rule_collapse(answer(CARDS, [10, 3, 7, 2], "10+7+3+4"), CARDS, "id") is None
    assert rule_collapse(answer(["2"] * 4, [2] * 4, "2*2*2*2"), ["2"] * 4, "ood") is None


def test_recognition_compares_multisets_of_normalized_labels() -> None:
    assert recognized_correctly(["3", "K", "2", "7"], CARDS)
    assert recognized_correctly(["king", "3", "7", "2"], CARDS)
    assert not recognized_correctly(["Q", "3", "7", "2"], CARDS)
    assert not recognized_correctly(None, CARDS)
    assert not recognized_correctly(["K", "3", "7"], CARDS)


def record(index: int, outcomes: list[str], *, success: bool, **info: object) -> dict:
    steps = [
        {"attempt": i + 1, "outcome": o, "action": "", "reward": 0.0}
        for i, o in enumerate(outcomes)
    ]
    reset_info = {"task": "points", "cards": CARDS, "rule": "id", **info}
    return {"index": index, "success": success, "steps": steps, "reset_info": reset_info}


def test_compute_metrics_rates_and_slices() -> None:
    records = [
        record(0, ["correct"], success=True, difficulty={"n_solutions": 4, "needs_fractions": 0}),
        record(
            1,
            ["no_answer", "illegal_formula", "correct"],
            success=True,
            difficulty={"n_solutions": 40, "needs_fractions": False},
        ),
        record(
            2,
            ["wrong_value"] * 5,
            success=False,
            difficulty={"n_solutions": 2, "needs_fractions": True},
        ),
    ]
    m = compute_metrics(records, sessions=[{"wall_s": 2.0, "model_s": 1.5, "episodes": 3}])
    assert m["eval/episodes"] == 3
    assert m["eval/success"] == pytest.approx(2 / 3)
    low, high = m["eval/success_ci95"]
    assert low < 2 / 3 < high
    assert m["eval/per_step_accuracy"] == pytest.approx(2 / 9)
    assert m["eval/format_error_rate"] == pytest.approx(2 / 9)
    assert m["eval/mean_attempts"] == pytest.approx(3.0)
    assert m["eval/success_within/1"] == pytest.approx(1 / 3)
    assert m["eval/success_within/3"] == pytest.approx(2 / 3)
    assert m["eval/outcomes/wrong_value"] == pytest.approx(5 / 9)
    assert m["eval/model_time_share"] == pytest.approx(0.75)
    assert m["eval/episodes_per_s"] == pytest.approx(1.5)
    assert m["eval/tokens_generated"] is None
    rows = {r["bucket"]: r for r in slice_table(m, "n_solutions")}
    assert rows["3-4"]["episodes"] == 1 and rows["3-4"]["success"] == 1.0
    assert rows["2"]["success"] == 0.0 and rows[">4"]["success"] == 1.0
    fractions = {r["bucket"]: r["success"] for r in slice_table(m, "needs_fractions")}
    assert fractions == {"yes": 0.0, "no": 1.0}


def test_compute_metrics_of_nothing_is_nan_not_an_error() -> None:
    m = compute_metrics([])
    assert m["eval/episodes"] == 0 and math.isnan(m["eval/success"])


def test_n_solutions_buckets() -> None:
    # Solutions counted up to commutativity and associativity (issue 20): 1 to ~22.
    assert [n_solutions_bucket(n) for n in (0, 1, 2, 3, 4, 5, 900)] == [
        "0",
        "1",
        "2",
        "3-4",
        "3-4",
        ">4",
        ">4",
    ]


def test_format_errors_count_in_every_task_and_collapse_needs_a_parseable_answer() -> None:
    from openvirl.evaluation.metrics import rule_following, unreadable

    garbage = "lorem ipsum"
    vl = {"task": "points", "cards": CARDS, "numbers": [13, 3, 7, 2], "visual": True}
    nav = {"task": "navigation", "city": "x", "route_id": "r"}
    records = [
        {"index": 0, "success": False, "reset_info": vl,
         "steps": [{"outcome": "wrong_cards", "action": garbage}]},
        {"index": 1, "success": False, "reset_info": nav,
         "steps": [{"outcome": "wrong_action", "action": garbage},
                   {"outcome": "wrong_action", "action": '{"action": "turn_left"}'}]},
    ]  # fmt: skip
    m = compute_metrics(records, metric_set=())
    assert m["eval/format_error_rate"] == pytest.approx(2 / 3)
    assert unreadable(garbage, "points")
    assert not unreadable(answer(CARDS, [13, 3, 7, 2], "13+7+3+2=25"), "points")
    # collapse among parseable answers only; rule-following counts garbage against the model
    assert rule_collapse(garbage, CARDS, "ood") is None
    assert rule_following(garbage, CARDS, "ood") is False
    assert rule_following(answer(CARDS, [13, 3, 7, 2], "13+7+3+2=25"), CARDS, "ood") is True
    assert rule_following(answer(CARDS, [10, 3, 7, 2], "10+7+3*2=23"), CARDS, "ood") is False
    assert rule_following(answer(CARDS, [10, 3, 7, 2], "x"), CARDS, "id") is None
