"""gymnasium vector envs: `make_vec(..., vectorization_mode="async")` with default settings.

`AsyncVectorEnv` defaults to ``shared_memory=True``, which needs our `FreeText` and
`OptionalImage` spaces to register gymnasium's shared-memory hooks; workers receive the env
through pickling, so envs must pickle small (tables and cities are looked up by key there).
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)
from PIL import Image

import openvirl  # noqa: F401
from openvirl.envs.spaces import FreeText, OptionalImage

PICKLE_BOUND = 64 * 1024
"""Bytes a text env may take pickled (the solution table alone is about 800 KB)."""


def test_free_text_shared_memory_round_trips_unicode_and_stays_live():
    space = FreeText(max_length=16)
    memory = create_shared_memory(space, n=3, ctx=mp)
    view = read_from_shared_memory(space, memory, n=3)
    write_to_shared_memory(space, 1, "7×3÷1−0=24 ♠", memory)
    write_to_shared_memory(space, 0, "", memory)
    assert view[1] == "7×3÷1−0=24 ♠" and view[0] == "" and len(view) == 3
    write_to_shared_memory(space, 1, "short", memory)  # the view reads the latest write
    assert view[1] == "short"
    assert copy.deepcopy(view) == ("", "short", "")
    with pytest.raises(ValueError, match="is not in FreeText"):
        write_to_shared_memory(space, 2, "x" * 17, memory)


def test_optional_image_shared_memory_round_trips_pixels_and_none():
    space = OptionalImage((4, 3))
    memory = create_shared_memory(space, n=2, ctx=mp)
    view = read_from_shared_memory(space, memory, n=2)
    image = Image.new("RGB", (4, 3), (10, 20, 30))
    image.putpixel((3, 2), (255, 0, 7))
    write_to_shared_memory(space, 0, image, memory)
    write_to_shared_memory(space, 1, None, memory)
    assert (np.asarray(view[0]) == np.asarray(image)).all() and view[1] is None
    none_space = OptionalImage(None)
    assert read_from_shared_memory(none_space, create_shared_memory(none_space, n=2), n=2) == (
        None,
        None,
    )


def test_points_async_vector_env_with_default_shared_memory():
    envs = gym.make_vec("openvirl/GeneralPoints-v0", num_envs=2, vectorization_mode="async")
    try:
        assert envs.shared_memory
        obs, info = envs.reset(seed=[3, 4])
        single = gym.make("openvirl/GeneralPoints-v0")
        for i, seed in enumerate((3, 4)):
            expected, _ = single.reset(seed=seed)
            assert obs["prompt"][i] == expected["prompt"]
        assert obs["prompt"][0] != obs["prompt"][1]
        assert obs["image"] == (None, None)
        obs, reward, terminated, _, info = envs.step((info["expert_answer"][0], "no idea"))
        assert reward.tolist()[0] == 5.0 and reward.tolist()[1] < 0
        assert terminated.tolist() == [True, False]
        assert info["feedback"][1]  # the wrong answer got the verifier's message
    finally:
        envs.close()


def test_visual_points_images_travel_through_shared_memory():
    options = {"visual": True, "image_size": 96}
    envs = gym.make_vec(
        "openvirl/GeneralPoints-v0", num_envs=2, vectorization_mode="async", **options
    )
    try:
        obs, _ = envs.reset(seed=[1, 2])
        expected, _ = gym.make("openvirl/GeneralPoints-v0", **options).reset(seed=2)
        assert obs["image"][1].size == (96, 96)
        assert (np.asarray(obs["image"][1]) == np.asarray(expected["image"])).all()
    finally:
        envs.close()


def test_text_navigation_async_vector_env_with_default_shared_memory():
    envs = gym.make_vec("openvirl/Navigation-v0", num_envs=2, vectorization_mode="async")
    try:
        obs, _ = envs.reset(seed=[0, 1], options={"route_index": 0})
        assert all("A_1:" in p for p in obs["prompt"])
        obs, reward, *_ = envs.step(("forward()", "stop()"))
        assert len(obs["prompt"]) == 2 and reward.shape == (2,)
    finally:
        envs.close()


@pytest.mark.parametrize(
    ("env_id", "options"),
    [
        ("openvirl/GeneralPoints-v0", {}),
        ("openvirl/GeneralPoints-v0", {"visual": True}),
        ("openvirl/Navigation-v0", {}),
        ("openvirl/Navigation-v0", {"visual": True}),
    ],
)
def test_envs_pickle_small_and_work_after_unpickling(env_id, options):
    env = gym.make(env_id, **options)
    assert len(pickle.dumps(env)) < PICKLE_BOUND  # before any episode (what workers get)
    if not options:
        env.reset(seed=5)
        assert len(pickle.dumps(env)) < PICKLE_BOUND  # text envs mid-episode too
        clone = pickle.loads(pickle.dumps(env))
        assert clone.unwrapped.messages() == env.unwrapped.messages()
        expected = env.step("stop()")[1:3]
        assert clone.step("stop()")[1:3] == expected  # the clone verifies the same way
