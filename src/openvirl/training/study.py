"""`openvirl study`: SFT memorizes, RL generalizes? One Init, two branches, matched compute.

The paper's experiment (spec §1, §8) as one command:

1. **Init**: SFT from the base model on expert single-turn pairs (ID rule, train hands).
2. **RL branch**: multi-turn PPO (sequential revision) from the Init, checkpointed every
   update; its FLOPs at the chosen updates are the study's compute points.
3. **SFT branch**: more SFT from the same Init on fresh expert hands, run in segments that
   end at the same FLOPs as the RL compute points (6N per trained token, counted); the
   segments resume one run and follow one learning-rate schedule whose horizon is the last
   compute point, so an evaluated SFT checkpoint is a point on that schedule, not the end of
   an annealed one. All counts are global (summed over processes), so the branches match
   whatever the number of processes each one ran on.
4. **Evaluation** of the Init and of both branches at each compute point on the held-out
   hands of the ID rule and of the OOD rule (J/Q/K = 11/12/13), the same hands for every
   checkpoint: success with Wilson 95% intervals, rule-collapse rate (OOD answers that count a
   face card as 10, DESIGN.md) and format errors.
5. **Report**: ``study.json`` (every number), ``study.png`` (success against GFLOPs, ID and
   OOD panels, CI bands, the paper's Fig. 5/6 layout) and ``study.md`` (a table of deltas from
   the Init with paired 95% CIs, and the rule-collapse rate).

Presets (``training/configs/study-gp-l-<preset>.yaml``):

- ``quick``: 2 CPU cores, the embedded Gemma-3-270M with LoRA, an easier target so the Init
  solves a useful share of ID hands, one verified attempt at evaluation, 200 hands per split;
- ``paper``: Llama-3.2-11B-Vision-Instruct, full fine-tuning, 8 GPUs through
  ``accelerate launch`` with DeepSpeed (ZeRO-3 for SFT, ZeRO-2 for PPO), the paper's learning
  rates, steps and updates (spec §5.6, §7.3), 234 hands per split, 5 attempts;
- ``smoke``: tiny budgets (2 SFT steps, 2 PPO updates, 8 hands) on the embedded Gemma-3-270M
  by default, a quick end-to-end check; the tests pass ``--model <folder>`` with a tiny random
  model.

Every stage writes into the study folder and is skipped when a rerun finds it complete, so
an interrupted study continues where it stopped.

Example
-------
>>> from openvirl.training.study import load_study_config, run_study
>>> result = run_study(load_study_config("gp-l", "quick"))          # doctest: +SKIP
>>> result.out / "study.md"                                         # doctest: +SKIP
"""

from __future__ import annotations

import gc
import json
import math
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

TASKS = ("gp-l",)
"""Tasks the study runs (GeneralPoints, text). GP-VL and navigation need image SFT."""

PRESETS = ("quick", "paper", "smoke")


