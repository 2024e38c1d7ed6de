"""SFT, PPO and GRPO on two real processes: ``accelerate launch --num_processes 2`` on CPU (gloo).

Each trainer is launched once, killed with SIGKILL after its first complete checkpoint, and
launched again with ``resume``; the resumed run must (a) finish, (b) report the same global
token and FLOP counts as the same work on one process, and (c) end with the same parameters on
both ranks (`mp_train.py` dumps each rank's). Nothing of accelerate is mocked: torchrun starts
two Python processes that talk over gloo.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from openvirl.training.checkpoint import latest_checkpoint  # noqa: E402
from openvirl.training.config import save_config  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
ACCELERATE = Path(sys.executable).with_name("accelerate")
TIMEOUT_S = 240
"""Per launch; a run that hangs on a collective fails here instead of blocking the suite."""

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not ACCELERATE.exists(), reason="accelerate CLI not installed"),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _launch(algorithm: str, config, dump: Path) -> subprocess.Popen:
    """Start `mp_train.py` on two CPU processes through the accelerate CLI."""
    path = Path(config.output_dir).with_suffix(f".{algorithm}.yaml")
    save_config(config, path)
    command = [
        str(ACCELERATE),
        "launch",
        "--multi_gpu",  # torchrun with 2 processes; ACCELERATE_USE_CPU makes it gloo on CPU
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_ip",
        "127.0.0.1",
        "--main_process_port",
        str(_free_port()),
        str(TESTS / "mp_train.py"),
        algorithm,
        str(path),
        str(dump),
    ]
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "OMP_NUM_THREADS": "1",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(TESTS)]),
    }
    return subprocess.Popen(
        command,
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the launcher and everything it started (torchrun puts its workers in their own
    process groups, so a group kill would leave them running)."""
    import psutil

    tree = []
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(process.pid)
        tree = [*reversed(root.children(recursive=True)), root]
    for member in tree:
        with contextlib.suppress(psutil.NoSuchProcess):
            member.send_signal(signal.SIGKILL)
    psutil.wait_procs(tree, timeout=30)


def _finish(process: subprocess.Popen) -> str:
    try:
        output, _ = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _kill_tree(process)
        output, _ = process.communicate()
        pytest.fail(f"2-process run did not finish in {TIMEOUT_S}s:\n{output.decode()[-3000:]}")
    text = output.decode(errors="replace")
    assert process.returncode == 0, text[-4000:]
    return text


def _kill_after_first_checkpoint(process: subprocess.Popen, out: Path) -> None:
    deadline = time.time() + TIMEOUT_S
    while latest_checkpoint(out / "checkpoints") is None:
        if process.poll() is not None or time.time() > deadline:
            _kill_tree(process)
            pytest.fail(process.communicate()[0].decode(errors="replace")[-4000:])
        time.sleep(0.02)
    _kill_tree(process)  # the launcher, torchrun and both workers, like a crashed job
    process.communicate()
    assert not (out / "final").exists(), "the run finished before it could be killed"


def _killed_then_resumed(algorithm: str, config, dump: Path) -> dict[int, dict]:
    """Launch, SIGKILL after the first checkpoint, relaunch with resume; each rank's dump."""
    _kill_after_first_checkpoint(_launch(algorithm, config, dump), Path(config.output_dir))
    config.resume = True
    _finish(_launch(algorithm, config, dump))
    ranks = {}
    for rank in (0, 1):
        info = json.loads((dump / f"rank-{rank}.json").read_text())
        assert info["world"] == 2
        ranks[rank] = {**info, "params": load_file(str(dump / f"rank-{rank}.safetensors"))}
    # (c) DDP kept the two ranks' parameters identical
    a, b = ranks[0]["params"], ranks[1]["params"]
    assert a.keys() == b.keys() and a
    for key in a:
        assert torch.equal(a[key], b[key]), key
    return ranks


