"""`openvirl train` and `openvirl study` command lines: presets, overrides, helpful errors."""

from __future__ import annotations

from typer.testing import CliRunner

from openvirl.cli import app
from openvirl.training.cli import build_config
from openvirl.training.config import CONFIGS_DIR, load_config


def test_every_shipped_preset_loads_into_its_config():
    from openvirl.training.grpo import GRPORunConfig
    from openvirl.training.ppo import PPOConfig
    from openvirl.training.sft import SFTRunConfig
    from openvirl.training.study import StudyConfig

    classes = {"sft": SFTRunConfig, "ppo": PPOConfig, "grpo": GRPORunConfig,
               "study": StudyConfig}  # fmt: skip
    presets = sorted(CONFIGS_DIR.glob("*.yaml"))
    assert len(presets) >= 9
    for path in presets:
        load_config(classes[path.name.split("-")[0]], path)
    for name in ("zero2.json", "zero3.json", "zero2-ppo.json"):
        assert (CONFIGS_DIR / "deepspeed" / name).is_file()


def test_overrides_types_and_flags():
    config = build_config(
        "ppo",
        "ppo-gp-l-quick.yaml",
        ["learning_rate=1e-5", "env_kwargs.target=10"],
        resume=True,
        out="runs/x",
    )
    assert config.learning_rate == 1e-5 and config.env_kwargs["target"] == 10
    assert config.env_kwargs["max_attempts"] == 2  # the rest of the preset's dict is kept
    assert config.resume and config.output_dir == "runs/x"


def test_unknown_option_suggests_the_closest():
    result = CliRunner().invoke(app, ["train", "ppo", "learnign_rate=1e-5"])
    assert result.exit_code != 0
    assert "learning_rate" in result.output


def test_options_and_presets_commands():
    runner = CliRunner()
    options = runner.invoke(app, ["train", "options", "ppo"])
    assert options.exit_code == 0 and "gae_lambda = 0.95" in options.output
    assert "lambda of generalized advantage estimation" in options.output
    presets = runner.invoke(app, ["train", "presets"])
    assert "study-gp-l-quick.yaml" in presets.output
    study = runner.invoke(app, ["study", "--help"])
    assert study.exit_code == 0 and "--preset" in study.output
