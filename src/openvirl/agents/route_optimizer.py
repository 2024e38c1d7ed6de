"""Peng, the route optimizer: visit the places named in a sentence in the shortest walking order.

V-IRL's Peng (§2) has GPT-4 turn a sentence into a list of addresses, geocodes them and lets
Google's Directions reorder the waypoints (`optimize:true`). Here the policy (or a
deterministic splitter) reads the sentence, the gazetteer geocodes each name, the router
builds the walking-distance matrix, and `openvirl.world.routing.solve_tour` orders the stops
(exact Held-Karp up to 10 stops, 2-opt beyond). The answer reports the walking time and
distance of the best order and of the order given, and the saving.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openvirl.agents.base import (
    AgentResult,
    draw_map,
    load_city,
    policy_name,
    resolve_place,
    write_agent_run,
)
from openvirl.agents.llm import LLMLog, ask_json
from openvirl.world.errors import PlaceNotFoundError, WorldError

if TYPE_CHECKING:
    from openvirl.policies.base import Policy
    from openvirl.world import City, Place

NAME = "route_optimizer"

DEMO_START = "Empire State Building"
DEMO_STOPS = (
    "Grand Central Terminal",
    "Madison Square Garden",
    "Bryant Park",
    "Macy's",
    "New York Public Library",
)
"""The Manhattan demo: midtown sights in a deliberately poor order (the bundled extract covers
about 14th to 50th Street, not V-IRL's NYU campus)."""

PARSE_PROMPT = """[Role]
You help a visitor plan a walk in {city}.

[Task]
List every place the visitor wants to visit, in the order they are mentioned, as names that a
map search can find. Leave out the starting point if one is named as the start.

[Input]
{sentence}

[Output]
Answer with JSON only: {{"places": ["<name>", ...]}}"""

_LEAD_WORDS = re.compile(
    r"^(?:(?:i|we)\s+(?:want|need|would like|have|plan)\s+to\s+(?:visit|see|go to|stop by|"
    r"check out)|(?:please\s+)?(?:visit|see|go to|stop by)|then|also|and|finally|first|the)\s+",
    re.IGNORECASE,
)
_SPLIT = re.compile(r"\s*(?:,|;|\band then\b|\bthen\b|\band\b|\n)\s*", re.IGNORECASE)


@dataclass
class RouteOptimizerConfig:
    """Options of Peng, the route optimizer.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    start
        Where the walk starts: a place name or "lat, lon"; None starts at the first stop.
    stops
        The places to visit, in the given order; ignored when `sentence` is set.
    sentence
        A sentence naming the places ("I need to visit Bryant Park, Macy's and ..."), read by
        the policy (or split on commas and "and" by the baseline).
    round_trip
        Come back to the start at the end (V-IRL's Peng does; its last leg is then dropped
        from the navigation, not from the distance).
    speed_mps
        Walking speed, metres per second.
    """

    city: str = "manhattan"
    start: str | tuple[float, float] | None = DEMO_START
    stops: list[str] = field(default_factory=lambda: list(DEMO_STOPS))
    sentence: str | None = None
    round_trip: bool = True
    speed_mps: float = 1.4

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if not self.sentence and not self.stops:
            raise ValueError("give `stops` or a `sentence` naming at least one place to visit.")
        if self.speed_mps <= 0:
            raise ValueError(f"`speed_mps` must be positive, got {self.speed_mps}.")


_NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        [
            "zero",
            "one",
            "two",
            "three",
            "four",
            "five",
            "six",
            "seven",
            "eight",
            "nine",
            "ten",
            "eleven",
            "twelve",
        ]
    )
}
_WAYPOINT_HEAD = re.compile(
    r"\b(?P<count>\d{1,2}|" + "|".join(_NUMBER_WORDS) + r")\s+(?:different\s+|more\s+)?"
    r"(?:places|locations|stops|spots|sites|buildings|offices|destinations)\b(?P<purpose>[^:]*):",
    re.IGNORECASE,
)
_POSSESSIVE = re.compile(r"^(?:his|her|my|our|their|your|the)\s+", re.IGNORECASE)


@dataclass
class Waypoints:
    """The place queries of a waypoint sentence, with the count and purpose it states."""

    places: list[str]
    count: int | None = None
    purpose: str | None = None


