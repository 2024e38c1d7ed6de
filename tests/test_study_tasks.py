"""`openvirl study` on the four paper tasks: registry, presets, model checks, `--task all`."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from typer.testing import CliRunner  # noqa: E402

from openvirl.cli import app  # noqa: E402
from openvirl.training.study import load_study_config  # noqa: E402
from openvirl.training.study_tasks import STUDY_TASKS, navigation_problems  # noqa: E402
from tiny_models import tiny_causal_lm, tiny_llava  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return tiny_causal_lm(folder), tiny_llava(folder)


def test_every_task_has_three_presets_with_its_splits_and_envs():
    assert list(STUDY_TASKS) == ["gp-l", "gp-vl", "nav-l", "nav-vl"]
    expected = {
        "gp-l": ["id", "ood"],
        "gp-vl": ["id", "ood", "visual"],
        "nav-l": ["id", "ood"],
        "nav-vl": ["id", "visual"],
    }
    for task, splits in expected.items():
        for preset in ("smoke", "quick", "paper"):
            config = load_study_config(task, preset)
            if not (task == "nav-vl" and preset == "paper"):
                assert config.splits == splits, (task, preset)
    # GP-VL: black suits to train and for ID / rule OOD, red suits for visual OOD
    vl = load_study_config("gp-vl", "smoke")
    assert vl.split_kwargs("train", "train", 2)["suits"] == "black"
    assert vl.split_kwargs("ood", "test", 2)["suits"] == "black"
    assert vl.split_kwargs("ood", "test", 2)["rule"] == "ood"
    assert vl.split_kwargs("visual", "test", 2)["suits"] == "red"
    assert vl.split_kwargs("visual", "test", 2)["rule"] == "id"
    # the quick GP-VL preset plays every OOD-rule hand; visual OOD keeps the held-out side
    quick_vl = load_study_config("gp-vl", "quick")
    assert quick_vl.split_kwargs("ood", "test", 2)["split"] is None
    assert quick_vl.split_kwargs("visual", "test", 2)["split"] == "test"
    # Navigation: train routes absolute, ID absolute, rule OOD relative, visual OOD new cities
    nav = load_study_config("nav-l", "smoke", ["splits=[id,ood,ood-hard]"])
    presets = {s: nav.split_kwargs(s, "test", 2)["preset"] for s in nav.splits}
    assert presets == {"id": "id", "ood": "rule-ood", "ood-hard": "rule-ood-hard"}
    assert nav.split_kwargs("train", "train", 2)["preset"] == "train"
    assert nav.split_kwargs("id", "train", 2)["preset"] == "train"  # LR-sweep validation routes
    env = gym.make("openvirl/Navigation-v0", **nav.split_kwargs("ood", "test", 2))
    env.reset(seed=0, options={"route_index": 0})
    assert env.unwrapped.config.split == "test" and env.unwrapped.config.actions == "relative"
    # Paper presets: the paper's model, attempts, learning rates, problems (spec §5.6, §7.3)
    for task in STUDY_TASKS:
        paper = load_study_config(task, "paper")
        assert paper.model == "meta-llama/Llama-3.2-11B-Vision-Instruct" and not paper.lora
        assert paper.launcher and "accelerate launch" in paper.launcher["ppo"]
        gp = task.startswith("gp")
        assert paper.train_max_attempts == paper.eval_max_attempts == (5 if gp else 2)
        assert paper.eval_episodes == (234 if gp else 48)
        assert paper.rl_updates == (20 if gp else 15)
    assert load_study_config("nav-vl", "paper").ppo["learning_rate"] == 1e-7
    assert load_study_config("nav-l", "paper").init_steps == 25
    assert load_study_config("gp-vl", "paper").sft["learning_rate"] == 5e-7
    paper_vl = load_study_config("nav-vl", "paper")
    assert paper_vl.visual_routes == "visual-ood-virl" and "ood" in paper_vl.splits
    assert paper_vl.split_kwargs("visual", "test", 2)["preset"] == "visual-ood-virl"
    with pytest.raises(ValueError, match="splits"):
        load_study_config("gp-l", "smoke", ["splits=[ood,id]"])
    with pytest.raises(ValueError, match="no split 'visual'"):
        load_study_config("nav-l", "smoke", ["splits=[id,visual]"])
    with pytest.raises(ValueError, match="task"):
        load_study_config("nav-x", "smoke")


def test_navigation_problems_are_each_held_out_route_once_in_order():
    from openvirl.evaluation.stats import problem_key
    from openvirl.training.data import make_env_factory

    make = make_env_factory("openvirl/Navigation-v0", {"preset": "visual-ood", "visual": False})
    seeds, keys, routes = navigation_problems(make, 42, 100)
    assert routes == list(range(12)) and len(set(keys)) == len(keys) == len(seeds) == 12
    env = make()
    for i in (0, 7):
        _, info = env.reset(seed=seeds[i], options={"route_index": routes[i]})
        assert problem_key({"reset_info": info}) == keys[i]
    assert navigation_problems(make, 42, 3) == (seeds[:3], keys[:3], routes[:3])


def test_text_model_on_a_vl_task_fails_in_one_line_naming_the_option(tmp_path, models):
    text_model, _ = models
    runner = CliRunner()
    for task in ("gp-vl", "all"):
        out = tmp_path / task
        args = ["study", "--task", task, "--preset", "smoke", "--model", str(text_model)]
        result = runner.invoke(app, [*args, "--out", str(out)])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "--vl-model" in lines[0] and "text-only" in lines[0], lines
        assert "Traceback" not in result.output and not out.exists()  # nothing trained
    bad = runner.invoke(app, ["study", "--task", "gp-xl", "--preset", "smoke"])
    assert bad.exit_code == 2 and "gp-vl" in bad.output and "Traceback" not in bad.output


def test_all_tasks_smoke_write_studies_and_the_combined_report(tmp_path, models):
    """`--task all --preset smoke`: the four studies end to end (a tiny causal LM on the L
    tasks, a tiny LLaVA on the VL tasks) and all.json/all.md/all.png with every panel and row."""
    text_model, vlm = models
    out = tmp_path / "all"
    args = ["study", "--task", "all", "--preset", "smoke", "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--model", str(text_model), "--vl-model", str(vlm)])
    assert result.exit_code == 0, result.output
    table = _check_all_report(out, text_model, vlm)
    # Each task resumes: a rerun trains nothing and writes the same table
    again = CliRunner().invoke(app, [*args, "--model", str(text_model), "--vl-model", str(vlm)])
    assert again.exit_code == 0, again.output
    assert json.loads((out / "all.json").read_text())["table"] == table


def _check_all_report(out, text_model, vlm):
    """Every task's study.json and the combined report; returns the combined table."""
    for task in STUDY_TASKS:
        payload = json.loads((out / task / "study.json").read_text())
        config = payload["config"]
        assert config["model"] == str(vlm if task.endswith("vl") else text_model)
        assert payload["task"]["env_id"].endswith("Navigation-v0" if "nav" in task else "s-v0")
        navigation = task.startswith("nav")
        for summary in payload["splits"].values():
            assert summary["distinct_problems"] == summary["episodes_per_checkpoint"] >= 1
            assert "bootstrap over distinct problems" in summary["interval_method"]
            if navigation:
                assert summary["metrics"] == ["per_step_accuracy", "route_success"]
                assert "sum(correct steps) / sum(steps)" in summary["per_step_interval_method"]
            else:
                assert summary["metrics"] == ["success_at_k", "success_at_1"]
            checkpoints = {(p["branch"], p["point"]) for p in payload["points"]}
            assert len(summary["checkpoints"]) == len(checkpoints) >= 3  # Init, RL, SFT
            for numbers in summary["checkpoints"].values():
                for key in summary["metrics"]:
                    low, high = numbers[f"{key}_ci95"]
                    assert low <= numbers[key] <= high
        assert ("routes" if navigation else "multiset of card") in payload["statistics"]
        assert {p["branch"] for p in payload["points"]} == {"init", "rl", "sft"}
        for p in payload["points"]:
            if navigation:
                # the by-route estimate is the per-step metric over all steps
                assert p["per_step_accuracy"] == pytest.approx(
                    p["metrics"]["eval/per_step_accuracy"], nan_ok=True
                )
                assert p["headline"] == (
                    "success" if p["rule"] == "visual" else "per_step_accuracy"
                )
            else:
                assert p["headline"] == "success" and p["success_at_1"] <= p["success"]
            assert 0.0 <= p["metrics"]["eval/format_error_rate"] <= 1.0
        ood = [p for p in payload["points"] if p["rule"] == "ood"]
        if task.startswith("gp"):
            assert all("eval/rule_collapse_rate" in p["metrics"] for p in ood)
        if task == "gp-vl":
            assert all("eval/recognition_accuracy" in p["metrics"] for p in payload["points"])
        if task == "nav-vl":  # visual OOD: the unseen cities' routes
            visual = payload["task"]["splits"]["visual"]["env_kwargs"]
            assert visual["preset"] == "visual-ood" and visual["visual"] is True
        text = (out / task / "study.md").read_text()
        assert ("per-step acc." in text) == navigation and (out / task / "study.png").is_file()
        if task != "gp-l":
            assert ("landmark accuracy" if navigation else "card recognition") in text
    # the viewer opens the study's evaluation folders with each split's headline
    from openvirl.viewer.runs import RunStore

    runs = {r.path.name: r for r in RunStore([out / "nav-l"]).runs() if r.kind == "eval"}
    assert runs["init-init-ood"].headline()[0] == "eval/per_step_accuracy"
    assert runs["init-init-ood"].task == "nav-l"
    combined = json.loads((out / "all.json").read_text())
    rows = {(r["task"], r["split"]) for r in combined["table"]}
    assert rows == {
        ("gp-l", "id"),
        ("gp-l", "ood"),
        ("gp-vl", "id"),
        ("gp-vl", "ood"),
        ("gp-vl", "visual"),
        ("nav-l", "id"),
        ("nav-l", "ood"),
        ("nav-vl", "id"),
        ("nav-vl", "visual"),
    }
    panels = {(p["task"], p["split"]) for p in combined["panels"]}
    assert panels == rows  # Fig. 5 (4 ID panels), Fig. 6 (3 rule OOD), Fig. 7 (2 visual)
    for row in combined["table"]:
        low, high = row["delta_rl_ci95"]
        assert low < high and row["rl_point"] and row["sft_point"]
        assert "rl_minus_sft_ci95" in row
    text = (out / "all.md").read_text()
    assert "11.5%" in text and "77.8%" in text and "not stated" in text  # the paper's numbers
    assert text.count("\n| ") == 1 + len(rows)
    assert (out / "all.png").stat().st_size > 10_000
    return combined["table"]


