"""The viewer's cities: loaded lazily on first use, kept in memory, searched and routed.

A city loads the first time a page or API call needs it (Manhattan from the on-disk cache in
about a second or two, longer on its very first build); the few most recently used stay loaded
(`MAX_LOADED`), one loads at a time, and only catalog names are ever loaded, whatever spelling
or path a request or a run file names. Street views come from
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
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from openvirl.world.errors import WorldError

if TYPE_CHECKING:
    from PIL import Image

    from openvirl.world import City, Place, Route

log = logging.getLogger(__name__)

MAX_VIEW_PX = 1024
"""Largest street-view side the viewer asks for, pixels."""
try:  # the renderer's own limits, so the viewer never offers a view it cannot draw
    from openvirl.world.streetview import FOV_MAX_DEG, FOV_MIN_DEG
except ImportError:  # pragma: no cover - a build without street views
    FOV_MIN_DEG, FOV_MAX_DEG = 10.0, 120.0
MAX_LOADED = 2
"""Cities kept in memory at once by default (least recently used is dropped first)."""
MAX_NAME_CHARS = 100
"""Longest city name looked up in the catalog."""

_LATLON_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*,\s*(-?\d+(?:\.\d+)?)\s*$")
_OSM_ID_RE = re.compile(r"^(node|way|relation)/\d+$")


def _catalog_name(name: Any, entries: dict[str, Any]) -> str | None:
    """The catalog entry name for a spelling of it (case and aliases), or None; never a path."""
    if not isinstance(name, str) or len(name) > MAX_NAME_CHARS:
        return None
    key = name.strip().lower()
    try:
        from openvirl.world import catalog

        key = catalog._ALIASES.get(key, key)  # "nyc", "tokyo", ...
    except (ImportError, AttributeError):
        pass
    return key if key in entries else None


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
    """Bundled and user cities for the viewer, each loaded on first use, a few kept loaded.

    Every name that comes from a request or a run file is first resolved to a catalog entry
    (case-insensitively, aliases included, see `canonical`); anything else is refused with
    `openvirl.world.UnknownCityError`, so the viewer never parses an arbitrary path as OSM and
    every spelling of a city shares one loaded copy. At most `max_loaded` cities stay in
    memory (least recently used first out), and one city loads at a time, so no sequence of
    requests holds more than ``max_loaded + 1`` cities.

    Parameters
    ----------
    names
        The cities to offer (catalog names, any case); None offers every city of the catalog.
    max_loaded
        How many loaded cities to keep (a city such as Manhattan takes about 50 MB).
    """

    def __init__(self, names: Sequence[str] | None = None, *, max_loaded: int = MAX_LOADED) -> None:
        self.names = list(names) if names is not None else None
        self.max_loaded = max(1, int(max_loaded))
        self._cities: OrderedDict[str, City] = OrderedDict()
        self._guard = threading.Lock()
        self._load_lock = threading.Lock()

    # The catalog -------------------------------------------------------------------------
    @staticmethod
    def _entries() -> dict[str, Any]:
        try:
            from openvirl.world import catalog
        except ImportError:
            return {}
        return {e.name: e for e in catalog.list_cities()}

    def offered_names(self) -> list[str]:
        """The catalog names this viewer offers, in catalog order (or in the given order)."""
        entries = self._entries()
        if self.names is None:
            return list(entries)
        out: list[str] = []
        for name in self.names:
            real = _catalog_name(name, entries)
            if real is not None and real not in out:
                out.append(real)
        return out

    def canonical(self, name: str) -> str | None:
        """The catalog name `name` stands for, if this viewer offers it; else None.

        ``"Monaco"``, ``"MONACO"`` and ``" monaco "`` all give ``"monaco"``; ``"nyc"`` gives
        ``"manhattan"``; a path, an unknown name or a city not offered gives None.
        """
        real = _catalog_name(name, self._entries())
        if real is None:
            return None
        return real if self.names is None or real in self.offered_names() else None

    def catalog(self) -> list[dict[str, Any]]:
        """``{"name", "description", "source", "size_bytes", "loaded"}`` per offered city."""
        entries = self._entries()
        out = []
        for name in self.offered_names():
            entry = entries[name]
            out.append(
                {
                    "name": name,
                    "description": entry.description,
                    "source": entry.source,
                    "size_bytes": entry.size_bytes,
                    "loaded": name in self._cities,
                }
            )
        return out

    def offered(self, name: str) -> bool:
        """Whether `name` (any spelling) is one of the cities this viewer offers."""
        return self.canonical(name) is not None

    def loaded(self) -> list[str]:
        """The names of the cities in memory, least recently used first."""
        with self._guard:
            return list(self._cities)

    # Loading -----------------------------------------------------------------------------
    def get(self, name: str) -> City:
        """The loaded city `name` (any spelling of a catalog name), loading it on first use.

        Raises
        ------
        openvirl.world.UnknownCityError
            For a name that is no catalog city offered here (a path included).
        openvirl.world.MapFileError
            For a broken extract.
        """
        real = self.canonical(name)
        if real is None:
            from openvirl.world.errors import UnknownCityError

            raise UnknownCityError(str(name)[:80], self.offered_names())
        with self._guard:
            found = self._cities.get(real)
            if found is not None:
                self._cities.move_to_end(real)
                return found
        with self._load_lock:  # one load at a time bounds the memory of concurrent loads
            with self._guard:
                found = self._cities.get(real)
            if found is None:
                from openvirl.world import City

                log.info("loading city %s", real)
                found = City.load(real, progress=False)
                log.info("loaded %r in %.2f s", found, getattr(found, "load_seconds", 0.0))
            with self._guard:
                self._cities[real] = found
                self._cities.move_to_end(real)
                while len(self._cities) > self.max_loaded:
                    dropped, _ = self._cities.popitem(last=False)
                    log.info("unloaded city %s (keeping %d)", dropped, self.max_loaded)
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
        if not FOV_MIN_DEG <= fov <= FOV_MAX_DEG:
            raise ValueError(
                f"`fov` {fov:g}° is out of range: pass {FOV_MIN_DEG:g} to {FOV_MAX_DEG:g} degrees."
            )
        city = self.get(name)
        city.check_inside(lat, lon)
        size = max(32, min(int(size), MAX_VIEW_PX))
        method = getattr(city, "street_view", None)
        if callable(method):
            return method(lat, lon, heading, fov=fov, size=(size, size))
        module = importlib.import_module("openvirl.world.streetview")
        return module.render_view(city, lat, lon, heading, fov=fov, size=(size, size))
