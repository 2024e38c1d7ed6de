"""V-IRL's YAML task configs (tools/cfgs/...) through `openvirl agent <name> --config FILE`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openvirl.agents.virl_config import FIELDS, map_city, options_from_yaml
from openvirl.cli import app
from world_fixtures import private_cache

runner = CliRunner()

# V-IRL's peng.yaml, with its layout and its unused fields, moved to midtown places (the
# bundled extract does not reach NYU).
PENG_YAML = """\
_BASE_CONFIG_: cfgs/base_configs/default.yaml

TASK: RouteOptimizer
SAVE_INTERVAL: 1

AGENT:
  NAME: peng
  CITY: New York
  START_POSITION: Empire State Building
  BACKGROUND: "Originally from Chengdu, Sichuan, Peng is a student at PKU."
  INTENTION: "Peng needs to visit three locations around the city"

PIPELINE:
  NAVIGATION:
    NAME: PointNavigator
    ROUTE_MODE: bicycling
    POLYLINE: False
    STOP_RADIUS: 5
    WAY_POINTS: None
    WAY_POINTS_LANGUAGE: "I need to go to three places to submit my documents: Grand Central
      Terminal, Bryant Park and Macy's."
    WAY_POINT_PARSE_TEMPLATE: NAVIGATION_LANGUAGE_TO_WAYPOINT_LIST
    MAX_GO_BACK: 3
    MODEL: gpt-4-1106-preview
    OPTIMIZED: True
    STOPOVER: True
"""

VIVEK_YAML = """\
_BASE_CONFIG_: cfgs/base_configs/default.yaml
TASK: EstateRecommender
AGENT:
  NAME: Vivek
  CITY: New York
  START_POSITION: New York University
PIPELINE:
  FIND_ESTATE_CANDIDATES:
    QUERY_API: True
    QUERY_MODE: rent
    ESTATE_INFO: ../data/estate/ny_rent.json
    PARAMS:
      city: New York
      zipCode: 11101
      latitude: None
    MIN_PRICE: 1000
    MAX_PRICE: 3000
  NEARBY_INFO:
    SEARCH:
      RADIUS: 200
      DEDUPLICATE: True
TASK_INFO:
  AGENT:
    NAME: Peng
    INTENTION: "Peng hopes the house can located near supermarkets. It's also important for
      him to have bus stations or subway stations nearby. He frequently visits the gym."
"""

LOCAL_YAML = """\
TASK: Local
INIT_HEADING: 90
AGENT:
  NAME: Local1
  CITY: New York
  START_POSITION: [ 40.7484, -73.9857 ]
PIPELINE:
  QUESTION_TO_PLACE:
    RADIUS: 2000
TASK_INFO:
  QUESTION: "Where's a good place to buy some gifts for my friends?"
