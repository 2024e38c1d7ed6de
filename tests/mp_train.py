"""Run one trainer under ``accelerate launch`` and write what each process ends with.

Used by ``test_training_multiprocess.py`` (not a test itself)::

    accelerate launch --multi_gpu --num_processes 2 tests/mp_train.py ppo CONFIG.yaml DUMP_DIR

Every process writes ``DUMP_DIR/rank-<r>.safetensors`` (its trainable parameters after the
last update) and ``DUMP_DIR/rank-<r>.json`` (the process count and the run's global counts as
that process sees them), so a test can check that the ranks agree.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _dump(folder: Path, rank: int, world: int, model: Any, counts: dict[str, Any]) -> None:
    from safetensors.torch import save_file

    params = {
        name: p.detach().float().cpu().contiguous().clone()
        for name, p in model.named_parameters()
        if p.requires_grad
    }
    folder.mkdir(parents=True, exist_ok=True)
    save_file(params, str(folder / f"rank-{rank}.safetensors"))
    payload = {"rank": rank, "world": world, **counts}
    (folder / f"rank-{rank}.json").write_text(json.dumps(payload), encoding="utf-8")


def main(algorithm: str, config_path: str, dump_dir: str) -> None:
    import os

    import torch
    from transformers import TrainerCallback

    from openvirl.training.cli import _config_class
    from openvirl.training.config import launch_world_size, load_config

    torch.set_num_threads(1)
    # Read from the launcher's environment: creating a distributed state here would fix its
    # CPU/GPU choice before the trainer makes its own.
    rank, world = int(os.environ.get("RANK", "0")), launch_world_size()
    folder = Path(dump_dir)
    config = load_config(_config_class(algorithm), config_path)
    if algorithm == "ppo":
        from openvirl.training.ppo import train_ppo

        result = train_ppo(config)
        _dump(folder, rank, world, result.agent, {"flops": result.flops})
        return

    class Dump(TrainerCallback):
        def on_train_end(self, args: Any, st: Any, control: Any, model: Any = None, **kw: Any):
            counts = {"tokens": int(st.num_input_tokens_seen), "steps": int(st.global_step)}
            _dump(folder, rank, world, model, counts)

    if algorithm == "sft":
        from openvirl.training.sft import train_sft

        train_sft(config, callbacks=[Dump()])
    else:
        from openvirl.training.grpo import train_grpo

        train_grpo(config, callbacks=[Dump()])


if __name__ == "__main__":
    main(*sys.argv[1:4])
