"""`openvirl view`: serve the web viewer for some run folders on this machine.

Examples::

    openvirl view runs/eval/gp-l__id__oracle__s42
    openvirl view runs/eval --open                 # every run under runs/eval, open a browser
    openvirl view runs/sft runs/rl --city manhattan --port 9000

The server listens on loopback (127.0.0.1) unless `--host` says otherwise; pages, maps and
street views are all served by it, nothing comes from the network.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer


def view_command(
    run_dirs: list[Path] | None = typer.Argument(
        None,
        help="Run folders (evaluation, suite, agent or benchmark runs) or folders of runs.",
        show_default=False,
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (loopback)."),
    port: int = typer.Option(8765, "--port", help="TCP port."),
    open_browser: bool = typer.Option(
        False, "--open/--no-open", help="Open the viewer in the default web browser."
    ),
    city: list[str] | None = typer.Option(
        None, "--city", help="Offer only these cities in the explorer (repeatable); default all."
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the web viewer: runs and their metrics, episodes step by step, a city explorer.

    >>> view_command([Path("runs/eval/gp-l__id__oracle__s42")], port=8765)  # doctest: +SKIP
    """
    try:
        import uvicorn

        from openvirl.viewer.app import create_app
    except ImportError as exc:
        typer.secho(
            f"error: the viewer needs FastAPI and uvicorn ({exc}); pip install 'openvirl[viewer]'",
            fg="red",
            err=True,
        )
        raise typer.Exit(2) from exc
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = list(run_dirs or [])
    for path in paths:
        if not path.exists():
            typer.secho(f"note: {path} does not exist; the viewer will say so", fg="yellow")
    app = create_app(paths, city_names=city or None)
    url = f"http://{host}:{port}/"
    typer.echo(f"openvirl viewer on {url} ({len(paths)} run folder(s)); Ctrl-C stops it")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level=log_level)
