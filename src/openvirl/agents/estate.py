"""Vivek, the estate recommender: candidate homes scored by what is within walking distance.

V-IRL's Vivek (§2) filters rental listings to a price window, has an LLM turn the user's
requirements into place types (supermarket, bus and subway stations, gym), counts each type
within 200 m of every listing with Google's Text Search, and has GPT-4 rate each listing from
0 to 10 with a reason. Here the listings are the user's CSV of addresses or points (a small
midtown sample with synthetic rents ships in `openvirl/agents/data/midtown_homes.csv`), the
counts come from OSM POIs, the distance to the nearest of each type is walked on the street
graph, and the list is sorted best first (the reference sorted ascending and kept the worst).
"""

from __future__ import annotations

import csv
import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from openvirl.agents.base import (
    AgentResult,
    draw_map,
    load_city,
    policy_name,
    rated_by,
    write_agent_run,
)
from openvirl.agents.llm import LLMLog, ask_json, rating_check
from openvirl.world.categories import parse_category_query, resolve_category
from openvirl.world.errors import NoRouteError, OutsideMapError, PlaceNotFoundError, WorldError

if TYPE_CHECKING:
    from openvirl.policies.base import Policy
    from openvirl.world import City, Place

NAME = "estate"

SAMPLE_HOMES = Path(__file__).resolve().parent / "data" / "midtown_homes.csv"
"""Eleven midtown addresses and points with SYNTHETIC rents (see the file's header)."""

TYPES_PROMPT = """[Role]
You help someone choose a home in {city}.

[Task]
Which kinds of places must be within walking distance of the home? Choose from this list:
{types}

[Input]
Requirements: {requirements}

[Output]
Answer with JSON only: {{"types": ["<place type>", ...]}}"""

RATING_PROMPT = """[Role]
You are a real-estate agent helping this person: {requirements}

[Task]
Rate from 0 to 10 how well the home meets the requirements, and give the reason in one
sentence.

[Input]
{home}

[Output]
Answer with JSON only: {{"rating": <0-10>, "reason": "<one sentence>"}}"""


@dataclass
class EstateRecommenderConfig:
    """Options of Vivek, the estate recommender.

    Attributes
    ----------
    city
        The city (`City.load` name or path).
    homes
        CSV of candidate homes: columns ``id``, ``address`` or ``lat``/``lon``, ``rent_usd``,
        ``bedrooms`` (lines starting with "#" are comments), or V-IRL's estate JSON
        (RentCast listings, e.g. ``ny_peng_rent.json``); None: the bundled sample. Listings
        whose point lies off the map are skipped with a warning and counted.
    requirements
        What must be near the home, in words.
    radius_m
        "Walking distance": places within this straight-line radius are counted, metres.
    min_rent, max_rent
        Monthly rent window, dollars; homes outside it are dropped (V-IRL: 1000-3000).
    price_weight
        Share of the baseline rating given to a lower rent (0..1); the rest is the places.
    """

    city: str = "manhattan"
    homes: str | None = None
    requirements: str = "a supermarket, a subway station and a gym within walking distance"
    radius_m: float = 400.0
    min_rent: float = 1000.0
    max_rent: float = 3000.0
    price_weight: float = 0.15

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.radius_m <= 0:
            raise ValueError(f"`radius_m` must be positive, got {self.radius_m}.")
        if self.min_rent > self.max_rent:
            raise ValueError("`min_rent` must not exceed `max_rent`.")
        if not 0.0 <= self.price_weight <= 1.0:
            raise ValueError(f"`price_weight` must be in 0..1, got {self.price_weight}.")


@dataclass
class Home:
    """A candidate home from the CSV."""

    id: str
    place: Place
    rent_usd: float | None
    bedrooms: float | None
    address: str


def _number(text: str | None) -> float | None:
    if text is None or not str(text).strip():
        return None
    return float(str(text).replace(",", "").replace("$", ""))


def read_homes(city: City, path: str | Path | None = None) -> list[Home]:
    """Read a homes file (CSV or V-IRL's JSON, see `read_listings`); warn about skipped ones."""
    homes, skipped = read_listings(city, path)
    if skipped:
        warnings.warn(_skipped_text(city, skipped), stacklevel=2)
    return homes


def _skipped_text(city: City, skipped: list[str]) -> str:
    shown = ", ".join(skipped[:5]) + (", ..." if len(skipped) > 5 else "")
    return (
        f"{len(skipped)} listing(s) lie outside the map of `{city.name}` and were skipped "
        f"({shown}); fetch their area with `openvirl city fetch` to rate them."
    )


