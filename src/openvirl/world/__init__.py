"""The offline real-city platform: OSM cities, places, walking routes and maps, with no API key.

>>> from openvirl.world import City
>>> city = City.load("monaco")                   # or "manhattan", "helsinki", a file path...
>>> cafe = city.search("cafe")[0]
>>> route = city.route(cafe, "Casino de Monte-Carlo")
>>> print(route.text)                            # doctest: +SKIP

Importing this package is light: `City`, `Place`, `Route` and the rest load their modules
(networkx, shapely, pyproj, rapidfuzz) on first access. Map data © OpenStreetMap contributors.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from openvirl.world.errors import (
    MapFileError,
    NoRouteError,
    OutsideMapError,
    PlaceNotFoundError,
    UnknownCategoryError,
    UnknownCityError,
    WorldError,
)

if TYPE_CHECKING:
    from openvirl.world.city import Bounds, Building, City
    from openvirl.world.places import Place, ReverseGeocode
    from openvirl.world.routing import Landmark, Route, Step, Tour

_LAZY = {
    "City": "openvirl.world.city",
    "Bounds": "openvirl.world.city",
    "Building": "openvirl.world.city",
    "Place": "openvirl.world.places",
    "ReverseGeocode": "openvirl.world.places",
    "Route": "openvirl.world.routing",
    "Step": "openvirl.world.routing",
    "Landmark": "openvirl.world.routing",
    "Tour": "openvirl.world.routing",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'openvirl.world' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "Bounds",
    "Building",
    "City",
    "Landmark",
    "MapFileError",
    "NoRouteError",
    "OutsideMapError",
    "Place",
    "PlaceNotFoundError",
    "ReverseGeocode",
    "Route",
    "Step",
    "Tour",
    "UnknownCategoryError",
    "UnknownCityError",
    "WorldError",
]