@dataclass
class StudyConfig:
    """Every option of `openvirl study`; a preset YAML sets them, ``key=value`` overrides."""

    # What and where
    task: str = field(default="gp-l", metadata={"help": "Task (gp-l)."})
    preset: str = field(default="quick", metadata={"help": "Preset the options came from."})
    out: str | None = field(
        default=None, metadata={"help": "Study folder; default runs/study/<task>-<preset>."}
    )
    resume: bool = field(default=True, metadata={"help": "Skip stages already complete."})
    seed: int = field(default=42, metadata={"help": "Seed of training and evaluation hands."})
    threads: int | None = field(
        default=None, metadata={"help": "torch CPU threads (None: torch's default)."}
    )
    launcher: str | dict[str, str] | None = field(
        default=None,
        metadata={
            "help": "Run training stages as `<launcher> -m openvirl.training.cli ...` "
            "(e.g. 'accelerate launch --num_processes 8'), one string or one per algorithm "
            "({sft: ..., ppo: ...}); None runs them in this process. `{configs}` expands to "
            "the shipped configs folder. It runs as a shell-free command line: a study "
            "config is code, so run only configs you trust."
        },
    )
    # Model
    model: str = field(default="gemma-3-270m", metadata={"help": "Base model."})
    chat_template: bool | None = field(
        default=None, metadata={"help": "Chat template or plain prompts (None: as hf policy)."}
    )
    lora: bool = field(default=True, metadata={"help": "LoRA (True) or full fine-tuning."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    # Difficulty (DESIGN.md: the CPU study needs an Init that solves >= 30% of ID hands)
    target: int = field(default=24, metadata={"help": "Value the formula must reach."})
    n_cards: int = field(
        default=4, metadata={"help": "Cards per hand (the game has 4; fewer is easier)."}
    )
    ranks: list[int] = field(
        default_factory=lambda: [1, 13],
        metadata={"help": "Rank range [lo, hi] of dealt cards (keep 13 for the face-card rule)."},
    )
    split_by: str = field(
        default="values",
        metadata={
            "help": "Held-out unit of hands: 'values' (strict: unseen arithmetic) or 'ranks' "
            "(the paper's ID: unseen prompts, whose problems may have been trained)."
        },
    )
    train_max_attempts: int = field(
        default=5, metadata={"help": "Verified attempts per RL episode (sequential revision)."}
    )
    eval_max_attempts: int = field(
        default=5, metadata={"help": "Verified attempts per evaluation hand (paper: 5)."}
    )
    # Init and SFT branch
    init_steps: int = field(default=400, metadata={"help": "SFT steps of the Init."})
    sft: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": "SFTRunConfig options for the Init and the SFT branch (learning_rate, "
            "batch_size, warmup_steps, deepspeed ...)."
        },
    )
    sft_branch_learning_rate: float | None = field(
        default=None, metadata={"help": "LR of the SFT branch (None: the Init's)."}
    )
    # RL branch
    rl_updates: int = field(default=20, metadata={"help": "PPO updates of the RL branch."})
    eval_updates: list[int] = field(
        default_factory=lambda: [5, 10, 20],
        metadata={"help": "RL updates evaluated; their FLOPs are the compute points."},
    )
    ppo: dict[str, Any] = field(
        default_factory=dict, metadata={"help": "PPOConfig options of the RL branch."}
    )
    # Evaluation
    eval_episodes: int = field(default=234, metadata={"help": "Held-out hands per split."})
    eval_batch_size: int = field(default=16, metadata={"help": "Hands in flight at once."})
    eval_max_new_tokens: int = field(default=256, metadata={"help": "Longest answer."})
    eval_temperature: float = field(default=0.0, metadata={"help": "0 = greedy decoding."})

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"`task` must be one of {TASKS}, got {self.task!r}.")
        if not self.eval_updates or any(not 1 <= u <= self.rl_updates for u in self.eval_updates):
            raise ValueError(
                f"`eval_updates` {self.eval_updates} must be a non-empty list within "
                f"1..rl_updates ({self.rl_updates})."
            )
        self.eval_updates = sorted(set(int(u) for u in self.eval_updates))
        from openvirl.envs.points.splits import SPLIT_UNITS

        if self.split_by not in SPLIT_UNITS:
            raise ValueError(f"`split_by` must be one of {SPLIT_UNITS}, got {self.split_by!r}.")
        if self.init_steps < 1:
            raise ValueError(f"`init_steps` must be >= 1, got {self.init_steps}.")

    @property
    def folder(self) -> Path:
        """The study folder."""
        return Path(self.out or f"runs/study/{self.task}-{self.preset}")

    def env_kwargs(self, rule: str, split: str, max_attempts: int) -> dict[str, Any]:
        """GeneralPoints options of a split of this study (with the hand difficulty knobs)."""
        kwargs: dict[str, Any] = {
            "rule": rule,
            "split": split,
            "target": self.target,
            "max_attempts": max_attempts,
        }
        if self.n_cards != 4 or list(self.ranks) != [1, 13]:
            kwargs.update(n_cards=self.n_cards, ranks=list(self.ranks))
        if self.split_by != "values":
            kwargs["split_by"] = self.split_by
        return kwargs


