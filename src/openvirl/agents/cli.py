"""`openvirl agent NAME ...`: run one of V-IRL's exemplar agents and write its run folder.

Examples::

    openvirl agent route-optimizer                      # Peng's midtown demo, baseline
    openvirl agent route-optimizer --sentence "I want to see Bryant Park, Macy's and the \
Empire State Building" --policy openai:http://127.0.0.1:8000/v1#my-model
    openvirl agent place-recommender --start "Bryant Park" --intention "lunch, I am from Sichuan"
    openvirl agent estate --homes my_homes.csv --requirements "a park and a gym"
    openvirl agent urban-counter --start "Grand Central Terminal" --end "Bryant Park"
    openvirl agent urban-planner --polygon "40.752,-73.985; 40.755,-73.985; 40.755,-73.980"
    openvirl agent explorer --city helsinki --start Kappeli --intention "local food, not spicy"
    openvirl agent direction-giver --question "Where can I buy flowers?"
    openvirl agent tourist --question "How do I get to Bryant Park?" --policy oracle
    openvirl agent concierge --day Sa --start-time 10:00 --end-time 17:00

Each agent also answers to its V-IRL name (peng, aria, vivek, rx399, imani, hiro, local, ling,
diego). Without `--policy` the agent runs its deterministic baseline; with one, every LLM step
goes to that policy (see `openvirl.policies.registry` for specs) and unreadable replies fall
back to the baseline. The run folder (default ``runs/agents/<name>``) holds config.json,
result.json, metrics.json, report.md and the map PNG(s); open it with ``openvirl view``. Bad
input (a place not in the city, a polygon off the map) prints one ``error:`` line and exits 2.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(
    no_args_is_help=True,
    help="V-IRL exemplar agents: route optimizer, recommenders, urban robots, explorer, ...",
)

_CITY = "City name (see `openvirl city list`) or path of an OSM file."
_POLICY = "Policy spec (oracle, random, hf:PATH, openai:URL#model); default: the baseline."
_OUT = "Run folder to write (default runs/agents/<agent>)."
_JSON = "Print the result as JSON."
_PLACES = (
    "Where places come from: osm (default, offline) or google (Google Places, needs "
    "GOOGLE_MAPS_API_KEY; billed per request); default $OPENVIRL_PLACES."
)


def _places_city(city: str, places: str | None) -> Any:
    """None for the offline OSM places (the agent loads the city), else the city with its
    `search`/`nearby`/`details` answered by the chosen provider."""
    from openvirl.world.providers import OSMPlaces, ProviderCity, place_provider_for
    from openvirl.world.providers.select import PLACES_ENV

    if (places or os.environ.get(PLACES_ENV, "osm")).strip().lower() == "osm":
        return None
    from openvirl.agents.base import load_city

    loaded = load_city(city)
    provider = place_provider_for(places, loaded)
    return None if isinstance(provider, OSMPlaces) else ProviderCity(loaded, provider)


_STRICT = (
    "Fail with an error when a model answer cannot be used, instead of falling back to the "
    "deterministic baseline."
)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def _policy(spec: str | None):
    if not spec:
        return None
    from openvirl.policies.registry import make_policy

    try:
        return make_policy(spec)
    except (ValueError, ImportError) as err:
        _fail(str(err))


def _run(
    name: str, build: Callable[[], Any], out: Path | None, as_json: bool, strict: bool = False
) -> None:
    """Build the agent, run it, print a summary; turn bad input into one error line.

    With `strict`, an unusable model answer is an error (`ModelAnswerError`, exit code 2)
    rather than a silent fallback; without it, fallbacks are reported on stderr too.
    """
    from openvirl.agents.llm import fallback_notice, strict_answers
    from openvirl.world.errors import WorldError

    folder = out or Path("runs") / "agents" / name
    import warnings

    try:
        agent = build()
        with strict_answers(strict), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            result = agent.run(out_dir=folder)
    except (WorldError, ValueError) as err:
        _fail(str(err))
        return
    for w in caught:  # e.g. listings off the map, skipped
        typer.secho(f"warning: {w.message}", fg="yellow", err=True)
    policy = getattr(agent, "policy", None)
    notice = fallback_notice(result.metrics, str(getattr(policy, "name", "the model")))
    if notice:
        typer.secho(f"warning: {notice}", fg="yellow", err=True)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=2, default=str))
        return
    report = folder / "report.md"
    from rich.console import Console
    from rich.markdown import Markdown

    console = Console()
    if report.is_file():
        text = report.read_text(encoding="utf-8")
        console.print(
            Markdown("\n".join(line for line in text.splitlines() if not line.startswith("![")))
        )
    console.print(
        f"[dim]run folder: {folder}  ·  map: {result.map_png}  ·  "
        f"open with `openvirl view {folder}`[/dim]"
    )


_CONFIG = (
    "A V-IRL YAML task config (tools/cfgs/...); its fields that map onto this agent are used "
    "(see the README), options given here win."
)


def _virl(
    ctx: typer.Context, agent: str, path: Path | None, values: dict[str, Any]
) -> dict[str, Any]:
    """The command's parameters, with a V-IRL config's fields for those not given here."""
    if path is None:
        return values
    from openvirl.agents.virl_config import map_city, options_from_yaml

    try:
        options, sources = options_from_yaml(path, agent)
        used = []
        for key, value in options.items():
            source = ctx.get_parameter_source(key)
            if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
                continue
            values[key] = map_city(value) if key == "city" else value
            used.append(f"{key} ({sources[key]})")
    except ValueError as err:
        _fail(str(err))
    typer.secho(f"from {path.name}: {', '.join(used) or 'nothing'}", err=True, dim=True)
    return values


def _where(text: str | None) -> Any:
    from openvirl.agents.base import place_or_point

    return None if text is None else place_or_point(text)


def _command(name: str, alias: str, help_text: str):
    """Register a command under its name and, hidden, under its V-IRL persona's name."""

    def decorator(fn: Callable[..., None]) -> Callable[..., None]:
        app.command(name, help=help_text)(fn)
        app.command(alias, help=f"Alias of `{name}`.", hidden=True)(fn)
        return fn

    return decorator


