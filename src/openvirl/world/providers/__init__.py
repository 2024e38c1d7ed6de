"""Optional online providers behind the offline API: real street imagery and real places.

openvirl draws its street views from OpenStreetMap and reads places from OSM tags, so nothing
here is ever needed. A user with a key can swap in the real thing without changing their code:

- `GoogleStreetViewSource`: Google Street View Static API (metadata endpoint first, so each image
  carries its panorama id and copyright); a `ViewSource` like `RenderedViewSource`.
- `MapillaryViewSource`: Mapillary's open imagery (Graph API v4, a free access token); crops of
  its 360° panoramas, or its nearest flat photo facing the heading.
- `GooglePlaces`: Google Places (text search, nearby search, details with rating, reviews,
  opening hours and photo references), used by the agents V-IRL drives with Places.

Choose them by option or environment variable (`OPENVIRL_IMAGERY=google|mapillary|rendered`,
`OPENVIRL_PLACES=google|osm`; keys in `GOOGLE_MAPS_API_KEY` and `MAPILLARY_ACCESS_TOKEN`);
`view_source_for` and `place_provider_for` turn those names into objects. Images and answers are
cached on disk (`ResponseCache`), so a rerun costs nothing; Google's cache entries expire after
30 days, as its terms allow for temporary caching.
"""

from __future__ import annotations

from openvirl.world.providers.errors import (
    KeyMissingError,
    KeyRejectedError,
    NoImageryError,
    ProviderError,
    ProviderUnavailableError,
    QuotaExceededError,
)
from openvirl.world.providers.google import GooglePlaces, GoogleStreetViewSource
from openvirl.world.providers.mapillary import MapillaryViewSource
from openvirl.world.providers.select import (
    IMAGERY_PROVIDERS,
    PLACE_PROVIDERS,
    OSMPlaces,
    PlaceProvider,
    ProviderCity,
    place_provider_for,
    view_source_for,
)

__all__ = [
    "IMAGERY_PROVIDERS",
    "PLACE_PROVIDERS",
    "GooglePlaces",
    "GoogleStreetViewSource",
    "KeyMissingError",
    "KeyRejectedError",
    "MapillaryViewSource",
    "NoImageryError",
    "OSMPlaces",
    "PlaceProvider",
    "ProviderCity",
    "ProviderError",
    "ProviderUnavailableError",
    "QuotaExceededError",
    "place_provider_for",
    "view_source_for",
]
