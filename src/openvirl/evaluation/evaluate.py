"""`evaluate`: play a task's evaluation episodes with a policy and write everything to a folder.

Like ``cleanrl_utils/evals/dqn_eval.py``, one function runs the episodes and returns their
records; around it sit the things a long evaluation needs:

Output folder (``--out``)::

    config.json          every option, the episode seeds, the policy and package versions
    trajectories.jsonl   one line per finished episode, appended (and flushed) as it ends
    attempts.jsonl       one line per answer of an episode still in play (index, attempt,
                         answer), so a stop mid-episode loses at most the current round
    images/00007.png     the image the policy saw in episode 7 (vision tasks)
    sessions.jsonl       one line per run of this folder: wall time, model time, tokens
    session-live.json    the running session's counters, rewritten after every episode; a
                         killed run's is moved into sessions.jsonl by the next run
    .eval.lock           held (fcntl) while a run writes the folder; a second run is refused
    metrics.json         namespaced metrics (`compute_metrics`), also after a failure
    report.md / .html    plots and example episodes (`openvirl.evaluation.report`)

Resuming: a rerun with the same folder reads ``trajectories.jsonl``, keeps every complete line,
drops a half-written last line and plays only the missing episode indices; episode ``i`` always
has the same seed, so the result equals an uninterrupted run. An episode that was still in play
replays its saved answers from ``attempts.jsonl`` and asks the policy only for the rest.

Feedback: the progress bar counts *attempts* (model answers), with the episodes finished and
solved beside it and an estimate of the time left; its total is the most attempts the
remaining episodes can take, lowered as episodes end early, so the estimate errs long.

Generation defaults: a generating policy (``hf:``, ``openai:``) that is given no
``max_new_tokens`` gets the task's answer-sized budget (`TaskSpec.answer_tokens`, 96 tokens for
GeneralPoints); plain prompts stop at the next user turn. The embedded base model
(``hf:gemma-3-270m`` without an adapter) gets a few-shot prefix of solved training hands on
GeneralPoints text tasks (``few_shot``, default 3 there, recorded in ``config.json``).

A policy that fails for good (`PolicyError`: a server down after its retries) stops the run
cleanly: finished episodes stay on disk, partial metrics are written, and `EvalResult.error`
says what happened.

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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

from openvirl._text import clean_text
from openvirl.evaluation.metrics import compute_metrics, step_signals
from openvirl.evaluation.rollout import EpisodeRecord, StepRecord, run_episodes
from openvirl.evaluation.tasks import GP_ENV_ID, TaskSpec, episode_seeds, get_task, make_env
from openvirl.policies.base import Policy, PolicyError, Request, message_text

TRAJECTORIES = "trajectories.jsonl"
ATTEMPTS = "attempts.jsonl"
CONFIG = "config.json"
METRICS = "metrics.json"
SESSIONS = "sessions.jsonl"
LIVE_SESSION = "session-live.json"
LOCK = ".eval.lock"
IMAGES = "images"

FSYNC_EVERY_S = 2.0
"""Seconds between `os.fsync` calls on the trajectories file.

