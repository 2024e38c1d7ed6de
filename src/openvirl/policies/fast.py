"""Faster CPU generation: every `nn.Linear` through oneDNN with pre-packed weights.

Why
---
On the AMD EPYC this project's CPU studies run on, `torch.nn.functional.linear` goes through
MKL's sgemm, which on a non-Intel CPU takes a slow code path for the skinny products of
decoding (a batch of 1 to 32 rows against a 640 x 262,144 output layer). Measured with two
threads, the embedded Gemma-3-270M's output layer costs 4x more CPU time at batch 8 through
MKL than through oneDNN with the weight reordered once into oneDNN's blocked layout
(``torch.ops.mkldnn._reorder_linear_weight`` and ``_linear_pointwise``, the kernels
``torch.compile`` itself uses for CPU linears). The output layer is about 62% of the model's
multiply-adds, so this is where a decoding step's time goes.

What
----
`install(model, precision)` gives each `nn.Linear` of `model` (a peft LoRA layer's frozen base
layer and its A/B layers included) a forward that, for weights of at least
`MIN_PACKED_WEIGHTS` elements and inputs of at least `MIN_PACKED_ROWS` rows, and **only under
`torch.inference_mode()` on CPU**, multiplies with a packed copy of its weight:

- ``fp32``: the packed copy is float32. Same precision as the reference, only the summation
  order differs (output differences around 1e-4 on the output layer's logits); greedy answers
  of the embedded model are identical to the reference on the benchmark prompts.
- ``bf16``: the packed copy is bfloat16 and inputs are rounded to bfloat16 (avx512_bf16 dot
  products, float32 accumulation); outputs go back to the input's dtype. Twice fewer bytes to
  read again, but answers can differ from the reference.
- ``reference``: nothing is installed (plain torch, MKL).

Everything else (training, log-probabilities under `torch.no_grad`, a CUDA device) runs the
module's own forward, so gradients and trainers are untouched. Packed copies are keyed by the
weight's storage and in-place version counter, so an optimizer step, `load_state_dict` or a
merged adapter repacks on the next generation instead of using stale weights. They cost memory:
one extra copy of the weights (fp32: +1.1 GB for Gemma-3-270M, bf16: +0.55 GB).
"""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

PRECISIONS = ("fp32", "bf16", "reference")
"""Values of the ``precision`` option: packed float32, packed bfloat16, plain torch."""

DEFAULT_PRECISION = "fp32"
"""What `HFPolicy` uses on CPU unless told (same precision, identical greedy answers)."""

MIN_PACKED_WEIGHTS = 2**19
"""Smallest weight (in elements) worth packing: below it (Gemma's 256 x 640 key and value
projections, LoRA's rank-r A and B matrices) oneDNN's per-call overhead exceeds what it saves,
measured on the EPYC; those layers keep torch's forward."""

MIN_PACKED_ROWS = 2
"""Fewest input rows worth the packed kernel: for a single row (batch-1 decoding) MKL's
matrix-vector product was faster than oneDNN's on the EPYC with two threads."""

_PRECISION_ATTR = "_openvirl_precision"

_PACKED: weakref.WeakKeyDictionary[nn.Module, dict[str, tuple[Any, torch.Tensor]]]
_PACKED = weakref.WeakKeyDictionary()
"""Packed weights per module and precision, kept outside the modules: oneDNN's opaque tensors
cannot be deep-copied or saved, and a trainer deep-copies its model (PPO's frozen reference)."""


def check_precision(precision: str) -> str:
    """`precision` itself when valid, else a one-line `ValueError` naming the choices."""
    if precision not in PRECISIONS:
        raise ValueError(f"`precision` must be one of {', '.join(PRECISIONS)}; got {precision!r}.")
    return precision


def available(precision: str) -> bool:
    """Whether this torch build can run `precision` here (oneDNN, and bf16 instructions)."""
    if precision == "reference":
        return True
    mkldnn = torch.ops.mkldnn
    if not torch.backends.mkldnn.is_available() or not hasattr(mkldnn, "_linear_pointwise"):
        return False
    if precision == "bf16":
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return True