def _json_rows(source: Path, text: str) -> list[dict[str, str]]:
    """V-IRL's estate JSON (RentCast listings: ``formattedAddress``, ``price``, ``bedrooms``,
    ``latitude``, ``longitude``, ``id``) as rows of the CSV's columns."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise WorldError(f"{source}: not JSON ({err}).") from None
    if isinstance(data, dict):
        data = data.get("listings", data.get("results", data.get("data")))
    if not isinstance(data, list):
        raise WorldError(
            f"{source}: expected a JSON list of listings (V-IRL's RentCast format), "
            f"got {type(data).__name__}."
        )
    rows = []
    for k, item in enumerate(data, 1):
        if not isinstance(item, dict):
            raise WorldError(
                f"{source}, listing {k}: expected an object, got {type(item).__name__}."
            )
        address = item.get("formattedAddress") or item.get("addressLine1") or ""
        rows.append(
            {
                "id": str(item.get("id") or f"home{k}"),
                "address": str(address),
                "lat": "" if item.get("latitude") is None else str(item["latitude"]),
                "lon": "" if item.get("longitude") is None else str(item["longitude"]),
                "rent_usd": "" if item.get("price") is None else str(item["price"]),
                "bedrooms": "" if item.get("bedrooms") is None else str(item["bedrooms"]),
            }
        )
    return rows


def read_listings(city: City, path: str | Path | None = None) -> tuple[list[Home], list[str]]:
    """Read candidate homes, geocoding addresses; listings off the map are skipped, not fatal.

    Two formats: a CSV (see `EstateRecommenderConfig.homes`) or V-IRL's estate JSON
    (``data/estate/ny_peng_rent.json``: RentCast listings), chosen by the ``.json`` ending
    or a leading ``[``/``{``.

    Returns
    -------
    tuple[list[Home], list[str]]
        The homes on the map, and the ids of the listings skipped because their point lies
        outside the map (or, in V-IRL JSON, their address is not in the city).

    Raises
    ------
    PlaceNotFoundError
        A CSV address is not in the city (the message names the row and the closest names).
    WorldError
        A row has neither an address nor a point, an unreadable number, or no listing at
        all lies on the map.
    """
    from openvirl.world import Place

    source = Path(path) if path else SAMPLE_HOMES
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as err:
        raise WorldError(f"cannot read homes file {source}: {err.strerror or err}.") from None
    is_json = source.suffix.lower() == ".json" or text.lstrip()[:1] in ("[", "{")
    if is_json:
        rows: Any = _json_rows(source, text)
    else:
        rows = csv.DictReader(
            io.StringIO(
                "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
            )
        )
    homes: list[Home] = []
    skipped: list[str] = []
    for k, row in enumerate(rows, 1):
        row = {(key or "").strip().lower(): (v or "").strip() for key, v in row.items()}
        hid = row.get("id") or f"home{k}"
        address = row.get("address", "")
        try:
            lat, lon = _number(row.get("lat")), _number(row.get("lon"))
            rent, beds = _number(row.get("rent_usd")), _number(row.get("bedrooms"))
        except ValueError as err:
            raise WorldError(f"{source}, row {k} ({hid}): unreadable number ({err}).") from None
        if lat is not None and lon is not None:
            try:
                city.check_inside(lat, lon)
            except OutsideMapError:
                skipped.append(hid)
                continue
            name = address or f"({lat:.5f}, {lon:.5f})"
            place = Place(name=name, lat=lat, lon=lon, category="point", kind="point")
        elif address:
            try:
                place = city.geocode(address)
            except PlaceNotFoundError as err:
                if is_json:
                    skipped.append(hid)
                    continue
                raise PlaceNotFoundError(
                    f"{address} (row {k} of {source.name})", err.matches
                ) from None
        else:
            raise WorldError(f"{source}, row {k} ({hid}): give an `address` or `lat` and `lon`.")
        homes.append(Home(hid, place, rent, beds, address or place.name))
    if not homes:
        if skipped:
            b = city.bounds
            raise WorldError(
                f"none of the {len(skipped)} listings of {source.name} lies on the map of "
                f"`{city.name}` (lat {b.min_lat:.4f}..{b.max_lat:.4f}, lon {b.min_lon:.4f}.."
                f"{b.max_lon:.4f}); fetch their area with `openvirl city fetch` and pass --city."
            )
        raise WorldError(f"{source} lists no home.")
    return homes, skipped


class EstateRecommender:
    """Vivek: homes rated by the places within walking distance, best first.

    Examples
    --------
    >>> from openvirl.agents import EstateRecommender, EstateRecommenderConfig
    >>> result = EstateRecommender(EstateRecommenderConfig()).run()   # doctest: +SKIP
    >>> result.data["ranked"][0]["reason"]                            # doctest: +SKIP
    '2 supermarkets (nearest 150 m walk), 4 subway stations (nearest 90 m walk), ...'

    Parameters
    ----------
    config
        The options (`EstateRecommenderConfig`).
    policy
        Reads the requirements into place types and rates each home; None: the baseline.
    city
        An already loaded city.
    """

    def __init__(
        self,
        config: EstateRecommenderConfig | None = None,
        policy: Policy | None = None,
        *,
        city: City | None = None,
    ) -> None:
        self.config = config or EstateRecommenderConfig()
        self.config.validate()
        self.policy = policy
        self.city = city if city is not None else load_city(self.config.city)
        self.log = LLMLog()

    def wanted_types(self) -> list[str]:
        """The place types the requirements name (policy first, then the query words)."""
        types, _ = parse_category_query(self.config.requirements)
        baseline = list(dict.fromkeys(types))
        if self.policy is not None:
            present = sorted({c for p in self.city.pois for c in p.categories})
            prompt = TYPES_PROMPT.format(
                city=self.city.name, types=", ".join(present), requirements=self.config.requirements
            )

            def check(parsed: Any) -> list[str]:
                items = parsed.get("types") if isinstance(parsed, dict) else parsed
                if not isinstance(items, list) or not items:
                    raise ValueError("expected a non-empty list `types`")
                out = []
                for item in items:
                    resolved = resolve_category(str(item))
                    if not resolved:
                        raise ValueError(f"unknown place type {item!r}")
                    out.append(resolved[0])
                return list(dict.fromkeys(out))

            (answer,) = ask_json(
                self.policy,
                [prompt],
                step="types",
                experts=[{"types": baseline}],
                check=check,
                log=self.log,
                task=f"agent:{NAME}",
            )
            if answer:
                return answer
        if not baseline:
            raise WorldError(
                f"no place type found in the requirements `{self.config.requirements}`; name "
                "some, e.g. 'supermarket', 'subway station', 'gym', 'park', 'pharmacy'."
            )
        return baseline

    def surroundings(self, home: Home, types: list[str]) -> dict[str, dict[str, Any]]:
        """Per type: how many are within the radius and the walk to the nearest (metres)."""
        out: dict[str, dict[str, Any]] = {}
        p = home.place
        for t in types:
            near = self.city.nearby(p.lat, p.lon, self.config.radius_m, t)
            walk = None
            if near:
                try:
                    walk = round(self.city.route(p, near[0]).length_m, 1)
                except (NoRouteError, WorldError):
                    walk = None
            out[t] = {
                "count": len(near),
                "nearest": near[0].name if near else None,
                "nearest_walk_m": walk,
                "nearest_straight_m": round(near[0].distance_m(p.lat, p.lon), 1) if near else None,
            }
        return out

    def baseline_rating(self, home: Home, around: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Places (present, how many, how near) and rent as a 0-10 rating, with counts."""
        cfg = self.config
        parts, scores = [], []
        for t, info in around.items():
            label = t.replace("_", " ")
            n = info["count"]
            if n == 0:
                scores.append(0.0)
                parts.append(f"no {label} within {cfg.radius_m:.0f} m")
                continue
            walk = info["nearest_walk_m"] or info["nearest_straight_m"] or cfg.radius_m
            closeness = max(0.0, 1.0 - walk / (2 * cfg.radius_m))
            scores.append(0.6 + 0.2 * min(n, 3) / 3 + 0.2 * closeness)
            plural = (
                label if n == 1 else (label[:-1] + "ies" if label.endswith("y") else label + "s")
            )
            parts.append(f"{n} {plural} (nearest {walk:.0f} m walk)")
        places = sum(scores) / len(scores) if scores else 0.0
        span = max(1.0, cfg.max_rent - cfg.min_rent)
        cheap = (
            0.5
            if home.rent_usd is None
            else min(1.0, max(0.0, 1.0 - (home.rent_usd - cfg.min_rent) / span))
        )
        rating = 10.0 * ((1 - cfg.price_weight) * places + cfg.price_weight * cheap)
        reason = ", ".join(parts)
        if home.rent_usd is not None:
            reason += f"; ${home.rent_usd:,.0f}/month"
        return {"rating": round(rating, 1), "reason": reason}

    def _home_text(self, home: Home, around: dict[str, dict[str, Any]]) -> str:
        lines = [f"Home {home.id} at {home.address}"]
        if home.rent_usd is not None:
            lines.append(f"Rent: ${home.rent_usd:,.0f} per month")
        if home.bedrooms is not None:
            lines.append(f"Bedrooms: {home.bedrooms:g}")
        for t, info in around.items():
            if info["count"]:
                walk = info["nearest_walk_m"] or info["nearest_straight_m"]
                lines.append(
                    f"{t.replace('_', ' ')}: {info['count']} within "
                    f"{self.config.radius_m:.0f} m; nearest {info['nearest']}, "
                    f"{walk:.0f} m walk"
                )
            else:
                lines.append(f"{t.replace('_', ' ')}: none within {self.config.radius_m:.0f} m")
        return "\n".join(lines)

    def run(self, *, out_dir: str | Path | None = None) -> AgentResult:
        """Rate the homes; write the run folder and map when `out_dir` is given.

        Returns
        -------
        AgentResult
            ``data``: ``types`` (place types looked for), ``dropped`` (homes outside the
            rent window) and ``ranked`` (best first: id, address, position, rent, bedrooms,
            ``around`` per type, rating 0-10, reason, ``source``), plus the LLM log.

        Raises
        ------
        PlaceNotFoundError
            An address of the CSV is not in the city.
        """
        cfg = self.config
        homes, skipped = read_listings(self.city, cfg.homes)
        if skipped:
            warnings.warn(_skipped_text(self.city, skipped), stacklevel=2)
        kept = [
            h for h in homes if h.rent_usd is None or cfg.min_rent <= h.rent_usd <= cfg.max_rent
        ]
        dropped = [h.id for h in homes if h not in kept]
        types = self.wanted_types()
        arounds = [self.surroundings(h, types) for h in kept]
        bases = [self.baseline_rating(h, a) for h, a in zip(kept, arounds, strict=True)]
        rated: list[dict[str, Any] | None] = [None] * len(kept)
        if self.policy is not None and kept:
            prompts = [
                RATING_PROMPT.format(requirements=cfg.requirements, home=self._home_text(h, a))
                for h, a in zip(kept, arounds, strict=True)
            ]
            rated = ask_json(
                self.policy,
                prompts,
                step="rating",
                experts=bases,
                check=rating_check,
                log=self.log,
                task=f"agent:{NAME}",
            )
        ranked = []
        for home, around, base, llm in zip(kept, arounds, bases, rated, strict=True):
            chosen = llm if llm is not None else base
            ranked.append(
                {
                    "id": home.id,
                    "address": home.address,
                    "lat": home.place.lat,
                    "lon": home.place.lon,
                    "rent_usd": home.rent_usd,
                    "bedrooms": home.bedrooms,
                    "around": around,
                    "rating": round(float(chosen["rating"]), 1),
                    "reason": chosen["reason"],
                    "baseline_rating": base["rating"],
                    "baseline_reason": base["reason"],
                    "source": "llm" if llm is not None else "baseline",
                }
            )
        # Best first (V-IRL sorted ascending and kept the worst 15).
        ranked.sort(key=lambda r: (-r["rating"], -r["baseline_rating"], r["id"]))
        for k, r in enumerate(ranked, 1):
            r["rank"] = k
        data = {
            "city": self.city.name,
            "requirements": cfg.requirements,
            "types": types,
            "radius_m": cfg.radius_m,
            "homes": len(homes),
            "dropped": dropped,
            "skipped_outside": skipped,
            "ranked": ranked,
            "rents_synthetic": cfg.homes is None,
            "llm": self.log.to_list(),
        }
        metrics = {
            "homes": len(homes),
            "rated": len(ranked),
            "dropped": len(dropped),
            "skipped_outside": len(skipped),
            "top_rating": ranked[0]["rating"] if ranked else None,
            **self.log.summary(),
        }
        result = AgentResult(NAME, data, metrics=metrics)
        if out_dir is not None:
            out = Path(out_dir)
            points = [
                (r["lat"], r["lon"], "#1f6fd1", f"{r['id']} ({r['rating']:g})") for r in ranked
            ]
            result.map_png = draw_map(
                self.city,
                out / "map.png",
                points=points,
                numbered=True,
                title=f"Vivek: homes by {', '.join(types)} nearby",
            )
            result.out_dir = out
            summary = [
                f"Requirements: *{cfg.requirements}* → {', '.join(types)}; policy "
                f"`{policy_name(self.policy)}`."
                + (" Rents are synthetic (sample file)." if cfg.homes is None else "")
                + (f" {_skipped_text(self.city, skipped)}" if skipped else ""),
                "",
                "| # | home | rent | rating | reason | rated by |",
                "|---|---|---|---|---|---|",
            ]
            for r in ranked:
                rent = "" if r["rent_usd"] is None else f"${r['rent_usd']:,.0f}"
                summary.append(
                    f"| {r['rank']} | {r['id']} {r['address']} | {rent} | "
                    f"{r['rating']:g} | {r['reason']} | {rated_by(r, self.policy)} |"
                )
            write_agent_run(
                out,
                agent=NAME,
                title="Estate recommender (Vivek)",
                config=cfg,
                policy=self.policy,
                data=data,
                metrics=metrics,
                summary=summary,
                images=[result.map_png],
            )
        return result


__all__ = [
    "SAMPLE_HOMES",
    "EstateRecommender",
    "EstateRecommenderConfig",
    "Home",
    "read_homes",
    "read_listings",
]
