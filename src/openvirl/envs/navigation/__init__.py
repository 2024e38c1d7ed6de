"""V-IRL street navigation: route datasets, the rail, and the `openvirl/Navigation-v0` env.

Public API::

    from openvirl.envs.navigation import NavigationEnv, generate_routes, read_routes
    env = NavigationEnv(preset="rule-ood")          # or gym.make("openvirl/Navigation-v0", ...)
    routes = generate_routes("monaco", 10, seed=0)  # deterministic per seed
"""

from __future__ import annotations

from openvirl.envs.navigation.actions import REWARDS, Outcome, ParsedAnswer, parse_answer
from openvirl.envs.navigation.env import NavigationConfig, NavigationEnv, landmark_correct
from openvirl.envs.navigation.rail import Rail, RailEntry, build_rail, synthesize_instruction
from openvirl.envs.navigation.routes import (
    Endpoint,
    GenerationConfig,
    Milestone,
    NavRoute,
    RouteFormatError,
    RouteGenerationError,
    from_virl,
    generate_routes,
    read_routes,
    to_virl,
    write_routes,
    write_virl,
)
from openvirl.envs.navigation.splits import PRESETS, load_route_set

__all__ = [
    "PRESETS",
    "REWARDS",
    "Endpoint",
    "GenerationConfig",
    "Milestone",
    "NavRoute",
    "NavigationConfig",
    "NavigationEnv",
    "Outcome",
    "ParsedAnswer",
    "Rail",
    "RailEntry",
    "RouteFormatError",
    "RouteGenerationError",
    "build_rail",
    "from_virl",
    "generate_routes",
    "landmark_correct",
    "load_route_set",
    "parse_answer",
    "read_routes",
    "synthesize_instruction",
    "to_virl",
    "write_routes",
    "write_virl",
]
