"""Any city on demand: geocode with Nominatim, download the area from Overpass, build it.

`fetch_extract` turns a place name ("Milan, Italy"), a bounding box or a point and radius into
an OSM XML extract in the user cache (`cache_dir("extracts")`), with a provenance JSON beside
it (source URLs, the exact Overpass query, date, bounds, the ODbL credit), and registers it
under a name like `openvirl city add` does; `fetch_city` (and `City.fetch`) then loads it
like a bundled city. The spirit is OSMnx's ``graph_from_place``.

The public servers are shared, volunteer-run services, so every request follows their usage
policies: a descriptive User-Agent, at least `FetchOptions.min_interval_s` between requests
to the same host, retries with exponential backoff (honouring ``Retry-After``) on 429 and
5xx gateway errors, and size guards: an area above `FetchOptions.max_area_km2` is refused
before any download, and a response above `FetchOptions.max_bytes` is cut off. A second
fetch of the same area (same servers, same query) makes no request at all: the geocode
answer and the extract both come from the cache.

Offline, every function fails with one `FetchError` line that says how to add an extract by
hand (`openvirl city add PATH --name NAME`).

Server addresses: the `overpass_url` / `nominatim_url` options, else the environment
variables ``OPENVIRL_OVERPASS_URL`` / ``OPENVIRL_NOMINATIM_URL``, else the public servers.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from openvirl._paths import cache_dir
from openvirl.world import catalog
from openvirl.world.errors import WorldError

if TYPE_CHECKING:
    from openvirl.world.city import City

DEFAULT_NOMINATIM_URL = "https://nominatim.openstreetmap.org"
"""Nominatim's public server (usage policy: 1 request/s, a real User-Agent, no bulk use)."""

DEFAULT_OVERPASS_URL = "https://overpass-api.de/api/interpreter"
"""The main public Overpass API instance."""

NOMINATIM_ENV = "OPENVIRL_NOMINATIM_URL"
OVERPASS_ENV = "OPENVIRL_OVERPASS_URL"

FETCH_FORMAT = "overpass-xml-v1"
"""Changes whenever the query or the stored files change; part of every cache key."""

_SLUG_RE = re.compile(r"[^a-z0-9]+")

_MANUAL_HINT = (
    "download an .osm/.osm.pbf extract by hand (e.g. https://download.geofabrik.de or "
    "https://extract.bbbike.org) and add it with `openvirl city add PATH --name NAME`"
)


class FetchError(WorldError):
    """A city could not be fetched: offline, refused by the size guard, or a server error."""


def _user_agent() -> str:
    from openvirl import __version__

    return (
        f"openvirl/{__version__} (offline V-IRL on OpenStreetMap; "
        "https://github.com/openvirl/openvirl)"
    )


@dataclass
class FetchOptions:
    """How `fetch_extract` talks to the servers.

    Attributes
    ----------
    nominatim_url, overpass_url
        Server addresses; None: the environment variable, else the public server.
    max_area_km2
        Largest area fetched; a bigger one is refused before any download (public Overpass
        answers a few km² in seconds; a whole metropolis is hundreds of MB).
    max_bytes
        Largest response read; a bigger one is cut off and nothing is stored.
    min_interval_s
        Least time between two requests to the same host (Nominatim's policy: 1 s).
    retries
        Retries after a 429 / 502 / 503 / 504 answer or a dropped connection.
    backoff_s
        First wait before a retry; doubled each time (a ``Retry-After`` header wins).
    timeout_s
        Connect / read timeout of one request; also the Overpass ``[timeout:]``.
    user_agent
        The User-Agent header (the servers' policies ask for one naming the application).
    """

    nominatim_url: str | None = None
    overpass_url: str | None = None
    max_area_km2: float = 25.0
    max_bytes: int = 200_000_000
    min_interval_s: float = 1.0
    retries: int = 4
    backoff_s: float = 2.0
    timeout_s: float = 180.0
    user_agent: str = field(default_factory=_user_agent)

    def resolved_nominatim(self) -> str:
        """The Nominatim base URL in use."""
        return (
            self.nominatim_url or os.environ.get(NOMINATIM_ENV) or DEFAULT_NOMINATIM_URL
        ).rstrip("/")

    def resolved_overpass(self) -> str:
        """The Overpass interpreter URL in use."""
        return self.overpass_url or os.environ.get(OVERPASS_ENV) or DEFAULT_OVERPASS_URL

    def validate(self) -> None:
        """Raise `FetchError` naming a bad option."""
        if not self.max_area_km2 > 0:
            raise FetchError(f"`max_area_km2` must be positive, got {self.max_area_km2}.")
        if self.max_bytes < 1024:
            raise FetchError(f"`max_bytes` must be at least 1024, got {self.max_bytes}.")
        if self.min_interval_s < 0 or self.backoff_s < 0 or self.retries < 0:
            raise FetchError("`min_interval_s`, `backoff_s` and `retries` must be >= 0.")
        for url in (self.resolved_nominatim(), self.resolved_overpass()):
            if urlsplit(url).scheme not in ("http", "https"):
                raise FetchError(f"server address `{url}` must start with http:// or https://.")