def load_study_config(
    task: str,
    preset: str,
    overrides: list[str] | tuple[str, ...] = (),
    *,
    out: Path | None = None,
    resume: bool = True,
) -> StudyConfig:
    """The study config of a preset (``configs/study-<task>-<preset>.yaml``) plus overrides."""
    from openvirl.training.config import load_config

    if preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {PRESETS}, got {preset!r}.")
    extra = [f"task={task}", f"preset={preset}", f"resume={str(resume).lower()}", *overrides]
    if out is not None:
        extra.append(f"out={out}")
    return load_config(StudyConfig, f"study-{task}-{preset}.yaml", extra)


# ---------------------------------------------------------------------------- results


@dataclass
class EvalPoint:
    """One evaluated checkpoint on one split."""

    branch: str
    point: str
    rule: str
    gflops: float
    success: float
    ci95: list[float]
    successes: list[bool]
    metrics: dict[str, Any]


@dataclass
class StudyResult:
    """What `run_study` returns: the folder and every evaluated point."""

    out: Path
    points: list[EvalPoint]
    deltas: list[dict[str, Any]]
    stages: dict[str, float]
    """Seconds per stage in this session (``timings.json`` sums every session)."""

    def summary_lines(self) -> list[str]:
        """One line per branch end: ID and OOD success and deltas from the Init."""
        lines = []
        for d in self.deltas:
            if not d["last"]:
                continue
            lines.append(
                f"{d['branch']} @ {d['gflops']:.4g} GFLOPs: ID {d['id']:.1%} "
                f"({d['delta_id']:+.1%}), OOD {d['ood']:.1%} ({d['delta_ood']:+.1%}) vs Init"
            )
        return lines


# ---------------------------------------------------------------------------- stages


def _log(message: str) -> None:
    from rich.console import Console

    Console(stderr=True).print(f"[bold]study[/bold] {message}")


def _complete(folder: Path) -> bool:
    from openvirl.training.checkpoint import checkpoint_step

    return checkpoint_step(folder) is not None


def _run_training(algorithm: str, config: Any, study: StudyConfig) -> dict[str, Any]:
    """Run one training stage in process or through the launcher; return its summary.json."""
    from openvirl.training.config import CONFIGS_DIR, save_config

    out = Path(config.output_dir)
    launcher = study.launcher.get(algorithm) if isinstance(study.launcher, dict) else study.launcher
    if launcher:
        out.mkdir(parents=True, exist_ok=True)
        path = out / f"{algorithm}-stage.yaml"
        save_config(config, path)
        command = [
            *shlex.split(launcher.format(configs=CONFIGS_DIR)),
            "-m",
            "openvirl.training.cli",
            algorithm,
            "--config",
            str(path),
        ]
        if command[0] == "python":
            command[0] = sys.executable
        # The launcher comes from the study config and runs as a command: say what runs.
        print(f"study: running {shlex.join(command)}", file=sys.stderr, flush=True)
        subprocess.run(command, check=True)
    else:
        from openvirl.training.cli import run

        run(algorithm, config)
        gc.collect()
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def _sft_config(study: StudyConfig, **options: Any) -> Any:
    from openvirl.training.sft import SFTRunConfig

    merged = {
        "model": study.model,
        "chat_template": study.chat_template,
        "lora": study.lora,
        "lora_r": study.lora_r,
        "lora_alpha": study.lora_alpha,
        "seed": study.seed,
        "env_kwargs": study.env_kwargs("id", "train", 1),
        **study.sft,
        **options,
    }
    return SFTRunConfig(**merged)


def _policy_source(study: StudyConfig, model_dir: Path) -> dict[str, Any]:
    """How to load a checkpoint's ``model/`` folder as a policy (adapter on base, or full)."""
    if study.lora:
        return {"path_or_name": study.model, "adapter": str(model_dir), "merge_adapter": True}
    return {"path_or_name": str(model_dir)}


