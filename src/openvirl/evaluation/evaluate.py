"""`evaluate`: play a task's evaluation episodes with a policy and write everything to a folder.

Like ``cleanrl_utils/evals/dqn_eval.py``, one function runs the episodes and returns their
records; around it sit the things a long evaluation needs:

Output folder (``--out``)::

    config.json          every option, the episode seeds, the policy and package versions
    trajectories.jsonl   one line per finished episode, appended (and flushed) as it ends
    images/00007.png     the image the policy saw in episode 7 (vision tasks)
    sessions.jsonl       one line per run of this folder: wall time, model time, tokens
    metrics.json         namespaced metrics (`compute_metrics`), also after a failure
    report.md / .html    plots and example episodes (`openvirl.evaluation.report`)

Resuming: a rerun with the same folder reads ``trajectories.jsonl``, keeps every complete line,
drops a half-written last line and plays only the missing episode indices; episode ``i`` always
has the same seed, so the result equals an uninterrupted run. A policy that fails for good
(`PolicyError`: a server down after its retries) stops the run cleanly: finished episodes stay
on disk, partial metrics are written, and `EvalResult.error` says what happened.

Example
-------
>>> from openvirl.evaluation import EvalConfig, evaluate
>>> result = evaluate(EvalConfig(task="gp-l", split="id", policy="oracle", episodes=8,
...                              out=tmp / "run", progress=False))  # doctest: +SKIP
>>> result.metrics["eval/success"]  # doctest: +SKIP
1.0
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from openvirl.evaluation.metrics import compute_metrics, step_signals
from openvirl.evaluation.rollout import EpisodeRecord, run_episodes
from openvirl.evaluation.tasks import GP_ENV_ID, TaskSpec, episode_seeds, get_task, make_env
from openvirl.policies.base import Policy, PolicyError, Request

TRAJECTORIES = "trajectories.jsonl"
CONFIG = "config.json"
METRICS = "metrics.json"
SESSIONS = "sessions.jsonl"
IMAGES = "images"

FSYNC_EVERY_S = 2.0
"""Seconds between `os.fsync` calls on the trajectories file.

