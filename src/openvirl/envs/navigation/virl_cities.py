"""``visual-ood-virl``: the visual-OOD route set in V-IRL's nine VLN-mini cities, fetched on demand.

V-IRL's VLN-mini benchmark uses 2 routes in each of 9 regions (``split_list_9.txt``): Brera
(Milan), Lajpat Nagar (New Delhi), Monserrat (Buenos Aires), Oxford St (London), Prince
Edward (Hong Kong), SoHo (New York), SouthBank (Melbourne), Surulere (Lagos) and Union
Square (San Francisco). None of them is bundled, so this set is built on first use: each
region's OSM data is fetched (`openvirl.world.fetch`, a `REGION_RADIUS_M` box around the
centre of V-IRL's region polygon), registered as city ``virl-<key>``, and
`ROUTES_PER_CITY` routes are generated there with the bundled ``visual-ood`` set's generator
options and seed. The routes are cached (``cache_dir("routes")``, with a manifest naming
each extract's provenance), so later uses are offline.

It is opt-in because it needs the network: build it with ``openvirl navigate virl-cities``
(or `build_virl_route_set`), or set ``OPENVIRL_FETCH=1`` to let the ``visual-ood-virl``
preset build it on first use. The bundled four-city ``visual-ood`` stays the offline
default.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from openvirl.envs.navigation.routes import (
    GenerationConfig,
    NavRoute,
    RouteGenerationError,
    generate_routes,
    read_routes,
    write_routes,
)

SPLIT = "visual-ood-virl"
"""The route set's name (a `NavigationConfig.split` value and a preset)."""

ROUTES_PER_CITY = 2
"""Routes per region, as V-IRL's VLN-mini (18 in all)."""

REGION_RADIUS_M = 600.0
"""Half side of the box fetched around each region's centre, metres (1.44 km²)."""

SEED = 7
"""Generator seed (the bundled ``visual-ood`` set's)."""

FETCH_ENV = "OPENVIRL_FETCH"
"""Set to 1 to let the preset fetch and build the set on first use."""


@dataclass(frozen=True)
class Region:
    """One VLN-mini region: a key, its city and the centre of V-IRL's polygon."""

    key: str
    name: str
    lat: float
    lon: float

    @property
    def city(self) -> str:
        """The name the fetched extract is registered under."""
        return f"virl-{self.key}"


VLN_MINI_REGIONS: tuple[Region, ...] = (
    Region("milan", "Brera, Milan", 45.4706, 9.1874),
    Region("new-delhi", "Lajpat Nagar, New Delhi", 28.5701, 77.2418),
    Region("buenos-aires", "Monserrat, Buenos Aires", -34.6126, -58.3794),
    Region("london", "Oxford St, London", 51.5150, -0.1403),
    Region("hong-kong", "Prince Edward, Hong Kong", 22.3243, 114.1709),
    Region("new-york", "SoHo, New York", 40.7234, -74.0004),
    Region("melbourne", "SouthBank, Melbourne", -37.8254, 144.9592),
    Region("lagos", "Surulere, Lagos", 6.5044, 3.3352),
    Region("san-francisco", "Union Square, San Francisco", 37.7871, -122.4062),
)
"""Centres of V-IRL's region polygons (data/benchmark/benchmark_polygon_area), 4 decimals."""


def generation_config() -> GenerationConfig:
    """The generator options (the bundled ``visual-ood`` set's: 150-600 m, at most 3 turns)."""
    return GenerationConfig(max_length_m=600.0, max_turns=3)


def route_set_file(
    regions: tuple[Region, ...] | None = None,
    per_city: int = ROUTES_PER_CITY,
    seed: int = SEED,
    radius_m: float = REGION_RADIUS_M,
) -> Path:
    """The cache file of a route set (keyed by its regions, size, seed and radius)."""
    from openvirl._paths import cache_dir

    regions = VLN_MINI_REGIONS if regions is None else regions
    key = json.dumps([[asdict(r) for r in regions], per_city, seed, radius_m], sort_keys=True)
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
    return cache_dir("routes") / f"{SPLIT}-n{per_city}-s{seed}-{digest}.jsonl.gz"


