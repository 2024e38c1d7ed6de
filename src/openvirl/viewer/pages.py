"""Server-rendered HTML of every viewer page, from plain data: no CDN, nothing from the network.

Each ``*_page`` function returns a whole document; `layout` adds the navigation bar, the
stylesheet and the small script under ``/static``. The pages that show values read from run
files (metrics, configurations, suite tables: the runs list, a run, the base layout) are Jinja2
templates under ``templates/`` with autoescaping on, so a value from a hostile ``metrics.json``
is always text and a new page cannot forget to escape it; helpers that return markup
(`rate_bar`, `badge`) return `markupsafe.Markup` built from numbers and escaped text only.
The remaining pages build their HTML with `esc` around every value. Pages work without
JavaScript (every step of an episode is listed, every map control is a link); the script adds
the step slider, map zoom and click-to-view.

Example
-------
>>> from openvirl.viewer.pages import message_page
>>> "No such run" in message_page("No such run", "Check the id.")
True
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from openvirl.viewer.episodes import episode_summary, expected_action, steps_view
from openvirl.viewer.runs import Run

OUTCOME_COLORS: dict[str, str] = {
    "correct": "#2e7d32",
    "wrong_value": "#f9a825",
    "wrong_numbers": "#ef6c00",
    "wrong_cards": "#8e24aa",
    "illegal_formula": "#c62828",
    "no_answer": "#6d1b1b",
    "attempts_exhausted": "#757575",
    "wrong_action": "#ef6c00",
    "wrong_observation": "#8e24aa",
    "failed": "#757575",
}
"""Outcome colours, as in the evaluation report's plots."""

METRIC_ROWS: tuple[tuple[str, str, str], ...] = (
    ("eval/success", "Success (solved within the attempts)", "rate"),
    ("eval/per_step_accuracy", "Per-attempt accuracy", "rate"),
    ("eval/recognition_accuracy", "Recognition, all attempts", "rate"),
    ("eval/recognition_accuracy_first", "Recognition, first attempt", "rate"),
    ("eval/rule_collapse_rate", "Rule collapse (face card as 10), all attempts", "rate"),
    ("eval/rule_collapse_first", "Rule collapse, first attempt", "rate"),
    ("eval/format_error_rate", "Unreadable answers", "share"),
    ("eval/mean_attempts", "Mean attempts per episode", "number"),
    ("eval/mean_return", "Mean return", "number"),
    ("eval/episodes", "Episodes", "int"),
    ("eval/tokens_generated", "Tokens generated", "int"),
    ("eval/wall_s", "Wall time (s)", "number"),
    ("eval/episodes_per_s", "Episodes per second", "number"),
    ("eval/model_time_share", "Share of time inside the policy", "share"),
)
"""(key, label, kind) of the metrics a run page lists first."""

SLICES: tuple[tuple[str, str], ...] = (
    ("n_solutions", "solutions per hand"),
    ("needs_fractions", "needs fractions"),
)

EPISODES_PER_PAGE = 100

esc = html.escape

TEMPLATES = Path(__file__).with_name("templates")


# ---------------------------------------------------------------------------- formatting
def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range (JSON allows 10**400)
        return None
    return number if math.isfinite(number) else None


def pct(value: Any, digits: int = 1) -> str:
    """``"12.3%"``, or ``"—"`` for a missing or NaN value."""
    v = _num(value)
    return "—" if v is None else f"{v:.{digits}%}"


def ci_text(ci: Any) -> str:
    """``"[8.1–17.9%]"`` for a (low, high) pair, "" otherwise."""
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) is not None for c in ci):
        return f"[{ci[0] * 100:.1f}–{ci[1] * 100:.1f}%]"
    return ""


def fmt_metric(metrics: Mapping[str, Any], key: str, kind: str) -> str | None:
    """A metric as text by kind (rate with its interval, share, int, number); None if absent."""
    value = _num(metrics.get(key))
    if value is None:
        return None
    if kind == "rate":
        return f"{value:.1%} {ci_text(metrics.get(f'{key}_ci95'))}".strip()
    if kind == "share":
        return f"{value:.1%}"
    if kind == "int":
        return f"{int(value):,}"
    return f"{value:,.2f}"


def badge(outcome: str) -> str:
    """A coloured pill for an outcome name."""
    if not outcome:
        return ""
    color = OUTCOME_COLORS.get(outcome, "#455a64")
    return f'<span class="badge" style="background:{color}">{esc(outcome)}</span>'


def dots(outcomes: Sequence[str]) -> str:
    """One small coloured dot per attempt, titled with its outcome."""
    return "".join(
        f'<span class="dot" title="attempt {i}: {esc(o)}" '
        f'style="background:{OUTCOME_COLORS.get(o, "#455a64")}"></span>'
        for i, o in enumerate(outcomes, 1)
    )