"""


def _invoke(*args: str):
    with private_cache():
        return runner.invoke(app, ["agent", *args])


def test_peng_config_runs_the_route_optimizer(tmp_path: Path) -> None:
    cfg = tmp_path / "peng.yaml"
    cfg.write_text(PENG_YAML)
    options, sources = options_from_yaml(cfg, "route_optimizer")
    assert options["city"] == "New York" and options["start"] == "Empire State Building"
    assert options["sentence"].startswith("I need to go to three places")
    assert options["round_trip"] is True and "stops" not in options
    assert sources["sentence"] == "PIPELINE.NAVIGATION.WAY_POINTS_LANGUAGE"
    result = _invoke("peng", "--config", str(cfg), "--out", str(tmp_path / "run"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["city"] == "manhattan" and data["start"] == "Empire State Building"
    assert data["stops"] == ["Grand Central Terminal", "Bryant Park", "Macy's"]
    assert "from peng.yaml: city (AGENT.CITY)" in result.stderr
    # A command-line option wins over the file.
    result = _invoke("peng", "--config", str(cfg), "--start", "Bryant Park", "--one-way", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["start"] == "Bryant Park" and data["round_trip"] is False


def test_vivek_config_reads_its_estate_json(tmp_path: Path) -> None:
    tools = tmp_path / "tools"
    (tools / "cfgs" / "vivek").mkdir(parents=True)
    (tmp_path / "data" / "estate").mkdir(parents=True)
    listings = [
        {"id": "a", "formattedAddress": "A", "price": 1986, "bedrooms": 1,
         "latitude": 40.7592, "longitude": -73.9937},
        {"id": "queens", "formattedAddress": "Q", "price": 2000, "bedrooms": 1,
         "latitude": 40.747871, "longitude": -73.943733},
    ]  # fmt: skip
    (tmp_path / "data" / "estate" / "ny_rent.json").write_text(json.dumps(listings))
    cfg = tools / "cfgs" / "vivek" / "vivek.yaml"
    cfg.write_text(VIVEK_YAML)
    options, _ = options_from_yaml(cfg, "estate")
    assert options["min_rent"] == 1000.0 and options["radius_m"] == 200.0
    assert options["homes"].name == "ny_rent.json" and "supermarkets" in options["requirements"]
    result = _invoke("vivek", "--config", str(cfg), "--out", str(tmp_path / "run"), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["skipped_outside"] == ["queens"] and [r["id"] for r in data["ranked"]] == ["a"]
    assert data["radius_m"] == 200.0 and "supermarket" in data["types"]
    assert "warning: 1 listing(s) lie outside the map of `manhattan`" in result.stderr


def test_local_config_point_and_heading(tmp_path: Path) -> None:
    cfg = tmp_path / "local.yaml"
    cfg.write_text(LOCAL_YAML)
    options, _ = options_from_yaml(cfg, "direction_giver")
    assert options == {
        "city": "New York",
        "start": "40.7484,-73.9857",
        "question": "Where's a good place to buy some gifts for my friends?",
        "heading": 90,
    }


def test_wrong_agent_unknown_city_and_bad_files_are_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "peng.yaml"
    cfg.write_text(PENG_YAML)
    result = _invoke("vivek", "--config", str(cfg))
    assert result.exit_code == 2 and "`RouteOptimizer` config" in result.stderr
    hk = tmp_path / "hiro.yaml"
    hk.write_text('TASK: IntentionalExplorer\nAGENT:\n  CITY: "Hong Kong"\n')
    result = _invoke("hiro", "--config", str(hk))
    assert result.exit_code == 2
    assert 'openvirl city fetch "Hong Kong"' in result.stderr
    assert len([x for x in result.stderr.splitlines() if x.strip()]) == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("TASK: [unclosed\n")
    with pytest.raises(ValueError, match="not YAML"):
        options_from_yaml(bad, "route_optimizer")
    bad.write_text("!!python/object/apply:os.system ['echo hi']\n")
    with pytest.raises(ValueError, match="not YAML"):
        options_from_yaml(bad, "route_optimizer")


def test_rx399_labels_and_city_names(tmp_path: Path) -> None:
    cfg = tmp_path / "rx399.yaml"
    cfg.write_text(
        "TASK: RobotRX399\nAGENT:\n  CITY: New York\n  START_POSITION: [40.7333307,-74.00249]\n"
        "PIPELINE:\n  NAVIGATION:\n    END_POSITION: [40.7323, -74.0016]\n"
        "  CHECK_SURROUNDING:\n    CARED_LABELS: ['trash bin', 'hydrant']\n"
    )
    options, _ = options_from_yaml(cfg, "urban_counter")
    assert options["kind"] == ["waste_basket", "fire_hydrant"]
    assert options["end"] == "40.7323,-74.0016"
    assert map_city("New York") == "manhattan" and map_city("Monaco") == "monaco"
    assert set(FIELDS) >= {"route_optimizer", "estate", "direction_giver", "tourist"}