def install(model: nn.Module, precision: str = DEFAULT_PRECISION) -> str:
    """Route `model`'s linear layers through packed oneDNN weights during CPU inference.

    Idempotent: installing again only changes the precision (packed copies of the other
    precision are kept until ``reference`` drops them all). Returns the precision in effect:
    ``reference`` when this torch build lacks the kernels (nothing installed then) or when
    asked for it (any earlier installation undone).
    """
    check_precision(precision)
    if not available(precision):
        precision = "reference"
    for module in model.modules():
        if not isinstance(module, nn.Linear):
            continue
        if precision == "reference":
            if _PRECISION_ATTR in module.__dict__:
                del module.forward
                delattr(module, _PRECISION_ATTR)
                _PACKED.pop(module, None)
            continue
        setattr(module, _PRECISION_ATTR, precision)
        if "forward" not in module.__dict__:
            module.forward = _fast_forward.__get__(module, type(module))
    return precision


def is_embedded_model(model: Any) -> bool:
    """Whether `model` (or the model a peft wrapper holds) was loaded from the embedded folder."""
    from pathlib import Path

    from openvirl.policies import embedded

    source = getattr(model, "name_or_path", None)
    if not source:
        config = getattr(model, "config", None)
        source = getattr(config, "_name_or_path", None)
    if not source:
        return False
    folder = Path(str(source))
    return folder.name == embedded.EMBEDDED_MODEL_NAME and embedded.is_prepared(folder)


def install_default(model: nn.Module, precision: str | None = None) -> str:
    """`install` with `HFPolicy`'s default: None means ``fp32`` for the embedded model and
    ``reference`` for any other (whose greedy answers were not checked against the reference)."""
    if precision is None:
        precision = DEFAULT_PRECISION if is_embedded_model(model) else "reference"
    return install(model, check_precision(precision))


def packed_layers(model: nn.Module) -> int:
    """How many of `model`'s linear layers hold a packed weight (the fast path has run)."""
    return sum(1 for m in model.modules() if isinstance(m, nn.Linear) and _PACKED.get(m))


def installed_precision(model: nn.Module) -> str:
    """The precision `install` left on `model` (``reference`` when none)."""
    for module in model.modules():
        if isinstance(module, nn.Linear):
            return getattr(module, _PRECISION_ATTR, "reference")
    return "reference"


def _packed_weight(module: nn.Linear) -> torch.Tensor:
    """The module's weight in oneDNN's layout (and precision), repacked when the weight changed."""
    weight = module.weight
    precision = getattr(module, _PRECISION_ATTR)
    key = (weight.data_ptr(), weight._version, weight.dtype, tuple(weight.shape))
    cached = _PACKED.get(module, {})
    if precision in cached and cached[precision][0] == key:
        return cached[precision][1]
    dtype = torch.bfloat16 if precision == "bf16" else weight.dtype
    packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().to(dtype), None)
    # One copy per precision, so a benchmark can switch back and forth without repacking.
    cached = {p: entry for p, entry in cached.items() if entry[0] == key}
    cached[precision] = (key, packed)
    _PACKED[module] = cached
    return packed


def _fast_forward(self: nn.Linear, x: torch.Tensor) -> Any:
    """`nn.Linear.forward`, through the packed weight when inferring on CPU (see the module)."""
    weight = self.weight
    if (
        not torch.is_inference_mode_enabled()
        or x.device.type != "cpu"
        or weight.device.type != "cpu"
        or weight.dtype not in (torch.float32, torch.bfloat16)
        or x.dtype != weight.dtype
        or x.numel() == 0
        or weight.numel() < MIN_PACKED_WEIGHTS
    ):
        return nn.Linear.forward(self, x)
    rows = x.reshape(-1, x.shape[-1])
    if rows.shape[0] < MIN_PACKED_ROWS:
        return nn.Linear.forward(self, x)
    packed = _packed_weight(self)
    if packed.dtype != rows.dtype:
        rows = rows.to(packed.dtype)
    bias = self.bias
    if bias is not None and bias.dtype != packed.dtype:
        bias = bias.to(packed.dtype)
    out = torch.ops.mkldnn._linear_pointwise(rows.contiguous(), packed, bias, "none", [], "")
    return out.to(x.dtype).reshape(*x.shape[:-1], out.shape[-1])


__all__ = [
    "DEFAULT_PRECISION",
    "MIN_PACKED_ROWS",
    "MIN_PACKED_WEIGHTS",
    "PRECISIONS",
    "available",
    "check_precision",
    "install",
    "install_default",
    "installed_precision",
    "is_embedded_model",
    "packed_layers",
]
