"""`openvirl agent ...` through typer's CliRunner: run folders, JSON output, bad input."""

from __future__ import annotations

import json

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
