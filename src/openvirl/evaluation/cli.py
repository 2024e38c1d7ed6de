"""`openvirl eval`: one task and split, or a whole suite, with any policy.

Examples::

    openvirl eval --task gp-l --split rule-ood --policy hf:runs/sft/final --episodes 234
    openvirl eval --suite paper --policy "openai:http://127.0.0.1:8000/v1#my-model"
    openvirl eval --task gp-vl --split visual-ood --policy random --out runs/eval/vl-random

Options mirror `EvalConfig` (their help texts come from it). Exit codes: 0 done, 1 stopped
early by the policy (finished episodes kept; rerun the same command to resume), 2 bad input.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from openvirl.evaluation.evaluate import option_help as _h

if TYPE_CHECKING:
    from rich.console import Console

    from openvirl.evaluation.evaluate import EvalResult


def _registered() -> str:
    from openvirl.evaluation.tasks import TASKS

    return "; ".join(f"{task}: {', '.join(splits)}" for task, splits in TASKS.items())


def _fail(message: str, code: int = 2) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(code)


def eval_command(
    task: str = typer.Option("gp-l", "--task", help=f"{_h('task')} Registered: {_registered()}."),
    split: str = typer.Option("id", "--split", help=_h("split")),
    suite: str | None = typer.Option(None, "--suite", help=_h("suite")),
    policy: str = typer.Option("oracle", "--policy", help=_h("policy")),
    episodes: int | None = typer.Option(None, "--episodes", help=_h("episodes")),
    seed: int = typer.Option(42, "--seed", help=_h("seed")),
    out: Path | None = typer.Option(None, "--out", help=_h("out")),
    batch_size: int | None = typer.Option(None, "--batch-size", help=_h("batch_size")),
    max_attempts: int | None = typer.Option(None, "--max-attempts", help=_h("max_attempts")),
    resume: bool = typer.Option(True, "--resume/--no-resume", help=_h("resume")),
    temperature: float | None = typer.Option(None, "--temperature", help=_h("temperature")),
    max_new_tokens: int | None = typer.Option(None, "--max-new-tokens", help=_h("max_new_tokens")),
    few_shot: int | None = typer.Option(None, "--few-shot", help=_h("few_shot")),
    image_size: int | None = typer.Option(None, "--image-size", help=_h("image_size")),
    save_images: bool = typer.Option(
        True, "--save-images/--no-save-images", help=_h("save_images")
    ),
    report: bool = typer.Option(True, "--report/--no-report", help=_h("report")),
    examples: int = typer.Option(4, "--examples", help=_h("examples")),
    progress: bool = typer.Option(True, "--progress/--no-progress", help=_h("progress")),
    routes: Path | None = typer.Option(None, "--routes", help=_h("routes")),
    city: str | None = typer.Option(None, "--city", help=_h("city")),
) -> None:
    """Evaluate a policy on a task and split (or a suite); write trajectories, metrics, report."""
    from rich.console import Console

    from openvirl.evaluation.evaluate import EvalConfig, build_policy, evaluate
    from openvirl.evaluation.suite import get_suite, run_suite, suite_table

    config = EvalConfig(
        task=task,
        split=split,
        suite=suite,
        policy=policy,
        episodes=episodes,
        seed=seed,
        out=out,
        batch_size=batch_size,
        max_attempts=max_attempts,
        resume=resume,
        temperature=temperature,
        max_new_tokens=max_new_tokens,
        few_shot=few_shot,
        image_size=image_size,
        save_images=save_images,
        report=report,
        examples=examples,
        progress=progress,
        routes=routes,
        city=city,
    )
    console = Console()
    try:
        config.validate()
        if suite is not None:
            get_suite(suite)
        model = build_policy(config)
    except (ValueError, ImportError, OSError) as exc:
        _fail(str(exc))
        return

    if suite is not None:
        try:
            result = run_suite(config, model)
        except (ValueError, OSError) as exc:
            _fail(str(exc))
            return
        console.print(suite_table(result, str(getattr(model, "name", policy))))
        if result.skipped:
            console.print(f"not registered yet, skipped: {', '.join(result.skipped)}")
        console.print(f"written to {result.out}/ (suite.md, suite.json, one folder per setting)")
        if result.error is not None:
            _fail(f"{result.error}\nfinished episodes are kept; rerun to resume.", code=1)
        return

    try:
        run = evaluate(config, model)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
        return
    _print_run(console, run)
    if run.error is not None:
        _fail(
            f"{run.error}\n{len(run.records)}/{run.episodes_planned} episodes are kept in "
            f"{run.out}/; rerun the same command to resume.",
            code=1,
        )


def _print_run(console: Console, run: EvalResult) -> None:
    from rich.table import Table

    from openvirl.evaluation.evaluate import few_shot_count
    from openvirl.evaluation.report import fmt_rate
    from openvirl.evaluation.tasks import get_task

    metrics = run.metrics
    table = Table(title=f"{run.config.task}/{run.config.split}", show_header=False)
    rates = (
        ("success", "eval/success"),
        ("per-attempt accuracy", "eval/per_step_accuracy"),
        ("recognition", "eval/recognition_accuracy"),
        ("rule collapse", "eval/rule_collapse_rate"),
    )
    for label, key in rates:
        if metrics.get(key) is not None:
            table.add_row(label, fmt_rate(metrics, key))
    for label, key in (("format errors", "eval/format_error_rate"),):
        if metrics.get(key) is not None:
            table.add_row(label, f"{metrics[key]:.1%}")
    table.add_row("mean attempts", f"{metrics.get('eval/mean_attempts', float('nan')):.2f}")
    table.add_row("episodes", f"{len(run.records)}/{run.episodes_planned}")
    if metrics.get("eval/wall_s") is not None:
        table.add_row(
            "wall time",
            f"{metrics['eval/wall_s']:.1f} s ({metrics.get('eval/episodes_per_s', 0):.2f} ep/s)",
        )
    console.print(table)
    shots = few_shot_count(run.config, get_task(run.config.task, run.config.split))
    if shots:
        console.print(
            f"prompt: {shots} solved training hands before each hand (few-shot; --few-shot 0 "
            "turns it off); see config.json `prompt`"
        )
    console.print(f"written to {run.out}/ (trajectories.jsonl, metrics.json, report.html)")
