"""Aria, the place recommender: a persona and an intention become ranked nearby places.

V-IRL's Aria (§2) maps the intention to a place type with an LLM, searches nearby, writes an
introduction of each candidate from up to five Google reviews, and has GPT-4 rate each one
from 0 to 10 for the persona. OSM has no reviews, so the introduction is the deterministic
profile `City.details` writes from the tags (cuisine, diets, opening hours, ...). The
baseline ranks by how well the tags match the wishes read from the persona and intention
(cuisines of the persona's home region, "spicy", "vegan", ...), by distance and by the
prominence proxy; with a policy, the baseline first narrows the places within the radius to
`max_candidates` and the policy then rates those (a retrieve-then-rerank split that keeps the
number of prompts small).
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
    rated_by,
    resolve_place,
    write_agent_run,
)
from openvirl.agents.llm import LLMLog, ask_json, rating_check
from openvirl.world.categories import parse_category_query, resolve_category
from openvirl.world.errors import WorldError

if TYPE_CHECKING:
    from openvirl.policies.base import Policy
    from openvirl.world import City, Place

NAME = "place_recommender"

# Words that name a home region or a taste -> cuisine values of OSM's `cuisine=*`, most
# specific first (the first one counts most when ranking).
TASTE_WORDS: dict[str, tuple[str, ...]] = {
    "sichuan": ("sichuan", "szechuan", "chinese"),
    "szechuan": ("sichuan", "szechuan", "chinese"),
    "chengdu": ("sichuan", "szechuan", "chinese"),
    "chongqing": ("sichuan", "chongqing", "chinese"),
    "hunan": ("hunan", "chinese"),
    "cantonese": ("cantonese", "dim_sum", "chinese"),
    "guangdong": ("cantonese", "dim_sum", "chinese"),
    "shanghai": ("shanghai", "chinese"),
    "beijing": ("peking_duck", "chinese"),
    "china": ("chinese",),
    "chinese": ("chinese",),
    "japan": ("japanese", "sushi", "ramen"),
    "japanese": ("japanese", "sushi", "ramen"),
    "tokyo": ("japanese", "sushi", "ramen"),
    "korea": ("korean",),
    "korean": ("korean",),
    "seoul": ("korean",),
    "thailand": ("thai",),
    "thai": ("thai",),
    "vietnam": ("vietnamese",),
    "vietnamese": ("vietnamese",),
    "india": ("indian",),
    "indian": ("indian",),
    "mumbai": ("indian",),
    "delhi": ("indian",),
    "italy": ("italian", "pizza", "pasta"),
    "italian": ("italian", "pizza", "pasta"),
    "rome": ("italian", "pizza", "pasta"),
    "naples": ("pizza", "italian"),
    "pizza": ("pizza",),
    "sushi": ("sushi", "japanese"),
    "ramen": ("ramen", "japanese"),
    "france": ("french",),
    "french": ("french",),
    "paris": ("french",),
    "spain": ("spanish", "tapas"),
    "spanish": ("spanish", "tapas"),
    "mexico": ("mexican", "tacos"),
    "mexican": ("mexican", "tacos"),
    "greece": ("greek",),
    "greek": ("greek",),
    "turkey": ("turkish", "kebab"),
    "turkish": ("turkish", "kebab"),
    "lebanon": ("lebanese", "middle_eastern"),
    "ethiopia": ("ethiopian",),
    "finland": ("finnish", "nordic"),
    "finnish": ("finnish", "nordic"),
    "burger": ("burger",),
    "coffee": ("coffee_shop", "coffee"),
    "seafood": ("seafood", "fish"),
    "fish": ("seafood", "fish"),
    "steak": ("steak_house", "steak"),
    "noodle": ("noodle", "ramen"),
    "noodles": ("noodle", "ramen"),
    "dumpling": ("dumpling", "chinese"),
    "dumplings": ("dumpling", "chinese"),
    "spicy": ("sichuan", "szechuan", "hunan", "thai", "indian", "korean", "mexican"),
    "hot pot": ("hot_pot", "sichuan"),
    "hotpot": ("hot_pot", "sichuan"),
    "bbq": ("barbecue", "bbq"),
    "barbecue": ("barbecue", "bbq"),
    "vegan": ("vegan",),
    "vegetarian": ("vegetarian",),
    "halal": ("halal",),
    "kosher": ("kosher",),
}
"""A word of the persona or intention → `cuisine` values it asks for, most specific first."""

LOCAL_CUISINES: dict[str, tuple[str, ...]] = {
    "manhattan": ("american", "burger", "pizza", "deli", "bagel", "sandwich"),
    "monaco": ("french", "italian", "mediterranean", "regional", "monegasque", "pizza"),
    "helsinki": ("finnish", "nordic", "scandinavian", "regional"),
    "singapore": ("singaporean", "malaysian", "local", "chinese", "asian"),
    "tokyo-shibuya": ("japanese", "ramen", "sushi", "udon", "soba", "izakaya"),
}
"""What "local food" means in each bundled city (`cuisine` values)."""

DIET_WORDS = ("vegan", "vegetarian", "halal", "kosher", "gluten_free")
"""Wishes matched against `diet:*=yes|only` as well as `cuisine`."""

_NEGATION = re.compile(
    r"\b(?:not|no|non|without|avoid|avoiding|hate|hates|dislike|dislikes|can't|cannot|"
    r"can not|don't|do not)\b(?:\s+(?:eat|like|want|stand|have|too|very|so|any))*[\s-]+"
    r"([a-z]+(?:\s[a-z]+)?)",
    re.IGNORECASE,
)

CATEGORY_PROMPT = """[Role]
You help {persona} find a place in {city}.

