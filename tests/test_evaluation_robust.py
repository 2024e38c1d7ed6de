"""Run folders under hostile text and torn writes (issue 17): records always encode, a last
line torn inside a multi-byte character is repaired, and errors name the file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openvirl.evaluation import EvalConfig, evaluate, read_trajectories
from openvirl.evaluation.evaluate import clean_text, record_line
from openvirl.policies.base import Request


def config(tmp_path: Path, **options: Any) -> EvalConfig:
    options.setdefault("out", tmp_path / "run")
    defaults = {"progress": False, "report": False, "batch_size": 4}
    return EvalConfig(**{**defaults, **options})


class SurrogatePolicy:
    """Answers with text no UTF-8 encoder accepts (a lone surrogate), plus other odd text."""

    name = "surrogate"

    def act(self, requests: Sequence[Request]) -> list[str]:
        return ["\ud800 formula \udfff é 🎴 \x00" for _ in requests]


def test_lone_surrogate_answers_are_written_and_kept(tmp_path: Path) -> None:
    result = evaluate(config(tmp_path, episodes=3, report=True), SurrogatePolicy())
    assert result.complete and len(result.records) == 3
    path = tmp_path / "run" / "trajectories.jsonl"
    path.read_bytes().decode("utf-8")  # valid UTF-8 throughout
    records = read_trajectories(path, repair=False)
    assert [r["index"] for r in records] == [0, 1, 2]
    action = records[0]["steps"][0]["action"]
    assert action == "\ufffd formula \ufffd é 🎴 \x00"
    # A rerun resumes instead of failing the same way.
    again = evaluate(config(tmp_path, episodes=4), SurrogatePolicy())
    assert again.complete and len(again.records) == 4


@settings(max_examples=200, deadline=None)
@given(st.text(), st.dictionaries(st.text(max_size=5), st.text(max_size=30), max_size=3))
def test_any_text_makes_an_encodable_line_that_reads_back(text: str, info: dict) -> None:
    line = record_line({"index": 0, "action": text, "info": info})
    raw = line.encode("utf-8")  # never raises
    assert raw.endswith(b"\n") and raw.count(b"\n") == 1
    back = json.loads(raw.decode("utf-8"))
    assert back["action"] == clean_text(text)
    if clean_text(text) == text:
        assert back["action"] == text  # valid text is kept exactly


@given(st.text())
def test_clean_text_is_encodable_and_idempotent(text: str) -> None:
    cleaned = clean_text(text)
    cleaned.encode("utf-8")
    assert clean_text(cleaned) == cleaned


def test_surrogate_pair_becomes_its_character() -> None:
    assert clean_text("\ud83c\udfb4") == "🎴"
    assert clean_text("a\ud800b") == "a\ufffdb"


def test_last_line_torn_inside_a_multibyte_character_is_repaired(tmp_path: Path) -> None:
    cfg = config(tmp_path, episodes=4, policy="oracle")
    evaluate(cfg)
    path = tmp_path / "run" / "trajectories.jsonl"
    whole = path.read_bytes()
    # A last record whose text ends in a 4-byte character, cut after its first byte.
    torn = json.dumps({"index": 3, "action": "x🎴"}, ensure_ascii=False).encode("utf-8")
    cut = torn[: torn.index("🎴".encode()) + 1]
    lines = whole.splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:3]) + cut)
    assert len(read_trajectories(path, repair=False)) == 3
    rerun = evaluate(cfg)
    assert rerun.complete and [r["index"] for r in rerun.records] == [0, 1, 2, 3]
    assert path.read_bytes().decode("utf-8").count("\n") == 4


def test_undecodable_middle_line_is_dropped_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    good = [record_line({"index": i, "steps": []}).encode() for i in range(3)]
    path.write_bytes(good[0] + b'{"index": 1, "x": "\xff\xfe"}\n' + good[2])
    assert [r["index"] for r in read_trajectories(path)] == [0, 2]
    assert path.read_bytes() == good[0] + good[2]  # repaired in place


def test_unreadable_trajectories_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "trajectories.jsonl"
    path.mkdir()  # not a readable file
    with pytest.raises(OSError, match=r"trajectories\.jsonl"):
        read_trajectories(path)


# ---------------------------------------------------------------------------- run folder lock
def test_second_run_on_a_locked_folder_is_refused(tmp_path: Path) -> None:
    import fcntl

    from openvirl.evaluation.evaluate import RunLockedError

    out = tmp_path / "run"
    out.mkdir()
    with (out / ".eval.lock").open("a+") as holder:  # what a running `openvirl eval` holds
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(RunLockedError, match=r"another `openvirl eval` is writing"):
            evaluate(config(tmp_path, episodes=2))
        assert not (out / "trajectories.jsonl").exists()
    # Released (as when the holder exits, even killed): the run goes ahead.
    assert evaluate(config(tmp_path, episodes=2)).complete


def test_eval_cli_on_a_locked_folder_and_on_a_file_exits_cleanly(tmp_path: Path) -> None:
    import fcntl

    from typer.testing import CliRunner

    from openvirl.cli import app

    out = tmp_path / "run"
    out.mkdir()
    args = ["eval", "--episodes", "2", "--no-progress", "--no-report", "--out"]
    with (out / ".eval.lock").open("a+") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = CliRunner().invoke(app, [*args, str(out)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "another `openvirl eval`" in " ".join(result.output.split())
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    result = CliRunner().invoke(app, [*args, str(a_file)])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit)
    assert "is a file" in " ".join(result.output.split())


# ---------------------------------------------------------------------------- killed sessions
_KILLED_RUN = """
import os, signal, sys
from openvirl.evaluation import EvalConfig, evaluate
from openvirl.policies.base import Usage
from openvirl.policies.oracle import OraclePolicy

