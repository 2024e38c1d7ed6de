"""Datasets replay from their manifest alone: every option, the split included, is recorded.

Each test writes a small dataset, then rebuilds every row from ``manifest.json`` and the row
(nothing else: no build arguments), as a user reproducing a published dataset would.
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym

import openvirl  # noqa: F401
from openvirl.envs.navigation.dataset import build_dataset as build_navigation
from openvirl.envs.points.dataset import build_dataset as build_points


def _read(out: Path) -> tuple[dict, list[dict]]:
    manifest = json.loads((out / "manifest.json").read_text())
    rows = []
    for split in ("train", "test"):
        lines = (out / split / "metadata.jsonl").read_text().splitlines()
        rows += [json.loads(line) for line in lines]
    return manifest, rows


def test_points_rows_replay_from_the_manifest(tmp_path):
    # Non-default options everywhere a replay could silently fall back to a default.
    build_points(
        tmp_path, n_train=12, n_test=12, seed=3, progress=False,
        rule="ood", n_cards=3, target=12, ranks=(2, 12), split_by="ranks", max_attempts=2,
    )  # fmt: skip
    manifest, rows = _read(tmp_path)
    assert {row["split"] for row in rows} == {"train", "test"}
    for row in rows:
        env = gym.make(manifest["env_id"], **manifest["splits"][row["split"]])
        obs, info = env.reset(seed=row["reset_seed"])
        assert obs["prompt"] == row["prompt"]
        assert info["cards"] == row["cards"] and info["expert_answer"] == row["completion"]
        assert info["split"] == row["split"]


def test_navigation_rows_replay_from_the_manifest(tmp_path):
    build_navigation(
        tmp_path, n_train=2, n_test=4, seed=5, progress=False, actions="relative", max_attempts=1
    )
    manifest, rows = _read(tmp_path)
    assert sum(row["split"] == "test" for row in rows) == 4
    for row in rows:
        env = gym.make(manifest["env_id"], **manifest["splits"][row["split"]])
        obs, info = env.reset(seed=row["reset_seed"], options={"route_index": row["route_index"]})
        assert info["route_id"] == row["route_id"]
        while info["position"] < row["position"]:  # train rows: follow the expert
            obs, _, terminated, _, info = env.step(info["expert_answer"])
            assert not terminated
        assert obs["prompt"] == row["prompt"] and info["expert_answer"] == row["completion"]