def build_virl_route_set(
    *,
    regions: tuple[Region, ...] | None = None,
    per_city: int = ROUTES_PER_CITY,
    seed: int = SEED,
    radius_m: float = REGION_RADIUS_M,
    options: Any = None,
    progress: bool | None = None,
    rebuild: bool = False,
) -> list[NavRoute]:
    """Fetch each region (or find it in the cache), generate its routes, cache the set.

    Parameters
    ----------
    regions
        The regions (default V-IRL's nine VLN-mini regions).
    per_city, seed, radius_m
        Routes per region, generator seed, half side of each fetched box (metres).
    options
        `openvirl.world.fetch.FetchOptions` (servers, etiquette); None: the defaults.
    progress
        Show progress on stderr.
    rebuild
        Generate again even if the set is cached.

    Raises
    ------
    FetchError
        Offline or a server error, with one line that says how to add extracts by hand.
    RouteGenerationError
        No region could give its routes.
    """
    from openvirl.world import City
    from openvirl.world.fetch import fetch_extract

    regions = VLN_MINI_REGIONS if regions is None else regions
    path = route_set_file(regions, per_city, seed, radius_m)
    if path.is_file() and not rebuild:
        return read_routes(path)
    routes: list[NavRoute] = []
    extracts: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for region in regions:
        got = fetch_extract(
            around=(region.lat, region.lon),
            radius_m=radius_m,
            name=region.city,
            options=options,
            progress=progress,
            replace=True,
        )
        prov = got.provenance
        extracts.append(
            {
                "region": region.name,
                "city": region.city,
                "file": got.path.name,
                "sha256": prov.get("sha256"),
                "fetched": prov.get("fetched"),
                "bounds": prov.get("bounds"),
                "overpass": next(
                    (s["url"] for s in prov.get("sources", []) if s["service"] == "Overpass API"),
                    None,
                ),
            }
        )
        city = City.load(region.city, progress=progress)
        try:
            made = generate_routes(city, per_city, seed=seed, config=generation_config())
        except RouteGenerationError as err:
            skipped[region.city] = str(err)
            continue
        for route in made:
            route.split = SPLIT
            route.meta = {**route.meta, "region": region.name}
            routes.append(route)
    if not routes:
        raise RouteGenerationError(
            f"no VLN-mini region gave its routes ({'; '.join(skipped.values())[:300]})"
        )
    write_routes(
        routes,
        path,
        manifest={
            "split": SPLIT,
            "per_city": per_city,
            "seed": seed,
            "radius_m": radius_m,
            "generator": vars(generation_config()),
            "regions": [asdict(r) for r in regions],
            "extracts": extracts,
            "skipped": skipped,
            "attribution": "© OpenStreetMap contributors (ODbL 1.0)",
        },
    )
    return routes


def load_virl_route_set() -> list[NavRoute]:
    """The cached set; built now when ``OPENVIRL_FETCH=1``; else a one-line error.

    Raises
    ------
    ValueError
        Not built yet and fetching not allowed; the message says how to build it.
    """
    path = route_set_file()
    if path.is_file():
        return read_routes(path)
    if os.environ.get(FETCH_ENV, "").strip().lower() in ("1", "true", "yes"):
        return build_virl_route_set()
    raise ValueError(
        f"the `{SPLIT}` routes lie in V-IRL's nine VLN-mini cities, fetched from "
        "OpenStreetMap on first use: build them once with `openvirl navigate virl-cities` "
        f"(needs the network) or set {FETCH_ENV}=1; the bundled `visual-ood` set works offline."
    )


__all__ = [
    "FETCH_ENV",
    "REGION_RADIUS_M",
    "ROUTES_PER_CITY",
    "SPLIT",
    "VLN_MINI_REGIONS",
    "Region",
    "build_virl_route_set",
    "generation_config",
    "load_virl_route_set",
    "route_set_file",
]
