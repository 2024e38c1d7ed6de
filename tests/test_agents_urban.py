"""RX-399 (urban counter) and Imani (urban planner): OSM ground truth, de-dup, heatmaps."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from shapely.geometry import LineString, Point

from openvirl.agents.urban import (
    UrbanCounter,
    UrbanCounterConfig,
    UrbanPlanner,
    UrbanPlannerConfig,
    cluster_detections,
    object_kind,
    street_objects,
)
from openvirl.policies.registry import make_policy
from openvirl.world import OutsideMapError
from openvirl.world.errors import WorldError
from world_fixtures import load_city

# From the Market Square along the Esplanadi park in central Helsinki (benches, bins).
START, END = "Kauppatori", "Stockmann"
KINDS = ["bench", "fire_hydrant", "waste_basket"]


class Scripted:
    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply

    def act(self, requests):
        return [self.reply for _ in requests]


@pytest.fixture(scope="module")
def helsinki():
    return load_city("helsinki")


def test_object_words():
    assert object_kind("trash bin") == "waste_basket"
    assert object_kind("Hydrants") == "fire_hydrant"
    with pytest.raises(WorldError, match="Did you mean"):
        object_kind("benchh")


def test_counter_matches_osm_ground_truth_along_the_route(helsinki, tmp_path):
    config = UrbanCounterConfig(city="helsinki", start=START, end=END, kinds=KINDS)
    result = UrbanCounter(config, city=helsinki).run(out_dir=tmp_path)
    d = result.data
    # Independent ground truth: OSM objects within 20 m of the walked line.
    route = helsinki.route(START, END)
    xs, ys = helsinki.to_xy(*np.array(route.polyline).T)
    line = LineString(list(zip(xs, ys, strict=True)))
    truth = Counter(
        o.kind
        for o in street_objects(helsinki)
        if o.kind in KINDS and line.distance(Point(o.x, o.y)) <= 20.0 + 1e-6
    )
    assert d["counts"] == {k: truth.get(k, 0) for k in KINDS}
    assert d["counts"]["bench"] >= 1 and sum(d["counts"].values()) >= 4
    assert len({o["id"] for o in d["objects"]}) == len(d["objects"])  # de-dup by id
    for kind in KINDS:
        assert (tmp_path / f"heatmap_{kind}.png").stat().st_size > 10_000
    assert result.map_png is not None and result.map_png.is_file()


def test_cluster_detections_merges_repeated_sightings():
    rng = np.random.default_rng(0)
    dets = []
    for x, y in [(0.0, 0.0), (40.0, 0.0)]:  # two benches, each seen from 5 places
        for _ in range(5):
            dets.append({"kind": "bench", "x": x + rng.normal(0, 1.5), "y": y + rng.normal(0, 1.5)})
    dets.append({"kind": "fire_hydrant", "x": 0.5, "y": 0.0})
    clusters = cluster_detections(dets, 8.0)
    assert Counter(c["kind"] for c in clusters) == {"bench": 2, "fire_hydrant": 1}
    assert sorted(c["n"] for c in clusters if c["kind"] == "bench") == [5, 5]


def test_policy_perception_dedups_by_position(helsinki):
    config = UrbanCounterConfig(
        city="helsinki", start=START, end=END, kinds=KINDS, perception="policy", images=False
    )
    d = UrbanCounter(config, make_policy("oracle"), city=helsinki).run().data
    truth = d["ground_truth"]
    assert d["detections"] > sum(d["counts"].values())  # the same objects, seen again and again
    for k in KINDS:
        assert 0.8 * truth[k] - 1 <= d["counts"][k] <= truth[k]
    # A perception policy that talks nonsense counts nothing (every reply falls back to none).
    nothing = UrbanCounter(config, Scripted("I see a nice street."), city=helsinki)
    d = nothing.run().data
    assert sum(d["counts"].values()) == 0 and nothing.survey.log.n_fallbacks > 0
    # A well-formed reply with a made-up kind is rejected too.
    odd = UrbanCounter(
        config,
        Scripted('{"objects": [{"kind": "ufo", "bearing_deg": 1, "distance_m": 3}]}'),
        city=helsinki,
    )
    assert sum(odd.run().data["counts"].values()) == 0


def test_planner_sweeps_a_polygon_and_draws_heatmaps(helsinki, tmp_path):
    centre = helsinki.geocode("Kappeli")
    config = UrbanPlannerConfig(
        city="helsinki", centre=(centre.lat, centre.lon), half_side_m=150, kinds=KINDS
    )
    result = UrbanPlanner(config, city=helsinki).run(out_dir=tmp_path)
    d = result.data
    assert d["points"] > 20
    assert d["counts"]["bench"] >= 10
    for k in KINDS:
        if d["inside_polygon"][k]:
            assert d["coverage"][k] >= 0.8
        assert (tmp_path / d["heatmaps"][k]).is_file()
    assert math.isclose(d["area_m2"], 300 * 300, rel_tol=0.02)


def test_polygon_outside_the_map_is_a_clear_error(helsinki):
    paris = [(48.85, 2.35), (48.86, 2.35), (48.86, 2.36)]
    with pytest.raises(OutsideMapError, match="outside the map of `helsinki`"):
        UrbanPlanner(UrbanPlannerConfig(city="helsinki", polygon=paris), city=helsinki).run()
    with pytest.raises(WorldError, match="at least 3"):
        UrbanPlanner(
            UrbanPlannerConfig(city="helsinki", polygon=[(60.17, 24.94)] * 2), city=helsinki
        ).run()
