"""Evaluation reports: ``report.md`` and a self-contained ``report.html`` with plots and examples.

The report answers, at a glance: how often the policy succeeds (with its 95% interval), how
its answers go wrong attempt after attempt, which hands are hard for it, and what its answers
actually look like. Plots are PNG files under ``plots/``; the Markdown links them and the
episode images by relative path, and the HTML embeds them (base64) so it can be mailed alone.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openvirl.evaluation.metrics import slice_table, wilson_interval

if TYPE_CHECKING:
    from openvirl.evaluation.evaluate import EvalResult
    from openvirl.evaluation.tasks import TaskSpec

PLOTS = "plots"
OUTCOME_COLORS: dict[str, str] = {
    "correct": "#2e7d32",
    "wrong_value": "#f9a825",
    "wrong_numbers": "#ef6c00",
    "wrong_cards": "#8e24aa",
    "illegal_formula": "#c62828",
    "no_answer": "#6d1b1b",
    "attempts_exhausted": "#9e9e9e",
    "wrong_action": "#ef6c00",
    "wrong_observation": "#8e24aa",
}
"""One colour per named outcome, the same in every plot (green good, reds unreadable)."""

_EXTRA_COLORS = ("#1565c0", "#00838f", "#5d4037", "#455a64")
_EXAMPLE_IMAGE_PX = 480
"""Width of episode images embedded in the HTML (full-size files stay on disk)."""

_HEADLINE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("eval/success", "Success (episode solved within the attempts; Wilson over episodes)", "rate"),
    ("eval/success_by_problem", "Success over distinct problems (bootstrap over problems)", "rate"),
    ("eval/problems", "Distinct problems played", "int"),
    ("eval/episodes", "Episodes played", "int"),
    ("eval/per_step_accuracy", "Per-attempt accuracy", "rate"),
    ("eval/recognition_accuracy", "Card recognition, all attempts", "rate"),
    ("eval/recognition_accuracy_first", "Card recognition, first attempt", "rate"),
    (
        "eval/rule_collapse_rate",
        "Rule collapse (face card written as 10), parseable answers",
        "rate",
    ),
    ("eval/rule_collapse_first", "Rule collapse, first attempt", "rate"),
    ("eval/rule_following_rate", "Rule following (face cards written as 11/12/13)", "rate"),
    ("eval/landmark_accuracy_at_landmarks", "Landmark recognition where there is one", "rate"),
    ("eval/format_error_rate", "Unreadable answers (no formula or action), every task", "share"),
    ("eval/mean_attempts", "Mean attempts per episode", "number"),
    ("eval/mean_return", "Mean return", "number"),
    ("eval/tokens_generated", "Tokens generated", "int"),
    ("eval/wall_s", "Wall time (s)", "number"),
    ("eval/episodes_per_s", "Episodes per second", "number"),
    ("eval/model_time_share", "Share of time inside the policy", "share"),
)


# ---------------------------------------------------------------------------- formatting
def fmt_rate(metrics: Mapping[str, Any], key: str) -> str:
    """``"12.3% [8.1–17.9]"`` for a rate with a stored interval, ``"—"`` when missing."""
    value = metrics.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    ci = metrics.get(f"{key}_ci95")
    if ci:
        return f"{value:.1%} [{ci[0]:.1%}–{ci[1]:.1%}]"
    return f"{value:.1%}"


def _fmt(metrics: Mapping[str, Any], key: str, kind: str) -> str | None:
    value = metrics.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if kind == "rate":
        return fmt_rate(metrics, key)
    if kind == "share":
        return f"{value:.1%}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:,.2f}"


# ---------------------------------------------------------------------------- plots
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def plot_rates(
    rows: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    title: str,
    ylabel: str = "success",
    references: Mapping[str, Sequence[tuple[str, float | None]]] | None = None,
) -> Path:
    """Bars of rates with 95% interval whiskers, one per row; optional reference markers.

    Parameters
    ----------
    rows
        ``{"label", "rate", "ci95": [low, high], "n"}`` per bar.
    path
        PNG to write.
    title, ylabel
        Plot texts.
    references
        ``label -> [(name, rate or None), ...]``: markers drawn on a bar (e.g. the paper's
        Init/RL/SFT numbers beside ours).
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(4.0, 1.2 * len(rows) + 2), 3.6))
    xs = range(len(rows))
    rates = [float(r["rate"]) if _finite(r.get("rate")) else 0.0 for r in rows]
    lows = [
        max(0.0, rate - float(r["ci95"][0])) if r.get("ci95") else 0.0
        for rate, r in zip(rates, rows, strict=True)
    ]
    highs = [
        max(0.0, float(r["ci95"][1]) - rate) if r.get("ci95") else 0.0
        for rate, r in zip(rates, rows, strict=True)
    ]
    ax.bar(xs, rates, color="#1565c0", alpha=0.85, label="ours")
    ax.errorbar(xs, rates, yerr=[lows, highs], fmt="none", ecolor="black", capsize=4, lw=1)
    for x, rate, high in zip(xs, rates, highs, strict=True):
        n = rows[x].get("n", "")
        ax.text(
            x,
            min(rate + high + 0.02, 1.06),
            f"{rate:.0%}" + (f" (n={n})" if n else ""),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    markers = {"Init": ("o", "#616161"), "RL": ("^", "#2e7d32"), "SFT": ("v", "#c62828")}
    drawn: set[str] = set()
    for x, r in zip(xs, rows, strict=True):
        for name, value in (references or {}).get(str(r["label"]), []):
            if value is None:
                continue
            marker, color = markers.get(name, ("D", "#ff8f00"))
            ax.plot(
                x + 0.28,
                value,
                marker=marker,
                color=color,
                ls="none",
                ms=7,
                label=f"paper {name}" if name not in drawn else None,
            )
            drawn.add(name)
    labels = [str(r["label"]) for r in rows]
    long = max((len(label) for label in labels), default=0) > 12
    ax.set_xticks(list(xs), labels, rotation=20 if long else 0, ha="right" if long else "center")
    ax.set_ylim(0, 1.15)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.yaxis.set_major_formatter(_percent())
    ax.grid(axis="y", alpha=0.3)
    if drawn:
        ax.legend(fontsize=8, loc="upper right", ncol=4)
    return _save(fig, path)


def _percent() -> Any:
    from matplotlib.ticker import PercentFormatter

    return PercentFormatter(1.0, decimals=0)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(float(value))


def plot_success_within(records: Sequence[Mapping[str, Any]], path: Path, title: str) -> Path:
    """Share of episodes solved within k attempts, k = 1..max, with 95% intervals."""
    n = len(records)
    max_k = max((len(r.get("steps", [])) for r in records), default=1) or 1
    rows = []
    for k in range(1, max_k + 1):
        wins = sum(bool(r.get("success")) and len(r.get("steps", [])) <= k for r in records)
        rows.append(
            {
                "label": f"≤{k}",
                "rate": wins / n if n else 0.0,
                "ci95": list(wilson_interval(wins, n)),
                "n": n,
            }
        )
    return plot_rates(rows, path, title=title, ylabel="solved within k attempts")


def plot_outcomes(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Stacked bars: what happened at each attempt, as a share of all episodes."""
    plt = _pyplot()
    by_attempt: dict[int, Counter[str]] = {}
    for r in records:
        for i, step in enumerate(r.get("steps", []), start=1):
            by_attempt.setdefault(i, Counter())[str(step.get("outcome", "?"))] += 1
    n = max(len(records), 1)
    outcomes = sorted({o for c in by_attempt.values() for o in c}, key=_outcome_order)
    fig, ax = plt.subplots(figsize=(6.0, 3.6))
    attempts = sorted(by_attempt)
    bottoms = [0.0] * len(attempts)
    extra = iter(_EXTRA_COLORS * 4)
    for outcome in outcomes:
        heights = [by_attempt[a].get(outcome, 0) / n for a in attempts]
        color = OUTCOME_COLORS.get(outcome) or next(extra)
        ax.bar(attempts, heights, bottom=bottoms, color=color, label=outcome)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xlabel("attempt")
    ax.set_ylabel("share of episodes")
    ax.set_xticks(attempts)
    ax.set_ylim(0, 1.05)
    ax.yaxis.set_major_formatter(_percent())
    ax.set_title("Outcome of each attempt (episodes still playing)")
    ax.legend(fontsize=8, bbox_to_anchor=(1.02, 1), loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


def _outcome_order(name: str) -> tuple[int, str]:
    order = list(OUTCOME_COLORS)
    return (order.index(name) if name in order else len(order), name)


def plot_difficulty(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Success by solution count and by whether fractions are needed, with 95% intervals."""
    panels = [
        ("n_solutions", "solutions per hand"),
        ("needs_fractions", "needs fractions"),
    ]
    tables = [(name, label, slice_table(metrics, name)) for name, label in panels]
    tables = [t for t in tables if t[2]]
    if not tables:
        return None
    plt = _pyplot()
    widths = [max(1.5, 0.9 * len(rows)) for _, _, rows in tables]
    fig, axes = plt.subplots(
        1,
        len(tables),
        figsize=(sum(widths) + 2, 3.4),
        squeeze=False,
        gridspec_kw={"width_ratios": widths},
    )
    for ax, (_, label, rows) in zip(axes[0], tables, strict=True):
        xs = range(len(rows))
        rates = [r["success"] for r in rows]
        err = [
            [max(0.0, r["success"] - r["ci95"][0]) for r in rows],
            [max(0.0, r["ci95"][1] - r["success"]) for r in rows],
        ]
        ax.bar(xs, rates, color="#00838f", alpha=0.85)
        ax.errorbar(xs, rates, yerr=err, fmt="none", ecolor="black", capsize=3, lw=1)
        ax.set_xticks(list(xs), [f"{r['bucket']}\n(n={r['episodes']})" for r in rows], fontsize=8)
        ax.set_xlabel(label)
        ax.set_ylim(0, 1.05)
        ax.yaxis.set_major_formatter(_percent())
        ax.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel("success")
    fig.suptitle("Success by difficulty")
    return _save(fig, path)


def plot_attempts(records: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Histogram of attempts used per episode, solved and unsolved stacked."""
    plt = _pyplot()
    solved = Counter(len(r.get("steps", [])) for r in records if r.get("success"))
    failed = Counter(len(r.get("steps", [])) for r in records if not r.get("success"))
    ks = sorted(set(solved) | set(failed)) or [0]
    fig, ax = plt.subplots(figsize=(5.0, 3.2))
    ax.bar(ks, [solved.get(k, 0) for k in ks], color=OUTCOME_COLORS["correct"], label="solved")
    ax.bar(
        ks,
        [failed.get(k, 0) for k in ks],
        bottom=[solved.get(k, 0) for k in ks],
        color=OUTCOME_COLORS["attempts_exhausted"],
        label="not solved",
    )
    ax.set_xticks(ks)
    ax.set_xlabel("attempts used")
    ax.set_ylabel("episodes")
    ax.set_title("Attempts per episode")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _save(fig, path)


# ---------------------------------------------------------------------------- examples
def pick_examples(records: Sequence[Mapping[str, Any]], k: int) -> list[Mapping[str, Any]]:
    """Up to `k` instructive episodes: solved after revision, solved at once, a failure with an
    unreadable answer, a plain failure; then the first others, in index order."""
    wanted = [
        lambda r: r.get("success") and len(r["steps"]) > 1,
        lambda r: r.get("success") and len(r["steps"]) == 1,
        lambda r: (
            not r.get("success")
            and any(s.get("outcome") in ("no_answer", "illegal_formula") for s in r["steps"])
        ),
        lambda r: not r.get("success"),
    ]
    chosen: list[Mapping[str, Any]] = []
    for test in wanted:
        for r in records:
            if len(chosen) >= k:
                break
            if r.get("steps") and r not in chosen and test(r):
                chosen.append(r)
                break
    for r in records:
        if len(chosen) >= k:
            break
        if r not in chosen:
            chosen.append(r)
    return sorted(chosen, key=lambda r: r.get("index", 0))


def _example_image(out: Path, record: Mapping[str, Any]) -> str | None:
    """The episode's image path; GP-L hands (no image seen) get one drawn for the reader."""
    if record.get("image") and (out / record["image"]).exists():
        return str(record["image"])
    codes = record.get("reset_info", {}).get("card_codes")
    if not codes:
        return None
    try:
        from openvirl.envs.points.cards import Card
        from openvirl.envs.points.render import render_hand

        image = render_hand([Card.from_code(c) for c in codes], size=600)
    except (ImportError, ValueError):
        return None
    rel = f"images/example_{int(record.get('index', 0)):05d}.png"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    image.save(out / rel)
    return rel


def _data_url(path: Path, max_width: int | None = None) -> str:
    data = path.read_bytes()
    if max_width is not None:
        from PIL import Image

        with Image.open(path) as image:
            if image.width > max_width:
                image = image.convert("RGB")
                image.thumbnail((max_width, max_width * 4))
                buffer = io.BytesIO()
                image.save(buffer, format="PNG", optimize=True)
                data = buffer.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------------- documents
def write_report(
    result: EvalResult, *, spec: TaskSpec | None = None, examples: int = 4
) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the plots for an evaluation run.

    Returns
    -------
    list of Path
        The Markdown and HTML files.
    """
    out = result.out
    records = result.records
    metrics = result.metrics
    name = f"{result.config.task}/{result.config.split}"
    policy = records[0]["policy"] if records else result.config.policy
    plots: list[tuple[str, Path]] = []
    if records:
        plots.append(
            (
                "Success within k attempts",
                plot_success_within(records, out / PLOTS / "success.png", f"{name} · {policy}"),
            )
        )
        plots.append(("Outcomes per attempt", plot_outcomes(records, out / PLOTS / "outcomes.png")))
        difficulty = plot_difficulty(metrics, out / PLOTS / "difficulty.png")
        if difficulty is not None:
            plots.append(("Success by difficulty", difficulty))
        plots.append(("Attempts per episode", plot_attempts(records, out / PLOTS / "attempts.png")))
    chosen = pick_examples(records, examples)
    images = {r["index"]: _example_image(out, r) for r in chosen}

    status = (
        f"complete: {len(records)}/{result.episodes_planned} episodes"
        if result.complete
        else f"PARTIAL: {len(records)}/{result.episodes_planned} episodes"
        + (f" — stopped because {result.error}" if result.error else "")
    )
    rows = [
        (label, text)
        for key, label, kind in _HEADLINE_ROWS
        if (text := _fmt(metrics, key, kind)) is not None
    ]
    description = spec.description if spec is not None else ""

    md = [f"# Evaluation: {name} · {policy}", ""]
    if description:
        md += [f"*{description}*", ""]
    md += [
        f"**Success {fmt_rate(metrics, 'eval/success')}** — {status}; seed "
        f"{result.config.seed}; policy spec `{result.config.policy}`.",
        "",
    ]
    md += ["| metric | value |", "|---|---|", *[f"| {a} | {b} |" for a, b in rows], ""]
    if metrics.get("eval/ci_method"):
        md += [
            f"Intervals: Wilson over episodes for per-episode rates; over the "
            f"{metrics.get('eval/problems')} distinct problems ({metrics.get('eval/episodes')} "
            f"episodes): {metrics['eval/ci_method']}.",
            "",
        ]
    for title, path in plots:
        md += [f"## {title}", "", f"![{title}]({path.relative_to(out).as_posix()})", ""]
    if chosen:
        md += ["## Example episodes", ""]
    for r in chosen:
        md += _example_md(r, images.get(r["index"]))
    md_path = out / "report.md"
    md_path.write_text("\n".join(md) + "\n", encoding="utf-8")

    html_path = out / "report.html"
    html_path.write_text(
        _html_page(result, name, policy, description, status, rows, plots, chosen, images),
        encoding="utf-8",
    )
    return [md_path, html_path]


def _example_md(record: Mapping[str, Any], image: str | None) -> list[str]:
    info = record.get("reset_info", {})
    verdict = "solved" if record.get("success") else "not solved"
    lines = [f"### Episode {record['index']} — {verdict} in {len(record['steps'])} attempt(s)", ""]
    if info.get("cards"):
        lines += [
            f"Cards {info['cards']} · numbers {info.get('numbers')} · "
            f"expert: `{info.get('expert_answer', '')}`",
            "",
        ]
    if image:
        lines += [f"![episode {record['index']}]({image})", ""]
    lines += [
        "<details><summary>prompt</summary>",
        "",
        "```text",
        record.get("prompt", ""),
        "```",
        "",
        "</details>",
        "",
    ]
    lines += ["| # | answer | outcome | reward | feedback |", "|---|---|---|---|---|"]
    for step in record["steps"]:
        answer = _md_cell(step.get("action", ""), 200)
        lines.append(
            f"| {step.get('attempt')} | `{answer}` | {step.get('outcome')} | "
            f"{step.get('reward'):+g} | {_md_cell(step.get('feedback', ''), 160)} |"
        )
    return [*lines, ""]


def _md_cell(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    text = text if len(text) <= limit else text[: limit - 1] + "…"
    return text.replace("|", "\\|").replace("`", "'")


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} .sub{color:#666;margin-top:0}
.headline{font-size:1.6em;margin:.4em 0} .partial{background:#fff3e0;border-left:4px solid
#ef6c00;padding:.5em 1em} .ok{color:#2e7d32}
table{border-collapse:collapse;margin:.5em 0} td,th{border-bottom:1px solid #ddd;padding:.25em
.7em;text-align:left;vertical-align:top} th{background:#f5f5f5}
.plots{display:flex;flex-wrap:wrap;gap:1em} .plots figure{margin:0} .plots img{max-width:520px}
.episode{border:1px solid #ddd;border-radius:8px;padding:.6em 1em;margin:1em 0}
.episode img{max-width:360px;border-radius:6px;float:right;margin-left:1em}
code,pre{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.88em}
pre{white-space:pre-wrap;background:#f7f7f7;padding:.6em;border-radius:4px}
.badge{display:inline-block;padding:0 .5em;border-radius:1em;color:white;font-size:.85em}
.clear{clear:both}
"""


def _clip(text: Any, limit: int = 2000) -> str:
    text = str(text)
    return text if len(text) <= limit else text[:limit] + f"… [{len(text) - limit} more chars]"


def _badge(outcome: str) -> str:
    color = OUTCOME_COLORS.get(outcome, "#455a64")
    return f'<span class="badge" style="background:{color}">{html.escape(outcome)}</span>'


def _html_page(
    result: EvalResult,
    name: str,
    policy: str,
    description: str,
    status: str,
    rows: Sequence[tuple[str, str]],
    plots: Sequence[tuple[str, Path]],
    chosen: Sequence[Mapping[str, Any]],
    images: Mapping[int, str | None],
) -> str:
    esc = html.escape
    out = result.out
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(name)} · {esc(policy)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{esc(name)} · {esc(policy)}</h1>",
        f"<p class='sub'>{esc(description)} — seed {result.config.seed}, policy spec "
        f"<code>{esc(result.config.policy)}</code></p>",
        f"<p class='headline'>Success <b>{esc(fmt_rate(result.metrics, 'eval/success'))}</b></p>",
        (
            f"<p class='ok'>{esc(status)}</p>"
            if result.complete
            else f"<p class='partial'>{esc(status)}</p>"
        ),
        "<table><tr><th>metric</th><th>value</th></tr>",
        *[f"<tr><td>{esc(a)}</td><td>{esc(b)}</td></tr>" for a, b in rows],
        "</table><div class='plots'>",
    ]
    for title, path in plots:
        parts.append(
            f"<figure><img alt='{esc(title)}' src='{_data_url(path)}'>"
            f"<figcaption>{esc(title)}</figcaption></figure>"
        )
    parts.append("</div>")
    if chosen:
        parts.append("<h2>Example episodes</h2>")
    for r in chosen:
        info = r.get("reset_info", {})
        verdict = "solved" if r.get("success") else "not solved"
        parts.append("<div class='episode'>")
        image = images.get(r["index"])
        if image:
            parts.append(f"<img alt='hand' src='{_data_url(out / image, _EXAMPLE_IMAGE_PX)}'>")
        parts.append(f"<h3>Episode {r['index']} — {verdict} in {len(r['steps'])} attempt(s)</h3>")
        if info.get("cards"):
            parts.append(
                f"<p>Cards <b>{esc(' '.join(map(str, info['cards'])))}</b> · numbers "
                f"{esc(str(info.get('numbers')))} · expert <code>"
                f"{esc(str(info.get('expert_answer', '')))}</code></p>"
            )
        parts.append(
            f"<details><summary>prompt</summary><pre>{esc(r.get('prompt', ''))}</pre>"
            "</details><div class='clear'></div>"
        )
        parts.append(
            "<table><tr><th>#</th><th>answer</th><th>outcome</th><th>reward</th>"
            "<th>feedback</th></tr>"
        )
        for step in r["steps"]:
            parts.append(
                f"<tr><td>{step.get('attempt')}</td><td><pre>{esc(_clip(step.get('action', '')))}"
                f"</pre></td><td>{_badge(str(step.get('outcome', '')))}</td>"
                f"<td>{float(step.get('reward', 0)):+g}</td>"
                f"<td>{esc(str(step.get('feedback', '')))}</td></tr>"
            )
        parts.append("</table></div>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
