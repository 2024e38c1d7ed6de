"""Named navigation presets and the route sets behind them.

A preset is a set of `NavigationConfig` options (spec §3.7, with the fixes of §10.9 and
§10.18):

============== ================================ ========= =================================
preset         routes                           actions   what changes
============== ================================ ========= =================================
train          Manhattan, train area cells      absolute  (training)
id             Manhattan, held-out test routes  absolute  nothing: in-distribution eval
rule-ood       Manhattan, held-out test routes  relative  the action rule
rule-ood-hard  Manhattan, held-out test routes  relative  instructions give no relative word
visual-ood     Helsinki, Monaco (6 each; the    absolute  the cities (VL), once each, in
               VLN-mini analog's streetscapes)            a fixed order
visual-ood-all the above plus Tokyo Shibuya and   absolute  opt-in: those two extracts
               Singapore (24 routes)                      have few buildings (caveat)
visual-ood-    V-IRL's nine VLN-mini cities,    absolute  as visual-ood; fetched from OSM
virl           2 each (`virl_cities`)                     on first use (opt-in, network)
human          RUN human instructions mapped    absolute  the instructions are human text;
               onto Manhattan                             a stop within 30 m succeeds
============== ================================ ========= =================================

Route sets ship with the package (`presets/*.jsonl.gz`, each with its manifest) so every
checkout evaluates the same routes whatever the router does later; a (city, split) pair that
is not shipped is generated deterministically on first use and cached under
``openvirl._paths.cache_dir("routes")``. `build_presets` regenerates the shipped files.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from openvirl.envs.navigation.routes import (
    GenerationConfig,
    NavRoute,
    describe_split,
    generate_routes,
    read_routes,
    write_routes,
)

PRESETS: dict[str, dict[str, Any]] = {
    "train": {"city": "manhattan", "split": "train", "actions": "absolute"},
    "id": {"city": "manhattan", "split": "test", "actions": "absolute", "order": "fixed"},
    "rule-ood": {"city": "manhattan", "split": "test", "actions": "relative", "order": "fixed"},
    "rule-ood-hard": {
        "city": "manhattan",
        "split": "test",
        "actions": "relative",
        "instructions": "headings",
        "order": "fixed",
    },
    "visual-ood": {"split": "visual-ood", "actions": "absolute", "visual": True, "order": "fixed"},
    "visual-ood-all": {
        "split": "visual-ood-all",
        "actions": "absolute",
        "visual": True,
        "order": "fixed",
    },
    # V-IRL's nine VLN-mini cities, fetched on first use (opt-in; see `virl_cities`).
    "visual-ood-virl": {
        "split": "visual-ood-virl",
        "actions": "absolute",
        "visual": True,
        "order": "fixed",
    },
    "human": {
        "city": "manhattan",
        "split": "human",
        "actions": "absolute",
        "stop_radius_m": 30.0,
        "order": "fixed",
    },
}
"""Preset name → `NavigationConfig` options (explicit options given with a preset win).