# ---------------------------------------------------------------------------- areas


@dataclass(frozen=True)
class Area:
    """What to fetch: a lat/lon box (degrees), with what it came from.

    Attributes
    ----------
    south, west, north, east
        The box, degrees.
    query
        The place name geocoded, if any.
    display_name
        Nominatim's name of the place (or a description of the box).
    geocode
        Nominatim's first answer, verbatim (None for a box or a point).
    """

    south: float
    west: float
    north: float
    east: float
    query: str | None = None
    display_name: str = ""
    geocode: dict[str, Any] | None = None

    def area_km2(self) -> float:
        """The box's area on the sphere, km²."""
        r = 6371.0088
        lat1, lat2 = math.radians(self.south), math.radians(self.north)
        dlon = math.radians(self.east - self.west)
        return abs(r * r * dlon * (math.sin(lat2) - math.sin(lat1)))

    def centre(self) -> tuple[float, float]:
        """(lat, lon) of the box's centre."""
        return (self.south + self.north) / 2, (self.west + self.east) / 2

    def bbox(self) -> tuple[float, float, float, float]:
        """(south, west, north, east), rounded to 7 decimals (OSM's precision)."""
        return tuple(round(v, 7) for v in (self.south, self.west, self.north, self.east))  # type: ignore[return-value]


def check_bbox(south: float, west: float, north: float, east: float) -> None:
    """Raise `FetchError` unless the numbers are a valid S W N E box."""
    values = (south, west, north, east)
    if not all(isinstance(v, (int, float)) and math.isfinite(v) for v in values):
        raise FetchError(f"bbox must be four finite numbers S W N E, got {values}.")
    if not (-90 <= south < north <= 90):
        raise FetchError(
            f"bbox needs -90 <= south < north <= 90 (got south {south}, north {north}); "
            "the order is S W N E."
        )
    if not (-180 <= west < east <= 180):
        raise FetchError(
            f"bbox needs -180 <= west < east <= 180 (got west {west}, east {east}); "
            "the order is S W N E."
        )


def bbox_around(lat: float, lon: float, radius_m: float) -> tuple[float, float, float, float]:
    """The S W N E box of half side `radius_m` metres around a point."""
    if not (math.isfinite(lat) and math.isfinite(lon) and -90 < lat < 90 and -180 <= lon <= 180):
        raise FetchError(
            f"--around needs a latitude in -90..90 and a longitude in -180..180, got {lat}, {lon}."
        )
    if not (math.isfinite(radius_m) and radius_m > 0):
        raise FetchError(f"--radius must be a positive number of metres, got {radius_m}.")
    dlat = radius_m / 111_320.0
    dlon = radius_m / (111_320.0 * max(0.01, math.cos(math.radians(lat))))
    return (
        max(-90.0, lat - dlat),
        max(-180.0, lon - dlon),
        min(90.0, lat + dlat),
        min(180.0, lon + dlon),
    )