def evaluate_checkpoint(
    study: StudyConfig,
    model_dir: Path,
    rule: str,
    out: Path,
    *,
    branch: str,
    point: str,
    gflops: float,
) -> EvalPoint:
    """Play the held-out hands of `rule` with a checkpoint; write trajectories and metrics.

    Hand ``i`` is ``reset(seed=episode_seed(seed, "test", i))`` on the test side of the
    hashed split, exactly the hands `openvirl eval` plays, so every checkpoint meets the same
    hands and deltas can be paired.

    The folder is an evaluation run folder the viewer opens: ``config.json`` in the shape
    `openvirl.evaluation.evaluate` writes (the task with this study's env options, seeds,
    policy, versions) and ``metrics.json`` with the flat ``eval/*`` metrics beside the
    study's own ``point`` and ``env`` entries.
    """
    from openvirl.envs.points.dataset import episode_seed
    from openvirl.evaluation.evaluate import episode_to_dict
    from openvirl.evaluation.metrics import compute_metrics
    from openvirl.evaluation.rollout import run_episodes
    from openvirl.policies.hf import HFPolicy
    from openvirl.training.checkpoint import write_json_atomic
    from openvirl.training.data import make_env_factory

    metrics_path = out / "metrics.json"
    if study.resume and metrics_path.exists():
        saved = json.loads(metrics_path.read_text(encoding="utf-8"))
        return EvalPoint(**saved["point"])
    out.mkdir(parents=True, exist_ok=True)
    source = _policy_source(study, model_dir)
    policy = HFPolicy.from_pretrained(
        source.pop("path_or_name"),
        **source,
        chat_template=study.chat_template
        if study.chat_template is not None
        else _chat_default(study.model),
        temperature=study.eval_temperature,
        max_new_tokens=study.eval_max_new_tokens,
        batch_size=study.eval_batch_size,
        seed=study.seed,
        name=f"{branch}-{point}",
    )
    kwargs = study.env_kwargs(rule, "test", study.eval_max_attempts)
    seeds = [episode_seed(study.seed, "test", i) for i in range(study.eval_episodes)]
    groups = ("rule_collapse",) if rule == "ood" else ()
    write_json_atomic(
        out / "config.json",
        _eval_config(study, rule, kwargs, seeds, groups, policy, branch=branch, point=point),
    )
    t0 = time.perf_counter()
    records = []
    make = make_env_factory("openvirl/GeneralPoints-v0", kwargs)
    for episode in run_episodes(make, policy, seeds, batch_size=study.eval_batch_size):
        records.append(episode_to_dict(episode, task=study.task, split=rule, policy=policy.name))
    records.sort(key=lambda r: r["index"])
    with (out / "trajectories.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    metrics = compute_metrics(records, metric_set=groups)
    metrics["eval/wall_s"] = time.perf_counter() - t0
    successes = [bool(r["success"]) for r in records]
    result = EvalPoint(
        branch=branch,
        point=point,
        rule=rule,
        gflops=gflops,
        success=float(metrics["eval/success"]),
        ci95=list(metrics["eval/success_ci95"]),
        successes=successes,
        metrics={k: v for k, v in metrics.items() if not isinstance(v, dict)},
    )
    flat = {
        "task": study.task,
        "split": rule,
        "policy": policy.name,
        "seed": study.seed,
        "episodes_planned": study.eval_episodes,
        "complete": True,
        "error": None,
        **{k: v for k, v in metrics.items() if _json_number_or_list(v)},
    }
    write_json_atomic(metrics_path, {**flat, "point": result.__dict__, "env": kwargs})
    del policy
    gc.collect()
    return result


def _json_number_or_list(value: Any) -> bool:
    """Whether a metric value is one the evaluation's metrics.json would hold flat."""
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, (int, str, list, dict, type(None)))


