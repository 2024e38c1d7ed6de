"""Diego, the concierge: a day plan within a time budget, one activity at a time.

V-IRL's Diego (§2) has GPT-4 propose the next activity, turns transport activities into real
durations with Google Directions, hands meals to Aria, and revises each activity with a
supervisor that watches the person's status and budget. Here the plan is built the same way,
one activity at a time from where the person stands and what time it is: the candidates are
the nearby places of the person's interests that are open for the whole visit (OSM
`opening_hours`, read by `openvirl.world.places.parse_opening_hours`) and that leave time to
walk there and, when a meal is due, to eat; walking times come from the router; meals are
chosen by the place recommender (Aria) among restaurants open at arrival. The policy picks the
next activity from the feasible ones (or ends the day); the baseline takes the best-known
nearby one. Transit is not modelled (OSM has no timetables): every move is a walk.
"""

from __future__ import annotations

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
from openvirl.agents.place_recommender import PlaceRecommender, PlaceRecommenderConfig
from openvirl.world.categories import resolve_category
from openvirl.world.errors import NoRouteError, WorldError

if TYPE_CHECKING:
    from openvirl.policies.base import Policy
    from openvirl.world import City, Place

NAME = "concierge"

DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")

VISIT_MINUTES = {
    "museum": 90,
    "art_gallery": 45,
    "tourist_attraction": 40,
    "park": 40,
    "church": 20,
    "library": 40,
    "shopping_mall": 60,
    "department_store": 45,
    "book_store": 30,
    "zoo": 120,
    "aquarium": 90,
    "performing_arts_theater": 120,
}
"""How long a visit lasts by place type, minutes (other types: `ConciergeConfig.visit_min`)."""

CHOICE_PROMPT = """[Role]
You are a concierge planning a day in {city} for {persona}.

[Task]
Choose the next activity. It is {day} {time}; the day ends at {end}. Every option below is
open for the whole visit and leaves time for what must follow.

[Input]
Done so far: {done}
Options:
{options}

[Output]
Answer with JSON only: {{"choice": <option number, or 0 to end the day>, "reason": "<why>"}}"""

_TIME = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def to_minutes(text: str) -> int:
    """ "HH:MM" as minutes after midnight ("24:00" is 1440).

    Raises
    ------
    ValueError
        Not a time.
    """
    m = _TIME.match(text)
    if not m or int(m.group(2)) > 59 or int(m.group(1)) > 24:
        raise ValueError(f"`{text}` is not a time; write HH:MM, e.g. 09:30.")
    return int(m.group(1)) * 60 + int(m.group(2))


def clock(minutes: float) -> str:
    """Minutes after midnight as "HH:MM"."""
    m = round(minutes)
    return f"{m // 60:02d}:{m % 60:02d}"


def open_during(
    hours: dict[str, Any] | None, day: str, start_min: float, end_min: float
) -> bool | None:
    """Whether a place is open for the whole of [start, end] on `day`; None when unknown.

    `hours` is `City.details(place)["opening_hours"]` (`parse_opening_hours`). A range past
    midnight ("18:00-02:00") counts up to midnight; a day missing from a readable week is
    closed. Hours that could not be read at all count as unknown.

    >>> from openvirl.world.places import parse_opening_hours
    >>> h = parse_opening_hours("Mo-Fr 08:00-18:00; Sa 10:00-14:00")
    >>> open_during(h, "Sa", 10 * 60, 12 * 60), open_during(h, "Sa", 13 * 60, 15 * 60)
    (True, False)
    >>> open_during(h, "Su", 600, 660), open_during(None, "Su", 600, 660)
    (False, None)
    """
    if not hours or hours.get("weekly") is None:
        return None
    if hours.get("always_open"):
        return True
    for a, b in hours["weekly"].get(day, []):
        s, e = to_minutes(a), to_minutes(b)
        if e <= s:
            e = 24 * 60
        if s <= start_min and end_min <= e:
            return True
    return False