def test_navigation_deltas_pair_per_step_accuracy_by_route(tmp_path):
    """Deltas of a navigation split compare per-step accuracy (a ratio of sums over routes),
    paired by route, not route success; RL minus SFT likewise; the report and the plot say
    per-step accuracy."""
    from openvirl.training.study import EvalPoint, _deltas, plot_study, rl_vs_sft, study_markdown

    keys = [f"navigation:manhattan:r{i}" for i in range(6)]
    steps = [4, 6, 4, 8, 2, 6]

    def point(branch, label, gflops, correct, rule="id"):
        return EvalPoint(
            branch, label, rule, gflops, 0.0, [0.0, 0.5], [False] * 6, {},
            problems=keys, n_problems=6, episodes=6, kind="id" if rule == "id" else "rule",
            headline="per_step_accuracy",
            per_step_accuracy=sum(correct) / sum(steps), per_step_accuracy_ci95=[0.0, 1.0],
            correct_steps=correct, steps=steps,
        )  # fmt: skip

    points = [
        point("init", "init", 1.0, [1, 1, 1, 2, 0, 1]),
        point("rl", "u2", 2.0, [3, 4, 2, 6, 1, 4]),
        point("sft", "s3", 2.0, [0, 1, 0, 1, 0, 0]),
    ]
    points += [point(p.branch, p.point, p.gflops, p.correct_steps, "ood") for p in points]
    rows = {d["branch"]: d for d in _deltas(points, seed=0)}
    assert rows["rl"]["delta_id"] == pytest.approx((20 - 6) / 30)
    assert rows["sft"]["delta_id"] == pytest.approx((2 - 6) / 30)
    low, high = rows["rl"]["delta_id_ci95"]
    assert 0 < low < rows["rl"]["delta_id"] < high  # every route improved
    assert rows["rl"]["id_metric"] == "per_step_accuracy" and rows["rl"]["rule_collapse"] is None
    versus = rl_vs_sft(points, seed=0)[0]
    assert versus["delta_ood"] == pytest.approx(18 / 30) and versus["delta_ood_ci95"][0] > 0
    study = load_study_config("nav-l", "smoke")
    text = study_markdown(study, points, list(rows.values()), {}, [versus])
    assert "ID per-step acc." in text and "+46.7" in text and "rule collapse" not in text
    plot_study(points, tmp_path / "study.png")
    assert (tmp_path / "study.png").stat().st_size > 5_000