def _eval_config(
    study: StudyConfig,
    rule: str,
    kwargs: dict[str, Any],
    seeds: list[int],
    groups: tuple[str, ...],
    policy: Any,
    *,
    branch: str,
    point: str,
) -> dict[str, Any]:
    """``config.json`` of a checkpoint's evaluation folder, as `evaluate` writes one."""
    from dataclasses import asdict

    from openvirl.evaluation.evaluate import package_versions
    from openvirl.evaluation.tasks import GP_ENV_ID, TaskSpec

    spec = TaskSpec(
        task=study.task,
        split=rule,
        env_id=GP_ENV_ID,
        env_kwargs=dict(kwargs),
        metrics=groups,
        episodes=study.eval_episodes,
        description=f"study {study.preset}: {branch} {point}, {rule} rule, held-out hands",
    )
    return {
        "config": {
            "task": study.task,
            "split": rule,
            "policy": policy.name,
            "episodes": study.eval_episodes,
            "seed": study.seed,
            "batch_size": study.eval_batch_size,
            "max_attempts": study.eval_max_attempts,
            "temperature": study.eval_temperature,
            "max_new_tokens": study.eval_max_new_tokens,
        },
        "task": asdict(spec),
        "episodes": study.eval_episodes,
        "seeds": seeds,
        "policy": {
            "spec": f"study:{branch}-{point}",
            "name": policy.name,
            "repr": repr(policy)[:500],
        },
        "study": {"branch": branch, "point": point, "rule": rule, "preset": study.preset},
        "versions": package_versions(),
    }


def _chat_default(model: str) -> bool | None:
    from openvirl.policies import embedded

    return embedded.EMBEDDED_CHAT_TEMPLATE if embedded.is_embedded_name(model) else None


def paired_delta(
    after: list[bool], before: list[bool], z: float = 1.96
) -> tuple[float, float, float]:
    """Mean paired difference of success on the same hands, with a normal 95% interval.

    Every checkpoint plays the same hands, so the difference is taken per hand
    (``after_i - before_i``); its standard error is smaller than that of two independent
    rates, which is what makes a few-point change on 200 hands resolvable.
    """
    n = min(len(after), len(before))
    if n == 0:
        return float("nan"), float("nan"), float("nan")
    diffs = [float(a) - float(b) for a, b in zip(after[:n], before[:n], strict=True)]
    mean = sum(diffs) / n
    if n < 2:
        return mean, mean, mean
    var = sum((d - mean) ** 2 for d in diffs) / (n - 1)
    half = z * math.sqrt(var / n)
    return mean, mean - half, mean + half


# ---------------------------------------------------------------------------- the study


