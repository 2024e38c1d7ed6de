"""`openvirl study --task all`: the four tasks in turn and one report in the paper's form.

Each task runs as its own study in ``<out>/<task>/`` (resumable like any study); then
``all.json``, ``all.md`` and ``all.png`` gather them:

- ``all.png``: the paper's Figure 5 (ID score against training GFLOPs, one panel per task),
  Figure 6 (rule-OOD score per task) and Figure 7 (visual OOD of the VL tasks), with the
  bootstrap-over-problems 95% bands;
- ``all.md`` / ``all.json``: the delta table of spec §8.1/§8.2: per task and split, the Init,
  RL (+delta) and SFT (delta) at the last compute point, paired per problem, RL minus SFT at
  matched compute, and the paper's numbers beside ours.

Every task's model is checked before anything trains, so a text-only model on a VL task stops
the run at once with one line naming ``--vl-model``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from openvirl.training.study import (
    EvalPoint,
    StudyConfig,
    StudyResult,
    check_model_fits,
    load_study_config,
    plot_panel,
    rl_vs_sft,
    run_seeds,
)
from openvirl.training.study_tasks import STUDY_TASKS

FIGURES = (
    ("id", "Fig. 5: in-distribution"),
    ("rule", "Fig. 6: rule OOD"),
    ("visual", "Fig. 7: visual OOD"),
)
"""Rows of ``all.png``: the split kind each row plots and its title."""


@dataclass
class AllResult:
    """What `run_all` returns: the folder, each task's config and results, the table rows."""

    out: Path
    studies: dict[str, tuple[StudyConfig, list[StudyResult]]]
    rows: list[dict[str, Any]]


def load_all_configs(
    preset: str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    out: Path | None = None,
    resume: bool = True,
) -> list[StudyConfig]:
    """Each task's study config (its own preset file plus the shared overrides), checked.

    Raises
    ------
    StudyModelError
        A VL task whose model is text-only (one line naming ``--vl-model``), before any
        training starts.
    """
    base = Path(out or f"runs/study/all-{preset}")
    configs = [
        load_study_config(task, preset, overrides, out=base / task, resume=resume)
        for task in STUDY_TASKS
    ]
    for config in configs:
        check_model_fits(config)
    return configs


def run_all(
    preset: str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    out: Path | None = None,
    resume: bool = True,
    n_seeds: int = 1,
) -> AllResult:
    """Run the study of every task into ``<out>/<task>/`` and write the combined report."""
    configs = load_all_configs(preset, overrides, out=out, resume=resume)
    base = Path(out or f"runs/study/all-{preset}")
    studies: dict[str, tuple[StudyConfig, list[StudyResult]]] = {}
    for config in configs:
        results, _ = run_seeds(config, n_seeds)
        studies[config.task] = (config, results)
    return write_all_report(base, preset, studies)


def _last(points: list[EvalPoint], branch: str, split: str) -> EvalPoint | None:
    mine = [p for p in points if p.branch == branch and p.rule == split]
    return max(mine, key=lambda p: p.gflops) if mine else None


def table_rows(
    studies: dict[str, tuple[StudyConfig, list[StudyResult]]],
) -> list[dict[str, Any]]:
    """The delta table: per task and split, Init, RL and SFT at the last compute point.

    The first seed's study gives the numbers (each task's ``seeds.md`` has the spread when
    several seeds ran); deltas are the study's own paired intervals.
    """
    rows = []
    for task, (config, results) in studies.items():
        result = results[0]
        spec = config.task_spec
        versus = rl_vs_sft(result.points, config.seed)
        for split in config.splits or ():
            init = next(p for p in result.points if p.branch == "init" and p.rule == split)
            rl, sft = _last(result.points, "rl", split), _last(result.points, "sft", split)
            last = {d["branch"]: d for d in result.deltas if d["last"]}
            row: dict[str, Any] = {
                "task": task,
                "split": split,
                "kind": spec.split(split).kind,
                "label": spec.split(split).label,
                "metric": init.headline,
                "problems": init.n_problems,
                "init": init.score,
                "init_ci95": init.score_ci95,
                "paper": spec.paper.get(split),
                "seeds": len(results),
            }
            for branch, point in (("rl", rl), ("sft", sft)):
                d = last.get(branch, {})
                row[branch] = point.score if point else float("nan")
                row[f"{branch}_ci95"] = point.score_ci95 if point else []
                row[f"{branch}_point"] = point.point if point else None
                row[f"{branch}_gflops"] = point.gflops if point else float("nan")
                row[f"delta_{branch}"] = d.get(f"delta_{split}", float("nan"))
                row[f"delta_{branch}_ci95"] = d.get(f"delta_{split}_ci95", [])
                row[f"delta_{branch}_note"] = d.get(f"delta_{split}_note")
            if versus:
                v = versus[-1]
                row["rl_minus_sft"] = v.get(f"delta_{split}", float("nan"))
                row["rl_minus_sft_ci95"] = v.get(f"delta_{split}_ci95", [])
                row["rl_minus_sft_note"] = v.get(f"delta_{split}_note")
            rows.append(row)
    return rows


