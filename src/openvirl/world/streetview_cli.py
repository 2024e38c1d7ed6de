"""`openvirl city view`: render a street view (or a 2x2 grid) and list the signs it shows."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from openvirl.world.catalog import DEFAULT_CITY

SNAP_RADIUS_M = 60.0
"""`--at` is moved to the nearest virtual panorama within this distance, metres (Street View
also shows the nearest panorama); farther away the point itself is used."""

_LATLON = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")
_SIZE = re.compile(r"^\s*(\d+)\s*(?:[xX]\s*(\d+))?\s*$")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg="red", err=True)
    raise typer.Exit(2)


def view_command(
    city: str = typer.Option(DEFAULT_CITY, "--city", "-c", help="City name or OSM file."),
    at: str = typer.Option(
        ..., "--at", help='Where to stand: a place, address, "A & B", or "lat,lon".'
    ),
    heading: float | None = typer.Option(
        None,
        help="View direction, degrees clockwise from north (wrapped into 0..360); "
        "default: toward the --at place, or along the street when standing on it.",
    ),
    out: Path = typer.Option(Path("view.png"), "--out", "-o", help="PNG file to write."),
    fov: float = typer.Option(90.0, help="Horizontal field of view, degrees (10..120)."),
    pitch: float = typer.Option(0.0, help="Look up (+) or down (-), degrees (±40)."),
    size: str = typer.Option(
        "512", help='Image size: "512" (square) or "640x480"; with --grid, the size of each view.'
    ),
    grid: bool = typer.Option(False, "--grid", help="Four views [front, right; back, left]."),
    snap: bool = typer.Option(
        True,
        help="Stand on the nearest virtual panorama (within "
        f"{SNAP_RADIUS_M:g} m) rather than exactly at --at.",
    ),
    json_out: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
    imagery: str | None = typer.Option(
        None,
        "--imagery",
        help="rendered (default), google or mapillary (needs GOOGLE_MAPS_API_KEY or "
        "MAPILLARY_ACCESS_TOKEN); default $OPENVIRL_IMAGERY.",
    ),
    imagery_fallback: bool = typer.Option(
        False,
        "--imagery-fallback",
        help="Draw the view from the map where the provider has no imagery.",
    ),
) -> None:
    """Render what a walker sees, offline, from the map: facades, signs, streets, sky.

    Example: openvirl city view --city manhattan --at "Bryant Park" --heading 90 --out view.png
    """
    from openvirl.world.city import City
    from openvirl.world.errors import WorldError
    from openvirl.world.geometry import bearing_deg, haversine_m
    from openvirl.world.providers import view_source_for
    from openvirl.world.streetview import RenderedViewSource, observe, render_view, view_grid

    m = _SIZE.match(size)
    if not m:
        _fail(f'`--size` must look like "512" or "640x480", got {size!r}.')
    w = int(m.group(1))
    h = int(m.group(2) or m.group(1))
    try:
        c = City.load(city)
        ll = _LATLON.match(at)
        if ll:
            target = (float(ll.group(1)), float(ll.group(2)))
            name = at
        else:
            place = c.geocode(at)
            target, name = (place.lat, place.lon), place.name
        c.check_inside(*target)
        lat, lon = target
        pano_id = None
        if snap:
            pano = c.panoramas.nearest_pano(lat, lon, radius_m=SNAP_RADIUS_M)
            if pano is not None:
                lat, lon, pano_id = pano.lat, pano.lon, pano.id
        if heading is None:
            far = haversine_m(lat, lon, *target) >= 2.0
            heading = bearing_deg(lat, lon, *target) if far else c.router.street_heading(lat, lon)
        source = view_source_for(imagery, c, fallback=imagery_fallback)
        rendered = isinstance(source, RenderedViewSource)
        if grid:
            image = view_grid(
                c, lat, lon, heading, fov=fov, pitch=pitch, size=(w, h), source=source
            )
            objects = []
        elif rendered:
            image, objects = observe(
                c, lat, lon, heading, fov=fov, pitch=pitch, size=(w, h), furniture=True
            )
        else:  # a photo: the map's sign list would not describe it
            image = render_view(
                c, lat, lon, heading, fov=fov, pitch=pitch, size=(w, h), source=source
            )
            objects = []
    except WorldError as err:
        _fail(str(err))
    out.parent.mkdir(parents=True, exist_ok=True)
    image.save(out)
    result = {
        "out": str(out),
        "city": c.name,
        "at": name,
        "lat": round(lat, 7),
        "lon": round(lon, 7),
        "panorama": pano_id,
        "heading": round(heading % 360.0, 2),
        "fov": fov,
        "size": list(image.size),
        "visible": [o.to_dict() for o in objects],
        "attribution": c.attribution,
        "imagery": getattr(source, "name", "rendered"),
        "imagery_attribution": image.info.get("attribution"),
    }
    if json_out:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{out}[/bold]: {c.name} at {name} ({lat:.6f}, {lon:.6f}), heading "
        f"{heading % 360.0:.0f}°, fov {fov:g}°, {image.size[0]}x{image.size[1]}. "
        f"Map data {c.attribution}."
        + (f" Imagery {image.info['attribution']}." if image.info.get("attribution") else "")
    )
    if objects:
        table = Table("what", "kind", "side", "bearing", "distance", "occluded")
        for o in objects:
            table.add_row(
                o.label or o.name,
                o.category if o.kind == "street_object" else o.kind,
                o.side,
                f"{o.bearing_min_deg:.0f}..{o.bearing_max_deg:.0f}°",
                f"{o.distance_m:.0f} m",
                "yes" if o.occluded else "",
            )
        console.print(table)


__all__ = ["SNAP_RADIUS_M", "view_command"]
