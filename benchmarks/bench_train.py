"""Training throughput: openvirl's PPO update against TRL's GRPO step on the same batch; SFT.

Runs each trainer in its own subprocess (so the peak resident memory of one does not hide
the other's) on the same model and the same batch of sequences, and prints one JSON object:

- ``sft.tokens_per_s``: tokens trained per second by TRL's SFTTrainer (prompt and answer
  tokens of the expert pairs; completion-only loss), ``sft.peak_rss_mb``;
- ``ppo.update_tokens_per_s``: tokens trained per second in PPO's optimization phase (every
  epoch's forward and backward over prompt + answer), ``ppo.step_tokens_per_s``: prompt +
  answer tokens of the batch per second of the whole update (rollout, scoring, optimization),
  ``ppo.peak_rss_mb``;
- ``grpo.step_tokens_per_s``: the same figure for TRL's GRPO step (TRL's ``num_tokens``,
  prompt + completion, per second of its ``step_time``), ``grpo.peak_rss_mb``.

"Same batch": PPO plays ``--batch`` single-attempt episodes per update (one answer each) and
GRPO takes ``--batch`` completions per step (``--batch / 4`` prompts × 4 generations), both
with ``--new-tokens`` new tokens, one optimization epoch, one minibatch of ``--batch``.
The first step of each run (warm-up) is left out of the medians.

With ``--processes 1 2`` every trainer also runs under ``accelerate launch --num_processes 2``
(DDP; on a machine without CUDA, CPU processes over gloo) on the same global batch, and the
report adds ``by_processes`` (the same figures per process count) and ``scaling`` (tokens
per second on N processes over one): the cost or gain of splitting the work. Every figure
counts global tokens (summed over processes) per second of wall time.

Run: ``python benchmarks/bench_train.py [--model tiny|gemma-3-270m|PATH] [--batch 8]
[--steps 4] [--new-tokens 32] [--threads N] [--processes 1 2] [--kinds sft,ppo,grpo]``
(``--model gemma-3-270m`` is the embedded model, trained with a rank-16 LoRA adapter by
both SFT and PPO; the PPO rollout samples through `HFPolicy`'s packed float32 layers).
Peak memory is the process's peak RSS (model, optimizer, activations and the Python
runtime), read from ``getrusage``; on a GPU also ``peak_cuda_mb``, torch's peak allocated
CUDA memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _model_path(name: str, tmp: Path) -> str:
    if name != "tiny":
        return name
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import tiny_causal_lm

    return str(tiny_causal_lm(tmp, hidden_size=64, num_layers=2))


def _env(new_tokens: int) -> dict[str, Any]:
    return {"rule": "id", "split": "train", "max_attempts": 1, "target": 24}


def _reports() -> bool:
    """Whether this process reports (the only one, or rank 0 under accelerate launch)."""
    return os.environ.get("RANK", "0") == "0"


def run_one(kind: str, args: argparse.Namespace) -> dict[str, Any]:
    """Run one trainer in this process (one of `args.world` launched ones); return its figures."""
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    tmp = Path(tempfile.mkdtemp(prefix=f"bench-train-{kind}-"))
    model = _model_path(args.model, tmp)
    t0 = time.perf_counter()
    if kind == "sft":
        from openvirl.training.sft import SFTRunConfig, train_sft

        result = train_sft(
            SFTRunConfig(
                model=model,
                n_examples=args.batch * args.steps,
                max_steps=args.steps,
                batch_size=args.batch,
                save_steps=10**6,
                output_dir=str(tmp / "sft"),
                max_length=1024,
            )
        )
        if not _reports():
            return {}
        summary = json.loads((tmp / "sft" / "summary.json").read_text())
        figures = {
            "steps": result.steps,
            "tokens": result.train_tokens,
            "train_runtime_s": summary["train_runtime_s"],
            "tokens_per_s": result.train_tokens / summary["train_runtime_s"],
        }
    elif kind == "ppo":
        from openvirl.training.ppo import PPOConfig, train_ppo

        result = train_ppo(
            PPOConfig(
                model=model,
                output_dir=str(tmp / "ppo"),
                env_kwargs=_env(args.new_tokens),
                num_updates=args.steps,
                episodes_per_update=args.batch,
                num_envs=args.batch,
                max_new_tokens=args.new_tokens,
                temperature=1.0,
                update_epochs=1,
                # one optimizer step over the batch, one minibatch per process
                minibatch_size=max(1, args.batch // args.world),
                grad_accum_steps=args.world,
                save_every=10**6,
            )
        )
        if not _reports():
            return {}
        rows = result.history[1:] or result.history
        trained, step = [], []
        previous = result.history[0] if len(result.history) > 1 else None
        for row in rows:
            train_tokens = row["charts/train_tokens"] - (previous or {}).get(
                "charts/train_tokens", 0.0
            )
            trained.append(row["charts/train_tokens_per_s"])
            wall = row["charts/rollout_s"] + row["charts/optimize_s"]
            step.append(train_tokens / wall)  # one epoch: trained tokens = the batch's tokens
            previous = row
        figures = {
            "updates": result.updates,
            "update_tokens_per_s": statistics.median(trained),
            "step_tokens_per_s": statistics.median(step),
            "rollout_s": statistics.median(r["charts/rollout_s"] for r in rows),
            "optimize_s": statistics.median(r["charts/optimize_s"] for r in rows),
        }
    else:
        from openvirl.training.grpo import GRPORunConfig, train_grpo

        result = train_grpo(
            GRPORunConfig(
                model=model,
                output_dir=str(tmp / "grpo"),
                env_kwargs=_env(args.new_tokens),
                n_prompts=max(8, args.batch * args.steps),
                num_generations=4,
                batch_size=args.batch,
                max_completion_length=args.new_tokens,
                max_steps=args.steps,
                save_steps=10**6,
                reward="points",
            )
        )
        if not _reports():
            return {}
        rows = [r for r in result.history if "charts/step_time" in r]
        tokens = [r["charts/num_tokens"] for r in rows]
        per_step = [b - a for a, b in zip([0.0, *tokens[:-1]], tokens, strict=True)]
        speeds = [t / r["charts/step_time"] for t, r in zip(per_step, rows, strict=True)]
        figures = {
            "steps": result.steps,
            "step_tokens_per_s": statistics.median(speeds[1:] or speeds),
            "step_s": statistics.median(r["charts/step_time"] for r in rows[1:] or rows),
        }
    figures["wall_s"] = time.perf_counter() - t0
    figures["peak_rss_mb"] = _peak_rss_mb()
    if torch.cuda.is_available():  # on a GPU the model, optimizer and activations live there
        figures["peak_cuda_mb"] = torch.cuda.max_memory_allocated() / 2**20
        figures["device"] = torch.cuda.get_device_name()
    figures["n_params"] = result.n_params
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny, gemma-3-270m or a model folder")
    parser.add_argument("--batch", type=int, default=8, help="sequences per update/step")
    parser.add_argument("--steps", type=int, default=4, help="updates/steps per trainer")
    parser.add_argument("--new-tokens", type=int, default=32, help="tokens generated per answer")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument(
        "--processes", type=int, nargs="+", default=[1], help="process counts to compare (1 2)"
    )
    parser.add_argument(
        "--kinds", default="sft,ppo,grpo", help="trainers to run, comma-separated (sft,ppo,grpo)"
    )
    parser.add_argument("--one", choices=("sft", "ppo", "grpo"), help=argparse.SUPPRESS)
    parser.add_argument("--world", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        figures = run_one(args.one, args)
        if _reports():
            print(json.dumps(figures))
        return 0
    kinds = [kind for kind in args.kinds.split(",") if kind]
    unknown = set(kinds) - {"sft", "ppo", "grpo"}
    if unknown or not kinds:
        parser.error(f"--kinds takes sft, ppo and grpo; got {args.kinds!r}")
    report: dict[str, Any] = {
        "model": args.model,
        "batch": args.batch,
        "steps": args.steps,
        "new_tokens": args.new_tokens,
        "threads": args.threads,
    }
    by_processes: dict[str, dict[str, Any]] = {}
    for world in args.processes:
        figures = by_processes.setdefault(str(world), {})
        for kind in kinds:
            figures[kind] = _run_kind(kind, world, args)
    report.update(by_processes[str(args.processes[0])])
    if "ppo" in report and "grpo" in report and "error" not in report["grpo"]:
        report["ppo_vs_grpo_step_speed"] = (
            report["ppo"]["step_tokens_per_s"] / report["grpo"]["step_tokens_per_s"]
        )
    if len(args.processes) > 1:
        report["by_processes"] = by_processes
        report["scaling"] = _scaling(by_processes, args.processes)
    print(json.dumps(report, indent=2))
    return 0


def _run_kind(kind: str, world: int, args: argparse.Namespace) -> dict[str, Any]:
    """One trainer on `world` processes, in its own subprocess(es); its figures or the error."""
    options = [
        "--model", args.model, "--batch", str(args.batch), "--steps", str(args.steps),
        "--new-tokens", str(args.new_tokens), "--one", kind, "--world", str(world),
    ]  # fmt: skip
    if args.threads:
        options += ["--threads", str(args.threads)]
    env = dict(os.environ)
    if world == 1:
        command = [sys.executable, __file__, *options]
    else:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        command = [
            str(Path(sys.executable).with_name("accelerate")), "launch", "--multi_gpu",
            "--num_processes", str(world), "--num_machines", "1", "--mixed_precision", "no",
            "--dynamo_backend", "no", "--main_process_port", str(port), __file__, *options,
        ]  # fmt: skip
        env.setdefault("OMP_NUM_THREADS", str(args.threads or 1))
        try:
            import torch

            cuda = torch.cuda.is_available()
        except ImportError:  # pragma: no cover - the train extra brings torch
            cuda = False
        if not cuda:
            env["ACCELERATE_USE_CPU"] = "1"  # CPU processes over gloo
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures["processes"] = world
    return figures


def _scaling(by_processes: dict[str, dict[str, Any]], counts: list[int]) -> dict[str, Any]:
    """Tokens per second on each process count over the first count's, per trainer figure."""
    keys = {"sft": "tokens_per_s", "ppo": "step_tokens_per_s", "grpo": "step_tokens_per_s"}
    base = by_processes[str(counts[0])]
    out: dict[str, Any] = {}
    for world in counts[1:]:
        other = by_processes[str(world)]
        for kind, key in keys.items():
            if key in base.get(kind, {}) and key in other.get(kind, {}):
                out[f"{kind}_{world}_over_{counts[0]}"] = other[kind][key] / base[kind][key]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
