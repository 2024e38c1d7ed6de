"""Hostile answers (issue 17): non-text answers whose repr recurses or raises get verifier
feedback instead of crashing `step`, and a huge formula is clipped in the feedback."""

from __future__ import annotations

import gymnasium as gym
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import openvirl.envs  # noqa: F401  (registers the environments)
from openvirl.envs.points.verifier import MAX_ECHO_CHARS, MAX_FORMULA_CHARS, check


class _BadRepr:
    def __repr__(self):
        raise RuntimeError("repr exploded")

    __str__ = __repr__


def _deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize("env_id", ["openvirl/Navigation-v0", "openvirl/GeneralPoints-v0"])
@pytest.mark.parametrize("answer", [_deep_list(100_000), _BadRepr(), None, 12, b"\xff"])
def test_non_text_answers_get_feedback(env_id, answer):
    env = gym.make(env_id)
    env.reset(seed=3)
    _, reward, terminated, _, info = env.unwrapped.step(answer)
    assert info["feedback"] and reward <= 0 and not terminated
    assert len(info["feedback"]) < 500
    env.close()


def test_huge_formula_is_clipped_in_feedback():
    formula = "(" * 49_990 + "1+2+3+4" + ")" * 49_990
    assert len(formula) <= MAX_FORMULA_CHARS
    verdict = check(formula, [1, 2, 3, 4], 24)
    assert verdict.outcome.value != "correct"
    assert len(verdict.message) < 3 * MAX_ECHO_CHARS + 200, len(verdict.message)
    assert "characters)" in verdict.message


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet="0123456789+-*/() x=", max_size=3_000),
    st.lists(st.integers(1, 13), min_size=4, max_size=4),
)
def test_feedback_is_bounded_for_any_formula(formula, numbers):
    verdict = check(formula, numbers, 24)
    assert len(verdict.message) < 3 * MAX_ECHO_CHARS + 300