def parse_waypoint_sentence(sentence: str) -> Waypoints | None:
    """Read V-IRL's waypoint sentence form "N places to <purpose>: A, B, ... and Z".

    V-IRL's Peng config (``WAY_POINTS_LANGUAGE``) says: "I need to go to five places to
    submit my documents: NYU Card Center, NYU Lipton Hall, NYU Center for Data Science, Elmer
    Holmes Bobst Library and John A. Paulson Center." The list after the colon is cut at
    commas and semicolons, then the last items at " and " until the stated count is reached
    (so a name with "and" in it survives when the count says so); a leading "his", "my",
    "the" is dropped. Returns None when the sentence has no such list.

    >>> parse_waypoint_sentence("I need two stops to eat: Joe's Pizza and Katz's.").places
    ["Joe's Pizza", "Katz's"]
    """
    text = " ".join(sentence.split())
    head = _WAYPOINT_HEAD.search(text)
    if head is None:
        return None
    raw = head.group("count").lower()
    count = int(raw) if raw.isdigit() else _NUMBER_WORDS[raw]
    body = text[head.end() :].strip()
    body = re.sub(r"[.!?]+$", "", body).strip()
    parts = [p.strip() for p in re.split(r"\s*[,;]\s*", body) if p.strip()]
    parts = [re.sub(r"^(?:and|or|then|and then)\s+", "", p, flags=re.IGNORECASE) for p in parts]
    # Cut at " and " (first one of the last item first) until the stated count is reached.
    while len(parts) < max(count, 1):
        k = next(
            (i for i in range(len(parts) - 1, -1, -1) if re.search(r"\s+and\s+", parts[i])),
            None,
        )
        if k is None:
            break
        first, rest = re.split(r"\s+and\s+(?:then\s+)?", parts[k], maxsplit=1)
        parts[k : k + 1] = [first, rest]
    places = [_POSSESSIVE.sub("", p).strip(" .\"'") for p in parts]
    places = [p for p in places if p]
    if not places:
        return None
    purpose = head.group("purpose").strip() or None
    return Waypoints(places, count, purpose)


def split_sentence(sentence: str) -> list[str]:
    """The baseline reader: cut a sentence into place names at commas, "and", "then".

    V-IRL's "N places to ...: A, B and C" form is read by `parse_waypoint_sentence`.

    >>> split_sentence("I want to visit Bryant Park, Macy's and then the Empire State Building.")
    ['Bryant Park', "Macy's", 'Empire State Building']
    """
    listed = parse_waypoint_sentence(sentence)
    if listed is not None:
        return listed.places
    parts = []
    for chunk in _SPLIT.split(sentence.strip().rstrip(".!?")):
        chunk = chunk.strip(" .!?\"'")
        previous = None
        while chunk and chunk != previous:
            previous = chunk
            chunk = _LEAD_WORDS.sub("", chunk).strip()
        if chunk:
            parts.append(chunk)
    return parts


def path_length(matrix: list[list[float]], order: list[int], *, round_trip: bool) -> float:
    """Length of visiting matrix points in `order` (metres), back to the first if round trip."""
    total = sum(matrix[a][b] for a, b in itertools.pairwise(order))
    if round_trip and len(order) > 1:
        total += matrix[order[-1]][order[0]]
    return float(total)