Every line is flushed at once, which is all a killed *process* needs (the OS keeps the data);
fsync only guards against a machine crash and costs milliseconds, so it is rate-limited.
"""

EPISODE_DEFINING = ("task", "split", "seed", "max_attempts", "image_size", "routes", "city")
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
    routes: Path | None = field(
        default=None,
        metadata={
            "help": "Navigation tasks: play this route file instead of the split's (our JSONL "
            "or a V-IRL route_infos JSON), each route once; episodes default to its count."
        },
    )
    city: str | None = field(
        default=None,
        metadata={"help": "City of a V-IRL --routes file (it names none); default manhattan."},
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
        metadata={
            "help": "Longest answer in tokens passed to a generating policy; default: the "
            "task's answer-sized budget (96 for GeneralPoints) unless the spec sets one."
        },
    )
    few_shot: int | None = field(
        default=None,
        metadata={
            "help": "Solved example hands put before every prompt (hf policies, GeneralPoints "
            "text); default: 3 for the embedded base model (hf:gemma-3-270m), else 0."
        },
    )
    # How to run
    batch_size: int | None = field(
        default=None,
        metadata={
            "help": "Episodes in flight at once (one batched model call per round); default 16, "
            "or 4 for an hf policy on a CPU so rounds stay short and progress and saved "
            "attempts come often."
        },
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
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {self.batch_size}.")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be >= 1, got {self.max_attempts}.")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be >= 1, got {self.max_new_tokens}.")
        if self.temperature is not None and self.temperature < 0:
            raise ValueError(f"`temperature` must be >= 0, got {self.temperature}.")
        if self.examples < 0:
            raise ValueError(f"`examples` must be >= 0, got {self.examples}.")
        if self.out is not None and Path(self.out).exists() and not Path(self.out).is_dir():
            raise ValueError(f"`out` {self.out} is a file; pass a folder (created if missing).")
        if self.few_shot is not None and self.few_shot < 0:
            raise ValueError(f"`few_shot` must be >= 0, got {self.few_shot}.")
        if self.suite is not None:
            if self.routes is not None:
                raise ValueError("`routes` plays one navigation task; drop --suite or --routes.")
            return None
        spec = get_task(self.task, self.split)
        if self.routes is not None:
            if spec.env_id == GP_ENV_ID:
                raise ValueError(f"`routes` is for navigation tasks, not `{self.task}`.")
            if not Path(self.routes).is_file():
                raise ValueError(f"no route file at {self.routes}")
        return spec

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
        overrides["batch_size"] = episodes_in_flight(config)
    if kind == "openai" and "concurrency" not in parsed.options:
        overrides["concurrency"] = episodes_in_flight(config)
    if kind in GENERATING_KINDS and "max_new_tokens" not in overrides | parsed.options:
        # An answer-sized budget: a model that rambles stops early instead of generating up
        # to a long generic cap (the embedded model at 256 tokens took half an hour for 10 hands
        # on a CPU).
        overrides["max_new_tokens"] = answer_budget(config)
    if kind not in GENERATING_KINDS and (overrides.keys() & {"temperature", "max_new_tokens"}):
        warnings.warn(
            f"{', '.join(overrides)} ignored: the `{kind}` policy does not generate text",
            stacklevel=2,
        )
        overrides = {}
    return make_policy(config.policy, **overrides)


DEFAULT_BATCH = 16
CPU_HF_BATCH = 4
"""Episodes in flight for an hf policy on a CPU: a round of 16 long prompts took minutes there,
with no progress and nothing saved in between; 4 keeps rounds short at little cost in speed
(prefill, which batching does not speed up on a CPU, dominates)."""


def episodes_in_flight(config: EvalConfig) -> int:
    """``config.batch_size``, or the default: `CPU_HF_BATCH` for an hf policy that will run on
    a CPU, else `DEFAULT_BATCH`."""
    if config.batch_size is not None:
        return config.batch_size
    from openvirl.policies.registry import parse_policy_spec

    try:
        parsed = parse_policy_spec(config.policy)
    except ValueError:
        return DEFAULT_BATCH
    if parsed.kind != "hf":
        return DEFAULT_BATCH
    device = str(parsed.options.get("device") or "auto")
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    return CPU_HF_BATCH if device.startswith("cpu") else DEFAULT_BATCH


def answer_budget(config: EvalConfig) -> int:
    """The default `max_new_tokens` of a run: its task's `TaskSpec.answer_tokens` (the largest
    of a suite's tasks)."""
    if config.suite is not None:
        from openvirl.evaluation.suite import get_suite
        from openvirl.evaluation.tasks import TASKS

        specs = [
            TASKS[task][split]
            for task, split in get_suite(config.suite)
            if split in TASKS.get(task, {})
        ]
        return max((spec.answer_tokens for spec in specs), default=256)
    return get_task(config.task, config.split).answer_tokens


