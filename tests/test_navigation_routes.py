"""Route datasets: generation, area split, JSONL + manifest, V-IRL import/export, bad input."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from openvirl.envs.navigation.rail import synthesize_instruction
from openvirl.envs.navigation.routes import (
    GenerationConfig,
    NavRoute,
    RouteFormatError,
    RouteGenerationError,
    area_cell,
    cell_split,
    from_virl,
    generate_routes,
    manifest_path,
    parse_milestone_info,
    read_routes,
    sha256_file,
    to_virl,
    write_routes,
    write_virl,
)
from openvirl.envs.navigation.splits import PRESET_DIR, load_route_set
from openvirl.world.geometry import heading_change_deg

SMALL = GenerationConfig(min_length_m=150, max_length_m=600, max_turns=3)


@pytest.fixture(scope="module")
def singapore():
    from openvirl.world import City

    return City.load("singapore")


@pytest.fixture(scope="module")
def routes(singapore) -> list[NavRoute]:
    return generate_routes(singapore, 5, seed=3, config=SMALL)


def test_generated_routes_meet_the_spec(singapore, routes: list[NavRoute]) -> None:
    from openvirl.world.categories import VIRL_TYPES_20

    assert len({r.route_id for r in routes}) == 5
    for r in routes:
        assert SMALL.min_length_m <= r.length_m <= SMALL.max_length_m
        assert 1 <= r.n_turns <= SMALL.max_turns
        assert r.destination.category in VIRL_TYPES_20 or r.destination.place_id
        assert r.start.kind in ("poi", "intersection")
        assert all(m.intersection for m in r.milestones[:-1])
        assert r.milestones[-1].landmark.startswith("The destination ")
        for a, b in zip(r.milestones, r.milestones[1:], strict=False):
            d = abs(heading_change_deg(a.heading, b.heading))
            assert min(d, abs(d - 45), 180 - d) >= 3  # no word depends on rounding


def test_generation_is_deterministic_per_seed(singapore, routes: list[NavRoute]) -> None:
    again = generate_routes(singapore, 5, seed=3, config=SMALL)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in routes]
    other = generate_routes(singapore, 5, seed=4, config=SMALL)
    assert [r.route_id for r in other] != [r.route_id for r in routes]


def test_jsonl_round_trip_with_manifest(routes: list[NavRoute], tmp_path: Path) -> None:
    path = tmp_path / "routes.jsonl.gz"
    manifest_file = write_routes(routes, path, manifest={"seed": 3})
    assert manifest_file == manifest_path(path) == tmp_path / "routes.manifest.json"
    manifest = json.loads(manifest_file.read_text())
    assert manifest["sha256"]["routes.jsonl.gz"] == sha256_file(path)
    assert manifest["counts"]["routes"] == 5 and manifest["seed"] == 3
    back = read_routes(path)
    assert [r.to_dict() for r in back] == [r.to_dict() for r in routes]
    # Same routes, same bytes: the manifest hash is reproducible.
    write_routes(routes, tmp_path / "again.jsonl.gz")
    assert sha256_file(tmp_path / "again.jsonl.gz") == sha256_file(path)


def test_virl_export_import_round_trip(routes: list[NavRoute], tmp_path: Path) -> None:
    path = write_virl(routes, tmp_path / "route_infos.json")
    data = json.loads(path.read_text())
    assert isinstance(data, list) and data[1] == len(routes)
    record = data[0][0]
    assert {"start_place", "dest_place", "route_results", "milestone_info", "init_heading"} <= set(
        record
    )
    assert record["instruction"].startswith("1. First, turn")
    back = read_routes(path, city="singapore")
    for a, b in zip(routes, back, strict=True):
        assert [(m.heading, m.landmark) for m in a.milestones] == [
            (m.heading, m.landmark) for m in b.milestones
        ]
        assert [(round(m.lat, 6), round(m.lon, 6)) for m in a.milestones] == [
            (round(m.lat, 6), round(m.lon, 6)) for m in b.milestones
        ]
        assert synthesize_instruction(a, 90) == synthesize_instruction(b, 90)
        # Lossless (issue 20): our own record travels inside the V-IRL one.
        assert b.to_dict() == a.to_dict()
    # A record with the V-IRL fields only is read from those.
    for record in data[0]:
        del record["openvirl_route"]
    path.write_text(json.dumps(data))
    for a, b in zip(routes, read_routes(path, city="singapore"), strict=True):
        assert b.source == "virl" and b.init_heading is None and b.route_id == a.route_id
        assert [m.heading for m in a.milestones] == [m.heading for m in b.milestones]


def test_reads_the_reference_milestone_format() -> None:
    # The MoMA route of spec §3.3, as V-IRL stores it.
    info = "\n".join(
        [
            "{",
            '    "intersection_idx": 1,',
            '    "landmarks": "Prince St is on your front",',
            '    "to_next_intersection_heading": "298 (northwest)",',
            "}",
            "{",
            '    "intersection_idx": 2,',
            '    "landmarks": "Aritzia is on your left front",',
            '    "to_next_intersection_heading": "212 (southwest)",',
            "}",
            "{",
            '    "landmarks": "The destination MoMA Design Store is on your left",',
            '    "to_next_intersection_heading": "120 (southeast)",',
            "}",
        ]
    )
    assert len(parse_milestone_info(info)) == 3
    record = {
        "start_place": {"name": "Converse", "relocated_geocode": [40.7243, -73.9975]},
        "dest_place": {"name": "MoMA Design Store", "geocode": [40.7236, -73.9989]},
        "init_heading": 0,
        "route_results": {
            "geocode_list": [[40.7244, -73.9977], [40.7233, -73.9986], [40.7236, -73.9989]]
        },
        "milestone_info": info,
    }
    (route,) = from_virl([[record], 1], city="manhattan")
    assert [m.heading for m in route.milestones] == [298, 212, 120]
    assert route.milestones[1].landmark_name == "Aritzia"
    assert route.milestones[1].landmark_relation == "left front"
    assert synthesize_instruction(route, 303) == [
        "First, turn slightly left, still facing northwest.",
        "Move forward until you reach the next intersection, where Prince St is ahead of you.",
        "Turn left to face southwest.",
        "Move forward until you reach the next intersection, where Aritzia is ahead on your left.",
        "Turn left to face southeast.",
        "Move forward until you reach the destination, where the destination MoMA Design Store "
        "is on your left.",
    ]
    assert to_virl(route)["init_heading"] == 0


@pytest.mark.parametrize(
    ("drop", "field"),
    [
        ("milestone_info", "milestone_info"),
        ("route_results", "route_results.geocode_list"),
        ("start_place", "start_place"),
    ],
)
def test_missing_virl_field_names_route_and_field(drop: str, field: str) -> None:
    record = {
        "start_place": {"name": "A", "geocode": [1.28, 103.85]},
        "dest_place": {"name": "Cafe X"},
        "route_results": {"geocode_list": [[1.281, 103.851]]},
        "milestone_info": '{\n"to_next_intersection_heading": "10 (north)",\n}',
    }
    del record[drop]
    with pytest.raises(RouteFormatError, match=rf"route 0 \(Cafe X\): missing field `{field}`"):
        from_virl([[record], 1])


def test_missing_jsonl_field_names_route_and_field(routes: list[NavRoute], tmp_path: Path) -> None:
    data = routes[0].to_dict()
    del data["milestones"][1]["heading"]
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(data) + "\n")
    with pytest.raises(
        RouteFormatError,
        match=rf"route '{routes[0].route_id}': field `milestones\[1\]`: "
        "missing field `heading`",
    ):
        read_routes(path)


def test_city_with_too_few_pois_is_a_clear_error(tmp_path: Path) -> None:
    from openvirl.world import City

    nodes, ways = [], []
    for i in range(4):  # a 4 x 4 grid of named streets, 300 m a side, no POI at all
        for j in range(4):
            nodes.append(
                f'<node id="{1 + i * 4 + j}" lat="{1.30 + i * 0.001}" lon="{103.80 + j * 0.001}"/>'
            )
    for i in range(8):  # ways in id order (osmium insists): 4 rows, then 4 columns
        a, b = (i, None) if i < 4 else (None, i - 4)
        ids = [1 + a * 4 + j for j in range(4)] if b is None else [1 + j * 4 + b for j in range(4)]
        refs = "".join(f'<nd ref="{n}"/>' for n in ids)
        ways.append(
            f'<way id="{100 + i}">{refs}<tag k="highway" v="residential"/>'
            f'<tag k="name" v="Street {i}"/></way>'
        )
    osm = tmp_path / "empty_town.osm"
    osm.write_text('<?xml version="1.0"?><osm version="0.6">' + "".join(nodes + ways) + "</osm>")
    city = City.load(osm, cache=False)
    with pytest.raises(RouteGenerationError, match="has 0 named POIs of the V-IRL place types"):
        generate_routes(city, 1)


def test_impossible_constraints_report_the_reasons(singapore) -> None:
    config = GenerationConfig(min_length_m=150, max_length_m=160, max_tries=5)
    with pytest.raises(RouteGenerationError, match=r"Rejections: .*"):
        generate_routes(singapore, 3, config=config)
    with pytest.raises(ValueError, match="`min_length_m`"):
        GenerationConfig(min_length_m=500, max_length_m=100).validate()


def test_shipped_splits_are_disjoint_by_route_and_area() -> None:
    train, test = load_route_set("manhattan", "train"), load_route_set("manhattan", "test")
    assert len(train) == 1000 and len(test) == 120
    assert not {r.route_id for r in train} & {r.route_id for r in test}
    manifest = json.loads(manifest_path(PRESET_DIR / "manhattan-test.jsonl.gz").read_text())
    assert manifest["sha256"]["manhattan-test.jsonl.gz"] == sha256_file(
        PRESET_DIR / "manhattan-test.jsonl.gz"
    )
    rule = manifest["split_rule"]
    for side, routes in (("train", train), ("test", test)):
        for r in routes:
            for end in (r.start, r.destination):
                lat, lon = end.place_lat, end.place_lon
                cell = area_cell(lat, lon, rule["cell_deg"])  # type: ignore[arg-type]
                assert cell_split("manhattan", cell, rule["test_percent"]) == side


def test_shipped_files_are_gzip_jsonl() -> None:
    for name in ("manhattan-train", "manhattan-test", "visual-ood", "human"):
        with gzip.open(PRESET_DIR / f"{name}.jsonl.gz", "rt") as handle:
            assert json.loads(handle.readline())["route_id"]