Evaluation presets use ``order="fixed"``: given ``reset(options={"episode_index": i})`` they
play route ``i``, so held-out routes are drawn without replacement (spec §10.18)."""

ROUTE_SETS = ("train", "test", "visual-ood", "visual-ood-all", "human", "visual-ood-virl")
"""Values of `NavigationConfig.split`: which routes an episode is drawn from."""

SPLIT_SIZES = {"manhattan": {"train": 1000, "test": 120}}
"""Routes per split of the shipped cities; other cities get `DEFAULT_SPLIT_SIZES`."""

DEFAULT_SPLIT_SIZES = {"train": 200, "test": 50}
"""Routes per split generated on first use for a city without shipped routes."""

SPLIT_SEEDS = {"train": 1, "test": 2}
"""Generator seed of each split (the two sides are also disjoint by area and by id)."""

VISUAL_OOD_ALL_CITIES = ("helsinki", "monaco", "tokyo-shibuya", "singapore")
"""Every city of the VLN-mini analog (none is Manhattan, the training city); the shipped
route file holds all of them (`visual-ood-all`)."""

VISUAL_OOD_CITIES = ("helsinki", "monaco")
"""The cities of the default `visual-ood` set: those whose extracts render as streetscapes
(`openvirl.world.coverage.is_streetscape`: a building along >= 60% of street frontage)."""

VISUAL_OOD_CAVEATS = {
    "tokyo-shibuya": "the extract has 2 buildings (0.3% of street frontage): its views are "
    "open ground with floating signs",
    "singapore": "the extract has 31 buildings (45% of street frontage): many views are open "
    "ground with floating signs",
}
"""Why the opt-in cities (`visual-ood-all`) are not in the default set; a fetched extract
with buildings can replace them."""

VISUAL_OOD_PER_CITY = 6
"""Routes per visual-OOD city (24 in all; the reference's VLN mini had 18)."""

VISUAL_OOD_SEED = 7

PRESET_DIR = Path(__file__).resolve().parent / "presets"
"""Where the shipped route files live."""


def preset_options(name: str) -> dict[str, Any]:
    """The options of a preset.

    Raises
    ------
    ValueError
        Unknown name; the message lists the presets and the closest one.
    """
    if name not in PRESETS:
        import difflib

        close = difflib.get_close_matches(name, list(PRESETS), n=1)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise ValueError(f"unknown preset `{name}`; presets: {', '.join(PRESETS)}.{hint}")
    return dict(PRESETS[name])


def shipped_file(city: str, split: str) -> Path:
    """The shipped file of a route set (which may not exist)."""
    if split in ("visual-ood", "visual-ood-all"):
        return PRESET_DIR / "visual-ood.jsonl.gz"
    if split == "human":
        return PRESET_DIR / f"{split}.jsonl.gz"
    return PRESET_DIR / f"{city}-{split}.jsonl.gz"


def _cache_file(city: str, split: str, n: int, seed: int) -> Path:
    from openvirl._paths import cache_dir

    return cache_dir("routes") / f"{city}-{split}-n{n}-s{seed}.jsonl.gz"


@cache
def load_route_set(city: str, split: str) -> tuple[NavRoute, ...]:
    """The routes of a split: shipped, cached, or generated now (then cached).

    Parameters
    ----------
    city
        City name (ignored for ``visual-ood``, which spans several cities, and ``human``).
    split
        One of `ROUTE_SETS`.

    Raises
    ------
    ValueError
        Unknown split.
    RouteGenerationError
        The city cannot give the routes (too few places).
    """
    if split not in ROUTE_SETS:
        raise ValueError(f"`split` must be one of {ROUTE_SETS}, got {split!r}.")
    if split == "visual-ood":  # the streetscape cities of the full set, in its order
        every = load_route_set(city, "visual-ood-all")
        return tuple(r for r in every if r.city in VISUAL_OOD_CITIES)
    path = shipped_file(city, split)
    if path.is_file():
        return tuple(read_routes(path))
    if split == "human":
        from openvirl.envs.navigation.human import build_human_routes

        return tuple(build_human_routes())
    if split == "visual-ood-all":
        return tuple(build_visual_ood())
    if split == "visual-ood-virl":
        from openvirl.envs.navigation.virl_cities import load_virl_route_set

        return tuple(load_virl_route_set())
    sizes = SPLIT_SIZES.get(city, DEFAULT_SPLIT_SIZES)
    n, seed = sizes[split], SPLIT_SEEDS[split]
    cached = _cache_file(city, split, n, seed)
    if cached.is_file():
        return tuple(read_routes(cached))
    routes = build_city_split(city, split, n=n, seed=seed)
    write_routes(routes, cached, manifest=_split_manifest(city, split, n, seed))
    return tuple(routes)


def _split_manifest(city: str, split: str, n: int, seed: int) -> dict[str, Any]:
    config = GenerationConfig()
    return {
        "city": city,
        "split": split,
        "seed": seed,
        "n": n,
        "generator": vars(config),
        "split_rule": describe_split(config.cell_deg, config.test_percent),
        "other_side_excluded": "test routes are generated first; train never reuses their ids",
    }


def build_city_split(city: str, split: str, *, n: int, seed: int) -> list[NavRoute]:
    """Generate one side of a city's split, disjoint from the other side by id.

    The test side is generated first (with its own seed) and its ids are excluded from the
    train side, so the sides stay disjoint by route even in the route-hash fallback.
    """
    from openvirl.world import City

    city_obj = City.load(city)
    exclude: set[str] = set()
    if split == "train":
        test_n = SPLIT_SIZES.get(city, DEFAULT_SPLIT_SIZES)["test"]
        test_file = shipped_file(city, "test")
        if test_file.is_file():
            exclude = {r.route_id for r in read_routes(test_file)}
        else:
            exclude = {r.route_id for r in load_route_set(city, "test")[:test_n]}
    return generate_routes(city_obj, n, seed=seed, split=split, exclude=exclude)


def build_visual_ood(
    cities: tuple[str, ...] = VISUAL_OOD_ALL_CITIES,
    per_city: int = VISUAL_OOD_PER_CITY,
    seed: int = VISUAL_OOD_SEED,
) -> list[NavRoute]:
    """The VLN-mini analog: `per_city` routes in each city, in a fixed order.

    Routes are shorter than the Manhattan ones (150–600 m, at most 3 turns), like V-IRL's
    benchmark routes, since the small extracts of these cities leave less room.
    """
    from openvirl.world import City

    config = GenerationConfig(max_length_m=600.0, max_turns=3)
    routes: list[NavRoute] = []
    for city in cities:
        for route in generate_routes(City.load(city), per_city, seed=seed, config=config):
            route.split = "visual-ood"
            routes.append(route)
    return routes


def build_presets(out: Path = PRESET_DIR, *, progress: bool = True) -> list[Path]:
    """Regenerate the shipped route files (Manhattan train/test, visual-ood, human).

    Returns
    -------
    list[Path]
        The manifests written.
    """
    from openvirl.envs.navigation.human import build_human_routes, human_manifest
    from openvirl.world import City

    written = []
    city = City.load("manhattan")
    sizes = SPLIT_SIZES["manhattan"]
    test = generate_routes(
        city, sizes["test"], seed=SPLIT_SEEDS["test"], split="test", progress=progress
    )
    path = out / "manhattan-test.jsonl.gz"
    written.append(
        write_routes(
            test,
            path,
            manifest=_split_manifest("manhattan", "test", sizes["test"], SPLIT_SEEDS["test"]),
        )
    )
    train = generate_routes(
        city,
        sizes["train"],
        seed=SPLIT_SEEDS["train"],
        split="train",
        exclude={r.route_id for r in test},
        progress=progress,
    )
    path = out / "manhattan-train.jsonl.gz"
    written.append(
        write_routes(
            train,
            path,
            manifest=_split_manifest("manhattan", "train", sizes["train"], SPLIT_SEEDS["train"]),
        )
    )
    vis = build_visual_ood()
    written.append(
        write_routes(
            vis,
            out / "visual-ood.jsonl.gz",
            manifest={
                "preset": "visual-ood-all",
                "cities": list(VISUAL_OOD_ALL_CITIES),
                "default_cities": list(VISUAL_OOD_CITIES),
                "per_city": VISUAL_OOD_PER_CITY,
                "seed": VISUAL_OOD_SEED,
                "generator": vars(GenerationConfig(max_length_m=600.0, max_turns=3)),
                "order": "fixed: episode i of an evaluation plays route i",
            },
        )
    )
    human = build_human_routes()
    written.append(write_routes(human, out / "human.jsonl.gz", manifest=human_manifest(human)))
    load_route_set.cache_clear()
    return written


__all__ = [
    "PRESETS",
    "ROUTE_SETS",
    "VISUAL_OOD_CITIES",
    "build_city_split",
    "build_presets",
    "build_visual_ood",
    "load_route_set",
    "preset_options",
]
