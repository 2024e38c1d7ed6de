"""Reading run folders for the viewer: every state a folder can be in, never an exception."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import viewer_data
from openvirl.viewer.compare import compare_rows, difference_interval
from openvirl.viewer.episodes import (
    episode_summary,
    expected_action,
    facets,
    filter_episodes,
    nav_track,
    steps_view,
)
from openvirl.viewer.runs import RunStore, detect_kind, load_run, read_json, read_jsonl


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return viewer_data.shared_runs(tmp_path_factory)


def test_eval_run_is_read_with_its_metrics_plots_and_report(runs):
    run = load_run(runs["oracle"])
    assert run.kind == "eval" and run.ok
    assert (run.task, run.split, run.policy) == ("gp-l", "id", "oracle")
    assert run.title == "gp-l/id · oracle"
    assert run.metrics["eval/success"] == 1.0
    assert run.complete is True and run.episodes_planned == 8
    assert run.problems == []
    assert "plots/success.png" in run.plots
    assert run.report == "report.html"
    assert run.headline()[0] == "eval/success"


def test_missing_and_empty_folders_explain_themselves(runs, tmp_path):
    missing = load_run(runs["missing"])
    assert missing.kind == "missing" and not missing.ok
    assert "does not exist" in missing.problems[0]
    empty = load_run(runs["empty"])
    assert empty.kind == "empty" and not empty.ok
    assert "has not started" in empty.problems[0]


def test_half_written_run_recomputes_metrics_and_never_repairs_the_file(runs):
    path = runs["half"] / "trajectories.jsonl"
    before = path.read_bytes()
    run = load_run(runs["half"])
    assert run.kind == "eval"
    assert run.metrics_from_episodes
    assert run.metrics["eval/episodes"] == 7  # the eighth line is cut in half
    assert run.complete is False
    text = " ".join(run.problems)
    assert "metrics.json is missing" in text and "partial run: 7 of 8" in text
    episodes = read_jsonl(path)
    assert len(episodes.records) == 7
    assert any("half-written" in p for p in episodes.problems)
    assert path.read_bytes() == before  # the viewer only reads


def test_garbage_lines_duplicates_and_unknown_fields_are_tolerated(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    good = {"index": 0, "success": True, "steps": [], "brand_new_field": {"x": [1, 2]}}
    lines = [
        json.dumps(good),
        "not json at all",
        json.dumps([1, 2, 3]),
        json.dumps({**good, "success": False}),  # a repeated index: first kept
        json.dumps({"no_index": True}),  # gets its line number
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    episodes = read_jsonl(path)
    assert [r["index"] for r in episodes.records] == [0, 4]
    assert episodes.records[0]["success"] is True
    assert episodes.records[0]["brand_new_field"] == {"x": [1, 2]}
    assert any("not JSON" in p for p in episodes.problems)
    assert any("repeated" in p for p in episodes.problems)


def test_broken_json_files_become_problems(tmp_path):
    (tmp_path / "config.json").write_text('{"config": {"task": "gp-l"', encoding="utf-8")
    (tmp_path / "metrics.json").write_text("", encoding="utf-8")
    (tmp_path / "trajectories.jsonl").write_text("", encoding="utf-8")
    run = load_run(tmp_path)
    assert run.kind == "eval"
    text = " ".join(run.problems)
    assert "config.json is not valid JSON" in text
    assert "metrics.json is empty" in text
    assert read_json(tmp_path / "nope.json") == (None, "nope.json is missing")


def test_suites_collections_and_agent_runs(runs, tmp_path):
    assert detect_kind(runs["suite"]) == "suite"
    assert detect_kind(runs["agent"]) == "agent"
    store = RunStore([runs["suite"], runs["agent"]])
    ids = [r.id for r in store.runs()]
    assert ids == ["suite-demo", "suite-demo.gp-l__id", "agent-demo"]
    suite = store.get("suite-demo")
    assert suite.children == ["suite-demo.gp-l__id"]
    assert store.get("suite-demo.gp-l__id").parent == "suite-demo"
    agent = store.get("agent-demo")
    assert agent.title == "agent place_recommender · oracle"
    assert agent.result["places"][0] == "Café de Paris" and agent.plots == ["map.png"]
    assert agent.headline()[:2] == ("accuracy", 0.5)
    assert len(store.episodes(agent).records) == 2
    # A folder of runs lists each run in it; duplicate names get distinct ids.
    collection = RunStore([runs["oracle"].parent, runs["oracle"]])
    listed = [r.id for r in collection.runs()]
    assert "gp-l-oracle" in listed and "gp-l-oracle-2" in listed
    assert "not-started" not in listed  # an empty sub-folder is not a run


def test_store_rereads_a_run_when_its_files_change(runs, tmp_path):
    import shutil

    folder = tmp_path / "live"
    viewer_data.half_written(runs["random"], folder)
    store = RunStore([folder])
    assert store.get("live").metrics["eval/episodes"] == 7
    shutil.copy(runs["random"] / "trajectories.jsonl", folder / "trajectories.jsonl")
    shutil.copy(runs["random"] / "metrics.json", folder / "metrics.json")
    run = store.get("live")
    assert run.metrics["eval/episodes"] == 8 and not run.metrics_from_episodes
    assert len(store.episodes(run).records) == 8


def test_episode_summaries_filters_and_steps(runs):
    records = read_jsonl(runs["random"] / "trajectories.jsonl").records
    summary = episode_summary(records[0])
    assert summary["task"] == "gp-l" and summary["split"] == "rule-ood"
    assert summary["success"] is False and summary["outcome"]
    assert len(summary["outcomes"]) == summary["attempts"]
    assert filter_episodes(records, success="yes") == []
    assert len(filter_episodes(records, success="no", task="gp-l", split="rule-ood")) == 8
    outcome = summary["outcomes"][0]
    assert records[0] in filter_episodes(records, outcome=outcome)
    assert filter_episodes(records, task="gp-vl") == []
    assert "rule-ood" in facets(records)["split"]
    steps = steps_view(records[0])
    assert steps[0]["prompt"] == records[0]["prompt"]
    # Each step keeps the prompt it answered (issue 20), not only the first.
    assert steps[1]["prompt"] == records[0]["steps"][1]["prompt"] and steps[1]["prompt"]
    assert steps[-1]["return_so_far"] == pytest.approx(records[0]["total_reward"])
    # A record with no steps (an agent's log line) still gets one step.
    assert steps_view({"answer": "Café de Paris"})[0]["action"] == "Café de Paris"


def test_navigation_tracks(runs):
    records = read_jsonl(runs["nav"] / "trajectories.jsonl").records
    track = nav_track(records[0])
    assert track is not None and track.city == "monaco"
    assert len(track.route) >= 2
    assert len(track.poses) == len(records[0]["steps"]) + 1
    assert all(p is not None and p.heading is not None for p in track.poses)
    # A wrong action leaves the agent where it was.
    wrong = nav_track(records[1])
    assert (wrong.poses[-1].lat, wrong.poses[-1].lon) == (wrong.poses[-2].lat, wrong.poses[-2].lon)
    assert expected_action(records[0], 1) == "forward()"
    assert nav_track({"index": 0, "reset_info": {"cards": ["A"]}}) is None


def test_navigation_track_finds_shipped_routes_by_id():
    routes = pytest.importorskip("openvirl.envs.navigation.splits")
    route = routes.load_route_set("manhattan", "test")[0]
    record = {
        "reset_info": {
            "city": "manhattan",
            "split": "test",
            "route_id": route.route_id,
            "lat": route.start.lat,
            "lon": route.start.lon,
            "heading": 10,
        },
        "steps": [{"gt_action": "forward()"}],
    }
    track = nav_track(record)
    assert track.route[0] == pytest.approx((route.start.lat, route.start.lon))
    assert len(track.rail) == len(route.milestones) + 1
    assert expected_action(record, 1) is None


def test_newcombe_difference_interval():
    # Newcombe (1998), example (a): 56/70 vs 48/80 gives 0.0524 to 0.3339 for p1 - p2.
    from openvirl.evaluation.metrics import wilson_interval

    p1, p2 = 56 / 70, 48 / 80
    low, high = difference_interval(p2, wilson_interval(48, 80), p1, wilson_interval(56, 70))
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def test_compare_rows_per_setting():
    a = {("gp-l", "id"): {"eval/success": 0.5, "eval/success_n": 100, "eval/mean_attempts": 2.0}}
    b = {
        ("gp-l", "id"): {"eval/success": 0.5, "eval/success_n": 100, "eval/mean_attempts": 1.5},
        ("gp-l", "rule-ood"): {"eval/success": 0.2, "eval/episodes": 10},
    }
    rows = compare_rows(a, b)
    assert [(r["task"], r["split"], r["in_a"], r["in_b"]) for r in rows] == [
        ("gp-l", "id", True, True),
        ("gp-l", "rule-ood", False, True),
    ]
    success = rows[0]["metrics"][0]
    assert success["delta"] == 0 and success["significant"] is False
    attempts = next(m for m in rows[0]["metrics"] if m["key"] == "eval/mean_attempts")
    assert attempts["delta"] == -0.5 and attempts["delta_ci95"] is None
    only_b = rows[1]["metrics"][0]
    assert only_b["a"] is None and only_b["delta"] is None
    assert only_b["b_ci95"] is not None and not math.isnan(only_b["b_ci95"][0])
