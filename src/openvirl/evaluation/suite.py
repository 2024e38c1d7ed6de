"""Evaluation suites: the paper's whole evaluation set in one command, beside the paper's numbers.

``openvirl eval --suite paper --policy ...`` plays every setting of spec §6 with one loaded
policy (GeneralPoints: 234 hands per split; navigation: 48 routes ID and rule-OOD, 18
visual-OOD, once the navigation tasks are registered), then prints and writes a table with our
headline metric and its 95% interval next to the paper's Init, RL and SFT numbers (spec §8).

Output folder::

    suite.json    one row per setting: metrics, interval, paper numbers, run folder
    suite.md      the same table, and a plot of ours against the paper's markers
    plots/suite.png
    <task>__<split>/   an `evaluate` run folder per setting (resumable on its own)
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from openvirl.evaluation.evaluate import (
    EvalConfig,
    EvalResult,
    build_policy,
    evaluate,
    policy_slug,
)
from openvirl.evaluation.metrics import wilson_interval
from openvirl.evaluation.tasks import TASKS, get_task
from openvirl.policies.base import Policy


@dataclass(frozen=True)
class PaperNumbers:
    """The paper's reported rates for one setting (fractions; None where none is stated)."""

    metric: str
    """Our metric key the numbers compare with."""
    init: float | None
    rl: float | None
    sft: float | None
    source: str
    """Where in the paper (figure), for the table's footnote."""


PAPER: dict[tuple[str, str], PaperNumbers] = {
    # Fig. 6, rule-variant OOD at equal compute from the shared Init (spec §8.1).
    ("gp-l", "rule-ood"): PaperNumbers("eval/success", 0.115, 0.150, 0.034, "Fig. 6"),
    ("gp-vl", "rule-ood"): PaperNumbers("eval/success", 0.112, 0.142, 0.056, "Fig. 6"),
    ("nav-l", "rule-ood"): PaperNumbers("eval/per_step_accuracy", 0.808, 0.918, 0.013, "Fig. 6"),
    ("nav-vl", "rule-ood"): PaperNumbers("eval/per_step_accuracy", 0.357, 0.450, 0.025, "Fig. 6"),
    # Fig. 7, visual-variant OOD (spec §8.2).
    ("gp-vl", "visual-ood"): PaperNumbers("eval/success", 0.236, 0.412, 0.137, "Fig. 7"),
    ("nav-vl", "visual-ood"): PaperNumbers("eval/success", 0.167, 0.778, 0.111, "Fig. 7"),
    # In-distribution numbers are only plotted (Fig. 5), never stated (spec §8.3).
    ("gp-l", "id"): PaperNumbers("eval/success", None, None, None, "Fig. 5 (not stated)"),
    ("gp-vl", "id"): PaperNumbers("eval/success", None, None, None, "Fig. 5 (not stated)"),
    ("nav-l", "id"): PaperNumbers("eval/per_step_accuracy", None, None, None, "Fig. 5"),
    ("nav-vl", "id"): PaperNumbers("eval/per_step_accuracy", None, None, None, "Fig. 5"),
}
"""Spec §8 headline numbers by (task, split)."""

_PAPER_GP = (
    ("gp-l", "id"),
    ("gp-l", "rule-ood"),
    ("gp-vl", "id"),
    ("gp-vl", "rule-ood"),
    ("gp-vl", "visual-ood"),
)
_PAPER_NAV_L = (("nav-l", "id"), ("nav-l", "rule-ood"))
_PAPER_NAV_VL = (("nav-vl", "id"), ("nav-vl", "rule-ood"), ("nav-vl", "visual-ood"))
SUITES: dict[str, tuple[tuple[str, str], ...]] = {
    "paper": _PAPER_GP + _PAPER_NAV_L + _PAPER_NAV_VL,
    "paper-gp": _PAPER_GP,
    "paper-nav": _PAPER_NAV_L + _PAPER_NAV_VL,
    "paper-language": (("gp-l", "id"), ("gp-l", "rule-ood"), *_PAPER_NAV_L),
}
"""Named evaluation sets; settings whose task is not registered yet are skipped and listed."""

_DIAGNOSTICS = ("eval/rule_collapse_rate", "eval/recognition_accuracy", "eval/format_error_rate")


