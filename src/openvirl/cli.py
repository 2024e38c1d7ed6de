"""The one `openvirl` command; each topic adds its own sub-command group.

Sub-command modules import their heavy dependencies inside the commands, so
`openvirl --help` stays fast.
"""

from __future__ import annotations

import os
import sys

import typer

from openvirl import __version__
from openvirl.agents.cli import app as agent_app
from openvirl.benchmarks.cli import app as bench_app
from openvirl.demo import demo_command
from openvirl.envs.navigation.cli import app as navigate_app
from openvirl.envs.points.cli import app as points_app
from openvirl.evaluation.cli import eval_command
from openvirl.policies.cli import app as model_app
from openvirl.policies.cli import serve_model_command
from openvirl.training.cli import study_command, train_app
from openvirl.viewer.cli import view_command
from openvirl.world.cli import app as city_app

app = typer.Typer(
    name="openvirl",
    help="Offline V-IRL on OpenStreetMap, and an SFT-versus-RL lab for language and vision agents.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(points_app, name="points", help="GeneralPoints: datasets, solver and terminal play.")
app.add_typer(
    navigate_app, name="navigate", help="Street navigation: routes, SFT datasets, terminal play."
)
app.add_typer(city_app, name="city", help="Real-city platform: cities, places, routes, maps.")
app.add_typer(model_app, name="model", help="Models: prepare the embedded Gemma-3-270M, inspect.")
app.add_typer(
    agent_app, name="agent", help="V-IRL agents: Peng, Aria, Vivek, RX-399, Imani, Hiro, Local..."
)
app.add_typer(
    bench_app, name="bench", help="V-IRL benchmarks: localization, recognition, VQA, VLN."
)
app.command("serve-model", help="Serve a policy as an OpenAI-compatible chat API.")(
    serve_model_command
)
app.command("eval", help="Evaluate a policy on a task and split, or a suite.")(eval_command)
app.add_typer(train_app, name="train", help="Train: SFT (TRL), multi-turn PPO, GRPO (TRL).")
app.command("study", help="SFT vs RL from one Init at matching compute; ID/OOD plots.")(
    study_command
)
app.command("demo", help="Run the main job on the embedded defaults and write a report.")(
    demo_command
)
app.command("view", help="Web viewer: runs, episodes step by step, city explorer (local).")(
    view_command
)


PIPED_COLUMNS = 200
"""Console width when output is not a terminal (a pipe, a file, a CI log)."""


def wide_console_when_piped() -> None:
    """Give rich a wide console when stdout is not a terminal, unless ``COLUMNS`` is set.

    Rich falls back to 80 columns without a terminal, so tables piped to a file or a CI log
    lost their right-hand cells ("…"). Setting ``COLUMNS`` keeps every rich console the
    commands create (tables, markdown, progress) at `PIPED_COLUMNS`; a user's own ``COLUMNS``
    wins.
    """
    if "COLUMNS" in os.environ:
        return
    try:
        piped = not sys.stdout.isatty()
    except (AttributeError, ValueError):  # a replaced or closed stdout
        piped = True
    if piped:
        os.environ["COLUMNS"] = str(PIPED_COLUMNS)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"openvirl {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """openvirl: real-city agents and SFT-versus-RL post-training, offline."""
    wide_console_when_piped()


def main() -> None:
    """Entry point of the `openvirl` console script."""
    app()


if __name__ == "__main__":
    main()
