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
4. **Evaluation** of the Init and of both branches at each compute point on distinct
   held-out problems of the ID rule and of the OOD rule (J/Q/K = 11/12/13), each played once,
   the same problems for every checkpoint, with the training attempt budget: success@k and
   success@1 with bootstrap-over-problems 95% intervals (`openvirl.evaluation.stats`),
   rule collapse among parseable OOD answers (a face card counted as 10, DESIGN.md), rule
   following and format errors.
5. **Report**: ``study.json`` (every number, the split sizes, the interval method, the
   learning-rate rule), ``study.png`` (success against GFLOPs, ID and OOD panels, CI bands,
   the paper's Fig. 5/6 layout) and ``study.md`` (deltas from the Init and RL minus SFT at
   matched compute, paired per problem, exact when nothing changed).

The task (`openvirl.training.study_tasks`: gp-l, gp-vl, nav-l, nav-vl) decides the
environment of every stage, its evaluation splits (ID, rule OOD, visual OOD), the problem unit
(a hand, or a route played once in its set's fixed order) and the headline (success@k, or
navigation's per-step accuracy with a bootstrap over routes of the ratio); steps 1-5 are the
same for all four. `openvirl.training.study_all` runs the four in turn (``--task all``) and
writes the combined report.

Optionally (``lr_sweep``) each branch's learning rate is chosen by a short sweep at the first
compute point on ID validation problems; `run_seeds` repeats everything over several seeds.

Presets of gp-l (``training/configs/study-gp-l-<preset>.yaml``; the other tasks have their own
``study-<task>-<preset>.yaml``, the VL ones needing a vision-language model):

- ``quick``: 2 CPU cores, the embedded Gemma-3-270M with LoRA, an easier target so the Init
  solves a useful share of ID hands, the training budget of 2 attempts at evaluation, up to
  200 distinct problems per split;
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

from openvirl.training.study_tasks import STUDY_TASKS, StudyTask, get_study_task

TASKS = tuple(STUDY_TASKS)
"""Tasks the study runs: gp-l, gp-vl, nav-l, nav-vl (`openvirl.training.study_tasks`)."""

PRESETS = ("quick", "paper", "smoke")

RL_SEED_OFFSET = 2
"""The RL branch's hand stream is ``seed + 2`` (Init SFT: ``seed``, SFT branch: ``seed + 1``),
so RL plays fresh training problems rather than replaying the Init's SFT examples."""
VAL_SEED_OFFSET = 1000
"""Seed stream of the learning-rate sweep's validation problems (train side of the split)."""
RULE_OOD_PROBLEMS = ("held-out", "all")
"""Where GeneralPoints' rule-OOD problems come from (`StudyConfig.rule_ood_problems`)."""


@dataclass
class StudyConfig:
    """Every option of `openvirl study`; a preset YAML sets them, ``key=value`` overrides."""

    # What and where
    task: str = field(
        default="gp-l", metadata={"help": "Task: gp-l, gp-vl, nav-l or nav-vl (study_tasks)."}
    )
    splits: list[str] | None = field(
        default=None,
        metadata={
            "help": "Evaluation splits (None: the task's defaults; gp-l: id ood, gp-vl: id ood "
            "visual, nav-l: id ood, nav-vl: id visual; navigation also has ood-hard)."
        },
    )
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
    vl_model: str | None = field(
        default=None,
        metadata={
            "help": "Base model of the VL tasks (gp-vl, nav-vl), replacing `model` there, so "
            "`--task all` can train a text model on the L tasks and a VLM on the VL ones."
        },
    )
    visual_routes: str = field(
        default="visual-ood",
        metadata={
            "help": "Navigation preset of nav-vl's visual-OOD routes: visual-ood (12 shipped "
            "routes in Helsinki and Monaco), visual-ood-all (24, with two caveated cities) or "
            "visual-ood-virl (V-IRL's 18 VLN-mini routes in nine cities, fetched from "
            "OpenStreetMap on first use)."
        },
    )
    image_size: int | None = field(
        default=None,
        metadata={"help": "Side of the VL tasks' images in pixels (None: the env's default)."},
    )
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
    rule_ood_problems: str = field(
        default="held-out",
        metadata={
            "help": "GeneralPoints rule-OOD problems: 'held-out' (the test side of the hashed "
            "split, like ID) or 'all' (every solvable hand under the OOD rule: no OOD-rule "
            "problem is ever trained, so the whole space is unseen; more problems, tighter "
            "intervals, though most card lists were seen under the ID rule)."
        },
    )
    train_max_attempts: int = field(
        default=5, metadata={"help": "Verified attempts per RL episode (sequential revision)."}
    )
    eval_max_attempts: int | None = field(
        default=None,
        metadata={
            "help": "Verified attempts per evaluation hand (None: train_max_attempts, the "
            "paper's protocol: evaluation keeps the verifier-feedback channel RL trained with)."
        },
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
    lr_sweep: list[float] = field(
        default_factory=list,
        metadata={
            "help": "Learning-rate rule: multipliers of each branch's preset LR tried at the "
            "first compute point; each branch keeps the one with the best success on ID "
            "validation problems (train side, disjoint from test). Empty: the preset's LRs."
        },
    )
    lr_sweep_episodes: int = field(
        default=32, metadata={"help": "Distinct ID validation problems of the LR sweep."}
    )
    # Evaluation
    eval_episodes: int = field(
        default=234,
        metadata={
            "help": "Distinct held-out problems per split (fewer when the split holds fewer; "
            "each is played once)."
        },
    )
    eval_draw_factor: int = field(
        default=30,
        metadata={
            "help": "Hands dealt per wanted problem while collecting distinct ones; a split "
            "that yields fewer in eval_draw_factor * eval_episodes deals is reported as such."
        },
    )
    bootstrap_resamples: int = field(
        default=2000, metadata={"help": "Resamples of the bootstrap over problems."}
    )
    eval_batch_size: int = field(default=16, metadata={"help": "Hands in flight at once."})
    eval_max_new_tokens: int = field(default=256, metadata={"help": "Longest answer."})
    eval_temperature: float = field(default=0.0, metadata={"help": "0 = greedy decoding."})
    precision: str | None = field(
        default=None,
        metadata={
            "help": "CPU precision of evaluation and PPO rollouts (hf `precision`; None: the "
            "model's default, exact `shortlist` for the embedded model; `bf16` is faster "
            "with unchanged success on held-out hands, see the README)."
        },
    )

    def __post_init__(self) -> None:
        if self.precision is not None:
            from openvirl.policies.fast import check_precision

            check_precision(self.precision)
        spec = get_study_task(self.task)
        if self.splits is None:
            self.splits = list(spec.default_splits)
        self.splits = [str(x) for x in self.splits]
        for name in self.splits:
            spec.split(name)
        if not self.splits or self.splits[0] != "id" or len(set(self.splits)) != len(self.splits):
            raise ValueError(
                f"`splits` {self.splits} must start with 'id' and name each split once."
            )
        if self.visual_routes not in ("visual-ood", "visual-ood-all", "visual-ood-virl"):
            raise ValueError(
                "`visual_routes` must be visual-ood, visual-ood-all or visual-ood-virl, got "
                f"{self.visual_routes!r}."
            )
        if spec.visual and self.vl_model:
            self.model = self.vl_model
        if not self.eval_updates or any(not 1 <= u <= self.rl_updates for u in self.eval_updates):
            raise ValueError(
                f"`eval_updates` {self.eval_updates} must be a non-empty list within "
                f"1..rl_updates ({self.rl_updates})."
            )
        self.eval_updates = sorted(set(int(u) for u in self.eval_updates))
        if self.eval_max_attempts is None:
            self.eval_max_attempts = self.train_max_attempts
        if self.eval_max_attempts < 1 or self.train_max_attempts < 1:
            raise ValueError("`train_max_attempts` and `eval_max_attempts` must be >= 1.")
        if any(not m > 0 for m in self.lr_sweep) or self.lr_sweep_episodes < 1:
            raise ValueError("`lr_sweep` multipliers must be > 0 and `lr_sweep_episodes` >= 1.")
        if self.eval_episodes < 1 or self.eval_draw_factor < 1:
            raise ValueError("`eval_episodes` and `eval_draw_factor` must be >= 1.")
        from openvirl.envs.points.splits import SPLIT_UNITS

        if self.split_by not in SPLIT_UNITS:
            raise ValueError(f"`split_by` must be one of {SPLIT_UNITS}, got {self.split_by!r}.")
        if self.rule_ood_problems not in RULE_OOD_PROBLEMS:
            raise ValueError(
                f"`rule_ood_problems` must be one of {RULE_OOD_PROBLEMS}, got "
                f"{self.rule_ood_problems!r}."
            )
        if self.init_steps < 1:
            raise ValueError(f"`init_steps` must be >= 1, got {self.init_steps}.")

    @property
    def task_spec(self) -> StudyTask:
        """The task's environment, splits, headline and paper numbers."""
        return get_study_task(self.task)

    def split_kwargs(self, split: str, side: str, max_attempts: int) -> dict[str, Any]:
        """`gym.make` options of a split (``"train"``: the training split) on `side`."""
        from openvirl.training.study_tasks import env_kwargs

        return env_kwargs(self.task_spec, self, split, side, max_attempts)

    @property
    def folder(self) -> Path:
        """The study folder."""
        return Path(self.out or f"runs/study/{self.task}-{self.preset}")

    def env_kwargs(self, rule: str, split: str, max_attempts: int) -> dict[str, Any]:
        """GeneralPoints options of a rule and side (with the hand difficulty knobs); the
        VL and navigation tasks add theirs in `split_kwargs`."""
        every_ood = rule == "ood" and split == "test" and self.rule_ood_problems == "all"
        kwargs: dict[str, Any] = {
            "rule": rule,
            "split": None if every_ood else split,
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

    get_study_task(task)  # an unknown task: the list of tasks, not a missing file
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
    problems: list[str] = field(default_factory=list)
    """The problem key of each episode (`openvirl.evaluation.stats.problem_key`)."""
    n_problems: int = 0
    episodes: int = 0
    dealt: int = 0
    """Hands dealt to collect the distinct problems (the split's size when it ran out)."""
    success_at_1: float = float("nan")
    success_at_1_ci95: list[float] = field(default_factory=list)
    ci_method: str = ""
    kind: str = ""
    """``"id"``, ``"rule"`` or ``"visual"`` (`study_tasks.StudySplit.kind`)."""
    headline: str = "success"
    """Which number is this split's score: ``"success"`` or ``"per_step_accuracy"``."""
    per_step_accuracy: float = float("nan")
    """Correct steps over all logged attempts (navigation's headline, spec §3.6)."""
    per_step_accuracy_ci95: list[float] = field(default_factory=list)
    correct_steps: list[int] = field(default_factory=list)
    """Correct steps of each episode (same order as `successes`)."""
    steps: list[int] = field(default_factory=list)
    """Logged attempts of each episode."""

    @property
    def score(self) -> float:
        """The headline number: success@k, or per-step accuracy for navigation."""
        return self.per_step_accuracy if self.headline == "per_step_accuracy" else self.success

    @property
    def score_ci95(self) -> list[float]:
        """The headline number's bootstrap-over-problems interval."""
        if self.headline == "per_step_accuracy":
            return self.per_step_accuracy_ci95
        return self.ci95


@dataclass
class StudyResult:
    """What `run_study` returns: the folder and every evaluated point."""

    out: Path
    points: list[EvalPoint]
    deltas: list[dict[str, Any]]
    stages: dict[str, float]
    """Seconds per stage in this session (``timings.json`` sums every session)."""

    def summary_lines(self) -> list[str]:
        """One line per branch end: each split's score and its delta from the Init."""
        lines = []
        for d in self.deltas:
            if not d["last"]:
                continue
            splits = [
                k.removeprefix("delta_")
                for k in d
                if k.startswith("delta_") and not k.endswith(("_ci95", "_note"))
            ]
            parts = [f"{s.upper()} {d[s]:.1%} ({d[f'delta_{s}']:+.1%})" for s in splits]
            lines.append(
                f"{d['branch']} @ {d['gflops']:.4g} GFLOPs: " + ", ".join(parts) + " vs Init"
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
        "env_id": study.task_spec.env_id,
        "env_kwargs": study.split_kwargs("train", "train", 1),
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
    validation: bool = False,
) -> EvalPoint:
    """Play distinct held-out problems of split `rule` with a checkpoint; write trajectories,
    metrics.

    `rule` names one of the task's splits (``id``, ``ood``, ``ood-hard``, ``visual``). The
    GeneralPoints problems are `distinct_problem_seeds`: deals ``episode_seed(seed, "test",
    i)`` on the test side of the hashed split, keeping the first deal of each distinct
    problem; navigation plays the split's routes in their fixed order, each once
    (`study_tasks.navigation_problems`). Every checkpoint meets the same problems, each once,
    and deltas can be paired per problem. `validation` plays ID problems of the *train* side
    instead (seed stream ``seed + VAL_SEED_OFFSET``, `lr_sweep_episodes` of them): disjoint
    from the test split by the hash (GeneralPoints) or the route set (navigation).

    The folder is an evaluation run folder the viewer opens: ``config.json`` in the shape
    `openvirl.evaluation.evaluate` writes (the task with this study's env options, seeds,
    policy, versions) and ``metrics.json`` with the flat ``eval/*`` metrics beside the
    study's own ``point`` and ``env`` entries.
    """
    from openvirl.evaluation.evaluate import episode_to_dict
    from openvirl.evaluation.metrics import compute_metrics
    from openvirl.evaluation.rollout import run_episodes
    from openvirl.evaluation.stats import rate_interval, ratio_interval
    from openvirl.policies.hf import HFPolicy
    from openvirl.training.checkpoint import write_json_atomic
    from openvirl.training.data import make_env_factory
    from openvirl.training.study_tasks import navigation_problems, sharing_cities

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
        precision=study.precision,
    )
    task = study.task_spec
    split_spec = task.split(rule)
    side = "train" if validation else "test"
    kwargs = study.split_kwargs(rule, side, int(study.eval_max_attempts or 1))
    make = make_env_factory(task.env_id, kwargs)
    seed = study.seed + VAL_SEED_OFFSET if validation else study.seed
    wanted = study.lr_sweep_episodes if validation else study.eval_episodes
    reset_options = None
    if task.family == "navigation":
        make = sharing_cities(make)
        # the route list needs no images: list it from the text env of the same route set
        listing = make_env_factory(task.env_id, {**kwargs, "visual": False})
        seeds, keys, routes = navigation_problems(listing, seed, wanted, side)
        dealt = len(seeds)

        def reset_options(index: int) -> dict[str, Any]:
            return {"route_index": routes[index]}

        groups: tuple[str, ...] = ()
    else:
        seeds, keys, dealt = distinct_problem_seeds(
            make, seed, wanted, study.eval_draw_factor, study.split_by, side
        )
        groups = ("rule_collapse",) if split_spec.kind == "rule" else ()
        if task.visual:
            groups = ("recognition", *groups)
    write_json_atomic(
        out / "config.json",
        _eval_config(study, rule, kwargs, seeds, groups, policy, branch=branch, point=point),
    )
    t0 = time.perf_counter()
    records = []
    for episode in run_episodes(
        make, policy, seeds, batch_size=study.eval_batch_size, reset_options=reset_options
    ):
        records.append(episode_to_dict(episode, task=study.task, split=rule, policy=policy.name))
    records.sort(key=lambda r: r["index"])
    with (out / "trajectories.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    metrics = compute_metrics(
        records, metric_set=groups, split_by=study.split_by, bootstrap_seed=study.seed
    )
    metrics["eval/wall_s"] = time.perf_counter() - t0
    successes = [bool(r["success"]) for r in records]
    first = [bool(r["success"]) and len(r.get("steps", [])) <= 1 for r in records]
    correct = [sum(st.get("outcome") == "correct" for st in r.get("steps", [])) for r in records]
    attempts = [len(r.get("steps", [])) for r in records]
    boot = {"resamples": study.bootstrap_resamples, "seed": study.seed}
    overall = rate_interval([float(x) for x in successes], keys, **boot)
    at_1 = rate_interval([float(x) for x in first], keys, **boot)
    per_step = ratio_interval(
        [float(c) for c in correct], [float(a) for a in attempts], keys, **boot
    )
    navigation = task.family == "navigation"
    result = EvalPoint(
        branch=branch,
        point=point,
        rule=rule,
        gflops=gflops,
        success=float(overall["estimate"]),
        ci95=list(overall["ci95"]),
        successes=successes,
        metrics={k: v for k, v in metrics.items() if not isinstance(v, dict)},
        problems=keys,
        n_problems=int(overall["problems"]),
        episodes=len(records),
        dealt=dealt,
        # a navigation episode's attempts are positions along a route: no success@1
        success_at_1=float("nan") if navigation else float(at_1["estimate"]),
        success_at_1_ci95=[] if navigation else list(at_1["ci95"]),
        ci_method=str(overall["method"]),
        kind=split_spec.kind,
        headline=split_spec.headline,
        per_step_accuracy=float(per_step["estimate"]),
        per_step_accuracy_ci95=list(per_step["ci95"]),
        correct_steps=correct,
        steps=attempts,
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
    from openvirl.evaluation.tasks import TaskSpec

    unit = "routes" if study.task_spec.family == "navigation" else "hands"
    spec = TaskSpec(
        task=study.task,
        split=rule,
        env_id=study.task_spec.env_id,
        env_kwargs=dict(kwargs),
        metrics=groups,
        episodes=len(seeds),
        headline=f"eval/{study.task_spec.split(rule).headline}",
        description=f"study {study.preset}: {branch} {point}, {rule} split, held-out {unit}",
    )
    return {
        "config": {
            "task": study.task,
            "split": rule,
            "policy": policy.name,
            "episodes": len(seeds),
            "seed": study.seed,
            "batch_size": study.eval_batch_size,
            "max_attempts": study.eval_max_attempts,
            "temperature": study.eval_temperature,
            "max_new_tokens": study.eval_max_new_tokens,
        },
        "task": asdict(spec),
        "episodes": len(seeds),
        "seeds": seeds,
        "policy": {
            "spec": f"study:{branch}-{point}",
            "name": policy.name,
            "repr": repr(policy)[:500],
        },
        "study": {"branch": branch, "point": point, "rule": rule, "preset": study.preset},
        "versions": package_versions(),
    }


def distinct_problem_seeds(
    make_env: Any, seed: int, wanted: int, draw_factor: int, split_by: str, split: str = "test"
) -> tuple[list[int], list[str], int]:
    """Reset seeds of up to `wanted` distinct test problems, the first deal of each.

    Deals ``episode_seed(seed, "test", i)`` for ``i = 0, 1, ...`` (resets only, no model),
    keeps a seed when its problem (`openvirl.evaluation.stats.problem_key` under `split_by`)
    is new, and stops at `wanted` problems or after ``wanted * draw_factor`` deals, so a
    small split (31 distinct ID problems, say) is played 31 times, not 200.

    Returns
    -------
    tuple
        The seeds, their problem keys (same order) and the number of hands dealt.
    """
    from openvirl.envs.points.dataset import episode_seed
    from openvirl.evaluation.stats import problem_key

    env = make_env()
    seeds: list[int] = []
    keys: list[str] = []
    seen: set[str] = set()
    dealt = 0
    try:
        for i in range(wanted * draw_factor):
            if len(seeds) >= wanted:
                break
            s = episode_seed(seed, split, i)
            _, info = env.reset(seed=s)
            dealt += 1
            key = problem_key({"reset_info": info}, split_by)
            if key not in seen:
                seen.add(key)
                seeds.append(s)
                keys.append(key)
    finally:
        env.close()
    return seeds, keys, dealt


def _chat_default(model: str) -> bool | None:
    from openvirl.policies import embedded

    return embedded.EMBEDDED_CHAT_TEMPLATE if embedded.is_embedded_name(model) else None


# ---------------------------------------------------------------------------- the study


def run_study(study: StudyConfig) -> StudyResult:
    """Run (or continue) every stage of the study and write the report; see the module doc."""
    from openvirl.training.config import config_to_dict, save_config

    if study.threads:
        import torch

        torch.set_num_threads(study.threads)
    check_model_fits(study)
    check_resume_settings(study)
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
        for rule in study.splits or ():
            _log(f"evaluate {branch} {point} on {rule} (up to {study.eval_episodes} problems)")
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

    # 1b. Learning-rate rule: a short sweep at the first compute point, on ID validation
    t0 = time.perf_counter()
    per_step = 6 * n_params * tokens_per_step
    lrs, lr_rule = _learning_rates(study, init_dir, init_flops, per_step)
    stages["lr_sweep_s"] = time.perf_counter() - t0

    # 2. RL branch: PPO from the Init, a checkpoint every update
    t0 = time.perf_counter()
    rl_dir = out / "rl"
    if not (study.resume and _complete(rl_dir / "final")):
        _log(f"RL branch: PPO for {study.rl_updates} updates")
        _run_training(
            "ppo",
            _ppo_config(study, init_dir, init_flops, rl_dir, study.rl_updates, lrs["rl"]),
            study,
        )
    rl_points = {}
    for update in study.eval_updates:
        ckpt = rl_dir / "checkpoints" / f"step-{update:08d}"
        state = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))
        rl_points[update] = (ckpt / "model", float(state["flops"]["flops"]))
    stages["rl_s"] = time.perf_counter() - t0

    # 3. SFT branch: more SFT from the Init, segments ending at the RL compute points
    t0 = time.perf_counter()
    sft_dir = out / "sft"
    targets = {u: max(1, round((f - init_flops) / per_step)) for u, (_, f) in rl_points.items()}
    total_steps = max(targets.values())
    batch = int(study.sft.get("batch_size", 8))
    sft_points = {}
    for update, steps in sorted(targets.items()):
        point_dir = sft_dir / "points" / f"step-{steps:06d}"
        if not (study.resume and _complete(point_dir)):
            _log(f"SFT branch: to step {steps} (RL update {update})")
            restart_stale_sft_branch(sft_dir, out / "eval", steps, total_steps)
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
            if lrs["sft"] is not None:
                options["learning_rate"] = lrs["sft"]
            if study.lora:
                options["init_adapter"] = str(init_dir / "final")
            else:
                options["model"] = str(init_dir / "final")
            trained = _run_training("sft", _sft_config(study, **options), study)["steps"]
            if trained != steps:
                raise RuntimeError(
                    f"the SFT branch stopped at step {trained}, not {steps}; delete "
                    f"{sft_dir / 'run'} and run the study again."
                )
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
    deltas = _deltas(points, study.seed)
    versus = rl_vs_sft(points, study.seed)
    result = StudyResult(out=out, points=points, deltas=deltas, stages=stages)
    payload = {
        "config": config_to_dict(study),
        "n_params": n_params,
        "init_gflops": init_flops / 1e9,
        "splits": _split_summary(points, study),
        "statistics": statistics_statement(study),
        "learning_rate_rule": lr_rule,
        "task": _task_summary(study),
        "protocol": {
            "train_max_attempts": study.train_max_attempts,
            "eval_max_attempts": study.eval_max_attempts,
            "data_seeds": {
                "init_sft": study.seed,
                "sft_branch": study.seed + 1,
                "rl_branch": study.seed + RL_SEED_OFFSET,
            },
            "training_split": "train (same hashed split for every stage)",
            "rule_ood_problems": study.rule_ood_problems,
        },
        "points": [_point_json(p) for p in points],
        "deltas": deltas,
        "rl_vs_sft": versus,
        "stages_s": all_sessions,
        "this_session_s": stages,
    }
    (out / "study.json").write_text(json.dumps(payload, indent=2, default=str) + "\n", "utf-8")
    plot_study(
        points,
        out / "study.png",
        title=f"{study.task} · {study.model} · {study.preset}",
        labels={s.name: s.label for s in study.task_spec.splits},
    )
    (out / "study.md").write_text(
        study_markdown(study, points, deltas, all_sessions, versus), "utf-8"
    )
    return result


def sft_run_steps(run_dir: Path) -> int | None:
    """Optimizer steps the SFT branch's run folder has finished (None: no finished run)."""
    summary = run_dir / "summary.json"
    if not summary.exists():
        return None
    try:
        return int(json.loads(summary.read_text(encoding="utf-8"))["steps"])
    except (ValueError, KeyError, TypeError):
        return None


def restart_stale_sft_branch(sft_dir: Path, eval_dir: Path, steps: int, schedule: int) -> bool:
    """Delete the SFT branch (its run, its points and their evaluations) when its run cannot
    be continued to `steps` on a `schedule`-step schedule; True if it did.

    The branch trains in segments that resume one run up to each compute point, all on one
    learning-rate schedule ending at the last point. A study resumed after its RL compute
    points moved (new code, another RL learning rate) asks for other points: resuming a run
    already past `steps` would label its later weights with the earlier step (the run keeps
    only its last checkpoint), and a run begun on another schedule would mix two schedules.
    Training the branch again from the Init is the only way to get the right weights, and
    the points and evaluations made from the old run go with it.
    """
    run_dir = sft_dir / "run"
    trained = sft_run_steps(run_dir)
    if trained is None:
        return False
    saved = _saved_schedule(run_dir)
    if trained <= steps and saved in (None, schedule):
        return False
    _log(
        f"SFT branch: the run is at step {trained} of a {saved}-step schedule; step {steps} "
        f"of {schedule} needs it trained again"
    )
    shutil.rmtree(run_dir)
    shutil.rmtree(sft_dir / "points", ignore_errors=True)
    for stale in eval_dir.glob("sft-*") if eval_dir.exists() else []:
        shutil.rmtree(stale)
    return True


def _saved_schedule(run_dir: Path) -> int | None:
    """The `schedule_steps` the SFT run was started with (its `config.yaml`), if recorded."""
    import yaml

    try:
        saved = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
        return int(saved["schedule_steps"]) if saved.get("schedule_steps") else None
    except (OSError, yaml.YAMLError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _ppo_config(
    study: StudyConfig, init_dir: Path, init_flops: float, out: Path, updates: int, lr: float
) -> Any:
    """The RL branch's PPOConfig (also the LR sweep's, with fewer updates)."""
    from openvirl.training.ppo import PPOConfig

    options = {
        "model": study.model,
        "chat_template": study.chat_template,
        "lora": study.lora,
        "lora_r": study.lora_r,
        "lora_alpha": study.lora_alpha,
        # Fresh training problems from the same split: the Init's SFT hands come from
        # `seed`, the SFT branch's from `seed + 1`, the RL branch's from `seed + 2`.
        "seed": study.seed + RL_SEED_OFFSET,
        "env_id": study.task_spec.env_id,
        "env_kwargs": study.split_kwargs("train", "train", study.train_max_attempts),
        **study.ppo,
        **({"precision": study.precision} if study.precision is not None else {}),
        "learning_rate": lr,
        "num_updates": updates,
        "output_dir": str(out),
        "keep_last": None,
        "save_every": 1,
        "flops_offset": init_flops,
        "resume": study.resume,
    }
    if study.lora:
        options["init_adapter"] = str(init_dir / "final")
    else:
        options["model"] = str(init_dir / "final")
    return PPOConfig(**options)


def _base_learning_rates(study: StudyConfig) -> dict[str, Any]:
    from openvirl.training.ppo import PPOConfig
    from openvirl.training.sft import SFTRunConfig

    sft = study.sft_branch_learning_rate
    if sft is None:
        sft = float(study.sft.get("learning_rate", SFTRunConfig.learning_rate))
    return {"rl": float(study.ppo.get("learning_rate", PPOConfig.learning_rate)), "sft": sft}


def _learning_rates(
    study: StudyConfig, init_dir: Path, init_flops: float, per_step: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Each branch's learning rate and the rule that chose it (for study.json).

    With `lr_sweep` empty the presets' learning rates are used as they are. Otherwise each
    multiplier ``m`` trains each branch from the Init at ``m`` x its preset LR up to the first
    compute point (RL: ``eval_updates[0]`` updates; SFT: the steps that match that RL run's
    FLOPs, on a schedule scaled to the full horizon), evaluates it on `lr_sweep_episodes`
    distinct ID validation problems (train side of the hashed split, so disjoint from test),
    and keeps the best success; ties go to the multiplier nearest 1 (the preset's).
    """
    base = _base_learning_rates(study)
    if not study.lr_sweep:
        return base, {
            "rule": "preset learning rates (no sweep: `lr_sweep` is empty)",
            "chosen": base,
        }
    folder = study.folder / "lr-sweep"
    first = study.eval_updates[0]
    batch = int(study.sft.get("batch_size", 8))
    trials: list[dict[str, Any]] = []
    for m in study.lr_sweep:
        tag = f"x{m:g}"
        rl_out = folder / f"rl-{tag}"
        if not (study.resume and _complete(rl_out / "final")):
            _log(f"LR sweep: RL at {tag} for {first} updates")
            cfg = _ppo_config(study, init_dir, init_flops, rl_out, first, base["rl"] * m)
            _run_training("ppo", cfg, study)
        state = json.loads((rl_out / "summary.json").read_text(encoding="utf-8"))
        steps = max(1, round((float(state["flops"]["flops"]) - init_flops) / per_step))
        sft_out = folder / f"sft-{tag}"
        if not (study.resume and _complete(sft_out / "final")):
            _log(f"LR sweep: SFT at {tag} for {steps} steps")
            horizon = max(steps, round(steps * max(study.eval_updates) / first))
            options: dict[str, Any] = {
                "output_dir": str(sft_out),
                "max_steps": steps,
                "n_examples": horizon * batch,
                "data_seed": study.seed + 1,
                "flops_offset": init_flops,
                "resume": study.resume,
                "warmup_steps": 0,
                "schedule_steps": horizon,
                "learning_rate": base["sft"] * m,
            }
            if study.lora:
                options["init_adapter"] = str(init_dir / "final")
            else:
                options["model"] = str(init_dir / "final")
            _run_training("sft", _sft_config(study, **options), study)
        for branch, model_dir in (("rl", rl_out / "final"), ("sft", sft_out / "final")):
            if (model_dir / "model").is_dir():
                model_dir = model_dir / "model"
            point = evaluate_checkpoint(
                study,
                model_dir,
                "id",
                folder / "eval" / f"{branch}-{tag}",
                branch=branch,
                point=tag,
                gflops=float("nan"),
                validation=True,
            )
            trials.append(
                {
                    "branch": branch,
                    "multiplier": m,
                    "learning_rate": base[branch] * m,
                    # the split's headline: success@k, or per-step accuracy (navigation)
                    "validation_success": point.score,
                    "validation_metric": point.headline,
                    "validation_ci95": point.ci95,
                    "validation_problems": point.n_problems,
                }
            )
    chosen = {}
    for branch in ("rl", "sft"):
        mine = [t for t in trials if t["branch"] == branch]
        best = max(mine, key=lambda t: (t["validation_success"], -abs(math.log(t["multiplier"]))))
        chosen[branch] = best["learning_rate"]
    rule = (
        f"sweep of {list(study.lr_sweep)} x each branch's preset LR at the first compute point "
        f"(RL update {first}), best success on {study.lr_sweep_episodes} distinct ID validation "
        "problems from the train side of the hashed split (disjoint from test); ties to the "
        "multiplier nearest 1"
    )
    return chosen, {"rule": rule, "base": base, "trials": trials, "chosen": chosen}


def statistics_statement(study: StudyConfig) -> str:
    """The interval method, in one paragraph, for study.json and study.md."""
    if study.task_spec.family == "navigation":
        return (
            "Each split is evaluated on distinct held-out routes, each played once in the route "
            "set's fixed order (a problem is a route). Per-step accuracy (correct steps over all "
            "logged attempts, spec §3.6) is a ratio of sums; its interval is a percentile "
            f"bootstrap over routes ({study.bootstrap_resamples} resamples, seed {study.seed}) "
            "recomputing the ratio on each resample (a route's steps move together, so steps "
            "are not independent trials). Route success: percentile bootstrap over routes, "
            "exact Clopper-Pearson when every route has the same outcome. Deltas (branch vs "
            "Init, RL vs SFT at matched compute): paired bootstrap over routes of the "
            "difference of the two ratios (or successes); when nothing differs the interval is "
            "the exact Clopper-Pearson bound on the share of routes that changed (never [0, 0])."
        )
    return (
        "Each split is evaluated on distinct held-out problems, each played once (a problem is "
        f"the multiset of card {study.split_by} plus target and rule"
        + (
            "; rule OOD plays every solvable hand under the OOD rule, which no stage trains on"
            if study.rule_ood_problems == "all"
            else ""
        )
        + "). Success intervals: "
        f"percentile bootstrap over problems ({study.bootstrap_resamples} resamples, seed "
        f"{study.seed}), exact Clopper-Pearson when every problem has the same outcome. Deltas "
        "(branch vs Init, RL vs SFT at matched compute): paired bootstrap over problems of the "
        "per-problem difference; when every problem's difference is zero the interval is the "
        "exact Clopper-Pearson bound on the share of discordant problems (never [0, 0])."
    )


def _problem_origin(study: StudyConfig, split: str) -> str:
    """Where a split's problems come from, in the report's words."""
    every = study.task_spec.family == "points" and study.rule_ood_problems == "all"
    if every and study.task_spec.split(split).kind == "rule":
        return "OOD-rule (every solvable hand; the OOD rule is never trained)"
    return "held-out"


def _split_summary(
    points: list[EvalPoint], study: StudyConfig | None = None
) -> dict[str, dict[str, Any]]:
    """Per split: distinct problems, episodes played, hands dealt to find them, the headline
    metric, the interval method, and every checkpoint's numbers (success@k and success@1, or
    per-step accuracy and route success) with their intervals."""
    from openvirl.evaluation.stats import RATIO_METHOD

    out: dict[str, dict[str, Any]] = {}
    for p in points:
        if p.branch != "init":
            continue
        navigation = p.headline == "per_step_accuracy" or bool(
            p.steps and math.isnan(p.success_at_1)
        )
        out[p.rule] = {
            "kind": p.kind or ("id" if p.rule == "id" else "rule"),
            "distinct_problems": p.n_problems or len(p.successes),
            "episodes_per_checkpoint": p.episodes or len(p.successes),
            "hands_dealt_to_find_them": p.dealt,
            "headline": p.headline,
            "metrics": (
                ["per_step_accuracy", "route_success"]
                if navigation
                else ["success_at_k", "success_at_1"]
            ),
            "interval_method": p.ci_method,
            "checkpoints": {},
        }
        if study is not None:
            out[p.rule]["problems_from"] = _problem_origin(study, p.rule)
        if navigation and study is not None:
            out[p.rule]["per_step_interval_method"] = RATIO_METHOD.format(
                resamples=study.bootstrap_resamples, seed=study.seed
            )
    for p in points:
        if p.rule not in out:
            continue
        label = "init" if p.branch == "init" else f"{p.branch}-{p.point}"
        if out[p.rule]["metrics"][0] == "per_step_accuracy":
            numbers = {
                "per_step_accuracy": p.per_step_accuracy,
                "per_step_accuracy_ci95": p.per_step_accuracy_ci95,
                "route_success": p.success,
                "route_success_ci95": p.ci95,
            }
        else:
            numbers = {
                "success_at_k": p.success,
                "success_at_k_ci95": p.ci95,
                "success_at_1": p.success_at_1,
                "success_at_1_ci95": p.success_at_1_ci95,
            }
        out[p.rule]["checkpoints"][label] = {"gflops": p.gflops, **numbers}
    return out


def _task_summary(study: StudyConfig) -> dict[str, Any]:
    """The task's environment, splits (kind, options, headline) and the paper's numbers."""
    task = study.task_spec
    k = int(study.eval_max_attempts or 1)
    return {
        "name": task.name,
        "description": task.description,
        "env_id": task.env_id,
        "train_env_kwargs": study.split_kwargs("train", "train", study.train_max_attempts),
        "splits": {
            name: {
                "kind": task.split(name).kind,
                "label": task.split(name).label,
                "headline": task.split(name).headline,
                "env_kwargs": study.split_kwargs(name, "test", k),
            }
            for name in study.splits or ()
        },
        "problem_unit": "route" if task.family == "navigation" else f"hand ({study.split_by})",
        "paper": task.paper,
    }


def _point_json(p: EvalPoint) -> dict[str, Any]:
    """An evaluated point for study.json: every number, not the per-episode lists."""
    skip = ("successes", "problems", "correct_steps", "steps")
    return {k: v for k, v in p.__dict__.items() if k not in skip}


def model_is_vlm(model: str) -> bool | None:
    """Whether `model` (a folder, a hub id or an embedded name) reads images; None: unknown.

    A model counts as a VLM when its config has a ``vision_config`` (LLaVA, Mllama,
    Gemma-3 4B+, Qwen-VL ...). A hub id that is not cached cannot be checked offline.
    """
    from openvirl.policies import embedded

    if embedded.is_embedded_name(model):
        return False
    try:
        from transformers import AutoConfig

        config = AutoConfig.from_pretrained(model, local_files_only=True)
    except (OSError, ValueError):  # not local: the training stage reports it when it loads
        return None
    return getattr(config, "vision_config", None) is not None


class StudyModelError(ValueError):
    """A task the study's model cannot play (a text-only model on a VL task)."""


def check_model_fits(study: StudyConfig) -> None:
    """Raise `StudyModelError` in one line when a VL task gets a text-only model."""
    if study.task_spec.visual and model_is_vlm(study.model) is False:
        raise StudyModelError(
            f"task {study.task} plays images and needs a vision-language model, but "
            f"`{study.model}` is text-only: pass --vl-model <a VLM folder or hub id> "
            "(or --model)."
        )


RESUME_FREE_FIELDS = ("resume", "out", "threads", "launcher")
"""Study options that may change between a run and its resumption: where and how it runs,
not what it trains or measures."""


def seed_studies(study: StudyConfig, n_seeds: int) -> list[StudyConfig]:
    """The per-seed configs of ``--seeds n_seeds`` (the study itself when 1)."""
    from dataclasses import replace

    if n_seeds < 1:
        raise ValueError(f"`--seeds` must be >= 1, got {n_seeds}.")
    if n_seeds == 1:
        return [study]
    return [
        replace(study, seed=study.seed + k, out=str(study.folder / f"seed-{study.seed + k}"))
        for k in range(n_seeds)
    ]


def check_resume_settings(study: StudyConfig) -> None:
    """Refuse to resume a study folder that holds a run with other settings.

    Resuming reuses every finished stage and evaluation found in the folder; with another
    learning rate, split, model or step count those results would be reported under settings
    they were not made with. `study-config.yaml` records the settings of the run in the
    folder; any difference outside `RESUME_FREE_FIELDS` raises a `ValueError` that names it.
    """
    import yaml

    from openvirl.training.config import config_to_dict

    saved_path = study.folder / "study-config.yaml"
    if not study.resume or not saved_path.exists():
        return
    try:
        saved = yaml.safe_load(saved_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"{saved_path} is not readable YAML ({exc}); use another --out.") from None
    current = json.loads(json.dumps(config_to_dict(study), default=str))
    saved = json.loads(json.dumps(saved, default=str))
    # Options only one side has (added or removed by another openvirl version) are skipped;
    # option groups (``sft``, ``ppo``) are compared key by key, so the message names the key.
    changed: list[str] = []
    for key in sorted(set(saved) & set(current)):
        old, new = saved[key], current[key]
        if key in RESUME_FREE_FIELDS or old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            changed += [
                f"{key}.{sub}: {old.get(sub)!r} -> {new.get(sub)!r}"
                for sub in sorted(set(old) | set(new))
                if old.get(sub) != new.get(sub)
            ]
        else:
            changed.append(f"{key}: {old!r} -> {new!r}")
    if changed:
        details = ", ".join(changed[:6])
        raise ValueError(
            f"{study.folder} holds a study run with other settings ({details}); resuming "
            "would report its finished stages under the new ones. Use another --out, or "
            "--no-resume to start over there."
        )


def run_seeds(study: StudyConfig, n_seeds: int) -> tuple[list[StudyResult], dict[str, Any]]:
    """Repeat the whole study (Init included) with seeds ``seed, seed + 1, ...``.

    Each seed runs in ``<folder>/seed-<seed>/`` with its own report; the folder gets
    ``seeds.json`` and ``seeds.md``: per checkpoint and split, the mean success across seeds
    and its spread (sample standard deviation, min and max) beside each seed's value.
    """
    studies = seed_studies(study, n_seeds)
    for one in studies:  # every folder, before anything trains
        check_resume_settings(one)
    if n_seeds == 1:
        result = run_study(study)
        return [result], seed_summary([result], [study.seed])
    base = study.folder
    seeds = [one.seed for one in studies]
    results = []
    for k, one in enumerate(studies):
        _log(f"seed {one.seed} ({k + 1}/{n_seeds})")
        results.append(run_study(one))
    summary = seed_summary(results, seeds)
    base.mkdir(parents=True, exist_ok=True)
    (base / "seeds.json").write_text(json.dumps(summary, indent=2, default=str) + "\n", "utf-8")
    (base / "seeds.md").write_text(seeds_markdown(study, summary), "utf-8")
    return results, summary


def seed_summary(results: list[StudyResult], seeds: list[int]) -> dict[str, Any]:
    """Mean and spread across seeds of each checkpoint's success, by split.

    Checkpoints are matched by branch and rank along the compute axis (Init, the k-th RL
    point, the k-th SFT point), since an SFT point's step count may differ between seeds.
    """
    import statistics

    rows: dict[tuple[str, int, str], dict[str, Any]] = {}
    for seed, result in zip(seeds, results, strict=True):
        for branch in ("init", "rl", "sft"):
            mine = sorted(
                {(p.gflops, p.point) for p in result.points if p.branch == branch},
            )
            for rank, (_, label) in enumerate(mine):
                for p in result.points:
                    if p.branch != branch or p.point != label:
                        continue
                    row = rows.setdefault(
                        (branch, rank, p.rule),
                        {"branch": branch, "rank": rank, "rule": p.rule, "per_seed": {}},
                    )
                    row["per_seed"][str(seed)] = {
                        "point": p.point,
                        "gflops": p.gflops,
                        # the split's headline (success@k, or per-step accuracy)
                        "success": p.score,
                        "ci95": p.score_ci95,
                        "metric": p.headline,
                        "success_at_1": p.success_at_1,
                        "problems": p.n_problems,
                    }
    out = []
    for key in sorted(rows, key=lambda k: (("init", "rl", "sft").index(k[0]), k[1], k[2])):
        row = rows[key]
        values = [v["success"] for v in row["per_seed"].values()]
        row["mean"] = statistics.fmean(values)
        row["sd"] = statistics.stdev(values) if len(values) > 1 else 0.0
        row["min"], row["max"] = min(values), max(values)
        row["n_seeds"] = len(values)
        out.append(row)
    return {
        "seeds": seeds,
        "spread": "sample standard deviation across seeds, and min-max",
        "rows": out,
    }


def seeds_markdown(study: StudyConfig, summary: dict[str, Any]) -> str:
    """`seeds.md`: mean ± sd across seeds beside each seed's success."""
    seeds = [str(s) for s in summary["seeds"]]
    names = {"init": "Init", "rl": "RL", "sft": "SFT"}
    navigation = study.task_spec.family == "navigation"
    score = "score" if navigation else "success"
    lines = [
        f"# Study: {study.task}, preset `{study.preset}`, {len(seeds)} seeds",
        "",
        "Each seed reruns everything (Init included); per-seed reports: "
        + ", ".join(f"[seed {s}](seed-{s}/study.md)" for s in seeds)
        + ".",
        "",
        f"| checkpoint | split | mean {score} | sd | min–max | "
        + " | ".join(f"seed {s}" for s in seeds)
        + " |",
        "|---|---|---|---|---|" + "---|" * len(seeds),
    ]
    for row in summary["rows"]:
        label = names[row["branch"]] + ("" if row["branch"] == "init" else f" #{row['rank'] + 1}")
        cells = []
        for s in seeds:
            v = row["per_seed"].get(s)
            cells.append(f"{_pct(v['success'])} {_ci(v['ci95'])}" if v else "–")
        lines.append(
            f"| {label} | {row['rule'].upper()} | {_pct(row['mean'])} | {100 * row['sd']:.1f} "
            f"| {_pct(row['min'])}–{_pct(row['max'])} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        f"sd: sample standard deviation of {score} across seeds (percentage points); each "
        f"seed's cell is its {score} with its bootstrap-over-problems 95% interval.",
    ]
    if navigation:
        lines.append(
            "Score: per-step accuracy (ID and rule OOD, bootstrap over routes) or route success "
            "(visual OOD)."
        )
    lines.append("")
    return "\n".join(lines)


def _accumulate_timings(path: Path, session: dict[str, float]) -> dict[str, float]:
    """Stage wall times summed over every session of the study (a resumed stage adds up)."""
    previous = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    total = {k: float(previous.get(k, 0.0)) + float(v) for k, v in session.items()}
    total["sessions"] = float(previous.get("sessions", 0.0)) + 1
    path.write_text(json.dumps(total, indent=2) + "\n", encoding="utf-8")
    return total


def _paired(after: EvalPoint, before: EvalPoint, seed: int) -> dict[str, Any]:
    """Paired difference of two checkpoints' headline scores on the same problems.

    Success: a bootstrap over problems (`openvirl.evaluation.stats.paired_interval`);
    per-step accuracy: the paired bootstrap over routes of the two ratios of sums
    (`paired_ratio_interval`). Points saved by an older study without problem keys fall back
    to one problem per episode.
    """
    from openvirl.evaluation.stats import paired_interval, paired_ratio_interval

    n = min(len(after.successes), len(before.successes))
    keys = after.problems[:n] if len(after.problems) >= n else [str(i) for i in range(n)]
    if after.headline == "per_step_accuracy" and len(after.steps) >= n <= len(before.steps):
        return paired_ratio_interval(
            ([float(x) for x in after.correct_steps[:n]], [float(x) for x in after.steps[:n]]),
            ([float(x) for x in before.correct_steps[:n]], [float(x) for x in before.steps[:n]]),
            keys,
            seed=seed,
        )
    return paired_interval(
        [float(x) for x in after.successes[:n]],
        [float(x) for x in before.successes[:n]],
        keys,
        seed=seed,
    )


def _split_names(points: list[EvalPoint]) -> list[str]:
    """The splits of a study's points, ID first, in the order they were evaluated."""
    names = list(dict.fromkeys(p.rule for p in points))
    return sorted(names, key=lambda x: (x != "id", names.index(x)))


def rl_vs_sft(points: list[EvalPoint], seed: int = 0) -> list[dict[str, Any]]:
    """RL minus SFT at each matched compute point (the k-th RL point against the k-th SFT one),
    paired per problem, on each split's headline score."""
    rows = []
    series = {
        b: sorted({(p.gflops, p.point) for p in points if p.branch == b}) for b in ("rl", "sft")
    }
    for (rl_g, rl_pt), (sft_g, sft_pt) in zip(series["rl"], series["sft"], strict=False):
        row: dict[str, Any] = {"rl": rl_pt, "sft": sft_pt, "rl_gflops": rl_g, "sft_gflops": sft_g}
        for rule in _split_names(points):
            a = next(p for p in points if p.branch == "rl" and p.point == rl_pt and p.rule == rule)
            b = next(
                p for p in points if p.branch == "sft" and p.point == sft_pt and p.rule == rule
            )
            paired = _paired(a, b, seed)
            row[f"delta_{rule}"] = paired["delta"]
            row[f"delta_{rule}_ci95"] = paired["ci95"]
            row[f"delta_{rule}_note"] = paired["note"]
        rows.append(row)
    return rows


def _deltas(points: list[EvalPoint], seed: int = 0) -> list[dict[str, Any]]:
    """Each branch point's headline scores, rule collapse and format errors against the Init,
    paired per problem. Keys per split ``S``: ``S`` (score), ``S_ci95``, ``S_at_1``,
    ``S_metric``, ``delta_S`` with ``_ci95`` and ``_note``, ``format_error_S``."""
    init = {p.rule: p for p in points if p.branch == "init"}
    splits = _split_names(points)
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
            for rule in splits:
                p = by_rule[rule]
                paired = _paired(p, init[rule], seed)
                row[rule] = p.score
                row[f"{rule}_ci95"] = p.score_ci95
                row[f"{rule}_metric"] = p.headline
                row[f"{rule}_at_1"] = p.success_at_1
                row[f"{rule}_success"] = p.success
                row[f"delta_{rule}"] = paired["delta"]
                row[f"delta_{rule}_ci95"] = paired["ci95"]
                row[f"delta_{rule}_note"] = paired["note"]
                row[f"format_error_{rule}"] = p.metrics.get("eval/format_error_rate")
            ood = by_rule.get("ood")
            gp = ood is not None and not math.isnan(ood.success_at_1)
            metrics = ood.metrics if gp and ood is not None else {}
            row["rule_collapse"] = metrics.get("eval/rule_collapse_rate")
            row["rule_collapse_ci95"] = metrics.get("eval/rule_collapse_rate_ci95")
            row["rule_following"] = metrics.get("eval/rule_following_rate")
            rows.append(row)
    return rows


def _series(points: list[EvalPoint], branch: str, rule: str) -> list[EvalPoint]:
    """The Init followed by a branch's points on one split, along the compute axis."""
    init = [p for p in points if p.branch == "init" and p.rule == rule]
    return sorted(
        init + [p for p in points if p.branch == branch and p.rule == rule], key=lambda p: p.gflops
    )


RECOGNITION = {
    "points": ("eval/recognition_accuracy", "card recognition"),
    "navigation": ("eval/landmark_accuracy_at_landmarks", "landmark accuracy at landmarks"),
}
"""The recognition metric a study report shows per family: key and column name."""

BRANCH_COLORS = {"rl": "#d62728", "sft": "#1f77b4"}
BRANCH_NAMES = {"rl": "RL (PPO)", "sft": "SFT"}
METRIC_NAMES = {"success": "success rate (%)", "per_step_accuracy": "per-step accuracy (%)"}


def plot_panel(ax: Any, points: list[EvalPoint], rule: str, title: str) -> None:
    """One panel: a split's headline score against training GFLOPs, both branches, CI bands."""
    init = [p for p in points if p.branch == "init" and p.rule == rule]
    for branch in ("sft", "rl"):
        series = _series(points, branch, rule)
        x = [p.gflops for p in series]
        ax.plot(
            x,
            [100 * p.score for p in series],
            "-o",
            color=BRANCH_COLORS[branch],
            label=BRANCH_NAMES[branch],
            markersize=4,
        )
        ax.fill_between(
            x,
            [100 * (p.score_ci95 or [p.score, p.score])[0] for p in series],
            [100 * (p.score_ci95 or [p.score, p.score])[1] for p in series],
            color=BRANCH_COLORS[branch],
            alpha=0.15,
            linewidth=0,
        )
    if init:
        ax.plot([init[0].gflops], [100 * init[0].score], "ks", label="Init", markersize=6)
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("training compute (GFLOPs)")
    ax.set_ylabel(METRIC_NAMES.get(init[0].headline if init else "success", "score (%)"))
    ax.grid(alpha=0.3)
    ax.ticklabel_format(axis="x", style="sci", scilimits=(0, 0))


def plot_study(
    points: list[EvalPoint],
    path: Path,
    *,
    title: str = "",
    labels: dict[str, str] | None = None,
) -> None:
    """Headline score against training GFLOPs, one panel per split, 95% CI bands (paper
    Fig. 5/6/7)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    default = {"id": "In-distribution", "ood": "Out-of-distribution (rule)"}
    labels = {**default, **(labels or {})}
    splits = _split_names(points) or ["id", "ood"]
    fig, axes = plt.subplots(
        1, len(splits), figsize=(5 * len(splits), 4), constrained_layout=True, squeeze=False
    )
    for ax, rule in zip(axes[0], splits, strict=True):
        plot_panel(ax, points, rule, labels.get(rule, rule))
    axes[0][0].legend(loc="best", fontsize=8)
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


def _rate_cell(value: float | None, ci: list[float] | None) -> str:
    """A rate and its interval; a rate over nothing (no parseable answer) is "–" alone."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{_pct(value)} {_ci(ci)}"


def _delta_cell(d: dict[str, Any], key: str) -> str:
    text = f"{100 * d[key]:+.1f} {_ci(d[f'{key}_ci95'], True)}"
    note = d.get(f"{key}_note")
    return f"{text} ({note})" if note else text


def _metric_label(study: StudyConfig, p: EvalPoint) -> str:
    if p.headline == "per_step_accuracy":
        return "per-step acc."
    if study.task_spec.family == "navigation":
        return "route success"
    return f"success@{study.eval_max_attempts}"


def study_markdown(
    study: StudyConfig,
    points: list[EvalPoint],
    deltas: list[dict[str, Any]],
    stages: dict[str, float],
    versus: list[dict[str, Any]] | None = None,
) -> str:
    """The study report: setup, the table of deltas from Init with CIs, rule collapse."""
    init = {p.rule: p for p in points if p.branch == "init"}
    splits = _split_names(points)
    task = study.task_spec
    gp = task.family == "points"
    adaptation = f"LoRA r={study.lora_r}" if study.lora else "full fine-tuning"
    k = study.eval_max_attempts
    unit = "hands" if gp else "routes"
    split_lines = [
        f"- {rule.upper()} split ({task.split(rule).label if rule in init else rule}): "
        f"{p.n_problems or len(p.successes)} distinct {_problem_origin(study, rule)} problems "
        f"({p.dealt} {unit} dealt to find them), {p.episodes or len(p.successes)} episodes per "
        "checkpoint (each problem once)."
        for rule, p in ((r, init[r]) for r in splits if r in init)
    ]
    if gp:
        every_ood = "; rule OOD: every solvable OOD-rule hand"
        every_ood = every_ood if study.rule_ood_problems == "all" else ""
        setup = (
            f"target {study.target}, {study.n_cards} cards of ranks {study.ranks[0]}-"
            f"{study.ranks[1]}, up to {study.eval_episodes} distinct held-out problems per "
            f"split (held out by {study.split_by[:-1]} multiset{every_ood}), "
        )
    else:
        setup = f"up to {study.eval_episodes} distinct held-out routes per split, "
    lines = [
        f"# Study: {study.task}, preset `{study.preset}`",
        "",
        f"{task.description}. Model `{study.model}` ({adaptation}), {setup}"
        f"{k} verified attempt(s) per {'hand' if gp else 'position'} at evaluation, "
        f"{study.train_max_attempts} per RL step. Init: {study.init_steps} SFT steps. "
        f"RL: {study.rl_updates} PPO updates on fresh training {unit}; SFT branch matched to "
        "the RL compute points.",
        "",
        *split_lines,
        "",
        "![score against compute](study.png)",
        "",
    ]
    header = ["checkpoint", "GFLOPs"]
    for rule in splits:
        name = rule.upper()
        metric = _metric_label(study, init[rule]) if rule in init else "score"
        header.append(f"{name} {metric} [95% CI]")
        if gp:
            header.append(f"{name} success@1")
        elif init.get(rule) is not None and init[rule].headline == "per_step_accuracy":
            header.append(f"{name} route success")
    header += [f"Δ{rule.upper()} vs Init [95% CI]" for rule in splits]
    rule_split = gp and "ood" in splits
    if rule_split:
        header += ["OOD rule collapse [95% CI]", "OOD rule following"]
    header.append("format errors (" + " / ".join(r.upper() for r in splits) + ")")
    # recognition as the evaluation computes it: the cards (GP-VL), the landmarks at the
    # positions that have one (navigation)
    recognition = RECOGNITION.get(task.family) if task.visual or not gp else None
    if recognition:
        header.append(f"{recognition[1]} (" + " / ".join(r.upper() for r in splits) + ")")
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def recognised(branch: str, point: str) -> str:
        found = {p.rule: p for p in points if p.branch == branch and p.point == point}
        return " / ".join(
            _pct(found[r].metrics.get(recognition[0]) if r in found else None) for r in splits
        )

    def cells(score: dict[str, tuple[Any, ...]]) -> list[str]:
        out = []
        for rule in splits:
            value, ci, second = score[rule]
            out.append(f"{_pct(value)} {_ci(ci)}")
            if gp or (init.get(rule) is not None and init[rule].headline == "per_step_accuracy"):
                out.append(_pct(second))
        return out

    def errors(values: list[Any]) -> str:
        return " / ".join(_pct(v) for v in values)

    if init and all(r in init for r in splits):
        row = ["Init", f"{init['id'].gflops:.4g}"]
        row += cells(
            {
                r: (
                    init[r].score,
                    init[r].score_ci95,
                    init[r].success_at_1 if gp else init[r].success,
                )
                for r in splits
            }
        )
        row += [""] * len(splits)
        if rule_split:
            m = init["ood"].metrics
            row += [
                _rate_cell(m.get("eval/rule_collapse_rate"), m.get("eval/rule_collapse_rate_ci95")),
                _pct(m.get("eval/rule_following_rate")),
            ]
        row.append(errors([init[r].metrics.get("eval/format_error_rate") for r in splits]))
        if recognition:
            row.append(recognised("init", "init"))
        lines.append("| " + " | ".join(row) + " |")
    names = {"rl": "RL", "sft": "SFT"}
    for d in deltas:
        row = [f"{names[d['branch']]} {d['point']}", f"{d['gflops']:.4g}"]
        row += cells(
            {
                r: (d[r], d[f"{r}_ci95"], d.get(f"{r}_at_1") if gp else d.get(f"{r}_success"))
                for r in splits
            }
        )
        row += [_delta_cell(d, f"delta_{r}") for r in splits]
        if rule_split:
            row += [
                _rate_cell(d["rule_collapse"], d["rule_collapse_ci95"]),
                _pct(d.get("rule_following")),
            ]
        row.append(errors([d.get(f"format_error_{r}") for r in splits]))
        if recognition:
            row.append(recognised(d["branch"], d["point"]))
        lines.append("| " + " | ".join(row) + " |")
    if versus:
        lines += [
            "",
            "RL minus SFT at matched compute, paired per problem (percentage points):",
            "",
            "| RL point | SFT point | "
            + " | ".join(f"Δ{r.upper()} [95% CI]" for r in splits)
            + " |",
            "|---|---|" + "---|" * len(splits),
        ]
        for v in versus:
            lines.append(
                f"| {v['rl']} ({v['rl_gflops']:.4g}) | {v['sft']} ({v['sft_gflops']:.4g}) | "
                + " | ".join(_delta_cell(v, f"delta_{r}") for r in splits)
                + " |"
            )
    if gp:
        lines += [
            "",
            f"Success@{k}: solved within the {k} verified attempt(s) the RL branch trained "
            "with; success@1: solved at the first attempt.",
        ]
    else:
        lines += [
            "",
            "Per-step accuracy: correct steps over all logged attempts (spec §3.6), the "
            "paper's headline for V-IRL; route success: every position answered within "
            f"{k} attempt(s) and a correct stop (the visual-OOD headline, Fig. 7).",
        ]
    lines += ["Intervals: " + statistics_statement(study)]
    if rule_split:
        lines.append(
            "Rule collapse: share of parseable OOD answers that count a J, Q or K as 10, the ID "
            "rule's value; rule following: share of all OOD answers to face-card hands that "
            "write them as 11/12/13."
        )
    lines += [
        "Format errors: unreadable answers over all attempts of each split.",
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
    "distinct_problem_seeds",
    "evaluate_checkpoint",
    "load_study_config",
    "plot_study",
    "rl_vs_sft",
    "run_seeds",
    "run_study",
    "seed_summary",
    "seeds_markdown",
    "statistics_statement",
    "study_markdown",
]