@dataclass
class ConciergeConfig:
    """Options of Diego, the concierge.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    start
        Where the day starts (a hotel, a station): a place name or "lat, lon".
    persona
        Who the plan is for; also what the meals are chosen for.
    day
        Day of the week ("Mo".."Su"), for opening hours.
    start_time, end_time
        The time budget, "HH:MM".
    interests
        Place types or words of what to visit ("museum", "park", "art gallery").
    lunch, dinner
        Windows in which the meal must start, ("HH:MM", "HH:MM"); None skips the meal.
    meal_min
        How long a meal lasts, minutes.
    visit_min
        Visit length of a type missing from `VISIT_MINUTES`, minutes.
    max_walk_m
        Farthest walk to the next activity (straight line), metres.
    food_radius_m
        Radius of the restaurant search for a meal, metres.
    candidates
        Nearby options whose walks are routed and offered at each step.
    unknown_hours
        "open": a place without readable `opening_hours` is assumed open (and flagged);
        "closed": it is never chosen.
    speed_mps
        Walking speed, metres per second.
    """

    city: str = "manhattan"
    start: str | tuple[float, float] = "Grand Central Terminal"
    persona: str = "Peng, a graduate student from Chengdu, Sichuan, who loves art and spicy food"
    day: str = "Sa"
    start_time: str = "09:00"
    end_time: str = "18:00"
    interests: list[str] = field(
        default_factory=lambda: ["museum", "art_gallery", "tourist_attraction", "park"]
    )
    lunch: tuple[str, str] | None = ("12:00", "14:00")
    dinner: tuple[str, str] | None = ("18:00", "20:30")
    meal_min: int = 60
    visit_min: int = 30
    max_walk_m: float = 1200.0
    food_radius_m: float = 600.0
    candidates: int = 8
    unknown_hours: str = "open"
    speed_mps: float = 1.4

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.day not in DAYS:
            raise ValueError(f"`day` must be one of {DAYS}, got {self.day!r}.")
        if to_minutes(self.end_time) <= to_minutes(self.start_time):
            raise ValueError("`end_time` must come after `start_time`.")
        for name in ("lunch", "dinner"):
            window = getattr(self, name)
            if window is not None and to_minutes(window[1]) < to_minutes(window[0]):
                raise ValueError(f"`{name}` must be (earliest, latest) start times.")
        if self.unknown_hours not in ("open", "closed"):
            raise ValueError("`unknown_hours` must be 'open' or 'closed'.")
        if self.meal_min <= 0 or self.visit_min <= 0 or self.candidates < 1:
            raise ValueError("`meal_min`, `visit_min` and `candidates` must be positive.")
        if self.speed_mps <= 0 or self.max_walk_m <= 0:
            raise ValueError("`speed_mps` and `max_walk_m` must be positive.")


