"""Navigation answers: tolerant parsing, action spaces, intersection claims, the reward table."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openvirl.envs.navigation.actions import (
    FEEDBACK,
    REWARDS,
    Outcome,
    action_space_text,
    claims_intersection,
    normalize_action,
    parse_answer,
    valid_actions,
)


@pytest.mark.parametrize(
    ("text", "action"),
    [
        ("forward()", "forward()"),
        ("Forward", "forward()"),
        ("move forward", "forward()"),
        ("STOP()", "stop()"),
        ("turn_direction(north)", "turn_direction(north)"),
        ("turn_direction('north-east')", "turn_direction(northeast)"),
        ('turn_direction("South West")', "turn_direction(southwest)"),
        ("turn_direction( Slightly Left )", "turn_direction(slightly left)"),
        ("turn_direction(slightly_right)", "turn_direction(slightly right)"),
        ("turn_direction: left", "turn_direction(left)"),
        ("turn left", "turn_direction(left)"),
        ("NE", "turn_direction(northeast)"),
        ("northwest", "turn_direction(northwest)"),
        ("`forward()`", "forward()"),
    ],
)
def test_action_variants_normalize(text: str, action: str) -> None:
    assert normalize_action(text) == action


@pytest.mark.parametrize("text", ["", "jump()", "turn_direction(up)", "fly north", "forward north"])
def test_non_actions_are_rejected(text: str) -> None:
    assert normalize_action(text) is None


def test_json_answer_with_trailing_comma_and_fence() -> None:
    # The reference's JSON path always failed on its own trailing comma (spec §3.6).
    text = (
        "```json\n{\n"
        '  "current observation": "Aritzia is on my left front; I observe an intersection",\n'
        '  "current instruction": "Turn left to face southeast.",\n'
        '  "action": "turn_direction(southeast)",\n}\n```'
    )
    parsed = parse_answer(text)
    assert parsed.action == "turn_direction(southeast)"
    assert parsed.observation.startswith("Aritzia")
    assert parsed.instruction == "Turn left to face southeast."
    assert parsed.error is None


def test_field_patterns_without_json() -> None:
    parsed = parse_answer("current observation: No landmarks nearby\naction: forward()")
    assert parsed.action == "forward()" and parsed.observation == "No landmarks nearby"


def test_malformed_answers_say_why() -> None:
    assert parse_answer("I would go there").error == 'no "action" field was found'
    bad = parse_answer('{"action": "walk to the moon"}')
    assert bad.action is None and "is not an action" in bad.error
    assert parse_answer(None).error  # type: ignore[arg-type]


@given(st.text(max_size=300))
@settings(max_examples=200, deadline=None)
def test_any_text_gets_a_result(text: str) -> None:
    parsed = parse_answer(text)
    assert parsed.action is None or parsed.action in {
        *valid_actions("absolute"),
        *valid_actions("relative"),
    }
    assert (parsed.action is None) == (parsed.error is not None)


def test_action_spaces() -> None:
    absolute, relative = valid_actions("absolute"), valid_actions("relative")
    assert len(absolute) == 10 and absolute[0] == "forward()" and absolute[-1] == "stop()"
    assert "turn_direction(slightly left)" in relative and len(relative) == 6
    assert "8 compass directions" in action_space_text("absolute")
    assert "'slightly right'" in action_space_text("relative")
    with pytest.raises(ValueError, match="`actions` must be one of"):
        valid_actions("egocentric")


@pytest.mark.parametrize(
    ("observation", "claim"),
    [
        ("Prince St is on my front; I observe an intersection", True),
        ("You observe an intersection", True),
        ("No landmarks nearby", False),
        ("No landmarks nearby; no intersection", False),
        ("I am not at any intersection", False),
        (None, False),
    ],
)
def test_intersection_claims(observation: str | None, claim: bool) -> None:
    assert claims_intersection(observation) is claim


def test_rewards_table_and_messages() -> None:
    assert REWARDS == {
        Outcome.CORRECT: 1.0,
        Outcome.WRONG_ACTION: -1.0,
        Outcome.WRONG_OBSERVATION: -1.5,
        Outcome.ATTEMPTS_EXHAUSTED: -1.0,
    }
    # The reference's messages carried literal doubled braces (spec §10.6).
    assert all("{{" not in m and "}}" not in m for m in FEEDBACK.values())
