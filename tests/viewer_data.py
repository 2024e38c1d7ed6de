"""Run folders for the viewer tests: real `evaluate` runs, a suite, a navigation run, broken ones.

Everything is made with the project's own code (oracle and random policies, a few episodes), so
the viewer is tested on exactly what `openvirl eval` writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

NAV_CITY = "monaco"


def eval_run(
    out: Path,
    *,
    task: str = "gp-l",
    split: str = "id",
    policy: str = "oracle",
    episodes: int = 6,
    image_size: int | None = None,
    report: bool = True,
) -> Path:
    """An `openvirl eval` run folder (trajectories, metrics, config, report and plots)."""
    from openvirl.evaluation import EvalConfig, evaluate

    evaluate(
        EvalConfig(
            task=task,
            split=split,
            policy=policy,
            episodes=episodes,
            out=out,
            progress=False,
            image_size=image_size,
            report=report,
            examples=2,
        )
    )
    return out


def half_written(source: Path, out: Path) -> Path:
    """A copy of `source` as a killed run leaves it: no metrics, a half line at the end."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "config.json", out / "config.json")
    lines = (source / "trajectories.jsonl").read_text(encoding="utf-8").splitlines()
    with (out / "trajectories.jsonl").open("w", encoding="utf-8") as handle:
        for line in lines[:-1]:
            handle.write(line + "\n")
        handle.write(lines[-1][: len(lines[-1]) // 2])  # no newline: cut mid-write
    return out


def nav_run(out: Path, city_name: str = NAV_CITY) -> Path:
    """A navigation run in `city_name` written in the evaluation format (three episodes).

    Routes come from `City.route` between real places; each step records the agent's
    position and heading after it, as the navigation env's info does, and the first episode
    also records its route polyline.
    """
    from openvirl.world import City
    from openvirl.world.geometry import bearing_deg

    city = City.load(city_name)
    places = [p for p in city.pois if p.name][:40]
    out.mkdir(parents=True, exist_ok=True)
    records = []
    for index in range(3):
        origin, destination = places[index * 7], places[index * 7 + 20]
        route = city.route(origin, destination)
        points = [route.origin_snap] + [tuple(s.end) for s in route.steps]
        reset_info = {
            "task": "navigation",
            "city": city_name,
            "route_id": f"test-{index}",
            "lat": points[0][0],
            "lon": points[0][1],
            "heading": 0,
            "position": 0,
            "gt_action": "turn_direction(north)",
            "instruction": route.text,
        }
        if index == 0:
            reset_info["route"] = [list(p) for p in route.polyline]
        steps = []
        for k in range(1, len(points)):
            heading = round(bearing_deg(*points[k - 1], *points[k])) % 360
            wrong = index == 1 and k == 2
            lat, lon = points[k - 1] if wrong else points[k]
            steps.append(
                {
                    "attempt": 1,
                    "action": '{"action": "forward()"}',
                    "reward": -1.0 if wrong else 1.0,
                    "outcome": "wrong_action" if wrong else "correct",
                    "feedback": "Incorrect action." if wrong else "Correct action.",
                    "lat": lat,
                    "lon": lon,
                    "heading": heading,
                    "position": k,
                    "parsed_action": "forward()",
                    "answered_gt_action": "forward()",
                }
            )
            if wrong:
                break
        records.append(
            {
                "index": index,
                "seed": index,
                "task": "nav-l",
                "split": "id",
                "policy": "oracle",
                "success": index != 1,
                "episode_outcome": "attempts_exhausted" if index == 1 else "correct",
                "attempts": len(steps),
                "total_reward": sum(s["reward"] for s in steps),
                "prompt": "[Task]\nFollow the instructions.\n" + route.text,
                "image": None,
                "reset_info": reset_info,
                "steps": steps,
                "future_field": {"unknown": True},
            }
        )
    with (out / "trajectories.jsonl").open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    config = {
        "config": {"task": "nav-l", "split": "id", "policy": "oracle", "episodes": 3},
        "task": {"task": "nav-l", "split": "id", "env_kwargs": {"city": city_name}},
        "episodes": 3,
    }
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    from openvirl.evaluation.metrics import compute_metrics

    metrics = {
        "task": "nav-l",
        "split": "id",
        "policy": "oracle",
        "episodes_planned": 3,
        "complete": True,
        "error": None,
        **compute_metrics(records),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, default=str), encoding="utf-8")
    return out


def agent_run(out: Path) -> Path:
    """An agent run as `openvirl.agents` writes it: config (kind "agent"), result, metrics,
    a report, a map and episodes."""
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "kind": "agent",
        "agent": "place_recommender",
        "name": "place_recommender",
        "policy": "oracle",
        "config": {"city": NAV_CITY, "k": 2},
    }
    (out / "config.json").write_text(json.dumps(config), encoding="utf-8")
    result = {"agent": "place_recommender", "places": ["Café de Paris", "Giudi's"]}
    (out / "result.json").write_text(json.dumps(result), encoding="utf-8")
    metrics = {"agent": "place_recommender", "policy": "oracle", "accuracy": 0.5, "llm_calls": 2}
    (out / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (out / "report.md").write_text("# place recommender\n", encoding="utf-8")
    from PIL import Image

    Image.new("RGB", (64, 64), "white").save(out / "map.png")
    with (out / "episodes.jsonl").open("w", encoding="utf-8") as handle:
        handle.write(json.dumps({"question": "a cafe?", "answer": "Café de Paris"}) + "\n")
        handle.write(json.dumps({"question": "a bank?", "answer": "none", "reward": 0}) + "\n")
    return out


def suite_run(out: Path, member: Path) -> Path:
    """A suite folder (``suite.json``) holding a copy of `member` as its ``gp-l__id`` setting."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(member, out / "gp-l__id", dirs_exist_ok=True)
    metrics = json.loads((member / "metrics.json").read_text(encoding="utf-8"))
    row = {
        "task": "gp-l",
        "split": "id",
        "metric": "eval/success",
        "value": metrics["eval/success"],
        "ci95": metrics["eval/success_ci95"],
        "episodes": metrics["eval/episodes"],
        "episodes_planned": metrics["episodes_planned"],
        "complete": True,
        "paper": {"init": None, "rl": None, "sft": None, "source": "Fig. 5"},
        "diagnostics": {},
        "run": "gp-l__id",
    }
    suite = {
        "suite": "paper",
        "policy": "oracle",
        "policy_spec": "oracle",
        "seed": 42,
        "complete": True,
        "error": None,
        "skipped": [],
        "rows": [row],
    }
    (out / "suite.json").write_text(json.dumps(suite), encoding="utf-8")
    return out


_SHARED: dict[str, Path] | None = None


def shared_runs(tmp_path_factory) -> dict[str, Path]:
    """`make_all` once per test session (the viewer test files share the folders)."""
    global _SHARED
    if _SHARED is None:
        _SHARED = make_all(tmp_path_factory.mktemp("viewer-runs"))
    return _SHARED


def make_all(root: Path) -> dict[str, Path]:
    """Every kind of folder the viewer tests use, under `root`, by role."""
    root.mkdir(parents=True, exist_ok=True)
    runs = {
        "oracle": eval_run(root / "gp-l-oracle", episodes=8),
        "random": eval_run(root / "gp-l-random", policy="random", split="rule-ood", episodes=8),
        "vision": eval_run(
            root / "gp-vl-random",
            task="gp-vl",
            split="visual-ood",
            policy="random",
            episodes=3,
            image_size=256,
            report=False,
        ),
    }
    runs["half"] = half_written(runs["random"], root / "half-written")
    runs["nav"] = nav_run(root / "nav-monaco")
    runs["agent"] = agent_run(root / "agent-demo")
    runs["suite"] = suite_run(root / "suite-demo", runs["oracle"])
    runs["empty"] = root / "not-started"
    runs["empty"].mkdir(exist_ok=True)
    runs["missing"] = root / "no-such-run"
    return runs
