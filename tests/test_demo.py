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
    assert (out / "runs" / "gp-l-id-random" / "trajectories.jsonl").is_file()
