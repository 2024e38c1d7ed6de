"""`openvirl train sft|ppo|grpo` and `openvirl study`: YAML configs plus ``key=value`` overrides.

Examples::

    openvirl train sft --config sft-gp-l-quick.yaml output_dir=runs/sft max_steps=40
    openvirl train ppo --config ppo-gp-l-quick.yaml --resume
    openvirl train options ppo                  # every option with its default and meaning
    openvirl study --task gp-l --preset quick
    openvirl study --task all --preset smoke --model <text LM> --vl-model <VLM>

Under ``accelerate launch`` the same commands scale to several GPUs::

    accelerate launch --config_file src/openvirl/training/configs/accelerate/multi_gpu.yaml \\
        -m openvirl.training.cli ppo --config ppo-gp-l-paper.yaml

Heavy imports (torch, TRL) happen inside the commands, so ``openvirl --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

ALGORITHMS = ("sft", "ppo", "grpo")

train_app = typer.Typer(
    help="Train a policy: SFT (TRL), multi-turn PPO with a value head, GRPO (TRL).",
    no_args_is_help=True,
    add_completion=False,
)

_CONFIG = typer.Option(
    None,
    "--config",
    "-c",
    help="YAML file of options (a path, or the name of a shipped preset in training/configs).",
)
_RESUME = typer.Option(
    False, "--resume", help="Continue from the latest complete checkpoint in output_dir."
)
_OUT = typer.Option(None, "--out", "-o", help="Run folder (overrides output_dir).")
_OVERRIDES = typer.Argument(
    None, help="Options as key=value (e.g. learning_rate=1e-5 env_kwargs.target=12)."
)


def _config_class(algorithm: str) -> type:
    if algorithm == "sft":
        from openvirl.training.sft import SFTRunConfig

        return SFTRunConfig
    if algorithm == "ppo":
        from openvirl.training.ppo import PPOConfig

        return PPOConfig
    if algorithm == "grpo":
        from openvirl.training.grpo import GRPORunConfig

        return GRPORunConfig
    raise typer.BadParameter(f"unknown algorithm {algorithm!r}; choose one of {ALGORITHMS}.")


def build_config(
    algorithm: str,
    config: Path | None,
    overrides: list[str] | None,
    *,
    resume: bool = False,
    out: Path | None = None,
) -> Any:
    """The config object a ``train`` command runs: file, then overrides, then flags."""
    from openvirl.training.config import load_config

    extra = list(overrides or [])
    if resume:
        extra.append("resume=true")
    if out is not None:
        extra.append(f"output_dir={out}")
    try:
        return load_config(_config_class(algorithm), config, extra)
    except (ValueError, FileNotFoundError) as exc:
        raise typer.BadParameter(str(exc)) from exc


def run(algorithm: str, config: Any) -> Any:
    """Run one training algorithm with a built config; return its result.

    A checkpoint that `--resume` refuses to load (`CheckpointError`: unreadable or unsafe)
    ends the command with its one-line message instead of a traceback.
    """
    from openvirl.training.checkpoint import CheckpointError

    try:
        return _run(algorithm, config)
    except CheckpointError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None


def _run(algorithm: str, config: Any) -> Any:
    if algorithm == "sft":
        from openvirl.training.sft import train_sft

        return train_sft(config)
    if algorithm == "ppo":
        from openvirl.training.ppo import train_ppo

        return train_ppo(config)
    from openvirl.training.grpo import train_grpo

    return train_grpo(config)


def _report(algorithm: str, result: Any) -> None:
    from rich.console import Console

    flops = getattr(result, "flops", float("nan"))
    Console().print(
        f"[green]{algorithm} done[/green]: {result.output_dir} "
        f"(final model {result.final_dir}, {flops / 1e9:.4g} GFLOPs)"
    )


@train_app.command("sft")
def sft_command(
    config: Path | None = _CONFIG,
    resume: bool = _RESUME,
    out: Path | None = _OUT,
    overrides: list[str] | None = _OVERRIDES,
) -> None:
    """Supervised fine-tuning on expert data (TRL SFTTrainer, LoRA or full)."""
    cfg = build_config("sft", config, overrides, resume=resume, out=out)
    _report("sft", run("sft", cfg))


@train_app.command("ppo")
def ppo_command(
    config: Path | None = _CONFIG,
    resume: bool = _RESUME,
    out: Path | None = _OUT,
    overrides: list[str] | None = _OVERRIDES,
) -> None:
    """Multi-turn PPO with sequential revision and a value head (openvirl.training.ppo)."""
    cfg = build_config("ppo", config, overrides, resume=resume, out=out)
    _report("ppo", run("ppo", cfg))


@train_app.command("grpo")
def grpo_command(
    config: Path | None = _CONFIG,
    resume: bool = _RESUME,
    out: Path | None = _OUT,
    overrides: list[str] | None = _OVERRIDES,
) -> None:
    """GRPO through TRL's GRPOTrainer with env-backed rewards."""
    cfg = build_config("grpo", config, overrides, resume=resume, out=out)
    _report("grpo", run("grpo", cfg))


