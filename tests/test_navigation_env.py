"""The navigation env: presets, verifier outcomes and feedback, history, VL prompt, options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import openvirl  # noqa: F401  (registers the environments)
from openvirl.envs.navigation.env import NavigationEnv, landmark_correct
from openvirl.envs.navigation.routes import Endpoint, Milestone, NavRoute
from openvirl.evaluation.rollout import run_episodes
from openvirl.policies.oracle import OraclePolicy
from openvirl.policies.random import RandomPolicy
from openvirl.world.geometry import destination_point, encode_polyline, relative_turn


def line_route(headings: list[int], lengths: list[float], landmarks: list[str]) -> NavRoute:
    lat, lon = 40.75, -73.99
    start = Endpoint("start", lat, lon)
    milestones = []
    for k, (h, d) in enumerate(zip(headings, lengths, strict=True)):
        nlat, nlon = destination_point(lat, lon, h, d)
        milestones.append(
            Milestone(
                nlat,
                nlon,
                h,
                landmarks[k],
                intersection=k < len(headings) - 1,
                distance_m=d,
                polyline=encode_polyline([(lat, lon), (nlat, nlon)]),
            )
        )
        lat, lon = nlat, nlon
    return NavRoute("line", "manhattan", start, Endpoint("Cafe", lat, lon), milestones)


ROUTE = line_route(
    [90, 0],
    [120, 60],
    ["Prince St is on your front", "The destination Cafe Lux is on your left"],
)


def answer(action: str, observation: str | None = None) -> str:
    payload: dict[str, Any] = {"action": action}
    if observation is not None:
        payload["current observation"] = observation
    return json.dumps(payload)


def walk_to(env: NavigationEnv, kind: str) -> dict[str, Any]:
    """Answer correctly until the current entry has `kind`; return the info there."""
    info = env._info_copy()
    while env.entry.kind != kind:
        _, _, _, _, info = env.step(info["expert_answer"])
    return info


@pytest.mark.parametrize("preset", ["train", "id", "rule-ood", "rule-ood-hard", "human"])
def test_oracle_solves_every_text_preset(preset: str) -> None:
    policy = OraclePolicy(wrong_attempts=1)
    episodes = list(
        run_episodes(
            lambda: gym.make("openvirl/Navigation-v0", preset=preset),
            policy,
            list(range(6)),
            batch_size=3,
        )
    )
    assert all(e.success for e in episodes)
    # Each position: one wrong answer, then the right one.
    for e in episodes:
        outcomes = [s.outcome for s in e.steps]
        assert outcomes[::2] == [o for o in outcomes[::2] if o != "correct"]
        assert all(o == "correct" for o in outcomes[1::2])


def test_random_policy_uses_valid_answers() -> None:
    episodes = list(
        run_episodes(
            lambda: gym.make("openvirl/Navigation-v0"), RandomPolicy(seed=0), list(range(8))
        )
    )
    for e in episodes:
        for s in e.steps:
            assert s.outcome in ("correct", "wrong_action")


def test_default_make_is_the_training_preset() -> None:
    env = gym.make("openvirl/Navigation-v0")
    cfg = env.unwrapped.config
    assert (cfg.city, cfg.actions, cfg.visual, cfg.split) == (
        "manhattan",
        "absolute",
        False,
        "train",
    )
    obs, info = env.reset(seed=0)
    assert info["task"] == "navigation" and obs["image"] is None
    for key in (
        "success",
        "attempt",
        "gt_action",
        "expert_answer",
        "wrong_answer",
        "valid_actions",
        "position",
        "rail_length",
        "city",
        "route_id",
    ):
        assert key in info
    assert len(info["valid_actions"]) == 10
    assert env.spec.max_episode_steps == 500


def test_exhausted_attempts_end_the_episode() -> None:
    env = NavigationEnv(routes=[ROUTE], max_attempts=2)
    _, info = env.reset(seed=0, options={"init_heading": 0})
    _, r1, term1, _, info1 = env.step(info["wrong_answer"])
    assert (r1, term1, info1["outcome"], info1["attempt"]) == (-1.0, False, "wrong_action", 1)
    assert env.messages()[-1]["content"][0]["text"].startswith("You failed this trial because")
    _, r2, term2, trunc2, info2 = env.step(info["wrong_answer"])
    assert (r2, term2, trunc2) == (-2.0, True, False)
    assert info2["episode_outcome"] == "attempts_exhausted" and info2["success"] is False
    with pytest.warns(UserWarning, match="after the episode ended"):
        env.step(info["expert_answer"])


def test_intersection_feedback_is_never_false() -> None:
    env = NavigationEnv(routes=[ROUTE], max_attempts=5, drop_rate=0.0)
    env.reset(seed=0, options={"init_heading": 0})
    walk_to(env, "forward")
    # At a forward position (no intersection), claiming one is a wrong observation.
    _, reward, _, _, info = env.step(answer("stop()", "I observe an intersection"))
    assert (reward, info["outcome"]) == (-1.5, "wrong_observation")
    assert info["feedback"].startswith("you are not at any intersection")
    walk_to(env, "turn")
    # At the real intersection, claiming it is right: only the action is wrong (§10.5 fixed).
    _, reward, _, _, info = env.step(
        answer("forward()", "Prince St is on my front; I observe an intersection")
    )
    assert (reward, info["outcome"]) == (-1.0, "wrong_action")
    assert info["intersection_correct"] and info["landmark_correct"]
    # Missing the intersection there is the other message, reachable now.
    _, reward, _, _, info = env.step(answer("forward()", "No landmarks nearby"))
    assert (reward, info["outcome"]) == (-1.5, "wrong_observation")
    assert info["feedback"].startswith("you are at an intersection")
    assert not info["intersection_correct"] and not info["landmark_correct"]


def test_malformed_answers_get_feedback() -> None:
    env = NavigationEnv(routes=[ROUTE])
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step("I think we should go somewhere nice")
    assert (reward, terminated, info["outcome"]) == (-1.0, False, "wrong_action")
    assert "no action I could read" in info["feedback"] and info["parse_error"]
    _, _, _, _, info = env.step(answer("turn_direction(left)"))  # relative word, absolute space
    assert "not in the action space" in info["feedback"]


def test_history_holds_executed_steps_only() -> None:
    env = NavigationEnv(routes=[ROUTE], drop_rate=0.0)
    obs, info = env.reset(seed=0, options={"init_heading": 200})
    assert "O_1: No landmarks nearby; You are facing south (200 degrees)\nA_1: " in obs["prompt"]
    obs2, *_ = env.step(info["wrong_answer"])
    assert obs2["prompt"] == obs["prompt"]  # a failed attempt is never executed
    assert [m["role"] for m in env.messages()] == ["user", "assistant", "user"]
    obs3, reward, _, _, info3 = env.step(info["expert_answer"])
    assert reward == 1.0 and info3["moved"] and info3["position"] == 1
    assert "A_1: turn_direction(east)\nO_2: No landmarks nearby\nA_2: " in obs3["prompt"]
    assert [m["role"] for m in env.messages()] == ["user"]  # a move starts a new conversation
    assert "{{" not in obs3["prompt"] and "}}" not in obs3["prompt"]


def test_relative_start_word_follows_the_stated_heading() -> None:
    env = NavigationEnv(routes=[ROUTE], actions="relative")
    for seed in range(20):
        _, info = env.reset(seed=seed)
        heading = info["init_heading"]
        assert info["gt_action"] == f"turn_direction({relative_turn(heading, 90)})"
        assert "You are facing" in env._prompt_text and f"({heading} degrees)" in env._prompt_text


def test_hard_rule_ood_withholds_relative_words() -> None:
    env = NavigationEnv(preset="rule-ood-hard")
    obs, info = env.reset(seed=1)
    instruction = obs["prompt"].split("[Instruction]")[1].split("[Action space]")[0]
    assert "degrees)" in instruction
    assert not any(w in instruction for w in ("turn left", "turn right", "slightly"))
    assert info["gt_action"].startswith("turn_direction(")
    assert "slightly right" in obs["prompt"]  # the action space still lists them


def test_stop_radius_succeeds_near_the_goal() -> None:
    route = line_route(
        [90, 0], [120, 100], ["No landmarks nearby", "The destination Cafe Lux is on your left"]
    )
    for radius, expected in ((30.0, True), (0.0, False)):
        env = NavigationEnv(routes=[route], stop_radius_m=radius, forward_points=9, drop_rate=0.0)
        env.reset(seed=0, options={"init_heading": 0})
        while env.entry.kind != "forward" or env.entry.leg != 1 or env.entry.goal_distance_m > 30:
            env.step(env._info["expert_answer"])
        _, _, terminated, _, info = env.step(answer("stop()"))
        assert terminated is expected and info["success"] is expected


def test_same_seed_same_episode_and_route_options() -> None:
    a, b = NavigationEnv(), NavigationEnv()
    assert a.reset(seed=9)[1] == b.reset(seed=9)[1]
    env = NavigationEnv(split="test")
    _, info = env.reset(options={"route_index": 3})
    assert info["route_id"] == env.routes[3].route_id
    _, again = env.reset(options={"route_id": info["route_id"]})
    assert again["route_id"] == info["route_id"]
    with pytest.raises(ValueError, match="unknown `route_id`"):
        env.reset(options={"route_id": "nowhere-123"})


def test_fixed_order_plays_routes_once_in_order() -> None:
    env = NavigationEnv(preset="id")
    assert env.config.order == "fixed"
    ids = [env.reset(seed=9, options={"episode_index": i})[1]["route_id"] for i in range(120)]
    assert ids == [r.route_id for r in env.routes]  # every held-out route once, in order
    # Without an index the seed decides, as in random order.
    assert (
        env.reset(seed=3)[1]["route_id"] == NavigationEnv(split="test").reset(seed=3)[1]["route_id"]
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"actions": "compass"}, "`actions` must be one of"),
        ({"split": "validation"}, "`split` must be one of"),
        ({"max_attempts": 0}, "`max_attempts` must be an integer >= 1"),
        ({"drop_rate": 1.0}, "`drop_rate` must be in"),
        ({"instructions": "vague"}, "`instructions` must be one of"),
        ({"preset": "rule_ood"}, "Did you mean `rule-ood`"),
    ],
)
def test_bad_options_name_the_option(option: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        NavigationEnv(**option)


def test_routes_option_reads_virl_files(tmp_path: Path) -> None:
    from openvirl.envs.navigation.routes import write_virl

    path = write_virl([ROUTE], tmp_path / "route_infos.json")
    env = NavigationEnv(routes=str(path), city="manhattan")
    _, info = env.reset(seed=0)
    # The route keeps its own id through the V-IRL file (issue 20), not "route_infos-0000".
    assert info["route_id"] == ROUTE.route_id and info["gt_action"] == "turn_direction(east)"


def test_visual_prompt_leaks_no_landmark_text(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    calls: list[float] = []

    def fake_grid(self: NavigationEnv, entry: Any = None) -> Image.Image:
        calls.append((entry or self.entry).view_heading)
        return Image.new("RGB", (self.config.image_size,) * 2)

    monkeypatch.setattr(NavigationEnv, "view_grid", fake_grid)
    env = NavigationEnv(routes=[ROUTE], visual=True, image_size=128, drop_rate=0.0)
    obs, _ = env.reset(seed=0, options={"init_heading": 0})
    assert obs["image"].size == (128, 128)
    assert env.messages()[0]["content"][0]["type"] == "image"
    assert "[front, right\n back, left]" in obs["prompt"]
    walk_to(env, "stop")
    prompt = env._prompt_text
    history = prompt.split("[Observations and actions sequence]")[1]
    assert "Prince St" not in history and "Cafe Lux" not in history  # §10.8 fixed
    assert "You observe an image of 4 views; You observe an intersection" in history
    assert "Cafe Lux" in env._info["expert_answer"]  # the expert still names what it sees
    assert len(calls) == env.rail.__len__()


def test_landmark_recognition() -> None:
    assert landmark_correct(
        "Prince St is on my front; I observe an intersection", "Prince St is on your front"
    )
    assert landmark_correct("prince street is on my right", "Prince St is on your front")
    assert not landmark_correct("Aritzia is on my right", "Prince St is on your front")
    assert landmark_correct("No landmarks nearby", "No landmarks nearby")
    assert not landmark_correct("Aritzia is on my left", "No landmarks nearby")
    assert landmark_correct(
        "The destination MoMA Design Store is on my left",
        "The destination MoMA Design Store is on your left",
    )
    assert not landmark_correct(None, "No landmarks nearby")


def test_rail_positions_lie_on_streets_of_the_route() -> None:
    env = NavigationEnv(split="test")
    env.reset(seed=4)
    route, rail = env.route, env.rail
    lats = np.array([e.lat for e in rail.entries])
    assert route is not None and rail is not None
    assert rail.entries[-1].lat == route.milestones[-1].lat
    assert np.all(np.isfinite(lats))


def test_visual_ood_defaults_to_streetscapes_and_singapore_is_opt_in() -> None:
    pytest.importorskip("openvirl.world.streetview")
    # Issue 20: the default set holds only cities whose views look like streets.
    default = NavigationEnv(preset="visual-ood", image_size=132)
    assert {r.city for r in default.routes} == {"helsinki", "monaco"}
    assert len(default.routes) == 12
    with pytest.warns(UserWarning, match="singapore: the extract has 31 buildings"):
        env = NavigationEnv(preset="visual-ood-all", image_size=132)
    assert env.config.visual and env.config.order == "fixed"
    cities = [r.city for r in env.routes]
    assert len(env.routes) == 24 and set(cities) == {
        "helsinki",
        "monaco",
        "tokyo-shibuya",
        "singapore",
    }
    obs, info = env.reset(seed=0, options={"episode_index": cities.index("singapore")})
    assert obs["image"].size == (132, 132)  # two 63 px views, 5 px separator, 1 px padding
    assert np.asarray(obs["image"]).std() > 10  # a rendered scene, not a blank canvas
    assert info["city"] == "singapore"
    _, _, terminated, _, info = env.step(info["expert_answer"])
    assert not terminated and env.messages()[0]["content"][0]["image"].size == (132, 132)
