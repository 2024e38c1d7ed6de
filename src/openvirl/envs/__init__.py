"""Gymnasium environments: GeneralPoints (cards) and Navigation (real-city streets).

Registration is data: ids, entry points and time limits, nothing imported until `gym.make`.
"""

from __future__ import annotations

import gymnasium as gym

ENV_IDS = ("openvirl/GeneralPoints-v0", "openvirl/Navigation-v0")


def register_envs() -> None:
    """Register every openvirl environment with gymnasium (idempotent)."""
    registry = gym.envs.registry
    if "openvirl/GeneralPoints-v0" not in registry:
        # Episodes end by themselves after `max_attempts` verified answers; the limit is a guard.
        gym.register(
            id="openvirl/GeneralPoints-v0",
            entry_point="openvirl.envs.points.env:GeneralPointsEnv",
            max_episode_steps=100,
        )
    if "openvirl/Navigation-v0" not in registry:
        # Episodes end by themselves (a correct stop, or a position's attempts run out); the
        # longest shipped rail has about 40 positions, so 500 answers is only a guard.
        gym.register(
            id="openvirl/Navigation-v0",
            entry_point="openvirl.envs.navigation.env:NavigationEnv",
            max_episode_steps=500,
        )
