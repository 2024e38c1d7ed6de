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
    on_step: Callable[[EpisodeRecord, StepRecord], None] | None = None,
    replay: Callable[[int], Sequence[str]] | None = None,
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
    on_step
        Called after every answer the policy gave, with the episode and its new step (not for
        replayed answers): progress per attempt, and saving each attempt as it is made.
    replay
        ``index -> answers`` already given in episode `index` by an earlier, interrupted run;
        they are stepped through the freshly reset environment before the policy is asked
        again, so a resumed episode continues where it stopped (environments are
        deterministic given the seed and the answers).

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

    def step(slot: dict[str, Any], answer: str) -> bool:
        """Apply one answer; record it; return whether the episode ended."""
        env = slot["env"]
        seen = slot["obs"]  # what the policy saw when it gave this answer
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
        ended = bool(terminated or truncated or len(record.steps) >= max_steps)
        if ended:
            record.wall_s = time.perf_counter() - slot["t0"]
        return ended

    def start(slot_env: gym.Env) -> tuple[dict[str, Any] | None, list[EpisodeRecord]]:
        """The next episode that still needs the policy, and those that replay finished."""
        finished: list[EpisodeRecord] = []
        while queue:
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
            slot = {
                "env": slot_env,
                "info": info,
                "obs": obs,
                "record": record,
                "t0": time.perf_counter(),
            }
            ended = False
            for answer in replay(index) if replay is not None else ():
                ended = step(slot, answer)
                if ended:
                    break
            if not ended:
                return slot, finished
            finished.append(record)
        return None, finished

    try:
        for _ in range(min(batch_size, len(queue))):
            env = make_env()
            envs.append(env)
            slot, done = start(env)
            yield from done
            if slot is not None:
                slots.append(slot)
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
                ended = step(slot, answer)
                record: EpisodeRecord = slot["record"]
                if on_step is not None:
                    on_step(record, record.steps[-1])
                if ended:
                    yield record
                    nxt, done = start(slot["env"])
                    yield from done
                    if nxt is not None:
                        still.append(nxt)
                else:
                    still.append(slot)
            slots = still
    finally:
        for env in envs:
            env.close()
