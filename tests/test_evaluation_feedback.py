"""`openvirl eval` with a model: progress per attempt, attempts saved as they are made,
answer-sized generation defaults and the few-shot prompt for base models (issue 20)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from openvirl.cli import app
from openvirl.envs.points.dataset import episode_seed
from openvirl.evaluation import EvalConfig, evaluate, get_task
from openvirl.evaluation.evaluate import ATTEMPTS, build_policy, few_shot_count, is_embedded_base
from openvirl.evaluation.tasks import FEW_SHOT_SEED, few_shot_messages
from openvirl.policies.base import PolicyError, Request
from openvirl.policies.oracle import OraclePolicy

runner = CliRunner()


def config(tmp_path: Path, **options: Any) -> EvalConfig:
    options.setdefault("out", tmp_path / "run")
    defaults = {"progress": False, "report": False, "batch_size": 4}
    return EvalConfig(**{**defaults, **options})


class WrongThenDown:
    """Answers wrongly for `calls_ok` calls, then fails for good (a server that went away)."""

    name = "flaky"

    def __init__(self, calls_ok: int):
        self.calls_ok = calls_ok
        self.calls = 0

    def act(self, requests: Sequence[Request]) -> list[str]:
        self.calls += 1
        if self.calls > self.calls_ok:
            raise PolicyError("server down after 3 retries")
        return ['{"cards": [], "number": [1, 1], "formula": "1+1=24"}' for _ in requests]


class Recording(OraclePolicy):
    """The oracle, remembering the attempt number of every request it is asked."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[int] = []

    def act(self, requests: Sequence[Request]) -> list[str]:
        self.asked += [int(r["info"].get("attempt", 0)) for r in requests]
        return super().act(requests)


def test_a_stop_mid_episode_keeps_every_attempt_and_a_rerun_continues_there(tmp_path):
    """Once, nothing was saved until an episode ended: with every episode in flight, a stop
    after four rounds lost everything."""
    out = tmp_path / "run"
    first = evaluate(config(tmp_path, episodes=4, out=out), WrongThenDown(calls_ok=2))
    assert first.error is not None and first.records == []
    saved = [json.loads(line) for line in (out / ATTEMPTS).read_text().splitlines()]
    assert sorted((r["index"], r["attempt"]) for r in saved) == [
        (i, k) for i in range(4) for k in (1, 2)
    ]
    oracle = Recording()
    second = evaluate(config(tmp_path, episodes=4, out=out), oracle)
    assert second.complete and second.metrics["eval/success"] == 1.0
    assert oracle.asked == [2, 2, 2, 2]  # the two saved attempts were replayed, not re-asked
    assert all(r["attempts"] == 3 for r in second.records)
    assert [s["outcome"] for s in second.records[0]["steps"]][:2] != ["correct", "correct"]
    assert not (out / ATTEMPTS).exists()  # every episode is in trajectories.jsonl now
    config_json = json.loads((out / "config.json").read_text())
    assert config_json["resumed_attempts"] == 8


def test_progress_counts_attempts_with_the_time_left(tmp_path):
    out = tmp_path / "run"
    args = ["eval", "--policy", "oracle?wrong_attempts=2", "--episodes", "3", "--out", str(out)]
    result = runner.invoke(app, [*args, "--no-report"])
    assert result.exit_code == 0, result.output
    assert "gp-l/id · oracle: 0/3 episodes, 0 solved, up to 15 attempts to go" in result.output
    assert "9/9 attempts, 3/3 episodes, 3 solved" in result.output and "left" in result.output


@pytest.fixture(scope="module")
def plain_model(tmp_path_factory) -> Path:
    pytest.importorskip("transformers")
    from tiny_models import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("models"), name="plain", chat_template=None)


def test_generating_policies_get_an_answer_sized_budget(plain_model, tmp_path):
    spec = f"hf:{plain_model}"
    assert build_policy(config(tmp_path, policy=spec)).options["max_new_tokens"] == 96
    assert get_task("gp-l", "id").answer_tokens == 96
    own = build_policy(config(tmp_path, policy=f"{spec}?max_new_tokens=7"))
    assert own.options["max_new_tokens"] == 7
    asked = build_policy(config(tmp_path, policy=spec, max_new_tokens=5))
    assert asked.options["max_new_tokens"] == 5


