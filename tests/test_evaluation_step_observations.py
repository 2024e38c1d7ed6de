"""Issue 20: an evaluation record keeps what the model saw at every step (its prompt and
image), so the viewer shows step k's view grid at step k, not step 1's at every step."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from openvirl.evaluation.evaluate import EvalConfig, evaluate


def test_navigation_steps_store_their_own_prompt_and_view(tmp_path: Path) -> None:
    out = tmp_path / "nav"
    run = evaluate(
        EvalConfig(
            task="nav-vl",
            split="id",
            policy="oracle",
            episodes=1,
            out=out,
            progress=False,
            report=False,
            image_size=64,
            batch_size=1,
        )
    )
    (record,) = run.records
    steps = record["steps"]
    assert len(steps) >= 3
    prompts = [s["prompt"] for s in steps]
    assert prompts[0] == record["prompt"] and len(set(prompts)) == len(prompts)
    images = [s["image"] for s in steps]
    assert images[0] == record["image"] and all(images)
    assert len(set(images)) > 1  # the walker moved and turned: new view grids
    for path in set(images):
        assert Image.open(out / path).size == (64, 64)
    first, later = (np.asarray(Image.open(out / p)) for p in (images[0], images[-1]))
    assert not np.array_equal(first, later)
    # The line on disk is the same record.
    saved = json.loads((out / "trajectories.jsonl").read_text().splitlines()[0])
    assert [s["image"] for s in saved["steps"]] == images


def test_points_steps_reuse_the_one_hand_image(tmp_path: Path) -> None:
    out = tmp_path / "gp"
    run = evaluate(
        EvalConfig(
            task="gp-vl",
            split="id",
            policy="random",
            episodes=2,
            out=out,
            progress=False,
            report=False,
            image_size=96,
            batch_size=2,
        )
    )
    for record in run.records:
        assert {s["image"] for s in record["steps"]} == {record["image"]}
        assert record["steps"][0]["prompt"] == record["prompt"]
    assert len(list((out / "images").iterdir())) == 2


def test_the_viewer_shows_each_steps_own_view(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from openvirl.viewer import create_app

    out = tmp_path / "nav"
    run = evaluate(
        EvalConfig(
            task="nav-vl",
            split="id",
            policy="oracle",
            episodes=1,
            out=out,
            progress=False,
            report=False,
            image_size=64,
            batch_size=1,
        )
    )
    images = [s["image"] for s in run.records[0]["steps"]]
    client = TestClient(
        create_app([out]), raise_server_exceptions=False, base_url="http://127.0.0.1"
    )
    listing = client.get("/api/episodes").json()
    run_id = listing["episodes"][0]["run"]
    page = client.get(f"/runs/{run_id}/episodes/0")
    assert page.status_code == 200
    assert "Only the first prompt is stored" not in page.text
    for k, path in enumerate(images, start=1):
        section = page.text.split(f"id='step-{k}'")[1].split("</section>")[0]
        assert f"/files/{path}'" in section
        assert "<span class='q q0'>front</span>" in section  # the grid's quadrants are named


def test_the_viewer_names_the_grid_quadrants() -> None:
    from openvirl.viewer.pages import _grid_labels

    html = _grid_labels("<img src='x.png'>", True)
    assert [html.index(w) for w in ("front", "right", "back", "left")] == sorted(
        html.index(w) for w in ("front", "right", "back", "left")
    )
    assert "class='grid-obs'" in html and _grid_labels("<img>", False) == "<img>"
