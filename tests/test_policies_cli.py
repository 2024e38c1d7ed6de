"""`openvirl model prepare|info` and the `serve-model` registration."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from openvirl.cli import app
from openvirl.policies import embedded

runner = CliRunner()


def _json_tail(output: str) -> dict:
    return json.loads(output[output.index("{") :])


def test_root_help_lists_the_model_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "serve-model" in result.output and "model" in result.output
    serve_help = runner.invoke(app, ["serve-model", "--help"])
    assert "--policy" in serve_help.output and "--port" in serve_help.output


def test_info_without_loading_reports_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path))
    result = runner.invoke(app, ["model", "info", "--no-load"])
    assert result.exit_code == 0, result.output
    report = _json_tail(result.output)
    assert report["model"] == "gemma-3-270m" and report["prepared"] is False
    assert report["path"] == str(tmp_path / "models" / "gemma-3-270m")


def test_prepare_reports_an_already_prepared_model(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path))
    folder = embedded.embedded_model_dir()
    (folder / "config.json").write_text("{}")
    (folder / embedded.MARKER_FILE).write_text('{"dtype": "float32", "seconds": 47.0}')
    result = runner.invoke(app, ["model", "prepare"])
    assert result.exit_code == 0, result.output
    assert f"{folder} (float32, prepared in 47.0 s)" in result.output


def test_info_loads_a_checkpoint(tmp_path):
    pytest.importorskip("torch")
    from tiny_models import tiny_causal_lm

    path = tiny_causal_lm(tmp_path)
    result = runner.invoke(app, ["model", "info", f"hf:{path}?max_new_tokens=7"])
    assert result.exit_code == 0, result.output
    report = _json_tail(result.output)
    assert report["name"] == "tiny-causal-lm" and report["chat_template"] is True
    assert report["parameters"] > 0 and report["options"]["max_new_tokens"] == 7
    assert report["device"] == "cpu" and report["dtype"] == "torch.float32"
