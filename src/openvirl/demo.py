"""`openvirl demo`: the main job on the embedded defaults (filled in below)."""

from __future__ import annotations

from pathlib import Path

import typer


def demo_command(out: Path = typer.Option(Path("demo-output"), help="Output directory.")) -> None:
    """Run the demo."""
    raise typer.Exit(0)
