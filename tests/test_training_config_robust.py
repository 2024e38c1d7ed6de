"""Configs under hostile or mistaken input (issue 17): YAML alias bombs, syntax errors and
wrong types fail fast with one line, before any model is loaded."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from openvirl.cli import app
from openvirl.training.config import MAX_YAML_ALIASES, load_config, load_yaml
from openvirl.training.ppo import PPOConfig

BOMB = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]" for i in range(8)]
    + ["learning_rate: *i"]
)  # 9**9 = 387 million strings once expanded, from under 500 bytes


def test_alias_bomb_is_refused_fast(tmp_path):
    path = tmp_path / "bomb.yaml"
    path.write_text(BOMB)
    start = time.perf_counter()
    with pytest.raises(ValueError, match=r"bomb\.yaml.*more than 16 aliases"):
        load_config(PPOConfig, path)
    assert time.perf_counter() - start < 2.0


def test_a_few_aliases_still_work():
    data = load_yaml("lr: &lr 0.5\nother: *lr\nlist: &l [1, 2]\nagain: *l\n")
    assert data == {"lr": 0.5, "other": 0.5, "list": [1, 2], "again": [1, 2]}
    many = "\n".join(["x: &x 1"] + [f"k{i}: *x" for i in range(MAX_YAML_ALIASES + 1)])
    with pytest.raises(ValueError, match="aliases"):
        load_yaml(many)


def test_python_objects_and_deep_nesting_are_refused():
    with pytest.raises(ValueError, match="invalid YAML"):
        load_yaml("x: !!python/object/apply:os.system ['true']")
    with pytest.raises(ValueError, match="invalid YAML"):
        load_yaml("[" * 100_000)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_loads_or_fails_with_value_error(text):
    try:
        load_yaml(text, "t.yaml")
    except ValueError as exc:
        assert str(exc).startswith("t.yaml: invalid YAML")


def _cli(*args):
    result = CliRunner().invoke(app, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def _text(result):
    """The output with rich's error panel unwrapped into one line."""
    return " ".join(result.output.replace("│", " ").split())


def test_yaml_syntax_error_is_one_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("learning_rate: [1e-5\nbatch_size: 4\n")
    result = _cli("train", "ppo", "--config", str(path))
    assert result.exit_code == 2
    assert "bad.yaml" in _text(result) and "invalid YAML" in _text(result)
    assert "Traceback" not in result.output


def test_wrong_type_fails_before_the_model_loads(monkeypatch):
    import openvirl.training.cli as cli

    loaded = []
    monkeypatch.setattr(cli, "_run", lambda *a: loaded.append(a))
    for override in ("learning_rate=fast", "num_updates=2.5", "lora=maybe"):
        result = _cli("train", "ppo", "--config", "ppo-gp-l-quick.yaml", override)
        assert result.exit_code == 2, override
        assert "must be" in _text(result) and "Traceback" not in result.output
    assert not loaded  # nothing ran
    result = _cli("train", "ppo", "--config", "ppo-gp-l-quick.yaml", "learning_rate=[1")
    assert result.exit_code == 2 and "invalid YAML" in _text(result)


def test_numbers_for_text_options_are_taken_as_text():
    config = load_config(PPOConfig, "ppo-gp-l-quick.yaml", ["output_dir=2024", "num_updates=1e3"])
    assert config.output_dir == "2024"
    assert config.num_updates == 1000 and isinstance(config.num_updates, int)


def test_study_launcher_command_is_printed_before_it_runs(tmp_path, monkeypatch, capsys):
    import json
    import subprocess

    from openvirl.training import study as study_module
    from openvirl.training.sft import SFTRunConfig
    from openvirl.training.study import StudyConfig

    ran = []

    def fake_run(command, check):
        ran.append(command)
        (tmp_path / "stage" / "summary.json").write_text(json.dumps({"ok": True}))

    monkeypatch.setattr(subprocess, "run", fake_run)
    study = StudyConfig(launcher="accelerate launch --num_processes 2")
    config = SFTRunConfig(output_dir=str(tmp_path / "stage"))
    assert study_module._run_training("sft", config, study) == {"ok": True}
    err = capsys.readouterr().err
    assert "study: running accelerate launch --num_processes 2 -m openvirl.training.cli sft" in err
    assert ran and ran[0][:2] == ["accelerate", "launch"]
