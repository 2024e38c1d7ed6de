"""Run folders as the viewer sees them: read tolerantly, whatever state the folder is in.

A folder handed to ``openvirl view`` may be an evaluation run (`openvirl eval`), a suite of them,
an agent or benchmark run, a folder holding several runs, or something half-written: a run that
is still going (no ``metrics.json`` yet, a half line at the end of ``trajectories.jsonl``), one
that was killed, or a path with a typo. Reading never raises and never writes: what cannot be
read becomes a sentence in `Run.problems`, which the pages show instead of a server error.

Kinds, detected from the files:

=============  ========================================================================
``eval``       ``config.json`` with a ``config.task``, ``metrics.json`` with ``task``, or
               a ``trajectories.jsonl`` (`openvirl.evaluation.evaluate`)
``suite``      ``suite.json``; its ``<task>__<split>/`` sub-runs are listed as runs too
``agent``      ``manifest.json`` or ``config.json`` whose ``kind`` is ``agent``
``benchmark``  the same with ``kind`` ``benchmark`` (or a ``benchmark`` key)
``training``   ``metrics.csv`` with ``config.yaml`` or ``summary.json`` (`openvirl train`, and
               the ``init``/``rl``/``sft`` stages of `openvirl study`); its metrics are
               ``summary.json``'s numbers
``missing``    the path does not exist
``empty``      a folder with none of the files above (a run that has not started)
=============  ========================================================================

A folder with none of those files whose sub-folders are runs is a collection: each sub-run is
listed on its own (so ``openvirl view runs/eval`` shows every run in it).

Example
-------
>>> from openvirl.viewer.runs import RunStore
>>> store = RunStore(["runs/eval/gp-l__id__oracle__s42", "no/such/folder"])  # doctest: +SKIP
>>> [(run.id, run.kind, run.problems) for run in store.runs()]  # doctest: +SKIP
[('gp-l__id__oracle__s42', 'eval', []), ('folder', 'missing', ['... does not exist ...'])]
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CONFIG = "config.json"
METRICS = "metrics.json"
MANIFEST = "manifest.json"
SUITE = "suite.json"
RESULT = "result.json"
SESSIONS = "sessions.jsonl"
EPISODE_FILES = ("trajectories.jsonl", "episodes.jsonl", "results.jsonl")
"""Per-episode JSONL files, in order of preference (evaluation writes the first)."""
REPORTS = ("report.html", "report.md", "suite.md")
"""Report files, in order of preference (the run page links the first that exists)."""
PLOT_DIRS = ("plots", ".")
PLOT_SUFFIXES = (".png", ".svg", ".jpg", ".jpeg")
MAX_COLLECTION_DEPTH = 3
"""How deep a collection folder is searched for runs."""
MAX_JSON_BYTES = 16 * 1024 * 1024
"""Largest ``config.json``/``metrics.json``/... the viewer reads; a bigger one is a problem."""
MAX_EPISODE_BYTES = 256 * 1024 * 1024
"""Most bytes of an episode file the viewer reads (the rest is reported, not shown)."""
MAX_JSON_DEPTH = 64
"""Deepest nesting of lists and objects the viewer accepts in a JSON value (run files are
shallow; a deeper one is hostile or broken, and would break rendering by recursion)."""

TRAIN_METRICS = "metrics.csv"
TRAIN_SUMMARY = "summary.json"
TRAIN_CONFIG = "config.yaml"

KINDS = ("eval", "suite", "agent", "benchmark", "training", "missing", "empty")


@dataclass
class EpisodeFile:
    """The episodes of a run as read from its JSONL file, with what could not be read."""

    records: list[dict[str, Any]]
    """Complete records by index; a record without an ``index`` gets its line number."""
    problems: list[str] = field(default_factory=list)
    """Sentences about skipped lines (half-written, not JSON, duplicates)."""
    path: Path | None = None


@dataclass
class Run:
    """One run folder, summarized for listing, with its raw JSON kept for the detail pages.

    Attributes
    ----------
    id
        URL-safe name, unique in the store (the folder name; ``suite.sub`` for suite members).
    path
        The folder.
    kind
        One of `KINDS`.
    title
        A line for lists: ``"gp-l/id · oracle"``.
    task, split, policy
        What was evaluated, when known ("" otherwise).
    config, metrics, manifest, suite
        The parsed JSON files ({} when missing or unreadable).
    result
        An agent's or benchmark's ``result.json`` (None when absent).
    problems
        Sentences about what is missing or broken, shown on every page of the run.
    plots
        Image files of the report, relative to `path`.
    report
        The report file relative to `path`, or None.
    parent, children
        Run ids of the enclosing suite and of its members.
    """

    id: str
    path: Path
    kind: str
    title: str = ""
    task: str = ""
    split: str = ""
    policy: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    suite: dict[str, Any] = field(default_factory=dict)
    result: Any = None
    problems: list[str] = field(default_factory=list)
    plots: list[str] = field(default_factory=list)
    report: str | None = None
    parent: str | None = None
    children: list[str] = field(default_factory=list)
    episodes_planned: int | None = None
    complete: bool | None = None
    metrics_from_episodes: bool = False
    """True when `metrics` was recomputed from the episodes (no readable ``metrics.json``)."""
    source_file: str | None = None
    """For a bare episode file given instead of a folder: its name in `path` (its folder).
    Such a run's files are that file and the images its records name, nothing else."""

    @property
    def ok(self) -> bool:
        """Whether the folder exists and holds something this viewer can show."""
        return self.kind not in ("missing", "empty")

    def headline(self) -> tuple[str, float | None, list[float]]:
        """``(metric key, value, [low, high])`` of the run's headline metric.

        The task's own headline (``config.task.headline``: success for GeneralPoints,
        per-step accuracy for navigation), else ``eval/success``, else the first of
        ``accuracy``, ``success`` or ``score`` (agent and benchmark runs); the interval is []
        when none is stored.
        """
        task = self.config.get("task")
        keys = [task.get("headline")] if isinstance(task, dict) and task.get("headline") else []
        keys += ["eval/success", "accuracy", "success", "score", "eval/accuracy"]
        for key in keys:
            value, ci = headline_rate(self.metrics, str(key))
            if value is not None:
                return str(key), value, list(ci)
        return "eval/success", None, []

    def episode_file(self) -> Path | None:
        """The per-episode JSONL file that exists, or None."""
        if self.source_file is not None:
            return self.path / self.source_file
        for name in EPISODE_FILES:
            candidate = self.path / name
            if candidate.exists():
                return candidate
        return None

    def summary(self) -> dict[str, Any]:
        """JSON-able summary for ``/api/runs``."""
        return {
            "id": self.id,
            "path": str(self.path),
            "kind": self.kind,
            "title": self.title,
            "task": self.task,
            "split": self.split,
            "policy": self.policy,
            "episodes": _finite_or_none(self.metrics.get("eval/episodes")),
            "episodes_planned": self.episodes_planned,
            "complete": self.complete,
            "success": _finite_or_none(self.metrics.get("eval/success")),
            "success_ci95": self.metrics.get("eval/success_ci95"),
            "headline": dict(zip(("metric", "value", "ci95"), self.headline(), strict=True)),
            "problems": list(self.problems),
            "plots": list(self.plots),
            "report": self.report,
            "parent": self.parent,
            "children": list(self.children),
        }


