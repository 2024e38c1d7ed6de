"""The four settings of the SFT-versus-RL study (spec §6, §8): what each task trains and tests.

A `StudyTask` says which environment a task plays, which options its training split and each
of its evaluation splits take, what a distinct held-out problem is, which number is its
headline, and the paper's numbers to print beside ours. `openvirl.training.study` reads
nothing task-specific from anywhere else, so a fifth task is one more entry here.

========  =====================  ===========================================  ================
task      env                    evaluation splits (study name: what)         headline
========  =====================  ===========================================  ================
gp-l      GeneralPoints, text    id, ood (J/Q/K = 11/12/13)                   success@k
gp-vl     GeneralPoints, image   id, ood, visual (red suits; train on black)  success@k
nav-l     Navigation, text       id (absolute), ood (relative), ood-hard      per-step acc.
nav-vl    Navigation, views      id, visual (unseen cities), ood, ood-hard    per-step acc.;
                                                                              visual: route
                                                                              success
========  =====================  ===========================================  ================

A GeneralPoints problem is a hand's multiset under the study's ``split_by`` unit plus target
and rule; a navigation problem is a route, each held-out route played once in the route set's
fixed order (``route_index``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

GP_ENV_ID = "openvirl/GeneralPoints-v0"
NAV_ENV_ID = "openvirl/Navigation-v0"


@dataclass(frozen=True)
class StudySplit:
    """One evaluation split of a study task."""

    name: str
    """Key in ``study.json`` and the evaluation folder names: id, ood, ood-hard, visual."""
    kind: str
    """``"id"``, ``"rule"`` (a held-out rule) or ``"visual"`` (a held-out look)."""
    eval_split: str
    """The `openvirl.evaluation.tasks` split with the same meaning (its metric groups)."""
    label: str
    """Panel title."""
    headline: str = "success"
    """``"success"`` (success@k, route success) or ``"per_step_accuracy"``."""


@dataclass(frozen=True)
class StudyTask:
    """One setting of the paper: environment, splits, problem unit, headline, paper numbers."""

    name: str
    env_id: str
    family: str
    """``"points"`` or ``"navigation"``."""
    visual: bool
    splits: tuple[StudySplit, ...]
    default_splits: tuple[str, ...]
    description: str
    paper: dict[str, dict[str, float]] = field(default_factory=dict)
    """Split name -> the paper's Init, RL and SFT score (spec §8.1/§8.2; fractions)."""

    def split(self, name: str) -> StudySplit:
        """The split called `name`; `ValueError` listing the task's splits otherwise."""
        for s in self.splits:
            if s.name == name:
                return s
        raise ValueError(
            f"task {self.name} has no split {name!r}; its splits: "
            f"{', '.join(s.name for s in self.splits)}."
        )


def _gp_splits(visual: bool) -> tuple[StudySplit, ...]:
    splits = [
        StudySplit("id", "id", "id", "In-distribution"),
        StudySplit("ood", "rule", "rule-ood", "Rule OOD (J/Q/K = 11/12/13)"),
    ]
    if visual:
        splits.append(StudySplit("visual", "visual", "visual-ood", "Visual OOD (red suits)"))
    return tuple(splits)


def _nav_splits(visual: bool) -> tuple[StudySplit, ...]:
    step = "per_step_accuracy"
    splits = [
        StudySplit("id", "id", "id", "In-distribution (absolute actions)", step),
        StudySplit("ood", "rule", "rule-ood", "Rule OOD (relative actions)", step),
        StudySplit("ood-hard", "rule", "rule-ood-hard", "Rule OOD, headings only", step),
    ]
    if visual:
        # Fig. 7 reports route success on the unseen cities (spec §6)
        splits.append(StudySplit("visual", "visual", "visual-ood", "Visual OOD (unseen cities)"))
    return tuple(splits)


STUDY_TASKS: dict[str, StudyTask] = {
    "gp-l": StudyTask(
        "gp-l",
        GP_ENV_ID,
        "points",
        False,
        _gp_splits(False),
        ("id", "ood"),
        "GeneralPoints, text",
        {"ood": {"init": 0.115, "rl": 0.150, "sft": 0.034}},
    ),
    "gp-vl": StudyTask(
        "gp-vl",
        GP_ENV_ID,
        "points",
        True,
        _gp_splits(True),
        ("id", "ood", "visual"),
        "GeneralPoints, card images (black suits in training)",
        {
            "ood": {"init": 0.112, "rl": 0.142, "sft": 0.056},
            "visual": {"init": 0.236, "rl": 0.412, "sft": 0.137},
        },
    ),
    "nav-l": StudyTask(
        "nav-l",
        NAV_ENV_ID,
        "navigation",
        False,
        _nav_splits(False),
        ("id", "ood"),
        "V-IRL navigation, text observations",
        {"ood": {"init": 0.808, "rl": 0.918, "sft": 0.013}},
    ),
    "nav-vl": StudyTask(
        "nav-vl",
        NAV_ENV_ID,
        "navigation",
        True,
        _nav_splits(True),
        ("id", "visual"),
        "V-IRL navigation, street-view grids",
        {
            "ood": {"init": 0.357, "rl": 0.450, "sft": 0.025},
            "visual": {"init": 3 / 18, "rl": 14 / 18, "sft": 2 / 18},
        },
    ),
}
"""The study's tasks, in the order `--task all` runs them."""