def rate_bar(value: Any, ci: Any, *, width: int = 120) -> str:
    """A small inline SVG bar of a rate with its interval whisker (nothing for a non-rate)."""
    v = _num(value)
    if v is None or not 0.0 <= v <= 1.0:
        return ""
    parts = [
        f'<svg class="ratebar" width="{width}" height="12" viewBox="0 0 100 12" '
        'preserveAspectRatio="none" aria-hidden="true">',
        '<rect class="track" x="0" y="2" width="100" height="8" rx="2"/>',
        f'<rect class="fill" x="0" y="2" width="{v * 100:.1f}" height="8" rx="2"/>',
    ]
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) is not None for c in ci):
        lo, hi = ci[0] * 100, ci[1] * 100
        parts.append(f'<path class="whisker" d="M{lo:.1f} 6H{hi:.1f}M{lo:.1f} 3V9M{hi:.1f} 3V9"/>')
    parts.append("</svg>")
    return "".join(parts)


def _qs(params: Mapping[str, Any], **changes: Any) -> str:
    merged = {**params, **changes}
    clean = {k: v for k, v in merged.items() if v not in (None, "")}
    return "?" + urlencode(clean) if clean else ""


def _pre(text: Any, cls: str = "") -> str:
    return f'<pre class="{cls}">{esc(str(text))}</pre>'


def _fixed2(value: Any) -> str:
    v = _num(value)
    return "—" if v is None else f"{v:,.2f}"


def _json_text(data: Any) -> str:
    try:
        return json.dumps(data, indent=2, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return str(data)


def _environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        pct=pct, ci_text=ci_text, as_count=count_text, json_text=_json_text, fixed2=_fixed2
    )
    env.globals.update(
        nav=NAV,
        # Markup built from numbers (rate_bar) and from escaped text (badge) only.
        rate_bar=lambda value, ci, width=120: Markup(rate_bar(value, ci, width=width)),
        badge=lambda outcome: Markup(badge(str(outcome))),
    )
    return env


_ENV: Environment | None = None


def _render(template: str, **context: Any) -> str:
    """Render one of ``templates/`` (autoescaped) with `context`."""
    global _ENV
    if _ENV is None:
        _ENV = _environment()
    return _ENV.get_template(template).render(**context)


# ---------------------------------------------------------------------------- layout
NAV = (
    ("runs", "/", "Runs"),
    ("episodes", "/episodes", "Episodes"),
    ("cities", "/cities", "Cities"),
)


def layout(
    title: str, body: str, *, active: str = "", crumbs: Sequence[tuple[str, str]] = ()
) -> str:
    """A whole page: head, navigation bar, breadcrumbs and `body` (HTML its caller escaped)."""
    return _render("base.html", title=title, body=Markup(body), active=active, crumbs=list(crumbs))


def message_page(title: str, message: str, *, hint: str = "", status_note: str = "") -> str:
    """A page that explains a problem in words (unknown run, unreadable folder, server error)."""
    body = (
        f"<h1>{esc(title)}</h1><div class='notice'><p>{esc(message)}</p>"
        + (f"<p class='hint'>{esc(hint)}</p>" if hint else "")
        + "</div>"
        + (f"<p class='muted'>{esc(status_note)}</p>" if status_note else "")
        + "<p><a href='/'>Back to the runs</a> · <a href='/cities'>Explore a city</a></p>"
    )
    return layout(title, body)


def problems_box(problems: Sequence[str]) -> str:
    """A warning box listing what is missing or broken in a run folder."""
    if not problems:
        return ""
    items = "".join(f"<li>{esc(p)}</li>" for p in problems)
    return f"<div class='notice warn'><strong>Heads up</strong><ul>{items}</ul></div>"


# ---------------------------------------------------------------------------- runs
def count_text(value: Any) -> str:
    """A count as a number (``"1,234"``; ``"12.50"`` if not whole), ``"—"`` for a non-number."""
    v = _num(value)
    if v is None:
        return "—"
    return f"{int(v):,}" if v.is_integer() else f"{v:,.2f}"


def _episodes_cell(run: Run) -> str:
    done = _num(run.metrics.get("eval/episodes"))
    rows = run.suite.get("rows") if run.kind == "suite" else None
    if done is None and isinstance(rows, list):
        done = sum(_num(r.get("episodes")) or 0.0 for r in rows if isinstance(r, dict))
    if done is None:
        return "—"
    planned = f" / {count_text(run.episodes_planned)}" if run.episodes_planned else ""
    return f"{count_text(done)}{planned}"