class Concierge:
    """Diego: a walking day plan that respects the time budget and opening hours.

    Examples
    --------
    >>> from openvirl.agents import Concierge, ConciergeConfig
    >>> plan = Concierge(ConciergeConfig(end_time="15:00")).run().data["plan"]  # doctest: +SKIP
    >>> [a["type"] for a in plan]                                             # doctest: +SKIP
    ['visit', 'visit', 'eat', 'visit', 'end']

    Parameters
    ----------
    config
        The options (`ConciergeConfig`).
    policy
        Picks each activity and rates the restaurants (through Aria); None: the baseline.
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: ConciergeConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
    ) -> None:
        self.config = config or ConciergeConfig()
        self.config.validate()
        self.policy = policy
        self.city = city if city is not None else load_city(self.config.city)
        self.log = LLMLog()
        types: list[str] = []
        for word in self.config.interests:
            resolved = resolve_category(word)
            if resolved is None:
                raise WorldError(
                    f"unknown interest `{word}`; name place types such as 'museum', 'park', "
                    "'art gallery', 'tourist attraction'."
                )
            types.extend(t for t in resolved if t not in types)
        self.types = types

    # ------------------------------------------------------------------ helpers
    def _hours(self, place: Place) -> dict[str, Any] | None:
        return self.city.details(place)["opening_hours"] if place.kind == "poi" else None

    def _open(self, place: Place, start: float, end: float) -> tuple[bool, bool]:
        """(allowed, hours known) for a visit of `place` from `start` to `end` minutes."""
        verdict = open_during(self._hours(place), self.config.day, start, end)
        if verdict is None:
            return self.config.unknown_hours == "open", False
        return verdict, True

    def _walk_min(self, a: Place, b: Place) -> tuple[float, list[tuple[float, float]]]:
        route = self.city.route(a, b, speed_mps=self.config.speed_mps)
        return route.duration_s / 60.0, route.polyline

    def _visit_min(self, place: Place) -> int:
        return VISIT_MINUTES.get(place.category or "", self.config.visit_min)

    def _pending_meal(self, done: set[str], now: float) -> tuple[str, float, float] | None:
        """The next meal not had yet whose window has not passed: (name, earliest, latest)."""
        for name in ("lunch", "dinner"):
            window = getattr(self.config, name)
            if window is None or name in done:
                continue
            earliest, latest = to_minutes(window[0]), to_minutes(window[1])
            if now <= latest:
                return name, earliest, latest
        return None

    # ------------------------------------------------------------------ steps
    def _meal(
        self, name: str, here: Place, now: float, latest: float, end: float, visited: set[str]
    ) -> dict[str, Any] | None:
        cfg = self.config
        aria = PlaceRecommender(
            PlaceRecommenderConfig(
                city=self.city.name,
                start=(here.lat, here.lon),
                persona=cfg.persona,
                intention=f"a restaurant for {name}",
                radius_m=cfg.food_radius_m,
                max_candidates=cfg.candidates,
                top_k=cfg.candidates,
            ),
            self.policy,
            city=self.city,
            log=self.log,
        )
        for pick in aria.rank()["ranked"]:
            if pick["id"] in visited:
                continue
            place = self.city.place(pick["id"])
            try:
                walk, line = self._walk_min(here, place)
            except (NoRouteError, WorldError):
                continue
            arrive = now + walk
            if arrive > latest or arrive + cfg.meal_min > end:
                continue
            allowed, known = self._open(place, arrive, arrive + cfg.meal_min)
            if not allowed:
                continue
            return {
                "type": "eat",
                "meal": name,
                "place": place,
                "walk_min": walk,
                "arrive": arrive,
                "leave": arrive + cfg.meal_min,
                "line": line,
                "hours_known": known,
                "reason": f"{name}: {pick['reason']}",
                "source": pick["source"],
                "rating": pick["rating"],
            }
        return None

    def _options(
        self, here: Place, now: float, limit: float, visited: set[str]
    ) -> list[dict[str, Any]]:
        """Feasible next visits, best first by the baseline: open, within the time limit."""
        cfg = self.config
        pool: dict[str, Place] = {}
        for t in self.types:
            for p in self.city.nearby(here.lat, here.lon, cfg.max_walk_m, t):
                if p.id not in visited and p.id:
                    pool.setdefault(p.id, p)
        speed = cfg.speed_mps * 60.0  # metres per minute
        ranked = []
        for p in pool.values():
            guess = 1.3 * p.distance_m(here.lat, here.lon) / speed  # detour factor of a grid
            stay = self._visit_min(p)
            if now + guess + stay > limit:
                continue
            allowed, _ = self._open(p, now + guess, now + guess + stay)
            if not allowed:
                continue
            interest = (
                1.0 - self.types.index(p.category) / len(self.types)
                if p.category in self.types
                else 0.3
            )
            score = p.prominence + 2.0 * interest - guess / 10.0
            ranked.append((score, p))
        ranked.sort(key=lambda t: (-t[0], t[1].id))
        options = []
        for score, p in ranked[: cfg.candidates]:
            try:
                walk, line = self._walk_min(here, p)
            except (NoRouteError, WorldError):
                continue
            arrive, stay = now + walk, self._visit_min(p)
            if arrive + stay > limit:
                continue
            allowed, known = self._open(p, arrive, arrive + stay)
            if not allowed:
                continue
            options.append(
                {
                    "type": "visit",
                    "place": p,
                    "walk_min": walk,
                    "arrive": arrive,
                    "leave": arrive + stay,
                    "line": line,
                    "hours_known": known,
                    "score": round(score, 2),
                }
            )
        options.sort(key=lambda o: (-o["score"], o["walk_min"]))
        return options

    def _choose(
        self, options: list[dict[str, Any]], now: float, done: list[str]
    ) -> tuple[int | None, str]:
        """(index of the chosen option or None to end the day, "llm" or "baseline")."""
        if not options:
            return None, "baseline"
        if self.policy is None:
            return 0, "baseline"
        cfg = self.config
        lines = []
        for k, o in enumerate(options, 1):
            p = o["place"]
            hours = self._hours(p)
            lines.append(
                f"{k}. {p.name} ({(p.category or 'place').replace('_', ' ')}), "
                f"{o['walk_min']:.0f} min walk, visit {clock(o['arrive'])}-{clock(o['leave'])}"
                + (f", open {hours['raw']}" if hours else ", hours unknown")
            )
        prompt = CHOICE_PROMPT.format(
            city=self.city.name,
            persona=cfg.persona,
            day=cfg.day,
            time=clock(now),
            end=cfg.end_time,
            done="; ".join(done) or "nothing yet",
            options="\n".join(lines),
        )

        def check(parsed: Any) -> int:
            value = parsed.get("choice") if isinstance(parsed, dict) else parsed
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value.strip())
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError("`choice` must be an option number")
            if not 0 <= value <= len(options):
                raise ValueError(f"`choice` {value} is not an option (0..{len(options)})")
            return value

        (answer,) = ask_json(
            self.policy,
            [prompt],
            step="choice",
            experts=[{"choice": 1, "reason": "the best-known nearby option"}],
            check=check,
            log=self.log,
            task=f"agent:{NAME}",
        )
        if answer is None:
            return 0, "baseline"
        return (None if answer == 0 else answer - 1), "llm"

    def plan(self) -> dict[str, Any]:
        """The day plan as a dict (see `run`)."""
        cfg = self.config
        here = resolve_place(self.city, cfg.start, what="start")
        now, end = float(to_minutes(cfg.start_time)), float(to_minutes(cfg.end_time))
        plan: list[dict[str, Any]] = []
        visited: set[str] = set()
        meals_done: set[str] = set()
        done_text: list[str] = []
        while now < end:
            meal = self._pending_meal(meals_done, now)
            if meal is not None and now >= meal[1]:
                name, _, latest = meal
                meals_done.add(name)
                item = self._meal(name, here, now, latest, end, visited)
                if item is None:
                    plan.append(
                        {
                            "type": "note",
                            "arrive": now,
                            "leave": now,
                            "reason": f"no restaurant open for {name} within reach",
                        }
                    )
                    continue
            else:
                # Leave time for a pending meal: the activity must end by its latest start.
                limit = min(end, meal[2]) if meal is not None else end
                options = self._options(here, now, limit, visited)
                choice, source = self._choose(options, now, done_text)
                if choice is None:
                    if meal is not None and meal[1] < end:
                        # Nothing fits before the meal: free time until its window opens.
                        start = max(now, meal[1])
                        if start > now:
                            plan.append(
                                {
                                    "type": "free",
                                    "arrive": now,
                                    "leave": start,
                                    "reason": f"free time until {meal[0]}",
                                }
                            )
                        now = start
                        if now < end:
                            continue
                    break
                item = options[choice]
                item["source"] = source
                item["reason"] = (
                    f"{(item['place'].category or 'place').replace('_', ' ')} "
                    f"{item['walk_min']:.0f} min away, open during the visit"
                    if item["hours_known"]
                    else f"{(item['place'].category or 'place').replace('_', ' ')} "
                    f"{item['walk_min']:.0f} min away (opening hours unknown)"
                )
            plan.append(item)
            visited.add(item["place"].id)
            done_text.append(f"{clock(item['arrive'])} {item['place'].name}")
            here, now = item["place"], item["leave"]
        plan.append({"type": "end", "arrive": now, "leave": now, "reason": "end of the day"})
        return {"start": here, "plan": plan, "end": end}

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Plan the day; write the run folder and map when `out_dir` is given.

        Returns
        -------
        AgentResult
            ``data``: ``plan`` (in order; each ``type`` visit, eat, free, note or end, with
            ``start``/``end`` "HH:MM", ``walk_min``, ``place``, ``hours`` (the raw
            `opening_hours` or None), ``hours_known``, ``reason`` and ``source``),
            ``visits``, ``meals``, ``walk_min`` (total) and the LLM log.

        Raises
        ------
        PlaceNotFoundError
            `start` is not in the city (closest names listed).
        """
        cfg = self.config
        origin = resolve_place(self.city, cfg.start, what="start")
        built = self.plan()
        items, lines = [], []
        for a in built["plan"]:
            entry: dict[str, Any] = {
                "type": a["type"],
                "start": clock(a["arrive"]),
                "end": clock(a["leave"]),
                "reason": a.get("reason", ""),
            }
            if "place" in a:
                p = a["place"]
                hours = self._hours(p)
                entry.update(
                    place={
                        "name": p.name,
                        "id": p.id,
                        "lat": p.lat,
                        "lon": p.lon,
                        "category": p.category,
                    },
                    walk_min=round(a["walk_min"], 1),
                    hours=hours["raw"] if hours else None,
                    hours_known=a["hours_known"],
                    source=a.get("source", "baseline"),
                )
                if a["type"] == "eat":
                    entry["meal"] = a["meal"]
                lines.append(a["line"])
            items.append(entry)
        walk = sum(i.get("walk_min", 0.0) for i in items)
        data = {
            "city": self.city.name,
            "start": origin.to_dict(),
            "day": cfg.day,
            "start_time": cfg.start_time,
            "end_time": cfg.end_time,
            "persona": cfg.persona,
            "interests": self.types,
            "plan": items,
            "visits": sum(i["type"] == "visit" for i in items),
            "meals": [i["meal"] for i in items if i["type"] == "eat"],
            "walk_min": round(walk, 1),
            "llm": self.log.to_list(),
        }
        metrics = {
            "visits": data["visits"],
            "meals": len(data["meals"]),
            "walk_min": data["walk_min"],
            "used_min": to_minutes(items[-1]["end"]) - to_minutes(cfg.start_time),
            **self.log.summary(),
        }
        result = AgentResult(NAME, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            stops = [i for i in items if "place" in i]
            points = [
                (
                    i["place"]["lat"],
                    i["place"]["lon"],
                    "#ef6c00" if i["type"] == "eat" else "#1f3f7a",
                    f"{i['start']} {i['place']['name']}",
                )
                for i in stops
            ]
            colours = ("#1f6fd1", "#2e9b4e", "#8e24aa", "#00838f", "#d64541")
            result.map_png = draw_map(
                self.city,
                out / "map.png",
                points=points,
                numbered=True,
                lines=[(line, colours[k % len(colours)], "") for k, line in enumerate(lines)],
                start=(origin.lat, origin.lon, origin.name),
                title=f"Diego: {cfg.day} {cfg.start_time}-{cfg.end_time}",
            )
            result.out_dir = out
            summary = [
                f"Plan for {cfg.persona}, {cfg.day} {cfg.start_time}-{cfg.end_time}; "
                f"policy `{policy_name(self.policy)}`.",
                "",
                "| time | activity | walk | hours | why |",
                "|---|---|---|---|---|",
            ]
            for i in items:
                what = i["place"]["name"] if "place" in i else i["type"]
                summary.append(
                    f"| {i['start']}-{i['end']} | {i['type']}: {what} | "
                    f"{i.get('walk_min', 0):.0f} min | {i.get('hours') or ''} | "
                    f"{i['reason']} |"
                )
            write_agent_run(
                out,
                agent=NAME,
                title="Concierge (Diego)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png],
            )
        return result


__all__ = ["VISIT_MINUTES", "Concierge", "ConciergeConfig", "clock", "open_during", "to_minutes"]