NAV_PRESETS = {
    "train": "train",
    "id": "id",
    "ood": "rule-ood",
    "ood-hard": "rule-ood-hard",
    "visual": "visual-ood",
}
"""Study split -> navigation preset (`openvirl.envs.navigation.splits.PRESETS`)."""


def get_study_task(name: str) -> StudyTask:
    """The task called `name`; `ValueError` listing the tasks otherwise."""
    if name not in STUDY_TASKS:
        raise ValueError(f"`task` must be one of {tuple(STUDY_TASKS)} or 'all', got {name!r}.")
    return STUDY_TASKS[name]


def env_kwargs(
    task: StudyTask,
    study: Any,
    split: str,
    side: str,
    max_attempts: int,
) -> dict[str, Any]:
    """`gym.make` options of `split` (``"train"`` for the training split) on `side`.

    `side` is ``"train"`` or ``"test"``: GeneralPoints' hashed hand split; for navigation
    ``"test"`` means the held-out route set of `split` and ``"train"`` the training routes (the
    learning-rate sweep's ID validation). `study` supplies the difficulty knobs of
    GeneralPoints (`StudyConfig.env_kwargs`) and the image size of VL tasks.
    """
    image_size = getattr(study, "image_size", None)
    if task.family == "points":
        rule = "ood" if split in ("ood", "ood-hard") else "id"
        kwargs = study.env_kwargs(rule, side, max_attempts)
        if task.visual:
            kwargs.update(visual=True, suits="red" if split == "visual" else "black")
            if image_size:
                kwargs["image_size"] = int(image_size)
        return kwargs
    preset = NAV_PRESETS["train" if side == "train" else split]
    if preset == "visual-ood":
        preset = getattr(study, "visual_routes", None) or preset
    kwargs = {"preset": preset, "visual": task.visual, "max_attempts": max_attempts}
    if task.visual and image_size:
        kwargs["image_size"] = int(image_size)
    return kwargs


@lru_cache(maxsize=4)
def _loaded_city(name: str) -> Any:
    from openvirl.world import City

    return City.load(name)


def sharing_cities(make_env: Any) -> Any:
    """`make_env` whose navigation envs share one loaded `City` (and so one street scene) per
    city name, process-wide.

    Each navigation env loads its cities itself, and a VL env builds the city's whole street
    scene (facades, signs: about 4 s for Manhattan) before its first view. An evaluation runs
    ``eval_batch_size`` envs at once, for every split of every checkpoint; sharing the loaded
    cities builds each scene once instead. Other envs are returned as they are.
    """

    def make() -> Any:
        env = make_env()
        unwrapped = env.unwrapped
        if hasattr(unwrapped, "use_city") and getattr(unwrapped, "routes", None):
            for name in dict.fromkeys(route.city for route in unwrapped.routes):
                unwrapped.use_city(_loaded_city(name))
        return env

    return make


def navigation_problems(
    make_env: Any, seed: int, wanted: int, side: str = "test"
) -> tuple[list[int], list[str], list[int]]:
    """Up to `wanted` distinct routes of a navigation split: reset seeds, keys, route indices.

    Route ``i`` of the split's fixed order is episode ``i`` (``reset(options={"route_index":
    i})``), so every held-out route is played once and every checkpoint meets the same routes;
    the reset seed ``episode_seed(seed, side, i)`` fixes the rest of the episode (which forward
    positions the rail keeps). Keys are `openvirl.evaluation.stats.problem_key` of a route.
    """
    from openvirl.envs.points.dataset import episode_seed

    env = make_env()
    try:
        n_routes = len(env.unwrapped.routes)
        indices = list(range(min(wanted, n_routes)))
        seeds = [episode_seed(seed, side, i) for i in indices]
        keys = []
        for i in indices:
            route = env.unwrapped.routes[i]
            keys.append(f"navigation:{route.city}:{route.route_id}")
    finally:
        env.close()
    return seeds, keys, indices


__all__ = [
    "NAV_ENV_ID",
    "NAV_PRESETS",
    "STUDY_TASKS",
    "StudySplit",
    "StudyTask",
    "env_kwargs",
    "get_study_task",
    "navigation_problems",
    "sharing_cities",
]
