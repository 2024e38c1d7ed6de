"""Run logs: a CSV file always; TensorBoard and wandb (offline) only when asked.

``metrics.csv`` is long-format, one row per (step, metric): ``step,name,value,time_s``. New
metric names need no header change, a killed run loses at most its unflushed last row, and
`RunLogger.truncate` drops rows past a resumed checkpoint so the file ends as an
uninterrupted run's would. Names follow CleanRL's namespaces: ``charts/`` (returns, success,
GFLOPs, learning rate, throughput), ``losses/`` (policy, value, entropy, KL, clip fraction).

TensorBoard and wandb are imported inside `RunLogger` only when enabled, like CleanRL's
``if args.track: import wandb``; a missing package raises an `ImportError` naming the extra.
wandb always runs in offline mode (no network); sync later with ``wandb sync``.
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

METRICS_FILE = "metrics.csv"
"""Name of the CSV log inside a run folder."""

CSV_FIELDS = ("step", "name", "value", "time_s")


def hyperparameter_table(config: Mapping[str, Any]) -> str:
    """The run's options as a Markdown table (CleanRL logs the same text to TensorBoard)."""
    rows = "\n".join(f"|{key}|{value}|" for key, value in config.items())
    return f"|param|value|\n|-|-|\n{rows}"


class RunLogger:
    """Log scalar metrics of one run to CSV, and optionally TensorBoard and wandb.

    Example
    -------
    >>> logger = RunLogger(tmp_path, config={"lr": 1e-5})            # doctest: +SKIP
    >>> logger.log(1, {"losses/policy_loss": 0.3, "charts/gflops": 12.5})  # doctest: +SKIP
    >>> logger.close()                                                 # doctest: +SKIP

    Parameters
    ----------
    out_dir
        The run folder; ``metrics.csv``, ``config.json`` and ``versions.json`` go there.
    config
        The run's options, written once to ``config.json`` (and as a table to TensorBoard).
    tensorboard
        Also write TensorBoard event files under ``out_dir/tensorboard``.
    wandb
        Also log to wandb, in offline mode, under ``out_dir/wandb``.
    project, run_name
        wandb project and run name.
    """

    def __init__(
        self,
        out_dir: Path,
        *,
        config: Mapping[str, Any] | None = None,
        tensorboard: bool = False,
        wandb: bool = False,
        project: str = "openvirl",
        run_name: str | None = None,
    ):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.out_dir / METRICS_FILE
        self._t0 = time.time()
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._handle = self.path.open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)
        if new:
            self._writer.writerow(CSV_FIELDS)
            self._handle.flush()
        if config is not None:
            (self.out_dir / "config.json").write_text(
                json.dumps(dict(config), indent=2, default=str) + "\n", encoding="utf-8"
            )
        (self.out_dir / "versions.json").write_text(
            json.dumps(_versions(), indent=2) + "\n", encoding="utf-8"
        )
        self._tb = None
        self._wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as exc:
                raise ImportError(
                    "TensorBoard logging needs the `tensorboard` package: "
                    "`pip install tensorboard` (or drop --tensorboard)."
                ) from exc
            self._tb = SummaryWriter(str(self.out_dir / "tensorboard"))
            if config is not None:
                self._tb.add_text("hyperparameters", hyperparameter_table(config))
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError as exc:
                raise ImportError(
                    "wandb logging needs the `wandb` package: "
                    "`pip install wandb` (or drop --wandb)."
                ) from exc
            os.environ.setdefault("WANDB_MODE", "offline")
            self._wandb = wandb_module.init(
                project=project,
                name=run_name or self.out_dir.name,
                dir=str(self.out_dir),
                config=dict(config or {}),
                mode="offline",
                resume="allow",
            )

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Append one row per metric at `step` (non-finite values are written as ``nan``)."""
        now = round(time.time() - self._t0, 3)
        for name, value in metrics.items():
            number = float(value)
            self._writer.writerow((int(step), name, repr(number), now))
        self._handle.flush()
        if self._tb is not None:
            for name, value in metrics.items():
                if math.isfinite(float(value)):
                    self._tb.add_scalar(name, float(value), int(step))
        if self._wandb is not None:
            self._wandb.log({k: float(v) for k, v in metrics.items()}, step=int(step))

    def truncate(self, step: int) -> None:
        """Drop rows logged after `step` (a resumed run replays those steps)."""
        self._handle.close()
        rows = read_metrics_rows(self.path)
        keep = [r for r in rows if int(r["step"]) <= step]
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_FIELDS)
            for r in keep:
                writer.writerow((r["step"], r["name"], r["value"], r["time_s"]))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._handle = self.path.open("a", encoding="utf-8", newline="")
        self._writer = csv.writer(self._handle)

    def close(self) -> None:
        """Flush and close every sink."""
        if not self._handle.closed:
            self._handle.flush()
            self._handle.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()

    def __enter__(self) -> RunLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main_process_logger(
    out: Path, config: Any, *, main: bool, resume_step: int | None = None
) -> RunLogger | None:
    """The run's `RunLogger` on the main process, None on the others.

    Only one process writes a run folder (``metrics.csv``, ``config.json``, ``config.yaml``),
    or ranks would race on the same files. `resume_step` drops the rows a killed run logged
    after its last checkpoint.
    """
    if not main:
        return None
    from openvirl.training.config import config_to_dict, save_config

    logger = RunLogger(
        out,
        config=config_to_dict(config),
        tensorboard=config.tensorboard,
        wandb=config.wandb,
        run_name=out.name,
    )
    if resume_step is not None:
        logger.truncate(resume_step)
    save_config(config, out / "config.yaml")
    return logger


def _versions() -> dict[str, str | None]:
    """Python and the versions of the packages that shape a training run's results."""
    import sys
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in ("openvirl", "torch", "transformers", "trl", "peft", "accelerate", "datasets",
                 "deepspeed", "vllm"):  # fmt: skip
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def read_metrics_rows(path: Path) -> list[dict[str, str]]:
    """The complete rows of a ``metrics.csv`` (a half-written last line is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    with path.open("r", encoding="utf-8", newline="") as handle:
        text = handle.read()
    if text and not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    rows = list(csv.DictReader(text.splitlines()))
    return [r for r in rows if r.get("time_s") not in (None, "")]


def read_metrics(path: Path) -> dict[str, list[tuple[int, float]]]:
    """``metrics.csv`` as ``{name: [(step, value), ...]}`` in file order."""
    series: dict[str, list[tuple[int, float]]] = {}
    for row in read_metrics_rows(path):
        series.setdefault(row["name"], []).append((int(row["step"]), float(row["value"])))
    return series


__all__ = ["METRICS_FILE", "RunLogger", "hyperparameter_table", "read_metrics", "read_metrics_rows"]
