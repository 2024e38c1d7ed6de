"""`openvirl view`: serve the web viewer for some run folders on this machine.

Examples::

    openvirl view runs/eval/gp-l__id__oracle__s42
    openvirl view runs/eval --open                 # every run under runs/eval, open a browser
    openvirl view runs/sft runs/rl --city manhattan --port 9000
    openvirl view runs/eval --host 0.0.0.0 --token "$(openssl rand -hex 16)"   # on a LAN

The server listens on loopback (127.0.0.1) unless `--host` says otherwise, and answers only
requests whose Host is a loopback name (see `openvirl.viewer.security`). Listening on any other
address needs `--token`: the viewer serves files from this disk, so it must not be open to
whoever can reach the port. Pages, maps and street views are all served by it; nothing comes
from the network.
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
    host: str = typer.Option(
        "127.0.0.1",
        "--host",
        help="Interface to listen on (loopback). Any other address needs --token.",
    ),
    port: int = typer.Option(8765, "--port", help="TCP port (1-65535)."),
    open_browser: bool = typer.Option(
        False, "--open/--no-open", help="Open the viewer in the default web browser."
    ),
    city: list[str] | None = typer.Option(
        None, "--city", help="Offer only these catalog cities in the explorer (repeatable)."
    ),
    token: str | None = typer.Option(
        None,
        "--token",
        help="Secret every request must carry (?token=, a cookie, or Authorization: Bearer); "
        "required with a non-loopback --host.",
        show_default=False,
    ),
    allow_host: list[str] | None = typer.Option(
        None,
        "--allow-host",
        help="Also answer requests for this Host name (repeatable), e.g. the machine's LAN "
        "name; only with --token.",
        show_default=False,
    ),
    log_level: str = typer.Option("warning", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the web viewer: runs and their metrics, episodes step by step, a city explorer.

    >>> view_command([Path("runs/eval/gp-l__id__oracle__s42")], port=8765)  # doctest: +SKIP
    """
    try:
        import uvicorn

        from openvirl.viewer.app import create_app
        from openvirl.viewer.security import is_loopback_bind
    except ImportError as exc:
        typer.secho(
            f"error: the viewer needs FastAPI and uvicorn ({exc}); pip install 'openvirl[viewer]'",
            fg="red",
            err=True,
        )
        raise typer.Exit(2) from exc
    if not 1 <= port <= 65535:
        typer.secho(f"error: --port {port} is not a TCP port (1-65535)", fg="red", err=True)
        raise typer.Exit(2)
    if token is not None and len(token) < 8:
        typer.secho("error: --token must be at least 8 characters", fg="red", err=True)
        raise typer.Exit(2)
    loopback = is_loopback_bind(host)
    if not loopback and not token:
        typer.secho(
            f"error: --host {host} would serve your run folders (and anything they link to) "
            "to every machine that can reach this one; add --token SECRET, or keep the "
            "default 127.0.0.1",
            fg="red",
            err=True,
        )
        raise typer.Exit(2)
    if allow_host and not token:
        typer.secho("error: --allow-host needs --token", fg="red", err=True)
        raise typer.Exit(2)
    allowed: list[str] | None = None
    if token:
        wildcard = host in ("0.0.0.0", "::", "")
        # A wildcard address is reached by names we cannot know: the token is the guard.
        allowed = ["*"] if wildcard else [host, *(allow_host or [])]
    if not loopback:
        typer.secho(
            f"warning: listening on {host}, beyond this machine; every request needs the "
            "token. Do not expose the viewer to untrusted networks.",
            fg="yellow",
            err=True,
        )
    cities = list(city or [])
    if cities:
        from openvirl.viewer.cities import CityService

        service = CityService(None)
        unknown = [c for c in cities if service.canonical(c) is None]
        if unknown:
            known = ", ".join(service.offered_names()) or "none"
            typer.secho(
                f"error: --city {unknown[0]!r} is not a catalog city (known: {known}); add an "
                "extract with `openvirl city add PATH --name NAME` first",
                fg="red",
                err=True,
            )
            raise typer.Exit(2)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    paths = list(run_dirs or [])
    for path in paths:
        if not path.exists():
            typer.secho(f"note: {path} does not exist; the viewer will say so", fg="yellow")
    app = create_app(paths, city_names=cities or None, token=token, allowed_hosts=allowed)
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    typer.echo(f"openvirl viewer on {url} ({len(paths)} run folder(s)); Ctrl-C stops it")
    if open_browser:
        import threading
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level=log_level)
