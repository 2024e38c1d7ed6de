"""Checkpoints: atomic folders, complete-only discovery, full state round trip; CSV logs."""

from __future__ import annotations

import random

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import numpy as np  # noqa: E402

from openvirl.training.checkpoint import (  # noqa: E402
    MARKER,
    latest_checkpoint,
    list_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from openvirl.training.logging import RunLogger, read_metrics  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


def _model(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path)


def test_round_trip_restores_model_optimizer_rng_and_state(tmp_path, model_path):
    model = _model(model_path)
    head = torch.nn.Linear(32, 1)
    params = [*model.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=1e-2)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    loss = model(torch.tensor([[1, 2, 3]]), labels=torch.tensor([[1, 2, 3]])).loss
    (loss + head(torch.ones(32)).sum()).backward()
    optimizer.step()
    scheduler.step()
    folder = save_checkpoint(
        tmp_path,
        7,
        model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        modules={"value_head": head},
        state={"cursor": 42},
    )
    expected = (random.random(), np.random.rand(), torch.rand(1))

    fresh = _model(model_path)
    fresh_head = torch.nn.Linear(32, 1)
    fresh_opt = torch.optim.AdamW([*fresh.parameters(), *fresh_head.parameters()], lr=1e-2)
    fresh_sched = torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda s: 1.0 / (1 + s))
    state = load_checkpoint(
        folder,
        model=fresh,
        optimizer=fresh_opt,
        scheduler=fresh_sched,
        modules={"value_head": fresh_head},
    )
    assert state["step"] == 7 and state["cursor"] == 42
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert torch.equal(head.weight, fresh_head.weight)
    assert fresh_sched.state_dict()["last_epoch"] == 1
    assert fresh_opt.state_dict()["state"][0]["step"] == optimizer.state_dict()["state"][0]["step"]
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_latest_ignores_half_written_and_prunes(tmp_path, model_path):
    model = _model(model_path)
    for step in (1, 2, 3):
        save_checkpoint(tmp_path, step, model=model, keep_last=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000002", "step-00000003"]
    # A process killed mid-save leaves a temp folder or a folder without the marker.
    (tmp_path / ".tmp-step-00000009-1").mkdir()
    (tmp_path / "step-00000010").mkdir()
    assert latest_checkpoint(tmp_path).name == "step-00000003"
    assert (latest_checkpoint(tmp_path) / MARKER).is_file()
    assert latest_checkpoint(tmp_path / "missing") is None


def test_csv_logger_appends_and_truncates(tmp_path):
    logger = RunLogger(tmp_path, config={"lr": 0.1})
    for step in range(1, 5):
        logger.log(step, {"losses/policy_loss": step * 0.5, "charts/gflops": float(step)})
    logger.truncate(2)
    logger.log(3, {"losses/policy_loss": 9.0})
    logger.close()
    series = read_metrics(tmp_path / "metrics.csv")
    assert series["losses/policy_loss"] == [(1, 0.5), (2, 1.0), (3, 9.0)]
    assert (tmp_path / "config.json").is_file()
    with pytest.raises(ImportError, match=r"tensorboard|wandb"):
        try:
            import tensorboard  # noqa: F401
            import wandb  # noqa: F401
        except ImportError:
            RunLogger(tmp_path / "tb", tensorboard=True, wandb=True)
        else:  # pragma: no cover - both installed
            raise ImportError("tensorboard and wandb installed")
