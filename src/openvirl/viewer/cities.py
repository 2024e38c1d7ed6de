"""The viewer's cities: loaded lazily on first use, kept in memory, searched and routed.

A city loads the first time a page or API call needs it (Manhattan from the on-disk cache in
about a second or two, longer on its very first build) and stays loaded for the life of the
server; two requests for the same city wait for one load. Street views come from
`City.street_view` (or `openvirl.world.streetview.render_view`) when this build of openvirl has
them; `street_view_support` says whether it does and why not.

Example
-------
>>> from openvirl.viewer.cities import CityService
>>> cities = CityService()
>>> [c["name"] for c in cities.catalog()][:2]  # doctest: +SKIP
['manhattan', 'helsinki']
>>> cities.search("monaco", "casino")[0].name  # doctest: +SKIP
'Casino de Monte-Carlo'
"""

from __future__ import annotations

import importlib
import logging
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from openvirl.world.errors import WorldError

if TYPE_CHECKING:
    from PIL import Image

    from openvirl.world import City, Place, Route

log = logging.getLogger(__name__)

MAX_VIEW_PX = 1024
"""Largest street-view side the viewer asks for, pixels."""

_LATLON_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")
_OSM_ID_RE = re.compile(r"^(node|way|relation)/\d+$")


class StreetViewUnavailableError(RuntimeError):
    """This build of openvirl renders no street views (the message says why)."""


def street_view_support() -> tuple[bool, str]:
    """Whether street views can be rendered, and a sentence saying why not.

    Looks for `City.street_view`, then for ``openvirl.world.streetview.render_view``.
    """
    try:
        from openvirl.world.city import City
    except ImportError as exc:
        return False, f"the world platform is not installed ({exc}); pip install 'openvirl[world]'"
    if callable(getattr(City, "street_view", None)):
        return True, ""
    try:
        module = importlib.import_module("openvirl.world.streetview")
    except ImportError:
        return False, (
            "street views are not available in this build of openvirl "
            "(openvirl.world.streetview is missing)"
        )
    if callable(getattr(module, "render_view", None)):
        return True, ""
    return False, "openvirl.world.streetview has no render_view function"


class CityService:
    """Bundled and user cities for the viewer, each loaded once on first use.

    Parameters
    ----------
    names
        The cities to offer; None offers every city of the catalog.
    """

    def __init__(self, names: Sequence[str] | None = None) -> None:
        self.names = list(names) if names is not None else None
        self._cities: dict[str, City] = {}
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._errors: dict[str, str] = {}

    # The catalog -------------------------------------------------------------------------
    def catalog(self) -> list[dict[str, Any]]:
        """``{"name", "description", "source", "size_bytes", "loaded"}`` per offered city."""
        try:
            from openvirl.world import catalog
        except ImportError:
            return []
        entries = {e.name: e for e in catalog.list_cities()}
        names = self.names if self.names is not None else list(entries)
        out = []
        for name in names:
            entry = entries.get(name)
            out.append(
                {
                    "name": name,
                    "description": entry.description if entry else "",
                    "source": entry.source if entry else "path",
                    "size_bytes": entry.size_bytes if entry else None,
                    "loaded": name in self._cities,
                }
            )
        return out

    def offered(self, name: str) -> bool:
        """Whether `name` is one of the cities this viewer offers."""
        return self.names is None or name in self.names

    # Loading -----------------------------------------------------------------------------
    def get(self, name: str) -> City:
        """The loaded city `name` (loading it on first use).

        Raises
        ------
        openvirl.world.UnknownCityError
            For a name the catalog does not know (the message lists the known ones).
        openvirl.world.MapFileError
            For a broken extract.
        """
        found = self._cities.get(name)
        if found is not None:
            return found
        with self._guard:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            found = self._cities.get(name)
            if found is None:
                from openvirl.world import City

                log.info("loading city %s", name)
                found = City.load(name, progress=False)
                self._cities[name] = found
                log.info("loaded %r in %.2f s", found, found.load_seconds)
        return found

    # Places and routes -------------------------------------------------------------------
    def search(self, name: str, text: str, *, limit: int = 10) -> list[Place]:
        """`City.search` of `text` in city `name`; [] for an empty query."""
        if not text.strip():
            return []
        return self.get(name).search(text, limit=limit)

    def resolve(self, name: str, text: str, *, ref: str = "") -> Place | tuple[float, float]:
        """A route end from a form value: an OSM id (``node/123``), ``lat,lon``, or a text.

        Parameters
        ----------
        name
            The city.
        text
            What the form's box says.
        ref
            The id or ``lat,lon`` of the place the box was filled with (a search result's
            "from here"); used while the box still shows that place's name, so two places of
            the same name are told apart.

        Raises
        ------
        openvirl.world.PlaceNotFoundError
            When a text names nothing in the city.
        """
        city = self.get(name)
        text = text.strip()
        if ref and ref.strip() != text:
            end = self.resolve(name, ref)
            shown = end.name if not isinstance(end, tuple) else None
            if shown == text:
                return end
        match = _LATLON_RE.match(text)
        if match:
            return (float(match.group(1)), float(match.group(2)))
        if _OSM_ID_RE.match(text):
            try:
                return city.place(text)
            except WorldError:  # an id of a non-POI: geocode the text instead
                log.debug("no POI %s in %s; geocoding", text, name)
        return city.geocode(text)

    def route(self, name: str, origin: str, destination: str) -> Route:
        """The walking route between two form values (see `resolve`)."""
        city = self.get(name)
        return city.route(self.resolve(name, origin), self.resolve(name, destination))

    def street_view(
        self,
        name: str,
        lat: float,
        lon: float,
        heading: float,
        *,
        fov: float = 90.0,
        size: int = 512,
    ) -> Image.Image:
        """A rendered street view, `size` pixels square, at a heading in degrees from north.

        Raises
        ------
        StreetViewUnavailableError
            When this build renders no street views.
        openvirl.world.OutsideMapError
            For a point off the city's map.
        """
        available, why = street_view_support()
        if not available:
            raise StreetViewUnavailableError(why)
        city = self.get(name)
        city.check_inside(lat, lon)
        size = max(32, min(int(size), MAX_VIEW_PX))
        method = getattr(city, "street_view", None)
        if callable(method):
            return method(lat, lon, heading, fov=fov, size=(size, size))
        module = importlib.import_module("openvirl.world.streetview")
        return module.render_view(city, lat, lon, heading, fov=fov, size=(size, size))
