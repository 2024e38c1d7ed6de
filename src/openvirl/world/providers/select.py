"""Provider names to objects, and a city whose places come from another provider.

Names come from an option, else an environment variable (`OPENVIRL_IMAGERY`,
`OPENVIRL_PLACES`), else the offline default; the offline default never needs a key.
"""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable

from openvirl.world.providers.errors import ProviderError

IMAGERY_PROVIDERS = ("rendered", "google", "mapillary")
PLACE_PROVIDERS = ("osm", "google")
IMAGERY_ENV = "OPENVIRL_IMAGERY"
PLACES_ENV = "OPENVIRL_PLACES"


def _choose(name: str | None, env: str, allowed: tuple[str, ...], what: str) -> str:
    chosen = (name or os.environ.get(env, "") or allowed[0]).strip().lower()
    if chosen not in allowed:
        raise ProviderError(
            f"Unknown {what} provider `{chosen}` (from the option or {env}); "
            f"choose one of: {', '.join(allowed)}."
        )
    return chosen


def view_source_for(
    name: str | None,
    city: Any,
    *,
    fallback: bool = False,
    key: str | None = None,
    base_url: str | None = None,
) -> Any:
    """The view source called `name` for `city` ("rendered", "google", "mapillary").

    Parameters
    ----------
    name
        Provider; None reads `OPENVIRL_IMAGERY`, else "rendered".
    city
        The city (the rendered views, and the fallback, draw it).
    fallback
        Draw a view from the map where the provider has no imagery, instead of failing.
    key, base_url
        The provider's key/token and base URL (default: their environment variables).
    """
    from openvirl.world.streetview import RenderedViewSource

    chosen = _choose(name, IMAGERY_ENV, IMAGERY_PROVIDERS, "imagery")
    if chosen == "rendered":
        return RenderedViewSource(city)
    rendered = RenderedViewSource(city) if fallback else None
    if chosen == "google":
        from openvirl.world.providers.google import GoogleStreetViewSource

        return GoogleStreetViewSource(key, base_url=base_url, fallback=rendered)
    from openvirl.world.providers.mapillary import MapillaryViewSource

    return MapillaryViewSource(key, base_url=base_url, fallback=rendered)


@runtime_checkable
class PlaceProvider(Protocol):
    """What the agents ask of places: `search`, `nearby` and `details`, as `City` answers."""

    def search(self, text: str, **options: Any) -> list[Any]:
        """Places matching a text, best first."""
        ...

    def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float = 200.0,
        category: str | None = None,
        **kw: Any,
    ) -> list[Any]:
        """Places within a radius, nearest first."""
        ...

    def details(self, place: Any) -> dict[str, Any]:
        """Everything known about a place, with a `profile` sentence."""
        ...


class OSMPlaces:
    """The offline default: the city's own OSM places."""

    name = "osm"

    def __init__(self, city: Any) -> None:
        self.city = city

    def search(self, text: str, **options: Any) -> list[Any]:
        """`City.search`."""
        return self.city.search(text, **options)

    def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float = 200.0,
        category: str | None = None,
        **kw: Any,
    ) -> list[Any]:
        """`City.nearby`."""
        return self.city.nearby(lat, lon, radius_m, category, **kw)

    def details(self, place: Any) -> dict[str, Any]:
        """`City.details`."""
        return self.city.details(place)


def place_provider_for(
    name: str | None, city: Any, *, key: str | None = None, base_url: str | None = None
) -> Any:
    """The place provider called `name` ("osm" or "google"); None reads `OPENVIRL_PLACES`."""
    chosen = _choose(name, PLACES_ENV, PLACE_PROVIDERS, "places")
    if chosen == "osm":
        return OSMPlaces(city)
    from openvirl.world.providers.google import GooglePlaces

    return GooglePlaces(key, base_url=base_url)


class ProviderCity:
    """A city whose `search`, `nearby` and `details` come from a place provider.

    Everything else (streets, routes, views, POIs drawn on maps) stays the city's own, so an
    agent built on `City` runs unchanged with Google Places: `Aria(config, city=ProviderCity(
    city, GooglePlaces()))`. Geocoding of the agent's start point stays offline.
    """

    def __init__(self, city: Any, places: Any) -> None:
        if not isinstance(places, PlaceProvider):
            raise ProviderError(
                "`places` must have search(), nearby() and details() (PlaceProvider)."
            )
        self._city = city
        self.place_provider = places

    def search(self, text: str, **options: Any) -> list[Any]:
        """The provider's search."""
        return self.place_provider.search(text, **options)

    def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float = 200.0,
        category: str | None = None,
        **kw: Any,
    ) -> list[Any]:
        """The provider's nearby search."""
        return self.place_provider.nearby(lat, lon, radius_m, category, **kw)

    def details(self, place: Any) -> dict[str, Any]:
        """The provider's details for its places; the city's own for OSM places."""
        pid = place if isinstance(place, str) else getattr(place, "id", "")
        if isinstance(self.place_provider, OSMPlaces) or not str(pid).startswith(
            f"{getattr(self.place_provider, 'name', '')}:"
        ):
            return self._city.details(place)
        return self.place_provider.details(place)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._city, name)

    def __repr__(self) -> str:
        provider = getattr(self.place_provider, "name", type(self.place_provider).__name__)
        return f"ProviderCity({self._city!r}, places={provider})"
