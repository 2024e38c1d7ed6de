"""GeneralPoints: cards, an exact solver with tables, a safe verifier, rendering and the env.

Public API::

    from openvirl.envs.points import solve, check
    solve([3, 3, 8, 8], target=24)           # -> ["8/(3-8/3)"]
    check("8/(3-8/3)", [3, 3, 8, 8], 24)     # -> Verdict(outcome=correct, ...)
"""

from __future__ import annotations

from openvirl.envs.points.cards import Card, card_value, deal_hand
from openvirl.envs.points.env import GeneralPointsEnv, PointsConfig, expert_answer
from openvirl.envs.points.parsing import ParsedAnswer, parse_answer
from openvirl.envs.points.solver import SolutionTable, solution_table, solve
from openvirl.envs.points.verifier import REWARDS, Outcome, Verdict, check

__all__ = [
    "REWARDS",
    "Card",
    "GeneralPointsEnv",
    "Outcome",
    "ParsedAnswer",
    "PointsConfig",
    "SolutionTable",
    "Verdict",
    "card_value",
    "check",
    "deal_hand",
    "expert_answer",
    "parse_answer",
    "solution_table",
    "solve",
]
