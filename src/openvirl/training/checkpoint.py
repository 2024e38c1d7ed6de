"""Checkpoints that survive ``kill -9``: written to a temporary folder, renamed when complete.

Layout of one checkpoint (``<run>/checkpoints/step-00000012/``)::

    model/                 save_pretrained: a LoRA adapter folder, or the full model + tokenizer
    modules.pt             extra modules' state dicts (PPO's value head)
    optimizer.pt           optimizer state
    scheduler.pt           LR scheduler state
    rng.pt                 python, numpy, torch (and CUDA) RNG states
    state.json             step, FLOP counter, data cursor, anything the trainer needs
    openvirl-checkpoint.json   the completion marker, written last

A checkpoint is complete when its marker exists. Everything is first written to
``.tmp-step-.../`` and the folder is renamed into place with one `os.replace`, so a process
killed mid-save leaves at most a temporary folder that `latest_checkpoint` ignores (and the
next save cleans up). `--resume` loads `latest_checkpoint(run_dir)`.

The ``model/`` folder loads like any checkpoint, e.g. as an evaluation policy:
``hf:<base>?adapter=<ckpt>/model`` (LoRA) or ``hf:<ckpt>/model`` (full fine-tuning).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

MARKER = "openvirl-checkpoint.json"
"""File whose presence marks a complete checkpoint (written last)."""

_STEP_DIR = re.compile(r"^(?:step|checkpoint)-(\d+)$")


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write JSON to `path` through a temporary file and `os.replace` (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        json.dump(payload, handle, indent=2, default=str)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def rng_state() -> dict[str, Any]:
    """The state of every RNG a training loop may draw from."""
    import numpy as np
    import torch

    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore the RNG states saved by `rng_state`."""
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def is_peft_model(model: Any) -> bool:
    """Whether `model` is a peft model (its checkpoint is the adapter only)."""
    return hasattr(model, "peft_config") and hasattr(model, "get_base_model")


def save_checkpoint(
    root: Path,
    step: int,
    *,
    model: Any,
    processor: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    modules: Mapping[str, Any] | None = None,
    state: Mapping[str, Any] | None = None,
    keep_last: int | None = None,
    adapters: list[str] | None = None,
) -> Path:
    """Save a complete checkpoint as ``root/step-<step>``; return its folder.

    Parameters
    ----------
    root
        The run's checkpoint folder (created).
    step
        The trainer's step count (update or optimizer step); names the folder.
    model
        A transformers or peft model; a peft model saves only its adapter.
    processor
        Saved beside a full model so ``model/`` loads on its own (ignored for adapters).
    optimizer, scheduler
        Saved with their `state_dict`.
    modules
        Extra ``name -> nn.Module`` (a value head) saved to ``modules.pt``.
    state
        JSON-able trainer state (FLOP counter, data cursor, config ...) for ``state.json``.
    keep_last
        Delete older complete checkpoints beyond the newest `keep_last` (None keeps all).
    adapters
        For a peft model, the adapters to save (None saves all); PPO leaves out its frozen
        KL-reference copy of the Init adapter.
    """
    import torch

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    for stale in root.glob(".tmp-step-*"):
        shutil.rmtree(stale, ignore_errors=True)
    final = root / f"step-{step:08d}"
    tmp = root / f".tmp-step-{step:08d}-{os.getpid()}"
    tmp.mkdir()
    options = {"selected_adapters": adapters} if adapters and is_peft_model(model) else {}
    model.save_pretrained(tmp / "model", safe_serialization=True, **options)
    if processor is not None and not is_peft_model(model):
        processor.save_pretrained(tmp / "model")
    if modules:
        torch.save({k: m.state_dict() for k, m in modules.items()}, tmp / "modules.pt")
    if optimizer is not None:
        torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    if scheduler is not None:
        torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
    torch.save(rng_state(), tmp / "rng.pt")
    write_json_atomic(tmp / "state.json", {"step": int(step), **dict(state or {})})
    write_json_atomic(tmp / MARKER, {"step": int(step), "complete": True})
    _fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(root)
    if keep_last is not None and keep_last > 0:
        for old in list_checkpoints(root)[:-keep_last]:
            shutil.rmtree(old, ignore_errors=True)
    return final


def mark_complete(folder: Path, step: int, extra: Mapping[str, Any] | None = None) -> None:
    """Add the completion marker to a checkpoint another library wrote (HF Trainer's)."""
    write_json_atomic(Path(folder) / MARKER, {"step": int(step), "complete": True, **(extra or {})})


def checkpoint_step(folder: Path) -> int | None:
    """The step of a complete checkpoint folder, or None if it is incomplete or not one."""
    marker = Path(folder) / MARKER
    if not marker.is_file():
        return None
    try:
        return int(json.loads(marker.read_text(encoding="utf-8"))["step"])
    except (json.JSONDecodeError, KeyError, ValueError, TypeError):
        return None


def list_checkpoints(root: Path) -> list[Path]:
    """Complete checkpoints under `root` (``step-N`` or HF ``checkpoint-N``), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for child in root.iterdir():
        if child.is_dir() and _STEP_DIR.match(child.name):
            step = checkpoint_step(child)
            if step is not None:
                found.append((step, child))
    return [path for _, path in sorted(found)]


def latest_checkpoint(root: Path) -> Path | None:
    """The newest complete checkpoint under `root`, or None (what ``--resume`` loads)."""
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_model_weights(model: Any, folder: Path) -> None:
    """Load the weights saved in ``folder`` (a ``model/`` folder) into `model` in place."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if is_peft_model(model):
        from peft import set_peft_model_state_dict

        weights = load_file(str(folder / "adapter_model.safetensors"))
        result = set_peft_model_state_dict(model, weights)
        unexpected = getattr(result, "unexpected_keys", [])
        if unexpected:
            raise ValueError(f"adapter in {folder} has unexpected keys: {unexpected[:5]}")
        return
    weights: dict[str, Any] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    if not weights:
        raise FileNotFoundError(f"no *.safetensors weights in {folder}")
    result = model.load_state_dict(weights, strict=False)
    if result.unexpected_keys:
        raise ValueError(f"weights in {folder} have unexpected keys: {result.unexpected_keys[:5]}")


def load_checkpoint(
    folder: Path,
    *,
    model: Any = None,
    optimizer: Any = None,
    scheduler: Any = None,
    modules: Mapping[str, Any] | None = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Restore what `save_checkpoint` wrote into the given objects; return ``state.json``.

    Raises
    ------
    FileNotFoundError
        If `folder` is not a complete checkpoint.
    """
    import torch

    folder = Path(folder)
    if checkpoint_step(folder) is None:
        raise FileNotFoundError(f"{folder} is not a complete checkpoint (no {MARKER}).")
    if model is not None:
        load_model_weights(model, folder / "model")
    if modules:
        saved = torch.load(folder / "modules.pt", map_location="cpu", weights_only=True)
        for name, module in modules.items():
            module.load_state_dict(saved[name])
    if optimizer is not None:
        optimizer.load_state_dict(
            torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True)
        )
    if scheduler is not None:
        scheduler.load_state_dict(
            torch.load(folder / "scheduler.pt", map_location="cpu", weights_only=True)
        )
    if restore_rng:
        set_rng_state(torch.load(folder / "rng.pt", weights_only=False))
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))


__all__ = [
    "MARKER",
    "checkpoint_step",
    "is_peft_model",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "mark_complete",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "write_json_atomic",
]