# ---------------------------------------------------------------------------- small readers
class UnreadableFileError(OSError):
    """A run file that is not a regular file, or is larger than the viewer reads."""


def read_regular(path: Path, limit: int) -> tuple[bytes, bool]:
    """``(bytes, truncated)``: at most `limit` bytes of a regular file; never blocks.

    The file is opened without blocking and checked with ``fstat`` before reading, so a FIFO
    (which would wait forever for a writer), a device such as ``/dev/zero`` (endless) or a
    folder raises `UnreadableFileError` instead of hanging the viewer or filling its memory.
    A symbolic link to a regular file is followed (run folders may link their plots).
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    fd = os.open(path, flags)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableFileError(f"{path.name} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    return data[:limit], len(data) > limit


def is_regular(path: Path) -> bool:
    """Whether `path` is (or links to) a regular file; False for FIFOs, devices, folders."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except (OSError, ValueError):
        return False


def json_depth_ok(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `value` nests lists and objects at most `limit` deep (checked without recursion)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Iterable[Any] = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth >= limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def loads_bounded(text: str | bytes) -> Any:
    """`json.loads`, refusing values nested deeper than `MAX_JSON_DEPTH` with a ValueError.

    A line of 100,000 ``[`` makes `json.loads` raise RecursionError, and a value a little
    shallower than the interpreter's limit breaks every later recursive walk (rendering,
    re-encoding); both become a ValueError here.
    """
    try:
        value = json.loads(text)
    except RecursionError as exc:
        raise ValueError("nested too deeply") from exc
    if not json_depth_ok(value):
        raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def read_json(path: Path) -> tuple[Any, str | None]:
    """``(data, None)`` for a readable JSON file, ``(None, why)`` otherwise; never raises.

    Only regular files of at most `MAX_JSON_BYTES` are read (see `read_regular`).
    """
    try:
        raw, truncated = read_regular(path, MAX_JSON_BYTES)
    except FileNotFoundError:
        return None, f"{path.name} is missing"
    except UnreadableFileError as exc:
        return None, f"{exc}; it is not read"
    except OSError as exc:
        return None, f"{path.name} cannot be read ({exc.strerror or exc})"
    if truncated:
        return None, f"{path.name} is larger than {MAX_JSON_BYTES // 2**20} MiB; it is not read"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{path.name} is not UTF-8 text"
    if not text.strip():
        return None, f"{path.name} is empty (still being written?)"
    try:
        return loads_bounded(text), None
    except json.JSONDecodeError as exc:
        return None, f"{path.name} is not valid JSON (line {exc.lineno}: {exc.msg}); half-written?"
    except ValueError as exc:
        return None, f"{path.name} is not usable JSON ({exc})"


def read_jsonl(path: Path) -> EpisodeFile:
    """Every complete JSON object of a JSONL file, keyed by ``index``; never raises or writes.

    Unlike `openvirl.evaluation.evaluate.read_trajectories` this never repairs the file (the run
    may still be writing it): a half-written last line, a line that is not a JSON object, or a
    repeated index is skipped and counted in `EpisodeFile.problems`.
    """
    out = EpisodeFile(records=[], path=path)
    try:
        raw, truncated = read_regular(path, MAX_EPISODE_BYTES)
    except OSError as exc:
        out.problems.append(f"{path.name} cannot be read ({exc.strerror or exc})")
        return out
    lines = raw.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    if truncated:
        tail = b""  # cut by the cap, not half-written: drop it without a half-line note
        out.problems.append(
            f"{path.name} is larger than {MAX_EPISODE_BYTES // 2**20} MiB; only the episodes "
            "in its first part are shown"
        )
    by_index: dict[int, dict[str, Any]] = {}
    bad = duplicates = 0
    for number, line in enumerate(lines):
        if not line.strip():
            continue
        record = _json_object(line)
        if record is None:
            bad += 1
            continue
        index = record.get("index")
        if not isinstance(index, int) or isinstance(index, bool):
            index = number
            record["index"] = index
        if index in by_index:
            duplicates += 1
            continue
        by_index[index] = record
    if tail.strip():
        record = _json_object(tail)
        if record is not None and isinstance(record.get("index"), int):
            by_index.setdefault(record["index"], record)
        out.problems.append(
            f"the last line of {path.name} is half-written (a run in progress or killed); "
            "it is not shown"
        )
    if bad:
        out.problems.append(f"{bad} line(s) of {path.name} are not JSON records; skipped")
    if duplicates:
        out.problems.append(f"{duplicates} repeated episode index(es) in {path.name}; first kept")
    out.records = [by_index[i] for i in sorted(by_index)]
    return out


def _json_object(line: bytes) -> dict[str, Any] | None:
    try:
        value = loads_bounded(line.decode("utf-8"))
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors too
        return None
    return value if isinstance(value, dict) else None


def _finite_or_none(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:  # an int beyond float range (JSON allows 10**400)
        return None
    return number if math.isfinite(number) else None


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------- kinds
def detect_kind(path: Path) -> str:
    """The kind of folder `path` (one of `KINDS`), from which files it holds."""
    if not path.exists():
        return "missing"
    if not path.is_dir():
        return "eval" if path.suffix == ".jsonl" else "missing"
    for name in (MANIFEST, CONFIG):
        data, _ = read_json(path / name) if (path / name).is_file() else (None, None)
        data = _as_dict(data)
        kind = str(data.get("kind", "")).lower()
        if kind in ("agent", "benchmark"):
            return kind
        if name == MANIFEST and ("benchmark" in data or "agent" in data):
            return "benchmark" if "benchmark" in data else "agent"
        if name == CONFIG and "benchmark" in data and "task" not in _as_dict(data.get("config")):
            return "benchmark"
        if name == CONFIG and "agent" in data and "task" not in _as_dict(data.get("config")):
            return "agent"
    # exists(), not is_file(): a FIFO or a link to a device is a run whose file is unreadable,
    # which its page then says (`read_json` refuses it without blocking).
    if (path / SUITE).exists():
        return "suite"
    if (path / TRAIN_METRICS).is_file() and (
        (path / TRAIN_CONFIG).is_file() or (path / TRAIN_SUMMARY).is_file()
    ):
        return "training"
    if (path / CONFIG).is_file() or (path / METRICS).is_file():
        return "eval"
    if any((path / name).exists() for name in EPISODE_FILES):
        return "eval"
    return "empty"


def _looks_like_run(path: Path) -> bool:
    return path.is_dir() and detect_kind(path) != "empty"


def find_runs(path: Path, depth: int = MAX_COLLECTION_DEPTH) -> list[Path]:
    """Run folders under a collection folder (not descending into runs), sorted by path."""
    found: list[Path] = []
    try:
        children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return found
    for child in children:
        if child.name in ("plots", "images", "__pycache__"):
            continue
        if _looks_like_run(child):
            found.append(child)
        elif depth > 1:
            found.extend(find_runs(child, depth - 1))
    return found


# ---------------------------------------------------------------------------- one run
def load_run(path: str | os.PathLike[str], run_id: str | None = None) -> Run:
    """Read one run folder into a `Run`; never raises.

    Parameters
    ----------
    path
        The folder (or, for quick looks, a bare ``trajectories.jsonl``).
    run_id
        The id to give it; default: the folder's name.

    Returns
    -------
    Run
        With ``kind == "missing"`` or ``"empty"`` and an explanation in `Run.problems` when
        there is nothing to show.
    """
    path = Path(path).expanduser()
    run = Run(id=run_id or slug(path.name or str(path)), path=path, kind=detect_kind(path))
    if run.kind == "missing":
        run.title = path.name or str(path)
        run.problems.append(
            f"{path} does not exist: check the path (a run folder is what `openvirl eval "
            "--out` wrote)."
        )
        return run
    if path.is_file():  # a bare trajectories file
        run.path = path.parent
        run.source_file = path.name
        run.title = path.name
        _fill_from_episodes(run, read_jsonl(path))
        return run
    if run.kind == "empty":
        run.title = path.name
        run.problems.append(
            f"{path} holds no config.json, metrics.json, suite.json, manifest.json or "
            "trajectories.jsonl yet: the run has not started, or this is not a run folder."
        )
        return run
    try:
        _read_files(run)
    except Exception as exc:  # one broken folder must not break the viewer
        log.exception("reading run folder %s", path)
        run.problems.append(f"could not read {path}: {type(exc).__name__}: {exc}")
    return run


def _read_files(run: Run) -> None:
    path = run.path
    config, problem = read_json(path / CONFIG)
    run.config = _as_dict(config)
    if problem and run.kind == "eval":
        run.problems.append(problem)
    metrics, metrics_problem = read_json(path / METRICS)
    run.metrics = _as_dict(metrics)
    manifest, _ = read_json(path / MANIFEST)
    run.manifest = _as_dict(manifest)
    if run.kind in ("agent", "benchmark") and (path / RESULT).is_file():
        run.result, problem = read_json(path / RESULT)
        if problem:
            run.problems.append(problem)
    if run.kind == "training":
        summary, problem = read_json(path / TRAIN_SUMMARY)
        run.metrics = _as_dict(summary)
        if problem:
            run.problems.append(
                f"{problem}: the training is still going or was killed "
                f"({TRAIN_METRICS} has its progress)"
            )
    if run.kind == "suite":
        suite, problem = read_json(path / SUITE)
        run.suite = _as_dict(suite)
        if problem:
            run.problems.append(problem)
        rows = run.suite.get("rows")
        if rows is not None and not isinstance(rows, list):
            run.problems.append(f"{SUITE}: `rows` is not a list; it is not shown")
            run.suite["rows"] = []
        elif rows and not all(isinstance(r, dict) for r in rows):
            run.problems.append(f"{SUITE}: some `rows` are not objects; they are not shown")
            run.suite["rows"] = [r for r in rows if isinstance(r, dict)]
    for name, data in ((CONFIG, config), (METRICS, metrics), (MANIFEST, manifest)):
        if data is not None and not isinstance(data, dict):
            run.problems.append(f"{name} is not a JSON object; it is not used")
    cfg = _as_dict(run.config.get("config"))
    meta = {**run.manifest, **run.config, **cfg, **run.metrics}
    run.task = str(meta.get("task") or "") if not isinstance(meta.get("task"), dict) else ""
    if not run.task and isinstance(run.config.get("task"), dict):
        run.task = str(run.config["task"].get("task", ""))
    run.split = str(meta.get("split") or "")
    policy = meta.get("policy")
    if isinstance(policy, dict):
        policy = policy.get("name") or policy.get("spec")
    run.policy = str(policy or run.suite.get("policy") or "")
    planned = run.metrics.get("episodes_planned", run.config.get("episodes"))
    run.episodes_planned = int(planned) if isinstance(planned, int) else None
    if isinstance(run.metrics.get("complete"), bool):
        run.complete = run.metrics["complete"]
    elif isinstance(run.suite.get("complete"), bool):
        run.complete = run.suite["complete"]
    if run.metrics.get("error"):
        run.problems.append(f"the run stopped early: {run.metrics['error']}")
    if run.kind == "agent" and run.metrics.get("llm/fallbacks"):
        from openvirl.agents.llm import fallback_notice

        run.problems.append(fallback_notice(run.metrics, run.policy or "the model"))
    if run.suite.get("error"):
        run.problems.append(f"the suite stopped early: {run.suite['error']}")

    episodes = None
    if run.kind in ("eval", "agent", "benchmark") and not run.metrics:
        episodes = read_episodes(run)
        if episodes.records and run.kind == "eval":
            _fill_from_episodes(run, episodes)
        if metrics_problem and (path / METRICS).exists():
            run.problems.append(metrics_problem)
        elif run.kind == "eval":
            run.problems.append(
                "metrics.json is missing: the run is still going or was killed"
                + ("; the numbers below are computed from its episodes" if run.metrics else "")
            )
    if run.kind == "eval" and run.complete is False and run.episodes_planned:
        done = run.metrics.get("eval/episodes")
        if isinstance(done, int):
            run.problems.append(f"partial run: {done} of {run.episodes_planned} episodes")
    run.plots = _plots(path)
    run.report = next((name for name in REPORTS if (path / name).is_file()), None)
    run.title = _title(run)


def read_episodes(run: Run) -> EpisodeFile:
    """The episode records of `run` (see `read_jsonl`); empty when it has no episode file."""
    episode_path = run.episode_file()
    if episode_path is None:
        return EpisodeFile(records=[])
    return read_jsonl(episode_path)


def _fill_from_episodes(run: Run, episodes: EpisodeFile) -> None:
    """Recompute metrics from the records, as `evaluate` would, when ``metrics.json`` is absent."""
    records = episodes.records
    if not records:
        return
    first = records[0]
    run.task = run.task or str(first.get("task") or "")
    run.split = run.split or str(first.get("split") or "")
    run.policy = run.policy or str(first.get("policy") or "")
    try:
        from openvirl.evaluation.metrics import compute_metrics

        run.metrics = compute_metrics([r for r in records if isinstance(r.get("steps"), list)])
        run.metrics_from_episodes = True
    except Exception:  # records of an unknown shape: show them without metrics
        log.exception("recomputing metrics for %s", run.path)
    if run.episodes_planned:
        run.complete = len(records) >= run.episodes_planned
    if not run.title:
        run.title = _title(run)


def _plots(path: Path) -> list[str]:
    found: list[str] = []
    for folder in PLOT_DIRS:
        directory = path / folder
        if not directory.is_dir():
            continue
        try:
            names = sorted(p.name for p in directory.iterdir() if p.is_file())
        except OSError:
            continue
        for name in names:
            if name.lower().endswith(PLOT_SUFFIXES):
                found.append(name if folder == "." else f"{folder}/{name}")
    return found


def _title(run: Run) -> str:
    if run.kind == "suite":
        name = run.suite.get("suite") or run.path.name
        return f"suite {name}" + (f" · {run.policy}" if run.policy else "")
    if run.kind == "training":
        model = run.config.get("model") or run.metrics.get("model") or ""
        return f"training {run.path.name}" + (f" · {model}" if model else "")
    if run.kind in ("agent", "benchmark"):
        name = (
            run.manifest.get("name")
            or run.manifest.get(run.kind)
            or run.config.get("name")
            or run.config.get(run.kind)
            or run.path.name
        )
        return f"{run.kind} {name}" + (f" · {run.policy}" if run.policy else "")
    head = "/".join(p for p in (run.task, run.split) if p) or run.path.name
    return head + (f" · {run.policy}" if run.policy else "")


_SLUG_RE = re.compile(r"[^A-Za-z0-9._-]+")


def slug(text: str) -> str:
    """A URL-safe id from a folder name (``"my run!"`` -> ``"my-run"``)."""
    return _SLUG_RE.sub("-", text).strip("-.")[:80] or "run"


# ---------------------------------------------------------------------------- the store
class RunStore:
    """The runs given to the viewer, re-read when their files change.

    Parameters
    ----------
    paths
        Run folders, suite folders or folders of runs, in the order to list them.

    Notes
    -----
    A run folder is re-read when the modification time or size of one of its files changes,
    so a running evaluation's page shows its newest episodes on reload.
    """

    def __init__(self, paths: Iterable[str | os.PathLike[str]]) -> None:
        self.paths = [Path(p).expanduser() for p in paths]
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple, Run]] = {}
        self._episodes: dict[Path, tuple[tuple, EpisodeFile]] = {}

    # Listing -----------------------------------------------------------------------------
    def runs(self) -> list[Run]:
        """Every run, in the order given; suite members follow their suite."""
        out: list[Run] = []
        used: set[str] = set()
        for path in self.paths:
            if path.is_dir() and detect_kind(path) == "empty":
                members = find_runs(path)
                if members:
                    for member in members:
                        self._add(out, used, member, None)
                    continue
            self._add(out, used, path, None)
        return out

    def _add(self, out: list[Run], used: set[str], path: Path, parent: Run | None) -> None:
        base = slug(path.name or str(path))
        if parent is not None:
            base = f"{parent.id}.{base}"
        run_id = _unique(base, used)
        run = self._load(path, run_id)
        run.parent = parent.id if parent is not None else None
        out.append(run)
        if run.kind == "suite":
            run.children = []
            for member in find_runs(path, depth=1):
                before = len(out)
                self._add(out, used, member, run)
                run.children.append(out[before].id)

    def _load(self, path: Path, run_id: str) -> Run:
        key = _stamp(path)
        with self._lock:
            cached = self._cache.get(path)
            if cached is not None and cached[0] == key and cached[1].id == run_id:
                return cached[1]
        run = load_run(path, run_id)
        with self._lock:
            self._cache[path] = (key, run)
        return run

    def get(self, run_id: str) -> Run | None:
        """The run with id `run_id`, or None."""
        return next((run for run in self.runs() if run.id == run_id), None)

    # Episodes ----------------------------------------------------------------------------
    def episodes(self, run: Run) -> EpisodeFile:
        """The run's episode records, cached until the file changes."""
        episode_path = run.episode_file()
        if episode_path is None:
            return EpisodeFile(records=[])
        key = _file_stamp(episode_path)
        with self._lock:
            cached = self._episodes.get(episode_path)
            if cached is not None and cached[0] == key:
                return cached[1]
        episodes = read_jsonl(episode_path)
        with self._lock:
            self._episodes[episode_path] = (key, episodes)
        return episodes

    def episode(self, run: Run, index: int) -> dict[str, Any] | None:
        """Episode `index` of `run`, or None."""
        return next((r for r in self.episodes(run).records if r.get("index") == index), None)