def run_study(study: StudyConfig) -> StudyResult:
    """Run (or continue) every stage of the study and write the report; see the module doc."""
    from openvirl.training.config import config_to_dict, save_config

    if study.threads:
        import torch

        torch.set_num_threads(study.threads)
    out = study.folder
    out.mkdir(parents=True, exist_ok=True)
    save_config(study, out / "study-config.yaml")
    stages: dict[str, float] = {}
    t_study = time.perf_counter()

    # 1. Init: SFT from the base model
    t0 = time.perf_counter()
    init_dir = out / "init"
    if not (study.resume and _complete(init_dir / "final")):
        _log(f"Init: SFT for {study.init_steps} steps")
        batch = int(study.sft.get("batch_size", 8))  # the global batch, whatever the processes
        config = _sft_config(
            study,
            output_dir=str(init_dir),
            max_steps=study.init_steps,
            n_examples=study.init_steps * batch,  # one epoch
            data_seed=study.seed,
            resume=study.resume,
        )
        _run_training("sft", config, study)
    init_summary = json.loads((init_dir / "summary.json").read_text(encoding="utf-8"))
    init_flops = float(init_summary["flops"]["flops"])
    n_params = int(init_summary["flops"]["n_params"])
    tokens_per_step = init_summary["train_tokens"] / max(1, init_summary["steps"])
    stages["init_s"] = time.perf_counter() - t0

    points: list[EvalPoint] = []

    def evaluate_both(model_dir: Path, branch: str, point: str, gflops: float) -> None:
        for rule in ("id", "ood"):
            _log(f"evaluate {branch} {point} on {rule} ({study.eval_episodes} hands)")
            points.append(
                evaluate_checkpoint(
                    study,
                    model_dir,
                    rule,
                    out / "eval" / f"{branch}-{point}-{rule}",
                    branch=branch,
                    point=point,
                    gflops=gflops,
                )
            )

    t0 = time.perf_counter()
    evaluate_both(init_dir / "final", "init", "init", init_flops / 1e9)
    stages["eval_init_s"] = time.perf_counter() - t0

    # 2. RL branch: PPO from the Init, a checkpoint every update
    t0 = time.perf_counter()
    rl_dir = out / "rl"
    if not (study.resume and _complete(rl_dir / "final")):
        _log(f"RL branch: PPO for {study.rl_updates} updates")
        from openvirl.training.ppo import PPOConfig

        options = {
            "model": study.model,
            "chat_template": study.chat_template,
            "lora": study.lora,
            "lora_r": study.lora_r,
            "lora_alpha": study.lora_alpha,
            "seed": study.seed,
            "env_kwargs": study.env_kwargs("id", "train", study.train_max_attempts),
            **study.ppo,
            "num_updates": study.rl_updates,
            "output_dir": str(rl_dir),
            "keep_last": None,
            "save_every": 1,
            "flops_offset": init_flops,
            "resume": study.resume,
        }
        if study.lora:
            options["init_adapter"] = str(init_dir / "final")
        else:
            options["model"] = str(init_dir / "final")
        _run_training("ppo", PPOConfig(**options), study)
    rl_points = {}
    for update in study.eval_updates:
        ckpt = rl_dir / "checkpoints" / f"step-{update:08d}"
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        rl_points[update] = (ckpt / "model", float(state["flops"]["flops"]))
    stages["rl_s"] = time.perf_counter() - t0

    # 3. SFT branch: more SFT from the Init, segments ending at the RL compute points
    t0 = time.perf_counter()
    sft_dir = out / "sft"
    per_step = 6 * n_params * tokens_per_step
    targets = {u: max(1, round((f - init_flops) / per_step)) for u, (_, f) in rl_points.items()}
    total_steps = max(targets.values())
    batch = int(study.sft.get("batch_size", 8))
    sft_points = {}
    for update, steps in sorted(targets.items()):
        point_dir = sft_dir / "points" / f"step-{steps:06d}"
        if not (study.resume and _complete(point_dir)):
            _log(f"SFT branch: to step {steps} (RL update {update})")
            options: dict[str, Any] = {
                "output_dir": str(sft_dir / "run"),
                "max_steps": steps,
                "n_examples": total_steps * batch,
                "data_seed": study.seed + 1,  # fresh expert hands, not the Init's
                "flops_offset": init_flops,
                "save_steps": 1,
                "keep_last": 1,
                "resume": True,
                "warmup_steps": 0,
                # every segment follows the same schedule, ending at the last compute point
                "schedule_steps": total_steps,
            }
            if study.sft_branch_learning_rate is not None:
                options["learning_rate"] = study.sft_branch_learning_rate
            if study.lora:
                options["init_adapter"] = str(init_dir / "final")
            else:
                options["model"] = str(init_dir / "final")
            _run_training("sft", _sft_config(study, **options), study)
            if point_dir.exists():
                shutil.rmtree(point_dir)
            shutil.copytree(sft_dir / "run" / "final", point_dir)
            shutil.copy(sft_dir / "run" / "summary.json", point_dir / "summary.json")
        summary = json.loads((point_dir / "summary.json").read_text(encoding="utf-8"))
        sft_points[update] = (point_dir, float(summary["flops"]["flops"]), steps)
    stages["sft_s"] = time.perf_counter() - t0

    # 4. Evaluation of both branches at every compute point
    t0 = time.perf_counter()
    for update, (model_dir, flops) in rl_points.items():
        evaluate_both(model_dir, "rl", f"u{update}", flops / 1e9)
    for _, (model_dir, flops, steps) in sorted(sft_points.items()):
        evaluate_both(model_dir, "sft", f"s{steps}", flops / 1e9)
    stages["eval_branches_s"] = time.perf_counter() - t0
    stages["total_s"] = time.perf_counter() - t_study
    all_sessions = _accumulate_timings(out / "timings.json", stages)

    # 5. Report
    deltas = _deltas(points)
    result = StudyResult(out=out, points=points, deltas=deltas, stages=stages)
    payload = {
        "config": config_to_dict(study),
        "n_params": n_params,
        "init_gflops": init_flops / 1e9,
        "points": [{k: v for k, v in p.__dict__.items() if k != "successes"} for p in points],
        "deltas": deltas,
        "stages_s": all_sessions,
        "this_session_s": stages,
    }
    (out / "study.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", "utf-8")
    plot_study(points, out / "study.png", title=f"{study.task} · {study.model} · {study.preset}")
    (out / "study.md").write_text(study_markdown(study, points, deltas, all_sessions), "utf-8")
    return result


