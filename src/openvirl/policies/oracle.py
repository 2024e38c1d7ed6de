"""The oracle: answers with the environment's expert answer, optionally after wrong tries.

It reads only the privileged `info` of each request (never the messages), so it is the
upper bound of every evaluation and the source of expert (SFT) data. With
``wrong_attempts=k`` it first gives k plausible wrong answers, which exercises the
sequential-revision path and yields multi-turn transcripts with feedback.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from openvirl.policies.base import Request, as_requests


class OraclePolicy:
    """Answer every request with ``info["expert_answer"]`` (after `wrong_attempts` wrong ones)."""

    name = "oracle"

    def __init__(self, *, wrong_attempts: int = 0, seed: int = 0):
        if wrong_attempts < 0:
            raise ValueError(f"`wrong_attempts` must be >= 0, got {wrong_attempts}.")
        self.wrong_attempts = wrong_attempts
        self.seed = seed

    def act(self, requests: Sequence[Request]) -> list[str]:
        return [self._answer(request["info"]) for request in as_requests(requests)]

    def _answer(self, info: dict[str, Any]) -> str:
        if "expert_answer" not in info:
            raise ValueError(
                "the oracle needs `info['expert_answer']`; pass the env's info dict in each request"
            )
        if info.get("attempt", 0) < self.wrong_attempts:
            return wrong_answer(info)
        return str(info["expert_answer"])


def wrong_answer(info: dict[str, Any]) -> str:
    """A well-formed but wrong answer for the task in `info` (used for revision transcripts)."""
    if info.get("task") == "points":
        numbers = list(info["numbers"])
        target = info["target"]
        for op in ("+", "*", "-"):
            formula = op.join(str(n) for n in numbers)
            if _points_value(numbers, op) != target:
                break
        payload = {"cards": info["cards"], "number": numbers, "formula": f"{formula}={target}"}
        return json.dumps(payload)
    if "wrong_answer" in info:
        return str(info["wrong_answer"])
    raise ValueError(f"no wrong answer is defined for task {info.get('task')!r}")


def _points_value(numbers: list[int], op: str) -> int:
    value = numbers[0]
    for n in numbers[1:]:
        value = value + n if op == "+" else value * n if op == "*" else value - n
    return value
