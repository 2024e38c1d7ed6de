"""`openvirl navigate ...`: route files, SFT datasets, and terminal play."""

from __future__ import annotations

import json
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True, help="Street navigation: routes, datasets, terminal play.")

_ACTIONS_HELP = (
    "Action space: 'absolute' (8 compass words) or 'relative' (left, right, slightly...)."
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


@app.command("routes")
def routes_command(
    out: Path = typer.Option(..., "--out", help="Output file: .jsonl, .jsonl.gz or .json (V-IRL)."),
    city: str = typer.Option("manhattan", help="City name or OSM file path."),
    n: int = typer.Option(100, "--n", min=1, help="Routes to generate."),
    seed: int = typer.Option(0, help="Generator seed; route i depends only on (seed, i)."),
    split: str | None = typer.Option(
        None, help="'train' or 'test': keep routes whose ends lie in that side's area cells."
    ),
    min_length: float = typer.Option(150.0, help="Shortest walking length, metres."),
    max_length: float = typer.Option(1500.0, help="Longest walking length, metres."),
    max_turns: int = typer.Option(5, help="Most turning points before the destination."),
) -> None:
    """Generate a route dataset in a city (JSONL plus a hashed manifest, or V-IRL JSON)."""
    from openvirl.envs.navigation.routes import (
        GenerationConfig,
        RouteGenerationError,
        describe_split,
        generate_routes,
        write_routes,
        write_virl,
    )
    from openvirl.world.errors import WorldError

    config = GenerationConfig(min_length_m=min_length, max_length_m=max_length, max_turns=max_turns)
    try:
        routes = generate_routes(city, n, seed=seed, split=split, config=config, progress=True)
    except (RouteGenerationError, WorldError, ValueError) as err:
        _fail(str(err))
    if out.name.endswith(".json"):
        write_virl(routes, out)
        typer.echo(f"wrote {len(routes)} routes to {out} (V-IRL route_infos format)")
        return
    manifest = write_routes(
        routes,
        out,
        manifest={
            "city": city,
            "seed": seed,
            "n": n,
            "split": split,
            "generator": vars(config),
            "split_rule": describe_split(config.cell_deg, config.test_percent),
        },
    )
    typer.echo(f"wrote {len(routes)} routes to {out} (manifest {manifest})")


@app.command("convert")
def convert_command(
    source: Path = typer.Argument(..., help="A .jsonl/.jsonl.gz route file or a route_infos.json."),
    out: Path = typer.Argument(..., help="Output: .json writes V-IRL format, .jsonl ours."),
    city: str = typer.Option(
        "unknown",
        help="City of a V-IRL file that does not name one (files we wrote carry theirs).",
    ),
) -> None:
    """Convert between our JSONL routes and V-IRL / SFTvsRL `route_infos.json`."""
    from openvirl.envs.navigation.routes import (
        RouteFormatError,
        read_routes,
        write_routes,
        write_virl,
    )

    try:
        routes = read_routes(source, city=city)
    except (RouteFormatError, FileNotFoundError) as err:
        _fail(str(err))
    if out.name.endswith(".json"):
        write_virl(routes, out)
    else:
        write_routes(routes, out, manifest={"converted_from": source.name})
    typer.echo(f"converted {len(routes)} routes: {source} -> {out}")


def _route_file(path: Path | None, city: str | None):
    """The routes of a --routes file, checked against their city; None without a file."""
    if path is None:
        return None
    from openvirl.envs.navigation.virl_io import load_route_file

    return load_route_file(path, city=city)


@app.command("dataset")
def dataset_command(
    out: Path = typer.Option(..., "--out", help="Output folder."),
    city: str = typer.Option("manhattan", help="City of the train/test routes."),
    actions: str = typer.Option("absolute", help=_ACTIONS_HELP),
    instructions: str = typer.Option("reference", help="'reference' or 'headings'."),
    visual: bool = typer.Option(False, help="VL: write view grids and the vision prompt."),
    n_train: int | None = typer.Option(
        None, "--n-train", min=0, help="Training routes (default all)."
    ),
    n: int | None = typer.Option(None, "--n", min=0, help="Held-out routes (default all)."),
    seed: int = typer.Option(42, help="Dataset seed."),
    routes: Path | None = typer.Option(
        None,
        "--routes",
        help="Train on this route file instead (our JSONL or a V-IRL route_infos JSON, "
        "whose city is --city).",
    ),
    test_routes: Path | None = typer.Option(
        None, "--test-routes", help="Hold out this route file instead of the city's test split."
    ),
) -> None:
    """Write SFT pairs (every rail position of the train routes) and held-out test routes."""
    from openvirl.envs.navigation.dataset import build_dataset
    from openvirl.world.errors import WorldError

    try:
        manifest = build_dataset(
            out,
            n_train=n_train,
            n_test=n,
            seed=seed,
            city=city,
            actions=actions,
            instructions=instructions,
            visual=visual,
            train_routes=None if routes is None else str(routes),
            test_routes=None if test_routes is None else str(test_routes),
        )
    except (ValueError, ImportError, FileNotFoundError, WorldError) as err:
        _fail(str(err))
    c = manifest["counts"]
    typer.echo(
        f"wrote {c['train_rows']} SFT pairs from {c['train_routes']} train routes and "
        f"{c['test_routes']} test routes to {out}"
    )


@app.command("play")
def play_command(
    city: str = typer.Option("monaco", help="City to walk in (routes are generated there)."),
    preset: str | None = typer.Option(None, help="Play a preset's routes instead (e.g. human)."),
    actions: str = typer.Option("absolute", help=_ACTIONS_HELP),
    visual: bool = typer.Option(False, help="Render the 2x2 view grid at every position."),
    image: Path = typer.Option(
        Path("navigation_view.png"), help="With --visual: PNG written at every position."
    ),
    seed: int = typer.Option(0, help="Seed of the routes and of the first episode."),
    routes_arg: str = typer.Option(
        "1",
        "--routes",
        help="Number of routes to generate and play, or a route FILE to play (our JSONL or "
        "a V-IRL route_infos JSON, whose city is --city).",
    ),
    attempts: int = typer.Option(2, help="Attempts per position."),
) -> None:
    """Walk a route in the terminal: type forward, stop, or a direction (e.g. north, left)."""
    from rich.console import Console

    from openvirl.envs.navigation.env import NavigationEnv
    from openvirl.envs.navigation.rail import facing_text
    from openvirl.envs.navigation.routes import RouteGenerationError, generate_routes
    from openvirl.world.errors import WorldError

    console = Console()
    route_file = None if routes_arg.strip().isdigit() else Path(routes_arg)
    routes = 0 if route_file is not None else int(routes_arg)
    try:
        if route_file is not None:
            planned = _route_file(route_file, city)
            routes = len(planned)
            env = NavigationEnv(
                routes=planned, city=city, actions=actions, visual=visual, max_attempts=attempts
            )
        elif preset:
            env = NavigationEnv(
                preset=preset, actions=actions, visual=visual, max_attempts=attempts
            )
        else:
            with console.status(f"planning {routes} route(s) in {city}..."):
                planned = generate_routes(city, routes, seed=seed)
            env = NavigationEnv(
                routes=planned, city=city, actions=actions, visual=visual, max_attempts=attempts
            )
    except (RouteGenerationError, WorldError, ValueError, ImportError, FileNotFoundError) as err:
        _fail(str(err))
    won = 0
    for k in range(routes):
        try:
            options = None if preset and route_file is None else {"route_index": k}
            obs, info = env.reset(seed=seed + k, options=options)
        except ImportError as err:
            _fail(str(err))
        console.rule(f"route {k + 1}: {info['route_id']} in {info['city']}")
        console.print(info["instruction"])
        console.print("Type forward, stop, or a direction; an empty line gives up.")
        shown = -1
        while True:
            position = f"[{info['position'] + 1}/{info['rail_length']}]"
            text = info["landmark"] if not visual else "You see the 4 views"
            if info["at_intersection"]:
                text += "; You observe an intersection"
            if info["position"] == 0:
                text += f"; {facing_text(info['init_heading'])}"
            console.print(f"{position} {text}")
            if visual and shown != info["position"]:
                obs["image"].save(image)
                shown = info["position"]
                console.print(f"  view grid (front, right / back, left) saved to {image}")
            try:
                typed = input("action> ").strip()
            except EOFError:
                typed = ""
            if not typed:
                console.print(f"The answer was [green]{info['gt_action']}[/green].")
                break
            expected = info["gt_action"]
            answer = json.dumps({"action": typed})
            obs, reward, terminated, _, info = env.step(answer)
            colour = "green" if info["outcome"] == "correct" else "yellow"
            # The format reminder is for models; a person needs the first sentence only.
            message = info["feedback"].split(" Try again")[0]
            console.print(f"[{colour}]{info['outcome']}[/{colour}] ({reward:+g}): {message}")
            if terminated:
                won += bool(info.get("success"))
                if not info.get("success"):
                    console.print(f"The answer was [green]{expected}[/green].")
                break
    console.print(f"reached {won}/{routes} destinations")


@app.command("virl-cities")
def virl_cities_command(
    per_city: int = typer.Option(2, "--per-city", help="Routes per city (V-IRL's mini: 2)."),
    overpass_url: str | None = typer.Option(
        None, "--overpass-url", help="Overpass interpreter URL (env OPENVIRL_OVERPASS_URL)."
    ),
    nominatim_url: str | None = typer.Option(
        None, "--nominatim-url", help="Nominatim base URL (env OPENVIRL_NOMINATIM_URL)."
    ),
    rebuild: bool = typer.Option(False, help="Generate the routes again."),
) -> None:
    """Build the `visual-ood-virl` routes: V-IRL's nine VLN-mini cities, fetched from OSM.

    Needs the network once (each region's extract and the routes are cached); afterwards
    `--preset visual-ood-virl` / `gym.make(..., preset="visual-ood-virl")` work offline.
    """
    from openvirl.envs.navigation.routes import RouteGenerationError
    from openvirl.envs.navigation.virl_cities import build_virl_route_set, route_set_file
    from openvirl.world.errors import WorldError
    from openvirl.world.fetch import FetchOptions

    if per_city < 1:
        _fail(f"--per-city must be >= 1, got {per_city}.")
    try:
        options = FetchOptions(overpass_url=overpass_url, nominatim_url=nominatim_url)
        routes = build_virl_route_set(per_city=per_city, options=options, rebuild=rebuild)
    except (RouteGenerationError, WorldError, ValueError) as err:
        _fail(str(err))
    cities = sorted({r.city for r in routes})
    typer.echo(
        f"{len(routes)} visual-ood-virl routes in {len(cities)} cities ({', '.join(cities)}): "
        f"{route_set_file(per_city=per_city)}. Map data © OpenStreetMap contributors (ODbL)."
    )


@app.command("build-presets", hidden=True)
def build_presets_command(
    out: Path = typer.Option(None, help="Folder (default: the package's presets folder)."),
) -> None:
    """Regenerate the shipped preset route files (maintainers)."""
    from openvirl.envs.navigation.splits import PRESET_DIR, build_presets

    for manifest in build_presets(out or PRESET_DIR):
        typer.echo(f"wrote {manifest}")
