"""Per-answer seeds (issue 17): an answer depends on its episode seed and attempt only, so a
resumed evaluation equals an uninterrupted one, for the random policy and for `hf` sampling."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from openvirl.evaluation import EvalConfig, evaluate, read_trajectories
from openvirl.policies.base import answer_seed, mix_seed, text_message
from openvirl.policies.random import RandomPolicy

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from openvirl.policies.hf import HFPolicy  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402

PROMPTS = ["Cards: ['K', '3', '7', 'Q']. Reach 24.", "Turn left", "0123", "north 120 m"]


@pytest.fixture(scope="module")
def causal_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


def _requests(prompts, seeds):
    return [
        {"messages": [text_message("user", p)], "info": {}, "seed": s}
        for p, s in zip(prompts, seeds, strict=True)
    ]


def test_answer_seed_is_stable_and_spread():
    assert answer_seed(42, 0) == answer_seed(42, 0)
    seeds = {answer_seed(e, a) for e in range(50) for a in range(5)}
    assert len(seeds) == 250 and all(0 <= s < 2**63 for s in seeds)
    assert mix_seed(-1, 10**30) >= 0  # any sign or size


def test_hf_sampling_per_row_ignores_batch_mates_and_call_count(causal_path):
    policy = HFPolicy.from_pretrained(
        causal_path, temperature=1.5, top_k=50, top_p=0.95, max_new_tokens=10
    )
    seeds = [11, 22, 33, 44]
    together = policy.act(_requests(PROMPTS, seeds))
    # Other calls before, other rows beside, another order: each row's answer is the same.
    policy.act(_requests(PROMPTS[:1], [999]))
    alone = [policy.act(_requests([p], [s]))[0] for p, s in zip(PROMPTS, seeds, strict=True)]
    reversed_ = policy.act(_requests(PROMPTS[::-1], seeds[::-1]))[::-1]
    assert together == alone == reversed_
    other = policy.act(_requests(PROMPTS, [s + 1 for s in seeds]))
    assert other != together  # the seed does steer sampling
    assert len(set(policy.act(_requests([PROMPTS[1]] * 4, seeds)))) > 1
    state = torch.get_rng_state()
    policy.act(_requests(PROMPTS, seeds))
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


class _DiesAfter:
    """A policy wrapper that raises (like a killed process) after `calls` calls."""

    def __init__(self, inner, calls):
        self.inner, self.calls, self.name = inner, calls, inner.name

    def act(self, requests):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.inner.act(requests)


def _strip(records):
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in records]


@pytest.mark.parametrize(("task", "calls"), [("gp-l", 8), ("nav-l", 2)])
def test_resumed_random_run_equals_an_uninterrupted_one(
    tmp_path: Path, task: str, calls: int
) -> None:
    options = {"task": task, "episodes": 12, "progress": False, "report": False}
    clean = evaluate(EvalConfig(**options, batch_size=5, out=tmp_path / "clean"), RandomPolicy())
    cfg = EvalConfig(**options, batch_size=3, out=tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg, _DiesAfter(RandomPolicy(), calls=calls))
    partial = read_trajectories(tmp_path / "resumed" / "trajectories.jsonl", repair=False)
    assert 0 < len(partial) < 12
    resumed = evaluate(cfg, RandomPolicy())  # a fresh process: a new policy, counters at zero
    assert resumed.complete
    assert _strip(resumed.records) == _strip(clean.records)
    saved = (tmp_path / "resumed" / "trajectories.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in saved] == list(range(12))


def test_resumed_hf_sampling_run_equals_an_uninterrupted_one(tmp_path: Path, causal_path) -> None:
    def policy():
        return HFPolicy.from_pretrained(causal_path, temperature=1.0, max_new_tokens=6, seed=3)

    options = {"task": "gp-l", "episodes": 6, "progress": False, "report": False}
    options["max_attempts"] = 2
    clean = evaluate(EvalConfig(**options, batch_size=4, out=tmp_path / "clean"), policy())
    cfg = EvalConfig(**options, batch_size=2, out=tmp_path / "resumed")
    with pytest.raises(KeyboardInterrupt):
        evaluate(cfg, _DiesAfter(policy(), calls=3))
    assert 0 < len(read_trajectories(tmp_path / "resumed" / "trajectories.jsonl")) < 6
    resumed = evaluate(cfg, policy())
    assert _strip(resumed.records) == _strip(clean.records)
    answers = [s["action"] for r in clean.records for s in r["steps"]]
    assert len(set(answers)) > 1  # it did sample
