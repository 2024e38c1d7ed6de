"""The agents' one-prompt helper: tolerant JSON parsing, fallbacks, the oracle's echo."""

from __future__ import annotations

import pytest

from openvirl.agents.llm import LLMLog, ask_json, parse_json_reply, rating_check
from openvirl.policies.registry import make_policy


class Scripted:
    """Answers with canned replies in order (cycling), and remembers the requests."""

    name = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.requests: list = []

    def act(self, requests):
        out = []
        for r in requests:
            self.requests.append(r)
            out.append(self.replies[(len(self.requests) - 1) % len(self.replies)])
        return out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"a": 1}', {"a": 1}),
        ('Here you go: {"a": {"b": [1, 2]}} hope it helps', {"a": {"b": [1, 2]}}),
        ('```json\n{"rating": 7, "reason": "ok"}\n```', {"rating": 7, "reason": "ok"}),
        ("{'choice': 2,}", {"choice": 2}),
        ('["x", "y",]', ["x", "y"]),
        ('noise } then {"ok": true}', {"ok": True}),
    ],
)
def test_parse_json_reply_is_tolerant(text, expected):
    assert parse_json_reply(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "no json here", "{broken", "__import__('os')"])
def test_parse_json_reply_rejects_garbage_without_evaluating(text):
    with pytest.raises(ValueError):
        parse_json_reply(text)


def test_ask_json_falls_back_per_item_and_logs():
    policy = Scripted('{"rating": 9, "reason": "great"}', "I cannot rate this", '{"rating": 42}')
    log = LLMLog()
    out = ask_json(
        policy, ["p1", "p2", "p3"], step="rating", experts=[{}, {}, {}], check=rating_check, log=log
    )
    assert out == [{"rating": 9.0, "reason": "great"}, None, None]
    assert log.n_calls == 3 and log.n_fallbacks == 2
    assert "outside 0..10" in log.calls[2].error
    assert log.summary()["llm/fallback_rate"] == pytest.approx(2 / 3)
    # One batched act call; the baseline answer travels as the privileged expert answer.
    assert policy.requests[0]["info"]["expert_answer"] == "{}"
    assert policy.requests[0]["messages"][0]["content"][-1]["text"] == "p1"


def test_oracle_policy_echoes_the_baseline():
    out = ask_json(make_policy("oracle"), ["q"], step="x", experts=[{"k": [1, 2]}])
    assert out == [{"k": [1, 2]}]


def test_ask_json_checks_lengths():
    with pytest.raises(ValueError, match="experts"):
        ask_json(Scripted("{}"), ["a", "b"], step="x", experts=[{}])