[Task]
Which kind of place fits the intention best? Choose one place type from this list:
{types}

[Input]
Intention: {intention}

[Output]
Answer with JSON only: {{"category": "<place type>"}}"""

RATING_PROMPT = """[Role]
You are a local guide who knows {persona}.

[Task]
Rate from 0 to 10 how well this place suits the person and their intention, and give the main
reason in one sentence.

[Input]
Person: {persona}
Intention: {intention}
Place: {description}

[Output]
Answer with JSON only: {{"rating": <0-10>, "reason": "<one sentence>"}}"""


@dataclass
class Preferences:
    """What the persona and intention ask for, read from their words.

    Attributes
    ----------
    likes
        `cuisine` values wanted, most specific first.
    avoid
        `cuisine` values to avoid ("not spicy" avoids the spicy cuisines).
    diets
        Diet wishes ("vegan").
    words
        The taste words found, for the reasons.
    """

    likes: list[str] = field(default_factory=list)
    avoid: list[str] = field(default_factory=list)
    diets: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, list[str]]:
        """JSON-able dict."""
        return {"likes": self.likes, "avoid": self.avoid, "diets": self.diets, "words": self.words}


def read_preferences(text: str, *, city: str = "") -> Preferences:
    """The tastes a persona or intention states, with negations ("no spicy food") as avoids.

    >>> p = read_preferences("I am from Chengdu, Sichuan and want lunch, but not too oily")
    >>> p.likes[:2]
    ['sichuan', 'szechuan']
    >>> read_preferences("local food, not spicy", city="monaco").avoid[:2]
    ['sichuan', 'szechuan']
    """
    low = text.lower()
    prefs = Preferences()
    negated: set[int] = set()
    for m in _NEGATION.finditer(low):
        phrase = m.group(1)
        for word in (phrase, phrase.split()[0]):
            if word in TASTE_WORDS:
                for c in TASTE_WORDS[word]:
                    if c not in prefs.avoid:
                        prefs.avoid.append(c)
                negated.update(range(m.start(1), m.start(1) + len(word)))
                break
    for word, cuisines in TASTE_WORDS.items():
        for m in re.finditer(rf"\b{re.escape(word)}\b", low):
            if m.start() in negated:
                continue
            prefs.words.append(word)
            for c in cuisines:
                if c in DIET_WORDS and c not in prefs.diets:
                    prefs.diets.append(c)
                if c not in prefs.likes and c not in prefs.avoid:
                    prefs.likes.append(c)
            break
    if re.search(r"\blocal\b", low) and city in LOCAL_CUISINES:
        prefs.words.append("local")
        for c in LOCAL_CUISINES[city]:
            if c not in prefs.likes and c not in prefs.avoid:
                prefs.likes.append(c)
    return prefs


def place_tastes(place: Place) -> list[str]:
    """The place's `cuisine` values and the diets it serves (lower case, underscores)."""
    tags = place.tags
    values = [c.strip().lower().replace(" ", "_") for c in tags.get("cuisine", "").split(";")]
    values = [v for v in values if v]
    for key, value in tags.items():
        if key.startswith("diet:") and value in ("yes", "only"):
            values.append(key.split(":", 1)[1])
    return values