def _run_options(runs: Sequence[Run], selected: str | None) -> str:
    return "".join(
        f'<option value="{esc(r.id)}"{" selected" if r.id == selected else ""}>'
        f"{esc(r.id)} — {esc(r.title)}</option>"
        for r in runs
        if r.ok
    )


def _run_row(run: Run) -> dict[str, Any]:
    """What the runs page shows of one run; a run whose files break this shows why instead."""
    try:
        metric, value, ci = run.headline()
        name = "" if metric == "eval/success" else metric.removeprefix("eval/").replace("_", " ")
        return {"run": run, "value": value, "ci": ci, "name": name,
                "episodes": _episodes_cell(run), "error": ""}  # fmt: skip
    except Exception as exc:  # a hostile metrics.json must not take the list down
        why = f"cannot show this run's numbers ({type(exc).__name__}); see its page"
        return {"run": run, "value": None, "ci": [], "name": "", "episodes": "—", "error": why}


def runs_page(runs: Sequence[Run]) -> str:
    """The home page: every run with its headline numbers, and a form to compare two."""
    return _render(
        "runs.html",
        title="Runs",
        active="runs",
        crumbs=[],
        runs=list(runs),
        rows=[_run_row(run) for run in runs],
        comparable=[r for r in runs if r.ok],
    )


