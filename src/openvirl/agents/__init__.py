"""V-IRL's exemplar agents on the offline platform, each with a policy and a no-model baseline.

>>> from openvirl.agents import RouteOptimizer, RouteOptimizerConfig
>>> result = RouteOptimizer(RouteOptimizerConfig(city="manhattan")).run()  # doctest: +SKIP

Every agent takes a config dataclass and an optional policy (any `openvirl.policies` spec; None
runs the deterministic baseline), and `run(out_dir=...)` returns an `AgentResult` and writes a
run folder the viewer opens. Importing this package is light: the agents load on first access.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "AgentResult": "openvirl.agents.base",
    "RouteOptimizer": "openvirl.agents.route_optimizer",
    "RouteOptimizerConfig": "openvirl.agents.route_optimizer",
    "PlaceRecommender": "openvirl.agents.place_recommender",
    "PlaceRecommenderConfig": "openvirl.agents.place_recommender",
    "EstateRecommender": "openvirl.agents.estate",
    "EstateRecommenderConfig": "openvirl.agents.estate",
    "UrbanCounter": "openvirl.agents.urban",
    "UrbanCounterConfig": "openvirl.agents.urban",
    "UrbanPlanner": "openvirl.agents.urban",
    "UrbanPlannerConfig": "openvirl.agents.urban",
    "Explorer": "openvirl.agents.explorer",
    "ExplorerConfig": "openvirl.agents.explorer",
    "DirectionGiver": "openvirl.agents.direction",
    "DirectionGiverConfig": "openvirl.agents.direction",
    "Tourist": "openvirl.agents.direction",
    "TouristConfig": "openvirl.agents.direction",
    "Concierge": "openvirl.agents.concierge",
    "ConciergeConfig": "openvirl.agents.concierge",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'openvirl.agents' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = sorted(_LAZY)