def is_embedded_base(spec: str) -> bool:
    """Whether a policy spec is the embedded base model: ``hf:gemma-3-270m`` with no adapter."""
    from openvirl.policies import embedded
    from openvirl.policies.registry import parse_policy_spec

    try:
        parsed = parse_policy_spec(spec)
    except ValueError:
        return False
    return (
        parsed.kind == "hf"
        and embedded.is_embedded_name(parsed.target)
        and not parsed.options.get("adapter")
    )


DEFAULT_FEW_SHOT = 3
"""Solved examples the embedded base model gets by default on GeneralPoints text tasks."""


def few_shot_count(config: EvalConfig, spec: TaskSpec) -> int:
    """How many solved examples go before each prompt of this run (see `EvalConfig.few_shot`)."""
    from openvirl.evaluation.tasks import supports_few_shot

    if config.few_shot is not None:
        return config.few_shot
    return DEFAULT_FEW_SHOT if is_embedded_base(config.policy) and supports_few_shot(spec) else 0


class _TimedPolicy:
    """Pass-through policy that adds up the seconds spent inside the wrapped `act`.

    `before_call` runs before each call: the progress log prints there, between rounds, once
    every answer of the previous round is counted.
    """

    def __init__(self, policy: Policy, before_call: Any = None):
        self.policy = policy
        self.name = getattr(policy, "name", type(policy).__name__)
        self.seconds = 0.0
        self.calls = 0
        self.before_call = before_call

    def act(self, requests: Sequence[Request]) -> list[str]:
        if self.before_call is not None:
            self.before_call()
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
    """Plain JSON types for info values (numpy scalars, tuples, paths); NaN becomes None;
    strings always encodable (`clean_text`)."""
    if isinstance(value, str):
        return clean_text(value)
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Mapping):
        return {clean_text(str(k)): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalar
        try:
            return _jsonable(value.item())
        except (TypeError, ValueError):
            pass
    return clean_text(str(value))


_STEP_KEYS = ("attempt", "outcome", "feedback")


def episode_to_dict(
    episode: EpisodeRecord,
    *,
    task: str,
    split: str,
    policy: str,
    image: str | None = None,
    step_images: Sequence[str | None] = (),
) -> dict[str, Any]:
    """One ``trajectories.jsonl`` line: the episode, its steps and their diagnostic signals.

    A step keeps only the info entries that differ from the reset info (outcome, feedback,
    value, recognized cards...), so lines stay short; images are relative paths, never
    inline. Each step keeps the prompt it answered (``prompt``) and, from `step_images`, the
    image it saw (``image``), so the viewer shows what the model saw at that step.
    """
    reset_info = _jsonable(episode.reset_info)
    steps = []
    for k, step in enumerate(episode.steps):
        extra = {
            k: _jsonable(v)
            for k, v in step.info.items()
            if k not in _STEP_KEYS and _jsonable(v) != reset_info.get(k)
        }
        steps.append(
            {
                "attempt": step.attempt,
                "action": clean_text(step.action),
                "reward": step.reward,
                "outcome": clean_text(step.outcome),
                "feedback": clean_text(step.feedback),
                **extra,
                **step_signals(step.action, step.info, episode.reset_info),
            }
        )
        if step.prompt:
            steps[-1]["prompt"] = step.prompt
        if k < len(step_images) and step_images[k]:
            steps[-1]["image"] = step_images[k]
    last = episode.steps[-1].info if episode.steps else {}
    return {
        "index": episode.index,
        "seed": episode.seed,
        "task": task,
        "split": split,
        "policy": clean_text(policy),
        "success": episode.success,
        "episode_outcome": _jsonable(last.get("episode_outcome")),
        "attempts": len(episode.steps),
        "total_reward": episode.total_reward,
        "wall_s": round(episode.wall_s, 6),
        "prompt": clean_text(episode.prompt),
        "image": image,
        "reset_info": reset_info,
        "steps": steps,
    }


def record_line(record: Mapping[str, Any]) -> str:
    """One JSONL line (with its newline) for `record`, always encodable as UTF-8."""
    try:
        line = json.dumps(record, ensure_ascii=False)
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(_jsonable(record), ensure_ascii=False)
    return line + "\n"


def _jsonl_lines(path: Path) -> Iterator[tuple[str | None, bool]]:
    """``(text, complete)`` per line of a JSONL file, read as bytes and decoded line by line.

    A line that is not valid UTF-8 (a write torn inside a multi-byte character) comes back as
    None instead of failing the whole file; `complete` is False for a last line with no newline.
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    for raw in lines:
        try:
            yield raw.decode("utf-8"), True
        except UnicodeDecodeError:
            yield None, True
    if tail:
        try:
            yield tail.decode("utf-8"), False
        except UnicodeDecodeError:
            yield None, False


def save_step_images(episode: EpisodeRecord, out: Path, first: str) -> list[str | None]:
    """Save the image each step saw, as ``images/<episode>-<step>.png``, and return the
    relative paths; a step that saw the same pixels as the one before reuses its file (a
    GeneralPoints hand is one image; a navigation step sees a new view grid)."""
    paths: list[str | None] = []
    prev_bytes = episode.image.tobytes() if episode.image is not None else None
    prev_path: str | None = first
    for k, step in enumerate(episode.steps, start=1):
        image = step.image
        if image is None or not hasattr(image, "tobytes"):
            paths.append(None)
            continue
        data = image.tobytes()
        if data != prev_bytes:
            prev_path = f"{IMAGES}/{episode.index:05d}-{k:03d}.png"
            image.save(out / prev_path, compress_level=1)
            prev_bytes = data
        paths.append(prev_path)
    return paths


def read_trajectories(path: Path, *, repair: bool = True) -> list[dict[str, Any]]:
    """Read the complete records of a trajectories file, first record per index.

    A line that is not a complete JSON record (a run killed mid-write leaves a half line at
    the end, possibly cut inside a multi-byte character) is skipped; with `repair`, the file is
    rewritten atomically without such lines and without duplicate indices, so appending can
    continue after the last good line.

    Raises
    ------
    OSError
        The file cannot be read; the message names it.
    """
    if not path.exists():
        return []
    records: dict[int, dict[str, Any]] = {}
    dirty = False
    try:
        lines = list(_jsonl_lines(path))
    except OSError as exc:
        raise OSError(f"cannot read {path}: {exc.strerror or exc}") from exc
    for line, complete in lines:
        if not complete or line is None:
            dirty = True  # half-written last line, or bytes that are not UTF-8
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
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
            handle.write(record_line(record))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of `path` that parse (torn or undecodable lines skipped)."""
    if not path.exists():
        return []
    out = []
    for line, _complete in _jsonl_lines(path):
        if line is None:
            continue
        try:
            out.append(json.loads(line))
        except (json.JSONDecodeError, RecursionError):
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
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return
    current = config.to_dict()
    changed = [k for k in EPISODE_DEFINING if k in previous and previous[k] != current.get(k)]
    if changed:
        diffs = ", ".join(f"`{k}` {previous[k]!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(
            f"{out} holds a run with different episodes ({diffs}); pass --no-resume to start "
            "over there, or choose another --out."
        )


class RunLockedError(ValueError):
    """Another process is writing the run folder."""


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder (``.eval.lock``) for a whole run.

    Two runs appending to one ``trajectories.jsonl`` would interleave and tear its lines; the
    lock makes the second one stop at once with a message. The OS drops the lock when the
    holder exits, killed or not, so a stale lock file never blocks a resume.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no advisory locks, run unlocked
        yield
        return
    handle = (out / LOCK).open("a+")
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunLockedError(
                f"another `openvirl eval` is writing {out} (it holds {out / LOCK}); wait for "
                "it to finish, or pass another --out."
            ) from None
        yield
    finally:
        handle.close()  # closing releases the lock


def _recover_live_session(out: Path) -> None:
    """Move a killed run's last counters (``session-live.json``) into ``sessions.jsonl``."""
    live = out / LIVE_SESSION
    if not live.is_file():
        return
    try:
        session = json.loads(live.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        session = None
    if isinstance(session, dict):
        session["error"] = session.get("error") or "killed (counters up to its last episode)"
        with (out / SESSIONS).open("a", encoding="utf-8") as handle:
            handle.write(record_line(_jsonable(session)))
    live.unlink(missing_ok=True)


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
    route_list = _route_file(config)
    if policy is None:
        policy = build_policy(config)
    policy_name = str(getattr(policy, "name", type(policy).__name__))
    out = config.output_dir(policy_name)
    if out.exists() and not out.is_dir():
        raise ValueError(f"`out` {out} is a file; pass a folder (created if missing).")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ValueError(f"cannot create the run folder {out}: {exc.strerror or exc}") from None
    with _locked(out):
        return _evaluate_locked(config, spec, policy, policy_name, out, route_list)


def _evaluate_locked(
    config: EvalConfig,
    spec: TaskSpec,
    policy: Policy,
    policy_name: str,
    out: Path,
    route_list: Any = None,
) -> EvalResult:
    """`evaluate` once the run folder is created and locked."""
    n_default = spec.episodes if route_list is None else len(route_list)
    n_planned = n_default if config.episodes is None else config.episodes
    traj_path = out / TRAJECTORIES

    # PLUMBING: the few-shot prefix (solved training hands) for base models
    n_shots = few_shot_count(config, spec)
    examples = _few_shot(spec, n_shots, policy)

    # PLUMBING: resume or start over
    attempts_path = out / ATTEMPTS
    if config.resume:
        _check_resumable(out, config)
        _recover_live_session(out)
        done = read_trajectories(traj_path)
        sessions = _read_jsonl(out / SESSIONS)
    else:
        for name in (TRAJECTORIES, SESSIONS, METRICS, LIVE_SESSION, ATTEMPTS):
            (out / name).unlink(missing_ok=True)
        done, sessions = [], []
    records = {r["index"]: r for r in done}
    todo = [i for i in range(n_planned) if i not in records]
    partial = _read_attempts(attempts_path, set(todo)) if config.resume else {}
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
            "data": {**_data_description(spec), **_routes_description(config)},
            "prompt": {
                "few_shot": n_shots,
                "examples": [{"role": m["role"], "text": message_text(m)} for m in examples],
            },
            "generation": dict(getattr(policy, "options", {}) or {}),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "resumed_episodes": len(records),
            "resumed_attempts": sum(len(a) for a in partial.values()),
        },
    )

    # ALGO LOGIC: batched episodes, each attempt and each episode written as soon as it ends
    tokens_before = _completion_tokens(policy)
    images_dir = out / IMAGES
    error: str | None = None
    interrupted = False
    n_new = 0
    t0 = time.perf_counter()
    make = _env_factory(spec, config, route_list)

    def session_counters() -> dict[str, Any]:
        tokens_now = _completion_tokens(policy)
        return {
            "started_episodes": len(done),
            "episodes": n_new,
            "wall_s": time.perf_counter() - t0,
            "model_s": timed.seconds,
            "policy_calls": timed.calls,
            "tokens_generated": (None if tokens_now is None else tokens_now - (tokens_before or 0)),
            "policy": policy_name,
            "error": error,
            "ended": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }

    max_attempts = int(config.max_attempts or spec.env_kwargs.get("max_attempts") or 0) or None
    previous_examples = _set_examples(policy, examples)
    progress = _AttemptProgress(
        config,
        f"{spec.name} · {policy_name}",
        n_planned=n_planned,
        records=records,
        per_episode=max_attempts or _env_max_attempts(make),
        replayed={i: len(a) for i, a in partial.items()},
    )
    timed = _TimedPolicy(policy, before_call=progress.flush)
    with (
        traj_path.open("a", encoding="utf-8") as handle,
        attempts_path.open("a", encoding="utf-8") as attempts_log,
        progress,
    ):
        last_sync = time.monotonic()

        def on_step(episode: EpisodeRecord, step: StepRecord) -> None:
            line = {"index": episode.index, "attempt": len(episode.steps), "action": step.action}
            attempts_log.write(record_line(line))
            attempts_log.flush()
            progress.attempt()

        episodes = run_episodes(
            make,
            timed,
            [all_seeds[i] for i in todo],
            batch_size=episodes_in_flight(config),
            indices=todo,
            # Episode i plays item i of a fixed-order set (navigation's held-out routes, each
            # once, in order); environments without such sets ignore the option.
            reset_options=lambda i: {"episode_index": i},
            on_step=on_step,
            replay=lambda i: partial.get(i, []),
        )
        try:
            for episode in episodes:
                image_rel = None
                step_images: list[str | None] = []
                if config.save_images and episode.image is not None:
                    images_dir.mkdir(exist_ok=True)
                    image_rel = f"{IMAGES}/{episode.index:05d}.png"
                    episode.image.save(out / image_rel, compress_level=1)
                    step_images = save_step_images(episode, out, image_rel)
                record = episode_to_dict(
                    episode,
                    task=spec.task,
                    split=spec.split,
                    policy=policy_name,
                    image=image_rel,
                    step_images=step_images,
                )
                handle.write(record_line(record))
                handle.flush()
                if time.monotonic() - last_sync > FSYNC_EVERY_S:
                    os.fsync(handle.fileno())
                    last_sync = time.monotonic()
                records[record["index"]] = record
                n_new += 1
                # A killed run loses no time or tokens: the next run books these counters.
                _write_json(out / LIVE_SESSION, session_counters())
                progress.episode(record)
        except PolicyError as exc:
            error = f"policy {policy_name!r} failed: {exc}"
        except KeyboardInterrupt:
            interrupted = True
            error = "interrupted (Ctrl-C)"
        finally:
            episodes.close()
            _set_examples(policy, previous_examples)
            handle.flush()
            os.fsync(handle.fileno())

    # PLUMBING: session counters, metrics, report
    session = session_counters()
    with (out / SESSIONS).open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(_jsonable(session)) + "\n")
    (out / LIVE_SESSION).unlink(missing_ok=True)
    sessions.append(session)

    planned = [records[i] for i in sorted(records) if i < n_planned]
    complete = len(planned) == n_planned
    if complete:
        attempts_path.unlink(missing_ok=True)  # every episode is in trajectories.jsonl
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


