"""Navigation SFT export, metrics over evaluation records, and the `openvirl navigate` CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

from typer.testing import CliRunner

from openvirl.cli import app
from openvirl.envs.navigation.actions import parse_answer
from openvirl.envs.navigation.dataset import build_dataset
from openvirl.envs.navigation.metrics import navigation_metrics

runner = CliRunner()


def test_sft_pairs_cover_every_rail_position(tmp_path: Path) -> None:
    manifest = build_dataset(tmp_path, n_train=3, n_test=2, seed=1, progress=False)
    train = [
        json.loads(x) for x in (tmp_path / "train" / "metadata.jsonl").read_text().splitlines()
    ]
    test = [json.loads(x) for x in (tmp_path / "test" / "metadata.jsonl").read_text().splitlines()]
    assert manifest["counts"]["train_routes"] == 3 and len(test) == 2
    by_route: dict[str, list[dict]] = {}
    for row in train:
        by_route.setdefault(row["route_id"], []).append(row)
    for rows in by_route.values():
        assert [r["position"] for r in rows] == list(range(rows[0]["rail_length"]))
        assert rows[-1]["gt_action"] == "stop()"
    for row in train:
        assert parse_answer(row["completion"]).action == row["gt_action"]
        assert (
            row["prompt"]
            .rstrip()
            .endswith('"action": "the action to take, from the action space"}')
        )
    assert not {r["route_id"] for r in train} & {r["route_id"] for r in test}
    again = build_dataset(tmp_path / "again", n_train=3, n_test=2, seed=1, progress=False)
    assert again["sha256"] == manifest["sha256"]


def test_navigation_metrics_count_like_the_reference(tmp_path: Path) -> None:
    from openvirl.evaluation.evaluate import EvalConfig, evaluate

    config = EvalConfig(
        task="nav-l", split="id", policy="oracle", episodes=4, out=tmp_path, report=False
    )
    result = evaluate(config)
    metrics = navigation_metrics(result.records)
    assert metrics["eval/route_success"] == 1.0
    assert metrics["eval/per_step_accuracy"] == 1.0
    assert metrics["eval/landmark_accuracy"] == metrics["eval/intersection_accuracy"] == 1.0
    # the oracle names the landmarks where there are some, and those positions are counted
    assert metrics["eval/landmark_accuracy_at_landmarks"] == 1.0
    n_at = metrics["eval/landmark_accuracy_at_landmarks_n"]
    assert 0 < n_at < metrics["eval/per_step_accuracy_n"]
    # A failed episode adds the reference's extra terminal step to the denominator.
    fail = {
        "success": False,
        "reset_info": {"task": "navigation", "rail_length": 4},
        "steps": [
            {"outcome": "correct", "answer_attempt": 1, "landmark_correct": True},
            {
                "outcome": "wrong_action",
                "answer_attempt": 1,
                "landmark_correct": False,
                "answered_has_landmark": True,
            },
            {"outcome": "wrong_action", "answer_attempt": 2, "landmark_correct": False},
        ],
    }
    m = navigation_metrics([fail])
    assert m["eval/per_step_accuracy"] == 1 / 3
    assert m["eval/per_step_accuracy_reference"] == 1 / 4
    assert m["eval/landmark_accuracy_first"] == 0.5 and m["eval/progress"] == 0.25
    assert m["eval/landmark_accuracy_at_landmarks"] == 0.0  # the one landmark was missed
    assert math.isnan(m["eval/intersection_accuracy"])


def test_cli_routes_convert_and_dataset(tmp_path: Path) -> None:
    out = tmp_path / "sg.jsonl"
    result = runner.invoke(
        app,
        [
            "navigate",
            "routes",
            "--city",
            "singapore",
            "--n",
            "2",
            "--max-length",
            "600",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 2 and (tmp_path / "sg.manifest.json").is_file()
    virl = tmp_path / "route_infos.json"
    result = runner.invoke(app, ["navigate", "convert", str(out), str(virl)])
    assert result.exit_code == 0 and json.loads(virl.read_text())[1] == 2
    back = tmp_path / "back.jsonl"
    result = runner.invoke(
        app, ["navigate", "convert", str(virl), str(back), "--city", "singapore"]
    )
    assert result.exit_code == 0 and len(back.read_text().splitlines()) == 2
    # jsonl -> json -> jsonl is lossless (issue 20): ids, city, start kind, streets, crossings.
    from openvirl.envs.navigation.routes import OPENVIRL_KEY, read_routes

    original = [r.to_dict() for r in read_routes(out)]
    assert [r.to_dict() for r in read_routes(back)] == original
    assert any(m["street"] for r in original for m in r["milestones"])
    # Without our embedded record (a V-IRL-only reader rewrote it), id and city still survive.
    records, n = json.loads(virl.read_text())
    for record in records:
        record.pop(OPENVIRL_KEY)
    virl.write_text(json.dumps([records, n]))
    plain = read_routes(virl)
    assert [r.route_id for r in plain] == [r["route_id"] for r in original]
    assert {r.city for r in plain} == {"singapore"}
    result = runner.invoke(
        app, ["navigate", "dataset", "--out", str(tmp_path / "ds"), "--n-train", "1", "--n", "1"]
    )
    assert result.exit_code == 0 and "SFT pairs" in result.output


def test_cli_errors_are_clean(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([[{"start_place": {"geocode": [1, 2]}}], 1]))
    result = runner.invoke(app, ["navigate", "convert", str(bad), str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "route 0: missing field `route_results.geocode_list`" in result.output


def test_cli_play_in_the_terminal(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["navigate", "play", "--city", "singapore", "--seed", "1"], input="forward\n\n"
    )
    assert result.exit_code == 0, result.output
    assert "First, turn" in result.output and "The answer was" in result.output
