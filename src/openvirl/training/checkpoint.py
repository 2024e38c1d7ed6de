"""Checkpoints that survive ``kill -9``: written to a temporary folder, renamed when complete.

Layout of one checkpoint (``<run>/checkpoints/step-00000012/``)::

    model/                 save_pretrained: a LoRA adapter folder, or the full model + tokenizer
    modules.pt             extra modules' state dicts (PPO's value head)
    optimizer.pt           optimizer state
    scheduler.pt           LR scheduler state
    rng.json               python, numpy, torch (and CUDA) RNG states as plain numbers
    state.json             step, FLOP counter, data cursor, anything the trainer needs
    openvirl-checkpoint.json   the completion marker, written last

A checkpoint is complete when its marker exists. Everything is first written to
``.tmp-step-.../`` and the folder is renamed into place with one `os.replace`, so a process
killed mid-save leaves at most a temporary folder that `latest_checkpoint` ignores (and the
next save cleans up). `--resume` loads `latest_checkpoint(run_dir)`.

Nothing in a checkpoint is unpickled: tensors load with ``torch.load(weights_only=True)`` and
the RNG states are JSON, so a crafted checkpoint folder cannot run code. Checkpoints of older
versions kept the RNG states in a pickled ``rng.pt``; it is read only through the
weights-only loader (with numpy's array types allowed, as transformers does), and a file that
needs anything more is refused with a message naming it.

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


class CheckpointError(ValueError):
    """A checkpoint file is unreadable or unsafe to load; the message names the file."""


RNG_FILE = "rng.json"
"""The RNG states of a checkpoint, as plain JSON numbers (never unpickled)."""

LEGACY_RNG_FILE = "rng.pt"
"""Where checkpoints before `RNG_FILE` kept the RNG states (a pickle; loaded weights-only)."""


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


def rng_state_to_json(state: Mapping[str, Any]) -> dict[str, Any]:
    """`rng_state` as plain JSON (lists of ints), so loading it can never run code."""
    version, internal, gauss = state["python"]
    kind, keys, pos, has_gauss, cached = state["numpy"]
    out: dict[str, Any] = {
        "format": 1,
        "python": {"version": int(version), "state": [int(v) for v in internal], "gauss": gauss},
        "numpy": {
            "kind": str(kind),
            "keys": [int(v) for v in keys],
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "torch": [int(v) for v in state["torch"].tolist()],
    }
    if "cuda" in state:
        out["cuda"] = [[int(v) for v in t.tolist()] for t in state["cuda"]]
    return out


def rng_state_from_json(data: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of `rng_state_to_json`: the states `set_rng_state` takes.

    Raises
    ------
    ValueError
        If `data` is not a state this module wrote (wrong shape or types).
    """
    import numpy as np
    import torch

    try:
        py = data["python"]
        gauss = py["gauss"]
        state: dict[str, Any] = {
            "python": (
                int(py["version"]),
                tuple(int(v) for v in py["state"]),
                None if gauss is None else float(gauss),
            ),
            "numpy": (
                str(data["numpy"]["kind"]),
                np.asarray(data["numpy"]["keys"], dtype=np.uint32),
                int(data["numpy"]["pos"]),
                int(data["numpy"]["has_gauss"]),
                float(data["numpy"]["cached_gaussian"]),
            ),
            "torch": torch.tensor(data["torch"], dtype=torch.uint8),
        }
        if "cuda" in data:
            state["cuda"] = [torch.tensor(t, dtype=torch.uint8) for t in data["cuda"]]
    except (KeyError, TypeError, ValueError, OverflowError, RuntimeError) as exc:
        raise ValueError(f"not an openvirl RNG state ({type(exc).__name__}: {exc})") from exc
    return state


def load_rng_state(folder: Path) -> dict[str, Any]:
    """Read a checkpoint's RNG states without unpickling anything that could run code.

    ``rng.json`` is plain JSON. An older checkpoint's ``rng.pt`` goes through
    ``torch.load(weights_only=True)`` with only numpy's array types allowed.

    Raises
    ------
    CheckpointError
        Naming the file, when it is unreadable or would need an unsafe unpickler.
    FileNotFoundError
        If the checkpoint has neither file.
    """
    import torch

    folder = Path(folder)
    path = folder / RNG_FILE
    if path.is_file():
        try:
            return rng_state_from_json(json.loads(path.read_text(encoding="utf-8")))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            raise CheckpointError(f"{path}: unreadable RNG state: {exc}") from exc
    legacy = folder / LEGACY_RNG_FILE
    if not legacy.is_file():
        raise FileNotFoundError(f"{folder} has no {RNG_FILE} (RNG state); cannot resume it.")
    import numpy as np

    core = np._core if hasattr(np, "_core") else np.core  # numpy 2 / numpy 1
    allowed = [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]
    try:
        with torch.serialization.safe_globals(allowed):
            state = torch.load(legacy, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
        raise CheckpointError(
            f"{legacy}: refused to load this RNG file: it is not plain tensors and numbers "
            "(it would need an unpickler that can run code). Resume from a checkpoint written "
            "by this version, or delete the file to resume without restoring the RNG states."
        ) from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{legacy}: not an RNG state (a {type(state).__name__}).")
    return state


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
    write_json_atomic(tmp / RNG_FILE, rng_state_to_json(rng_state()))
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
    CheckpointError
        If its RNG file is unreadable or would need an unsafe unpickler (see `load_rng_state`).
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
        set_rng_state(load_rng_state(folder))
    return json.loads((folder / "state.json").read_text(encoding="utf-8"))


__all__ = [
    "LEGACY_RNG_FILE",
    "MARKER",
    "RNG_FILE",
    "CheckpointError",
    "checkpoint_step",
    "is_peft_model",
    "latest_checkpoint",
    "list_checkpoints",
    "load_checkpoint",
    "load_model_weights",
    "load_rng_state",
    "mark_complete",
    "rng_state",
    "rng_state_from_json",
    "rng_state_to_json",
    "save_checkpoint",
    "set_rng_state",
    "write_json_atomic",
]