@_command("route-optimizer", "peng", "Peng: the shortest walking order through places.")
def route_optimizer_command(
    ctx: typer.Context,
    stops: list[str] | None = typer.Argument(None, help="Places to visit, in the given order."),
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    start: str | None = typer.Option(
        None,
        "--start",
        help="Start place or 'lat,lon' "
        "(default: the demo's Empire State Building, or the first "
        "stop when stops are given).",
    ),
    sentence: str | None = typer.Option(None, "--sentence", help="A sentence naming the places."),
    round_trip: bool = typer.Option(True, "--round-trip/--one-way", help="Come back at the end."),
    policy: str | None = typer.Option(None, "--policy", help=_POLICY),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Peng: visit places in the shortest walking order (midtown demo without arguments).

    >>> # openvirl agent route-optimizer "Bryant Park" "Macy's" "Grand Central Terminal"
    """
    v = _virl(ctx, "route_optimizer", config_file, locals())
    stops, city, start, sentence, round_trip = (
        v["stops"],
        v["city"],
        v["start"],
        v["sentence"],
        v["round_trip"],
    )
    from openvirl.agents.route_optimizer import (
        DEMO_START,
        RouteOptimizer,
        RouteOptimizerConfig,
    )

    def build():
        from openvirl.world.catalog import resolve

        # The city first: an unknown one is the error to report, not the missing places.
        is_demo_city = resolve(city).name == "manhattan"
        config = RouteOptimizerConfig(city=city, sentence=sentence, round_trip=round_trip)
        if stops or sentence:
            config.stops = list(stops or [])
            demo = DEMO_START if is_demo_city and not stops else None
            config.start = _where(start) if start else demo
        elif not is_demo_city:
            _fail("give the places to visit (arguments or --sentence); the demo is Manhattan's.")
        elif start:
            config.start = _where(start)
        return RouteOptimizer(config, _policy(policy))

    _run("route_optimizer", build, out, as_json, strict)


@_command("place-recommender", "aria", "Aria: nearby places ranked for a persona's intention.")
def place_recommender_command(
    ctx: typer.Context,
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    start: str = typer.Option("Empire State Building", "--start", help="Where the person is."),
    persona: str = typer.Option(
        "Peng, a graduate student from Chengdu, Sichuan, who loves spicy food", "--persona"
    ),
    intention: str = typer.Option("find a restaurant for lunch", "--intention"),
    radius_m: float = typer.Option(800.0, "--radius", help="Search radius, metres."),
    top_k: int = typer.Option(5, "--top", help="Places shown."),
    policy: str | None = typer.Option(None, "--policy", help=_POLICY),
    places: str | None = typer.Option(None, "--places", help=_PLACES),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Aria: recommend nearby places for a persona and an intention."""
    v = _virl(ctx, "place_recommender", config_file, locals())
    city, start, persona, intention, top_k = (
        v["city"],
        v["start"],
        v["persona"],
        v["intention"],
        v["top_k"],
    )
    from openvirl.agents.place_recommender import PlaceRecommender, PlaceRecommenderConfig

    def build():
        config = PlaceRecommenderConfig(
            city=city,
            start=_where(start),
            persona=persona,
            intention=intention,
            radius_m=radius_m,
            top_k=top_k,
        )
        return PlaceRecommender(config, _policy(policy), city=_places_city(city, places))

    _run("place_recommender", build, out, as_json, strict)


@_command("estate", "vivek", "Vivek: homes rated by what is within walking distance.")
def estate_command(
    ctx: typer.Context,
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    homes: Path | None = typer.Option(
        None,
        "--homes",
        help="CSV of homes (default: the bundled midtown sample with synthetic rents).",
    ),
    requirements: str = typer.Option(
        "a supermarket, a subway station and a gym within walking distance", "--requirements"
    ),
    radius_m: float = typer.Option(400.0, "--radius", help="Walking distance, metres."),
    min_rent: float = typer.Option(1000.0, "--min-rent"),
    max_rent: float = typer.Option(3000.0, "--max-rent"),
    policy: str | None = typer.Option(None, "--policy", help=_POLICY),
    places: str | None = typer.Option(None, "--places", help=_PLACES),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Vivek: rate candidate homes by the places within walking distance, best first."""
    v = _virl(ctx, "estate", config_file, locals())
    city, homes, requirements, radius_m, min_rent, max_rent = (
        v["city"],
        v["homes"],
        v["requirements"],
        v["radius_m"],
        v["min_rent"],
        v["max_rent"],
    )
    from openvirl.agents.estate import EstateRecommender, EstateRecommenderConfig

    def build():
        config = EstateRecommenderConfig(
            city=city,
            homes=str(homes) if homes else None,
            requirements=requirements,
            radius_m=radius_m,
            min_rent=min_rent,
            max_rent=max_rent,
        )
        return EstateRecommender(config, _policy(policy), city=_places_city(city, places))

    _run("estate", build, out, as_json, strict)


_KINDS = "Street objects to count (repeatable): waste_basket, bench, fire_hydrant, ..."


@_command("urban-counter", "rx399", "RX-399: count street objects along a walk.")
def urban_counter_command(
    ctx: typer.Context,
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    start: str = typer.Option("Grand Central Terminal", "--start"),
    end: str = typer.Option("United Nations Headquarters", "--end"),
    kind: list[str] | None = typer.Option(None, "--kind", help=_KINDS),
    sight_m: float = typer.Option(20.0, "--sight", help="Sight radius, metres."),
    perception: str = typer.Option("oracle", "--perception", help="oracle or policy."),
    policy: str | None = typer.Option(None, "--policy", help="Perception policy spec."),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """RX-399: walk a route and count street objects (OSM ground truth, or a policy's eyes)."""
    v = _virl(ctx, "urban_counter", config_file, locals())
    city, start, end, kind = (v["city"], v["start"], v["end"], v["kind"])
    from openvirl.agents.urban import DEFAULT_KINDS, UrbanCounter, UrbanCounterConfig

    def build():
        config = UrbanCounterConfig(
            city=city,
            start=_where(start),
            end=_where(end),
            kinds=list(kind or DEFAULT_KINDS),
            sight_radius_m=sight_m,
            perception=perception,
        )
        return UrbanCounter(config, _policy(policy))

    _run("urban_counter", build, out, as_json, strict)


@_command("urban-planner", "imani", "Imani: sweep a polygon, count and map street objects.")
def urban_planner_command(
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    polygon: str | None = typer.Option(
        None, "--polygon", help="'lat,lon; lat,lon; ...' or a file with one 'lat, lon' per line."
    ),
    centre: str = typer.Option(
        "Grand Central Terminal", "--centre", help="Centre of the default square."
    ),
    half_side_m: float = typer.Option(300.0, "--half-side", help="Default square, metres."),
    kind: list[str] | None = typer.Option(None, "--kind", help=_KINDS),
    spacing_m: float = typer.Option(20.0, "--spacing", help="Sweep grid spacing, metres."),
    perception: str = typer.Option("oracle", "--perception", help="oracle or policy."),
    policy: str | None = typer.Option(None, "--policy", help="Perception policy spec."),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Imani: sweep an area, count street objects and draw their heatmaps."""
    from openvirl.agents.base import parse_polygon
    from openvirl.agents.urban import DEFAULT_KINDS, UrbanPlanner, UrbanPlannerConfig

    def build():
        config = UrbanPlannerConfig(
            city=city,
            polygon=parse_polygon(polygon) if polygon else None,
            centre=_where(centre),
            half_side_m=half_side_m,
            kinds=list(kind or DEFAULT_KINDS),
            spacing_m=spacing_m,
            perception=perception,
        )
        return UrbanPlanner(config, _policy(policy))

    _run("urban_planner", build, out, as_json, strict)


@_command("explorer", "hiro", "Hiro: follow an intention through the streets.")
def explorer_command(
    ctx: typer.Context,
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    start: str = typer.Option("Times Square", "--start"),
    intention: str = typer.Option("local food, not spicy", "--intention"),
    sight: str = typer.Option("auto", "--sight", help="view, cone or auto."),
    max_steps: int = typer.Option(60, "--max-steps"),
    policy: str | None = typer.Option(None, "--policy", help=_POLICY),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Hiro: explore until a place that fits the intention is entered."""
    v = _virl(ctx, "explorer", config_file, locals())
    city, start, intention = (v["city"], v["start"], v["intention"])
    from openvirl.agents.explorer import Explorer, ExplorerConfig

    def build():
        config = ExplorerConfig(
            city=city, start=_where(start), intention=intention, sight=sight, max_steps=max_steps
        )
        return Explorer(config, _policy(policy))

    _run("explorer", build, out, as_json, strict)


@_command("direction-giver", "local", "Local: landmark directions to the place asked for.")
def direction_giver_command(
    ctx: typer.Context,
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    start: str = typer.Option("Empire State Building", "--start"),
    question: str = typer.Option("How do I get to Bryant Park?", "--question"),
    heading: int = typer.Option(0, "--heading", help="Where the asker faces, degrees."),
    policy: str | None = typer.Option(None, "--policy", help=_POLICY),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Local: answer a way-finding question with landmark directions."""
    v = _virl(ctx, "direction_giver", config_file, locals())
    city, start, question, heading = (v["city"], v["start"], v["question"], v["heading"])
    from openvirl.agents.direction import DirectionGiver, DirectionGiverConfig

    def build():
        config = DirectionGiverConfig(
            city=city, start=_where(start), question=question, init_heading=heading
        )
        return DirectionGiver(config, _policy(policy))

    _run("direction_giver", build, out, as_json, strict)


@_command("tourist", "ling", "Ling: follow Local's directions, asking again after a failure.")
def tourist_command(
    ctx: typer.Context,
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    start: str = typer.Option("Empire State Building", "--start"),
    question: str = typer.Option("How do I get to Bryant Park?", "--question"),
    max_asks: int = typer.Option(3, "--max-asks", help="Directions asked in all."),
    actions: str = typer.Option("absolute", "--actions", help="absolute or relative."),
    policy: str | None = typer.Option(
        None, "--policy", help="Walking policy (default: the rail's expert)."
    ),
    local_policy: str | None = typer.Option(None, "--local-policy", help="Local's policy."),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Ling: walk to a place in the navigation env by Local's directions."""
    v = _virl(ctx, "tourist", config_file, locals())
    city, start, question = (v["city"], v["start"], v["question"])
    from openvirl.agents.direction import Tourist, TouristConfig

    def build():
        config = TouristConfig(
            city=city, start=_where(start), question=question, max_asks=max_asks, actions=actions
        )
        return Tourist(config, _policy(policy), local_policy=_policy(local_policy))

    _run("tourist", build, out, as_json, strict)


@_command("concierge", "diego", "Diego: a day plan within a time budget.")
def concierge_command(
    ctx: typer.Context,
    city: str = typer.Option("manhattan", "--city", help=_CITY),
    start: str = typer.Option("Grand Central Terminal", "--start"),
    day: str = typer.Option("Sa", "--day", help="Mo, Tu, We, Th, Fr, Sa or Su."),
    start_time: str = typer.Option("09:00", "--start-time"),
    end_time: str = typer.Option("18:00", "--end-time"),
    interest: list[str] | None = typer.Option(
        None,
        "--interest",
        help="Place types to visit "
        "(repeatable; default museum, art gallery, "
        "tourist attraction, park).",
    ),
    persona: str = typer.Option(
        "Peng, a graduate student from Chengdu, Sichuan, who loves art and spicy food",
        "--persona",
    ),
    policy: str | None = typer.Option(None, "--policy", help=_POLICY),
    places: str | None = typer.Option(None, "--places", help=_PLACES),
    out: Path | None = typer.Option(None, "--out", help=_OUT),
    as_json: bool = typer.Option(False, "--json", help=_JSON),
    config_file: Path | None = typer.Option(None, "--config", help=_CONFIG),
    strict: bool = typer.Option(False, "--strict", help=_STRICT),
) -> None:
    """Diego: plan a walking day, one activity at a time, meals by the place recommender."""
    v = _virl(ctx, "concierge", config_file, locals())
    city, start, persona = (v["city"], v["start"], v["persona"])
    from openvirl.agents.concierge import Concierge, ConciergeConfig

    def build():
        config = ConciergeConfig(
            city=city,
            start=_where(start),
            day=day,
            start_time=start_time,
            end_time=end_time,
            persona=persona,
        )
        if interest:
            config.interests = list(interest)
        config.validate()
        return Concierge(config, _policy(policy), city=_places_city(city, places))

    _run("concierge", build, out, as_json, strict)


__all__ = ["app"]
