"""V-IRL's own route files, checked against the city they are played in.

V-IRL ships routes in three shapes, all read by `virl_records`:

- a single route record (``data/tourist/route_infos_ny_moma.json``: one JSON object with
  ``start_place``, ``dest_place``, ``route_results``, ``milestone_info``, ...);
- the VLN benchmark's ``[route_list, route_num]``
  (``collect_vln_routes/<region>/route_infos.json``);
- a bare list of records.

A route file does not say which city it belongs to, and an OSM extract covers only part of a
city, so `check_routes_inside` verifies that every point of every route (start, turning
points, destination) lies on the map of the city it is played in, in text and vision modes
alike; `load_route_file` reads and checks in one call (what `--routes FILE` does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openvirl.envs.navigation.routes import NavRoute, RouteFormatError, read_routes

if TYPE_CHECKING:
    from openvirl.world.city import Bounds

_BOUNDS: dict[tuple[str, tuple[str, ...]], Any] = {}


class RouteOutsideCityError(RouteFormatError):
    """A route's point lies outside the map of the city it is played in."""


def is_virl_record(data: Any) -> bool:
    """Whether `data` is one V-IRL route record (an object with the fields the env reads)."""
    return isinstance(data, dict) and any(
        k in data for k in ("route_results", "start_place", "milestone_info")
    )


def virl_records(data: Any, *, name: str = "route_infos") -> list[Any]:
    """The route records of a parsed V-IRL route file, whatever its shape (module docstring).

    Raises
    ------
    RouteFormatError
        The JSON is none of the shapes.
    """
    if is_virl_record(data):
        return [data]
    if (
        isinstance(data, list)
        and len(data) == 2
        and isinstance(data[0], list)
        and not isinstance(data[1], (list, dict))
    ):
        return list(data[0])
    if isinstance(data, list):
        return list(data)
    if isinstance(data, dict) and isinstance(data.get("routes"), list):
        return list(data["routes"])
    raise RouteFormatError(
        f"{name}: expected a V-IRL route record (an object with `start_place` and "
        "`route_results`), V-IRL's [route_list, route_num], or a list of route records"
    )


def city_bounds(name: str) -> Bounds:
    """The map bounds of a city, loaded once per process (only the bounds are kept)."""
    from openvirl.world import catalog
    from openvirl.world.city import City

    entry = catalog.resolve(name)
    key = (entry.name, tuple(str(f) for f in entry.files))
    if key not in _BOUNDS:
        _BOUNDS[key] = City.load(name).bounds
    return _BOUNDS[key]


def _outside(bounds: Bounds, lat: float, lon: float) -> bool:
    from openvirl.world.city import OUTSIDE_MARGIN_M

    if not (math.isfinite(lat) and math.isfinite(lon)):
        return True
    return not bounds.contains(lat, lon, margin_m=OUTSIDE_MARGIN_M)


def check_routes_inside(
    routes: Iterable[NavRoute], bounds_of: Callable[[str], Bounds] = city_bounds
) -> None:
    """Raise `RouteOutsideCityError` unless every point of every route lies on its city's map.

    Parameters
    ----------
    routes
        The routes; each is checked against ``bounds_of(route.city)``.
    bounds_of
        City name -> `Bounds` (default: load the city once per process).

    Raises
    ------
    RouteOutsideCityError
        Naming the route, the point, the city and its bounds, and what to do.
    """
    for route in routes:
        bounds = bounds_of(route.city)
        labels = ["start", *(f"turning point {k + 1}" for k in range(len(route.milestones) - 1))]
        labels.append("destination")
        for label, (lat, lon) in zip(labels, route.points(), strict=True):
            if _outside(bounds, lat, lon):
                b = bounds
                raise RouteOutsideCityError(
                    f"route {route.route_id} (to {route.destination.name}): its {label} "
                    f"({lat:.6f}, {lon:.6f}) lies outside the map of `{route.city}` "
                    f"(lat {b.min_lat:.5f}..{b.max_lat:.5f}, "
                    f"lon {b.min_lon:.5f}..{b.max_lon:.5f}); "
                    "pass the city it lies in (--city NAME), or fetch that area first: "
                    f"`openvirl city fetch --around {lat:.5f} {lon:.5f} --radius 1000 --name NAME`."
                )


def load_route_file(path: str | Path, *, city: str | None = None) -> list[NavRoute]:
    """Read a route file (our JSONL or any V-IRL shape) and check it lies in its city.

    Parameters
    ----------
    path
        The file.
    city
        The city of a V-IRL file (it names none); default ``manhattan``. Our JSONL names its
        own cities.

    Raises
    ------
    FileNotFoundError
        No such file.
    RouteFormatError
        Unreadable, or a route lies outside its city (`RouteOutsideCityError`).
    """
    routes = read_routes(path, city=city or "manhattan")
    if not routes:
        raise RouteFormatError(f"{Path(path).name}: the file holds no route")
    check_routes_inside(routes)
    return routes


def routes_to_dicts(routes: Sequence[NavRoute]) -> list[dict[str, Any]]:
    """Routes as `NavRoute.to_dict` dicts (what the VLN benchmark's route lists hold)."""
    return [r.to_dict() for r in routes]


__all__ = [
    "RouteOutsideCityError",
    "check_routes_inside",
    "city_bounds",
    "is_virl_record",
    "load_route_file",
    "routes_to_dicts",
    "virl_records",
]
