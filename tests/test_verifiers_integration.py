"""The verifiers library's own evaluation loop against ``openvirl serve-model`` on loopback.

verifiers 0.4 (the installed dev extra): ``run_eval`` loads the ``openvirl-verifiers``
taskset by id, plays each episode through `OpenvirlEnv.run`, and sends every model call
through its interception server to our OpenAI-compatible server, which serves either the
tiny random model (``hf`` policy) or a scripted policy that answers wrong, then right.
verifiers 0.3 (legacy ``MultiTurnEnv``): the same checks through its ``evaluate`` loop,
run only where 0.3 is the installed version.
"""

from __future__ import annotations

import asyncio
import json

import gymnasium as gym
import pytest

vf_root = pytest.importorskip("verifiers")
pytest.importorskip("transformers")
pytest.importorskip("fastapi")

import openvirl  # noqa: E402, F401
from openvirl.policies.base import message_text  # noqa: E402
from openvirl.policies.server import serve_in_thread  # noqa: E402

POINTS = "openvirl/GeneralPoints-v0"
NAVIGATION = "openvirl/Navigation-v0"
WRONG = '{"cards": ["A"], "number": [1], "formula": "1+1=24"}'
V04 = not vf_root.__version__.startswith(("0.1", "0.2", "0.3"))


def _replay(env_id, env_kwargs, reset_seed, answers):
    """The return, attempts and outcome our env gives these answers (stops when it ends)."""
    env = gym.make(env_id, **env_kwargs)
    env.reset(seed=reset_seed)
    total, used, info = 0.0, 0, {}
    for answer in answers:
        _, reward, terminated, truncated, info = env.step(answer)
        total, used = total + reward, used + 1
        if terminated or truncated:
            break
    return total, used, info.get("episode_outcome")


def _expert_answers(env_id, env_kwargs, reset_seed):
    """Map every prompt of the expert's walk through the episode to the expert answer."""
    env = gym.make(env_id, **env_kwargs)
    obs, info = env.reset(seed=reset_seed)
    answers = {}
    while True:
        answers[obs["prompt"]] = info["expert_answer"]
        obs, _, terminated, truncated, info = env.step(info["expert_answer"])
        if terminated or truncated:
            return answers


class ScriptedPolicy:
    """First answer wrong, then the expert's answer for the last prompt seen (per episode)."""

    name = "scripted"

    def __init__(self, experts, wrong_first=True):
        self.experts, self.wrong_first, self.calls = experts, wrong_first, 0

    def act(self, requests):
        self.calls += 1
        messages = requests[0]["messages"]
        texts = [message_text(m) for m in messages if m["role"] == "user"]
        assistants = sum(m["role"] == "assistant" for m in messages)
        if self.wrong_first and assistants == 0:
            return [WRONG]
        for text in reversed(texts):
            if text in self.experts:
                return [self.experts[text]]
        return ["no idea"]


class CountingPolicy:
    """Counts the requests a policy served."""

    def __init__(self, policy):
        self.policy, self.calls, self.name = policy, 0, policy.name

    def __getattr__(self, name):
        return getattr(self.policy, name)

    def act(self, requests):
        self.calls += 1
        return self.policy.act(requests)

    def generate(self, requests, **options):  # the server's path for per-request sampling
        self.calls += 1
        inner = getattr(self.policy, "generate", None)
        return inner(requests, **options) if callable(inner) else self.policy.act(requests)


# ---------------------------------------------------------------------------- verifiers 0.4


def _run_eval_v04(tmp_path, server_url, env_id, env_kwargs, n_tasks, monkeypatch):
    from verifiers.v1.cli.eval.runner import run_eval
    from verifiers.v1.configs.cli.eval import EvalConfig

    monkeypatch.setenv("OPENVIRL_TEST_KEY", "local")
    monkeypatch.setenv("VF_RUN_ID", "openvirl-test")  # run_eval sets it process-wide otherwise
    config = EvalConfig.model_validate(
        {
            "env": {
                "taskset": {
                    "id": "openvirl-verifiers",
                    "env": env_id,
                    "env_kwargs": env_kwargs,
                    "n_tasks": n_tasks,
                    "seed": 3,
                }
            },
            "model": "openvirl",
            "client": {"type": "eval", "base_url": server_url, "api_key_var": "OPENVIRL_TEST_KEY"},
            "push": False,
            "rich": None,
            "output_dir": str(tmp_path / "vf-out"),
            "max_concurrent": 2,
        }
    )
    return asyncio.run(run_eval(config))


def _trace_answers(trace):
    return [n.message.content or "" for n in trace.nodes if n.sampled]


def _tasks(env_id, env_kwargs, n_tasks):
    from verifiers.v1.utils.loaders import load_taskset

    from openvirl.training.verifiers_env import OpenvirlTasksetConfig

    config = OpenvirlTasksetConfig(
        id="openvirl-verifiers", env=env_id, env_kwargs=env_kwargs, n_tasks=n_tasks, seed=3
    )
    return list(load_taskset(config))


