"""GeneralPoints datasets and the `openvirl points` commands."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from openvirl.cli import app
from openvirl.envs.points import check
from openvirl.envs.points.dataset import build_dataset
from openvirl.envs.points.env import GeneralPointsEnv
from openvirl.envs.points.parsing import parse_answer

runner = CliRunner()


def test_dataset_is_disjoint_replayable_and_loadable(tmp_path) -> None:
    manifest = build_dataset(tmp_path, n_test=30, n_train=60, seed=7, progress=False)
    rows = {
        split: [json.loads(line) for line in (tmp_path / split / "metadata.jsonl").open()]
        for split in ("train", "test")
    }
    assert manifest["counts"] == {"train": 60, "test": 30}
    keys = {split: {tuple(sorted(r["numbers"])) for r in rs} for split, rs in rows.items()}
    assert keys["train"].isdisjoint(keys["test"])
    env = GeneralPointsEnv(split="test")
    for row in rows["test"][:10]:
        parsed = parse_answer(row["completion"])
        assert check(parsed.formula, row["numbers"], row["target"]).correct
        obs, info = env.reset(seed=row["reset_seed"])
        assert obs["prompt"] == row["prompt"] and info["cards"] == row["cards"]
    import datasets

    loaded = datasets.load_dataset("json", data_dir=str(tmp_path))
    assert loaded["train"].num_rows == 60 and loaded["test"].num_rows == 30
    assert set(loaded["train"].column_names) >= {"prompt", "completion", "cards", "numbers"}


def test_visual_dataset_loads_as_imagefolder(tmp_path) -> None:
    build_dataset(
        tmp_path,
        n_test=4,
        n_train=4,
        seed=1,
        visual=True,
        suits="red",
        image_size=128,
        progress=False,
    )
    import datasets

    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path))
    assert loaded["test"][0]["image"].size == (128, 128)
    assert "cards you see" in loaded["test"][0]["prompt"]


def test_visual_dataset_defaults_to_black_suits_as_gp_vl_trains(tmp_path) -> None:
    out = tmp_path / "vl"
    args = ["points", "dataset", "--out", str(out), "--visual", "--n", "2", "--n-train", "2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["suits"] == "black"
    rows = [json.loads(line) for line in (out / "test" / "metadata.jsonl").open()]
    assert all(row["suits"] == "black" for row in rows)
    assert (
        build_dataset(
            tmp_path / "vl2", n_test=1, n_train=1, visual=True, image_size=128, progress=False
        )["config"]["suits"]
        == "black"
    )
    text = build_dataset(tmp_path / "l", n_test=1, n_train=1, progress=False)
    assert text["config"]["suits"] == "mixed"


def test_cli_dataset_solve_and_play(tmp_path) -> None:
    out = tmp_path / "gp"
    result = runner.invoke(
        app, ["points", "dataset", "--out", str(out), "--n", "5", "--n-train", "5", "--rule", "ood"]
    )
    assert result.exit_code == 0, result.output
    assert (out / "manifest.json").is_file()
    result = runner.invoke(app, ["points", "solve", "3", "3", "8", "8", "--json"])
    assert json.loads(result.output)["solutions"] == ["8/(3-8/3)"]
    # Counted up to commutativity and associativity, not 314 written forms (issue 20).
    result = runner.invoke(app, ["points", "solve", "1", "2", "3", "4"])
    assert result.output.startswith("4 distinct solutions") and "314 written forms" in result.output
    assert len(result.output.strip().splitlines()) == 5
    bad = runner.invoke(app, ["points", "dataset", "--out", str(out), "--rule", "weird"])
    assert bad.exit_code == 2 and "`rule`" in bad.output
    easy = tmp_path / "easy"
    args = ["--n", "6", "--n-train", "6", "--n-cards", "3", "--ranks", "1", "13"]
    result = runner.invoke(
        app,
        ["points", "dataset", "--out", str(easy), *args, "--split-by", "ranks", "--target", "12"],
    )
    assert result.exit_code == 0, result.output
    manifest = json.loads((easy / "manifest.json").read_text())
    assert manifest["config"]["n_cards"] == 3 and manifest["config"]["split_by"] == "ranks"
    assert manifest["split"]["split_by"] == "ranks"
    rows = [json.loads(line) for line in (easy / "test" / "metadata.jsonl").open()]
    assert all(len(row["cards"]) == 3 for row in rows)
    bad = runner.invoke(app, ["points", "dataset", "--out", str(easy), "--n-cards", "7"])
    assert bad.exit_code == 2 and "`n_cards`" in bad.output
    env = GeneralPointsEnv()
    _, info = env.reset(seed=11)
    played = runner.invoke(
        app, ["points", "play", "--seed", "11"], input=f"1+1\n{info['solutions'][0]}\n"
    )
    assert played.exit_code == 0, played.output
    assert "correct" in played.output and "solved 1/1" in played.output


def test_every_command_has_help() -> None:
    for args in (
        ["--help"],
        ["points", "--help"],
        ["points", "dataset", "--help"],
        ["points", "play", "--help"],
        ["points", "solve", "--help"],
        ["demo", "--help"],
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 0 and "Usage" in result.output, args
