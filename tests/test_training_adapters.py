"""Adapters for TRL, verl and verifiers, each driven by a fake loop of its library's shape."""

from __future__ import annotations

import asyncio
import inspect
import types

import gymnasium as gym
import pytest

pytest.importorskip("transformers")

import openvirl  # noqa: F401
from openvirl.training.adapters import (
    EpisodeTranscript,
    OpenvirlAgentLoop,
    TRLEnvironment,
    make_verifiers_env,
    trl_environment_factory,
)
from openvirl.training.data import prompt_format
from tiny_models import tiny_tokenizer

ENV = {"rule": "id", "split": "train", "max_attempts": 3}
WRONG = '{"cards": ["A"], "number": [1], "formula": "1+1=24"}'  # wrong numbers: reward -2


def _expert(seed):
    env = gym.make("openvirl/GeneralPoints-v0", **ENV)
    _, info = env.reset(seed=seed)
    return info["expert_answer"]


def test_trl_environment_as_grpo_trainer_uses_it():
    from transformers.utils import get_json_schema

    factory = trl_environment_factory("openvirl/GeneralPoints-v0", ENV)
    env = factory()
    # What GRPOTrainer does: tools are the public functions other than reset/get_reward.
    tools = [
        name
        for name, _ in inspect.getmembers(type(env), predicate=inspect.isfunction)
        if name not in ("reset", "get_reward") and not name.startswith("_")
    ]
    assert tools == ["submit_answer"]
    schema = get_json_schema(env.submit_answer)  # TRL renders tools from this schema
    assert schema["function"]["parameters"]["required"] == ["answer"]
    # A row without a prompt gets the env's; a row with one gets None (TRL keeps its own).
    prompt = env.reset(reset_seed=7)
    assert "Cards:" in prompt
    assert env.reset(reset_seed=7, prompt=[{"role": "user", "content": "x"}]) is None
    feedback = env.submit_answer(WRONG)
    assert feedback.startswith("You failed this trial because")
    assert env.submit_answer(_expert(7)) == "Correct."
    assert env.submit_answer(WRONG).startswith("The episode is over")
    assert env.get_reward() == pytest.approx(-2.0 + 5.0)


def test_trl_environment_reward_is_the_episode_return():
    env = TRLEnvironment("openvirl/GeneralPoints-v0", ENV)
    env.reset(reset_seed=3)
    for _ in range(3):
        env.submit_answer("no formula at all")
    assert env.get_reward() == pytest.approx(3 * -3.0 - 1.0)  # three no-answers, exhausted


class _FakeServerManager:
    """verl's AsyncLLMServerManager shape: generate(request_id, prompt_ids, sampling_params)."""

    def __init__(self, tokenizer, answers):
        self.tokenizer = tokenizer
        self.answers = list(answers)
        self.calls = []

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None):
        self.calls.append((request_id, list(prompt_ids)))
        text = self.answers.pop(0)
        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return types.SimpleNamespace(
            token_ids=[*ids, self.tokenizer.eos_token_id], log_probs=[-0.5] * (len(ids) + 1)
        )


def test_verl_agent_loop_plays_an_episode_with_revision():
    tokenizer = tiny_tokenizer()
    server = _FakeServerManager(tokenizer, [WRONG, _expert(11)])
    loop = OpenvirlAgentLoop(types.SimpleNamespace(config={}), server, tokenizer, None)
    extra = {"reset_seed": 11, "env_id": "openvirl/GeneralPoints-v0", "env_kwargs": ENV}
    output = asyncio.run(loop.run({"temperature": 1.0}, extra_info=extra))
    assert output.reward_score == pytest.approx(-2.0 + 5.0)
    mask = output.response_mask
    assert len(mask) == len(output.response_ids) == len(output.response_logprobs)
    runs = [m for i, m in enumerate(mask) if i == 0 or mask[i - 1] != m]
    assert runs == [1, 0, 1]  # answer, feedback turn, revised answer
    feedback = tokenizer.decode(
        [t for t, m in zip(output.response_ids, mask, strict=True) if not m]
    )
    assert "You failed this trial because" in feedback
    # The second request continues the first: same request id, prompt + answer + feedback.
    (rid1, first), (rid2, second) = server.calls
    assert rid1 == rid2 and second[: len(first)] == first
    assert output.extra_fields["success"] is True and output.num_turns == 4


def test_episode_transcript_prompt_matches_the_hf_policy_text():
    tokenizer = tiny_tokenizer()
    fmt = prompt_format(tokenizer)
    env = gym.make("openvirl/GeneralPoints-v0", **ENV)
    transcript = EpisodeTranscript(env, fmt, seed=5)
    assert tokenizer.decode(transcript.prompt_ids) == fmt.render(env.unwrapped.messages())


class _FakeVerifiers(types.ModuleType):
    """The slice of the verifiers API the adapter uses: MultiTurnEnv, Rubric, stop."""

    def __init__(self):
        super().__init__("verifiers")

        class MultiTurnEnv:
            def __init__(self, dataset=None, rubric=None, max_turns=-1, **kwargs):
                self.dataset, self.rubric, self.max_turns = dataset, rubric, max_turns

        class Rubric:
            def __init__(self, funcs):
                self.funcs = funcs

        def stop(function):
            function.is_stop = True
            return function

        self.MultiTurnEnv, self.Rubric, self.stop = MultiTurnEnv, Rubric, stop


async def _fake_verifiers_rollout(env, row, answers):
    """verifiers 0.3.1's MultiTurnEnv.rollout: setup; then while no stop condition holds,
    build the prompt (env_response after the first turn), call the model, append a
    trajectory step. ``state["completion"]`` is filled only at cleanup, after the loop."""
    state = {"info": row["info"], "prompt": row["prompt"], "trajectory": []}
    state = await env.setup_state(state)
    answers = iter(answers)
    calls = 0
    while not await env.episode_over(state):
        if not state["trajectory"]:
            prompt = list(row["prompt"])
        else:
            last = state["trajectory"][-1]
            messages = last["prompt"] + last["completion"]
            prompt = messages + await env.env_response(messages, state)
        calls += 1
        completion = [{"role": "assistant", "content": next(answers)}]
        state["trajectory"].append({"prompt": prompt, "completion": completion})
    last = state["trajectory"][-1]
    state["completion"] = (last["prompt"] + last["completion"])[len(row["prompt"]) :]
    return state, calls


def test_verifiers_env_sequential_revision_and_reward():
    env = make_verifiers_env(
        "openvirl/GeneralPoints-v0", ENV, n_examples=3, verifiers_module=_FakeVerifiers()
    )
    row = env.dataset[1]
    assert row["prompt"][0]["role"] == "user" and "Cards:" in row["prompt"][0]["content"]
    assert env.episode_over.is_stop
    expert = _expert(row["info"]["reset_seed"])
    state, calls = asyncio.run(_fake_verifiers_rollout(env, row, [WRONG, expert, WRONG]))
    assert calls == 2 == state["openvirl_verified"]  # stopped as soon as it was solved
    roles = [m["role"] for m in state["completion"]]
    assert roles == ["assistant", "user", "assistant"]
    assert state["completion"][1]["content"].startswith("You failed this trial because")
    (reward_fn,) = env.rubric.funcs
    assert asyncio.run(reward_fn(state)) == pytest.approx(-2.0 + 5.0)


def test_verifiers_adapter_names_the_missing_package():
    try:
        import verifiers  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="pip install verifiers"):
            make_verifiers_env(n_examples=1)