@pytest.mark.skipif(not V04, reason="verifiers 0.4+ API (verifiers.v1)")
@pytest.mark.parametrize(
    ("env_id", "env_kwargs"),
    [(POINTS, {"split": "train", "max_attempts": 3}), (NAVIGATION, {"max_attempts": 2})],
    ids=["points", "navigation"],
)
def test_v04_episodes_stop_when_solved_and_score_like_our_env(
    tmp_path, monkeypatch, env_id, env_kwargs
):
    tasks = _tasks(env_id, env_kwargs, 2)
    experts = {}
    for task in tasks:
        experts.update(_expert_answers(env_id, env_kwargs, task.data.info["reset_seed"]))
    policy = ScriptedPolicy(experts)
    with serve_in_thread(policy, model_name="openvirl") as server:
        episodes = _run_eval_v04(tmp_path, server.url, env_id, env_kwargs, 2, monkeypatch)
    assert len(episodes) == 2 and all(e.ok for e in episodes)
    calls = 0
    for episode in episodes:
        (trace,) = episode.traces
        answers = _trace_answers(trace)
        seed = episode.task.data.info["reset_seed"]
        total, used, outcome = _replay(env_id, env_kwargs, seed, answers)
        assert outcome == "correct" and answers[0] == WRONG  # wrong, revised, solved
        assert used == len(answers) == trace.metrics["attempts"]  # no call after solving
        assert trace.rewards["episode_return"].score == pytest.approx(total)
        assert trace.metrics["success"] == 1.0
        calls += len(answers)
    assert policy.calls == calls  # every call the server saw was a verified attempt


@pytest.mark.skipif(not V04, reason="verifiers 0.4+ API (verifiers.v1)")
def test_v04_tiny_model_through_serve_model(tmp_path, monkeypatch):
    from openvirl.policies.hf import HFPolicy
    from tiny_models import tiny_causal_lm

    env_kwargs = {"split": "train", "max_attempts": 2}
    policy = CountingPolicy(HFPolicy.from_pretrained(tiny_causal_lm(tmp_path), max_new_tokens=8))
    with serve_in_thread(policy, model_name="openvirl") as server:
        episodes = _run_eval_v04(tmp_path, server.url, POINTS, env_kwargs, 2, monkeypatch)
    assert len(episodes) == 2 and all(e.ok for e in episodes)
    for episode in episodes:
        (trace,) = episode.traces
        answers = _trace_answers(trace)
        seed = episode.task.data.info["reset_seed"]
        total, used, _ = _replay(POINTS, env_kwargs, seed, answers)
        assert used == len(answers) == 2  # a random model never solves: both attempts used
        assert trace.rewards["episode_return"].score == pytest.approx(total)
    assert policy.calls == 4


@pytest.mark.skipif(not V04, reason="verifiers 0.4+ API (verifiers.v1)")
def test_v04_plugin_is_found_by_id():
    from verifiers.v1.utils.loaders import default_harness_id, environment_class, taskset_class

    from openvirl.training.verifiers_env import OpenvirlEnv, OpenvirlTaskset

    assert taskset_class("openvirl-verifiers") is OpenvirlTaskset
    assert environment_class("openvirl-verifiers") is OpenvirlEnv
    assert default_harness_id("openvirl-verifiers") == "openvirl-verifiers"


@pytest.mark.skipif(not V04, reason="verifiers 0.4 has no MultiTurnEnv")
def test_legacy_adapter_points_v04_users_to_the_taskset():
    from openvirl.training.adapters import make_verifiers_env

    with pytest.raises(ImportError, match="openvirl-verifiers"):
        make_verifiers_env(n_examples=1)


# ---------------------------------------------------------------------------- verifiers 0.3


@pytest.mark.skipif(V04, reason="verifiers 0.3 API (MultiTurnEnv)")
def test_v03_evaluate_stops_when_solved_and_scores_like_our_env(monkeypatch):
    import verifiers as vf

    from openvirl.training.adapters import make_verifiers_env

    env_kwargs = {"split": "train", "max_attempts": 3}
    env = make_verifiers_env(POINTS, env_kwargs, n_examples=2, seed=3)
    experts = {}
    for row in env.dataset:
        experts.update(_expert_answers(POINTS, env_kwargs, row["info"]["reset_seed"]))
    policy = ScriptedPolicy(experts)
    monkeypatch.setenv("OPENVIRL_TEST_KEY", "local")
    with serve_in_thread(policy, model_name="openvirl") as server:
        client = vf.ClientConfig(api_base_url=server.url, api_key_var="OPENVIRL_TEST_KEY")
        results = asyncio.run(env.evaluate(client=client, model="openvirl", num_examples=2))
    outputs = results["outputs"] if isinstance(results, dict) else results.outputs
    calls = 0
    for output in outputs:
        info = output["info"] if isinstance(output["info"], dict) else json.loads(output["info"])
        answers = [m["content"] for m in output["completion"] if m["role"] == "assistant"]
        total, used, outcome = _replay(POINTS, env_kwargs, info["reset_seed"], answers)
        assert outcome == "correct" and used == len(answers) == 2
        assert output["reward"] == pytest.approx(total)
        calls += len(answers)
    assert policy.calls == calls
