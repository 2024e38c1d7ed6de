"""Vision-language navigation: V-IRL-style routes in every bundled city, with key-point metrics.

V-IRL's VLN benchmark (§3.5) sends an agent from a place 40-150 m away to a destination of one
of the 20 place types along a route with one or two turns, following an LLM-written
instruction; it reports success (stopping within 25 m of the destination) and key-point
metrics: the reaction at the start (the first action turns the right way), the arrival at
and the reaction at each intersection, and the arrival near the destination. The full set had
up to 10 routes in each of 14 regions, the mini set 2 in each of 9.

Here the routes come from the navigation env's generator with V-IRL's parameters (starts at
named places, 40-150 m walks, 1-2 turns at real intersections, destinations of the 20 types)
in each bundled city: the full set has `per_city` routes per city, the mini set the first
`mini_per_city` of them. A city that cannot give its routes within 150 m is generated with a
longer limit and the manifest says so. Episodes run in the navigation env
(`openvirl/Navigation-v0` with these routes, no revision: one answer per position), all routes
at once in batches. Key points on the env's rail: the start entry, the turn entries (the
intersections) and the stop entry; "arrival" means the agent reached that rail position,
"reaction" that its answer there was right. Unlike the reference, the key-point rates are
over all routes, not only the failed ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from openvirl.benchmarks.common import (
    default_out,
    headline_and_breakdown_plots,
    load_or_build,
    policies_for,
    rate,
    write_bench_run,
)
from openvirl.envs.navigation.actions import parse_answer

NAME = "vln"
VERSION = 1

CITIES = ("manhattan", "helsinki", "monaco", "tokyo-shibuya", "singapore")
"""The bundled cities, each a region of the benchmark."""

RELAXED_MAX_LENGTH_M = 200.0
"""Longest walk allowed for a city that cannot give its routes within 150 m, metres."""


@dataclass
class VLNConfig:
    """Options of the VLN benchmark.

    Attributes
    ----------
    split
        "full" (`per_city` routes per city) or "mini" (the first `mini_per_city`).
    cities
        The cities (regions).
    per_city
        Routes per city in the full set (V-IRL: at most 10 per region).
    mini_per_city
        Routes per city in the mini set (V-IRL: 2 per region).
    seed
        Seed of the route generation, the episodes' rails and the random baseline.
    policy
        The model policy's spec.
    actions
        "absolute" (8 compass words) or "relative" (left, right, ...).
    visual
        Show the 2x2 street-view grid at each position (VL) instead of the landmark text.
    image_size
        Side of the view grid, pixels.
    max_attempts
        Answers per rail position (V-IRL: 1, no revision).
    min_length_m, max_length_m, min_turns, max_turns
        The route filter (V-IRL: 40-150 m, 1-2 turns).
    batch
        Episodes answered per policy call.
    routes_file
        Play the routes of this file instead (our JSONL, or any V-IRL route file: one
        ``route_infos_*.json`` record or ``[route_list, route_num]``), every route once;
        each route must lie on its city's map.
    routes_city
        The city of a V-IRL route file (it names none); default ``manhattan``.
    """

    split: str = "mini"
    cities: list[str] = field(default_factory=lambda: list(CITIES))
    per_city: int = 10
    mini_per_city: int = 2
    seed: int = 0
    policy: str = "oracle"
    actions: str = "absolute"
    visual: bool = False
    image_size: int = 512
    max_attempts: int = 1
    min_length_m: float = 40.0
    max_length_m: float = 150.0
    min_turns: int = 1
    max_turns: int = 2
    batch: int = 32
    routes_file: str | None = None
    routes_city: str | None = None

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.split not in ("full", "mini"):
            raise ValueError(f"`split` must be 'full' or 'mini', got {self.split!r}.")
        if not 1 <= self.mini_per_city <= self.per_city:
            raise ValueError("need 1 <= `mini_per_city` <= `per_city`.")
        if not self.cities:
            raise ValueError("`cities` must name at least one city.")

    def data_params(self) -> dict[str, Any]:
        """What fixes the full route set."""
        return {
            "benchmark": NAME,
            "version": VERSION,
            "cities": list(self.cities),
            "per_city": self.per_city,
            "seed": self.seed,
            "min_length_m": self.min_length_m,
            "max_length_m": self.max_length_m,
            "min_turns": self.min_turns,
            "max_turns": self.max_turns,
        }


def build_routes(config: VLNConfig) -> list[dict[str, Any]]:
    """Generate the full route set: `per_city` routes per city (NavRoute dicts)."""
    from openvirl.envs.navigation.routes import (
        GenerationConfig,
        RouteGenerationError,
        generate_routes,
    )

    out = []
    for city in config.cities:
        gen = GenerationConfig(
            min_length_m=config.min_length_m,
            max_length_m=config.max_length_m,
            min_turns=config.min_turns,
            max_turns=config.max_turns,
            intersection_start_share=0.0,
            max_tries=400,
        )
        relaxed = None
        try:
            routes = generate_routes(city, config.per_city, seed=config.seed, config=gen)
        except RouteGenerationError:
            # A sparse street network (Singapore's bayfront): allow longer walks, and say so.
            gen.max_length_m = max(RELAXED_MAX_LENGTH_M, config.max_length_m)
            gen.max_tries = 1500
            relaxed = gen.max_length_m
            routes = generate_routes(city, config.per_city, seed=config.seed, config=gen)
        for k, route in enumerate(routes):
            route.split = "vln-mini" if k < config.mini_per_city else "vln-full"
            route.meta.update(vln_index=k, relaxed_max_length_m=relaxed)
            out.append(route.to_dict())
    return out


def select(routes: list[dict[str, Any]], config: VLNConfig) -> list[dict[str, Any]]:
    """The routes of the configured split (mini: the first `mini_per_city` of each city)."""
    if config.split == "full":
        return list(routes)
    return [r for r in routes if r["meta"].get("vln_index", 0) < config.mini_per_city]


def run_episodes(
    routes: list[dict[str, Any]], policy: Any, config: VLNConfig
) -> list[dict[str, Any]]:
    """Run one episode per route in lockstep batches; return per-route records."""
    from openvirl.envs.navigation.env import NavigationEnv
    from openvirl.envs.navigation.routes import NavRoute

    navs = [NavRoute.from_dict(r) for r in routes]
    envs, infos, records = [], [], []
    for i, nav in enumerate(navs):
        env = NavigationEnv(
            routes=[nav],
            city=nav.city,
            actions=config.actions,
            visual=config.visual,
            image_size=config.image_size,
            max_attempts=config.max_attempts,
            order="fixed",
        )
        _, info = env.reset(seed=config.seed * 100_003 + i, options={"route_index": 0})
        envs.append(env)
        infos.append(info)
        rail = env.rail
        assert rail is not None
        records.append(
            {
                "route_id": nav.route_id,
                "city": nav.city,
                "success": False,
                "kinds": [e.kind for e in rail.entries],
                "steps": [],
                "length_m": round(nav.length_m, 1),
                "turns": nav.n_turns,
                "route": [list(p) for k in range(len(nav.milestones)) for p in nav.leg_polyline(k)],
            }
        )
    active = list(range(len(envs)))
    while active:
        for start in range(0, len(active), config.batch):
            chunk = active[start : start + config.batch]
            reqs = [{"messages": envs[i].messages(), "info": infos[i]} for i in chunk]
            replies = policy.act(reqs)
            for i, reply in zip(chunk, replies, strict=True):
                env = envs[i]
                entry = env.entry
                assert entry is not None
                position = env.position
                _, reward, term, trunc, info = env.step(reply)
                infos[i] = info
                records[i]["steps"].append(
                    {
                        "attempt": len(records[i]["steps"]) + 1,
                        "rail_index": position,
                        "kind": entry.kind,
                        "gt_action": entry.action(config.actions),
                        "action": reply,
                        "readable": parse_answer(reply).action is not None,
                        "outcome": info.get("outcome"),
                        "reward": reward,
                        "position": [entry.lat, entry.lon],
                        "heading": entry.heading,
                    }
                )
                if term or trunc:
                    records[i]["success"] = bool(info.get("success"))
        active = [i for i in active if not envs[i].done]
    return records


def key_points(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Success and V-IRL's key-point metrics over all routes."""
    n = len(records)
    start_ok = int_total = int_arrived = int_ok = stop_arrived = wins = 0
    per_city: dict[str, list[float]] = {}
    for r in records:
        kinds = r["kinds"]
        answered = {s["rail_index"]: s for s in r["steps"]}
        first = answered.get(0)
        start_ok += bool(first and first["outcome"] == "correct" and first["attempt"] == 1)
        for k, kind in enumerate(kinds):
            if kind == "turn":
                int_total += 1
                if k in answered:
                    int_arrived += 1
                    int_ok += answered[k]["outcome"] == "correct"
        stop_arrived += (len(kinds) - 1) in answered
        wins += bool(r["success"])
        per_city.setdefault(r["city"], []).append(float(r["success"]))
    return {
        "success": rate(wins, n),
        "start_reaction": rate(start_ok, n),
        "intersection_arrival": rate(int_arrived, int_total),
        "intersection_reaction": rate(int_ok, int_arrived)
        if int_arrived
        else {"value": None, "ci95": None, "n": 0},
        "stop_arrival": rate(stop_arrived, n),
        "stop_reaction": rate(wins, n),
        "per_city": {c: sum(v) / len(v) for c, v in sorted(per_city.items())},
        "routes": n,
        "steps": sum(len(r["steps"]) for r in records),
        "unreadable_rate": _unreadable_share(records),
    }


