"""Run many episodes at once: one batched policy call per round across all live episodes.

Environments keep the single-episode gymnasium API; this loop drives a batch of them,
asks the policy once per round for every episode that still needs an answer, and records
each step. It is the core of evaluation, expert-data generation and the demo.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from openvirl.policies.base import Policy, Request, answer_seed


@dataclass
class StepRecord:
    """One verified answer: what the model said and what the verifier answered."""

    attempt: int
    action: str
    reward: float
    outcome: str
    feedback: str
    info: dict[str, Any]
    prompt: str = ""
    """The observation's prompt this answer replied to (the step's own, not the first)."""
    image: Any = None
    """The observation's image this answer replied to (navigation: the view grid here)."""


@dataclass
class EpisodeRecord:
    """A finished episode: its seed, first observation info, and every step."""

    index: int
    seed: int
    reset_info: dict[str, Any]
    steps: list[StepRecord] = field(default_factory=list)
    prompt: str = ""
    image: Any = None
    wall_s: float = 0.0

    @property
    def total_reward(self) -> float:
        return float(sum(s.reward for s in self.steps))

    @property
    def success(self) -> bool:
        """Whether the episode ended in success (the env's ``episode_outcome``)."""
        if not self.steps:
            return False
        last = self.steps[-1].info
        if "success" in last:
            return bool(last["success"])
        return last.get("episode_outcome") == "correct"


def _strip_info(info: dict[str, Any], drop: Sequence[str]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k not in drop}


def run_episodes(
    make_env: Callable[[], gym.Env],
    policy: Policy,
    seeds: Sequence[int],
    *,
    batch_size: int = 32,
    indices: Sequence[int] | None = None,
    reset_options: Callable[[int], dict[str, Any] | None] | None = None,
    drop_info_keys: Sequence[str] = ("solutions",),
    max_steps: int = 1_000,
) -> Iterator[EpisodeRecord]:
    """Play one episode per seed with `policy`, batching model calls; yield each as it ends.

    Parameters
    ----------
    make_env
        Builds a fresh environment (called once per concurrent slot).
    policy
        Answers a batch of requests ``{"messages", "info"}`` with one text each.
    seeds
        One `reset` seed per episode: the same seeds give the same episodes for every policy.
    batch_size
        Episodes in flight at once (the policy sees at most this many requests per call).
    indices
        Episode indices to report (defaults to ``range(len(seeds))``); lets a resumed run
        keep the original numbering.
    reset_options
        Optional ``index -> options`` for `reset` (e.g. a fixed hand or route).
    drop_info_keys
        Large info entries left out of the recorded steps.
    max_steps
        Guard against an environment that never ends.

    Yields
    ------
    EpisodeRecord
        Finished episodes, in the order they finish.
    """
    if indices is None:
        indices = list(range(len(seeds)))
    if len(indices) != len(seeds):
        raise ValueError("`indices` and `seeds` must have the same length.")
    queue = list(zip(indices, seeds, strict=True))
    queue.reverse()
    slots: list[dict[str, Any]] = []
    envs: list[gym.Env] = []

    def start(slot_env: gym.Env) -> dict[str, Any] | None:
        if not queue:
            return None
        index, seed = queue.pop()
        options = reset_options(index) if reset_options else None
        obs, info = slot_env.reset(seed=int(seed), options=options)
        record = EpisodeRecord(
            index=index,
            seed=int(seed),
            reset_info=_strip_info(info, drop_info_keys),
            prompt=obs.get("prompt", ""),
            image=obs.get("image"),
        )
        return {
            "env": slot_env,
            "info": info,
            "obs": obs,
            "record": record,
            "t0": time.perf_counter(),
        }

    for _ in range(min(batch_size, len(queue))):
        env = make_env()
        envs.append(env)
        slot = start(env)
        if slot is not None:
            slots.append(slot)

    try:
        while slots:
            # Each answer's seed comes from its episode's seed and attempt, never from the
            # order of calls, so a resumed run asks exactly what an uninterrupted one asks.
            requests: list[Request] = [
                {
                    "messages": s["env"].unwrapped.messages(),
                    "info": s["info"],
                    "seed": answer_seed(s["record"].seed, len(s["record"].steps)),
                }
                for s in slots
            ]
            answers = policy.act(requests)
            if len(answers) != len(slots):
                raise RuntimeError(
                    f"policy {getattr(policy, 'name', policy)!r} returned {len(answers)} answers "
                    f"for {len(slots)} requests"
                )
            still: list[dict[str, Any]] = []
            for slot, answer in zip(slots, answers, strict=True):
                env = slot["env"]
                seen = slot["obs"]
                obs, reward, terminated, truncated, info = env.step(answer)
                record: EpisodeRecord = slot["record"]
                record.steps.append(
                    StepRecord(
                        attempt=int(info.get("attempt", len(record.steps) + 1)),
                        action=answer,
                        reward=float(reward),
                        outcome=str(info.get("outcome", "")),
                        feedback=str(info.get("feedback", "")),
                        info=_strip_info(info, drop_info_keys),
                        prompt=seen.get("prompt", "") if isinstance(seen, dict) else "",
                        image=seen.get("image") if isinstance(seen, dict) else None,
                    )
                )
                slot["info"] = info
                slot["obs"] = obs
                if terminated or truncated or len(record.steps) >= max_steps:
                    record.wall_s = time.perf_counter() - slot["t0"]
                    yield record
                    nxt = start(env)
                    if nxt is not None:
                        still.append(nxt)
                else:
                    still.append(slot)
            slots = still
    finally:
        for env in envs:
            env.close()