def _accumulate_timings(path: Path, session: dict[str, float]) -> dict[str, float]:
    """Stage wall times summed over every session of the study (a resumed stage adds up)."""
    previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    total = {k: float(previous.get(k, 0.0)) + float(v) for k, v in session.items()}
    total["sessions"] = float(previous.get("sessions", 0.0)) + 1
    path.write_text(json.dumps(total, indent=2) + "\n", encoding="utf-8")
    return total


def _deltas(points: list[EvalPoint]) -> list[dict[str, Any]]:
    """Each branch point's success and rule collapse against the Init, paired per hand."""
    init = {p.rule: p for p in points if p.branch == "init"}
    rows = []
    for branch in ("rl", "sft"):
        mine = [p for p in points if p.branch == branch]
        labels = sorted(
            {p.point for p in mine}, key=lambda x: next(q.gflops for q in mine if q.point == x)
        )
        for label in labels:
            by_rule = {p.rule: p for p in mine if p.point == label}
            row: dict[str, Any] = {
                "branch": branch,
                "point": label,
                "gflops": by_rule["id"].gflops,
                "last": label == labels[-1],
            }
            for rule in ("id", "ood"):
                p = by_rule[rule]
                d, low, high = paired_delta(p.successes, init[rule].successes)
                row[rule] = p.success
                row[f"{rule}_ci95"] = p.ci95
                row[f"delta_{rule}"] = d
                row[f"delta_{rule}_ci95"] = [low, high]
            row["rule_collapse"] = by_rule["ood"].metrics.get("eval/rule_collapse_rate")
            row["rule_collapse_ci95"] = by_rule["ood"].metrics.get("eval/rule_collapse_rate_ci95")
            rows.append(row)
    return rows


