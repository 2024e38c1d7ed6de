"""Compute accounting: the paper's FLOP formulas and the running counter."""

from __future__ import annotations

import pytest

from openvirl.training.compute import (
    PAPER_LAMBDA,
    FlopCounter,
    count_parameters,
    inference_flops,
    paper_rl_flops,
    paper_sft_flops,
    train_flops,
)


def test_formulas_match_hand_computed_numbers():
    n = 11_000_000_000
    assert train_flops(n, 1_000) == 6.6e13
    assert inference_flops(n, 1_000) == 2.2e13
    assert paper_sft_flops(n, 100, 900) == 6 * n * 1_000
    # X_RL = 6N(D_init + D_RL) + 2N·λ·D_RL with λ = 6 (GeneralPoints).
    assert paper_rl_flops(n, 100, 900, PAPER_LAMBDA["points"]) == pytest.approx(
        6 * n * 1_000 + 2 * n * 6 * 900
    )


def test_counter_adds_tokens_and_round_trips():
    counter = FlopCounter(n_params=1_000, n_trainable=10, offset_flops=5.0)
    counter.add_train(10)
    counter.add_inference(60)
    assert counter.flops == 5.0 + 6 * 1_000 * 10 + 2 * 1_000 * 60
    assert counter.effective_lambda == 6.0
    assert counter.gflops == counter.flops / 1e9
    again = FlopCounter.from_dict(counter.to_dict())
    assert again == counter
    assert set(counter.metrics()) == {
        "charts/gflops",
        "charts/train_tokens",
        "charts/inference_tokens",
    }


def test_count_parameters_total_and_trainable():
    torch = pytest.importorskip("torch")
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 1))
    model[0].weight.requires_grad_(False)
    counts = count_parameters(model)
    assert counts.total == 3 * 4 + 4 + 4 + 1
    assert counts.trainable == counts.total - 12
