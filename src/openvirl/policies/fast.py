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
- ``shortlist``: the layers as in ``fp32``, except the output layer while `argmax_only` is in
  effect (greedy generation whose logits nothing else reads, see below), where it is exact for
  the argmax at about half the cost. ``reference``-identical greedy answers, like ``fp32``.
- ``reference``: nothing is installed (plain torch, MKL).

The output layer's shortlist
----------------------------
Greedy decoding only needs the largest logit of each row. Under ``shortlist`` the output layer
(640 x 262,144 for Gemma-3-270M, half of a decoding step's time in fp32) first computes every
logit in bfloat16 through a packed bf16 copy, which reads half the bytes and uses the bf16 dot
product instructions, then bounds each approximate logit's error and recomputes in float32
only the candidates that could be the row's maximum:

    |approx_j - exact_j| <= E = c * |x|_2 * max_j |w_j|_2 + 1.01 * 2^-8 * max_j |approx_j|

(Cauchy-Schwarz on the rounding of `x` and `w` to bf16, c = (2u + u^2 + 2 * gamma_n) * 1.01
with u = 2^-8 and gamma_n = n * 2^-24 / (1 - n * 2^-24) for float32 accumulation of n
products in either kernel; the second term is the rounding of the bf16 output). Every token
whose approximate logit is below ``max_j approx_j - 2E`` is provably below the row's true
maximum, so the candidates (usually one or two tokens) get their exact float32 logit and the
others keep their bf16 one: the returned row's argmax is the float32 argmax (up to float32
summation order, as with ``fp32``: a near-tie within float32 rounding may resolve differently
from MKL's), while its tail is only approximate. That is why it applies only inside
`argmax_only` (set by `HFPolicy` for greedy calls that pass no logits processor of their
own) or `sampling` (below); log-probabilities and the model server's streamed scores get full
float32 logits.

Sampling is an argmax too
-------------------------
Temperature sampling without top-k or top-p (PPO's rollouts, `HFPolicy` at temperature > 0)
draws the same token as ``argmax_j (logit_j / T + g_j)`` with ``g_j`` independent Gumbel(0, 1)
noise (the Gumbel-max trick). `GumbelNoise` draws that noise once per decoding step and row,
from the row's own generator; inside `sampling(noise)` the shortlist runs on the perturbed
scores, with the bound scaled by 1 / T, and the sampler (`hf.GumbelRowSampler`) takes the
argmax of the same scores. The token is the one full float32 logits would give with the same
noise (every non-candidate's perturbed score is provably below the winner's), so rollouts
keep their exact distribution at the shortlist's cost; a row without the shortlist (no
``shortlist`` precision, a prefill over several positions, a fallback) gets the same token
from full logits, since the noise does not depend on the path.
A row with more than `MAX_SHORTLIST` candidates (a near-uniform distribution) falls back to
the full float32 product; so does non-finite input.

LoRA adapters, merged on the fly
--------------------------------
A peft LoRA layer computes ``W x + s * B (A x)``: the base product plus two rank-r products
per layer, each too small for the packed kernels and together about 20% of an unmerged
decoding step. Under `install`, a LoRA layer whose adapters are plain LoRA (no DoRA or other
variant, no bias on B, no dropout in effect) multiplies during inference by one packed copy
of ``W + s * B A`` instead, computed in float32 and repacked whenever W, A or B change (after
every PPO update). The sum is the same; its float32 rounding differs, as the packed kernels'
summation order does. Disabled adapters (PPO's reference model), mixed-adapter batches,
training and `torch.no_grad` scoring run peft's own forward.

Everything else (training, log-probabilities under `torch.no_grad`, a CUDA device) runs the
module's own forward, so gradients and trainers are untouched. Packed copies are keyed by the
weight's storage and in-place version counter, so an optimizer step, `load_state_dict` or a
merged adapter repacks on the next generation instead of using stale weights. They cost memory:
one extra copy of the weights (fp32: +1.1 GB for Gemma-3-270M, bf16: +0.55 GB; shortlist:
+0.4 GB for the float32 layers and +0.34 GB for the bf16 output layer, and the output layer's
float32 copy, +0.67 GB, once something samples or reads logits through it).
"""

from __future__ import annotations

import contextlib
import contextvars
import weakref
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

PRECISIONS = ("shortlist", "fp32", "bf16", "reference")
"""Values of the ``precision`` option: packed float32 with the output layer's bf16 shortlist
for greedy decoding, packed float32, packed bfloat16, plain torch."""

DEFAULT_PRECISION = "shortlist"
"""What `HFPolicy` uses for the embedded model on CPU unless told (float32 everywhere a value
is used, identical greedy answers)."""

MAX_SHORTLIST = 64
"""Most candidates a row may have before its output layer falls back to the float32 product."""

_SEARCH_BLOCK = 256
"""Vocabulary block whose maximum the shortlist search checks before scanning it."""

_ARGMAX_ONLY: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "openvirl_argmax_only", default=False
)


class GumbelNoise:
    """Gumbel(0, 1) noise for temperature sampling as an argmax, one row per generator.

    `current(vocab)` draws the step's noise on first use and returns the same tensor until
    `advance()`: the output layer (to choose its shortlist) and the sampler (to choose the
    token) read one draw, and each row's generator advances by exactly one vocabulary-sized
    draw per step whichever of them asked first, so a row's tokens depend only on its seed.
    """

    def __init__(self, generators: list[torch.Generator], temperature: float) -> None:
        if temperature <= 0:
            raise ValueError(f"Gumbel sampling needs a temperature > 0, got {temperature}.")
        self.generators = generators
        self.temperature = float(temperature)
        self._noise: torch.Tensor | None = None

    @property
    def rows(self) -> int:
        return len(self.generators)

    def current(self, vocab: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """This step's ``(rows, vocab)`` float32 noise."""
        noise = self._noise
        if noise is None or noise.shape[1] != vocab:
            noise = torch.stack([gumbel(vocab, g, device) for g in self.generators])
            self._noise = noise
        return noise

    def scores(self, logits: torch.Tensor) -> torch.Tensor:
        """``logits / T + noise``: the perturbed scores whose row argmax is the sampled token."""
        return logits.float() / self.temperature + self.current(logits.shape[-1], logits.device)

    def advance(self) -> None:
        """The step is over: the next `current` draws fresh noise."""
        self._noise = None


def gumbel(size: int, generator: torch.Generator, device: torch.device | str = "cpu") -> Any:
    """`size` independent Gumbel(0, 1) values, ``-log(-log(U))``, from `generator`.

    U is kept at or above 2^-126 so that no value is infinite (a U of 0 would make its token
    certain); the smallest value is then about -4.5 and the largest (U just below 1) 16.6.
    """
    uniform = torch.rand(size, generator=generator, device=device)
    return uniform.clamp_(min=2.0**-126).log_().neg_().log_().neg_()


_NOISE: contextvars.ContextVar[GumbelNoise | None] = contextvars.ContextVar(
    "openvirl_gumbel_noise", default=None
)

MIN_PACKED_WEIGHTS = 2**19
"""Smallest weight (in elements) worth packing: below it (Gemma's 256 x 640 key and value
projections, LoRA's rank-r A and B matrices) oneDNN's per-call overhead exceeds what it saves,
measured on the EPYC; those layers keep torch's forward."""

MIN_PACKED_ROWS = 2
"""Fewest input rows worth the packed kernel: for a single row (batch-1 decoding) MKL's
matrix-vector product was faster than oneDNN's on the EPYC with two threads."""

_PRECISION_ATTR = "_openvirl_precision"
_LORA_ATTR = "_openvirl_merged_lora"

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
    if precision in ("bf16", "shortlist"):
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return True


def install(model: nn.Module, precision: str = DEFAULT_PRECISION) -> str:
    """Route `model`'s linear layers through packed oneDNN weights during CPU inference.

    Idempotent: installing again only changes the precision (packed copies of the other
    precision are kept until ``reference`` drops them all). Returns the precision in effect:
    ``fp32`` for ``shortlist`` on a CPU without bf16 instructions, ``reference`` when this
    torch build lacks the kernels (nothing installed then) or when asked for it (any earlier
    installation undone).
    """
    check_precision(precision)
    if precision == "shortlist" and not available(precision):
        precision = "fp32"
    if not available(precision):
        precision = "reference"
    output_layer = _output_layer(model)
    for module in model.modules():
        if _is_lora_linear(module):
            if precision == "reference":
                if "forward" in module.__dict__ and _LORA_ATTR in module.__dict__:
                    del module.forward
                    delattr(module, _LORA_ATTR)
                    _PACKED.pop(module, None)
            elif "forward" not in module.__dict__:
                setattr(module, _LORA_ATTR, True)
                module.forward = _fast_lora_forward.__get__(module, type(module))
        if not isinstance(module, nn.Linear):
            continue
        if precision == "reference":
            if _PRECISION_ATTR in module.__dict__:
                del module.forward
                delattr(module, _PRECISION_ATTR)
                _PACKED.pop(module, None)
            continue
        layer_precision = precision
        if precision == "shortlist" and module is not output_layer:
            layer_precision = "fp32"
        setattr(module, _PRECISION_ATTR, layer_precision)
        if "forward" not in module.__dict__:
            module.forward = _fast_forward.__get__(module, type(module))
    return precision


def _output_layer(model: nn.Module) -> nn.Module | None:
    """The model's output layer (the one `shortlist` treats), None when it has none; a bare
    `nn.Linear` is its own."""
    if isinstance(model, nn.Linear):
        return model
    getter = getattr(model, "get_output_embeddings", None)
    try:
        layer = getter() if callable(getter) else None
    except (AttributeError, NotImplementedError):
        return None
    return layer if isinstance(layer, nn.Linear) else None


@contextlib.contextmanager
def argmax_only(enabled: bool = True) -> Iterator[None]:
    """Within this block, the output layer of a ``shortlist`` model may return logits that are
    exact float32 only where they can be a row's maximum (see the module docstring).

    For callers that use nothing but each row's argmax: greedy generation without logits
    processors, scores or log-probabilities of its own.
    """
    token = _ARGMAX_ONLY.set(enabled)
    try:
        yield
    finally:
        _ARGMAX_ONLY.reset(token)


@contextlib.contextmanager
def sampling(noise: GumbelNoise | None) -> Iterator[None]:
    """Within this block, a ``shortlist`` output layer whose rows match `noise` returns logits
    that are exact float32 wherever they can win ``argmax(logits / T + noise)`` (module
    docstring); None leaves the layer as it is."""
    token = _NOISE.set(noise)
    try:
        yield
    finally:
        _NOISE.reset(token)


def noise_of(kwargs: dict[str, Any]) -> GumbelNoise | None:
    """The `GumbelNoise` of the first logits processor in `generate` arguments that has one
    (a `hf.GumbelRowSampler`), None otherwise."""
    for processor in kwargs.get("logits_processor") or []:
        noise = getattr(processor, "gumbel_noise", None)
        if isinstance(noise, GumbelNoise):
            return noise
    return None


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
    """`install` with `HFPolicy`'s default: None means ``shortlist`` for the embedded model and
    ``reference`` for any other (whose greedy answers were not checked against the reference)."""
    if precision is None:
        precision = DEFAULT_PRECISION if is_embedded_model(model) else "reference"
    return install(model, check_precision(precision))


def packed_layers(model: nn.Module) -> int:
    """How many of `model`'s linear layers (and LoRA layers, by their merged weight) hold a
    packed weight: the fast path has run through them."""
    return sum(
        1
        for m in model.modules()
        if (isinstance(m, nn.Linear) or _is_lora_linear(m))
        and any(key != "norm" for key in _PACKED.get(m, {}))
    )


def installed_precision(model: nn.Module) -> str:
    """The precision `install` left on `model` (``reference`` when none)."""
    output_layer = _output_layer(model)
    if output_layer is not None and getattr(output_layer, _PRECISION_ATTR, None) == "shortlist":
        return "shortlist"
    for module in model.modules():
        if isinstance(module, nn.Linear):
            return getattr(module, _PRECISION_ATTR, "reference")
    return "reference"


def _packed_weight(module: nn.Linear, precision: str | None = None) -> torch.Tensor:
    """The module's weight in oneDNN's layout (and precision), repacked when the weight changed.

    `precision` is ``fp32`` or ``bf16`` (default: the module's own, ``shortlist`` meaning its
    bf16 copy); the shortlist's row-norm maximum is kept beside the bf16 copy.
    """
    weight = module.weight
    precision = precision or getattr(module, _PRECISION_ATTR)
    if precision == "shortlist":
        precision = "bf16"
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


def _is_lora_linear(module: nn.Module) -> bool:
    """Whether `module` is a peft LoRA wrapper of an `nn.Linear` (without importing peft)."""
    return (
        type(module).__name__ == "Linear"
        and type(module).__module__.startswith("peft.tuners.lora")
        and isinstance(getattr(module, "base_layer", None), nn.Linear)
    )


def _merged_adapters(module: Any, x: torch.Tensor) -> list[tuple[nn.Linear, nn.Linear, float]]:
    """The (A, B, scaling) of each active adapter when `module`'s forward on `x` may multiply
    by one packed ``W + s B A`` (module docstring), else an empty list."""
    base = module.base_layer
    weight = base.weight
    if (
        not _packable(weight, x)
        or module.disable_adapters
        or module.merged
        or getattr(module, "fan_in_fan_out", False)
        or x.reshape(-1, x.shape[-1]).shape[0] < MIN_PACKED_ROWS
    ):
        return []
    adapters = []
    for name in module.active_adapters:
        if name not in module.lora_A:
            continue
        a, b, dropout = module.lora_A[name], module.lora_B[name], module.lora_dropout[name]
        if (
            name in getattr(module, "lora_variant", {})
            or b.bias is not None
            or a.bias is not None
            or (isinstance(dropout, nn.Dropout) and dropout.training and dropout.p > 0)
            or not isinstance(dropout, nn.Dropout | nn.Identity)
        ):
            return []
        adapters.append((a, b, float(module.scaling[name])))
    return adapters


def _merged_packed_weight(
    module: Any, adapters: list[tuple[nn.Linear, nn.Linear, float]], precision: str
) -> torch.Tensor:
    """``W + sum s B A`` of a LoRA layer in oneDNN's layout, repacked when W, A or B change."""
    weight = module.base_layer.weight
    key = (
        precision,
        weight.data_ptr(),
        weight._version,
        tuple(
            (a.weight.data_ptr(), a.weight._version, b.weight.data_ptr(), b.weight._version, s)
            for a, b, s in adapters
        ),
    )
    cached = _PACKED.get(module, {}).get("merged")
    if cached is not None and cached[0] == key:
        return cached[1]
    merged = weight.detach().float().clone()
    for a, b, scaling in adapters:
        merged.addmm_(b.weight.detach().float(), a.weight.detach().float(), alpha=scaling)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    packed = torch.ops.mkldnn._reorder_linear_weight(merged.to(dtype), None)
    _PACKED[module] = {"merged": (key, packed)}
    return packed


def _fast_lora_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
    """peft's LoRA `forward`, through one packed merged weight when inferring on CPU."""
    adapters = [] if args or kwargs else _merged_adapters(self, x)
    if not adapters:
        return type(self).forward(self, x, *args, **kwargs)
    base = self.base_layer
    precision = getattr(base, _PRECISION_ATTR, "fp32")
    precision = "bf16" if precision == "bf16" else "fp32"
    packed = _merged_packed_weight(self, adapters, precision)
    return _packed_product(x, packed, base.bias)


def _packed_product(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None) -> Any:
    """``x @ W.T + bias`` through a packed weight, in the packed dtype, back in `x`'s."""
    rows = x.reshape(-1, x.shape[-1])
    if packed.dtype != rows.dtype:
        rows = rows.to(packed.dtype)
    if bias is not None and bias.dtype != packed.dtype:
        bias = bias.to(packed.dtype)
    out = torch.ops.mkldnn._linear_pointwise(rows.contiguous(), packed, bias, "none", [], "")
    return out.to(x.dtype).reshape(*x.shape[:-1], out.shape[-1])


def _max_row_norm(module: nn.Linear) -> float:
    """Largest Euclidean norm of a row of the module's weight, cached like its packed copies."""
    weight = module.weight
    key = ("norm", weight.data_ptr(), weight._version, tuple(weight.shape))
    cached = _PACKED.setdefault(module, {})
    entry = cached.get("norm")
    if entry is None or entry[0] != key:
        entry = (key, float(weight.detach().float().norm(dim=1).max()))
        cached["norm"] = entry
    return entry[1]


def shortlist_bound(
    x: torch.Tensor, max_row_norm: float, top: torch.Tensor, bottom: torch.Tensor
) -> torch.Tensor:
    """Per row of `x` (n features), a bound on |bf16 logit - float32 logit| (module docstring).

    `top` and `bottom` are each row's largest and smallest bf16 logit (the output's rounding
    is relative to its magnitude), `max_row_norm` the weight's largest row norm. Both float32
    products and the bf16 one accumulate in float32. Non-finite where any input is.
    """
    n = x.shape[-1]
    unit, accumulate = 2.0**-8, n * 2.0**-24 / (1 - n * 2.0**-24)
    c = (2 * unit + unit * unit + 2 * accumulate) * 1.01
    rounding = torch.maximum(top.abs(), bottom.abs()) * (2.0**-8 * 1.01)
    # Plus an absolute 2^-100 for subnormals, which the bf16 kernels flush to zero.
    return c * x.norm(dim=-1) * max_row_norm + rounding + 2.0**-100


def _shortlist_logits(
    self: nn.Linear, rows: torch.Tensor, noise: GumbelNoise | None = None
) -> torch.Tensor | None:
    """Output logits of float32 `rows` that are exact float32 where they can be the row's
    maximum (of ``logits / T + noise`` with `noise`), bf16 elsewhere; None when the shortlist
    does not apply (the caller multiplies in float32 then): a bias, non-finite values, too
    many candidates in a row, or `noise` for another number of rows."""
    if self.bias is not None or (noise is not None and noise.rows != rows.shape[0]):
        return None
    packed = _packed_weight(self, "bf16")
    approx = torch.ops.mkldnn._linear_pointwise(
        rows.to(torch.bfloat16).contiguous(), packed, None, "none", [], ""
    ).float()
    count, vocab = approx.shape
    block = _SEARCH_BLOCK if vocab % _SEARCH_BLOCK == 0 else vocab
    # Maxima of blocks of the vocabulary (of the sampler's scores with `noise`), so that only
    # blocks holding a candidate are scanned (a max reduction runs several times faster than a
    # comparison and its nonzero()).
    target = approx if noise is None else noise.scores(approx)
    blocks = target.view(count, vocab // block, block)
    block_top = blocks.amax(dim=-1)
    target_top = block_top.amax(dim=-1)  # NaN anywhere propagates
    top = target_top if noise is None else approx.amax(dim=-1)
    bottom = approx.amin(dim=-1)
    bound = shortlist_bound(rows, _max_row_norm(self), top, bottom)
    if noise is not None:
        # A logit error of at most `bound` moves a score by at most bound / T, plus the
        # float32 rounding of the division and the sum: relative 2^-24 of each operand (logits
        # / T, noise of at most 16.6 in size, the score), generously covered by 2^-20.
        logit = torch.maximum(top.abs(), bottom.abs()) / noise.temperature
        magnitude = torch.maximum(target_top.abs(), logit) + logit + 20.0
        bound = bound / noise.temperature * 1.01 + magnitude * 2.0**-20
    if not bool(torch.isfinite(bound).all()):
        return None
    threshold = target_top - 2 * bound
    block_row, block_index = (block_top >= threshold[:, None]).nonzero(as_tuple=True)
    if block_row.numel() > MAX_SHORTLIST * count:
        return None
    hits, offset = (blocks[block_row, block_index] >= threshold[block_row, None]).nonzero(
        as_tuple=True
    )
    row, column = block_row[hits], block_index[hits] * block + offset
    if int(torch.bincount(row, minlength=count).max()) > MAX_SHORTLIST:
        return None
    exact = torch.linalg.vecdot(rows[row], self.weight[column])
    approx[row, column] = exact
    return approx


def _packable(weight: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether a product of `x` with `weight` may take a packed kernel: inference mode, CPU,
    a float32 or bfloat16 weight of `x`'s dtype and at least `MIN_PACKED_WEIGHTS` elements."""
    return (
        torch.is_inference_mode_enabled()
        and x.device.type == "cpu"
        and weight.device.type == "cpu"
        and weight.dtype in (torch.float32, torch.bfloat16)
        and x.dtype == weight.dtype
        and x.numel() > 0
        and weight.numel() >= MIN_PACKED_WEIGHTS
    )


def _fast_forward(self: nn.Linear, x: torch.Tensor) -> Any:
    """`nn.Linear.forward`, through the packed weight when inferring on CPU (see the module)."""
    if not _packable(self.weight, x):
        return nn.Linear.forward(self, x)
    rows = x.reshape(-1, x.shape[-1])
    shortlist = getattr(self, _PRECISION_ATTR) == "shortlist"
    noise = _NOISE.get() if shortlist else None
    if shortlist and (_ARGMAX_ONLY.get() or noise is not None) and x.dtype == torch.float32:
        logits = _shortlist_logits(self, rows, noise)
        if logits is not None:
            return logits.reshape(*x.shape[:-1], logits.shape[-1])
    if rows.shape[0] < MIN_PACKED_ROWS:
        return nn.Linear.forward(self, x)
    return _packed_product(x, _packed_weight(self, "fp32" if shortlist else None), self.bias)


__all__ = [
    "DEFAULT_PRECISION",
    "MAX_SHORTLIST",
    "MIN_PACKED_ROWS",
    "MIN_PACKED_WEIGHTS",
    "PRECISIONS",
    "GumbelNoise",
    "argmax_only",
    "available",
    "check_precision",
    "gumbel",
    "install",
    "install_default",
    "installed_precision",
    "is_embedded_model",
    "noise_of",
    "packed_layers",
    "sampling",
    "shortlist_bound",
]