@dataclass
class SuiteResult:
    """What `run_suite` returns."""

    name: str
    out: Path
    rows: list[dict[str, Any]]
    """One row per setting that ran (see `suite.json`)."""
    results: list[EvalResult] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Settings of the suite that are not registered (e.g. navigation before it lands)."""
    error: str | None = None
    """Why the suite stopped early (a setting's policy failure), or None."""

    @property
    def complete(self) -> bool:
        return self.error is None and all(r.complete for r in self.results)


def get_suite(name: str) -> tuple[tuple[str, str], ...]:
    """The settings of suite `name`; unknown names list the valid ones."""
    if name not in SUITES:
        close = difflib.get_close_matches(name, list(SUITES), n=1, cutoff=0.5)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise ValueError(f"unknown suite `{name}`; valid suites: {', '.join(SUITES)}.{hint}")
    return SUITES[name]


def run_suite(config: EvalConfig, policy: Policy | None = None) -> SuiteResult:
    """Evaluate every setting of ``config.suite`` with one policy; write ``suite.json``/``.md``.

    Parameters
    ----------
    config
        Options as for `evaluate`; ``suite`` names the set, ``episodes`` (if given) replaces
        every setting's paper count (for smoke tests), ``out`` is the suite folder.
    policy
        A ready policy; None builds one from ``config.policy`` (once, for every setting).

    Returns
    -------
    SuiteResult
        The rows of the table; a policy failure stops the suite after writing what finished.
    """
    name = config.suite or "paper"
    settings = get_suite(name)
    config.validate()
    if policy is None:
        policy = build_policy(config)
    policy_name = str(getattr(policy, "name", type(policy).__name__))
    out = Path(config.out) if config.out is not None else _default_out(name, policy_name, config)
    out.mkdir(parents=True, exist_ok=True)
    result = SuiteResult(name=name, out=out, rows=[])
    for task, split in settings:
        if split not in TASKS.get(task, {}):
            result.skipped.append(f"{task}/{split}")
            continue
        sub = replace(config, task=task, split=split, suite=None, out=out / f"{task}__{split}")
        run = evaluate(sub, policy)
        result.results.append(run)
        result.rows.append(suite_row(run))
        if run.error is not None:
            result.error = f"{task}/{split}: {run.error}"
            break
    write_suite(result, policy_name=policy_name, config=config)
    return result


def _default_out(name: str, policy_name: str, config: EvalConfig) -> Path:
    slug = policy_slug(policy_name)
    return Path("runs") / "eval" / f"suite-{name}__{slug}__s{config.seed}"


def suite_row(run: EvalResult) -> dict[str, Any]:
    """One table row: our headline metric with its interval, diagnostics and the paper's."""
    spec = get_task(run.config.task, run.config.split)
    paper = PAPER.get((spec.task, spec.split))
    metric = paper.metric if paper is not None else spec.headline
    m = run.metrics
    value = m.get(metric)
    ci = m.get(f"{metric}_ci95")
    if ci is None and value is not None:
        n = int(m.get(f"{metric}_n", m.get("eval/episodes", 0)))
        ci = list(wilson_interval(round(value * n), n))
    return {
        "task": spec.task,
        "split": spec.split,
        "metric": metric,
        "value": value,
        "ci95": ci,
        "episodes": m.get("eval/episodes", 0),
        "episodes_planned": run.episodes_planned,
        "complete": run.complete,
        "paper": (
            None
            if paper is None
            else {"init": paper.init, "rl": paper.rl, "sft": paper.sft, "source": paper.source}
        ),
        "diagnostics": {k: m[k] for k in _DIAGNOSTICS if m.get(k) is not None},
        "run": run.out.name,
    }


def _pct(value: Any) -> str:
    if value is None or value != value:  # None or NaN
        return "—"
    return f"{value:.1%}"


def _ours(row: dict[str, Any]) -> str:
    text = _pct(row["value"])
    if row.get("ci95") and row["value"] is not None:
        text += f" [{row['ci95'][0]:.1%}–{row['ci95'][1]:.1%}]"
    if not row["complete"]:
        text += f" (partial {row['episodes']}/{row['episodes_planned']})"
    return text


def _metric_name(metric: str) -> str:
    return {"eval/success": "success", "eval/per_step_accuracy": "step acc."}.get(
        metric, metric.removeprefix("eval/")
    )


def suite_table(result: SuiteResult, policy_name: str) -> Any:
    """The paper-style table as a `rich.table.Table` (diagnostics in the last column)."""
    from rich import box
    from rich.table import Table

    table = Table(
        title=f"suite `{result.name}` · {policy_name} · ours vs the paper",
        caption="Init, RL, SFT: the paper's numbers (Chu et al. 2025, Fig. 6-7)",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    table.add_column("setting", no_wrap=True)
    table.add_column("metric", no_wrap=True)
    table.add_column("ours", justify="right", style="bold", no_wrap=True)
    table.add_column("95% CI", justify="right", no_wrap=True)
    table.add_column("n", justify="right", no_wrap=True)
    for column in ("Init", "RL", "SFT"):
        table.add_column(column, justify="right", no_wrap=True)
    table.add_column("diagnostics")
    for row in result.rows:
        paper = row["paper"] or {}
        ci = row.get("ci95")
        n = str(row["episodes"])
        if not row["complete"]:
            n += f"/{row['episodes_planned']}"
        table.add_row(
            f"{row['task']}/{row['split']}",
            _metric_name(row["metric"]),
            _pct(row["value"]),
            f"{ci[0]:.1%}–{ci[1]:.1%}" if ci else "—",
            n,
            _pct(paper.get("init")),
            _pct(paper.get("rl")),
            _pct(paper.get("sft")),
            _diagnostics_text(row),
        )
    return table


def _diagnostics_text(row: dict[str, Any]) -> str:
    names = {
        "eval/rule_collapse_rate": "collapse",
        "eval/recognition_accuracy": "recog.",
        "eval/format_error_rate": "fmt err",
    }
    return ", ".join(f"{names[k]} {v:.0%}" for k, v in row["diagnostics"].items())


def _run_link(out: Path, row: dict[str, Any]) -> str:
    report = out / row["run"] / "report.md"
    return f"[report]({row['run']}/report.md)" if report.exists() else f"`{row['run']}/`"


def write_suite(result: SuiteResult, *, policy_name: str, config: EvalConfig) -> list[Path]:
    """Write ``suite.json``, ``suite.md`` and ``plots/suite.png`` into the suite folder."""
    out = result.out
    payload = {
        "suite": result.name,
        "policy": policy_name,
        "policy_spec": config.policy,
        "seed": config.seed,
        "complete": result.complete,
        "error": result.error,
        "skipped": result.skipped,
        "rows": result.rows,
    }
    (out / "suite.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    paths = [out / "suite.json"]
    md = [
        f"# Suite `{result.name}` · {policy_name}",
        "",
        f"Policy spec `{config.policy}`, seed {config.seed}. Ours: the headline metric with "
        "its 95% Wilson interval. Paper: Chu et al. 2025 (arXiv 2501.17161 v2), Init = the "
        "shared SFT start, RL and SFT at equal compute; ID numbers are only plotted there.",
        "",
        "| task | split | metric | ours [95% CI] | n | paper Init | paper RL | paper SFT | "
        "diagnostics | run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result.rows:
        paper = row["paper"] or {}
        md.append(
            f"| {row['task']} | {row['split']} | {_metric_name(row['metric'])} | {_ours(row)} | "
            f"{row['episodes']} | {_pct(paper.get('init'))} | {_pct(paper.get('rl'))} | "
            f"{_pct(paper.get('sft'))} | {_diagnostics_text(row)} | {_run_link(out, row)} |"
        )
    if result.rows:
        from openvirl.evaluation.report import plot_rates

        bars = [
            {
                "label": f"{r['task']}/{r['split']}",
                "rate": r["value"] if r["value"] is not None else float("nan"),
                "ci95": r["ci95"],
                "n": r["episodes"],
            }
            for r in result.rows
        ]
        refs = {
            f"{r['task']}/{r['split']}": [
                (k, (r["paper"] or {}).get(k.lower())) for k in ("Init", "RL", "SFT")
            ]
            for r in result.rows
        }
        plot = plot_rates(
            bars,
            out / "plots" / "suite.png",
            title=f"{policy_name}: ours (bars, 95% CI) and the paper (markers)",
            ylabel="headline metric",
            references=refs,
        )
        md += ["", "![ours against the paper](plots/suite.png)"]
        paths.append(plot)
    if result.skipped:
        md += ["", f"Not run (task not registered yet): {', '.join(result.skipped)}."]
    if result.error:
        md += ["", f"**Stopped early**: {result.error}. Rerun the same command to resume."]
    (out / "suite.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    paths.insert(1, out / "suite.md")
    return paths
