"""The oracle: answers with the environment's expert answer, optionally after wrong tries.

It reads only the privileged `info` of each request (never the messages), so it is the
upper bound of every evaluation and the source of expert (SFT) data. With
``wrong_attempts=k`` it first gives k plausible wrong answers, which exercises the
sequential-revision path and yields multi-turn transcripts with feedback.

Two kinds of wrong GeneralPoints answer (`WRONG_KINDS`): ``"formula"`` keeps the card values
and gets the arithmetic wrong (the verifier answers with the wrong result); ``"numbers"``
misvalues one *number* card (never a face card, so no transcript says what J/Q/K are worth)
and the verifier names the value that is not among the cards and the one that is missing.
A model trained to revise on the second kind learns to read the verifier's numbers, which is
the feedback channel the paper credits for RL's rule-OOD gains.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import Any

from openvirl.policies.base import Request, as_requests


class OraclePolicy:
    """Answer every request with ``info["expert_answer"]`` (after `wrong_attempts` wrong ones)."""

    name = "oracle"

    def __init__(
        self,
        *,
        wrong_attempts: int = 0,
        seed: int = 0,
        wrong_kind: str = "formula",
        revision_fraction: float = 1.0,
    ):
        if wrong_attempts < 0:
            raise ValueError(f"`wrong_attempts` must be >= 0, got {wrong_attempts}.")
        check_wrong_answer_options(wrong_kind, revision_fraction)
        self.wrong_attempts = wrong_attempts
        self.seed = seed
        self.wrong_kind = wrong_kind
        self.revision_fraction = revision_fraction
        # One stream, drawn once per fresh problem (attempt 0), in play order: the same
        # episodes get wrong attempts whatever the chunking of `play_expert` calls.
        self._rng = random.Random(seed)
        self._revising = True

    def act(self, requests: Sequence[Request]) -> list[str]:
        return [self._answer(request["info"]) for request in as_requests(requests)]

    def _answer(self, info: dict[str, Any]) -> str:
        if "expert_answer" not in info:
            raise ValueError(
                "the oracle needs `info['expert_answer']`; pass the env's info dict in each request"
            )
        attempt = info.get("attempt", 0)
        if attempt == 0 and self.wrong_attempts:
            self._revising = self._rng.random() < self.revision_fraction
        if self._revising and attempt < self.wrong_attempts:
            return wrong_answer(info, kind=self.wrong_kind, rng=self._rng)
        return str(info["expert_answer"])


WRONG_KINDS = ("formula", "numbers")
"""Kinds of wrong GeneralPoints answer; other tasks have one (the env's ``wrong_answer``)."""

FACE_RANKS = ("J", "Q", "K")


def check_wrong_answer_options(wrong_kind: str, revision_fraction: float) -> None:
    """Raise `ValueError` naming a bad `wrong_kind` or `revision_fraction`; the oracle, the
    expert-data config and the SFT run config (before any model loads) all check here."""
    if wrong_kind not in WRONG_KINDS:
        raise ValueError(f"`wrong_kind` must be one of {WRONG_KINDS}, got {wrong_kind!r}.")
    if not 0.0 <= revision_fraction <= 1.0:
        raise ValueError(f"`revision_fraction` must be in [0, 1], got {revision_fraction}.")


def wrong_answer(
    info: dict[str, Any], *, kind: str = "formula", rng: random.Random | None = None
) -> str:
    """A well-formed but wrong answer for the task in `info` (used for revision transcripts).

    `kind` as in `WRONG_KINDS`; ``"numbers"`` falls back to ``"formula"`` for a hand of face
    cards only. `rng` picks the misvalued card and its value (default: seeded by the hand).
    """
    if info.get("task") == "points":
        numbers = list(info["numbers"])
        target = info["target"]
        number_cards = [i for i, c in enumerate(info["cards"]) if str(c) not in FACE_RANKS]
        if kind == "numbers" and number_cards:
            rng = rng or random.Random(json.dumps(info["cards"]))
            i = rng.choice(number_cards)
            numbers[i] = rng.choice([v for v in range(1, 11) if v != numbers[i]])
            formula = "+".join(str(n) for n in numbers)
            payload = {"cards": info["cards"], "number": numbers, "formula": f"{formula}={target}"}
            return json.dumps(payload)
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
