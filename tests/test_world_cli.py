"""`openvirl city ...` through typer's CliRunner: tables, --json, and clean errors."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openvirl.cli import app
from world_fixtures import grid_town, private_cache, session_cache

runner = CliRunner()


@pytest.fixture(autouse=True)
def _cache():
    # Use the session's private cache, where the fixtures already built the cities.
    with private_cache(session_cache()):
        yield


def run(*args: str):
    return runner.invoke(app, ["city", *args])


def test_list_json_and_table():
    result = run("list", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    names = [c["name"] for c in data["cities"]]
    assert names[:5] == ["manhattan", "helsinki", "monaco", "tokyo-shibuya", "singapore"]
    assert data["attribution"] == "© OpenStreetMap contributors"
    table = run("list")
    assert table.exit_code == 0 and "tokyo-shibuya" in table.stdout
    assert "OpenStreetMap contributors" in table.stdout


def test_info_prints_the_credit():
    result = run("info", "singapore", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["name"] == "singapore" and data["pois"] > 50
    assert data["attribution"] == "© OpenStreetMap contributors"
    assert data["sources"].endswith("SOURCES.md")
    table = run("info", "singapore")
    assert "© OpenStreetMap contributors" in table.stdout and "ODbL" in table.stdout


def test_search_json_and_table():
    result = run("search", "cafe", "--city", "singapore", "--limit", "3", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert 1 <= len(data["results"]) <= 3
    assert all("cafe" in r["categories"] for r in data["results"])
    assert data["results"][0]["virl"]["rating"] == 0
    table = run("search", "Marina Bay Sands", "--city", "singapore")
    assert table.exit_code == 0 and "Marina Bay Sands" in table.stdout
    empty = run("search", "zzqxjvk", "--city", "singapore", "--json")
    assert empty.exit_code == 0 and json.loads(empty.stdout)["results"] == []


def test_route_json_map_and_geojson(tmp_path):
    png, geo = tmp_path / "r.png", tmp_path / "r.geojson"
    result = run(
        "route",
        "Casino de Monte-Carlo",
        "Musée Océanographique",
        "--city",
        "monaco",
        "--json",
        "--map",
        str(png),
        "--geojson",
        str(geo),
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    route = data["route"]
    assert route["length_m"] > 300 and route["steps"]
    assert route["steps"][-1]["landmarks"][0]["is_destination"]
    assert png.stat().st_size > 10_000
    assert json.loads(geo.read_text(encoding="utf-8"))["type"] == "FeatureCollection"
    table = run("route", "Casino de Monte-Carlo", "Musée Océanographique", "--city", "monaco")
    assert table.exit_code == 0 and "Head" in table.stdout


def test_route_with_stops_is_a_tour():
    result = run(
        "route",
        "Casino de Monte-Carlo",
        "Musée Océanographique",
        "--city",
        "monaco",
        "--via",
        "Hôtel de Paris",
        "--via",
        "Café de Paris",
        "--json",
    )
    assert result.exit_code == 0, result.output
    tour = json.loads(result.stdout)["tour"]
    assert tour["method"] == "exact" and sorted(tour["order"]) == [0, 1]
    assert len(tour["legs"]) == 3


def test_add_then_load_by_name(tmp_path):
    path = grid_town(tmp_path / "town.osm")
    with private_cache(tmp_path / "cache"):
        result = run("add", str(path), "--name", "test-town", "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["added"]["name"] == "test-town"
        listed = json.loads(run("list", "--json").stdout)
        assert "test-town" in [c["name"] for c in listed["cities"]]
        again = run("add", str(path), "--name", "test-town")
        assert again.exit_code == 2 and "already registered" in again.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("info", "atlantis"), "Known cities: helsinki, manhattan"),
        (("search", "cafe", "--city", "monacco"), "Did you mean: `monaco`"),
        (("route", "Nowhere Plaza Zzq", "Casino de Monte-Carlo", "--city", "monaco"), "No place"),
        (("route", "48.85,2.35", "Casino de Monte-Carlo", "--city", "monaco"), "outside the map"),
        (("add", "/nonexistent/file.osm.pbf", "--name", "x"), "file not found"),
    ],
)
def test_errors_are_one_clean_line(args, message):
    result = run(*args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and "Traceback" not in result.output