def plot_study(points: list[EvalPoint], path: Path, *, title: str = "") -> None:
    """Success against training GFLOPs, ID and OOD panels, 95% CI bands (paper Fig. 5/6)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"rl": "#d62728", "sft": "#1f77b4"}
    names = {"rl": "RL (PPO)", "sft": "SFT"}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, rule, label in zip(
        axes, ("id", "ood"), ("In-distribution", "Out-of-distribution (rule)"), strict=True
    ):
        init = [p for p in points if p.branch == "init" and p.rule == rule]
        for branch in ("sft", "rl"):
            series = sorted(
                init + [p for p in points if p.branch == branch and p.rule == rule],
                key=lambda p: p.gflops,
            )
            x = [p.gflops for p in series]
            y = [100 * p.success for p in series]
            ax.plot(x, y, "-o", color=colors[branch], label=names[branch], markersize=4)
            ax.fill_between(
                x,
                [100 * p.ci95[0] for p in series],
                [100 * p.ci95[1] for p in series],
                color=colors[branch],
                alpha=0.15,
                linewidth=0,
            )
        if init:
            ax.plot([init[0].gflops], [100 * init[0].success], "ks", label="Init", markersize=6)
        ax.set_title(label)
        ax.set_xlabel("training compute (GFLOPs)")
        ax.set_ylabel("success rate (%)")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))
    axes[0].legend(loc="best", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _pct(x: float | None) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _ci(ci: list[float] | None, signed: bool = False) -> str:
    if not ci:
        return ""
    fmt = "{:+.1f}" if signed else "{:.1f}"
    return f"[{fmt.format(100 * ci[0])}, {fmt.format(100 * ci[1])}]"


def study_markdown(
    study: StudyConfig,
    points: list[EvalPoint],
    deltas: list[dict[str, Any]],
    stages: dict[str, float],
) -> str:
    """The study report: setup, the table of deltas from Init with CIs, rule collapse."""
    init = {p.rule: p for p in points if p.branch == "init"}
    adaptation = f"LoRA r={study.lora_r}" if study.lora else "full fine-tuning"
    lines = [
        f"# Study: {study.task}, preset `{study.preset}`",
        "",
        f"Model `{study.model}` ({adaptation}), "
        f"target {study.target}, {study.n_cards} cards of ranks {study.ranks[0]}-{study.ranks[1]}, "
        f"{study.eval_episodes} held-out hands per split (held out by {study.split_by[:-1]} "
        f"multiset), "
        f"{study.eval_max_attempts} verified attempt(s) per hand at evaluation, "
        f"{study.train_max_attempts} per RL episode. Init: {study.init_steps} SFT steps. "
        f"RL: {study.rl_updates} PPO updates; SFT branch matched to the RL compute points.",
        "",
        "![success against compute](study.png)",
        "",
        "| checkpoint | GFLOPs | ID success [95% CI] | OOD success [95% CI] | ΔID vs Init [95% CI] "
        "| ΔOOD vs Init [95% CI] | OOD rule collapse [95% CI] |",
        "|---|---|---|---|---|---|---|",
    ]
    if init:
        rc = init["ood"].metrics.get("eval/rule_collapse_rate")
        rc_ci = init["ood"].metrics.get("eval/rule_collapse_rate_ci95")
        lines.append(
            f"| Init | {init['id'].gflops:.4g} | {_pct(init['id'].success)} {_ci(init['id'].ci95)} "
            f"| {_pct(init['ood'].success)} {_ci(init['ood'].ci95)} | | | {_pct(rc)} {_ci(rc_ci)} |"
        )
    names = {"rl": "RL", "sft": "SFT"}
    for d in deltas:
        lines.append(
            f"| {names[d['branch']]} {d['point']} | {d['gflops']:.4g} | {_pct(d['id'])} "
            f"{_ci(d['id_ci95'])} | {_pct(d['ood'])} {_ci(d['ood_ci95'])} "
            f"| {100 * d['delta_id']:+.1f} {_ci(d['delta_id_ci95'], True)} "
            f"| {100 * d['delta_ood']:+.1f} {_ci(d['delta_ood_ci95'], True)} "
            f"| {_pct(d['rule_collapse'])} {_ci(d['rule_collapse_ci95'])} |"
        )
    lines += [
        "",
        "Success: solved within the verified attempts (Wilson 95% intervals). Deltas are paired",
        "per hand (every checkpoint plays the same held-out hands), in percentage points.",
        "Rule collapse: share of OOD answers that count a J, Q or K as 10, the ID rule's value.",
        "Compute: 6N per trained token plus 2N per token generated or scored (N = all parameters).",
        "",
        "Stage wall times, summed over sessions (s): "
        + ", ".join(f"{k.removesuffix('_s')} {v:.0f}" for k, v in stages.items()),
        "",
    ]
    return "\n".join(lines)


__all__ = [
    "PRESETS",
    "TASKS",
    "EvalPoint",
    "StudyConfig",
    "StudyResult",
    "evaluate_checkpoint",
    "load_study_config",
    "paired_delta",
    "plot_study",
    "run_study",
    "study_markdown",
]