def _few_shot(spec: TaskSpec, n: int, policy: Policy) -> list[Any]:
    """The solved example turns for this run; checks the policy can take them."""
    from openvirl.evaluation.tasks import few_shot_messages

    if n == 0:
        return []
    if not hasattr(policy, "examples"):
        raise ValueError(
            f"--few-shot needs an hf policy (its prompt is rendered here); "
            f"{getattr(policy, 'name', policy)!r} is not one. Pass --few-shot 0."
        )
    return few_shot_messages(spec, n)


def _set_examples(policy: Policy, examples: list[Any]) -> list[Any] | None:
    """Give an hf policy this run's few-shot turns; return what it had (to restore)."""
    if not hasattr(policy, "examples"):
        return None
    previous = list(policy.examples or [])
    policy.examples = examples
    return previous


def _read_attempts(path: Path, todo: set[int]) -> dict[int, list[str]]:
    """Answers already given in unfinished episodes (``attempts.jsonl``), by episode index.

    Lines must run 1, 2, ... per episode; a half-written or out-of-order line ends that
    episode's replay there (it is asked again).
    """
    out: dict[int, list[str]] = {}
    for record in _read_jsonl(path):
        if not isinstance(record, dict):
            continue
        index, attempt, action = record.get("index"), record.get("attempt"), record.get("action")
        if index not in todo or not isinstance(action, str) or not isinstance(attempt, int):
            continue
        answers = out.setdefault(index, [])
        if attempt == len(answers) + 1:
            answers.append(action)
    return {i: a for i, a in out.items() if a}


