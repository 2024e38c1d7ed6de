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


# --------------------------------------------------------------------- no code through rng
class _RunsCode:
    """Unpickling this calls `pathlib.Path.touch` on a marker file: code execution."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def _bare_checkpoint(tmp_path, model_path):
    folder = save_checkpoint(tmp_path / "ckpt", 3, model=_model(model_path))
    assert (folder / "rng.json").is_file() and not (folder / "rng.pt").exists()
    return folder


def test_rng_state_is_json_and_restores(tmp_path, model_path):
    import json

    folder = _bare_checkpoint(tmp_path, model_path)
    json.loads((folder / "rng.json").read_text())  # plain JSON, nothing to unpickle
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(1)
    np.random.seed(1)
    torch.manual_seed(1)
    load_checkpoint(folder)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_malicious_rng_pickle_is_refused_without_running(tmp_path, model_path):
    from openvirl.training.checkpoint import CheckpointError

    folder = _bare_checkpoint(tmp_path, model_path)
    (folder / "rng.json").unlink()  # an old-style checkpoint: rng.pt only
    marker = tmp_path / "pwned"
    torch.save({"python": _RunsCode(marker)}, folder / "rng.pt")
    with pytest.raises(CheckpointError, match=r"rng\.pt.*refused"):
        load_checkpoint(folder)
    assert not marker.exists()  # the payload never ran
    # The same payload under the new name is refused by the JSON reader, and never unpickled.
    (folder / "rng.pt").rename(folder / "rng.json")
    with pytest.raises(CheckpointError, match=r"rng\.json"):
        load_checkpoint(folder)
    assert not marker.exists()


def test_legacy_numpy_rng_pt_still_loads(tmp_path, model_path):
    from openvirl.training.checkpoint import rng_state

    folder = _bare_checkpoint(tmp_path, model_path)
    (folder / "rng.json").unlink()
    torch.save(rng_state(), folder / "rng.pt")  # what older versions wrote
    expected = (random.random(), np.random.rand(), torch.rand(1))
    load_checkpoint(folder)
    assert (random.random(), np.random.rand(), torch.rand(1)) == expected


def test_train_resume_from_malicious_checkpoint_is_one_line(tmp_path, model_path, monkeypatch):
    import typer

    from openvirl.training import cli
    from openvirl.training.checkpoint import load_checkpoint as load

    folder = _bare_checkpoint(tmp_path, model_path)
    (folder / "rng.json").unlink()
    torch.save({"python": _RunsCode(tmp_path / "pwned")}, folder / "rng.pt")
    monkeypatch.setattr(cli, "_run", lambda algorithm, config: load(folder))
    with pytest.raises(typer.Exit) as info:
        cli.run("ppo", None)
    assert info.value.exit_code == 2
    assert not (tmp_path / "pwned").exists()