def plot_all(
    studies: dict[str, tuple[StudyConfig, list[StudyResult]]], path: Path, *, title: str = ""
) -> list[tuple[str, str]]:
    """``all.png``: rows Fig. 5 (ID), Fig. 6 (rule OOD), Fig. 7 (visual OOD); one column per
    task; a task without a split of a row's kind leaves that panel out. Returns the
    ``(task, split)`` of every drawn panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(studies)
    fig, axes = plt.subplots(
        len(FIGURES),
        len(tasks),
        figsize=(4.2 * len(tasks), 3.4 * len(FIGURES)),
        constrained_layout=True,
        squeeze=False,
    )
    drawn = []
    for row, (kind, figure) in enumerate(FIGURES):
        for col, task in enumerate(tasks):
            config, results = studies[task]
            ax = axes[row][col]
            spec = config.task_spec
            split = next((s for s in config.splits or () if spec.split(s).kind == kind), None)
            if split is None:
                ax.axis("off")
                continue
            plot_panel(ax, results[0].points, split, f"{figure} · {task}")
            drawn.append((task, split))
    for ax in axes.flat:
        if ax.has_data():
            ax.legend(loc="best", fontsize=7)
            break
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return drawn


def _pct(x: Any) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _ci(ci: Any, signed: bool = False) -> str:
    if not ci:
        return ""
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f" [{fmt.format(100 * ci[0])}, {fmt.format(100 * ci[1])}]"


def _delta(value: Any, ci: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:+.1f}{_ci(ci, True)}"


def all_markdown(preset: str, studies: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    """``all.md``: the tasks, the figure and the delta table with the paper's numbers."""
    metric = {"success": "success", "per_step_accuracy": "per-step acc."}
    lines = [
        f"# SFT vs RL on the four tasks, preset `{preset}`",
        "",
        "Per task: "
        + ", ".join(f"[{t}]({t}/study.md) (`{studies[t][0].model}`)" for t in studies)
        + ".",
        "",
        "![Fig. 5, 6, 7](all.png)",
        "",
        "Init, RL and SFT at the last compute point (the branches at matched training FLOPs), "
        "deltas from the Init paired per problem with 95% intervals; RL − SFT paired at the "
        "same compute; the paper's numbers (spec §8.1/§8.2, Llama-3.2-11B-Vision on 8 GPUs) "
        "beside ours.",
        "",
        "| task | split (metric) | problems | Init [95% CI] | RL (Δ [95% CI]) | SFT (Δ [95% CI]) "
        "| RL − SFT [95% CI] | paper Init | paper RL (Δ) | paper SFT (Δ) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        paper = r.get("paper") or {}
        if paper:
            p_init = _pct(paper["init"])
            p_rl = f"{_pct(paper['rl'])} ({100 * (paper['rl'] - paper['init']):+.1f})"
            p_sft = f"{_pct(paper['sft'])} ({100 * (paper['sft'] - paper['init']):+.1f})"
        else:
            p_init = p_rl = p_sft = "– (not stated)"
        lines.append(
            f"| {r['task']} | {r['label']} ({metric.get(r['metric'], r['metric'])}) "
            f"| {r['problems']} | {_pct(r['init'])}{_ci(r['init_ci95'])} "
            f"| {_pct(r['rl'])} ({_delta(r['delta_rl'], r['delta_rl_ci95'])}) "
            f"| {_pct(r['sft'])} ({_delta(r['delta_sft'], r['delta_sft_ci95'])}) "
            f"| {_delta(r.get('rl_minus_sft'), r.get('rl_minus_sft_ci95'))} "
            f"| {p_init} | {p_rl} | {p_sft} |"
        )
    seeds = max((r["seeds"] for r in rows), default=1)
    lines += [
        "",
        "The paper states no ID numbers (Fig. 5 has tick labels only). Intervals are "
        "bootstraps over distinct held-out problems (hands or routes); each task's study.md "
        "states its method.",
    ]
    if seeds > 1:
        lines.append(
            f"Numbers are the first seed's; each task's seeds.md has the mean and spread over "
            f"its {seeds} seeds."
        )
    lines.append("")
    return "\n".join(lines)


def write_all_report(
    base: Path, preset: str, studies: dict[str, tuple[StudyConfig, list[StudyResult]]]
) -> AllResult:
    """Write ``all.json``, ``all.md`` and ``all.png`` into `base`."""
    from openvirl.training.config import config_to_dict

    base.mkdir(parents=True, exist_ok=True)
    rows = table_rows(studies)
    panels = plot_all(studies, base / "all.png", title=f"SFT vs RL · preset {preset}")
    payload = {
        "preset": preset,
        "tasks": {
            task: {
                "folder": str(results[0].out.relative_to(base))
                if results[0].out.is_relative_to(base)
                else str(results[0].out),
                "model": config.model,
                "splits": config.splits,
                "config": config_to_dict(config),
                "seeds": len(results),
            }
            for task, (config, results) in studies.items()
        },
        "panels": [{"task": t, "split": s} for t, s in panels],
        "table": rows,
    }
    (base / "all.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", "utf-8")
    (base / "all.md").write_text(all_markdown(preset, studies, rows), "utf-8")
    return AllResult(out=base, studies=studies, rows=rows)


__all__ = [
    "AllResult",
    "all_markdown",
    "load_all_configs",
    "plot_all",
    "run_all",
    "table_rows",
    "write_all_report",
]