def taste_match(place: Place, prefs: Preferences) -> tuple[float, list[str], list[str]]:
    """How well a place's cuisine matches the wishes: (score in -1..1, matched, clashing).

    A wanted cuisine scores by its rank in `prefs.likes` (the first 1.0, later ones less, never
    below 0.5); the name counts too ("Sichuan Garden"). A cuisine to avoid scores -1.
    """
    tastes = place_tastes(place)
    name = place.name.lower()
    clashes = [c for c in prefs.avoid if c in tastes or re.search(rf"\b{c}\b", name)]
    if clashes:
        return -1.0, [], clashes
    best, matched = 0.0, []
    n = max(1, len(prefs.likes))
    for rank, c in enumerate(prefs.likes):
        if c in tastes or re.search(rf"\b{re.escape(c.replace('_', ' '))}\b", name):
            matched.append(c)
            best = max(best, 1.0 - 0.5 * rank / n)
    for d in prefs.diets:
        if d not in tastes:
            best -= 0.3
    return max(-1.0, best), matched, []


@dataclass
class PlaceRecommenderConfig:
    """Options of Aria, the place recommender.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    start
        Where the person is: a place name or "lat, lon".
    persona
        Who is asking (V-IRL's Peng comes from Chengdu, Sichuan).
    intention
        What they want ("find a restaurant for lunch").
    radius_m
        Search radius around `start`, metres (straight line).
    max_candidates
        Places described and rated (the baseline's best within the radius).
    top_k
        Places shown on the map and in the report.
    """

    city: str = "manhattan"
    start: str | tuple[float, float] = "Empire State Building"
    persona: str = "Peng, a graduate student from Chengdu, Sichuan, who loves spicy food"
    intention: str = "find a restaurant for lunch"
    radius_m: float = 800.0
    max_candidates: int = 15
    top_k: int = 5

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.radius_m <= 0:
            raise ValueError(f"`radius_m` must be positive, got {self.radius_m}.")
        if self.max_candidates < 1 or self.top_k < 1:
            raise ValueError("`max_candidates` and `top_k` must be at least 1.")
        if not self.intention.strip():
            raise ValueError("`intention` must say what the person wants.")