def slug(text: str) -> str:
    """A city name from free text: "Milan, Italy" -> "milan-italy" (at most 64 characters)."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    out = _SLUG_RE.sub("-", ascii_text.lower()).strip("-")[:64].strip("-")
    return out or "city"


# ---------------------------------------------------------------------------- HTTP


_LAST_REQUEST: dict[str, float] = {}
_LAST_LOCK = threading.Lock()
_RETRY_STATUS = frozenset({429, 502, 503, 504})


class _Client:
    """httpx with the etiquette of the public OSM services (see the module docstring)."""

    def __init__(self, options: FetchOptions) -> None:
        import httpx

        self.options = options
        self._httpx = httpx
        self._client = httpx.Client(
            headers={"User-Agent": options.user_agent, "Accept-Encoding": "gzip"},
            timeout=httpx.Timeout(options.timeout_s, connect=min(30.0, options.timeout_s)),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> _Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wait_turn(self, host: str) -> None:
        with _LAST_LOCK:
            last = _LAST_REQUEST.get(host)
            now = time.monotonic()
            wait = 0.0 if last is None else self.options.min_interval_s - (now - last)
            _LAST_REQUEST[host] = now + max(0.0, wait)
        if wait > 0:
            time.sleep(wait)

    def request(
        self,
        method: str,
        url: str,
        *,
        what: str,
        params: dict[str, Any] | None = None,
        data: dict[str, Any] | None = None,
        on_bytes: Any = None,
    ) -> bytes:
        """One request with rate limit, retries and the byte guard; the body as bytes."""
        httpx = self._httpx
        host = urlsplit(url).netloc
        opts = self.options
        attempt = 0
        while True:
            self._wait_turn(host)
            try:
                with self._client.stream(method, url, params=params, data=data) as resp:
                    if resp.status_code in _RETRY_STATUS and attempt < opts.retries:
                        delay = _retry_after(resp.headers.get("Retry-After"))
                        if delay is None:
                            delay = opts.backoff_s * (2**attempt)
                        attempt += 1
                        time.sleep(min(delay, 300.0))
                        continue
                    if resp.status_code >= 400:
                        body = resp.read()[:2000].decode("utf-8", "replace")
                        raise FetchError(
                            f"{what}: {host} answered HTTP {resp.status_code}"
                            f"{_server_message(body)}"
                        )
                    declared = resp.headers.get("Content-Length")
                    if declared and declared.isdigit() and int(declared) > opts.max_bytes:
                        raise FetchError(_too_big(what, int(declared), opts.max_bytes))
                    chunks, total = [], 0
                    for chunk in resp.iter_bytes():
                        total += len(chunk)
                        if total > opts.max_bytes:
                            raise FetchError(_too_big(what, total, opts.max_bytes))
                        chunks.append(chunk)
                        if on_bytes is not None:
                            on_bytes(total)
                    return b"".join(chunks)
            except (httpx.ConnectError, httpx.ConnectTimeout) as err:
                raise FetchError(
                    f"cannot reach {host} for {what} ({_short(err)}); offline? Point "
                    f"--nominatim-url/--overpass-url at a server you can reach, or {_MANUAL_HINT}."
                ) from None
            except (httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError) as err:
                if attempt < opts.retries:
                    time.sleep(opts.backoff_s * (2**attempt))
                    attempt += 1
                    continue
                raise FetchError(
                    f"{what}: {host} stopped answering after {attempt + 1} tries "
                    f"({_short(err)}); try a smaller area later, or {_MANUAL_HINT}."
                ) from None
            except httpx.HTTPError as err:
                raise FetchError(f"{what}: request to {host} failed ({_short(err)}).") from None


def _short(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text[:200]


def _retry_after(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


def _server_message(body: str) -> str:
    text = re.sub(r"<[^>]+>", " ", body)
    text = " ".join(text.split())
    return f": {text[:300]}" if text else ""


def _too_big(what: str, size: int, limit: int) -> str:
    return (
        f"{what}: the response is over {limit / 1e6:.1f} MB (got {size / 1e6:.1f} MB so far); "
        "fetch a smaller area (--radius, --bbox) or raise --max-mb."
    )


# ---------------------------------------------------------------------------- geocoding


def _cache_key(*parts: Any) -> str:
    text = json.dumps([FETCH_FORMAT, *parts], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def extracts_dir() -> Path:
    """Where fetched extracts and their provenance live (`OPENVIRL_CACHE` overrides)."""
    return cache_dir("extracts")


def geocode(
    text: str, options: FetchOptions | None = None, *, client: _Client | None = None
) -> Area:
    """The area of a place name, from Nominatim's ``/search`` (JSON, first answer).

    The answer is cached by (server, query), so a second call makes no request.

    Raises
    ------
    FetchError
        Offline, a server error, or no place of that name.
    """
    options = options or FetchOptions()
    query = " ".join(str(text).split())
    if not query:
        raise FetchError('the place name is empty; pass e.g. "Milan, Italy", or --bbox/--around.')
    base = options.resolved_nominatim()
    cache_file = extracts_dir() / f"geocode-{_cache_key(base, query)[:24]}.json"
    hit = _read_json(cache_file)
    if not isinstance(hit, dict) or "boundingbox" not in hit:
        own = client is None
        client = client or _Client(options)
        try:
            body = client.request(
                "GET",
                f"{base}/search",
                what=f"geocoding `{query}`",
                params={"q": query, "format": "jsonv2", "limit": 1, "addressdetails": 0},
            )
        finally:
            if own:
                client.close()
        try:
            answers = json.loads(body)
        except json.JSONDecodeError:
            raise FetchError(f"geocoding `{query}`: {base} did not answer JSON.") from None
        if not isinstance(answers, list):
            raise FetchError(
                f"geocoding `{query}`: {base} answered {type(answers).__name__}, expected a list."
            )
        if not answers:
            raise FetchError(
                f"Nominatim found no place named `{query}`; try a fuller name "
                '("Brera, Milan, Italy") or pass --bbox S W N E / --around LAT LON.'
            )
        hit = answers[0]
        if not isinstance(hit, dict) or "boundingbox" not in hit:
            raise FetchError(f"geocoding `{query}`: the answer has no `boundingbox`.")
        _write_json(cache_file, hit)
    try:
        # Nominatim's boundingbox is [south, north, west, east], as strings.
        s, n, w, e = (float(v) for v in hit["boundingbox"])
    except (TypeError, ValueError):
        raise FetchError(
            f"geocoding `{query}`: unreadable `boundingbox` {hit.get('boundingbox')!r}."
        ) from None
    check_bbox(s, w, n, e)
    return Area(
        s, w, n, e, query=query, display_name=str(hit.get("display_name", query)), geocode=hit
    )


# ---------------------------------------------------------------------------- Overpass


def overpass_query(area: Area, options: FetchOptions) -> str:
    """The Overpass QL query of an area: walkable ways, buildings, POIs and addresses.

    ``out body`` after the recursion writes nodes first, then ways, then relations (by id),
    the order pyosmium needs to give ways their node locations.
    """
    s, w, n, e = area.bbox()
    keys = (
        "amenity",
        "shop",
        "tourism",
        "leisure",
        "historic",
        "office",
        "craft",
        "public_transport",
        "railway",
        "emergency",
        "man_made",
        "healthcare",
        "addr:housenumber",
        "building",
    )
    parts = ['  way["highway"];', '  node["highway"];']
    for key in keys:
        parts.append(f'  nwr["{key}"];')
    return (
        f"[out:xml][timeout:{int(options.timeout_s)}][maxsize:{int(options.max_bytes)}]"
        f"[bbox:{s},{w},{n},{e}];\n(\n" + "\n".join(parts) + "\n);\n(._;>;);\nout body;\n"
    )


def _check_osm_xml(body: bytes, what: str) -> None:
    head = body[:4096].lstrip()
    if not (head.startswith(b"<?xml") or head.startswith(b"<osm")) or b"<osm" not in head:
        raise FetchError(
            f"{what}: the server did not answer OSM XML"
            f"{_server_message(head[:500].decode('utf-8', 'replace'))}"
        )
    tail = body[-4096:]
    remark = re.search(rb"<remark>(.*?)</remark>", body[:8192] + tail, re.S)
    if remark and b"error" in remark.group(1).lower():
        raise FetchError(
            f"{what}: Overpass stopped with "
            f"`{remark.group(1).decode('utf-8', 'replace').strip()[:300]}`; "
            "fetch a smaller area or try later."
        )
    if b"</osm>" not in tail:
        raise FetchError(f"{what}: the OSM XML is truncated (no closing </osm>); try again.")
    if b"<node" not in body:
        raise FetchError(f"{what}: the area holds no OSM data; check the place or the box.")


@dataclass
class FetchedExtract:
    """An extract in the cache: the OSM file, its provenance and the registered name."""

    name: str
    path: Path
    provenance_path: Path
    provenance: dict[str, Any]
    from_cache: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""
        out = asdict(self)
        out["path"], out["provenance_path"] = str(self.path), str(self.provenance_path)
        return out


def resolve_area(
    query: str | None = None,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    around: tuple[float, float] | None = None,
    radius_m: float | None = None,
    options: FetchOptions | None = None,
    client: _Client | None = None,
) -> Area:
    """The area of exactly one of: a place name, a box, or a point (with a radius).

    A place name with `radius_m` fetches the box of that radius around the place's centre
    (useful for a big city: ``"Milan, Italy"`` with ``radius_m=800``).
    """
    options = options or FetchOptions()
    given = sum(x is not None for x in (query, bbox, around))
    if given != 1:
        raise FetchError(
            "give exactly one of: a place name, --bbox S W N E, or --around LAT LON "
            "(with --radius)."
        )
    if bbox is not None:
        if len(bbox) != 4:
            raise FetchError(f"bbox must be four numbers S W N E, got {bbox}.")
        s, w, n, e = (float(v) for v in bbox)
        check_bbox(s, w, n, e)
        return Area(s, w, n, e, display_name=f"bbox {s:.5f},{w:.5f},{n:.5f},{e:.5f}")
    if around is not None:
        lat, lon = float(around[0]), float(around[1])
        r = 500.0 if radius_m is None else float(radius_m)
        s, w, n, e = bbox_around(lat, lon, r)
        return Area(s, w, n, e, display_name=f"{r:.0f} m around {lat:.5f},{lon:.5f}")
    place = geocode(str(query), options, client=client)
    if radius_m is None:
        return place
    lat = float(place.geocode.get("lat", place.centre()[0])) if place.geocode else place.centre()[0]
    lon = float(place.geocode.get("lon", place.centre()[1])) if place.geocode else place.centre()[1]
    s, w, n, e = bbox_around(lat, lon, float(radius_m))
    return Area(
        s,
        w,
        n,
        e,
        query=place.query,
        display_name=f"{float(radius_m):.0f} m around {place.display_name}",
        geocode=place.geocode,
    )


def fetch_extract(
    query: str | None = None,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    around: tuple[float, float] | None = None,
    radius_m: float | None = None,
    name: str | None = None,
    options: FetchOptions | None = None,
    progress: bool | None = None,
    replace: bool = False,
    register: bool = True,
) -> FetchedExtract:
    """Download (or find in the cache) the OSM extract of an area and register it by name.

    Parameters
    ----------
    query, bbox, around, radius_m
        The area: exactly one of a place name, a (S, W, N, E) box, or a (lat, lon) point;
        `radius_m` is the half side around the point (default 500 m) or around the place.
    name
        The name `City.load` takes afterwards; default: a slug of the query (or of the box).
    options
        Servers and etiquette (`FetchOptions`).
    progress
        Show rich progress on stderr; None shows it when stderr is a terminal.
    replace
        Re-register a user city of the same name that points at another file.
    register
        Add the extract to the user city registry (`openvirl city list` shows it).

    Returns
    -------
    FetchedExtract
        The file, its provenance and the name.

    Raises
    ------
    FetchError
        Offline, the area is too big, the response too large, or a server error; one line
        that says what to do.
    """
    options = options or FetchOptions()
    options.validate()
    show = sys.stderr.isatty() if progress is None else progress
    with _Client(options) as client, _FetchProgress(show) as bar:
        bar.status("geocoding" if query is not None else "preparing")
        area = resolve_area(
            query, bbox=bbox, around=around, radius_m=radius_m, options=options, client=client
        )
        km2 = area.area_km2()
        if km2 > options.max_area_km2:
            lat, lon = area.centre()
            raise FetchError(
                f"the area of `{area.display_name}` is {km2:.1f} km², above the limit of "
                f"{options.max_area_km2:g} km²; fetch part of it (e.g. --around {lat:.5f} "
                f"{lon:.5f} --radius 1000, or a place name with --radius) or raise --max-area-km2."
            )
        city_name = (name or slug(query if query is not None else _bbox_slug(area))).strip().lower()
        if not re.match(r"^[a-z0-9][a-z0-9_-]{0,63}$", city_name):
            raise FetchError(
                f"`name` must be lower-case letters, digits, '-' or '_' (got `{city_name}`), "
                "e.g. --name milan-brera."
            )
        overpass = options.resolved_overpass()
        ql = overpass_query(area, options)
        # The data selection is fixed by FETCH_FORMAT; timeouts and size limits do not count.
        key = _cache_key(overpass, area.bbox())[:16]
        # Keyed by the query alone: the same area fetched under another name reuses the file.
        found = sorted(extracts_dir().glob(f"*-{key}.osm"))
        path = found[0] if found else extracts_dir() / f"{city_name}-{key}.osm"
        prov_path = path.with_suffix(".provenance.json")
        provenance = _read_json(prov_path)
        from_cache = (
            path.is_file()
            and isinstance(provenance, dict)
            and provenance.get("format") == FETCH_FORMAT
        )
        if not from_cache:
            bar.status(f"downloading {area.display_name} ({km2:.2f} km²) from Overpass")
            body = client.request(
                "POST",
                overpass,
                what=f"downloading `{area.display_name}`",
                data={"data": ql},
                on_bytes=bar.bytes,
            )
            _check_osm_xml(body, f"downloading `{area.display_name}`")
            provenance = _provenance(area, options, ql, len(body), hashlib.sha256(body).hexdigest())
            tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(body)
            tmp.replace(path)
            _write_json(prov_path, provenance)
    assert isinstance(provenance, dict)
    if register:
        _register(city_name, path, area, replace=replace)
    return FetchedExtract(city_name, path, prov_path, provenance, from_cache)


def _bbox_slug(area: Area) -> str:
    s, w, n, e = area.bbox()
    return f"bbox-{s:.4f}-{w:.4f}-{n:.4f}-{e:.4f}"


def _provenance(area: Area, options: FetchOptions, ql: str, size: int, sha: str) -> dict[str, Any]:
    s, w, n, e = area.bbox()
    sources = [{"service": "Overpass API", "url": options.resolved_overpass(), "method": "POST"}]
    if area.geocode is not None:
        sources.insert(
            0,
            {
                "service": "Nominatim",
                "url": f"{options.resolved_nominatim()}/search",
                "query": area.query,
                "licence": area.geocode.get("licence"),
                "osm_type": area.geocode.get("osm_type"),
                "osm_id": area.geocode.get("osm_id"),
            },
        )
    return {
        "format": FETCH_FORMAT,
        "query": area.query,
        "display_name": area.display_name,
        "bounds": {"south": s, "west": w, "north": n, "east": e},
        "area_km2": round(area.area_km2(), 4),
        "overpass_query": ql,
        "sources": sources,
        "fetched": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "bytes": size,
        "sha256": sha,
        "attribution": catalog.ATTRIBUTION,
        "license": catalog.LICENSE,
        "user_agent": options.user_agent,
    }


def _register(name: str, path: Path, area: Area, *, replace: bool) -> None:
    existing = {e.name: e for e in catalog.user_cities()}
    same = name in existing and tuple(existing[name].files) == (path.resolve(),)
    if same:
        return
    description = f"fetched from OSM: {area.display_name}"[:200]
    try:
        catalog.add_city(path, name, description=description, replace=replace)
    except WorldError as err:
        raise FetchError(f"{err} The extract is at {path}.") from None


def fetch_city(
    query: str | None = None,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    around: tuple[float, float] | None = None,
    radius_m: float | None = None,
    name: str | None = None,
    options: FetchOptions | None = None,
    progress: bool | None = None,
    replace: bool = False,
) -> City:
    """`fetch_extract`, then `City.load` of the result (built and cached like a bundled city)."""
    from openvirl.world.city import City

    got = fetch_extract(
        query,
        bbox=bbox,
        around=around,
        radius_m=radius_m,
        name=name,
        options=options,
        progress=progress,
        replace=replace,
    )
    return City.load(got.name, progress=progress)


# ---------------------------------------------------------------------------- small helpers


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)


class _FetchProgress:
    """A rich status line on stderr (phase, bytes downloaded); silent when disabled."""

    def __init__(self, enabled: bool) -> None:
        self._progress = None
        if enabled:
            from rich.console import Console
            from rich.progress import DownloadColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                DownloadColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._progress.add_task("fetching", total=None)

    def __enter__(self) -> _FetchProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def status(self, text: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=text)

    def bytes(self, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=total)


__all__ = [
    "DEFAULT_NOMINATIM_URL",
    "DEFAULT_OVERPASS_URL",
    "NOMINATIM_ENV",
    "OVERPASS_ENV",
    "Area",
    "FetchError",
    "FetchOptions",
    "FetchedExtract",
    "bbox_around",
    "check_bbox",
    "extracts_dir",
    "fetch_city",
    "fetch_extract",
    "geocode",
    "overpass_query",
    "resolve_area",
    "slug",
]