@train_app.command("options")
def options_command(
    algorithm: str = typer.Argument(..., help="sft, ppo or grpo."),
) -> None:
    """Print every option of an algorithm's config with its default and meaning."""
    from openvirl.training.config import describe_options

    typer.echo(describe_options(_config_class(algorithm)))


@train_app.command("presets")
def presets_command() -> None:
    """List the YAML presets shipped with openvirl (usable as --config NAME)."""
    from openvirl.training.config import CONFIGS_DIR

    for path in sorted(CONFIGS_DIR.glob("*.yaml")):
        first = path.read_text(encoding="utf-8").splitlines()[:1]
        typer.echo(f"{path.name:32s} {first[0].lstrip('# ') if first else ''}")


def study_command(
    task: str = typer.Option(
        "gp-l",
        "--task",
        help="Task of the study: gp-l, gp-vl, nav-l, nav-vl, or all (the four in turn into "
        "<out>/<task>/, then all.md/all.json/all.png).",
    ),
    preset: str = typer.Option(
        "quick", "--preset", help="quick (2 CPU cores, ~30 min), paper (8 GPUs) or smoke (tests)."
    ),
    out: Path | None = typer.Option(None, "--out", "-o", help="Study folder."),
    resume: bool = typer.Option(
        True, "--resume/--no-resume", help="Reuse finished stages found in the study folder."
    ),
    model: str | None = typer.Option(None, "--model", help="Override the preset's model."),
    vl_model: str | None = typer.Option(
        None,
        "--vl-model",
        help="Vision-language model of the VL tasks (gp-vl, nav-vl); the L tasks keep --model.",
    ),
    seeds: int = typer.Option(
        1,
        "--seeds",
        min=1,
        help="Repeat the whole study (Init included) with N seeds; adds seeds.md/seeds.json.",
    ),
    overrides: list[str] | None = typer.Argument(
        None, help="Study options as key=value (see `openvirl.training.study.StudyConfig`)."
    ),
) -> None:
    """Init by SFT, then more SFT vs RL at matching compute; ID/OOD curves, plots, deltas."""
    from rich.console import Console

    from openvirl.training.study import (
        check_model_fits,
        check_resume_settings,
        load_study_config,
        run_seeds,
        seed_studies,
    )
    from openvirl.training.study_all import load_all_configs, run_all

    extra = list(overrides or [])
    if model is not None:
        extra.append(f"model={model}")
    if vl_model is not None:
        extra.append(f"vl_model={vl_model}")
    console = Console()
    try:
        if task == "all":
            # every model and every folder's settings, up front
            for config in load_all_configs(preset, extra, out=out, resume=resume):
                for one in seed_studies(config, seeds):
                    check_resume_settings(one)
        else:
            config = load_study_config(task, preset, extra, out=out, resume=resume)
            check_model_fits(config)
            for one in seed_studies(config, seeds):
                check_resume_settings(one)  # before anything trains, as one line
    except (ValueError, FileNotFoundError) as exc:
        # one line: a wrong task, preset, option or model is a user mistake, not a crash
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(2) from None
    if task == "all":
        combined = run_all(preset, extra, out=out, resume=resume, n_seeds=seeds)
        console.print(
            f"[green]studies written to {combined.out}/<task>/[/green]; combined report: "
            f"{combined.out}/all.md, all.json, all.png"
        )
        return
    results, _ = run_seeds(config, seeds)
    for result in results:
        console.print(f"[green]study written to {result.out}/[/green]: study.md, study.json, plots")
        for line in result.summary_lines():
            console.print(f"  {line}")
    if seeds > 1:
        console.print(f"[green]across seeds:[/green] {config.folder}/seeds.md, seeds.json")


def main() -> None:
    """``python -m openvirl.training.cli sft|ppo|grpo ...`` (what ``accelerate launch`` runs)."""
    train_app()


if __name__ == "__main__":
    main()
