"""V-IRL's own route files: every shape loads, routes off the map fail clearly, and the
`--routes FILE` option of `eval`, `bench vln`, `navigate dataset` and `navigate play`."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
from typer.testing import CliRunner

import openvirl  # noqa: F401  (registers the environments)
from openvirl.cli import app
from openvirl.envs.navigation.env import NavigationEnv
from openvirl.envs.navigation.routes import OPENVIRL_KEY, from_virl, read_routes, to_virl
from openvirl.envs.navigation.splits import load_route_set
from openvirl.envs.navigation.virl_io import (
    RouteOutsideCityError,
    check_routes_inside,
    load_route_file,
    virl_records,
)

runner = CliRunner()

# V-IRL's MoMA route (data/tourist/route_infos_ny_moma.json): SoHo, south of our Manhattan
# extract (14th-50th St) and nowhere near Monaco.
SOHO_RECORD = {
    "start_place": {
        "name": "Converse Flagship Store",
        "geocode": [40.7240136, -73.9976748],
        "relocated_geocode": [40.72416229223982, -73.99762612488824],
    },
    "dest_place": {"name": "MoMA Design Store", "geocode": [40.7228345, -73.9980444]},
    "route_results": {
        "geocode_list": [
            [40.72422891501083, -73.99779012634859],
            [40.72302278542454, -73.9988004045286],
            [40.72271488946794, -73.99809813308585],
        ],
        "distance_list": [16, 159, 70],
    },
    "init_heading": 0,
    "milestone_info": (
        '\n{\n"intersection_idx": "1",\n"landmarks": "Prince St is on your front",\n'
        '"to_next_intersection_heading": "298 (northwest)",\n}\n\n'
        '{\n"intersection_idx": "2",\n"landmarks": "Aritzia is on your left front",\n'
        '"to_next_intersection_heading": "212 (southwest)",\n}\n\n'
        '{\n"intersection_idx": "3",\n'
        '"landmarks": "The destination MoMA Design Store is on your left",\n'
        '"to_next_intersection_heading": "120 (southeast)",\n}\n'
    ),
}


@pytest.fixture(scope="module")
def monaco_record() -> dict:
    """A Monaco route of the shipped visual-OOD set, as one V-IRL route record."""
    route = next(r for r in load_route_set("", "visual-ood") if r.city == "monaco")
    record = to_virl(route)
    for key in (OPENVIRL_KEY, "route_id", "city"):  # as V-IRL writes it: none of our keys
        record.pop(key)
    return record


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_every_virl_shape_loads(monaco_record: dict) -> None:
    single = from_virl(monaco_record, city="monaco")
    wrapped = from_virl([[monaco_record], 1], city="monaco")
    bare = from_virl([monaco_record], city="monaco")
    assert len(single) == len(wrapped) == len(bare) == 1
    assert single[0].points() == wrapped[0].points() == bare[0].points()
    assert [m.heading for m in from_virl(SOHO_RECORD)[0].milestones] == [298, 212, 120]
    with pytest.raises(ValueError, match="V-IRL route record"):
        virl_records({"something": 1})


def test_single_record_file_plays(tmp_path: Path, monaco_record: dict) -> None:
    path = write(tmp_path / "route_infos_monaco.json", monaco_record)
    (route,) = read_routes(path, city="monaco")
    assert route.city == "monaco" and route.source == "virl"
    env = NavigationEnv(routes=str(path), city="monaco")
    _, info = env.reset(seed=0)
    assert info["route_id"] == "route_infos_monaco-0000" and info["city"] == "monaco"


@pytest.mark.parametrize("visual", [False, True])
def test_a_route_off_the_map_fails_in_text_and_vision(tmp_path: Path, visual: bool) -> None:
    path = write(tmp_path / "route_infos_ny_moma.json", SOHO_RECORD)
    with pytest.raises(RouteOutsideCityError) as err:
        gym.make("openvirl/Navigation-v0", routes=str(path), city="monaco", visual=visual)
    text = str(err.value)
    assert "outside the map of `monaco`" in text and "(to MoMA Design Store)" in text
    assert "openvirl city fetch --around 40.72416 -73.99763" in text and "\n" not in text
    # Dicts from outside are checked too.
    with pytest.raises(RouteOutsideCityError):
        NavigationEnv(routes=[from_virl(SOHO_RECORD, city="monaco")[0].to_dict()], city="monaco")


def test_check_routes_inside_uses_every_point(monaco_record: dict) -> None:
    (route,) = from_virl(monaco_record, city="monaco")
    check_routes_inside([route])
    route.milestones[-1].lat += 0.05  # the destination moves 5 km north, off the map
    with pytest.raises(RouteOutsideCityError, match="its destination"):
        check_routes_inside([route])


def test_load_route_file_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_route_file(tmp_path / "missing.json")
    with pytest.raises(ValueError, match="holds no route"):
        load_route_file(write(tmp_path / "empty.json", [[], 0]))


def test_navigate_play_takes_a_route_file(tmp_path: Path, monaco_record: dict) -> None:
    path = write(tmp_path / "route_infos_monaco.json", monaco_record)
    result = runner.invoke(
        app, ["navigate", "play", "--routes", str(path), "--city", "monaco"], input="\n"
    )
    assert result.exit_code == 0, result.output
    assert "route_infos_monaco-0000 in monaco" in result.stdout
    assert "reached 0/1 destinations" in result.stdout
    bad = write(tmp_path / "route_infos_ny_moma.json", SOHO_RECORD)
    result = runner.invoke(app, ["navigate", "play", "--routes", str(bad), "--city", "monaco"])
    assert result.exit_code == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: route")


def test_eval_takes_a_route_file(tmp_path: Path, monaco_record: dict) -> None:
    path = write(tmp_path / "routes.json", [[monaco_record, monaco_record], 2])
    out = tmp_path / "eval"
    result = runner.invoke(
        app,
        [
            "eval",
            "--task",
            "nav-l",
            "--split",
            "id",
            "--routes",
            str(path),
            "--city",
            "monaco",
            "--out",
            str(out),
            "--no-report",
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["episodes_planned"] == 2 and metrics["complete"]
    run_config = json.loads((out / "config.json").read_text())
    assert len(run_config["data"]["routes_sha256"]) == 64
    rows = [json.loads(x) for x in (out / "trajectories.jsonl").read_text().splitlines()]
    assert {r["info"]["city"] if "info" in r else r.get("city") for r in rows} <= {"monaco", None}
    assert all(r["success"] for r in rows)  # the oracle walks both
    bad = write(tmp_path / "soho.json", SOHO_RECORD)
    result = runner.invoke(
        app, ["eval", "--task", "nav-l", "--routes", str(bad), "--city", "monaco", "--out",
              str(tmp_path / "bad"), "--no-report", "--no-progress"]
    )  # fmt: skip
    assert result.exit_code == 2 and "outside the map of `monaco`" in result.stderr
    result = runner.invoke(app, ["eval", "--task", "gp-l", "--routes", str(path)])
    assert result.exit_code == 2 and "navigation tasks" in result.stderr


def test_bench_vln_takes_a_route_file(tmp_path: Path, monaco_record: dict) -> None:
    path = write(tmp_path / "route_infos_monaco.json", monaco_record)
    out = tmp_path / "vln"
    result = runner.invoke(
        app,
        ["bench", "vln", "--routes", str(path), "--city", "monaco", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["items"] == 1
    assert metrics["policies"]["oracle"]["success"]["value"] == 1.0


def test_navigate_dataset_takes_route_files(tmp_path: Path, monaco_record: dict) -> None:
    path = write(tmp_path / "route_infos_monaco.json", monaco_record)
    out = tmp_path / "data"
    result = runner.invoke(
        app,
        ["navigate", "dataset", "--out", str(out), "--city", "monaco", "--routes", str(path),
         "--test-routes", str(path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train_routes"] == 1 and manifest["counts"]["test_routes"] == 1
    assert manifest["route_files"]["train"].endswith("route_infos_monaco.json")
    row = json.loads((out / "train" / "metadata.jsonl").read_text().splitlines()[0])
    assert row["route_id"] == "route_infos_monaco-0000" and row["city"] == "monaco"


def test_navigate_convert_reads_a_single_record(tmp_path: Path, monaco_record: dict) -> None:
    path = write(tmp_path / "route_infos_monaco.json", monaco_record)
    out = tmp_path / "routes.jsonl"
    result = runner.invoke(app, ["navigate", "convert", str(path), str(out), "--city", "monaco"])
    assert result.exit_code == 0, result.output
    (route,) = read_routes(out)
    assert route.city == "monaco" and route.points() == from_virl(monaco_record)[0].points()
