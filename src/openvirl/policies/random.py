"""The random baseline: a uniformly random well-formed answer for the task at hand.

For GeneralPoints text (GP-L) the cards are in the prompt, so it writes them and a random
expression tree over their numbers (random order, operators and bracketing): its success rate
is the chance of hitting the target by luck (about 0.7% on 24-point hands). For GP-VL the
cards are only in the image, which a baseline does not look at, so it names as many random
cards as the hand holds (ranks 1-13, uniform) and a random expression over *their* numbers:
a baseline never sees what the model cannot, and its card recognition is chance, not 100%.
For other tasks it picks a uniformly random action from ``info["valid_actions"]``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np

from openvirl.policies.base import Request, as_requests, mix_seed

_OPS = ("+", "-", "*", "/")


class RandomPolicy:
    """Random well-formed answers, reproducible from `seed`.

    A request with a `seed` (evaluation gives each answer one, from its episode and attempt)
    is answered from that seed mixed with the policy's, so the answer is the same however the
    run was batched, interrupted or resumed; requests without one draw from a running stream.
    """

    name = "random"

    def __init__(self, *, seed: int = 0):
        self.seed = int(seed)
        self.rng = np.random.default_rng(seed)

    def act(self, requests: Sequence[Request]) -> list[str]:
        return [self._answer(request) for request in as_requests(requests)]

    def _answer(self, request: Request) -> str:
        info = request.get("info") or {}
        seed = request.get("seed")
        rng = self.rng if seed is None else np.random.default_rng(mix_seed(self.seed, seed))
        if info.get("task") == "points":
            if info.get("visual"):
                cards, numbers = random_cards(len(info["cards"]), str(info["rule"]), rng)
            else:
                cards, numbers = list(info["cards"]), list(info["numbers"])
            formula = random_expression(numbers, rng)
            payload = {"cards": cards, "number": numbers, "formula": formula}
            return json.dumps(payload)
        actions = info.get("valid_actions")
        if actions:
            return str(actions[int(rng.integers(len(actions)))])
        raise ValueError(f"the random policy does not know task {info.get('task')!r}")


def random_cards(n: int, rule: str, rng: np.random.Generator) -> tuple[list[str], list[int]]:
    """`n` uniformly random card labels (A..K) and their numbers under `rule` (a GP-VL guess)."""
    from openvirl.envs.points.cards import RANK_LABELS, card_value

    ranks = [int(r) for r in rng.integers(1, 14, size=n)]
    return [RANK_LABELS[r] for r in ranks], [card_value(r, rule) for r in ranks]


def random_expression(numbers: list[int], rng: np.random.Generator) -> str:
    """A random full binary expression tree over `numbers` (each used once), as a string."""
    terms = [str(n) for n in rng.permutation(numbers)]
    while len(terms) > 1:
        i = int(rng.integers(len(terms) - 1))
        op = _OPS[int(rng.integers(len(_OPS)))]
        left, right = terms[i], terms[i + 1]
        terms[i : i + 2] = [f"({left}{op}{right})"]
    expr = terms[0]
    return expr[1:-1] if expr.startswith("(") and _outer_parens_match(expr) else expr


def _outer_parens_match(expr: str) -> bool:
    depth = 0
    for i, ch in enumerate(expr):
        depth += ch == "("
        depth -= ch == ")"
        if depth == 0 and i < len(expr) - 1:
            return False
    return True
