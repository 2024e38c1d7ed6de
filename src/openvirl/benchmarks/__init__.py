"""V-IRL's benchmarks on the offline platform: place localization, recognition, VQA, navigation.

>>> from openvirl.benchmarks.vqa import VQAConfig, run
>>> metrics = run(VQAConfig(city="monaco", n=20, policy="random"))   # doctest: +SKIP

Each benchmark module has a config dataclass, a deterministic data builder (the default sets
ship with a manifest in ``benchmarks/data``) and a ``run(config, out=...)`` that scores the
model policy beside the oracle and random baselines and writes a run folder (config.json,
metrics.json, results.jsonl, report.md/html, plots) the viewer opens. ``openvirl bench NAME``
runs them from the command line.
"""

from __future__ import annotations

BENCHMARKS = ("localization", "recognition", "vqa", "vln")
"""The benchmark names (`openvirl bench NAME`)."""

__all__ = ["BENCHMARKS"]
