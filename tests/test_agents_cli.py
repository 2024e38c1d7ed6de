"""`openvirl agent ...` through typer's CliRunner: run folders, JSON output, bad input."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openvirl.cli import app
from world_fixtures import private_cache

runner = CliRunner()


def _invoke(*args: str):
    with private_cache():
        return runner.invoke(app, ["agent", *args])


def test_agent_help_lists_every_agent():
    result = _invoke("--help")
    assert result.exit_code == 0
    for name in (
        "route-optimizer",
        "place-recommender",
        "estate",
        "urban-counter",
        "urban-planner",
        "explorer",
        "direction-giver",
        "tourist",
        "concierge",
    ):
        assert name in result.output


def test_route_optimizer_writes_a_run_folder(tmp_path):
    out = tmp_path / "peng"
    result = _invoke(
        "route-optimizer",
        "Bryant Park",
        "Macy's",
        "Grand Central Terminal",
        "--start",
        "Empire State Building",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert "Best order" in result.output
    for name in ("config.json", "result.json", "metrics.json", "report.md", "map.png"):
        assert (out / name).is_file()


def test_persona_alias_and_json(tmp_path):
    result = _invoke(
        "ling",
        "--city",
        "monaco",
        "--start",
        "Casino de Monte-Carlo",
        "--question",
        "Where is the nearest pharmacy?",
        "--policy",
        "oracle",
        "--out",
        str(tmp_path / "ling"),
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["success"] is True and data["agent"] == "tourist"


def test_bad_input_is_one_error_line(tmp_path):
    result = _invoke("place-recommender", "--start", "Hogwarts Castle", "--out", str(tmp_path))
    assert result.exit_code == 2
    assert "Did you mean" in result.output
    result = _invoke(
        "urban-planner",
        "--city",
        "monaco",
        "--polygon",
        "48.85,2.35; 48.86,2.35; 48.86,2.36",
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 2 and "outside the map" in result.output
    result = _invoke("tourist", "--policy", "nonsense-policy", "--out", str(tmp_path))
    assert result.exit_code == 2 and "unknown policy kind" in result.output


def test_a_model_whose_answers_all_fail_is_not_credited_and_strict_fails(tmp_path):
    """`--policy hf:...` with unusable answers once printed "policy X" over the baseline's
    ratings; now the terminal and report say the baseline answered, and --strict fails."""
    pytest.importorskip("transformers")
    from tiny_models import tiny_causal_lm

    model = tiny_causal_lm(tmp_path / "models")
    spec = f"hf:{model}?max_new_tokens=4"
    out = tmp_path / "aria"
    args = ["place-recommender", "--start", "Bryant Park", "--radius", "150", "--top", "3"]
    result = _invoke(*args, "--policy", spec, "--out", str(out))
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["llm/calls"] > 0 and metrics["llm/fallbacks"] == metrics["llm/calls"]
    assert metrics["llm/answered_by"] == "baseline"
    assert "warning: None of the" in result.output and "baseline" in result.output
    report = (out / "report.md").read_text()
    assert "answered by: baseline" in report and "every result here is the" in report
    strict = _invoke(*args, "--policy", spec, "--out", str(tmp_path / "strict"), "--strict")
    assert strict.exit_code == 2 and "error: policy" in strict.output
    assert "no usable answer" in strict.output and "Traceback" not in strict.output
