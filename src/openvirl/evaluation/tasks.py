"""The evaluation registry: which environment, options and metrics each task and split means.

An entry maps ``(task, split)`` to a gymnasium env id, its keyword arguments, the seed stream
its episodes come from, the metrics to report and the paper's episode count. Registration is
data, as in Gymnasium; the navigation tasks join with a few `register_task` lines::

    register_task("nav-l", "id", env_id="openvirl/Navigation-v0",
                  env_kwargs={"actions": "absolute", "visual": False, "split": "test"},
                  episodes=48, headline="eval/per_step_accuracy")

Episode ``i`` of an entry is ``env.reset(seed=episode_seed(seed, seed_stream, i))``: the same
seed gives the same episodes for every policy and checkpoint, and GeneralPoints evaluation hands
are exactly the ``test`` rows of ``openvirl points dataset`` (held out from training by the
hashed value-multiset split).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

GP_ENV_ID = "openvirl/GeneralPoints-v0"


class UnknownTaskError(ValueError):
    """An unknown task or split; the message lists the valid ones and the closest match."""


@dataclass(frozen=True)
class TaskSpec:
    """One evaluation setting: an environment, its options, its seeds and its metrics."""

    task: str
    """Task name, e.g. ``"gp-l"``."""
    split: str
    """Split name within the task, e.g. ``"rule-ood"``."""
    env_id: str
    """Gymnasium id made with `gym.make`."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of `gym.make` that define the split (rule, suits, held-out side...)."""
    seed_stream: str = "test"
    """Stream of `episode_seed`; ``"test"`` gives the held-out hands of the dataset builder."""
    metrics: tuple[str, ...] = ()
    """Optional metric groups of `compute_metrics`: recognition, rule_collapse, difficulty."""
    episodes: int = 234
    """Episodes in the paper's evaluation of this setting (spec §6)."""
    headline: str = "eval/success"
    """The metric the paper reports for this setting (success or per-step accuracy)."""
    description: str = ""
    """One line for tables and `--help`."""
    answer_tokens: int = 256
    """Default `max_new_tokens` of a generating policy: room for the longest expert answer
    with a margin, so a model that rambles stops there instead of at a long generic cap."""

    @property
    def name(self) -> str:
        """``"<task>/<split>"``."""
        return f"{self.task}/{self.split}"


TASKS: dict[str, dict[str, TaskSpec]] = {}
"""Registered settings: ``TASKS[task][split]``."""


def register_task(
    task: str,
    split: str,
    *,
    env_id: str,
    env_kwargs: dict[str, Any] | None = None,
    seed_stream: str = "test",
    metrics: Sequence[str] = (),
    episodes: int = 234,
    headline: str = "eval/success",
    description: str = "",
    answer_tokens: int = 256,
) -> TaskSpec:
    """Add an evaluation setting; raises `ValueError` if ``(task, split)`` already exists."""
    if split in TASKS.get(task, {}):
        raise ValueError(f"evaluation setting {task}/{split} is already registered")
    spec = TaskSpec(
        task=task,
        split=split,
        env_id=env_id,
        env_kwargs=dict(env_kwargs or {}),
        seed_stream=seed_stream,
        metrics=tuple(metrics),
        episodes=episodes,
        headline=headline,
        description=description,
        answer_tokens=answer_tokens,
    )
    TASKS.setdefault(task, {})[split] = spec
    return spec


