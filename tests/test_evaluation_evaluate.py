"""`evaluate`: success with intervals, resuming, truncated files, determinism, policy failures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from openvirl.envs.points.dataset import episode_seed, iter_hands
from openvirl.envs.points.env import GeneralPointsEnv
from openvirl.evaluation import EvalConfig, evaluate, get_task, read_trajectories
from openvirl.evaluation.tasks import UnknownTaskError, episode_seeds
from openvirl.policies.base import PolicyError, Request, Usage
from openvirl.policies.oracle import OraclePolicy


def config(tmp_path: Path, **options: Any) -> EvalConfig:
    options.setdefault("out", tmp_path / "run")
    defaults = {"progress": False, "report": False, "image_size": 128, "batch_size": 4}
    return EvalConfig(**{**defaults, **options})


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


class FlakyPolicy:
    """The oracle (one wrong try first) that fails for good after `calls_ok` calls."""

    name = "oracle"

    def __init__(self, calls_ok: int):
        self.inner = OraclePolicy(wrong_attempts=1)
        self.calls_ok = calls_ok
        self.calls = 0

    def act(self, requests: Sequence[Request]) -> list[str]:
        self.calls += 1
        if self.calls > self.calls_ok:
            raise PolicyError("server down after 3 retries")
        return self.inner.act(requests)


def test_oracle_solves_everything_and_random_rarely(tmp_path: Path) -> None:
    oracle = evaluate(config(tmp_path, policy="oracle", episodes=30, out=tmp_path / "o"))
    random = evaluate(config(tmp_path, policy="random", episodes=60, out=tmp_path / "r"))
    assert oracle.complete and oracle.metrics["eval/success"] == 1.0
    assert random.metrics["eval/success"] < 0.2
    for run in (oracle, random):
        low, high = run.metrics["eval/success_ci95"]
        assert low <= run.metrics["eval/success"] <= high
        assert len(run.records) == run.metrics["eval/episodes"]
    assert oracle.metrics["eval/success_ci95"][0] > 0.85
    saved = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert saved["complete"] is True and saved["eval/success"] == 1.0
    assert saved["eval/wall_s"] > 0 and 0 <= saved["eval/model_time_share"] <= 1


def test_killed_run_resumes_and_keeps_finished_episodes(tmp_path: Path) -> None:
    cfg = config(tmp_path, episodes=10)
    first = evaluate(cfg, FlakyPolicy(calls_ok=5))
    assert not first.complete and "server down" in (first.error or "")
    kept = {r["index"]: r for r in lines(tmp_path / "run" / "trajectories.jsonl")}
    assert 0 < len(kept) < 10
    partial = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert partial["complete"] is False and partial["eval/episodes"] == len(kept)

    second = evaluate(cfg, OraclePolicy(wrong_attempts=1))
    assert second.complete and second.error is None
    final = lines(tmp_path / "run" / "trajectories.jsonl")
    assert [r["index"] for r in final] == list(range(10))
    for record in final:
        if record["index"] in kept:
            assert record == kept[record["index"]]
    assert second.metrics["eval/success"] == 1.0 and second.metrics["eval/mean_attempts"] == 2.0
    sessions = lines(tmp_path / "run" / "sessions.jsonl")
    assert [s["episodes"] for s in sessions] == [len(kept), 10 - len(kept)]


def test_truncated_last_line_is_dropped_and_replayed(tmp_path: Path) -> None:
    cfg = config(tmp_path, episodes=6, policy="oracle")
    evaluate(cfg)
    path = tmp_path / "run" / "trajectories.jsonl"
    whole = lines(path)
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # killed in the middle of the last record
    assert len(read_trajectories(path, repair=False)) == 5
    rerun = evaluate(cfg)
    again = lines(path)
    assert [r["index"] for r in again] == list(range(6))
    strip = lambda r: {k: v for k, v in r.items() if k != "wall_s"}  # noqa: E731
    assert [strip(r) for r in again] == [strip(r) for r in whole]
    assert rerun.complete and len(rerun.records) == 6


def test_same_seed_same_episodes_for_every_policy(tmp_path: Path) -> None:
    runs = [
        evaluate(config(tmp_path, policy=p, episodes=8, split="rule-ood", out=tmp_path / p))
        for p in ("oracle", "random")
    ]
    a, b = (
        [(r["seed"], r["prompt"], r["reset_info"]["card_codes"]) for r in run.records]
        for run in runs
    )
    assert a == b
    other = evaluate(config(tmp_path, episodes=8, split="rule-ood", seed=7, out=tmp_path / "s7"))
    assert [r["prompt"] for r in other.records] != [p for _, p, _ in a]


def test_evaluation_hands_are_the_dataset_test_hands(tmp_path: Path) -> None:
    spec = get_task("gp-l", "id")
    assert episode_seeds(spec, 42, range(5)) == [episode_seed(42, "test", i) for i in range(5)]
    run = evaluate(config(tmp_path, episodes=5))
    env = GeneralPointsEnv(rule="id", suits="mixed")
    dataset = [info["card_codes"] for _, info, _ in iter_hands(env, "test", 5, 42)]
    assert [r["reset_info"]["card_codes"] for r in run.records] == dataset
    assert all(r["reset_info"]["split"] == "test" for r in run.records)


class MisreadPolicy:
    """Reads a wrong card on the first attempt, then answers like the oracle."""

    name = "misread"

    def act(self, requests: Sequence[Request]) -> list[str]:
        out = []
        for request in requests:
            info = request["info"]
            payload = json.loads(info["expert_answer"])
            if info["attempt"] == 0:
                payload["cards"][0] = "A" if payload["cards"][0] != "A" else "2"
            out.append(json.dumps(payload))
        return out


def test_recognition_accuracy_for_a_policy_that_misreads(tmp_path: Path) -> None:
    run = evaluate(config(tmp_path, task="gp-vl", split="id", episodes=6), MisreadPolicy())
    m = run.metrics
    assert m["eval/recognition_accuracy_first"] == 0.0
    assert m["eval/recognition_accuracy"] == pytest.approx(0.5)
    assert m["eval/success"] == 1.0 and m["eval/outcomes/wrong_cards"] == pytest.approx(0.5)
    images = [r["image"] for r in run.records]
    assert all(img and (tmp_path / "run" / img).is_file() for img in images)
    assert "base64" not in (tmp_path / "run" / "trajectories.jsonl").read_text()


class CollapsedPolicy:
    """Writes J/Q/K as 10 (the training rule) in both the numbers and the formula."""

    name = "collapsed"

    def act(self, requests: Sequence[Request]) -> list[str]:
        out = []
        for request in requests:
            cards = request["info"]["cards"]
            numbers = [
                10 if c in ("J", "Q", "K") else request["info"]["numbers"][i]
                for i, c in enumerate(cards)
            ]
            formula = "+".join(str(n) for n in numbers) + "=24"
            out.append(json.dumps({"cards": cards, "number": numbers, "formula": formula}))
        return out


def test_rule_collapse_rate_under_rule_ood(tmp_path: Path) -> None:
    collapsed = evaluate(
        config(tmp_path, split="rule-ood", episodes=8, out=tmp_path / "c"), CollapsedPolicy()
    )
    assert collapsed.metrics["eval/rule_collapse_rate"] == 1.0
    assert collapsed.metrics["eval/rule_collapse_first"] == 1.0
    assert all(s["rule_collapse"] for r in collapsed.records for s in r["steps"])
    oracle = evaluate(config(tmp_path, split="rule-ood", episodes=8, out=tmp_path / "o"))
    assert oracle.metrics["eval/rule_collapse_rate"] == 0.0
    in_dist = evaluate(config(tmp_path, episodes=4, out=tmp_path / "i"), CollapsedPolicy())
    assert "eval/rule_collapse_rate" not in in_dist.metrics


class CountingPolicy:
    """Garbage text with token counters, like a model-backed policy."""

    name = "babbler"

    def __init__(self) -> None:
        self.total_usage = Usage()

    def act(self, requests: Sequence[Request]) -> list[str]:
        self.total_usage.add(Usage(completion_tokens=3 * len(requests), requests=len(requests)))
        return ["<<not an answer>> {", "", "x" * 10_000, '{"formula": "__import__(\'os\')"}'][
            : len(requests)
        ] + ["?"] * max(0, len(requests) - 4)


def test_malformed_text_is_feedback_and_tokens_are_counted(tmp_path: Path) -> None:
    run = evaluate(config(tmp_path, episodes=4, max_attempts=2), CountingPolicy())
    assert run.complete and run.metrics["eval/success"] == 0.0
    assert run.metrics["eval/format_error_rate"] == 1.0
    assert run.metrics["eval/tokens_generated"] == 3 * 8
    assert all(s["feedback"] for r in run.records for s in r["steps"])


def test_unknown_task_split_and_policy_list_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(UnknownTaskError, match=r"valid tasks: gp-l, gp-vl.*Did you mean `gp-l`"):
        evaluate(config(tmp_path, task="gpl"))
    with pytest.raises(UnknownTaskError, match=r"valid splits: id, rule-ood\. Did you mean"):
        evaluate(config(tmp_path, split="visual-ood"))
    with pytest.raises(ValueError, match=r"Did you mean `random`.*oracle, random"):
        evaluate(config(tmp_path, policy="randon"))


def test_resume_refuses_a_folder_with_other_episodes(tmp_path: Path) -> None:
    evaluate(config(tmp_path, episodes=2))
    with pytest.raises(ValueError, match=r"`seed` 42 -> 1.*--no-resume"):
        evaluate(config(tmp_path, episodes=2, seed=1))
    fresh = evaluate(config(tmp_path, episodes=2, seed=1, resume=False))
    assert fresh.complete and all(
        r["seed"] == episode_seed(1, "test", r["index"]) for r in fresh.records
    )


def test_a_tiny_transformers_model_runs_batched(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from tiny_models import tiny_causal_lm

    path = tiny_causal_lm(tmp_path)
    cfg = config(
        tmp_path,
        policy=f"hf:{path}?device=cpu&precision=fp32",
        episodes=4,
        max_attempts=2,
        max_new_tokens=6,
        temperature=0.0,
    )
    run = evaluate(cfg)
    assert run.complete and run.metrics["eval/success"] == 0.0
    assert all(len(r["steps"]) == 2 for r in run.records)
    assert 0 < run.metrics["eval/tokens_generated"] <= 4 * 2 * 6
    assert 0 < run.metrics["eval/model_time_share"] < 1
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["policy"]["name"] == "tiny-causal-lm" and saved["config"]["max_new_tokens"] == 6
    assert saved["policy"]["precision"] in ("fp32", "reference")  # reference: no oneDNN here