def _unique(base: str, used: set[str]) -> str:
    candidate, n = base, 2
    while candidate in used:
        candidate, n = f"{base}-{n}", n + 1
    used.add(candidate)
    return candidate


def _file_stamp(path: Path) -> tuple:
    try:
        st = path.stat()
    except OSError:
        return (str(path), None)
    return (str(path), st.st_mtime_ns, st.st_size)


def _stamp(path: Path) -> tuple:
    """What changes when a run folder's files do: their names, sizes and mtimes."""
    if not path.is_dir():
        return (_file_stamp(path),)
    names = (CONFIG, METRICS, MANIFEST, SUITE, RESULT, TRAIN_SUMMARY, *EPISODE_FILES, *REPORTS)
    stamps = [_file_stamp(path / name) for name in names]
    plots = path / "plots"
    stamps.append(_file_stamp(plots))
    with contextlib.suppress(OSError):
        stamps.append(tuple(sorted(p.name for p in path.iterdir() if p.is_dir())))
    return tuple(stamps)


def headline_rate(metrics: Mapping[str, Any], key: str) -> tuple[float | None, Sequence[float]]:
    """``(rate, [low, high])`` of a stored rate metric; None and [] when absent or not finite."""
    value = _finite_or_none(metrics.get(key))
    ci = metrics.get(f"{key}_ci95")
    if not (isinstance(ci, (list, tuple)) and len(ci) == 2):
        ci = []
    return value, list(ci)
