"""The GeneralPoints environment: API contract, revision loop, recognition gate, splits."""

from __future__ import annotations

import json
import warnings

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import openvirl  # noqa: F401  (registers the environments)
from openvirl.envs.points import REWARDS, Outcome, check
from openvirl.envs.points.cards import LABEL_RANKS, card_value
from openvirl.envs.points.env import GeneralPointsEnv
from openvirl.envs.points.splits import split_of
from openvirl.policies.oracle import OraclePolicy
from openvirl.policies.random import RandomPolicy
from openvirl.prompts import FEEDBACK_PREFIX


def answer(info: dict, formula: str, cards: list[str] | None = None) -> str:
    return json.dumps(
        {"cards": cards or info["cards"], "number": info["numbers"], "formula": formula}
    )


@pytest.mark.parametrize("visual", [False, True])
def test_check_env_passes(visual: bool) -> None:
    env = gym.make("openvirl/GeneralPoints-v0", visual=visual, image_size=256)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)


def test_same_seed_same_hand_and_prompt() -> None:
    a = gym.make("openvirl/GeneralPoints-v0")
    b = gym.make("openvirl/GeneralPoints-v0")
    for seed in range(20):
        obs_a, info_a = a.reset(seed=seed)
        obs_b, info_b = b.reset(seed=seed)
        assert obs_a["prompt"] == obs_b["prompt"]
        assert info_a["card_codes"] == info_b["card_codes"]
    hands = {tuple(a.reset(seed=s)[1]["card_codes"]) for s in range(20)}
    assert len(hands) > 15, "different seeds should deal different hands"


def test_prompt_shows_cards_and_rule() -> None:
    env = GeneralPointsEnv(rule="ood")
    obs, info = env.reset(seed=3)
    assert f"Cards: {info['cards']!r}" in obs["prompt"]
    assert "11, 12 and 13" in obs["prompt"]
    assert any(c in ("J", "Q", "K") for c in info["cards"]), "OOD hands hold a face card"
    assert obs["image"] is None


def test_correct_answer_terminates_with_plus_five() -> None:
    env = GeneralPointsEnv()
    _, info = env.reset(seed=1)
    formula = info["solutions"][0]
    _, reward, terminated, truncated, step = env.step(answer(info, formula + "=24"))
    assert (reward, terminated, truncated) == (REWARDS[Outcome.CORRECT], True, False)
    assert step["outcome"] == step["episode_outcome"] == "correct"


def test_revision_loop_feedback_and_exhaustion() -> None:
    env = GeneralPointsEnv(max_attempts=3)
    _, info = env.reset(seed=7)
    wrong = answer(info, "+".join(str(n) for n in info["numbers"]))
    assert not check("+".join(str(n) for n in info["numbers"]), info["numbers"]).correct
    rewards = []
    for attempt in range(1, 4):
        _, reward, terminated, truncated, step = env.step(wrong)
        rewards.append(reward)
        assert step["attempt"] == attempt
        assert terminated == (attempt == 3) and not truncated
    assert rewards[0] == REWARDS[Outcome(step["outcome"])]
    assert rewards[-1] == REWARDS[Outcome(step["outcome"])] + REWARDS[Outcome.ATTEMPTS_EXHAUSTED]
    assert step["episode_outcome"] == "attempts_exhausted"
    messages = env.messages()
    # prompt, then (answer, feedback) twice, then the final answer: no discarded generation
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    feedback = messages[2]["content"][0]["text"]
    assert feedback.startswith(FEEDBACK_PREFIX) and len(feedback) > len(FEEDBACK_PREFIX)


def test_garbage_answers_get_feedback_not_exceptions() -> None:
    env = GeneralPointsEnv(max_attempts=10)
    env.reset(seed=2)
    for text in [
        "",
        "null",
        '{"formula": 24}',
        '{"formula": null}',
        "\x00\xff" * 50,
        "__import__('os').system('echo hacked')",
        "(" * 10_000,
        "9" * 100_000,
    ]:
        _, reward, terminated, _, step = env.step(text)
        assert reward < 0 and step["feedback"], text[:20]
        if terminated:
            break


def test_visual_gate_checks_recognised_cards_first() -> None:
    env = GeneralPointsEnv(visual=True, suits="red", image_size=256)
    obs, info = env.reset(seed=5)
    assert obs["image"].size == (256, 256)
    assert "Cards:" not in obs["prompt"]
    content = env.messages()[0]["content"]
    assert content[0]["type"] == "image" and content[1]["type"] == "text"
    wrong_cards = ["A", "A", "A", "A"] if info["cards"] != ["A"] * 4 else ["K"] * 4
    _, reward, _, _, step = env.step(answer(info, info["solutions"][0], wrong_cards))
    assert step["outcome"] == "wrong_cards" and reward == REWARDS[Outcome.WRONG_CARDS]
    # the same formula with the right cards (any order, numeric aces) is correct
    cards = list(reversed(info["cards"]))
    _, reward, terminated, _, step = env.step(answer(info, info["solutions"][0], cards))
    assert step["outcome"] == "correct" and terminated


def test_garbage_gets_the_same_penalty_in_gp_vl_as_in_gp_l() -> None:
    for visual in (False, True):
        env = GeneralPointsEnv(visual=visual, image_size=256)
        env.reset(seed=5)
        _, reward, _, _, step = env.step("I cannot see any cards, sorry")
        assert step["outcome"] == "no_answer" and reward == REWARDS[Outcome.NO_ANSWER]


def test_split_restriction_and_disjointness() -> None:
    for split in ("train", "test"):
        env = GeneralPointsEnv(split=split)
        for seed in range(30):
            _, info = env.reset(seed=seed)
            assert info["split"] == split
            assert split_of(tuple(sorted(info["numbers"])), 24) == split


