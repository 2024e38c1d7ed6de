"""`openvirl bench NAME ...`: run a V-IRL benchmark with a policy beside the oracle and random.

Examples::

    openvirl bench vqa --city manhattan --policy hf:gemma-3-270m --out runs/bench/vqa
    openvirl bench recognition --city monaco --n 50 --policy random
    openvirl bench localization --centre "Bryant Park" --half-side 150 --policy oracle
    openvirl bench vln --split mini --policy openai:http://127.0.0.1:8000/v1#my-model
    openvirl bench vln --split full --city helsinki --city monaco

Every run scores the requested policy (``--policy``; default ``oracle``) together with the
oracle and random baselines on the same items; the headline (``bench/*`` in ``metrics.json``,
the first column of the table and report) is the requested policy's, and the baselines sit
beside it marked "(baseline)", and writes a run folder (default
``runs/bench/<name>__<policy>__s<seed>``) with config.json, metrics.json, results.jsonl,
data/ (items + manifest), report.md, report.html and plots/; open it with ``openvirl view``.
The default data sets ship with the package; other parameters generate (and cache) theirs.
Bad input prints one ``error:`` line and exits with code 2.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    no_args_is_help=True,
    help="V-IRL benchmarks: localization, recognition, VQA, VLN; model beside oracle and random.",
)

_POLICY = "Model policy spec (oracle, random, hf:PATH, openai:URL#model)."
_OUT = "Run folder (default runs/bench/<name>__<policy>__s<seed>)."
_VISUAL = "Show rendered street views to the model (else the text a sign shows)."


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def _run(call: Callable[[], dict[str, Any]], keys: list[str]) -> None:
    from openvirl.world.errors import WorldError

    try:
        metrics = call()
    except (WorldError, ValueError, ImportError) as err:
        _fail(str(err))
        return
    from rich.console import Console
    from rich.table import Table

    from openvirl.benchmarks.common import column_label

    table = Table(title=f"{metrics['benchmark']} · {metrics['items']} items")
    table.add_column("metric")
    labels = list(metrics["policies"])
    for label in labels:
        table.add_column(column_label(label, metrics["policy"]))
    for key in keys:
        row = []
        for label in labels:
            value = metrics["policies"][label].get(key)
            if isinstance(value, dict):
                value = value.get("value")
            row.append(
                "—" if value is None else f"{value:.1%}" if isinstance(value, float) else str(value)
            )
        table.add_row(key, *row)
    Console().print(table)


def _where(text: str) -> Any:
    from openvirl.agents.base import place_or_point

    return place_or_point(text)


@app.command("vqa")
def vqa_command(
    city: str = typer.Option("manhattan", "--city", help="City whose places are asked about."),
    policy: str = typer.Option("oracle", "--policy", help=_POLICY),
    n: int = typer.Option(100, "--n", help="Questions (places)."),
    seed: int = typer.Option(0, "--seed"),
    visual: bool = typer.Option(False, "--visual/--text", help=_VISUAL),
    single: bool = typer.Option(False, "--single", help="One pass instead of circular."),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
) -> None:
    """Place VQA: which intentions can be accomplished at a place (circular, 4 options)."""
    from openvirl.benchmarks.vqa import VQAConfig, run

    config = VQAConfig(city=city, n=n, seed=seed, policy=policy, visual=visual, circular=not single)
    _run(lambda: run(config, out=out), ["accuracy", "single_accuracy", "macc", "unreadable_rate"])


@app.command("recognition")
def recognition_command(
    city: str = typer.Option("manhattan", "--city", help="City whose places are classified."),
    policy: str = typer.Option("oracle", "--policy", help=_POLICY),
    n: int = typer.Option(100, "--n", help="Places."),
    seed: int = typer.Option(0, "--seed"),
    visual: bool = typer.Option(False, "--visual/--text", help=_VISUAL),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
) -> None:
    """Place recognition: the place type of a storefront among the 96 V-IRL types."""
    from openvirl.benchmarks.recognition import RecognitionConfig, run

    config = RecognitionConfig(city=city, n=n, seed=seed, policy=policy, visual=visual)
    _run(lambda: run(config, out=out), ["macc", "top1", "top3", "top5", "types_present"])


@app.command("localization")
def localization_command(
    city: str = typer.Option("manhattan", "--city"),
    policy: str = typer.Option("oracle", "--policy", help=_POLICY),
    polygon: str | None = typer.Option(
        None, "--polygon", help="'lat,lon; lat,lon; ...' or a file with one 'lat, lon' per line."
    ),
    centre: str = typer.Option("Bryant Park", "--centre", help="Centre of the default square."),
    half_side_m: float = typer.Option(150.0, "--half-side", help="Default square, metres."),
    seed: int = typer.Option(0, "--seed"),
    visual: bool = typer.Option(False, "--visual/--text", help=_VISUAL),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
) -> None:
    """Place localization: find the places of the 20 V-IRL types from street views."""
    from openvirl.agents.base import parse_polygon
    from openvirl.benchmarks.localization import LocalizationConfig, run
    from openvirl.world.errors import WorldError

    try:
        vertices = parse_polygon(polygon) if polygon else None
    except WorldError as err:
        _fail(str(err))
        return
    config = LocalizationConfig(
        city=city,
        polygon=vertices,
        centre=_where(centre),
        half_side_m=half_side_m,
        seed=seed,
        policy=policy,
        visual=visual,
    )
    keys = ["ar10", "ar20", "recall", "precision", "unreadable_rate", "places"]
    _run(lambda: run(config, out=out), keys)


@app.command("vln")
def vln_command(
    split: str = typer.Option("mini", "--split", help="mini or full."),
    city: list[str] | None = typer.Option(
        None, "--city", help="Cities (repeatable; default all bundled)."
    ),
    policy: str = typer.Option("oracle", "--policy", help=_POLICY),
    n: int = typer.Option(10, "--n", help="Routes per city in the full set."),
    mini: int = typer.Option(2, "--mini", help="Routes per city in the mini set."),
    seed: int = typer.Option(0, "--seed"),
    actions: str = typer.Option("absolute", "--actions", help="absolute or relative."),
    visual: bool = typer.Option(False, "--visual/--text", help="Street-view grids (VL)."),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    routes: Path | None = typer.Option(
        None,
        "--routes",
        help="Play this route file instead (our JSONL or a V-IRL route_infos JSON; "
        "its city is the first --city, default manhattan).",
    ),
) -> None:
    """VLN: V-IRL-style routes (40-150 m, 1-2 turns) with success and key-point metrics."""
    from openvirl.benchmarks.vln import CITIES, VLNConfig, run

    if routes is not None and not routes.is_file():
        _fail(f"no route file at {routes}")
    config = VLNConfig(
        routes_file=None if routes is None else str(routes),
        routes_city=city[0] if routes is not None and city else None,
        split=split,
        cities=list(city or CITIES),
        per_city=n,
        mini_per_city=min(mini, n),
        seed=seed,
        policy=policy,
        actions=actions,
        visual=visual,
    )
    _run(
        lambda: run(config, out=out),
        [
            "success",
            "start_reaction",
            "intersection_arrival",
            "intersection_reaction",
            "stop_arrival",
            "unreadable_rate",
        ],
    )


@app.command("build-data", hidden=True)
def build_data_command() -> None:
    """Regenerate the shipped default data sets (maintainers; run after world changes)."""
    from openvirl.benchmarks import localization, recognition, vln, vqa
    from openvirl.benchmarks.common import DATA_DIR, params_hash, write_items

    jobs = [
        ("vqa-manhattan", vqa.VQAConfig(), vqa.build_items),
        ("recognition-manhattan", recognition.RecognitionConfig(), recognition.build_items),
        ("localization-manhattan", localization.LocalizationConfig(), localization.build_items),
        ("vln-routes", vln.VLNConfig(), vln.build_routes),
    ]
    for stem, config, build in jobs:
        items = build(config)
        manifest = write_items(
            DATA_DIR / f"{stem}.jsonl.gz",
            items,
            {
                "benchmark": stem.split("-")[0],
                "params": config.data_params(),
                "params_hash": params_hash(config.data_params()),
            },
        )
        typer.echo(f"{stem}: {manifest['n']} items, sha256 {manifest['sha256'][:16]}")


__all__ = ["app"]