class PlaceRecommender:
    """Aria: ranked places for a persona's intention, with a reason for each.

    Examples
    --------
    >>> from openvirl.agents import PlaceRecommender, PlaceRecommenderConfig
    >>> config = PlaceRecommenderConfig(intention="lunch, I am from Sichuan")
    >>> best = PlaceRecommender(config).run().data["ranked"][0]   # doctest: +SKIP
    >>> best["cuisine"]                                          # doctest: +SKIP
    'chinese;sichuan'

    Parameters
    ----------
    config
        The options (`PlaceRecommenderConfig`).
    policy
        The policy that picks the category and rates the candidates; None: the baseline.
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: PlaceRecommenderConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
        log: LLMLog | None = None,
    ) -> None:
        self.config = config or PlaceRecommenderConfig()
        self.config.validate()
        self.policy = policy
        self.city = city if city is not None else load_city(self.config.city)
        self.log = log if log is not None else LLMLog()

    # ------------------------------------------------------------------ steps
    def category(self, prefs: Preferences) -> tuple[str, ...]:
        """The place types the intention asks for (policy first, then the query words)."""
        cfg = self.config
        types, _ = parse_category_query(cfg.intention)
        if not types and (prefs.likes or prefs.diets):
            types = ("restaurant",)
        baseline = types[0] if types else None
        if self.policy is not None:
            present = sorted({c for p in self.city.pois for c in p.categories})
            prompt = CATEGORY_PROMPT.format(
                persona=cfg.persona,
                city=self.city.name,
                types=", ".join(present),
                intention=cfg.intention,
            )

            def check(parsed: Any) -> tuple[str, ...]:
                value = parsed.get("category") if isinstance(parsed, dict) else None
                resolved = resolve_category(str(value)) if value else None
                if not resolved:
                    raise ValueError(f"unknown place type {value!r}")
                return resolved

            (answer,) = ask_json(
                self.policy,
                [prompt],
                step="category",
                experts=[{"category": baseline}],
                check=check,
                log=self.log,
                task=f"agent:{NAME}",
            )
            if answer:
                return answer
        if not types:
            raise WorldError(
                f"cannot tell which kind of place `{cfg.intention}` asks for; name one, e.g. "
                "'restaurant', 'cafe', 'museum', 'pharmacy'."
            )
        return types

    def candidates(self, origin: Place, types: tuple[str, ...]) -> list[Place]:
        """Every POI of `types` within the radius, nearest first."""
        seen: dict[str, Place] = {}
        for t in types:
            for p in self.city.nearby(origin.lat, origin.lon, self.config.radius_m, t):
                seen.setdefault(p.id, p)
        return sorted(seen.values(), key=lambda p: (p.distance_m(origin.lat, origin.lon), p.id))

    def baseline_rating(self, place: Place, origin: Place, prefs: Preferences) -> dict[str, Any]:
        """Tag match (60%), closeness (30%) and prominence (10%) as a 0-10 rating with a reason."""
        distance = place.distance_m(origin.lat, origin.lon)
        match, matched, clashes = taste_match(place, prefs)
        near = max(0.0, 1.0 - distance / self.config.radius_m)
        known = min(1.0, place.prominence / 5.0)
        score = 10.0 * (0.6 * max(0.0, match) + 0.3 * near + 0.1 * known)
        if clashes:
            score = max(0.0, score - 6.0)
        tastes = place_tastes(place)
        if matched:
            reason = f"serves {', '.join(matched)} food as wished"
        elif clashes:
            reason = f"serves {', '.join(clashes)} food, which was to be avoided"
        elif prefs.likes and tastes:
            reason = f"serves {', '.join(tastes)} food, not what was asked for"
        elif prefs.likes:
            reason = "its cuisine is not tagged"
        else:
            reason = f"a {(place.category or 'place').replace('_', ' ')}"
        reason += f"; {distance:.0f} m away"
        return {"rating": round(score, 1), "reason": reason}

    def describe(self, place: Place, origin: Place) -> str:
        """The introduction of a candidate: its tag profile plus its distance."""
        profile = self.city.details(place)["profile"]
        return f"{profile} It is about {place.distance_m(origin.lat, origin.lon):.0f} m away."

    def rank(self) -> dict[str, Any]:
        """The whole recommendation as a dict (see `run`)."""
        cfg = self.config
        origin = resolve_place(self.city, cfg.start, what="start")
        prefs = read_preferences(f"{cfg.persona}. {cfg.intention}", city=self.city.name)
        types = self.category(prefs)
        pool = self.candidates(origin, types)
        scored = [(p, self.baseline_rating(p, origin, prefs)) for p in pool]
        scored.sort(key=lambda t: (-t[1]["rating"], t[0].distance_m(origin.lat, origin.lon)))
        shortlist = scored[: cfg.max_candidates]
        descriptions = [self.describe(p, origin) for p, _ in shortlist]
        ratings: list[dict[str, Any] | None] = [None] * len(shortlist)
        if self.policy is not None and shortlist:
            prompts = [
                RATING_PROMPT.format(persona=cfg.persona, intention=cfg.intention, description=d)
                for d in descriptions
            ]
            ratings = ask_json(
                self.policy,
                prompts,
                step="rating",
                experts=[b for _, b in shortlist],
                check=rating_check,
                log=self.log,
                task=f"agent:{NAME}",
            )
        ranked = []
        for (place, base), description, rated in zip(shortlist, descriptions, ratings, strict=True):
            chosen = rated if rated is not None else base
            ranked.append(
                {
                    "name": place.name,
                    "id": place.id,
                    "lat": place.lat,
                    "lon": place.lon,
                    "category": place.category,
                    "cuisine": place.tags.get("cuisine", ""),
                    "distance_m": round(place.distance_m(origin.lat, origin.lon), 1),
                    "description": description,
                    "rating": round(float(chosen["rating"]), 1),
                    "reason": chosen["reason"],
                    "baseline_rating": base["rating"],
                    "source": "llm" if rated is not None else "baseline",
                }
            )
        ranked.sort(key=lambda r: (-r["rating"], -r["baseline_rating"], r["distance_m"]))
        for k, r in enumerate(ranked, 1):
            r["rank"] = k
        return {
            "city": self.city.name,
            "start": origin.to_dict(),
            "persona": cfg.persona,
            "intention": cfg.intention,
            "category": list(types),
            "preferences": prefs.to_dict(),
            "n_within_radius": len(pool),
            "ranked": ranked,
            "llm": self.log.to_list(),
        }

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Recommend places; write the run folder and map when `out_dir` is given.

        Returns
        -------
        AgentResult
            ``data``: ``category`` (place types), ``preferences``, ``n_within_radius`` and
            ``ranked`` (best first: name, id, position, cuisine, distance, description,
            rating 0-10, reason, ``source`` "llm" or "baseline"), plus the LLM log.

        Raises
        ------
        PlaceNotFoundError
            `start` is not in the city; the message lists the closest names.
        """
        data = self.rank()
        ranked = data["ranked"]
        metrics = {
            "candidates": len(ranked),
            "within_radius": data["n_within_radius"],
            "top_rating": ranked[0]["rating"] if ranked else None,
            **self.log.summary(),
        }
        result = AgentResult(NAME, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            top = ranked[: self.config.top_k]
            start = data["start"]
            points = [
                (r["lat"], r["lon"], "#d64541", f"{r['name']} ({r['rating']:g})") for r in top
            ]
            result.map_png = draw_map(
                self.city,
                out / "map.png",
                points=points,
                numbered=True,
                start=(start["lat"], start["lon"], start["name"]),
                title=f"Aria: {self.config.intention}",
            )
            result.out_dir = out
            summary = [
                f"**{self.config.persona}** — *{self.config.intention}*",
                "",
                f"Category: {', '.join(data['category'])}; {data['n_within_radius']} "
                f"places within {self.config.radius_m:.0f} m; policy "
                f"`{policy_name(self.policy)}`.",
                "",
                "| # | place | cuisine | distance | rating | reason | rated by |",
                "|---|---|---|---|---|---|---|",
            ]
            summary += [
                f"| {r['rank']} | {r['name']} | {r['cuisine']} | {r['distance_m']:.0f} m | "
                f"{r['rating']:g} | {r['reason']} | {rated_by(r, self.policy)} |"
                for r in top
            ]
            write_agent_run(
                out,
                agent=NAME,
                title="Place recommender (Aria)",
                config=self.config,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png],
            )
        return result


__all__ = [
    "LOCAL_CUISINES",
    "TASTE_WORDS",
    "PlaceRecommender",
    "PlaceRecommenderConfig",
    "Preferences",
    "place_tastes",
    "read_preferences",
    "taste_match",
]