def _env_max_attempts(make: Any) -> int | None:
    """The attempts per episode of the task's env (its config's `max_attempts`), if it has one."""
    env = make()
    try:
        config = getattr(env.unwrapped, "config", None)
        value = getattr(config, "max_attempts", None)
        return int(value) if isinstance(value, int) else None
    finally:
        env.close()


class _AttemptProgress:
    """Progress per attempt (model answer) with the time left, for a TTY or a log.

    The total counts ``per_episode`` attempts (the env's ``max_attempts``, or 1 when unknown)
    for each remaining episode, replaced by the attempts it took once it ends; for
    GeneralPoints that is the most the remaining episodes can take, so the estimate of the
    time left errs long and only shrinks. Without a terminal (a pipe, a CI log), a line is
    printed between rounds, at most every `LOG_EVERY_S` seconds, instead of a bar.
    """

    LOG_EVERY_S = 30.0

    def __init__(
        self,
        config: EvalConfig,
        label: str,
        *,
        n_planned: int,
        records: Mapping[int, Mapping[str, Any]],
        per_episode: int | None,
        replayed: Mapping[int, int],
    ) -> None:
        self.enabled = config.progress
        self.label = label
        self.records = records
        self.n_planned = n_planned
        self.per_episode = per_episode or 1
        remaining = n_planned - len([i for i in records if i < n_planned])
        done_before = sum(replayed.values())
        self.total = remaining * self.per_episode
        self.done = done_before
        self.t0 = time.monotonic()
        self.done_at_start = done_before
        self.last_log = self.t0
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _AttemptProgress:
        if not self.enabled:
            return self
        from rich.console import Console

        console = Console(stderr=True)
        if console.is_terminal:
            self._bar = _progress(console)
            self._bar.__enter__()
            self._task = self._bar.add_task(
                self.label, total=self.total, completed=self.done, episodes=self._episodes()
            )
        else:
            self._console = console
            console.print(f"{self.label}: {self._episodes()}, up to {self.total} attempts to go")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.__exit__(*exc)
        elif self.enabled:
            self._log(force=True)

    def _episodes(self) -> str:
        n = len([i for i in self.records if i < self.n_planned])
        wins = sum(bool(r.get("success")) for i, r in self.records.items() if i < self.n_planned)
        return f"{n}/{self.n_planned} episodes, {wins} solved"

    def attempt(self) -> None:
        """One answer was given and verified."""
        self.done += 1
        self._update()

    def episode(self, record: Mapping[str, Any]) -> None:
        """An episode ended: its budget in the total becomes the attempts it took (fewer when
        it ended early; more for tasks whose episodes have several positions)."""
        self.total += int(record.get("attempts") or 0) - self.per_episode
        self._update()

    def flush(self) -> None:
        """Between rounds: print the log line when one is due (no terminal)."""
        if self.enabled and self._bar is None:
            self._log(force=False)

    def _update(self) -> None:
        if self.enabled and self._bar is not None:
            self._bar.update(
                self._task, total=self.total, completed=self.done, episodes=self._episodes()
            )

    def _log(self, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self.last_log < self.LOG_EVERY_S:
            return
        self.last_log = now
        rate = (self.done - self.done_at_start) / max(now - self.t0, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = "?" if math.isnan(left) else f"{left / 60:.1f} min"
        self._console.print(
            f"{self.label}: {self.done}/{self.total} attempts, {self._episodes()}, "
            f"at most ~{eta} left"
        )


def _route_file(config: EvalConfig) -> list[Any] | None:
    """The routes of ``config.routes``, read and checked against their city once."""
    if config.routes is None:
        return None
    from openvirl.envs.navigation.virl_io import load_route_file

    return load_route_file(config.routes, city=config.city)


def _routes_description(config: EvalConfig) -> dict[str, Any]:
    """The sha256 of a --routes file, so a run names the exact routes it played."""
    if config.routes is None:
        return {}
    from openvirl.envs.navigation.routes import sha256_file

    return {"routes_file": str(config.routes), "routes_sha256": sha256_file(Path(config.routes))}


def _env_factory(spec: TaskSpec, config: EvalConfig, routes: list[Any] | None = None) -> Any:
    overrides: dict[str, Any] = {"max_attempts": config.max_attempts}
    if routes is not None:
        # Every route once, in file order (episode i plays route i).
        overrides.update(routes=routes, order="fixed")
    if spec.env_kwargs.get("visual") and config.image_size is not None:
        overrides["image_size"] = config.image_size

    def make() -> Any:
        return make_env(spec, **overrides)

    return make


def _progress(console: Any) -> Any:
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
        TextColumn("attempts · {task.fields[episodes]}"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
