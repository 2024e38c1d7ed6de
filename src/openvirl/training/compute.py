"""Training compute in FLOPs, the paper's x axis (spec §5.7, paper App. C.3).

The paper counts

    X_SFT = 6N (D_init + D_SFT)
    X_RL  = 6N (D_init + D_RL) + 2N D_buffer,   D_buffer ≈ λ D_RL

with N the model's parameters and D tokens: 6N per token trained (forward and backward) and
2N per token only run forward (rollout generation). λ = E·d̄_i/d̄_o summarizes how many
forward-only tokens each trained token costs (6 for GeneralPoints, 5.1 for V-IRL in the paper).

openvirl counts the tokens instead of estimating λ: every trainer adds the tokens it trains
on (`add_train`, 6N each) and the tokens it only runs forward (`add_inference`, 2N each:
rollout prompts and generated tokens, PPO's scoring pass, the KL reference pass).
`FlopCounter.effective_lambda` reports the λ this implies, to compare with the paper's.

Which N: the **total** parameter count, as the paper uses (≈11B for Llama-3.2-11B-Vision),
also under LoRA. Forward and backward still run through every frozen weight, so the matmul
count is nearly the same; only the weight-gradient third of the backward pass shrinks. The
trainable count is reported beside it (`ParamCount.trainable`), never used in the formula.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

TRAIN_FLOPS_PER_PARAM_TOKEN = 6
"""FLOPs per parameter per trained token: 2 forward + 4 backward (Kaplan et al. 2020)."""

INFERENCE_FLOPS_PER_PARAM_TOKEN = 2
"""FLOPs per parameter per token run forward only (generation, scoring)."""

PAPER_LAMBDA = {"points": 6.0, "navigation": 5.1}
"""The paper's rollout-to-training token ratio λ per task family (spec §5.7)."""

GFLOP = 1e9
"""FLOPs per GFLOP (the paper's plots are in GFLOPs)."""


@dataclass(frozen=True)
class ParamCount:
    """A model's parameter counts: all of them (the formula's N) and the trainable ones."""

    total: int
    trainable: int


def count_parameters(model: Any) -> ParamCount:
    """Count a model's parameters (a peft model counts its base weights plus adapters).

    Parameters shared between modules (tied embeddings) count once, as `model.parameters()`
    yields them once.
    """
    total = trainable = 0
    for parameter in model.parameters():
        n = parameter.numel()
        total += n
        trainable += n if parameter.requires_grad else 0
    return ParamCount(total=total, trainable=trainable)


def train_flops(n_params: int, tokens: int) -> float:
    """6·N·tokens: compute of training on `tokens` tokens (forward and backward)."""
    return float(TRAIN_FLOPS_PER_PARAM_TOKEN) * n_params * tokens


def inference_flops(n_params: int, tokens: int) -> float:
    """2·N·tokens: compute of running `tokens` tokens forward only."""
    return float(INFERENCE_FLOPS_PER_PARAM_TOKEN) * n_params * tokens


def paper_sft_flops(n_params: int, d_init: int, d_sft: int) -> float:
    """The paper's X_SFT = 6N(D_init + D_SFT)."""
    return train_flops(n_params, d_init + d_sft)


def paper_rl_flops(n_params: int, d_init: int, d_rl: int, lam: float) -> float:
    """The paper's X_RL = 6N(D_init + D_RL) + 2N·λ·D_RL."""
    return train_flops(n_params, d_init + d_rl) + inference_flops(n_params, 1) * lam * d_rl


@dataclass
class FlopCounter:
    """Running token and FLOP counts of one training run (saved with every checkpoint).

    Example
    -------
    >>> counter = FlopCounter(n_params=1_000)
    >>> counter.add_train(10); counter.add_inference(30)
    >>> counter.flops, counter.effective_lambda
    (120000.0, 3.0)
    """

    n_params: int
    """N: total parameters of the model (see the module docstring)."""
    n_trainable: int = 0
    """Trainable parameters (reported, not used in the formula)."""
    train_tokens: int = 0
    """Tokens trained on (forward and backward), D in the 6N·D term."""
    inference_tokens: int = 0
    """Tokens run forward only (rollouts, scoring, reference model), D_buffer."""
    offset_flops: float = 0.0
    """FLOPs spent before this run (e.g. the Init checkpoint's SFT), added to `flops`."""

    def add_train(self, tokens: int) -> None:
        """Count `tokens` trained tokens."""
        self.train_tokens += int(tokens)

    def add_inference(self, tokens: int) -> None:
        """Count `tokens` forward-only tokens."""
        self.inference_tokens += int(tokens)

    @property
    def flops(self) -> float:
        """Total FLOPs: offset + 6N·train_tokens + 2N·inference_tokens."""
        return (
            self.offset_flops
            + train_flops(self.n_params, self.train_tokens)
            + inference_flops(self.n_params, self.inference_tokens)
        )

    @property
    def gflops(self) -> float:
        """`flops` in GFLOPs (the paper's unit)."""
        return self.flops / GFLOP

    @property
    def effective_lambda(self) -> float:
        """Forward-only tokens per trained token, the λ of the paper's formula (NaN if none)."""
        return self.inference_tokens / self.train_tokens if self.train_tokens else float("nan")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able counts plus the derived FLOPs (for checkpoints and logs)."""
        return {**asdict(self), "flops": self.flops, "gflops": self.gflops}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FlopCounter:
        """Rebuild a counter saved with `to_dict` (derived fields are ignored)."""
        keys = ("n_params", "n_trainable", "train_tokens", "inference_tokens", "offset_flops")
        return cls(**{k: data[k] for k in keys if k in data})

    def metrics(self, prefix: str = "charts/") -> dict[str, float]:
        """The counts as log metrics (``charts/gflops``, ``charts/train_tokens`` ...)."""
        return {
            f"{prefix}gflops": self.gflops,
            f"{prefix}train_tokens": float(self.train_tokens),
            f"{prefix}inference_tokens": float(self.inference_tokens),
        }


__all__ = [
    "GFLOP",
    "PAPER_LAMBDA",
    "FlopCounter",
    "ParamCount",
    "count_parameters",
    "inference_flops",
    "paper_rl_flops",
    "paper_sft_flops",
    "train_flops",
]
