"""The `human` split: RUN stories mapped onto the bundled Manhattan with the SOURCES.md formula."""

from __future__ import annotations

import pytest

from openvirl.envs.navigation.env import NavigationEnv
from openvirl.envs.navigation.human import GOAL_RADIUS_M, cell_latlon, load_stories, run_dir
from openvirl.envs.navigation.splits import load_route_set
from openvirl.world.geometry import haversine_m


def test_cell_formula_matches_sources() -> None:
    # SOURCES.md: cell (54, 30) of map_1 holds the node where 8th Avenue meets W 33rd Street.
    lat, lon = cell_latlon("map_1", 54, 30)
    assert lat == pytest.approx(40.74847 + 30.5e-4)
    assert lon == pytest.approx(-73.99944 + 54.5e-4)
    assert haversine_m(lat, lon, 40.75150, -73.99398) < 25


def test_run_is_bundled_with_its_licence() -> None:
    readme = (run_dir() / "README.md").read_text()
    assert "Apache License 2.0" in readme and "ODbL" in readme
    stories = load_stories()
    assert len(stories) == 389
    first = next(s for s in stories if s["map"] == "map_1" and s["story"] == 0)
    assert first["sentences"][0].startswith("Start at the corner of 8th and 33rd")


def test_human_routes_follow_the_stories() -> None:
    routes = load_route_set("manhattan", "human")
    assert len(routes) >= 200
    assert {r.meta["run_map"] for r in routes} == {"map_1", "map_3"}  # map_2 is off the extract
    for r in routes:
        goal = r.meta["goal"]
        assert haversine_m(r.goal[0], r.goal[1], goal[0], goal[1]) <= GOAL_RADIUS_M
        assert r.instruction and r.source == "run"


def test_human_preset_plays_the_human_text() -> None:
    env = NavigationEnv(preset="human")
    assert env.config.stop_radius_m == 30.0
    obs, info = env.reset(seed=0, options={"route_id": "run-map1-000"})
    assert "1. Start at the corner of 8th and 33rd west" in obs["prompt"]
    while True:
        _, _, terminated, _, info = env.step(info["expert_answer"])
        if terminated:
            break
    assert info["success"]