Every line is flushed at once, which is all a killed *process* needs (the OS keeps the data);
fsync only guards against a machine crash and costs milliseconds, so it is rate-limited.
"""

EPISODE_DEFINING = ("task", "split", "seed", "max_attempts", "image_size")
"""Options that change what episode ``i`` is; a resumed run must keep them."""

_VERSIONED_PACKAGES = (
    "openvirl", "gymnasium", "numpy", "pillow", "torch", "transformers", "trl", "peft",
    "accelerate", "httpx", "matplotlib",
)  # fmt: skip


@dataclass
class EvalConfig:
    """Every option of `openvirl eval` (the CLI reads its help texts from here).

    Groups: what to evaluate (task, split, suite, episodes, seed); the policy and its
    generation overrides; how to run (batch size, attempts, resume); what to write.
    """

    # What to evaluate
    task: str = field(
        default="gp-l",
        metadata={"help": "Task name, e.g. gp-l or gp-vl (`openvirl.evaluation.tasks.TASKS`)."},
    )
    split: str = field(
        default="id", metadata={"help": "Split of the task, e.g. id, rule-ood, visual-ood."}
    )
    suite: str | None = field(
        default=None,
        metadata={"help": "Run a whole evaluation set ('paper') instead of one task and split."},
    )
    episodes: int | None = field(
        default=None,
        metadata={
            "help": "Episodes per task/split; default: the paper's count (234 GP hands, 48 routes)."
        },
    )
    seed: int = field(
        default=42,
        metadata={"help": "Episode seed: episode i of a split is the same for every policy."},
    )
    # The policy
    policy: str = field(
        default="oracle",
        metadata={
            "help": "Policy spec for `make_policy`: oracle, random, hf:<path>, openai:<url>, ..."
        },
    )
    temperature: float | None = field(
        default=None,
        metadata={
            "help": "Sampling temperature passed to the policy (0 = greedy); default: the policy's."
        },
    )
    max_new_tokens: int | None = field(
        default=None,
        metadata={"help": "Longest answer in tokens passed to the policy; default: the policy's."},
    )
    # How to run
    batch_size: int = field(
        default=16,
        metadata={"help": "Episodes in flight at once (one batched model call per round)."},
    )
    max_attempts: int | None = field(
        default=None,
        metadata={
            "help": "Verified attempts per episode (sequential revision); default: the task's (5)."
        },
    )
    image_size: int | None = field(
        default=None,
        metadata={
            "help": "Image side in pixels for vision tasks; default: the env's 1200 (as the paper)."
        },
    )
    resume: bool = field(
        default=True, metadata={"help": "Continue a run in `out`, skipping finished episodes."}
    )
    # What to write
    out: Path | None = field(
        default=None,
        metadata={"help": "Output folder; default runs/eval/<task>__<split>__<policy>__s<seed>."},
    )
    save_images: bool = field(
        default=True, metadata={"help": "Save each episode's image under images/ (vision tasks)."}
    )
    report: bool = field(
        default=True, metadata={"help": "Write report.md and report.html with plots at the end."}
    )
    examples: int = field(default=4, metadata={"help": "Example episodes shown in the report."})
    progress: bool = field(default=True, metadata={"help": "Show a progress bar."})

    def validate(self) -> TaskSpec | None:
        """Check the options; return the task spec (None for a suite).

        Raises
        ------
        ValueError
            Naming the bad option; unknown tasks and splits list the valid ones.
        """
        if self.episodes is not None and self.episodes < 0:
            raise ValueError(f"`episodes` must be >= 0, got {self.episodes}.")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {self.batch_size}.")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be >= 1, got {self.max_attempts}.")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be >= 1, got {self.max_new_tokens}.")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {self.temperature}.")
        if self.examples < 0:
            raise ValueError(f"`examples` must be >= 0, got {self.examples}.")
        if self.suite is not None:
            return None
        return get_task(self.task, self.split)

    def output_dir(self, policy_name: str | None = None) -> Path:
        """`out`, or the default run folder named after task, split, policy and seed."""
        if self.out is not None:
            return Path(self.out)
        slug = policy_slug(policy_name or self.policy)
        return Path("runs") / "eval" / f"{self.task}__{self.split}__{slug}__s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able options."""
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def policy_slug(name: str) -> str:
    """A policy name or spec made safe for a folder name (``hf:a/b?t=0`` -> ``hf-a-b-t-0``)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-")[:60] or "policy"


def option_help(name: str) -> str:
    """The help text of `EvalConfig` option `name` (shared by the CLI)."""
    for f in fields(EvalConfig):
        if f.name == name:
            return str(f.metadata.get("help", ""))
    raise KeyError(name)


@dataclass
class EvalResult:
    """What `evaluate` returns: the records on disk, their metrics and where they are."""

    config: EvalConfig
    out: Path
    records: list[dict[str, Any]]
    """Every finished episode (this session's and resumed ones), by index."""
    metrics: dict[str, Any]
    """`compute_metrics` over `records`, plus timing and tokens of every session."""
    complete: bool
    """Whether every planned episode is on disk."""
    error: str | None = None
    """Why the run stopped early (a `PolicyError`'s message), or None."""
    episodes_planned: int = 0
    report_paths: list[Path] = field(default_factory=list)

    @property
    def task(self) -> str:
        return self.config.task

    @property
    def split(self) -> str:
        return self.config.split


# ---------------------------------------------------------------------------- policies
GENERATING_KINDS = ("hf", "openai")
"""Policy kinds that generate text, so `temperature` and `max_new_tokens` apply to them."""


def build_policy(config: EvalConfig) -> Policy:
    """Make the policy named by ``config.policy`` with the config's generation overrides.

    Uses `openvirl.policies.registry.make_policy`, whose errors list the valid kinds and
    options. `temperature` and `max_new_tokens` go only to model-backed kinds; for the oracle,
    random and human policies they are ignored with a warning rather than an error, so one
    command line can compare a model with its baselines. A transformers policy gets the
    evaluation's `batch_size` and an HTTP policy as many concurrent requests, unless the spec
    sets its own.
    """
    import warnings

    from openvirl.policies.registry import make_policy, parse_policy_spec

    overrides = {
        k: v
        for k, v in {
            "temperature": config.temperature,
            "max_new_tokens": config.max_new_tokens,
        }.items()
        if v is not None
    }
    parsed = parse_policy_spec(config.policy)
    kind = parsed.kind
    # One round of the evaluation is one `generate` call (hf) or that many requests in flight
    # (openai, so the server can batch them), unless the spec says otherwise.
    if kind == "hf" and "batch_size" not in parsed.options:
        overrides["batch_size"] = config.batch_size
    if kind == "openai" and "concurrency" not in parsed.options:
        overrides["concurrency"] = config.batch_size
    if kind not in GENERATING_KINDS and (overrides.keys() & {"temperature", "max_new_tokens"}):
        warnings.warn(
            f"{', '.join(overrides)} ignored: the `{kind}` policy does not generate text",
            stacklevel=2,
        )
        overrides = {}
    return make_policy(config.policy, **overrides)


class _TimedPolicy:
    """Pass-through policy that adds up the seconds spent inside the wrapped `act`."""

    def __init__(self, policy: Policy):
        self.policy = policy
        self.name = getattr(policy, "name", type(policy).__name__)
        self.seconds = 0.0
        self.calls = 0

    def act(self, requests: Sequence[Request]) -> list[str]:
        t0 = time.perf_counter()
        try:
            return self.policy.act(requests)
        finally:
            self.seconds += time.perf_counter() - t0
            self.calls += 1


def _completion_tokens(policy: Policy) -> int | None:
    usage = getattr(policy, "total_usage", None)
    return None if usage is None else int(getattr(usage, "completion_tokens", 0))


# ---------------------------------------------------------------------------- records on disk
def _jsonable(value: Any) -> Any:
    """Plain JSON types for info values (numpy scalars, tuples, paths); NaN becomes None."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if isinstance(value, Path):
        return str(value)
    return str(value)


_STEP_KEYS = ("attempt", "outcome", "feedback")


def episode_to_dict(
    episode: EpisodeRecord,
    *,
    task: str,
    split: str,
    policy: str,
    image: str | None = None,
) -> dict[str, Any]:
    """One ``trajectories.jsonl`` line: the episode, its steps and their diagnostic signals.

    A step keeps only the info entries that differ from the reset info (outcome, feedback,
    value, recognized cards...), so lines stay short; the image is a relative path, never
    inline.
    """
    reset_info = _jsonable(episode.reset_info)
    steps = []
    for step in episode.steps:
        extra = {
            k: _jsonable(v)
            for k, v in step.info.items()
            if k not in _STEP_KEYS and _jsonable(v) != reset_info.get(k)
        }
        steps.append(
            {
                "attempt": step.attempt,
                "action": step.action,
                "reward": step.reward,
                "outcome": step.outcome,
                "feedback": step.feedback,
                **extra,
                **step_signals(step.action, step.info, episode.reset_info),
            }
        )
    last = episode.steps[-1].info if episode.steps else {}
    return {
        "index": episode.index,
        "seed": episode.seed,
        "task": task,
        "split": split,
        "policy": policy,
        "success": episode.success,
        "episode_outcome": _jsonable(last.get("episode_outcome")),
        "attempts": len(episode.steps),
        "total_reward": episode.total_reward,
        "wall_s": round(episode.wall_s, 6),
        "prompt": episode.prompt,
        "image": image,
        "reset_info": reset_info,
        "steps": steps,
    }


def read_trajectories(path: Path, *, repair: bool = True) -> list[dict[str, Any]]:
    """Read the complete records of a trajectories file, first record per index.

    A line that is not a complete JSON record (a run killed mid-write leaves a half line at
    the end) is skipped; with `repair`, the file is rewritten atomically without such lines
    and without duplicate indices, so appending can continue after the last good line.
    """
    if not path.exists():
        return []
    records: dict[int, dict[str, Any]] = {}
    dirty = False
    with path.open("r", encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                dirty = True  # half-written last line
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                dirty = True
                continue
            if not isinstance(record, dict) or not isinstance(record.get("index"), int):
                dirty = True
                continue
            if record["index"] in records:
                dirty = True
                continue
            records[record["index"]] = record
    ordered = [records[i] for i in sorted(records)]
    if dirty and repair:
        _rewrite_jsonl(path, ordered)
    return ordered


def _rewrite_jsonl(path: Path, records: Iterable[Mapping[str, Any]]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _write_json(path: Path, payload: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(_jsonable(payload), indent=2, ensure_ascii=False) + "\n", "utf-8")
    os.replace(tmp, path)


@cache
def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results (None when not installed).

    Cached: reading package metadata costs about a millisecond a package, paid once a process.
    """
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in _VERSIONED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _data_description(spec: TaskSpec) -> dict[str, Any]:
    """What fixes the episodes besides the seeds: for GeneralPoints, the hashed split rule."""
    if spec.env_id == GP_ENV_ID:
        from openvirl.envs.points.env import PointsConfig
        from openvirl.envs.points.splits import describe_split

        cfg = PointsConfig(**spec.env_kwargs)  # the env's own defaults fill what is not given
        return {"points_split": describe_split(cfg.test_percent, cfg.split_by)}
    return {}


def _check_resumable(out: Path, config: EvalConfig) -> None:
    """Refuse to mix episodes of different settings in one folder."""
    path = out / CONFIG
    if not path.exists():
        return
    try:
        previous = json.loads(path.read_text(encoding="utf-8")).get("config", {})
    except (json.JSONDecodeError, AttributeError):
        return
    current = config.to_dict()
    changed = [k for k in EPISODE_DEFINING if k in previous and previous[k] != current.get(k)]
    if changed:
        diffs = ", ".join(f"`{k}` {previous[k]!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(
            f"{out} holds a run with different episodes ({diffs}); pass --no-resume to start "
            "over there, or choose another --out."
        )


# ---------------------------------------------------------------------------- the run
def evaluate(config: EvalConfig, policy: Policy | None = None) -> EvalResult:
    """Play the evaluation episodes of ``config.task``/``config.split`` and write the run folder.

    Parameters
    ----------
    config
        Every option (see `EvalConfig`); ``config.suite`` is ignored here (see `run_suite`).
    policy
        A ready policy (e.g. a loaded model shared by the runs of a suite); None builds one
        from ``config.policy`` with `build_policy`.

    Returns
    -------
    EvalResult
        The records of all finished episodes and their metrics. After a `PolicyError` the
        result is partial (``complete=False``, ``error`` set) and everything finished is on
        disk; rerunning with the same folder resumes.
    """
    spec = config.validate() or get_task(config.task, config.split)
    n_planned = spec.episodes if config.episodes is None else config.episodes
    if policy is None:
        policy = build_policy(config)
    policy_name = str(getattr(policy, "name", type(policy).__name__))
    out = config.output_dir(policy_name)
    out.mkdir(parents=True, exist_ok=True)
    traj_path = out / TRAJECTORIES

    # PLUMBING: resume or start over
    if config.resume:
        _check_resumable(out, config)
        done = read_trajectories(traj_path)
        sessions = _read_jsonl(out / SESSIONS)
    else:
        for name in (TRAJECTORIES, SESSIONS, METRICS):
            (out / name).unlink(missing_ok=True)
        done, sessions = [], []
    records = {r["index"]: r for r in done}
    todo = [i for i in range(n_planned) if i not in records]
    all_seeds = episode_seeds(spec, config.seed, range(n_planned))
    _write_json(
        out / CONFIG,
        {
            "config": config.to_dict(),
            "task": asdict(spec),
            "episodes": n_planned,
            "seeds": all_seeds,
            "policy": {
                "spec": config.policy,
                "name": policy_name,
                "precision": getattr(policy, "precision", None),  # hf: how it multiplied
                "repr": repr(policy)[:500],
            },
            "versions": package_versions(),
            "data": _data_description(spec),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed_episodes": len(records),
        },
    )

    # ALGO LOGIC: batched episodes, each appended to disk as soon as it ends
    timed = _TimedPolicy(policy)
    tokens_before = _completion_tokens(policy)
    images_dir = out / IMAGES
    error: str | None = None
    interrupted = False
    n_new = 0
    t0 = time.perf_counter()
    make = _env_factory(spec, config)
    with traj_path.open("a", encoding="utf-8") as handle, _progress(config) as bar:
        label = f"{spec.name} · {policy_name}"
        task_id = bar.add_task(label, total=n_planned, completed=len(records), wins=_wins(records))
        last_sync = time.monotonic()
        episodes = run_episodes(
            make,
            timed,
            [all_seeds[i] for i in todo],
            batch_size=config.batch_size,
            indices=todo,
            # Episode i plays item i of a fixed-order set (navigation's held-out routes, each
            # once, in order); environments without such sets ignore the option.
            reset_options=lambda i: {"episode_index": i},
        )
        try:
            for episode in episodes:
                image_rel = None
                if config.save_images and episode.image is not None:
                    images_dir.mkdir(exist_ok=True)
                    image_rel = f"{IMAGES}/{episode.index:05d}.png"
                    episode.image.save(out / image_rel, compress_level=1)
                record = episode_to_dict(
                    episode, task=spec.task, split=spec.split, policy=policy_name, image=image_rel
                )
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                handle.flush()
                if time.monotonic() - last_sync > FSYNC_EVERY_S:
                    os.fsync(handle.fileno())
                    last_sync = time.monotonic()
                records[record["index"]] = record
                n_new += 1
                bar.update(task_id, advance=1, wins=_wins(records))
        except PolicyError as exc:
            error = f"policy {policy_name!r} failed: {exc}"
        except KeyboardInterrupt:
            interrupted = True
            error = "interrupted (Ctrl-C)"
        finally:
            episodes.close()
            handle.flush()
            os.fsync(handle.fileno())
    wall = time.perf_counter() - t0

    # PLUMBING: session counters, metrics, report
    tokens_after = _completion_tokens(policy)
    session = {
        "started_episodes": len(done),
        "episodes": n_new,
        "wall_s": wall,
        "model_s": timed.seconds,
        "policy_calls": timed.calls,
        "tokens_generated": (None if tokens_after is None else tokens_after - (tokens_before or 0)),
        "policy": policy_name,
        "error": error,
        "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with (out / SESSIONS).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(_jsonable(session)) + "\n")
    sessions.append(session)

    planned = [records[i] for i in sorted(records) if i < n_planned]
    complete = len(planned) == n_planned
    if complete and [r.get("index") for r in _read_jsonl(traj_path)] != sorted(records):
        # Batches finish out of order; a finished file reads best in episode order.
        _rewrite_jsonl(traj_path, [records[i] for i in sorted(records)])
    metrics = compute_metrics(planned, metric_set=spec.metrics, sessions=sessions)
    _write_json(
        out / METRICS,
        {
            "task": spec.task,
            "split": spec.split,
            "policy": policy_name,
            "policy_spec": config.policy,
            "seed": config.seed,
            "episodes_planned": n_planned,
            "complete": complete,
            "error": error,
            **metrics,
        },
    )
    result = EvalResult(
        config=config,
        out=out,
        records=planned,
        metrics=metrics,
        complete=complete,
        error=error,
        episodes_planned=n_planned,
    )
    if config.report:
        from openvirl.evaluation.report import write_report

        result.report_paths = write_report(result, spec=spec, examples=config.examples)
    if interrupted:
        raise KeyboardInterrupt
    return result


def _env_factory(spec: TaskSpec, config: EvalConfig) -> Any:
    overrides = {"max_attempts": config.max_attempts}
    if spec.env_kwargs.get("visual") and config.image_size is not None:
        overrides["image_size"] = config.image_size

    def make() -> Any:
        return make_env(spec, **overrides)

    return make


def _wins(records: Mapping[int, Mapping[str, Any]]) -> str:
    n = len(records)
    wins = sum(bool(r.get("success")) for r in records.values())
    return f"{wins}/{n} solved" if n else ""


def _progress(config: EvalConfig) -> Any:
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[wins]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not config.progress,
        transient=False,
    )