def _slices(metrics: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    keys = [k for k in metrics if isinstance(k, str)]
    for name, label in SLICES:
        prefix = f"eval/by_{name}/"
        buckets = sorted(
            {k[len(prefix) :].rsplit("/", 1)[0] for k in keys if k.startswith(prefix)},
            key=lambda b: (int("".join(c for c in b.split("-")[0] if c.isdigit())[:18] or -1), b),
        )
        if not buckets:
            continue
        rows = [
            {
                "bucket": b,
                "episodes": metrics.get(f"{prefix}{b}/episodes"),
                "success": fmt_metric(metrics, f"{prefix}{b}/success", "rate") or "—",
                "value": metrics.get(f"{prefix}{b}/success"),
                "ci": metrics.get(f"{prefix}{b}/success_ci95"),
            }
            for b in buckets
        ]
        out.append({"label": label, "rows": rows})
    return out


def _outcomes(metrics: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return sorted(
        ((k.rsplit("/", 1)[1], v) for k, v in metrics.items() if k.startswith("eval/outcomes/")),
        key=lambda kv: -(_num(kv[1]) or 0),
    )


def _suite_rows(run: Run, members: Mapping[str, Run]) -> list[dict[str, Any]]:
    rows_data = run.suite.get("rows") or []
    if not isinstance(rows_data, list):
        return []
    by_folder = {m.path.name: m for m in members.values()}
    rows = []
    for row in rows_data:
        if not isinstance(row, dict):
            continue
        paper = row.get("paper") if isinstance(row.get("paper"), dict) else {}
        member = by_folder.get(str(row.get("run", "")))
        rows.append(
            {
                "member": member.id if member else None,
                "setting": f"{row.get('task')}/{row.get('split')}",
                "metric": str(row.get("metric", "")),
                "value": row.get("value"),
                "ci": row.get("ci95"),
                "episodes": row.get("episodes"),
                "init": paper.get("init"),
                "rl": paper.get("rl"),
                "sft": paper.get("sft"),
            }
        )
    return rows


def _flat_numbers(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += _flat_numbers(value, name + ".")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            out.append((name, value))
    return out


def run_page(
    run: Run,
    *,
    members: Mapping[str, Run],
    others: Sequence[Run],
    n_episodes: int,
    extra_problems: Sequence[str] = (),
) -> str:
    """One run: headline, metrics, slices, plots, configuration; suites list their settings.

    Every value from the run's files reaches the page through the autoescaping template
    ``run.html``; a part that its files break is replaced by a note naming the file.
    """
    crumbs = [("Runs", "/"), (run.id, "")]
    if run.parent:
        crumbs = [("Runs", "/"), (run.parent, f"/runs/{run.parent}"), (run.id, "")]
    problems = [*run.problems, *extra_problems]
    task_spec = run.config.get("task")
    description = ""
    if isinstance(task_spec, dict) and task_spec.get("description"):
        description = str(task_spec["description"])
    view: dict[str, Any] = {
        "headline": None, "suite_rows": [], "facts": [], "plain_metrics": [],
        "metric_rows": [], "slices": [], "outcomes": [],
    }  # fmt: skip
    try:
        metric, value, ci = run.headline()
        if value is not None:
            view["headline"] = {
                "label": metric.removeprefix("eval/").replace("_", " "),
                "value": value, "ci": ci, "episodes": _episodes_cell(run),
            }  # fmt: skip
        if run.kind == "suite":
            view["suite_rows"] = _suite_rows(run, members)
        if run.kind in ("agent", "benchmark", "training"):
            view["facts"] = _flat_numbers(run.manifest or run.config)[:60]
            view["plain_metrics"] = _flat_numbers(run.metrics)
        elif run.metrics:
            view["metric_rows"] = [
                {"label": label, "text": text, "rate": kind == "rate",
                 "value": run.metrics.get(key), "ci": run.metrics.get(f"{key}_ci95")}
                for key, label, kind in METRIC_ROWS
                if (text := fmt_metric(run.metrics, key, kind)) is not None
            ]  # fmt: skip
            view["slices"] = _slices(run.metrics)
            view["outcomes"] = _outcomes(run.metrics)
    except Exception as exc:  # hostile or broken files: say which, show the rest
        problems.append(
            f"some numbers of this run cannot be shown ({type(exc).__name__}: {exc}); check "
            "its metrics.json, suite.json and config.json"
        )
    return _render(
        "run.html",
        title=run.id,
        active="runs",
        crumbs=crumbs,
        run=run,
        description=description,
        problems=problems,
        n_episodes=n_episodes,
        compare=[o for o in others if o.id != run.id and o.ok],
        **view,
    )


# ---------------------------------------------------------------------------- compare
def compare_page(
    runs: Sequence[Run],
    a: Run | None,
    b: Run | None,
    rows: Sequence[Mapping[str, Any]],
    note: str = "",
) -> str:
    """Two runs side by side: per setting, each metric with both values and B − A.

    Rendered by the autoescaping template ``compare.html``; numbers are formatted here.
    """
    shown = []
    for row in rows:
        label = row.get("label") or f"{row['task'] or '—'}/{row['split'] or '—'}"
        shown.append(
            {**row, "label": label, "metrics": [_compare_cells(m) for m in row["metrics"]]}
        )
    problems = [f"A: {p}" for p in a.problems] + [f"B: {p}" for p in b.problems] if a and b else []
    return _render(
        "compare.html",
        title="Compare",
        active="runs",
        crumbs=[("Runs", "/"), ("Compare", "")],
        runs=list(runs),
        a=a,
        b=b,
        rows=shown,
        note=note,
        problems=problems,
    )


def _compare_cells(m: Mapping[str, Any]) -> dict[str, Any]:
    """A compared metric with its difference as text and its colour class."""
    rate = m["kind"] == "rate"
    delta = _num(m.get("delta"))
    out = {**m, "delta": delta, "cls": "same", "delta_text": "", "delta_ci_text": ""}
    if delta is None:
        return out
    out["delta_text"] = f"{delta * 100:+.1f} pt" if rate else f"{delta:+.2f}"
    ci = m.get("delta_ci95")
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_num(c) is not None for c in ci):
        out["delta_ci_text"] = f"[{ci[0] * 100:+.1f}, {ci[1] * 100:+.1f}]"
    if m.get("significant"):
        better = (delta > 0) == bool(m.get("higher_is_better"))
        out["cls"] = "better" if better else "worse"
    return out


# ---------------------------------------------------------------------------- episodes
def episodes_page(
    runs: Sequence[Run],
    items: Sequence[tuple[Run, Mapping[str, Any]]],
    *,
    params: Mapping[str, str],
    facets: Mapping[str, Sequence[str]],
    page: int,
    total: int,
    problems: Sequence[str] = (),
) -> str:
    """The filterable list of episodes across runs (or of one run)."""

    def select(name: str, values: Sequence[str], label: str) -> str:
        current = params.get(name, "")
        options = "<option value=''>any</option>" + "".join(
            f"<option value='{esc(v)}'{' selected' if v == current else ''}>{esc(v)}</option>"
            for v in values
        )
        return f"<label>{label} <select name='{name}'>{options}</select></label>"

    run_values = [r.id for r in runs if r.ok]
    success_select = select("success", ["yes", "no"], "solved")
    form = (
        "<form class='filters card' method='get' action='/episodes'>"
        + select("run", run_values, "run")
        + select("task", facets.get("task", []), "task")
        + select("split", facets.get("split", []), "split")
        + success_select
        + select("outcome", facets.get("outcome", []), "outcome")
        + "<button type='submit'>Filter</button> <a href='/episodes'>clear</a></form>"
    )
    start = (page - 1) * EPISODES_PER_PAGE
    rows = []
    for run, record in items:
        s = episode_summary(record)
        href = f"/runs/{esc(run.id)}/episodes/{s['index']}"
        what = s["cards"] or s["city"] or ""
        result = (
            "<span class='status ok'>solved</span>"
            if s["success"]
            else "<span class='status bad'>not solved</span>"
            if s["success"] is False
            else ""
        )
        reward = s["total_reward"]
        rows.append(
            f"<tr data-href='{href}'><td><a href='{href}'>#{esc(str(s['index']))}</a></td>"
            f"<td>{esc(run.id)}</td><td>{esc(s['task'])}/{esc(s['split'])}</td>"
            f"<td>{esc(what)}</td><td>{result}</td><td>{badge(s['outcome'])}</td>"
            f"<td>{dots(s['outcomes'])}</td>"
            f"<td class='num'>{'' if reward is None else f'{float(reward):+g}'}</td>"
            f"<td class='answer'><code>{esc(s['last_answer'])}</code></td></tr>"
        )
    pages = max(1, -(-total // EPISODES_PER_PAGE))
    pager = ""
    if pages > 1:
        prev_link = (
            f"<a href='/episodes{_qs(params, page=page - 1)}'>← previous</a>" if page > 1 else ""
        )
        next_link = (
            f"<a href='/episodes{_qs(params, page=page + 1)}'>next →</a>" if page < pages else ""
        )
        pager = f"<p class='pager'>{prev_link} page {page} of {pages} {next_link}</p>"
    shown = f"{start + 1}–{start + len(items)} of {total}" if items else f"0 of {total}"
    table = (
        "<table class='grid episodes'><thead><tr><th>#</th><th>run</th><th>setting</th>"
        "<th>cards / city</th><th>result</th><th>outcome</th><th>attempts</th><th>return</th>"
        "<th>last answer</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        if rows
        else "<div class='notice'>No episode matches these filters.</div>"
    )
    body = (
        f"<h1>Episodes <span class='muted'>({shown})</span></h1>{form}"
        + problems_box(problems)
        + table
        + pager
        + "<p class='muted small'>The outcome filter matches the episode's outcome or that of "
        "any of its attempts.</p>"
    )
    return layout("Episodes", body, active="episodes", crumbs=[("Episodes", "")])


def _info_table(info: Mapping[str, Any]) -> str:
    if not info:
        return ""
    rows = "".join(
        f"<tr><td>{esc(str(k))}</td><td><code>"
        f"{esc(json.dumps(v, ensure_ascii=False, default=str)[:400])}"
        "</code></td></tr>"
        for k, v in info.items()
    )
    return f"<table class='grid kv'>{rows}</table>"


HIGHLIGHTS: tuple[tuple[str, str], ...] = (
    ("parsed_action", "action read"),
    ("stated_observation", "observation stated"),
    ("landmark_correct", "landmark right"),
    ("intersection_correct", "intersection right"),
    ("moved", "moved"),
    ("goal_distance_m", "to the goal (m)"),
    ("value", "value of the formula"),
    ("recognized_cards", "cards read"),
    ("recognized_correct", "cards right"),
    ("rule_collapse", "rule collapse"),
)
"""Step info entries shown beside the verdict (the rest is under "Step info")."""


def _attempt_note(step: Mapping[str, Any]) -> str:
    """ " · attempt 2 at this position" for a navigation step that revises an answer."""
    here = step.get("attempt_here")
    if isinstance(here, int) and here > 1:
        return f" · attempt {here} at this position"
    return ""


def _highlights(info: Mapping[str, Any]) -> str:
    rows = [
        f"<tr><td>{esc(label)}</td><td><code>{esc(_short(info[key]))}</code></td></tr>"
        for key, label in HIGHLIGHTS
        if info.get(key) is not None
    ]
    return f"<table class='grid kv'>{''.join(rows)}</table>" if rows else ""


def _short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _grid_labels(img_html: str, grid: bool) -> str:
    """A navigation view grid with its quadrants named (front, right; back, left), as the
    prompt names them; other images unchanged."""
    if not grid:
        return img_html
    labels = "".join(
        f"<span class='q q{k}'>{name}</span>"
        for k, name in enumerate(("front", "right", "back", "left"))
    )
    return f"<div class='grid-obs'>{img_html}{labels}</div>"


def episode_page(
    run: Run,
    record: Mapping[str, Any],
    *,
    image_url: str | None,
    map_html: str,
    prev_index: int | None,
    next_index: int | None,
    step: int = 1,
) -> str:
    """One episode, step by step: prompt, model text, verdict, image and map."""
    s = episode_summary(record)
    steps = steps_view(record)
    step = max(1, min(step, len(steps)))
    info = record.get("reset_info") if isinstance(record.get("reset_info"), dict) else {}
    result = (
        "<span class='status ok'>solved</span>"
        if s["success"]
        else "<span class='status bad'>not solved</span>"
        if s["success"] is False
        else ""
    )
    nav_links = []
    base = f"/runs/{esc(run.id)}/episodes"
    if prev_index is not None:
        nav_links.append(
            f"<a class='button ghost' id='prev-episode' href='{base}/{prev_index}'>"
            f"← episode {prev_index}</a>"
        )
    nav_links.append(f"<a class='button ghost' href='/episodes?run={esc(run.id)}'>all episodes</a>")
    if next_index is not None:
        nav_links.append(
            f"<a class='button ghost' id='next-episode' href='{base}/{next_index}'>"
            f"episode {next_index} →</a>"
        )
    facts = []
    if isinstance(info.get("cards"), list) and info["cards"]:
        facts.append(f"cards <b>{esc(' '.join(map(str, info['cards'])))}</b>")
    if info.get("numbers"):
        facts.append(f"numbers {esc(str(info['numbers']))}")
    if info.get("target") is not None:
        facts.append(f"target {esc(str(info['target']))}")
    if info.get("rule"):
        facts.append(f"rule {esc(str(info['rule']))}")
    if s["city"]:
        facts.append(f"city {esc(s['city'])}")
    if record.get("seed") is not None:
        facts.append(f"seed {esc(str(record['seed']))}")
    expert = info.get("expert_answer")
    header = (
        f"<h1>Episode {esc(str(s['index']))} <span class='muted'>· {esc(s['task'])}/"
        f"{esc(s['split'])} · {esc(s['policy'] or run.policy)}</span></h1>"
        f"<div class='episode-head'><div>{result} {badge(s['outcome'])} "
        f"<span class='muted'>{len(steps)} step(s), return {float(s['total_reward'] or 0):+g}"
        f"</span><div class='facts'>{' · '.join(facts)}</div></div>"
        f"<div class='actions'>{''.join(nav_links)}</div></div>"
    )
    sections = []
    grid = str(s["task"] or "").startswith("nav")  # navigation images are 2x2 view grids
    for k, st in enumerate(steps, start=1):
        hidden = "" if k == step else " hidden"
        prompt = st["prompt"]
        if prompt:
            prompt_html = (
                f"<details class='prompt' {'open' if len(str(prompt)) < 1600 else ''}>"
                f"<summary>Prompt</summary>{_pre(prompt)}</details>"
            )
        else:
            prompt_html = (
                "<p class='muted small'>Only the first prompt is stored: this attempt saw it "
                "updated with the verifier's feedback (GeneralPoints) or with the new "
                "observation and action history (navigation).</p>"
            )
        reward = "—" if st["reward"] is None else f"{st['reward']:+g}"
        gt = ""
        expected = expected_action(record, k)
        if expected:
            gt = f"<p class='muted small'>expected action here: <code>{esc(expected)}</code></p>"
        step_image = ""
        if st["image"]:
            step_image = _grid_labels(
                f"<img class='obs' alt='observation of step {k}' "
                f"src='/runs/{esc(run.id)}/files/{esc(st['image'])}'>",
                grid,
            )
        sections.append(
            f"<section class='step{hidden}' data-step='{k}' id='step-{k}'>"
            f"<h2>Step {k} <span class='muted small'>of {len(steps)}"
            f"{_attempt_note(st)}</span></h2>"
            f"{prompt_html}{step_image}"
            f"<h3>Model's answer</h3>{_pre(st['action'], 'answer')}"
            f"<div class='verdict'><div>{badge(st['outcome'])}</div>"
            f"<div><span class='muted'>reward</span> <b>{reward}</b></div>"
            f"<div><span class='muted'>return so far</span> {st['return_so_far']:+g}</div></div>"
            f"<h3>Verifier's feedback</h3>{_pre(st['feedback'] or '—', 'feedback')}"
            f"{gt}{_highlights(st['info'])}"
            + (
                f"<details><summary>Step info</summary>{_info_table(st['info'])}</details>"
                if st["info"]
                else ""
            )
            + "</section>"
        )
    stepper = (
        f"<div class='stepper' data-steps='{len(steps)}' data-current='{step}'>"
        f"<a class='button' id='prev-step' href='?step={max(1, step - 1)}'>◀ prev</a>"
        f"<input type='range' id='step-slider' min='1' max='{len(steps)}' value='{step}' "
        f"aria-label='step'><a class='button' id='next-step' "
        f"href='?step={min(len(steps), step + 1)}'>next ▶</a>"
        f"<span id='step-label'>step {step} of {len(steps)}</span>"
        f"<span class='dots'>{dots([st['outcome'] for st in steps])}</span></div>"
    )
    visual = ""
    if image_url:
        visual += (
            "<figure class='episode-image'>"
            + _grid_labels(
                f"<img id='episode-image' alt='what the model saw' src='{esc(image_url)}'>", grid
            )
            + "<figcaption>"
            + (
                (
                    "the first observation; each step shows the one it answered"
                    if any(st["image"] for st in steps[1:])
                    else "the image the model saw"
                )
                if record.get("image")
                else "the hand (drawn for the reader; the model read text)"
            )
            + "</figcaption></figure>"
        )
    visual += map_html
    if info.get("instruction"):
        visual += f"<h3>Instruction</h3>{_pre(info['instruction'])}"
    if expert:
        visual += f"<details><summary>Expert answer</summary>{_pre(expert)}</details>"
    if info:
        visual += f"<details><summary>Reset info</summary>{_info_table(info)}</details>"
    body = (
        header
        + problems_box(run.problems if not run.ok else [])
        + f"<div class='episode-grid'><div class='steps-col'>{stepper}{''.join(sections)}</div>"
        f"<div class='visual-col'>{visual}</div></div>"
    )
    crumbs = [
        ("Runs", "/"),
        (run.id, f"/runs/{run.id}"),
        ("Episodes", f"/episodes?run={run.id}"),
        (f"#{s['index']}", ""),
    ]
    return layout(f"Episode {s['index']}", body, active="episodes", crumbs=crumbs)


# ---------------------------------------------------------------------------- cities
def cities_page(catalog: Sequence[Mapping[str, Any]], note: str = "") -> str:
    """The bundled and user cities, each a link to its explorer."""
    cards = "".join(
        f"<a class='city card' href='/cities/{esc(c['name'])}'><h2>{esc(c['name'])}</h2>"
        f"<p>{esc(c.get('description') or '')}</p>"
        f"<p class='muted small'>{esc(c.get('source') or '')}"
        + (f" · {c['size_bytes'] / 1e6:.1f} MB" if c.get("size_bytes") else "")
        + (" · loaded" if c.get("loaded") else "")
        + "</p></a>"
        for c in catalog
    )
    body = (
        "<h1>Cities</h1><p class='muted'>Real OpenStreetMap extracts, bundled and offline. Pick "
        "one to search its places, walk between two of them and look around in street views.</p>"
        + (f"<div class='notice'>{esc(note)}</div>" if note else "")
        + f"<div class='cities'>{cards or '<p>No city is available.</p>'}</div>"
    )
    return layout("Cities", body, active="cities", crumbs=[("Cities", "")])


def _route_end(place: Any) -> str:
    """A route end as `CityService.resolve` reads it back: the OSM id, else ``lat,lon``."""
    if not isinstance(place, Mapping):
        return ""
    if place.get("id"):
        return str(place["id"])
    return f"{float(place.get('lat', 0)):.7f},{float(place.get('lon', 0)):.7f}"


CITY_PARAMS = ("q", "from", "to", "from_ref", "to_ref", "lat", "lon", "heading", "fov")
"""Query parameters of the city explorer, carried from one click to the next."""


def city_page(
    name: str,
    *,
    params: Mapping[str, str],
    stats: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    route: Mapping[str, Any] | None,
    ends: Mapping[str, str],
    map_html: str,
    view: Mapping[str, Any] | None,
    errors: Sequence[str],
) -> str:
    """The city explorer: search, route with instructions, map and a street view."""
    q = params.get("q", "")
    keep = {k: v for k, v in params.items() if k in CITY_PARAMS}
    search = (
        f"<form class='search' method='get' action='/cities/{esc(name)}'>"
        f"<input type='search' name='q' id='search-box' value='{esc(q)}' "
        "placeholder='Search places: cafe, museum, a name, \"pharmacy near …\"' autofocus>"
        + "".join(
            f"<input type='hidden' name='{k}' value='{esc(v)}'>"
            for k, v in keep.items()
            if k != "q" and v
        )
        + "<button type='submit'>Search</button></form>"
    )
    result_items = []
    for i, place in enumerate(results, start=1):
        ref = place.get("id") or f"{place['lat']:.6f},{place['lon']:.6f}"
        latlon = {"lat": f"{place['lat']:.6f}", "lon": f"{place['lon']:.6f}"}
        result_items.append(
            f"<li class='result'><span class='num-badge'>{i}</span><div><b>{esc(place['name'])}</b>"
            f" <span class='muted small'>{esc(str(place.get('category') or ''))}</span>"
            "<div class='links small'>"
            f"<a class='set-from' href='{_qs(keep, **{'from': place['name'], 'from_ref': ref})}'>"
            "from here</a>"
            f" · <a class='set-to' href='{_qs(keep, to=place['name'], to_ref=ref)}'>to here</a>"
            f" · <a href='{_qs(keep, **latlon)}'>street view</a></div></div></li>"
        )
    if q and not results:
        result_items.append(f"<li class='muted'>Nothing in {esc(name)} matches “{esc(q)}”.</li>")
    results_html = (
        f"<ol class='results' id='results'>{''.join(result_items)}</ol>" if result_items else ""
    )
    route_form = (
        f"<form class='route-form' method='get' action='/cities/{esc(name)}'>"
        f"<input type='hidden' name='q' value='{esc(q)}'>"
        + "".join(
            f"<input type='hidden' name='{k}' value='{esc(v)}'>"
            for k, v in keep.items()
            if k in ("from_ref", "to_ref", "lat", "lon", "heading", "fov") and v
        )
        + f"<label>From <input name='from' value='{esc(params.get('from', ''))}' "
        f"placeholder='a place, an address or lat,lon' title='{esc(ends.get('from', ''))}'></label>"
        f"<label>To <input name='to' value='{esc(params.get('to', ''))}' "
        f"placeholder='a place, an address or lat,lon' title='{esc(ends.get('to', ''))}'></label>"
        "<button type='submit'>Walk</button></form>"
    )
    route_html = ""
    route_refs = (
        _route_end(route.get("origin")) if route else "",
        _route_end(route.get("destination")) if route else "",
    )
    if route:
        steps = "".join(
            f"<li><div>{esc(st.get('instruction') or '')}</div>"
            f"<div class='muted small'>{esc(st.get('street') or 'unnamed way')} · "
            f"{st.get('distance_m', 0):.0f} m · heading {st.get('heading', 0):.0f}° "
            f"({esc(st.get('compass') or '')})"
            + (
                " · landmarks: "
                + esc("; ".join(lm.get("text") or lm.get("name", "") for lm in st["landmarks"]))
                if st.get("landmarks")
                else ""
            )
            + "</div></li>"
            for st in route.get("steps", [])
        )
        route_html = (
            f"<div class='route card' id='route'><h2>Walking route</h2><p><b>"
            f"{esc(ends.get('from', ''))}</b> → <b>{esc(ends.get('to', ''))}</b><br>"
            f"{route.get('length_m', 0):,.0f} m · {route.get('duration_s', 0) / 60:.0f} min on foot"
            f" · destination on your {esc(str(route.get('destination_relation') or '?'))}"
            f" · <a href='/api/cities/{esc(name)}/route.geojson"
            f"{_qs({'from': route_refs[0], 'to': route_refs[1]})}'>GeoJSON</a></p>"
            f"<ol class='instructions'>{steps}</ol></div>"
        )
    error_html = "".join(f"<div class='notice warn'>{esc(e)}</div>" for e in errors)
    view_html = ""
    if view is not None:
        heading = float(view["heading"])
        turns = "".join(
            f"<a class='button ghost' href='{_qs(keep, heading=f'{(heading + d) % 360:.0f}')}'>"
            f"{label}</a>"
            for d, label in ((-90, "⟲ 90°"), (-30, "⟲ 30°"), (30, "30° ⟳"), (90, "90° ⟳"))
        )
        compass = "".join(
            f"<a class='button ghost' href='{_qs(keep, heading=str(h))}'>{lbl}</a>"
            for h, lbl in ((0, "N"), (90, "E"), (180, "S"), (270, "W"))
        )
        where = esc(view.get("where") or "")
        if view.get("available"):
            picture = (
                f"<img id='street-view' alt='street view' src='{esc(view['url'])}' "
                "width='512' height='512'>"
            )
        else:
            why = view.get("why") or "Street views are not available."
            picture = f"<div class='notice' id='street-view-missing'>{esc(why)}</div>"
        view_html = (
            f"<div class='card view' id='view'><h2>Street view</h2><p class='muted small'>"
            f"{float(view['lat']):.6f}, {float(view['lon']):.6f} · heading {heading:.0f}° · "
            f"fov {float(view['fov']):.0f}°{' · ' + where if where else ''}</p>{picture}"
            f"<div class='turns'>{turns}{compass}</div></div>"
        )
    side = (
        f"{search}{results_html}{route_form}{error_html}{route_html}"
        "<p class='muted small'>Click the map to look around there; scroll to zoom, drag to "
        "pan.</p>"
    )
    facts = (
        f"{stats.get('pois', 0):,} places · {stats.get('walk_length_km', 0):,} km of walkways · "
        f"{stats.get('buildings', 0):,} buildings"
        if stats
        else ""
    )
    body = (
        f"<h1>{esc(name)} <span class='muted small'>{esc(str(stats.get('description', '')))}"
        f"</span></h1><p class='muted small'>{facts}</p>"
        f"<div class='explorer'><div class='side'>{side}</div>"
        f"<div class='mapcol'><div class='mapbox' data-click='view' data-heading="
        f"'{esc(params.get('heading', '0'))}'>{map_html}<div class='map-tools'>"
        "<button type='button' data-zoom='in'>+</button><button type='button' data-zoom='out'>−"
        "</button><button type='button' data-zoom='reset'>⟲</button></div></div>"
        f"{view_html}</div></div>"
    )
    return layout(name, body, active="cities", crumbs=[("Cities", "/cities"), (name, "")])
