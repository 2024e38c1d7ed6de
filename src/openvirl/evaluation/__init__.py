"""Evaluation: batched episodes -> ``trajectories.jsonl``, namespaced metrics and reports.

Importing it is light (matplotlib, torch and model backends load only when a run needs them)::

    from openvirl.evaluation import EvalConfig, evaluate
    result = evaluate(EvalConfig(task="gp-l", split="rule-ood", policy="oracle", episodes=20))
    result.metrics["eval/success"], result.metrics["eval/success_ci95"]
"""

from __future__ import annotations

from openvirl.evaluation.evaluate import EvalConfig, EvalResult, evaluate, read_trajectories
from openvirl.evaluation.metrics import compute_metrics, wilson_interval
from openvirl.evaluation.rollout import EpisodeRecord, run_episodes
from openvirl.evaluation.tasks import TASKS, TaskSpec, UnknownTaskError, get_task, register_task

__all__ = [
    "TASKS",
    "EpisodeRecord",
    "EvalConfig",
    "EvalResult",
    "TaskSpec",
    "UnknownTaskError",
    "compute_metrics",
    "evaluate",
    "get_task",
    "read_trajectories",
    "register_task",
    "run_episodes",
    "wilson_interval",
]
