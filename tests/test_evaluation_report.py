"""Reports: report.md and a self-contained report.html, with plots and example episodes."""

from __future__ import annotations

import re
from pathlib import Path

from openvirl.evaluation import EvalConfig, evaluate
from openvirl.evaluation.report import pick_examples


def test_report_references_existing_pngs(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = evaluate(
        EvalConfig(
            task="gp-vl",
            split="rule-ood",
            policy="oracle?wrong_attempts=1",
            episodes=6,
            out=out,
            progress=False,
            image_size=128,
            examples=3,
        )
    )
    md_path, html_path = run.report_paths
    md = md_path.read_text()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert {"plots/success.png", "plots/outcomes.png", "plots/attempts.png"} <= set(links)
    assert "plots/difficulty.png" in links
    assert sum(link.startswith("images/") for link in links) == 3  # one per example episode
    for link in links:
        assert (out / link).is_file() and (out / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Rule collapse" in md and "Card recognition" in md and "Success" in md
    page = html_path.read_text()
    assert page.count("data:image/png;base64,") == 4 + 3  # self-contained: plots and hands
    assert "wrong_value" in page and "You failed" not in page  # feedback shown, not re-prompted


def test_language_report_draws_the_hand_for_the_reader(tmp_path: Path) -> None:
    out = tmp_path / "run"
    run = evaluate(
        EvalConfig(
            task="gp-l",
            split="id",
            policy="random",
            episodes=5,
            out=out,
            progress=False,
            examples=2,
        )
    )
    md = run.report_paths[0].read_text()
    drawn = re.findall(r"\((images/example_\d+\.png)\)", md)
    assert len(drawn) == 2 and all((out / p).is_file() for p in drawn)


def test_partial_runs_say_so(tmp_path: Path) -> None:
    from test_evaluation_evaluate import FlakyPolicy

    out = tmp_path / "run"
    run = evaluate(
        EvalConfig(task="gp-l", split="id", episodes=8, out=out, progress=False, batch_size=2),
        FlakyPolicy(calls_ok=3),
    )
    assert not run.complete
    assert "PARTIAL" in (out / "report.md").read_text()
    assert "server down" in (out / "report.html").read_text()


def test_examples_cover_success_after_revision_and_failure() -> None:
    def rec(i: int, success: bool, outcomes: list[str]) -> dict:
        return {"index": i, "success": success, "steps": [{"outcome": o} for o in outcomes]}

    records = [
        rec(0, True, ["correct"]),
        rec(1, True, ["correct"]),
        rec(2, False, ["wrong_value"] * 5),
        rec(3, True, ["no_answer", "correct"]),
        rec(4, False, ["illegal_formula"] * 5),
    ]
    assert [r["index"] for r in pick_examples(records, 4)] == [0, 2, 3, 4]
    assert len(pick_examples(records, 10)) == 5
