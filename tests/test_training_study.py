"""`openvirl study --preset smoke` end to end on a tiny model: stages, report, resume."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from openvirl.training.study import (  # noqa: E402
    _ppo_config,
    distinct_problem_seeds,
    load_study_config,
    restart_stale_sft_branch,
    run_study,
    sft_run_steps,
)
from tiny_models import tiny_causal_lm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_evaluation_plays_each_distinct_problem_once():
    from openvirl.training.data import make_env_factory

    quick = load_study_config("gp-l", "quick")
    assert quick.eval_max_attempts == quick.train_max_attempts  # the training budget
    make = make_env_factory("openvirl/GeneralPoints-v0", quick.env_kwargs("ood", "test", 2))
    seeds, keys, dealt = distinct_problem_seeds(make, 42, 200, 10, "ranks")
    # the 3-card OOD test split holds far fewer than 200 problems: each is kept once
    assert len(keys) == len(set(keys)) == len(seeds) < 200 and dealt == 2000
    again = distinct_problem_seeds(make, 42, 200, 10, "ranks")
    assert again == (seeds, keys, dealt)
    few = distinct_problem_seeds(make, 42, 5, 10, "ranks")
    assert few[1] == keys[:5] and few[2] < 50


def test_rule_ood_problems_all_plays_every_ood_rule_hand():
    """`rule_ood_problems=all` widens rule OOD to every solvable OOD-rule hand (no stage trains
    on that rule) and leaves ID and training on their hashed sides."""
    from itertools import combinations_with_replacement

    from openvirl.envs.points.solver import solve
    from openvirl.training.data import make_env_factory
    from openvirl.training.study import _problem_origin

    every = load_study_config("gp-l", "quick")
    held = load_study_config("gp-l", "quick", ["rule_ood_problems=held-out"])
    assert every.rule_ood_problems == "all" and held.rule_ood_problems == "held-out"
    assert every.env_kwargs("ood", "test", 2)["split"] is None
    assert held.env_kwargs("ood", "test", 2)["split"] == "test"
    for side in ("train", "test"):  # ID evaluation and every training stage keep the split
        assert every.split_kwargs("id", side, 2)["split"] == side
        assert every.split_kwargs("train", "train", 1)["split"] == "train"
    found = {}
    for name, study in (("all", every), ("held-out", held)):
        make = make_env_factory("openvirl/GeneralPoints-v0", study.env_kwargs("ood", "test", 2))
        _, keys, _ = distinct_problem_seeds(make, 42, 200, 30, "ranks")
        found[name] = set(keys)
    # every rank multiset with a face card that reaches 12 under J/Q/K = 11/12/13
    solvable = [
        ranks
        for ranks in combinations_with_replacement(range(1, 14), 3)
        if max(ranks) > 10 and solve(list(ranks), 12)
    ]
    assert len(found["all"]) == len(solvable) > 4 * len(found["held-out"])
    assert found["held-out"] < found["all"]
    assert "never trained" in _problem_origin(every, "ood")
    assert _problem_origin(every, "id") == _problem_origin(held, "ood") == "held-out"
    with pytest.raises(ValueError, match="rule_ood_problems"):
        load_study_config("gp-l", "smoke", ["rule_ood_problems=some"])


def test_presets_load_and_validate():
    quick = load_study_config("gp-l", "quick")
    paper = load_study_config("gp-l", "paper")
    assert quick.model == "gemma-3-270m" and quick.lora and quick.eval_episodes >= 200
    assert paper.model == "meta-llama/Llama-3.2-11B-Vision-Instruct" and not paper.lora
    assert paper.ppo["learning_rate"] == 1e-6 and paper.ppo["grad_accum_steps"] == 1024
    assert paper.init_steps == 400 and paper.eval_episodes == 234
    # The quick preset's hands: easier (3 cards, target 12), held out by rank multiset, and
    # every stage (SFT data, PPO episodes, evaluation) deals from the same knobs.
    for split in ("train", "test"):
        kwargs = quick.env_kwargs("id", split, 1)
        assert kwargs["n_cards"] == 3 and kwargs["split_by"] == "ranks" and kwargs["split"] == split
        env = gym.make("openvirl/GeneralPoints-v0", **kwargs)
        _, info = env.reset(seed=0)
        assert len(info["cards"]) == 3 and info["split"] == split and info["target"] == 12
    assert "split_by" not in paper.env_kwargs("id", "test", 5)  # the strict default
    with pytest.raises(ValueError, match="split_by"):
        load_study_config("gp-l", "smoke", ["split_by=suits"])
    with pytest.raises(ValueError, match="preset"):
        load_study_config("gp-l", "huge")
    with pytest.raises(ValueError, match="eval_updates"):
        load_study_config("gp-l", "smoke", ["eval_updates=[9]"])
    # One precision for evaluation and rollouts, checked before anything loads.
    with pytest.raises(ValueError, match="precision"):
        load_study_config("gp-l", "smoke", ["precision=bf17"])
    fast = load_study_config("gp-l", "quick", ["precision=bf16"])
    ppo = _ppo_config(fast, Path("init"), 0.0, Path("rl"), 1, 1e-5)
    assert fast.precision == "bf16" and ppo.precision == "bf16"
    assert _ppo_config(quick, Path("init"), 0.0, Path("rl"), 1, 1e-5).precision is None


def test_smoke_study_runs_end_to_end_and_resumes(tmp_path):
    model = tiny_causal_lm(tmp_path / "models")
    out = tmp_path / "study"
    overrides = [f"model={model}", "eval_episodes=6", "lr_sweep=[0.5,2]", "lr_sweep_episodes=3"]
    overrides.append("rule_ood_problems=all")
    config = load_study_config("gp-l", "smoke", overrides, out=out)
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
    assert "ΔOOD vs Init" in text and "rule collapse" in text and "OOD rule following" in text
    # Honest statistics: distinct problems per split, the method, paired RL-vs-SFT rows.
    for rule in ("id", "ood"):
        split = payload["splits"][rule]
        assert 1 <= split["distinct_problems"] == split["episodes_per_checkpoint"] <= 6
    assert "bootstrap over problems" in payload["statistics"] and "Intervals:" in text
    # where the rule-OOD problems came from is stated in study.json and study.md
    assert payload["protocol"]["rule_ood_problems"] == "all"
    assert "never trained" in payload["splits"]["ood"]["problems_from"]
    assert payload["splits"]["id"]["problems_from"] == "held-out"
    assert "which no stage trains on" in payload["statistics"] and "never trained" in text
    assert len(payload["rl_vs_sft"]) == 2 and "RL minus SFT" in text
    assert (
        payload["protocol"]["data_seeds"]["rl_branch"]
        != payload["protocol"]["data_seeds"]["init_sft"]
    )
    # The learning-rate rule: a sweep at the first compute point on ID validation problems
    rule = payload["learning_rate_rule"]
    assert "validation" in rule["rule"] and len(rule["trials"]) == 4
    assert all(1 <= t["validation_problems"] <= 3 for t in rule["trials"])
    for branch in ("rl", "sft"):
        tried = {t["learning_rate"] for t in rule["trials"] if t["branch"] == branch}
        assert rule["chosen"][branch] in tried
    assert payload["stages_s"]["lr_sweep_s"] > 0
    for d in payload["deltas"]:
        low, high = d["delta_ood_ci95"]
        assert high > low  # never a degenerate [0, 0], even when nothing changed
        if d["delta_ood"] == 0 and d["delta_ood_note"]:
            assert "no difference on any of" in d["delta_ood_note"]
    assert len(result.summary_lines()) == 2
    _viewer_opens_every_study_folder(out, result)
    # A rerun finds every stage complete and rebuilds the same report.
    again = run_study(config)
    assert [p.success for p in again.points] == [p.success for p in result.points]
    assert again.stages["init_s"] < 5


def _viewer_opens_every_study_folder(out, result):
    """The evaluation folders once had no config.json (the viewer said "config.json is
    missing, no metrics yet") and the training folders were not recognised."""
    from openvirl.viewer.runs import RunStore

    runs = {run.path.relative_to(out).as_posix(): run for run in RunStore([out]).runs()}
    evals = {k: r for k, r in runs.items() if k.startswith("eval/")}
    assert len(evals) == len(result.points)
    for run in evals.values():
        assert run.kind == "eval" and not run.problems, (run.path, run.problems)
        assert run.task == "gp-l" and run.split in ("id", "ood") and run.policy
        key, value, ci = run.headline()
        assert key == "eval/success" and value is not None and len(ci) == 2
    point = next(p for p in result.points if p.branch == "init" and p.rule == "id")
    assert evals["eval/init-init-id"].headline()[1] == point.success
    for stage in ("init", "rl"):
        assert runs[stage].kind == "training" and not runs[stage].problems, runs[stage].problems
        assert runs[stage].title.startswith(f"training {stage}")


def test_paper_preset_launches_stages_with_accelerate(tmp_path, monkeypatch):
    """The paper preset runs SFT and PPO through `accelerate launch` (8 GPUs, DeepSpeed)."""
    import subprocess

    from openvirl.training import study as study_module
    from openvirl.training.config import CONFIGS_DIR, load_config
    from openvirl.training.ppo import PPOConfig
    from openvirl.training.sft import SFTRunConfig

    config = load_study_config("gp-l", "paper", out=tmp_path)
    commands = []

    def fake_run(command, check):
        commands.append(command)
        out = tmp_path / "stage"
        (out / "summary.json").write_text('{"flops": {"flops": 1.0}}')

    monkeypatch.setattr(subprocess, "run", fake_run)
    sft = study_module._sft_config(config, output_dir=str(tmp_path / "stage"), max_steps=400)
    assert isinstance(sft, SFTRunConfig) and sft.learning_rate == 1e-6 and not sft.lora
    assert sft.deepspeed == "deepspeed/zero3.json" and sft.batch_size == 128
    study_module._run_training("sft", sft, config)
    ppo = PPOConfig(**{**config.ppo, "output_dir": str(tmp_path / "stage")})
    study_module._run_training("ppo", ppo, config)
    sft_cmd, ppo_cmd = commands
    assert sft_cmd[:4] == ["accelerate", "launch", "--num_processes", "8"]
    assert sft_cmd[-5:-1] == ["-m", "openvirl.training.cli", "sft", "--config"]
    assert str(CONFIGS_DIR / "deepspeed" / "zero2-ppo.json") in ppo_cmd
    assert load_config(PPOConfig, ppo_cmd[-1]).grad_accum_steps == 1024


def test_readme_names_the_model_the_smoke_preset_trains():
    """The README once called the smoke preset "a tiny model" while it trains Gemma-3-270M."""

    from openvirl.policies.embedded import is_embedded_name

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("`--preset smoke`")
    bullet = readme[start : readme.index("\n\n", start)]
    model = load_study_config("gp-l", "smoke").model
    assert is_embedded_name(model)
    assert "Gemma-3-270M" in bullet and "`--model`" in bullet


def test_seeds_repeat_the_study_and_report_the_spread(tmp_path, monkeypatch):
    """`--seeds 3`: one folder per seed, mean and spread across seeds beside each seed."""

    from openvirl.training import study as study_module
    from openvirl.training.study import EvalPoint, StudyResult, run_seeds

    calls = []

    def fake_run_study(config):
        calls.append((config.seed, config.folder))
        k = config.seed - 42
        points = [
            EvalPoint(b, pt, rule, g, 0.1 * (k + 1) + (0.2 if b == "rl" else 0), [0, 1], [], {})
            for b, pt, g in (("init", "init", 1.0), ("rl", "u1", 2.0), ("sft", f"s{3 + k}", 2.0))
            for rule in ("id", "ood")
        ]
        return StudyResult(out=Path(config.folder), points=points, deltas=[], stages={})

    monkeypatch.setattr(study_module, "run_study", fake_run_study)
    config = load_study_config("gp-l", "smoke", out=tmp_path / "s")
    results, summary = run_seeds(config, 3)
    assert [c[0] for c in calls] == [42, 43, 44] and len(results) == 3
    assert [c[1] for c in calls] == [tmp_path / "s" / f"seed-{s}" for s in (42, 43, 44)]
    rl_id = next(r for r in summary["rows"] if r["branch"] == "rl" and r["rule"] == "id")
    assert rl_id["mean"] == pytest.approx(0.4) and rl_id["sd"] == pytest.approx(0.1)
    # SFT points are matched by rank, though their step counts differ between seeds
    sft = next(r for r in summary["rows"] if r["branch"] == "sft" and r["rule"] == "ood")
    assert sft["n_seeds"] == 3 and {v["point"] for v in sft["per_seed"].values()} == {
        "s3",
        "s4",
        "s5",
    }
    text = (tmp_path / "s" / "seeds.md").read_text()
    assert "mean success" in text and "seed 44" in text and "seed-43/study.md" in text
    assert (tmp_path / "s" / "seeds.json").is_file()
    with pytest.raises(ValueError, match="seeds"):
        run_seeds(config, 0)


def test_sft_branch_restarts_when_a_resumed_study_asks_for_an_earlier_point(tmp_path):
    sft, evals = tmp_path / "sft", tmp_path / "eval"
    run = sft / "run"

    def trained(steps: int, schedule: int) -> None:
        for folder in (run / "final", sft / "points" / f"step-{steps:06d}", evals / "init-x"):
            folder.mkdir(parents=True, exist_ok=True)
        (evals / f"sft-s{steps}-id").mkdir(exist_ok=True)
        (run / "summary.json").write_text(json.dumps({"steps": steps}), encoding="utf-8")
        (run / "config.yaml").write_text(f"schedule_steps: {schedule}\n", encoding="utf-8")

    assert sft_run_steps(run) is None and not restart_stale_sft_branch(sft, evals, 5, 5)
    trained(43, 43)
    assert sft_run_steps(run) == 43
    assert not restart_stale_sft_branch(sft, evals, 43, 43)
    assert run.exists()  # at its point on its schedule: resuming continues it
    # Past the point: the later weights must not be labelled step 41.
    assert restart_stale_sft_branch(sft, evals, 41, 41)
    assert not run.exists() and not (sft / "points").exists()
    assert not (evals / "sft-s43-id").exists() and (evals / "init-x").exists()
    # Before the point but begun on another schedule: two schedules must not mix.
    trained(41, 41)
    assert restart_stale_sft_branch(sft, evals, 43, 43) and not run.exists()
    trained(20, 43)  # a first segment of the same schedule: continue it
    assert not restart_stale_sft_branch(sft, evals, 43, 43) and run.exists()
    (run / "summary.json").write_text("{not json", encoding="utf-8")
    assert sft_run_steps(run) is None