def test_evaluation_envs_share_each_loaded_city():
    """Navigation envs made through `sharing_cities` hold the same City object (one street
    scene per city, built once), and play the same episodes as unshared envs."""
    from openvirl.training.data import make_env_factory
    from openvirl.training.study_tasks import sharing_cities

    plain = make_env_factory("openvirl/Navigation-v0", {"preset": "visual-ood", "visual": False})
    make = sharing_cities(plain)
    a, b, c = make(), make(), plain()
    assert a.unwrapped._city("monaco") is b.unwrapped._city("monaco")
    assert c.unwrapped._city("monaco") is not a.unwrapped._city("monaco")
    for env in (a, c):
        env.reset(seed=3, options={"route_index": 7})
    assert a.unwrapped.messages() == c.unwrapped.messages()


def test_resuming_a_folder_with_other_settings_fails_in_one_line(tmp_path, models):
    """Finished stages are reused on resume, so a folder trained with other settings (here
    another Init length) must not be resumed under the new ones; where and how it runs may
    change."""
    from openvirl.training.config import save_config
    from openvirl.training.study import check_resume_settings

    text_model, _ = models
    out = tmp_path / "study"
    base = ["--model", str(text_model)]
    first = load_study_config("gp-l", "smoke", [f"model={text_model}"], out=out)
    out.mkdir()
    save_config(first, out / "study-config.yaml")
    check_resume_settings(first)  # the same settings: fine
    moved = load_study_config("gp-l", "smoke", [f"model={text_model}", "threads=1"], out=out)
    check_resume_settings(moved)  # threads, out and the launcher may change
    changed = load_study_config("gp-l", "smoke", [f"model={text_model}", "init_steps=9"], out=out)
    with pytest.raises(ValueError, match="init_steps"):
        check_resume_settings(changed)
    fresh = load_study_config(
        "gp-l", "smoke", [f"model={text_model}", "init_steps=9"], out=out, resume=False
    )
    check_resume_settings(fresh)  # --no-resume starts over
    runner = CliRunner()
    # With --seeds 2 the seed folders are checked: the second one holds the other settings.
    second = load_study_config("gp-l", "smoke", [f"model={text_model}"], out=out)
    second.seed += 1
    (out / f"seed-{second.seed}").mkdir()
    save_config(second, out / f"seed-{second.seed}" / "study-config.yaml")
    for seeds in ("1", "2"):
        args = ["study", "--task", "gp-l", "--preset", "smoke", *base, "--out", str(out)]
        result = runner.invoke(app, [*args, "--seeds", seeds, "init_steps=9"])
        assert result.exit_code == 2, result.output
        lines = [line for line in result.output.splitlines() if line.strip()]
        assert len(lines) == 1 and "init_steps" in lines[0] and "--no-resume" in lines[0], lines
        assert not (out / "init").exists()  # nothing trained
        assert not (out / f"seed-{first.seed}" / "init").exists()
