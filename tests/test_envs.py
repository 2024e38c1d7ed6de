"""Every registered openvirl environment passes gymnasium's checker and is seed-deterministic."""

from __future__ import annotations

import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import openvirl  # noqa: F401

OPENVIRL_IDS = sorted(env_id for env_id in gym.envs.registry if env_id.startswith("openvirl/"))


def test_environments_are_registered() -> None:
    assert "openvirl/GeneralPoints-v0" in OPENVIRL_IDS


@pytest.mark.parametrize("env_id", OPENVIRL_IDS)
def test_check_env(env_id: str) -> None:
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id", OPENVIRL_IDS)
def test_same_seed_same_rollout(env_id: str) -> None:
    runs = []
    for _ in range(2):
        env = gym.make(env_id)
        obs, info = env.reset(seed=123)
        env.action_space.seed(5)
        trace = [obs["prompt"]]
        for _ in range(3):
            obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
            trace += [reward, info.get("feedback")]
            if terminated or truncated:
                break
        runs.append(trace)
    assert runs[0] == runs[1]