RANK_OF = {"A": 1, "J": 11, "Q": 12, "K": 13}


def _ranks(info: dict) -> tuple[int, ...]:
    return tuple(sorted(RANK_OF.get(label, 0) or int(label) for label in info["cards"]))


def test_split_by_ranks_keeps_prompts_apart_but_shares_problems() -> None:
    """`split_by="ranks"`: no rank multiset (so no prompt) is on both sides; value multisets
    (arithmetic problems) may be, which is what the strict default forbids."""
    sides: dict[str, set] = {"train": set(), "test": set()}
    problems: dict[str, set] = {"train": set(), "test": set()}
    for split in sides:
        env = GeneralPointsEnv(split=split, split_by="ranks", n_cards=3, target=12)
        for seed in range(300):
            _, info = env.reset(seed=seed)
            assert info["split"] == split and len(info["cards"]) == 3
            assert split_of(_ranks(info), 12) == split
            sides[split].add(_ranks(info))
            problems[split].add(tuple(sorted(info["numbers"])))
    assert not sides["train"] & sides["test"]
    assert problems["train"] & problems["test"]  # e.g. K 3 6 trained, Q 3 6 tested
    strict: dict[str, set] = {"train": set(), "test": set()}
    for split in strict:
        env = GeneralPointsEnv(split=split, n_cards=3, target=12)
        for seed in range(300):
            strict[split].add(tuple(sorted(env.reset(seed=seed)[1]["numbers"])))
    assert not strict["train"] & strict["test"]


def test_difficulty_knobs_deal_fewer_cards_from_a_rank_range() -> None:
    env = gym.make("openvirl/GeneralPoints-v0", n_cards=3, ranks=[1, 6], target=12)
    for seed in range(40):
        _, info = env.reset(seed=seed)
        assert len(info["cards"]) == 3 and all(1 <= n <= 6 for n in info["numbers"])
        assert check(info["solutions"][0] + "=12", info["numbers"], 12).outcome == Outcome.CORRECT
    obs, _ = env.reset(seed=1)
    assert "three playing cards" in obs["prompt"]


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("n_cards", 0),
        ("n_cards", 5),
        ("ranks", [0, 13]),
        ("ranks", [9, 3]),
        ("ranks", [1]),
        ("split_by", "suits"),
    ],
)
def test_bad_difficulty_options_name_the_option(option: str, value: object) -> None:
    with pytest.raises(ValueError, match=option):
        GeneralPointsEnv(**{option: value})


def test_fixed_hand_option_and_unsolvable_hands() -> None:
    env = GeneralPointsEnv(allow_unsolvable=True)
    _, info = env.reset(options={"cards": [(1, "S"), (1, "H"), (1, "D"), (1, "C")]})
    assert info["numbers"] == [1, 1, 1, 1] and not info["solvable"]
    assert "no solution" in info["expert_answer"]
    _, reward, terminated, _, step = env.step(info["expert_answer"])
    assert step["outcome"] == "correct" and terminated and reward == 5


def test_bad_config_names_the_option() -> None:
    with pytest.raises(ValueError, match="`rule`"):
        GeneralPointsEnv(rule="easy")
    with pytest.raises(ValueError, match="`suits`"):
        gym.make("openvirl/GeneralPoints-v0", suits="green")
    with pytest.raises(ValueError, match="`max_attempts`"):
        GeneralPointsEnv(max_attempts=0)


@pytest.mark.parametrize("rule", ["id", "ood"])
@pytest.mark.parametrize("visual", [False, True])
def test_oracle_always_solves_and_random_rarely(rule: str, visual: bool) -> None:
    from openvirl.evaluation.rollout import run_episodes

    def make_env() -> GeneralPointsEnv:
        return GeneralPointsEnv(rule=rule, visual=visual, image_size=128)

    seeds = list(range(40))
    oracle = list(run_episodes(make_env, OraclePolicy(), seeds, batch_size=8))
    assert len(oracle) == 40 and all(e.success and len(e.steps) == 1 for e in oracle)
    late = list(run_episodes(make_env, OraclePolicy(wrong_attempts=2), seeds[:10]))
    assert all(e.success and len(e.steps) == 3 for e in late)
    rand = list(run_episodes(make_env, RandomPolicy(seed=0), seeds, batch_size=8))
    assert sum(e.success for e in rand) < 20
    assert all(s.outcome in {o.value for o in Outcome} for e in rand for s in e.steps)


def test_random_baseline_does_not_read_the_hand_it_cannot_see_on_gp_vl() -> None:
    """GP-VL shows the cards only as an image; the random baseline once copied the true cards
    from `info` and so recognised 100% of them."""
    env = GeneralPointsEnv(visual=True, suits="black", image_size=256)
    policy = RandomPolicy(seed=1)
    matched = 0
    for seed in range(30):
        _, info = env.reset(seed=seed)
        reply = json.loads(policy.act([{"messages": env.messages(), "info": info}])[0])
        assert len(reply["cards"]) == len(info["cards"])
        assert reply["number"] == [card_value(LABEL_RANKS[c], info["rule"]) for c in reply["cards"]]
        matched += sorted(reply["cards"]) == sorted(info["cards"])
    assert matched <= 2  # chance: about 1 in 1000 per hand
    text = GeneralPointsEnv(visual=False)
    _, info = text.reset(seed=0)
    reply = json.loads(policy.act([{"messages": text.messages(), "info": info}])[0])
    assert reply["cards"] == info["cards"]  # GP-L: the cards are in the prompt