def _close_to(one: dict, two: dict, atol: float = 1e-5) -> None:
    for key, value in two.items():
        torch.testing.assert_close(one[key].float(), value, atol=atol, rtol=1e-4, msg=key)


def test_ppo_two_processes_equal_one_and_resume_after_kill(tmp_path, model_path):
    from openvirl.training.ppo import PPOConfig, train_ppo

    def config(out):
        return PPOConfig(
            model=str(model_path),
            output_dir=str(out),
            env_kwargs={"rule": "id", "split": "train", "max_attempts": 2},
            num_updates=2,
            episodes_per_update=4,
            num_envs=2,
            max_new_tokens=8,
            temperature=1.0,
            learning_rate=1e-3,
            update_epochs=2,
            minibatch_size=2,
            grad_accum_steps=3,  # odd: one process pads every step with a zero-weight pass
            keep_last=None,
        )

    one = train_ppo(config(tmp_path / "one"))
    ranks = _killed_then_resumed("ppo", config(tmp_path / "two"), tmp_path / "dump")
    # (b) global counts: the same episodes, tokens and FLOPs as on one process
    two = json.loads((tmp_path / "two" / "summary.json").read_text())["flops"]
    ref = json.loads((tmp_path / "one" / "summary.json").read_text())["flops"]
    assert two["train_tokens"] == ref["train_tokens"] > 0
    assert two["inference_tokens"] == ref["inference_tokens"] > 0
    assert two["flops"] == ref["flops"] == ranks[1]["flops"]
    # ... and the same update, up to the order of floating-point sums
    trained = {n: p.detach() for n, p in one.agent.named_parameters() if p.requires_grad}
    _close_to(trained, ranks[0]["params"])


def test_sft_two_processes_equal_one_and_resume_after_kill(tmp_path, model_path):
    from openvirl.training.sft import SFTRunConfig, train_sft

    def config(out):
        return SFTRunConfig(
            model=str(model_path),
            n_examples=32,
            max_steps=8,
            batch_size=4,  # the global batch: 2 per process on two
            lora_dropout=0.0,  # dropout draws differ between processes
            learning_rate=1e-2,
            lr_scheduler="cosine",
            warmup_steps=0,
            save_steps=1,
            keep_last=None,
            output_dir=str(out),
        )

    one = train_sft(config(tmp_path / "one"))
    ranks = _killed_then_resumed("sft", config(tmp_path / "two"), tmp_path / "dump")
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert two["steps"] == one.steps == ranks[0]["steps"] == 8
    assert two["train_tokens"] == one.train_tokens == ranks[1]["tokens"] > 0
    assert two["flops"]["flops"] == one.flops
    trained = load_file(str(one.final_dir / "adapter_model.safetensors"))
    final = load_file(str(tmp_path / "two" / "final" / "adapter_model.safetensors"))
    _close_to(trained, final, atol=1e-4)


def test_grpo_two_processes_count_like_one_and_resume_after_kill(tmp_path, model_path):
    from openvirl.training.grpo import GRPORunConfig, train_grpo

    def config(out):
        return GRPORunConfig(
            model=str(model_path),
            output_dir=str(out),
            env_kwargs={"rule": "id", "split": "train", "max_attempts": 1},
            n_prompts=8,
            num_generations=2,
            batch_size=4,  # the global batch: 2 completions per process on two
            max_completion_length=6,
            # every completion is 6 tokens, so the token count does not depend on the draws
            generation_kwargs={"min_new_tokens": 6},
            max_steps=4,
            save_steps=1,
            keep_last=None,
            learning_rate=1e-3,
            reward="points",
        )

    one = train_grpo(config(tmp_path / "one"))
    _killed_then_resumed("grpo", config(tmp_path / "two"), tmp_path / "dump")
    two = json.loads((tmp_path / "two" / "summary.json").read_text())
    ref = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert two["steps"] == one.steps == 4
    assert two["flops"]["inference_tokens"] == ref["flops"]["inference_tokens"] > 0
    assert two["flops"]["flops"] == ref["flops"]["flops"]
