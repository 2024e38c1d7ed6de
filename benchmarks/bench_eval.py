"""Evaluation throughput: batched versus one-at-a-time generation, and the overhead around it.

Plays the same GP-L (ID) hands with a tiny random Llama (``tests/tiny_models.py``) at batch
size 1 and at batch size 16, and with the oracle (no model: the pure env, parsing and I/O cost
of `evaluate`). Prints one JSON object:

- ``episodes_per_s_batch1``, ``episodes_per_s_batch16`` and their ``speedup`` for the full
  multi-turn protocol (5 attempts with feedback), and ``single_attempt_speedup`` for one
  attempt per hand (the paper's recognition protocol); target >= 4;
- ``outside_model_share``: the share of an `evaluate` call's wall time spent outside
  `policy.act` (env steps, answer parsing, metrics, JSONL writes; target <= 0.10);
- ``oracle_episodes_per_s``: evaluation speed when the policy costs nothing.

Run it with ``python benchmarks/bench_eval.py [--episodes 32] [--max-new-tokens 48]``.

Reading the numbers: the tiny model writes garbage, so every hand uses all its attempts and
the conversation grows by an answer and a feedback turn each time (334 prompt tokens with the
tiny byte-level tokenizer, over 1,000 by the fifth attempt). The policy re-encodes the whole
conversation at every attempt, and on a CPU that prefill is compute-bound, so batching
amortizes only the decoding steps; left padding also sends batched prefill through SDPA's
masked path. Single-attempt evaluation is decode-dominated and shows the batching gain.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tiny_model(folder: Path) -> Path:
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import tiny_causal_lm

    return tiny_causal_lm(folder)


def _run(task_out: Path, policy: str, episodes: int, batch_size: int, **options: object) -> dict:
    from openvirl.evaluation import EvalConfig, evaluate

    config = EvalConfig(
        task="gp-l",
        split="id",
        policy=policy,
        episodes=episodes,
        batch_size=batch_size,
        out=task_out,
        resume=False,
        progress=False,
        report=False,
        **options,  # type: ignore[arg-type]
    )
    t0 = time.perf_counter()
    result = evaluate(config)
    total = time.perf_counter() - t0
    m = result.metrics
    model_s = m["eval/model_time_share"] * m["eval/wall_s"]
    return {
        "episodes": len(result.records),
        "episodes_per_s": m["eval/episodes_per_s"],
        "outside_model_share": 1.0 - m["eval/model_time_share"],
        "outside_model_share_with_setup": (total - model_s) / total,
        "wall_s": m["eval/wall_s"],
        "wall_s_with_setup": total,
        "tokens_generated": m["eval/tokens_generated"],
        "mean_attempts": m["eval/mean_attempts"],
    }


def _compare(folder: Path, spec: str, episodes: int, **options: object) -> dict:
    one = _run(folder / "b1", spec, episodes, 1, **options)
    sixteen = _run(folder / "b16", spec, episodes, 16, **options)
    return {
        "episodes_per_s_batch1": one["episodes_per_s"],
        "episodes_per_s_batch16": sixteen["episodes_per_s"],
        "speedup": sixteen["episodes_per_s"] / one["episodes_per_s"],
        "outside_model_share_batch1": one["outside_model_share_with_setup"],
        "outside_model_share_batch16": sixteen["outside_model_share_with_setup"],
        "batch1": one,
        "batch16": sixteen,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=32, help="Episodes per measurement.")
    parser.add_argument("--max-new-tokens", type=int, default=48, help="Tokens per answer.")
    parser.add_argument("--oracle-episodes", type=int, default=234, help="Oracle episodes.")
    parser.add_argument("--max-attempts", type=int, default=None, help="Attempts per hand.")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads.")
    args = parser.parse_args()

    import torch

    # One thread: on a shared CPU, more threads than free cores make timings erratic.
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        path = _tiny_model(folder)
        spec = f"hf:{path}?temperature=0&device=cpu"
        options = {"max_new_tokens": args.max_new_tokens, "max_attempts": args.max_attempts}
        # Warm-up: first-call costs (lazy imports, kernel selection) are not throughput.
        _run(folder / "warm", spec, 2, 2, **options)
        multi = _compare(folder / "multi", spec, args.episodes, **options)
        single_options = {**options, "max_attempts": 1}
        # Single attempts run ~6x faster, so more hands keep the timing well above setup costs.
        single = _compare(folder / "single", spec, 4 * args.episodes, **single_options)
        oracle = _run(folder / "oracle", "oracle", args.oracle_episodes, 16)
        oracle_vl = _run(folder / "oracle-vl", "oracle", 32, 16)
    worst_outside = max(multi["outside_model_share_batch16"], single["outside_model_share_batch16"])
    report = {
        "task": "gp-l/id",
        "model": "tiny random Llama (hidden 32, 2 layers, byte-level BPE), greedy, CPU",
        "torch_threads": torch.get_num_threads(),
        "episodes": args.episodes,
        "max_new_tokens": args.max_new_tokens,
        "max_attempts": args.max_attempts or 5,
        # The headline: the full multi-turn protocol (every answer wrong, all attempts used).
        "episodes_per_s_batch1": multi["episodes_per_s_batch1"],
        "episodes_per_s_batch16": multi["episodes_per_s_batch16"],
        "speedup": multi["speedup"],
        "outside_model_share": multi["outside_model_share_batch16"],
        "single_attempt_speedup": single["speedup"],
        "oracle_episodes_per_s": oracle["episodes_per_s"],
        "targets": {
            "speedup_ge_4_multi_turn": multi["speedup"] >= 4,
            "speedup_ge_4_single_attempt": single["speedup"] >= 4,
            "outside_model_share_le_0.10": worst_outside <= 0.10,
        },
        "multi_turn": multi,
        "single_attempt": single,
        "oracle": oracle,
        "oracle_gp_vl_with_images": oracle_vl,
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