class Counting:
    name = "oracle"
    def __init__(self):
        self.inner, self.total_usage, self.calls = OraclePolicy(), Usage(), 0
    def act(self, requests):
        self.calls += 1
        if self.calls > 3:
            os.kill(os.getpid(), signal.SIGKILL)  # kill -9 mid-run
        self.total_usage.completion_tokens += 7 * len(requests)
        return self.inner.act(requests)

evaluate(EvalConfig(episodes=8, batch_size=2, out=sys.argv[1], progress=False, report=False),
         Counting())
"""


def test_killed_sessions_time_and_tokens_are_counted(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    out = tmp_path / "run"
    script = tmp_path / "run_and_die.py"
    script.write_text(_KILLED_RUN)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.run(
        [sys.executable, str(script), str(out)], env=env, timeout=120, capture_output=True
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    assert not (out / "sessions.jsonl").exists()  # the killed run wrote no session line
    live = json.loads((out / "session-live.json").read_text())
    assert live["episodes"] == 6 and live["tokens_generated"] == 42 and live["wall_s"] > 0

    result = evaluate(config(tmp_path, episodes=8))
    sessions = [json.loads(x) for x in (out / "sessions.jsonl").read_text().splitlines()]
    assert len(sessions) == 2 and not (out / "session-live.json").exists()
    killed, resumed = sessions
    assert killed["episodes"] == 6 and killed["tokens_generated"] == 42
    assert "killed" in killed["error"]
    assert resumed["started_episodes"] == 6 and resumed["episodes"] == 2
    assert result.metrics["eval/wall_s"] >= killed["wall_s"] + resumed["wall_s"] - 1e-9


def test_agent_run_files_encode_model_text_with_lone_surrogates(tmp_path: Path) -> None:
    from openvirl.agents.base import write_json

    path = write_json(tmp_path / "result.json", {"reply": "go \ud800 north", "\udfff": [1.5]})
    data = json.loads(path.read_bytes().decode("utf-8"))
    assert data == {"reply": "go \ufffd north", "\ufffd": [1.5]}
