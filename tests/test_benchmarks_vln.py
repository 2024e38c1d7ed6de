"""VLN: V-IRL-style routes (40-150 m, 1-2 turns), key-point metrics, oracle and random."""

from __future__ import annotations

import pytest

from openvirl.benchmarks.common import DATA_DIR, read_items
from openvirl.benchmarks.vln import CITIES, VLNConfig, build_routes, key_points, run, select
from world_fixtures import private_cache


@pytest.fixture(scope="module")
def routes():
    with private_cache():
        return build_routes(VLNConfig(cities=["monaco"], per_city=3, mini_per_city=1, seed=5))


def test_routes_follow_the_virl_filter(routes):
    assert len(routes) == 3
    for r in routes:
        assert 40 <= r["length_m"] <= 150
        assert 1 <= len(r["milestones"]) - 1 <= 2
        assert r["destination"]["category"]
        assert r["start"]["kind"] == "poi"
    mini = select(routes, VLNConfig(split="mini", cities=["monaco"], per_city=3, mini_per_city=1))
    assert [r["meta"]["vln_index"] for r in mini] == [0]


def test_shipped_routes_cover_every_city():
    items, manifest = read_items(DATA_DIR / "vln-routes.jsonl.gz")
    assert {r["city"] for r in items} == set(CITIES)
    assert manifest["params"]["per_city"] == 10 and len(items) == 50
    for r in items:
        assert 1 <= len(r["milestones"]) - 1 <= 2
        limit = r["meta"].get("relaxed_max_length_m") or 150
        assert r["length_m"] <= limit


def test_key_points_from_records():
    kinds = ["start", "forward", "turn", "forward", "stop"]
    ok = {
        "kinds": kinds,
        "city": "x",
        "success": True,
        "steps": [{"rail_index": i, "attempt": i + 1, "outcome": "correct"} for i in range(5)],
    }
    stuck = {
        "kinds": kinds,
        "city": "x",
        "success": False,
        "steps": [
            {"rail_index": 0, "attempt": 1, "outcome": "correct"},
            {"rail_index": 1, "attempt": 2, "outcome": "correct"},
            {"rail_index": 2, "attempt": 3, "outcome": "wrong_action", "readable": False},
        ],
    }
    m = key_points([ok, stuck])
    assert m["unreadable_rate"] == 1 / 8  # an answer with no action is counted, not hidden
    assert m["success"]["value"] == 0.5 and m["start_reaction"]["value"] == 1.0
    assert m["intersection_arrival"]["value"] == 1.0
    assert m["intersection_reaction"]["value"] == 0.5
    assert m["stop_arrival"]["value"] == 0.5


def test_run_oracle_perfect_random_fails(tmp_path):
    config = VLNConfig(
        split="full",
        cities=["monaco", "helsinki"],
        per_city=3,
        mini_per_city=1,
        seed=5,
        policy="random",
    )
    with private_cache():
        metrics = run(config, out=tmp_path)
    oracle, rand = metrics["policies"]["oracle"], metrics["policies"]["random"]
    for key in (
        "success",
        "start_reaction",
        "intersection_arrival",
        "intersection_reaction",
        "stop_arrival",
    ):
        assert oracle[key]["value"] == 1.0, key
    assert rand["success"]["value"] == 0.0
    assert oracle["unreadable_rate"] == rand["unreadable_rate"] == 0.0
    assert rand["start_reaction"]["value"] <= 0.5  # chance 1 in 10
    assert metrics["items"] == 6 and set(oracle["per_city"]) == {"monaco", "helsinki"}
    assert (tmp_path / "plots" / "per_city.png").is_file()
