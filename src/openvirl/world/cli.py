"""`openvirl city ...`: list, inspect and add cities, search places, plan walking routes.

Every command prints a readable table (rich) or, with `--json`, one JSON document on stdout.
Bad input (unknown city, unreadable file, no match, no route) prints one `error:` line on
stderr and exits with code 2.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import typer

from openvirl.world.catalog import DEFAULT_CITY

app = typer.Typer(
    no_args_is_help=True,
    help="Real-city platform: cities, places, routes, maps.",
)

_CITY_HELP = "City name (see `openvirl city list`) or path of an .osm/.osm.pbf/.osm.bz2 file."
_JSON_HELP = "Print JSON instead of tables."
_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def _emit_json(data: Any) -> None:
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _console():
    from rich.console import Console

    return Console()


def _where(text: str) -> Any:
    """A "lat,lon" text as a tuple; anything else stays a text to geocode."""
    m = _LATLON.match(text)
    return (float(m.group(1)), float(m.group(2))) if m else text


def _load(city: str):
    from openvirl.world.city import City

    return City.load(city)


@app.command("list")
def list_command(json_out: bool = typer.Option(False, "--json", help=_JSON_HELP)) -> None:
    """List the bundled cities and the ones you added."""
    from openvirl.world.catalog import ATTRIBUTION, list_cities
    from openvirl.world.city import cache_file

    rows = []
    for entry in list_cities():
        row = entry.to_dict()
        row["cached"] = cache_file(entry) is not None
        row["default"] = entry.name == DEFAULT_CITY
        rows.append(row)
    if json_out:
        _emit_json({"cities": rows, "attribution": ATTRIBUTION})
        return
    from rich.table import Table

    table = Table(title="Cities", caption=f"Map data {ATTRIBUTION} (ODbL)")
    for col in ("name", "source", "size", "cached", "description"):
        table.add_column(col)
    for row in rows:
        name = row["name"] + (" (default)" if row["default"] else "")
        size = f"{row['size_bytes'] / 1e6:.1f} MB"
        table.add_row(
            name, row["source"], size, "yes" if row["cached"] else "no", row["description"]
        )
    _console().print(table)


@app.command("info")
def info_command(
    city: str = typer.Argument(DEFAULT_CITY, help=_CITY_HELP),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
    map_path: Path | None = typer.Option(
        None, "--map", help="Also save a PNG map of the area around the city centre."
    ),
    radius_m: float = typer.Option(400.0, "--radius-m", help="Half width of --map, metres."),
) -> None:
    """Show a city's size, bounds, sources and the OSM credit."""
    from openvirl.world.errors import WorldError

    try:
        c = _load(city)
        stats = c.stats()
        if map_path is not None:
            stats["map"] = str(c.area_map(*c.center, map_path, radius_m=radius_m))
    except WorldError as err:
        _fail(str(err))
    from openvirl.world.catalog import resolve
    from openvirl.world.coverage import building_coverage

    stats["sources"] = resolve(city).provenance
    fetched = [f.with_suffix(".provenance.json") for f in c.files]
    if fetched and fetched[0].is_file():  # a city from `openvirl city fetch`
        stats["sources"] = str(fetched[0])
    stats["building_coverage"] = building_coverage(c)
    if json_out:
        _emit_json(stats)
        return
    from rich.table import Table

    table = Table(title=f"{c.name}: {c.description}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    b = stats["bounds"]
    rows = [
        ("files", "\n".join(stats["files"])),
        (
            "bounds",
            f"lat {b['min_lat']:.5f}..{b['max_lat']:.5f}, "
            f"lon {b['min_lon']:.5f}..{b['max_lon']:.5f}",
        ),
        (
            "walk graph",
            f"{stats['nodes']} nodes, {stats['edges']} edges, {stats['walk_length_km']} km",
        ),
        ("intersections", f"{stats['intersections']} ({stats['named_intersections']} named)"),
        ("places", str(stats["pois"])),
        ("top categories", ", ".join(f"{k} {v}" for k, v in stats["top_categories"].items())),
        ("buildings", str(stats["buildings"])),
        ("building coverage", _coverage_text(stats["building_coverage"])),
        ("addresses", str(stats["addresses"])),
        ("load", f"{stats['load_seconds']} s ({'cache' if stats['from_cache'] else 'built'})"),
        ("sources", stats["sources"]),
        ("license", stats["license"]),
    ]
    if "map" in stats:
        rows.append(("map", stats["map"]))
    for key, value in rows:
        table.add_row(key, value)
    console = _console()
    console.print(table)
    console.print(f"Map data {c.attribution}")


def _coverage_text(cov: dict) -> str:
    text = f"{cov['frontage']:.0%} of street frontage has a building"
    return text + ("" if cov["streetscape"] else f" (not a streetscape: {cov['note']})")


@app.command("search")
def search_command(
    text: str = typer.Argument(
        ..., help='What to find, e.g. "Empire State Building" or "coffee near Bryant Park".'
    ),
    city: str = typer.Option(DEFAULT_CITY, "--city", "-c", help=_CITY_HELP),
    near: str | None = typer.Option(None, help='Search around this place or "lat,lon".'),
    radius_m: float | None = typer.Option(None, "--radius-m", help="Search radius, metres."),
    category: str | None = typer.Option(None, help='Only this type, e.g. "cafe" or "bank".'),
    limit: int = typer.Option(10, help="Most results."),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
    geojson: Path | None = typer.Option(None, help="Also write the results as GeoJSON."),
) -> None:
    """Fuzzy place search by name, brand or category."""
    from openvirl.world.errors import WorldError

    try:
        c = _load(city)
        centre = _where(near) if near else None
        hits = c.search(text, near=centre, radius_m=radius_m, limit=limit, category=category)
        _, origin = c.places.query_centre(text, centre)
    except WorldError as err:
        _fail(str(err))
    if geojson is not None:
        from openvirl.world.maps import places_geojson, write_geojson

        write_geojson(places_geojson(hits, attribution=c.attribution), geojson)
    if json_out:
        results = []
        for p in hits:
            row = p.to_dict()
            row["virl"] = p.to_virl_dict(origin)
            results.append(row)
        _emit_json(
            {"city": c.name, "query": text, "results": results, "attribution": c.attribution}
        )
        return
    console = _console()
    if not hits:
        console.print(f"No place matches {text!r} in {c.name}.")
        return
    from rich.table import Table

    table = Table(title=f"{text} — {c.name}", caption=f"Map data {c.attribution}")
    for col in ("#", "name", "category", "distance", "lat, lon", "id", "prominence"):
        table.add_column(col)
    for i, p in enumerate(hits, 1):
        dist = f"{p.distance_m(*origin):.0f} m" if origin else ""
        table.add_row(
            str(i),
            p.name,
            p.category or "",
            dist,
            f"{p.lat:.6f}, {p.lon:.6f}",
            p.id,
            f"{p.prominence:.1f}",
        )
    console.print(table)


@app.command("route")
def route_command(
    origin: str = typer.Argument(..., help='Start: a place, address, "A & B", or "lat,lon".'),
    destination: str = typer.Argument(..., help="End, in the same forms."),
    city: str = typer.Option(DEFAULT_CITY, "--city", "-c", help=_CITY_HELP),
    via: list[str] = typer.Option(
        [], "--via", help="A stop on the way (repeatable); stops are visited in the best order."
    ),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
    map_path: Path | None = typer.Option(None, "--map", help="Save a PNG map of the route."),
    geojson: Path | None = typer.Option(None, help="Save the route as GeoJSON."),
) -> None:
    """Walking directions with turns, compass headings and landmarks."""
    from openvirl.world.errors import WorldError

    try:
        c = _load(city)
        if via:
            tour = c.tour([_where(v) for v in via], start=_where(origin), end=_where(destination))
            legs = tour.legs
        else:
            tour = None
            legs = [c.route(_where(origin), _where(destination))]
        maps_written = []
        if map_path is not None:
            for k, leg in enumerate(legs):
                out = (
                    map_path
                    if len(legs) == 1
                    else map_path.with_name(f"{map_path.stem}-{k + 1}{map_path.suffix or '.png'}")
                )
                maps_written.append(str(c.route_map(leg, out)))
    except WorldError as err:
        _fail(str(err))
    if geojson is not None:
        from openvirl.world.maps import route_geojson, write_geojson

        features = []
        for leg in legs:
            features.extend(route_geojson(leg, attribution=c.attribution)["features"])
        write_geojson(
            {"type": "FeatureCollection", "attribution": c.attribution, "features": features},
            geojson,
        )
    if json_out:
        data: dict[str, Any] = {"city": c.name, "attribution": c.attribution}
        if tour is not None:
            data["tour"] = tour.to_dict()
        else:
            data["route"] = legs[0].to_dict()
        if maps_written:
            data["maps"] = maps_written
        _emit_json(data)
        return
    from rich.table import Table

    console = _console()
    if tour is not None:
        order = " → ".join(
            [legs[0].origin.name, *(p.name for p in tour.stops), legs[-1].destination.name]
        )
        console.print(f"[bold]Tour ({tour.method}):[/bold] {order}")
    for leg in legs:
        table = Table(
            title=f"{leg.origin.name} → {leg.destination.name}: {leg.length_m:.0f} m, "
            f"{leg.duration_s / 60:.1f} min on foot",
            caption=f"Map data {c.attribution}",
        )
        for col in ("#", "instruction", "distance", "heading", "turn"):
            table.add_column(col)
        for i, s in enumerate(leg.steps, 1):
            table.add_row(
                str(i),
                s.instruction,
                f"{s.distance_m:.0f} m",
                f"{s.heading:.0f}° {s.compass}",
                s.turn,
            )
        console.print(table)
    for path in maps_written:
        console.print(f"map: {path}")
    if geojson is not None:
        console.print(f"geojson: {geojson}")


@app.command("add")
def add_command(
    path: Path = typer.Argument(..., help="An .osm, .osm.pbf or .osm.bz2 extract."),
    name: str = typer.Option(..., "--name", help="Name to load it by, e.g. paris-centre."),
    description: str = typer.Option("", help="One line shown by `openvirl city list`."),
    replace: bool = typer.Option(False, help="Replace a user city of the same name."),
    origin: str = typer.Option(
        "", help="Where the extract came from (URL, tool, date); `city info` shows it."
    ),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Add your own OSM extract: it is read once (and cached), then loadable by name."""
    from openvirl.world.catalog import add_city
    from openvirl.world.city import City
    from openvirl.world.errors import MapFileError, WorldError

    try:
        if not path.expanduser().is_file():
            raise MapFileError(path, "file not found")
        c = City.load(path.expanduser().resolve())
        entry = add_city(path, name, description=description, replace=replace, origin=origin)
    except WorldError as err:
        _fail(str(err))
    stats = c.stats()
    if json_out:
        _emit_json({"added": entry.to_dict(), "stats": stats})
        return
    _console().print(
        f"added [bold]{entry.name}[/bold]: {stats['nodes']} street nodes, {stats['pois']} places, "
        f"{stats['buildings']} buildings. Load it with City.load({entry.name!r}) or "
        f"`openvirl city info {entry.name}`. Map data {c.attribution}."
    )


@app.command("fetch")
def fetch_command(
    query: str | None = typer.Argument(
        None, help='A place to geocode with Nominatim, e.g. "Milan, Italy" or "Brera, Milan".'
    ),
    bbox: tuple[float, float, float, float] | None = typer.Option(
        None, "--bbox", help="Fetch this box instead: S W N E, degrees."
    ),
    around: tuple[float, float] | None = typer.Option(
        None, "--around", help="Fetch around this point instead: LAT LON (see --radius)."
    ),
    radius_m: float | None = typer.Option(
        None,
        "--radius",
        help="Half side of the box around --around (default 500) or around the place, metres.",
    ),
    name: str | None = typer.Option(
        None, "--name", help="Name to load it by (default: a slug of the query)."
    ),
    overpass_url: str | None = typer.Option(
        None, "--overpass-url", help="Overpass interpreter URL (env OPENVIRL_OVERPASS_URL)."
    ),
    nominatim_url: str | None = typer.Option(
        None, "--nominatim-url", help="Nominatim base URL (env OPENVIRL_NOMINATIM_URL)."
    ),
    max_area_km2: float = typer.Option(25.0, "--max-area-km2", help="Refuse bigger areas."),
    max_mb: float = typer.Option(200.0, "--max-mb", help="Refuse bigger downloads, MB."),
    replace: bool = typer.Option(False, help="Replace a user city of the same name."),
    json_out: bool = typer.Option(False, "--json", help=_JSON_HELP),
) -> None:
    """Fetch any city from OpenStreetMap (Nominatim + Overpass), cache it, build it.

    A second fetch of the same area comes from the cache. Map data © OpenStreetMap
    contributors (ODbL); the provenance JSON sits next to the extract.
    """
    from openvirl.world.errors import WorldError
    from openvirl.world.fetch import FetchOptions, fetch_extract

    try:
        options = FetchOptions(
            overpass_url=overpass_url,
            nominatim_url=nominatim_url,
            max_area_km2=max_area_km2,
            max_bytes=int(max_mb * 1e6),
        )
        got = fetch_extract(
            query,
            bbox=bbox,
            around=around,
            radius_m=radius_m,
            name=name,
            options=options,
            replace=replace,
        )
        c = _load(got.name)
    except WorldError as err:
        _fail(str(err))
    stats = c.stats()
    if json_out:
        _emit_json({"fetched": got.to_dict(), "stats": stats})
        return
    where = "from the cache" if got.from_cache else f"{got.provenance['bytes'] / 1e6:.1f} MB"
    _console().print(
        f"fetched [bold]{got.name}[/bold] ({got.provenance['display_name']}, {where}): "
        f"{stats['nodes']} street nodes, {stats['pois']} places, {stats['buildings']} "
        f"buildings. Load it with City.load({got.name!r}) or `openvirl city info {got.name}`.\n"
        f"extract: {got.path}\nprovenance: {got.provenance_path}\nMap data {c.attribution} (ODbL)."
    )


# `openvirl city view` lives with the street-view renderer.
from openvirl.world.streetview_cli import view_command  # noqa: E402

app.command("view")(view_command)

__all__ = ["app"]