def _routes_from_file(config: VLNConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The routes of `config.routes_file`, checked against their cities, and a manifest."""
    from openvirl.envs.navigation.routes import sha256_file
    from openvirl.envs.navigation.virl_io import load_route_file, routes_to_dicts

    assert config.routes_file is not None
    routes = routes_to_dicts(load_route_file(config.routes_file, city=config.routes_city))
    for k, r in enumerate(routes):
        r["meta"] = {**r.get("meta", {}), "vln_index": k}
    manifest = {
        "benchmark": NAME,
        "version": VERSION,
        "routes_file": str(config.routes_file),
        "routes_file_sha256": sha256_file(Path(config.routes_file)),
        "routes": len(routes),
    }
    return routes, manifest


def _unreadable_share(records: list[dict[str, Any]]) -> float:
    """Share of answers with no readable action: the env scores them as wrong actions, and
    the report shows them apart so they are never read as the model's choice."""
    steps = [s for r in records for s in r["steps"]]
    return sum(not s.get("readable", True) for s in steps) / len(steps) if steps else 0.0


def run(config: VLNConfig, *, out: str | Path | None = None) -> dict[str, Any]:
    """Load (or generate) the routes, run every policy, and write the run folder.

    Examples
    --------
    >>> from openvirl.benchmarks.vln import VLNConfig, run
    >>> metrics = run(VLNConfig(split="mini", policy="random"))       # doctest: +SKIP
    >>> metrics["policies"]["oracle"]["success"]["value"]             # doctest: +SKIP
    1.0

    Returns
    -------
    dict
        The ``metrics.json`` content.
    """
    config.validate()
    if config.routes_file is not None:
        full, manifest = _routes_from_file(config)
        routes = full
        config.cities = sorted({r["city"] for r in full})
    else:
        shipped = f"{NAME}-routes" if list(config.cities) == list(CITIES) else None
        full, manifest = load_or_build(
            NAME, config.data_params(), lambda: build_routes(config), shipped=shipped
        )
        routes = select(full, config)
    relaxed = sorted({r["city"] for r in full if r["meta"].get("relaxed_max_length_m")})
    manifest = {
        **manifest,
        "split": config.split,
        "routes_in_split": len(routes),
        "relaxed_cities": relaxed,
    }
    results = {}
    for label, policy in policies_for(config.policy, seed=config.seed):
        records = run_episodes(routes, policy, config)
        results[label] = {"metrics": key_points(records), "records": records}
    folder = (
        Path(out)
        if out is not None
        else default_out(f"{NAME}-{config.split}", config.policy, config.seed)
    )
    plots = headline_and_breakdown_plots(
        folder,
        results,
        key="success",
        caption="Success by policy",
        title=f"VLN-{config.split} success",
        ylabel="success",
        breakdown_key="per_city",
        breakdown_caption="Per city",
        breakdown_title="Success per city",
    )
    notes = [
        f"{len(routes)} routes ({config.split}) in {len(config.cities)} cities; actions "
        f"`{config.actions}`, {'street-view grids' if config.visual else 'landmark text'},"
        f" {config.max_attempts} answer(s) per position."
    ]
    if relaxed:
        notes.append(
            f"Routes in {', '.join(relaxed)} allow up to {RELAXED_MAX_LENGTH_M:.0f} m "
            "(no route within 150 m there)."
        )
    return write_bench_run(
        folder,
        name=NAME,
        title=f"VLN-{config.split}",
        spec=config.policy,
        config=asdict(config),
        manifest=manifest,
        items=routes,
        results=results,
        headline=[
            ("success", "Success"),
            ("start_reaction", "Start reaction"),
            ("intersection_arrival", "Intersection arrival"),
            ("intersection_reaction", "Intersection reaction"),
            ("stop_arrival", "Stop arrival"),
            ("stop_reaction", "Stop reaction"),
            ("unreadable_rate", "Unreadable answers"),
        ],
        plots=plots,
        notes=notes,
    )


__all__ = ["CITIES", "VLNConfig", "build_routes", "key_points", "run", "run_episodes", "select"]
