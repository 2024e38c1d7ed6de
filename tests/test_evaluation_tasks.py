"""The evaluation registry: settings, seeds, env factories, and adding a task in a few lines."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from openvirl.evaluation import TASKS, EvalConfig, evaluate, get_task, register_task
from openvirl.evaluation.tasks import GP_ENV_ID, UnknownTaskError, episode_seeds, make_env


def test_gp_settings_follow_the_paper() -> None:
    assert {t: list(s) for t, s in TASKS.items() if t.startswith("gp")} == {
        "gp-l": ["id", "rule-ood"],
        "gp-vl": ["id", "rule-ood", "visual-ood"],
    }
    vl_id, vl_red = get_task("gp-vl", "id"), get_task("gp-vl", "visual-ood")
    assert vl_id.env_kwargs["suits"] == "black" and vl_red.env_kwargs["suits"] == "red"
    assert (
        vl_red.env_kwargs["rule"] == "id"
        and get_task("gp-l", "rule-ood").env_kwargs["rule"] == "ood"
    )
    assert all(
        s.env_kwargs["split"] == "test" and s.episodes == 234 for s in TASKS["gp-l"].values()
    )
    assert "rule_collapse" in get_task("gp-vl", "rule-ood").metrics
    assert "recognition" in vl_red.metrics and "recognition" not in get_task("gp-l", "id").metrics


def test_env_factory_applies_overrides() -> None:
    env = make_env(get_task("gp-vl", "visual-ood"), max_attempts=2, image_size=96)
    obs, info = env.reset(seed=episode_seeds(get_task("gp-vl", "visual-ood"), 0, [0])[0])
    assert obs["image"].size == (96, 96) and info["max_attempts"] == 2
    assert all(code[0] in "HD" for code in info["card_codes"])  # red suits
    env.close()


def test_unknown_names_suggest_the_closest() -> None:
    with pytest.raises(UnknownTaskError, match=r"Did you mean `gp-vl`\?"):
        get_task("gp_vl", "id")
    with pytest.raises(UnknownTaskError, match=r"valid splits: id, rule-ood, visual-ood"):
        get_task("gp-vl", "nope")


@pytest.fixture
def extra_task() -> Iterator[str]:
    # What the navigation engineer will write, here with the card env as a stand-in.
    register_task(
        "cards-small",
        "id",
        env_id=GP_ENV_ID,
        seed_stream="small-eval",
        env_kwargs={"target": 10, "max_attempts": 2},
        episodes=5,
        headline="eval/per_step_accuracy",
    )
    yield "cards-small"
    del TASKS["cards-small"]


def test_a_new_task_is_a_few_lines(extra_task: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_task(extra_task, "id", env_id=GP_ENV_ID)
    spec = get_task(extra_task, "id")
    seeds = episode_seeds(spec, 42, range(3))
    assert seeds == episode_seeds(spec, 42, [0, 1, 2]) and len(set(seeds)) == 3
    assert seeds != episode_seeds(get_task("gp-l", "id"), 42, range(3))
    run = evaluate(
        EvalConfig(task=extra_task, split="id", out=tmp_path, progress=False, report=False)
    )
    assert run.complete and len(run.records) == 5 and run.metrics["eval/success"] == 1.0
    assert all(r["reset_info"]["target"] == 10 for r in run.records)