def test_few_shot_examples_are_solved_training_hands():
    spec = get_task("gp-l", "rule-ood")
    messages = few_shot_messages(spec, 3)
    assert [m["role"] for m in messages] == ["user", "assistant"] * 3
    test_prompts = set()
    from openvirl.evaluation.tasks import make_env

    env = make_env(spec)
    for i in range(50):
        obs, _ = env.reset(seed=episode_seed(42, "test", i))
        test_prompts.add(obs["prompt"])
    for user, answer in zip(messages[::2], messages[1::2], strict=True):
        prompt = user["content"][0]["text"]
        assert "'K' count as 11, 12 and 13" in prompt  # the task's own rule
        assert prompt not in test_prompts
        reply = json.loads(answer["content"][0]["text"])
        assert reply["formula"].endswith("=24")
    assert FEW_SHOT_SEED == 0 and few_shot_messages(spec, 0) == []
    with pytest.raises(ValueError, match="gp-l"):
        few_shot_messages(get_task("gp-vl", "id"), 2)


def test_render_puts_the_examples_first_and_evaluation_records_them(plain_model, tmp_path):
    from openvirl.policies.base import text_message
    from openvirl.policies.hf import HFPolicy

    policy = HFPolicy.from_pretrained(plain_model, max_new_tokens=4)
    shots = few_shot_messages(get_task("gp-l", "id"), 2)
    question = [text_message("user", "Cards: 3 3 8 8")]
    plain = policy.render(question)
    policy.examples = shots
    assert policy.render(question) == HFPolicy.render(
        HFPolicy.from_pretrained(plain_model), [*shots, *question]
    )
    assert policy.render(question).endswith(plain) and len(policy.render(question)) > len(plain)
    with pytest.raises(ValueError, match="list of chat messages"):
        policy.examples = 3
    policy.examples = None

    run = evaluate(config(tmp_path, policy=f"hf:{plain_model}", episodes=2, few_shot=2), policy)
    saved = json.loads((run.out / "config.json").read_text())["prompt"]
    assert saved["few_shot"] == 2 and len(saved["examples"]) == 4
    assert saved["examples"][1]["role"] == "assistant"
    assert policy.examples == []  # the run's examples do not stick to a shared policy


def test_the_embedded_base_model_gets_the_few_shot_prompt_by_default(
    plain_model, tmp_path, monkeypatch
):
    from openvirl.policies import embedded

    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path / "cache"))
    folder = embedded.embedded_model_dir()
    shutil.rmtree(folder)
    shutil.copytree(plain_model, folder)
    (folder / embedded.MARKER_FILE).write_text(json.dumps({"dtype": "float32"}))
    assert is_embedded_base("hf:gemma-3-270m")
    assert not is_embedded_base("hf:gemma-3-270m?adapter=runs/sft/lora")
    assert few_shot_count(EvalConfig(policy="hf:gemma-3-270m"), get_task("gp-l", "id")) == 3
    assert few_shot_count(EvalConfig(policy="hf:gemma-3-270m"), get_task("gp-vl", "id")) == 0
    assert few_shot_count(EvalConfig(policy="oracle"), get_task("gp-l", "id")) == 0
    out = tmp_path / "run"
    args = ["eval", "--policy", "hf:gemma-3-270m", "--episodes", "2", "--max-attempts", "1"]
    result = runner.invoke(app, [*args, "--out", str(out), "--no-report", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "3 solved training hands before each hand" in result.output
    saved = json.loads((out / "config.json").read_text())
    assert saved["prompt"]["few_shot"] == 3 and saved["generation"]["max_new_tokens"] == 96
    off = runner.invoke(app, [*args, "--out", str(tmp_path / "off"), "--few-shot", "0"])
    assert off.exit_code == 0, off.output
    assert json.loads((tmp_path / "off" / "config.json").read_text())["prompt"]["few_shot"] == 0
    bad = runner.invoke(app, ["eval", "--policy", "oracle", "--few-shot", "2", "--episodes", "1"])
    assert bad.exit_code == 2 and "needs an hf policy" in bad.output


def test_an_hf_policy_on_a_cpu_plays_few_episodes_at_once(plain_model, tmp_path):
    """Every episode in flight at once made a CPU round take minutes with no feedback."""
    import torch

    from openvirl.evaluation.evaluate import CPU_HF_BATCH, DEFAULT_BATCH, episodes_in_flight

    spec = f"hf:{plain_model}"
    if not torch.cuda.is_available():
        assert episodes_in_flight(EvalConfig(policy=spec)) == CPU_HF_BATCH == 4
        assert build_policy(EvalConfig(policy=spec)).batch_size == CPU_HF_BATCH
    assert episodes_in_flight(EvalConfig(policy=f"{spec}?device=cpu")) == CPU_HF_BATCH
    assert episodes_in_flight(EvalConfig(policy="oracle")) == DEFAULT_BATCH == 16
    assert episodes_in_flight(EvalConfig(policy=spec, batch_size=9)) == 9