def _did_you_mean(word: str, choices: Sequence[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f" Did you mean `{close[0]}`?" if close else ""


def get_task(task: str, split: str) -> TaskSpec:
    """The registered setting of `task` and `split`.

    Raises
    ------
    UnknownTaskError
        For an unknown task or split; the message lists the valid names and, Gymnasium-style,
        suggests the closest one.
    """
    if task not in TASKS:
        valid = ", ".join(sorted(TASKS))
        raise UnknownTaskError(
            f"unknown task `{task}`; valid tasks: {valid}.{_did_you_mean(task, list(TASKS))}"
        )
    splits = TASKS[task]
    if split not in splits:
        valid = ", ".join(splits)
        raise UnknownTaskError(
            f"unknown split `{split}` for task `{task}`; valid splits: {valid}."
            f"{_did_you_mean(split, list(splits))}"
        )
    return splits[split]


def list_tasks() -> list[TaskSpec]:
    """Every registered setting, in registration order."""
    return [spec for splits in TASKS.values() for spec in splits.values()]


def episode_seeds(spec: TaskSpec, seed: int, indices: Sequence[int]) -> list[int]:
    """The `reset` seed of each episode index: a function of ``(seed, stream, index)`` only.

    Per-index seeds (rather than one seeded stream) let a resumed run or a larger run replay
    exactly the same episodes for the indices they share.
    """
    if spec.seed_stream in ("train", "test"):
        # The dataset builder's own function, so evaluation hands are its `test` rows.
        from openvirl.envs.points.dataset import episode_seed

        return [episode_seed(int(seed), spec.seed_stream, int(i)) for i in indices]
    import numpy as np

    # Other streams get a stable number from their name, so new tasks need no edit here.
    stream = 1000 + int.from_bytes(spec.seed_stream.encode()[:4].ljust(4, b"\0"), "big")
    return [
        int(np.random.SeedSequence([int(seed), stream, int(i)]).generate_state(1, "uint32")[0])
        for i in indices
    ]


def make_env(spec: TaskSpec, **overrides: Any) -> gym.Env:
    """Build the environment of `spec`; `overrides` (e.g. ``max_attempts``) win over its kwargs."""
    import openvirl  # noqa: F401  (registers the environments)

    kwargs = {**spec.env_kwargs, **{k: v for k, v in overrides.items() if v is not None}}
    return gym.make(spec.env_id, disable_env_checker=True, **kwargs)


# ---------------------------------------------------------------------------- GeneralPoints
# Spec §6: 234 hands per split, 5 verified attempts. GP-L keeps the reference's mixed suits;
# GP-VL trains and tests in distribution on black suits and tests visual OOD on red ones.
_GP_METRICS = ("difficulty",)
GP_ANSWER_TOKENS = 96
"""A GeneralPoints answer is one line of JSON: the expert answers of the few-shot hands are 46
to 49 Gemma tokens for four cards; 96 leaves room for longer formulas and a little prose, and
stops a rambling model at a third of the old 256-token cap."""
register_task(
    "gp-l", "id",
    env_id=GP_ENV_ID,
    env_kwargs={"rule": "id", "visual": False, "suits": "mixed", "split": "test"},
    metrics=_GP_METRICS,
    answer_tokens=GP_ANSWER_TOKENS,
    description="GeneralPoints, text; J/Q/K = 10 (training rule)",
)  # fmt: skip
register_task(
    "gp-l", "rule-ood",
    env_id=GP_ENV_ID,
    env_kwargs={"rule": "ood", "visual": False, "suits": "mixed", "split": "test"},
    metrics=(*_GP_METRICS, "rule_collapse"),
    answer_tokens=GP_ANSWER_TOKENS,
    description="GeneralPoints, text; J/Q/K = 11/12/13 (held-out rule)",
)  # fmt: skip
register_task(
    "gp-vl", "id",
    env_id=GP_ENV_ID,
    env_kwargs={"rule": "id", "visual": True, "suits": "black", "split": "test"},
    metrics=(*_GP_METRICS, "recognition"),
    answer_tokens=GP_ANSWER_TOKENS,
    description="GeneralPoints, image; black suits, J/Q/K = 10",
)  # fmt: skip
register_task(
    "gp-vl", "rule-ood",
    env_id=GP_ENV_ID,
    env_kwargs={"rule": "ood", "visual": True, "suits": "black", "split": "test"},
    metrics=(*_GP_METRICS, "recognition", "rule_collapse"),
    answer_tokens=GP_ANSWER_TOKENS,
    description="GeneralPoints, image; black suits, J/Q/K = 11/12/13",
)  # fmt: skip
register_task(
    "gp-vl", "visual-ood",
    env_id=GP_ENV_ID,
    env_kwargs={"rule": "id", "visual": True, "suits": "red", "split": "test"},
    metrics=(*_GP_METRICS, "recognition"),
    answer_tokens=GP_ANSWER_TOKENS,
    description="GeneralPoints, image; red suits (held-out look), J/Q/K = 10",
)  # fmt: skip


# ---------------------------------------------------------------------------- Navigation
# Spec §6: 48 routes for ID and rule-OOD, 2 verified attempts, per-step accuracy as the headline;
# unlike the reference (§10.18) they are held-out test routes (other area cells), not training
# routes. rule-ood-hard withholds the relative word (§10.9); human plays RUN's instructions.
NAV_ENV_ID = "openvirl/Navigation-v0"
_NAV_SPLITS = (
    ("id", "id", 48, "eval/per_step_accuracy", "held-out Manhattan routes, compass actions"),
    (
        "rule-ood",
        "rule-ood",
        48,
        "eval/per_step_accuracy",
        "held-out Manhattan routes, relative actions (left/right/slightly)",
    ),
    (
        "rule-ood-hard",
        "rule-ood-hard",
        48,
        "eval/per_step_accuracy",
        "relative actions; the instruction gives headings, not relative words",
    ),
    (
        "human",
        "human",
        100,
        "eval/success",
        "RUN human instructions on Manhattan; stop within 30 m of the goal",
    ),
)
for _task, _visual, _kind in (("nav-l", False, "text"), ("nav-vl", True, "street views")):
    for _split, _preset, _episodes, _headline, _description in _NAV_SPLITS:
        register_task(
            _task, _split,
            env_id=NAV_ENV_ID,
            env_kwargs={"preset": _preset, "visual": _visual},
            seed_stream="nav",
            episodes=_episodes,
            headline=_headline,
            description=f"Navigation, {_kind}; {_description}",
        )  # fmt: skip
# Spec §3.7: the VLN-mini analog, VL only, every route once in a fixed order (12 routes in the
# two cities the model never trained in whose extracts render as streetscapes; `order="fixed"`
# plays route i as episode i). Tokyo and Singapore are opt-in (`visual-ood-all`, caveat).
register_task(
    "nav-vl", "visual-ood",
    env_id=NAV_ENV_ID,
    env_kwargs={"preset": "visual-ood", "visual": True},
    seed_stream="nav",
    episodes=12,
    headline="eval/success",
    description="Navigation, street views; Helsinki, Monaco (VLN-mini analog, streetscapes)",
)  # fmt: skip
# V-IRL's own nine VLN-mini cities, 2 routes each, fetched from OSM on first use (opt-in:
# `openvirl navigate virl-cities` or OPENVIRL_FETCH=1); in no suite, so suites stay offline.
register_task(
    "nav-vl", "visual-ood-virl",
    env_id=NAV_ENV_ID,
    env_kwargs={"preset": "visual-ood-virl", "visual": True},
    seed_stream="nav",
    episodes=18,
    headline="eval/success",
    description="Navigation, street views; V-IRL's nine VLN-mini cities, fetched from OSM",
)  # fmt: skip


# ---------------------------------------------------------------------------- few-shot prompts
FEW_SHOT_SEED = 0
"""Seed of the solved example hands (`episode_seed(FEW_SHOT_SEED, "train", i)`): training-side
hands of the hashed split, so an example is never an evaluation hand."""


def supports_few_shot(spec: TaskSpec) -> bool:
    """Whether `few_shot_messages` can build solved examples for `spec` (GeneralPoints, text)."""
    return spec.env_id == GP_ENV_ID and not spec.env_kwargs.get("visual")


def few_shot_messages(spec: TaskSpec, n: int) -> list[dict[str, Any]]:
    """`n` solved examples of `spec` as chat turns (user prompt, expert answer) to put before a
    conversation, so a base model sees the answer format it must continue.

    The examples are the first `n` solvable hands of the training side of the hashed split
    (same rule, suits and game options as `spec`), answered with the expert's simplest
    solution; they never overlap the held-out evaluation hands.

    Raises
    ------
    ValueError
        `spec` is not a GeneralPoints text task, or `n` is negative.
    """
    if n < 0:
        raise ValueError(f"`few_shot` must be >= 0, got {n}.")
    if n == 0:
        return []
    if not supports_few_shot(spec):
        raise ValueError(
            f"few-shot examples exist for GeneralPoints text tasks (gp-l) only, not "
            f"{spec.name}; pass --few-shot 0."
        )
    from openvirl.envs.points.dataset import episode_seed
    from openvirl.policies.base import text_message

    env = make_env(spec, split="train")
    messages: list[dict[str, Any]] = []
    index = 0
    try:
        while len(messages) < 2 * n and index < 1000:
            obs, info = env.reset(seed=episode_seed(FEW_SHOT_SEED, "train", index))
            index += 1
            if info.get("solvable"):
                messages.append(text_message("user", obs["prompt"]))
                messages.append(text_message("assistant", str(info["expert_answer"])))
    finally:
        env.close()
    return messages
