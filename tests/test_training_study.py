"""`openvirl study --preset smoke` end to end on a tiny model: stages, report, resume."""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from openvirl.training.study import (  # noqa: E402
    load_study_config,
    paired_delta,
    run_study,
)
from tiny_models import tiny_causal_lm  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_paired_delta_on_the_same_hands():
    before = [True, False, False, True, False, False, False, False]
    after = [True, True, False, True, True, False, False, False]
    mean, low, high = paired_delta(after, before)
    assert mean == pytest.approx(2 / 8)
    assert low < mean < high
    assert paired_delta(before, before) == (0.0, 0.0, 0.0)


def test_presets_load_and_validate():
    quick = load_study_config("gp-l", "quick")
    paper = load_study_config("gp-l", "paper")
    assert quick.model == "gemma-3-270m" and quick.lora and quick.eval_episodes >= 200
    assert paper.model == "meta-llama/Llama-3.2-11B-Vision-Instruct" and not paper.lora
    assert paper.ppo["learning_rate"] == 1e-6 and paper.ppo["grad_accum_steps"] == 128
    assert paper.init_steps == 400 and paper.eval_episodes == 234
    with pytest.raises(ValueError, match="preset"):
        load_study_config("gp-l", "huge")
    with pytest.raises(ValueError, match="eval_updates"):
        load_study_config("gp-l", "smoke", ["eval_updates=[9]"])


def test_smoke_study_runs_end_to_end_and_resumes(tmp_path):
    model = tiny_causal_lm(tmp_path / "models")
    out = tmp_path / "study"
    config = load_study_config("gp-l", "smoke", [f"model={model}", "eval_episodes=6"], out=out)
    result = run_study(config)
    for name in ("study.json", "study.md", "study.png", "study-config.yaml"):
        assert (out / name).is_file(), name
    payload = json.loads((out / "study.json").read_text())
    branches = {(p["branch"], p["point"], p["rule"]) for p in payload["points"]}
    assert ("init", "init", "id") in branches and ("init", "init", "ood") in branches
    assert {b for b, _, _ in branches} == {"init", "rl", "sft"}
    # The SFT branch stops at the RL branch's compute points (within one SFT step).
    rl = sorted(p["gflops"] for p in payload["points"] if p["branch"] == "rl" and p["rule"] == "id")
    sft = sorted(
        p["gflops"] for p in payload["points"] if p["branch"] == "sft" and p["rule"] == "id"
    )
    step = (sft[-1] - payload["init_gflops"]) / int(payload["deltas"][-1]["point"][1:])
    for a, b in zip(rl, sft, strict=True):
        assert abs(a - b) <= step
    assert all(
        p["gflops"] > payload["init_gflops"] for p in payload["points"] if p["branch"] != "init"
    )
    text = (out / "study.md").read_text()
    assert "ΔOOD vs Init" in text and "rule collapse" in text
    assert len(result.summary_lines()) == 2
    # A rerun finds every stage complete and rebuilds the same report.
    again = run_study(config)
    assert [p.success for p in again.points] == [p.success for p in result.points]
    assert again.stages["init_s"] < 5
