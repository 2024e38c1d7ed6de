"""`openvirl eval`: a tiny run, the paper suite, bad input, and a server that goes down."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from openvirl.cli import app

runner = CliRunner()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["eval", *args, "--no-progress"])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def test_tiny_run_writes_the_run_folder(tmp_path: Path) -> None:
    out = tmp_path / "run"
    code, text = run(
        "--task",
        "gp-l",
        "--split",
        "rule-ood",
        "--policy",
        "oracle",
        "--episodes",
        "4",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert code == 0, text
    assert "success" in text and "100.0%" in text
    for name in ("config.json", "trajectories.jsonl", "metrics.json", "report.md", "report.html"):
        assert (out / name).is_file(), name
    saved = json.loads((out / "config.json").read_text())
    assert saved["config"]["seed"] == 3 and len(saved["seeds"]) == 4
    assert saved["policy"]["spec"] == "oracle" and saved["versions"]["openvirl"]
    code, _ = run(
        "--task", "gp-l", "--split", "rule-ood", "--episodes", "4", "--seed", "3", "--out", str(out)
    )
    assert code == 0 and len((out / "trajectories.jsonl").read_text().splitlines()) == 4


def test_paper_suite_with_few_episodes(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    code, text = run(
        "--suite",
        "paper-gp",
        "--policy",
        "random",
        "--episodes",
        "3",
        "--image-size",
        "96",
        "--out",
        str(out),
        "--no-report",
    )
    assert code == 0, text
    suite = json.loads((out / "suite.json").read_text())
    settings = [(r["task"], r["split"]) for r in suite["rows"]]
    assert settings == [
        ("gp-l", "id"),
        ("gp-l", "rule-ood"),
        ("gp-vl", "id"),
        ("gp-vl", "rule-ood"),
        ("gp-vl", "visual-ood"),
    ]
    assert all(r["episodes"] == 3 for r in suite["rows"])
    rule_ood = suite["rows"][1]
    assert rule_ood["paper"]["rl"] == 0.15 and rule_ood["paper"]["sft"] == 0.034
    md = (out / "suite.md").read_text()
    assert "11.5%" in md and "41.2%" in md and (out / "plots" / "suite.png").is_file()
    assert "gp-vl/visual-ood" in text and "Init" in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--task", "gp-xl"], "valid tasks: gp-l, gp-vl"),
        (["--task", "gp-l", "--split", "ood"], "valid splits: id, rule-ood"),
        (["--policy", "oracel"], "Did you mean `oracle`?"),
        (["--suite", "papers"], "Did you mean `paper`?"),
        (["--batch-size", "0"], "`batch_size` must be >= 1"),
    ],
)
def test_bad_input_lists_the_valid_choices(args: list[str], expected: str) -> None:
    code, text = run(*args)
    assert code == 2 and expected in " ".join(text.split())


class _FlakyServer(BaseHTTPRequestHandler):
    """An OpenAI-style server: a few garbage answers, then HTTP 500 for ever."""

    budget = 4

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        cls = type(self)
        cls.budget -= 1
        if cls.budget < 0:
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"overloaded")
            return
        body = {
            "choices": [{"message": {"role": "assistant", "content": "24? no idea"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": 4},
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[str]:
    _FlakyServer.budget = 4
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_server_failure_keeps_finished_episodes(tmp_path: Path, flaky_server: str) -> None:
    pytest.importorskip("httpx")
    out = tmp_path / "run"
    spec = f"openai:{flaky_server}#m?max_retries=1&backoff_s=0.01&concurrency=1"
    code, text = run(
        "--task",
        "gp-l",
        "--policy",
        spec,
        "--episodes",
        "6",
        "--batch-size",
        "2",
        "--max-attempts",
        "1",
        "--out",
        str(out),
    )
    assert code == 1, text
    flat = " ".join(text.split())
    assert "failed after 2 attempt(s)" in flat and "rerun the same command to resume" in flat
    records = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert sorted(r["index"] for r in records) == [0, 1, 2, 3]
    assert len(records) == 4  # two batches of two answered, the third failed
    assert all(s["outcome"] == "no_answer" for r in records for s in r["steps"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["complete"] is False and metrics["eval/tokens_generated"] == 4 * len(records)


def test_language_suite_includes_navigation(tmp_path: Path) -> None:
    out = tmp_path / "suite"
    code, text = run(
        "--suite",
        "paper-language",
        "--policy",
        "oracle",
        "--episodes",
        "2",
        "--out",
        str(out),
        "--no-report",
    )
    assert code == 0, text
    suite = json.loads((out / "suite.json").read_text())
    settings = [(r["task"], r["split"]) for r in suite["rows"]]
    assert settings == [
        ("gp-l", "id"),
        ("gp-l", "rule-ood"),
        ("nav-l", "id"),
        ("nav-l", "rule-ood"),
    ]
    assert all(r["value"] == 1.0 for r in suite["rows"])
    assert suite["rows"][2]["metric"] == "eval/per_step_accuracy"  # the paper's V-IRL metric


def test_piped_output_is_not_cut_at_80_columns(tmp_path: Path, monkeypatch) -> None:
    """Without a terminal rich used 80 columns and cut or wrapped wide lines and tables."""
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.delenv("COLUMNS")  # restored after the test, whatever it was
    out = tmp_path / "a-folder-name-long-enough-to-pass-80-columns"
    result = runner.invoke(
        app, ["eval", "--episodes", "1", "--out", str(out), "--no-progress", "--no-report"]
    )
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "written to" in x)
    assert len(line) > 80 and line.rstrip().endswith("report.html)")

    from rich.console import Console
    from rich.table import Table

    from openvirl.cli import PIPED_COLUMNS

    table = Table("metric", "a very long policy specification " * 3)
    table.add_row("success", "x" * 90)
    console = Console(record=True)
    console.print(table)
    assert console.width == PIPED_COLUMNS and "x" * 90 in console.export_text()
