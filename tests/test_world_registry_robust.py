"""A corrupt `user_cities.json` is never silently overwritten (issue 17): `city add` refuses
with a message naming the file and keeps a copy; good writes keep the previous version."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openvirl.cli import app
from openvirl.world import catalog
from openvirl.world.errors import WorldError
from world_fixtures import grid_town, private_cache

CORRUPT = '{"cities": {"paris": {"files": ["/data/paris.osm.pbf"]}, "lyon": {"fil'


def test_corrupt_registry_is_refused_and_kept(tmp_path):
    town = grid_town(tmp_path / "town.osm")
    with private_cache(tmp_path / "cache"):
        registry = catalog.registry_path()
        registry.parent.mkdir(parents=True, exist_ok=True)
        registry.write_text(CORRUPT)
        with pytest.raises(WorldError, match=r"refusing.*user_cities\.json.*copy is at"):
            catalog.add_city(town, "my-town")
        with pytest.raises(WorldError, match="refusing"):
            catalog.remove_city("paris")
        assert registry.read_text() == CORRUPT  # untouched
        (backup,) = registry.parent.glob("user_cities.json.corrupt-*")
        assert backup.read_text() == CORRUPT
        with pytest.warns(UserWarning, match="ignoring the user city registry"):
            assert catalog.user_cities() == []


def test_city_add_cli_fails_in_one_line(tmp_path):
    town = grid_town(tmp_path / "town.osm")
    with private_cache(tmp_path / "cache"):
        registry = catalog.registry_path()
        registry.parent.mkdir(parents=True, exist_ok=True)
        registry.write_text('{"cities": ["not", "a", "mapping"]}')
        with pytest.warns(UserWarning, match="ignoring the user city registry"):
            result = CliRunner().invoke(app, ["city", "add", str(town), "--name", "my-town"])
        assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
        assert "refusing" in " ".join(result.output.split())
        assert json.loads(registry.read_text()) == {"cities": ["not", "a", "mapping"]}


def test_good_writes_keep_the_previous_version(tmp_path):
    town = grid_town(tmp_path / "town.osm")
    with private_cache(tmp_path / "cache"):
        catalog.add_city(town, "one")
        catalog.add_city(town, "two")
        registry = catalog.registry_path()
        previous = json.loads(registry.with_name("user_cities.json.bak").read_text())
        assert set(previous["cities"]) == {"one"}
        assert set(json.loads(registry.read_text())["cities"]) == {"one", "two"}
