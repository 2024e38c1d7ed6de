"""Generation throughput of `HFPolicy`, and the embedded model's prepare and load times (JSON).

Measures greedy tokens/s at batch 1 and batch 8 for a tiny random Llama (the harness's own
overhead dominates) and, when the embedded Gemma-3-270M is prepared in the cache, for it too,
with its cached load time and the prepare time recorded in its marker. Throughput counts the
completion tokens the policy reports (`last_usage`) over wall time of `act`.

    python benchmarks/bench_policies.py                 # tiny model + Gemma if prepared
    python benchmarks/bench_policies.py --prepare       # also time a fresh prepare (temp cache)
    python benchmarks/bench_policies.py --new-tokens 64 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

from openvirl.policies import embedded
from openvirl.policies.base import text_message
from openvirl.policies.hf import HFPolicy

PROMPT = (
    "You are an expert 24 points card game player. You are observing these four cards: "
    "{cards}. Each card is a number; J, Q and K count as 10. Use each number exactly once with "
    "+, -, *, / and parentheses to reach 24. Answer in JSON with keys cards, number, formula."
)
HANDS = ["K, 3, 7, Q", "A, 5, 5, 5", "2, 3, 8, 8", "J, J, 2, 2", "4, 4, 6, 9", "A, 2, 3, 4",
         "Q, 6, 3, 1", "7, 7, 3, 3"]  # fmt: skip


def requests(batch: int) -> list[dict]:
    """`batch` GeneralPoints-like prompts (cycled through HANDS)."""
    return [
        {"messages": [text_message("user", PROMPT.format(cards=HANDS[i % len(HANDS)]))]}
        for i in range(batch)
    ]


def throughput(policy: HFPolicy, batch: int, repeats: int) -> dict:
    """Best-of-`repeats` greedy tokens/s of `policy.act` on a batch of `batch` prompts."""
    policy.act(requests(batch))  # warm-up (allocations, kernels)
    best = None
    for _ in range(repeats):
        start = time.perf_counter()
        policy.act(requests(batch))
        seconds = time.perf_counter() - start
        usage = policy.last_usage
        rate = usage.completion_tokens / seconds
        if best is None or rate > best["tokens_per_s"]:
            best = {
                "batch": batch,
                "tokens_per_s": round(rate, 1),
                "seconds": round(seconds, 3),
                "completion_tokens": usage.completion_tokens,
                "prompt_tokens": usage.prompt_tokens,
            }
    return best


def bench_tiny(new_tokens: int, repeats: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tiny_models import tiny_causal_lm

    with tempfile.TemporaryDirectory() as folder:
        path = tiny_causal_lm(Path(folder))
        start = time.perf_counter()
        policy = HFPolicy.from_pretrained(path, max_new_tokens=new_tokens, batch_size=8)
        load = time.perf_counter() - start
        return {
            "model": "tiny-causal-lm (random Llama, 2 layers, hidden 32)",
            "load_s": round(load, 3),
            "batch_1": throughput(policy, 1, repeats),
            "batch_8": throughput(policy, 8, repeats),
        }


def bench_gemma(new_tokens: int, repeats: int) -> dict:
    if not embedded.is_prepared():
        return {"skipped": "not prepared; run `openvirl model prepare`"}
    start = time.perf_counter()
    policy = HFPolicy.from_pretrained("gemma-3-270m", max_new_tokens=new_tokens, batch_size=8)
    load = time.perf_counter() - start
    return {
        "model": "gemma-3-270m (embedded, plain prompt)",
        "cached_load_s": round(load, 2),
        "prepare": embedded.prepared_info(),
        "batch_1": throughput(policy, 1, repeats),
        "batch_8": throughput(policy, 8, repeats),
    }


def bench_prepare() -> dict:
    with tempfile.TemporaryDirectory() as cache:
        os.environ["OPENVIRL_CACHE"] = cache
        start = time.perf_counter()
        embedded.prepare_embedded_model(echo=None)
        prepare = time.perf_counter() - start
        start = time.perf_counter()
        HFPolicy.from_pretrained("gemma-3-270m")
        load = time.perf_counter() - start
    del os.environ["OPENVIRL_CACHE"]
    return {"prepare_s": round(prepare, 1), "cached_load_s": round(load, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=32, help="max new tokens per answer")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per setting (best)")
    parser.add_argument("--prepare", action="store_true", help="also time a fresh prepare")
    parser.add_argument("--skip-gemma", action="store_true", help="only the tiny model")
    args = parser.parse_args()
    report = {
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpus": os.cpu_count(),
            "cuda": torch.cuda.is_available(),
        },
        "new_tokens": args.new_tokens,
        "tiny": bench_tiny(args.new_tokens, args.repeats),
    }
    if not args.skip_gemma:
        report["gemma"] = bench_gemma(args.new_tokens, args.repeats)
    if args.prepare:
        report["fresh_prepare"] = bench_prepare()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