class RouteOptimizer:
    """Peng: the shortest walking order through a set of places.

    Examples
    --------
    >>> from openvirl.agents import RouteOptimizer, RouteOptimizerConfig
    >>> config = RouteOptimizerConfig(city="manhattan")       # the midtown demo
    >>> result = RouteOptimizer(config).run(out_dir="runs/agents/peng")  # doctest: +SKIP
    >>> result.data["saving_m"] >= 0                                       # doctest: +SKIP
    True

    Parameters
    ----------
    config
        The options (`RouteOptimizerConfig`).
    policy
        A policy that reads `config.sentence`; None uses the baseline splitter.
    city
        An already loaded city (skips `City.load`).
    """

    def __init__(
        self,
        config: RouteOptimizerConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
    ) -> None:
        self.config = config or RouteOptimizerConfig()
        self.config.validate()
        self.policy = policy
        self.city = city if city is not None else load_city(self.config.city)
        self.log = LLMLog()

    def parse(self, sentence: str) -> list[str]:
        """The place names of a sentence: the policy's list, else the baseline splitter's."""
        baseline = split_sentence(sentence)
        if self.policy is None:
            return baseline
        prompt = PARSE_PROMPT.format(city=self.city.name, sentence=sentence)

        def check(parsed: Any) -> list[str]:
            items = parsed.get("places") if isinstance(parsed, dict) else parsed
            if not isinstance(items, list) or not items:
                raise ValueError("expected a non-empty list `places`")
            names = [str(x).strip() for x in items if str(x).strip()]
            if not names:
                raise ValueError("`places` holds no names")
            return names

        (names,) = ask_json(
            self.policy,
            [prompt],
            step="parse",
            experts=[{"places": baseline}],
            check=check,
            log=self.log,
            task=f"agent:{NAME}",
        )
        return names if names is not None else baseline

    def _places(self, names: list[str]) -> list[Place]:
        places = []
        for name in names:
            try:
                places.append(resolve_place(self.city, name, what="stops"))
            except PlaceNotFoundError as err:
                raise err.renamed(name) from None
        return places

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Plan the walk; write the run folder and map when `out_dir` is given.

        Returns
        -------
        AgentResult
            ``data``: ``stops`` (as named), ``places`` (resolved), ``given_order`` and
            ``optimized_order`` (names), ``given_m``/``optimized_m`` (walking metres, from the
            same distance matrix), ``given_min``/``optimized_min`` (walking minutes),
            ``saving_m``, ``saving_min``, ``saving_share``, ``method`` ("exact" or "2-opt"),
            ``legs`` (each leg's length, duration and directions) and the LLM log.

        Raises
        ------
        PlaceNotFoundError
            A named place is not in the city; the message lists the closest names.
        NoRouteError
            Two places have no walking connection.
        """
        cfg = self.config
        names = self.parse(cfg.sentence) if cfg.sentence else list(cfg.stops)
        if not names:
            raise WorldError("no place to visit was found in the request.")
        stops = self._places(names)
        start = resolve_place(self.city, cfg.start, what="start") if cfg.start else None
        if start is None and len(stops) < 2:
            raise WorldError("without `start`, give at least two places to visit.")
        # Without a start, the first place named is where the walk begins.
        fixed = start if start is not None else stops[0]
        free = stops if start is not None else stops[1:]
        tour = self.city.tour(free, start=fixed, round_trip=cfg.round_trip, speed_mps=cfg.speed_mps)
        matrix = tour.distance_matrix_m
        given = list(range(len(tour.points)))
        best = [0, *(i + 1 for i in tour.order)]
        given_m = path_length(matrix, given, round_trip=cfg.round_trip)
        best_m = path_length(matrix, best, round_trip=cfg.round_trip)
        to_min = 1.0 / (cfg.speed_mps * 60.0)
        ordered = [fixed, *tour.stops]
        data = {
            "city": self.city.name,
            "request": cfg.sentence or names,
            "stops": names,
            "start": fixed.name,
            "places": [p.to_dict() for p in [fixed, *free]],
            "given_order": [p.name for p in [fixed, *free]],
            "optimized_order": [p.name for p in ordered],
            "round_trip": cfg.round_trip,
            "given_m": round(given_m, 1),
            "optimized_m": round(best_m, 1),
            "given_min": round(given_m * to_min, 1),
            "optimized_min": round(best_m * to_min, 1),
            "saving_m": round(given_m - best_m, 1),
            "saving_min": round((given_m - best_m) * to_min, 1),
            "saving_share": round((given_m - best_m) / given_m, 4) if given_m > 0 else 0.0,
            "method": tour.method,
            "route_length_m": round(tour.length_m, 1),
            "legs": [
                {
                    "from": leg.origin.name,
                    "to": leg.destination.name,
                    "length_m": round(leg.length_m, 1),
                    "duration_min": round(leg.duration_s / 60.0, 1),
                    "directions": leg.instructions,
                }
                for leg in tour.legs
            ],
            "llm": self.log.to_list(),
        }
        metrics = {
            "given_m": data["given_m"],
            "optimized_m": data["optimized_m"],
            "saving_m": data["saving_m"],
            "saving_min": data["saving_min"],
            "saving_share": data["saving_share"],
            "stops": len(free),
            **self.log.summary(),
        }
        result = AgentResult(NAME, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            colours = ("#1f6fd1", "#2e9b4e", "#d64541", "#8e24aa", "#ef6c00", "#00838f")
            lines = [
                (leg.polyline, colours[k % len(colours)], f"{k + 1}. → {leg.destination.name}")
                for k, leg in enumerate(tour.legs)
            ]
            points = [(p.lat, p.lon, "#1f3f7a", p.name) for p in ordered[1:]]
            result.map_png = draw_map(
                self.city,
                out / "map.png",
                lines=lines,
                points=points,
                numbered=True,
                start=(fixed.lat, fixed.lon, fixed.name),
                title=f"Peng: {best_m:.0f} m in the best order vs {given_m:.0f} m as given",
            )
            result.out_dir = out
            summary = [
                f"**Best order** ({data['optimized_m']:.0f} m, {data['optimized_min']:.0f} min "
                f"walking): {' → '.join(data['optimized_order'])}",
                "",
                f"**Given order** ({data['given_m']:.0f} m, {data['given_min']:.0f} min): "
                f"{' → '.join(data['given_order'])}",
                "",
                f"Saving: {data['saving_m']:.0f} m ({data['saving_min']:.1f} min, "
                f"{data['saving_share']:.0%}); solver: {tour.method}; policy "
                f"`{policy_name(self.policy)}`.",
            ]
            write_agent_run(
                out,
                agent=NAME,
                title="Route optimizer (Peng)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png],
            )
        return result


__all__ = [
    "DEMO_STOPS",
    "RouteOptimizer",
    "RouteOptimizerConfig",
    "Waypoints",
    "parse_waypoint_sentence",
    "path_length",
    "split_sentence",
]
