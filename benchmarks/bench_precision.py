"""Does a lower precision change what a trained checkpoint solves? Paired, on held-out hands.

Issue 21 lets evaluation use a faster, lower precision only if "the success rate on 200
held-out hands [is] unchanged within its interval". Speed comes from `bench_policies.py`;
this script measures the other half: one checkpoint (the embedded Gemma-3-270M plus a LoRA
adapter, e.g. a study's ``init/final``) plays the same held-out GeneralPoints hands, greedy,
once per precision. It prints JSON with, per precision, the success rate and its bootstrap
interval over distinct problems, the wall time, and, against the first precision, the
share of identical answers and the paired difference of success (paired bootstrap over
problems, exact when no problem differs). Hands may repeat a problem (a small split has few
distinct problems); the intervals count problems, not hands.

The hands, the prompt rendering and the base model are those of a GP-L study preset
(`--preset`, default ``quick``), so the checkpoint meets exactly what its study evaluates.

Example (the quick study's Init)::

    python benchmarks/bench_precision.py --adapter runs/study/gp-l-quick/init/final \\
        --hands 200 --precisions fp32,bf16

With ``--temperature 0.2`` the hands are sampled as PPO's rollouts sample them (per-answer
seeds, the Gumbel argmax sampler), so the check covers rollouts too: the same noise in every
precision makes the comparison paired down to the token.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import torch


def play(args: argparse.Namespace, study: Any, precision: str, seeds: list[int]) -> dict:
    """Play every hand with one precision; return per-hand answers and successes."""
    from openvirl.evaluation.rollout import run_episodes
    from openvirl.policies.hf import HFPolicy
    from openvirl.training.data import make_env_factory
    from openvirl.training.study import _chat_default

    policy = HFPolicy.from_pretrained(
        study.model,
        adapter=args.adapter,
        merge_adapter=True,
        chat_template=_chat_default(study.model),  # the rendering the study's SFT trained on
        precision=precision,
        temperature=args.temperature,
        max_new_tokens=study.eval_max_new_tokens,
        batch_size=args.batch,
        name=precision,
    )
    make = make_env_factory(study.task_spec.env_id, held_out(args, study))
    t0 = time.perf_counter()
    played = run_episodes(make, policy, seeds, batch_size=args.batch)
    episodes = sorted(played, key=lambda e: e.index)
    wall = time.perf_counter() - t0
    return {
        "precision": policy.precision,
        "wall_s": round(wall, 1),
        "answers": [[step.action for step in e.steps] for e in episodes],
        "success": [float(bool(e.success)) for e in episodes],
        "records": [{"reset_info": e.reset_info} for e in episodes],
    }


def held_out(args: argparse.Namespace, study: Any) -> dict[str, Any]:
    """`gym.make` options of the study's held-out side of `--rule`, with `--attempts`."""
    return study.split_kwargs(args.rule, "test", args.attempts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="quick", help="GP-L study preset of the checkpoint")
    parser.add_argument("--adapter", type=Path, default=None, help="LoRA adapter folder")
    parser.add_argument("--precisions", default="fp32,bf16", help="first is the reference")
    parser.add_argument("--hands", type=int, default=200, help="held-out hands to play")
    parser.add_argument("--rule", default="id", choices=["id", "ood"])
    parser.add_argument("--attempts", type=int, default=1, help="verified attempts per hand")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.0,
        help="0: greedy (evaluation); > 0: sampled with per-answer seeds, as PPO's rollouts "
        "(0.2), each precision drawing with the same Gumbel noise",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from openvirl.envs.points.dataset import episode_seed
    from openvirl.evaluation.stats import paired_interval, problem_key, rate_interval
    from openvirl.training.study import load_study_config

    study = load_study_config("gp-l", args.preset)
    seeds = [episode_seed(args.seed, "test", i) for i in range(args.hands)]
    runs = [play(args, study, p, seeds) for p in args.precisions.split(",")]
    keys = [problem_key(r, study.split_by) for r in runs[0]["records"]]
    reference = runs[0]
    report: dict = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
        },
        "checkpoint": {"model": study.model, "adapter": args.adapter and str(args.adapter)},
        "hands": args.hands,
        "distinct_problems": len(set(keys)),
        "preset": args.preset,
        "split": held_out(args, study),
        "method": (
            "greedy" if args.temperature == 0 else f"sampled at T={args.temperature}, seeded"
        )
        + "; intervals are bootstraps over distinct problems (see stats)",
        "runs": [],
    }
    for run in runs:
        rate = rate_interval(run["success"], keys, seed=args.seed)
        row = {
            "precision": run["precision"],
            "wall_s": run["wall_s"],
            "success": round(rate["estimate"], 4),
            "ci95": [round(x, 4) for x in rate["ci95"]],
            "solved_hands": int(sum(run["success"])),
        }
        if run is not reference:
            same = sum(a == b for a, b in zip(run["answers"], reference["answers"], strict=True))
            paired = paired_interval(run["success"], reference["success"], keys, seed=args.seed)
            row |= {
                "identical_answers": f"{same}/{args.hands}",
                "delta_vs_reference": round(paired["delta"], 4),
                "delta_ci95": [round(x, 4) for x in paired["ci95"]],
                "delta_note": paired["note"],
                "speedup_wall": round(reference["wall_s"] / max(run["wall_s"], 1e-9), 2),
            }
        report["runs"].append(row)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
