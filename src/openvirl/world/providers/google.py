"""Google Street View Static API and Google Places, behind openvirl's view and place interfaces.

Both need a Google Maps Platform key with the APIs enabled (`GOOGLE_MAPS_API_KEY`). Requests
follow Google's documented web-service formats (the same ones V-IRL's `googlemaps` client
uses): Street View's metadata endpoint (free of charge) finds the panorama and its copyright,
then the image endpoint (billed per image) returns the pinhole view; Places uses the Text
Search, Nearby Search and Place Details web services (billed per request, details by field).
Answers are cached for at most 30 days (Google's terms allow temporary caching only).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from typing import Any

from PIL import Image

from openvirl.world.providers.errors import (
    KeyRejectedError,
    NoImageryError,
    ProviderError,
    ProviderUnavailableError,
    QuotaExceededError,
)
from openvirl.world.providers.http import (
    ProviderHTTP,
    ResponseCache,
    resolve_base_url,
    resolve_key,
)

KEY_ENV = ("GOOGLE_MAPS_API_KEY", "GOOGLE_API_KEY")
URL_ENV = "OPENVIRL_GOOGLE_MAPS_URL"
DEFAULT_URL = "https://maps.googleapis.com"
KEY_HOW = "create one at console.cloud.google.com with the Street View Static / Places APIs on."
CACHE_DAYS = 30
MAX_STATIC_SIDE_PX = 640  # the Static API's largest image side without a premium plan
_DAYS = ("Su", "Mo", "Tu", "We", "Th", "Fr", "Sa")  # Google numbers days from Sunday = 0
DETAIL_FIELDS = (
    "place_id,name,formatted_address,geometry,types,rating,user_ratings_total,reviews,"
    "opening_hours,photos,website,international_phone_number,price_level,url"
)


def _check_status(data: Any, provider: str, *, zero_ok: bool) -> str:
    """Map a Google web-service `status` to an error; return the status when usable."""
    if not isinstance(data, Mapping) or "status" not in data:
        raise ProviderUnavailableError(f"{provider} answered without a status; is the URL right?")
    status = str(data["status"])
    detail = str(data.get("error_message") or "").strip()
    detail = f": {detail}" if detail else ""
    if status == "OK" or (zero_ok and status == "ZERO_RESULTS"):
        return status
    if status in ("ZERO_RESULTS", "NOT_FOUND"):
        raise NoImageryError(f"{provider} has nothing here ({status}){detail}")
    if status == "OVER_QUERY_LIMIT":
        raise QuotaExceededError(
            f"{provider}: the key is over its quota (OVER_QUERY_LIMIT){detail}"
        )
    if status == "REQUEST_DENIED":
        raise KeyRejectedError(
            f"{provider} rejected the key (REQUEST_DENIED){detail}; check the key, that the API "
            "is enabled for it, and billing."
        )
    if status == "INVALID_REQUEST":
        raise ProviderError(f"{provider} says the request is invalid (INVALID_REQUEST){detail}")
    raise ProviderUnavailableError(f"{provider} failed ({status}){detail}; try again later.")


class GoogleStreetViewSource:
    """Views from Google Street View (a `ViewSource`): `render_view`, `view_grid`,
    `City.street_view` and the navigation env take it through `set_view_source`.

    Examples
    --------
    >>> from openvirl.world import City
    >>> from openvirl.world.providers import GoogleStreetViewSource
    >>> from openvirl.world.streetview import set_view_source
    >>> city = City.load("manhattan")
    >>> set_view_source(city, GoogleStreetViewSource())          # doctest: +SKIP
    >>> city.street_view(40.7484, -73.9857, 90).info["attribution"]  # doctest: +SKIP
    '© 2024 Google'

    Each image carries `info["attribution"]` (the panorama's copyright, to be shown with it),
    `info["pano_id"]` and `info["provider"]`.

    Parameters
    ----------
    key
        API key; default `GOOGLE_MAPS_API_KEY` (or `GOOGLE_API_KEY`).
    base_url
        Default `OPENVIRL_GOOGLE_MAPS_URL`, else https://maps.googleapis.com.
    radius_m
        How far from the point a panorama may be (the metadata `radius`).
    outdoor_only
        Ask for outdoor panoramas only (`source=outdoor`), as street navigation wants.
    fallback
        Where to get a view when Google has no panorama nearby (e.g. a `RenderedViewSource`);
        None raises `NoImageryError`.
    cache
        The on-disk cache; default the user cache, entries kept 30 days.
    transport
        An httpx transport (tests); default the network.
    """

    max_pitch_deg = 90.0
    name = "google"

    def __init__(
        self,
        key: str | None = None,
        *,
        base_url: str | None = None,
        radius_m: float = 50.0,
        outdoor_only: bool = True,
        fallback: Any = None,
        cache: ResponseCache | None = None,
        transport: Any = None,
    ) -> None:
        self._key = resolve_key(key, KEY_ENV, provider="Google Street View", how=KEY_HOW)
        self.base_url = resolve_base_url(base_url, URL_ENV, DEFAULT_URL)
        self.radius_m = float(radius_m)
        self.outdoor_only = bool(outdoor_only)
        self.fallback = fallback
        self.cache = cache or ResponseCache("google", max_age_s=CACHE_DAYS * 86400)
        self.http = ProviderHTTP("Google Street View", self.base_url, transport=transport)
        self.last_attribution: str | None = None

    def metadata(self, lat: float, lon: float) -> dict[str, Any]:
        """The panorama nearest (`lat`, `lon`): `pano_id`, `location`, `date`, `copyright`.

        Raises `NoImageryError` when there is none within `radius_m`.
        """
        location = f"{lat:.6f},{lon:.6f}"
        params: dict[str, Any] = {"location": location, "radius": f"{self.radius_m:g}"}
        if self.outdoor_only:
            params["source"] = "outdoor"
        ck = self.cache.key("sv-metadata", self.base_url, params)
        data = self.cache.get_json(ck)
        if data is None:
            status, body, _ = self.http.get(
                "maps/api/streetview/metadata", {**params, "key": self._key}
            )
            if status in (401, 403):
                raise KeyRejectedError(f"Google Street View rejected the key (HTTP {status}).")
            data = self.http.json(body)
            _check_status(data, "Google Street View", zero_ok=True)
            self.cache.put_json(ck, data)
        _check_status(data, "Google Street View", zero_ok=False)
        return dict(data)

    def view(
        self,
        lat: float,
        lon: float,
        heading: float,
        *,
        fov: float,
        pitch: float,
        size: tuple[int, int],
    ) -> Image.Image:
        """The Street View image at the nearest panorama, resized to `size` when it is larger
        than the Static API's 640 px limit (aspect kept)."""
        try:
            meta = self.metadata(lat, lon)
        except NoImageryError:
            if self.fallback is None:
                raise NoImageryError(
                    f"Google Street View has no outdoor panorama within {self.radius_m:g} m of "
                    f"({lat:.6f}, {lon:.6f}); pass a fallback (e.g. the rendered views) to "
                    "draw one instead."
                ) from None
            return self.fallback.view(lat, lon, heading, fov=fov, pitch=pitch, size=size)
        w, h = size
        scale = min(1.0, MAX_STATIC_SIDE_PX / max(w, h))
        req_w, req_h = max(1, math.floor(w * scale)), max(1, math.floor(h * scale))
        params = {
            "pano": meta["pano_id"],
            "size": f"{req_w}x{req_h}",
            "heading": f"{heading:.2f}",
            "fov": f"{fov:.2f}",
            "pitch": f"{pitch:.2f}",
        }
        ck = self.cache.key("sv-image", self.base_url, params)
        data = self.cache.get_bytes(ck)
        if data is None:
            status, data, ctype = self.http.get("maps/api/streetview", {**params, "key": self._key})
            if status in (401, 403):
                reason = data[:200].decode("utf-8", "replace").strip()
                raise KeyRejectedError(
                    f"Google Street View rejected the key (HTTP {status}: {reason})."
                )
            if status != 200 or not ctype.startswith("image/"):
                raise ProviderUnavailableError(
                    "Google Street View image request failed "
                    f"(HTTP {status}, {ctype or 'no type'})."
                )
            self.cache.put_bytes(ck, data)
        image = _decode_image(data, "Google Street View")
        if image.size != (w, h):
            image = image.resize((w, h), Image.Resampling.LANCZOS)
        attribution = str(meta.get("copyright") or "© Google")
        image.info.update(provider=self.name, pano_id=str(meta["pano_id"]), attribution=attribution)
        self.last_attribution = attribution
        return image


def _decode_image(data: bytes, provider: str) -> Image.Image:
    """Decode a provider's image with a pixel cap (a provider never sends a 100 MP view)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > 40_000_000:
                raise ProviderUnavailableError(f"{provider} sent an image of absurd size; refused.")
            return im.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError):
        raise ProviderUnavailableError(f"{provider} sent an image that cannot be read.") from None


class GooglePlaces:
    """Google Places as a place provider: `search`, `nearby` and `details` like `City`'s.

    Results are `Place`s with ids `google:<place_id>`; `details` returns the same fields as
    `City.details` (so the agents read either) plus `rating`, `user_ratings_total`,
    `reviews`, `photos` (photo references with their required HTML attributions) and `url`;
    `opening_hours` is converted to `parse_opening_hours`'s weekly table, and `profile` is
    written from the reviews, as V-IRL's place recommender reads them.

    Parameters
    ----------
    key, base_url, transport
        As for `GoogleStreetViewSource`.
    language
        Language of names and reviews ("en").
    cache
        On-disk cache; default the user cache, entries kept 30 days.
    """

    name = "google"

    def __init__(
        self,
        key: str | None = None,
        *,
        base_url: str | None = None,
        language: str = "en",
        cache: ResponseCache | None = None,
        transport: Any = None,
    ) -> None:
        self._key = resolve_key(key, KEY_ENV, provider="Google Places", how=KEY_HOW)
        self.base_url = resolve_base_url(base_url, URL_ENV, DEFAULT_URL)
        self.language = language
        self.cache = cache or ResponseCache("google", max_age_s=CACHE_DAYS * 86400)
        self.http = ProviderHTTP("Google Places", self.base_url, transport=transport)
        self._by_id: dict[str, Any] = {}

    def _call(self, endpoint: str, params: dict[str, Any], *, zero_ok: bool) -> dict[str, Any]:
        params = {**params, "language": self.language}
        ck = self.cache.key("places", endpoint, self.base_url, params)
        data = self.cache.get_json(ck)
        if data is None:
            status, body, _ = self.http.get(
                f"maps/api/place/{endpoint}/json", {**params, "key": self._key}
            )
            if status in (401, 403):
                raise KeyRejectedError(f"Google Places rejected the key (HTTP {status}).")
            data = self.http.json(body)
            _check_status(data, "Google Places", zero_ok=zero_ok)
            self.cache.put_json(ck, data)
        _check_status(data, "Google Places", zero_ok=zero_ok)
        return data

    def _places(self, results: Any, limit: int | None) -> list[Any]:
        out = [self._to_place(r) for r in (results or []) if isinstance(r, Mapping)]
        out = [p for p in out if p is not None]
        return out[:limit] if limit else out

    def _to_place(self, r: Mapping[str, Any]) -> Any:
        from openvirl.world.categories import all_types
        from openvirl.world.places import Place

        try:
            loc = r["geometry"]["location"]
            lat, lon = float(loc["lat"]), float(loc["lng"])
            place_id = str(r["place_id"])
            name = str(r.get("name") or "")
        except (KeyError, TypeError, ValueError):
            return None
        types = tuple(str(t) for t in r.get("types") or ())
        vocab = set(all_types())
        known = tuple(t for t in types if t in vocab)
        rating = float(r.get("rating") or 0.0)
        n = int(r.get("user_ratings_total") or 0)
        tags = {
            "name": name,
            "google:place_id": place_id,
            "google:types": ";".join(types),
            "addr:full": str(r.get("formatted_address") or r.get("vicinity") or ""),
        }
        if rating:
            tags["google:rating"] = f"{rating:g}"
            tags["google:user_ratings_total"] = str(n)
        place = Place(
            name=name,
            lat=lat,
            lon=lon,
            category=known[0] if known else (types[0] if types else None),
            tags=tags,
            id=f"google:{place_id}",
            local_name=name,
            categories=known or types,
            prominence=round(rating * math.log10(1 + n), 3),
            kind="poi",
        )
        self._by_id[place.id] = place
        return place

    def search(
        self,
        text: str,
        *,
        near: Any = None,
        radius_m: float | None = None,
        limit: int = 10,
        category: str | None = None,
    ) -> list[Any]:
        """Text Search: places matching `text`, biased to `near` when given."""
        params: dict[str, Any] = {"query": text}
        if near is not None:
            lat, lon = _latlon(near)
            params["location"] = f"{lat:.6f},{lon:.6f}"
            params["radius"] = f"{radius_m or 1000:g}"
        if category:
            params["type"] = category
        data = self._call("textsearch", params, zero_ok=True)
        return self._places(data.get("results"), limit)

    def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float = 200.0,
        category: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[Any]:
        """Nearby Search: places of `category` within `radius_m`, nearest first."""
        params: dict[str, Any] = {"location": f"{lat:.6f},{lon:.6f}", "radius": f"{radius_m:g}"}
        if category:
            params["type"] = category
        data = self._call("nearbysearch", params, zero_ok=True)
        places = self._places(data.get("results"), None)
        places = [p for p in places if p.distance_m(lat, lon) <= radius_m]
        places.sort(key=lambda p: (p.distance_m(lat, lon), p.id))
        return places[:limit] if limit else places

    def details(self, place: Any) -> dict[str, Any]:
        """Place Details, in `City.details`' fields plus Google's rating, reviews and photos."""
        pid = place if isinstance(place, str) else place.id
        if not pid.startswith("google:"):
            raise ProviderError(f"`{pid}` is not a Google place id (expected google:<place_id>).")
        data = self._call(
            "details", {"place_id": pid.split(":", 1)[1], "fields": DETAIL_FIELDS}, zero_ok=False
        )
        r = data.get("result") or {}
        p = self._to_place(r) or (place if not isinstance(place, str) else None)
        if p is None:
            raise ProviderUnavailableError("Google Places details carry no location.")
        reviews = [
            {
                "author_name": str(v.get("author_name", "")),
                "rating": v.get("rating"),
                "text": str(v.get("text", "")),
                "relative_time_description": str(v.get("relative_time_description", "")),
            }
            for v in r.get("reviews") or []
            if isinstance(v, Mapping)
        ]
        photos = [
            {
                "photo_reference": str(v.get("photo_reference", "")),
                "width": v.get("width"),
                "height": v.get("height"),
                "html_attributions": list(v.get("html_attributions") or []),
            }
            for v in r.get("photos") or []
            if isinstance(v, Mapping)
        ]
        return {
            "id": p.id,
            "name": p.name,
            "local_name": p.local_name,
            "category": p.category,
            "categories": list(p.categories),
            "address": str(r.get("formatted_address") or ""),
            "cuisine": [],
            "opening_hours": google_hours(r.get("opening_hours")),
            "website": r.get("website"),
            "phone": r.get("international_phone_number"),
            "rating": r.get("rating"),
            "user_ratings_total": r.get("user_ratings_total"),
            "price_level": r.get("price_level"),
            "reviews": reviews,
            "photos": photos,
            "prominence": p.prominence,
            "lat": p.lat,
            "lon": p.lon,
            "url": r.get("url"),
            "attribution": "Google",
            "profile": _profile(p, r, reviews),
        }

    def get(self, place_id: str) -> Any:
        """A place seen in an earlier answer, by id."""
        if place_id in self._by_id:
            return self._by_id[place_id]
        details = self.details(place_id)
        return self._by_id.get(details["id"])


def _latlon(near: Any) -> tuple[float, float]:
    if isinstance(near, tuple):
        return float(near[0]), float(near[1])
    if hasattr(near, "lat"):
        return float(near.lat), float(near.lon)
    raise ProviderError("`near` must be a Place or a (lat, lon) pair for Google Places.")


def google_hours(hours: Any) -> dict[str, Any] | None:
    """Google's `opening_hours.periods` as `parse_opening_hours`'s weekly table."""
    if not isinstance(hours, Mapping):
        return None
    periods = hours.get("periods") or []
    text = "; ".join(str(t) for t in hours.get("weekday_text") or [])
    result: dict[str, Any] = {"raw": text, "always_open": False, "weekly": None, "unparsed": []}
    if (
        len(periods) == 1
        and isinstance(periods[0], Mapping)
        and "close" not in periods[0]
        and str(periods[0].get("open", {}).get("time", "")) == "0000"
    ):
        result["always_open"] = True
        result["weekly"] = {d: [["00:00", "24:00"]] for d in _DAYS}
        return result
    weekly: dict[str, list[list[str]]] = {}
    for period in periods:
        try:
            o, c = period["open"], period["close"]
            day = _DAYS[int(o["day"]) % 7]
            start = f"{str(o['time'])[:2]}:{str(o['time'])[2:4]}"
            end = f"{str(c['time'])[:2]}:{str(c['time'])[2:4]}"
        except (KeyError, TypeError, ValueError, IndexError):
            result["unparsed"].append(str(period))
            continue
        if end <= start:  # closes after midnight: the table's ranges may pass 24:00
            hh, mm = int(end[:2]) + 24, end[3:]
            end = f"{hh:02d}:{mm}"
        weekly.setdefault(day, []).append([start, end])
    result["weekly"] = weekly or None
    return result


def _profile(place: Any, r: Mapping[str, Any], reviews: list[dict[str, Any]]) -> str:
    kind = (place.category or "place").replace("_", " ")
    parts = [f"{place.name} is a {kind}"]
    if r.get("formatted_address"):
        parts[0] += f" at {r['formatted_address']}"
    if r.get("rating"):
        parts.append(f"rated {r['rating']} by {r.get('user_ratings_total', 0)} Google reviewers")
    text = ", ".join(parts) + "."
    quotes = [v["text"].strip().replace("\n", " ")[:200] for v in reviews[:3] if v["text"].strip()]
    if quotes:
        text += " Reviews say: " + " / ".join(f'"{q}"' for q in quotes)
    return text
