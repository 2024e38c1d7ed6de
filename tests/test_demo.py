"""`openvirl demo` end to end on a small budget (the embedded model stage is skipped here)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from openvirl.cli import app


def test_demo_writes_summary_report_and_pictures(tmp_path) -> None:
    out = tmp_path / "demo"
    result = CliRunner().invoke(
        app, ["demo", "--out", str(out), "--hands", "6", "--model-hands", "0"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    rows = report["stages"]["baselines"]
    assert {(r["task"], r["split"]) for r in rows} >= {("gp-l", "id"), ("gp-vl", "visual-ood")}
    assert all(r["success"] == 1.0 for r in rows if r["policy"].startswith("oracle"))
    summary = (out / "summary.md").read_text()
    assert "| gp-l / id | oracle |" in summary
    for picture in ("baselines.png", "gp_vl_hand.png"):
        assert (out / picture).stat().st_size > 5_000
    assert (out / "runs" / "1-baselines" / "gp-l-id-random" / "trajectories.jsonl").is_file()


def test_each_stage_writes_its_own_runs_and_the_summary_reads_what_it_links(
    tmp_path, monkeypatch
) -> None:
    """Stage 2 once reused stage 1's folders with fewer hands, so the summary contradicted
    the report it linked. Here stage 2's model is the random policy (no model download)."""
    import re

    from openvirl import demo

    monkeypatch.setattr(demo, "MODEL_SPEC", "random?seed=3")
    monkeypatch.setattr(demo, "MODEL_LABEL", "stand-in")
    monkeypatch.setattr(demo, "SETTINGS", (("gp-l", "id"),))
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--hands", "6", "--model-hands", "3", "--skip-study"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    first = out / "runs" / "1-baselines" / "gp-l-id-oracle"
    second = out / "runs" / "2-embedded-model" / "gp-l-id-oracle"
    assert json.loads((first / "metrics.json").read_text())["eval/episodes"] == 6
    assert json.loads((second / "metrics.json").read_text())["eval/episodes"] == 3
    summary = (out / "summary.md").read_text()
    rows = [*report["stages"]["baselines"], *report["stages"]["embedded_model"]]
    for row in rows:
        metrics = json.loads((out / row["report"]).with_name("metrics.json").read_text())
        assert row["episodes"] == metrics["eval/success_n"]
        assert row["success"] == metrics["eval/success"]
        assert f"[report]({row['report']})" in summary
    links = re.findall(r"\[report\]\(([^)]+)\)", summary)
    assert len(links) == len(set(links)) == len(rows)


def test_a_policy_has_one_colour_in_every_plot() -> None:
    from openvirl.demo import policy_colour

    names = ["oracle", "oracle-after-2-wrong", "random", "gemma-3-270m"]
    assert len({policy_colour(n) for n in names}) == len(names)
    assert policy_colour("my-model") == policy_colour("my-model")


def test_demo_stops_at_once_on_a_study_folder_made_with_other_settings(tmp_path) -> None:
    """An older quick study in OUT/study: one line before any stage runs, not a traceback
    half an hour in, and nothing of the old run is touched."""
    import yaml

    from openvirl.training.config import config_to_dict
    from openvirl.training.study import load_study_config

    out = tmp_path / "demo"
    old = config_to_dict(load_study_config("gp-l", "quick", out=out / "study"))
    old["init_steps"] = 12
    (out / "study").mkdir(parents=True)
    saved = out / "study" / "study-config.yaml"
    saved.write_text(yaml.safe_dump(old))
    before = saved.read_text()
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--hands", "2"])
    assert result.exit_code == 2
    assert "init_steps: 12 -> 30" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["study"] and saved.read_text() == before
