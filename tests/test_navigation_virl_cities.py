"""The opt-in `visual-ood-virl` route set, built from fetched extracts against a local fake
Nominatim + Overpass (tests/fake_osm_server.py); no test touches the network."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from fake_osm_server import FakeOSMServer, monte_carlo_xml
from openvirl.cli import app
from openvirl.envs.navigation import virl_cities
from openvirl.envs.navigation.env import NavigationEnv
from openvirl.envs.navigation.routes import manifest_path
from openvirl.envs.navigation.splits import load_route_set
from openvirl.envs.navigation.virl_cities import (
    SPLIT,
    VLN_MINI_REGIONS,
    Region,
    build_virl_route_set,
    load_virl_route_set,
    route_set_file,
)
from openvirl.world.fetch import FetchOptions

MILAN = (Region("milan", "Brera, Milan", 45.4706, 9.1874),)
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = FakeOSMServer(monte_carlo_xml(str(tmp_path_factory.mktemp("osm")))).start()
    yield srv
    srv.stop()


@pytest.fixture
def iso(tmp_path, monkeypatch, server):
    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENVIRL_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("OPENVIRL_OVERPASS_URL", server.overpass_url)
    monkeypatch.setenv("OPENVIRL_NOMINATIM_URL", server.nominatim_url)
    monkeypatch.delenv("OPENVIRL_FETCH", raising=False)
    server.requests.clear()
    load_route_set.cache_clear()
    yield tmp_path
    load_route_set.cache_clear()


def test_the_nine_vln_mini_regions():
    assert [r.key for r in VLN_MINI_REGIONS] == [
        "milan", "new-delhi", "buenos-aires", "london", "hong-kong", "new-york", "melbourne",
        "lagos", "san-francisco",
    ]  # fmt: skip
    assert route_set_file() != route_set_file(MILAN)


def test_built_from_a_fetched_extract_then_cached(iso, server):
    options = FetchOptions(min_interval_s=0.0)
    routes = build_virl_route_set(regions=MILAN, options=options, progress=False)
    assert len(routes) == 2 and {r.city for r in routes} == {"virl-milan"}
    assert all(r.split == SPLIT and r.meta["region"] == "Brera, Milan" for r in routes)
    assert server.count("/api/interpreter") == 1 and server.count("/search") == 0
    query = server.requests[0]["form"]["data"][0]
    assert "[bbox:45.46" in query and ",9.17" in query  # 600 m around Brera's centre
    manifest = json.loads(manifest_path(route_set_file(MILAN)).read_text())
    assert manifest["extracts"][0]["overpass"] == server.overpass_url
    assert manifest["extracts"][0]["sha256"] and manifest["per_city"] == 2
    again = build_virl_route_set(regions=MILAN, options=options, progress=False)
    assert [r.route_id for r in again] == [r.route_id for r in routes]
    assert server.count("/api/interpreter") == 1  # the cached set, no request
    env = NavigationEnv(routes=routes, order="fixed")
    _, info = env.reset(seed=0, options={"episode_index": 1})
    assert info["city"] == "virl-milan" and info["route_id"] == routes[1].route_id


def test_the_preset_is_opt_in(iso, server, monkeypatch):
    with pytest.raises(ValueError, match="openvirl navigate virl-cities"):
        load_virl_route_set()
    with pytest.raises(ValueError, match="OPENVIRL_FETCH=1"):
        NavigationEnv(preset="visual-ood-virl")
    assert server.requests == []
    monkeypatch.setattr(virl_cities, "VLN_MINI_REGIONS", MILAN)
    monkeypatch.setenv("OPENVIRL_FETCH", "1")
    load_route_set.cache_clear()
    env = NavigationEnv(preset="visual-ood-virl", visual=False)
    assert len(env.routes) == 2 and env.config.order == "fixed"
    assert server.count("/api/interpreter") == 1


def test_cli_builds_the_set(iso, server, monkeypatch):
    monkeypatch.setattr(virl_cities, "VLN_MINI_REGIONS", MILAN)
    result = runner.invoke(app, ["navigate", "virl-cities"])
    assert result.exit_code == 0, result.output
    assert "2 visual-ood-virl routes in 1 cities (virl-milan)" in result.stdout
    assert "OpenStreetMap contributors" in result.stdout
