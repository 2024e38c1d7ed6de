"""Place localization: OSM ground truth around sweep points, bearing matching, AR10/AR20."""

from __future__ import annotations

import json

import pytest

from openvirl.benchmarks.localization import (
    LocalizationConfig,
    build_items,
    ground_truth,
    parse_detections,
    run,
    score,
)
from openvirl.world import OutsideMapError
from world_fixtures import private_cache

CONFIG = dict(city="helsinki", centre="Kappeli", half_side_m=70.0)


@pytest.fixture(scope="module")
def items():
    with private_cache():
        return build_items(LocalizationConfig(**CONFIG))


def test_views_cover_every_ground_truth_place(items):
    assert len(items) % 4 == 0 and len(items) >= 40
    truth = ground_truth(items)
    assert len(truth) >= 5
    for item in items:
        for t in item["truth"]:
            assert t["distance_m"] <= 25.0
            off = abs((t["bearing_deg"] - item["heading"] + 180) % 360 - 180)
            assert off <= 45.0 + 1e-6


def test_matching_needs_type_and_bearing(items):
    config = LocalizationConfig(**CONFIG)
    view = next(i for i in items if i["truth"])
    place = view["truth"][0]
    right = json.dumps(
        {"places": [{"type": place["types"][0], "bearing_deg": place["bearing_deg"] + 5}]}
    )
    wrong_type = json.dumps({"places": [{"type": "zoo", "bearing_deg": place["bearing_deg"]}]})
    far = json.dumps(
        {"places": [{"type": place["types"][0], "bearing_deg": place["bearing_deg"] + 40}]}
    )
    for reply, hit in ((right, True), (wrong_type, False), (far, False)):
        m = score([view], [reply], config)["metrics"]
        assert (m["recall"]["value"] > 0) == hit
    assert parse_detections("nothing here") == []


def test_run_oracle_perfect_random_low(tmp_path):
    with private_cache():
        metrics = run(LocalizationConfig(**CONFIG, policy="random"), out=tmp_path)
    oracle, rand = metrics["policies"]["oracle"], metrics["policies"]["random"]
    assert oracle["ar20"] == 1.0 and oracle["ar10"] == 1.0 and oracle["precision"]["value"] == 1
    assert rand["recall"]["value"] <= 0.3
    assert oracle["types_present"] >= 2


def test_polygon_outside_the_map():
    with private_cache(), pytest.raises(OutsideMapError, match="outside the map"):
        run(
            LocalizationConfig(
                city="helsinki", polygon=[(48.85, 2.35), (48.86, 2.35), (48.86, 2.36)]
            )
        )


def test_unreadable_answers_are_counted_not_read_as_seeing_nothing(items):
    config = LocalizationConfig(**CONFIG)
    views = items[:4]
    replies = ["I cannot tell", '{"places": []}', "```json\n{oops", '{"places": []}']
    result = score(views, replies, config)
    assert result["metrics"]["unreadable_rate"] == 0.5
    outcomes = [r["outcome"] for r in result["records"]]
    assert outcomes[0] == outcomes[2] == "unreadable" and "unreadable" not in outcomes[1::2]
