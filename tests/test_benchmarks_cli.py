"""`openvirl bench ...` through typer's CliRunner: tables, run folders, bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from openvirl.cli import app
from world_fixtures import private_cache

runner = CliRunner()


def _invoke(*args: str):
    with private_cache():
        return runner.invoke(app, ["bench", *args])


def test_bench_help():
    result = _invoke("--help")
    assert result.exit_code == 0
    for name in ("vqa", "recognition", "localization", "vln"):
        assert name in result.output


def test_vqa_and_vln_runs(tmp_path):
    result = _invoke(
        "vqa", "--city", "monaco", "--n", "12", "--policy", "random", "--out", str(tmp_path / "vqa")
    )
    assert result.exit_code == 0, result.output
    assert "oracle" in result.output and "random" in result.output
    metrics = json.loads((tmp_path / "vqa" / "metrics.json").read_text())
    assert metrics["policies"]["oracle"]["accuracy"]["value"] == 1.0
    result = _invoke(
        "vln",
        "--city",
        "monaco",
        "--n",
        "2",
        "--mini",
        "1",
        "--policy",
        "oracle",
        "--out",
        str(tmp_path / "vln"),
    )
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "vln" / "config.json").read_text())["kind"] == "benchmark"


def test_bad_input_is_one_error_line(tmp_path):
    result = _invoke(
        "localization",
        "--city",
        "monaco",
        "--polygon",
        "48.85,2.35; 48.86,2.35; 48.86,2.36",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 2 and "outside the map" in result.output
    result = _invoke(
        "vqa", "--policy", "bogus", "--n", "2", "--city", "monaco", "--out", str(tmp_path)
    )
    assert result.exit_code == 2 and "unknown policy kind" in result.output
    result = _invoke("vln", "--split", "medium", "--out", str(tmp_path))
    assert result.exit_code == 2 and "split" in result.output


def test_the_headline_is_the_requested_policy_and_baselines_are_labelled(tmp_path):
    """`bench/*` once held the last policy evaluated (random), whatever was asked for."""
    out = tmp_path / "vqa"
    args = ["vqa", "--city", "monaco", "--n", "12", "--policy", "oracle", "--out", str(out)]
    result = _invoke(*args)
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["headline_policy"] == "oracle" and metrics["baselines"] == ["random"]
    assert metrics["bench/accuracy"] == metrics["policies"]["oracle"]["accuracy"]["value"] == 1.0
    assert metrics["policies"]["random"]["accuracy"]["value"] < 1.0
    assert next(iter(metrics["policies"])) == "oracle"
    report = (out / "report.md").read_text()
    assert "| metric | oracle | random (baseline) |" in report
    assert "random (baseline)" in result.output
