"""Place recognition: classify a place's type from its storefront over V-IRL's 96 place types.

V-IRL's Place Recognition (§3.3) shows a Google Place photo of a storefront and asks a
zero-shot classifier (CLIP and friends) for one of 96 Google place types; a place's ground
truth is the set of its Google types in that list, top-1/3/5 count a hit if a predicted label
is in that set, and the headline mAcc is the mean per-type top-1 accuracy where a place with
k types adds 1/k to each of its types.

Here the place is drawn by the street-view renderer (its storefront, from the nearest street
point, ``visual=True``) or given as the text of its sign (for text-only policies); the policy
answers with a ranked JSON list of types. The label set is `PLACE_TYPES_96`, Google's legacy
Places "Table 1" types; OSM tags map onto fewer of them (`openvirl.world.categories`), and the
metrics are reported over the types present among the city's places (the manifest lists them,
and the missing ones).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from openvirl.benchmarks.common import (
    act_batched,
    default_out,
    headline_and_breakdown_plots,
    load_or_build,
    policies_for,
    rate,
    request,
    sign_text,
    storefront_views,
    usable_storefront,
    write_bench_run,
)

NAME = "recognition"
VERSION = 2
"""2: each item stores a verified storefront pose (`view`); signs drawn without category cues."""

PLACE_TYPES_96 = (
    "accounting",
    "airport",
    "amusement_park",
    "aquarium",
    "art_gallery",
    "atm",
    "bakery",
    "bank",
    "bar",
    "beauty_salon",
    "bicycle_store",
    "book_store",
    "bowling_alley",
    "bus_station",
    "cafe",
    "campground",
    "car_dealer",
    "car_rental",
    "car_repair",
    "car_wash",
    "casino",
    "cemetery",
    "church",
    "city_hall",
    "clothing_store",
    "convenience_store",
    "courthouse",
    "dentist",
    "department_store",
    "doctor",
    "drugstore",
    "electrician",
    "electronics_store",
    "embassy",
    "fire_station",
    "florist",
    "funeral_home",
    "furniture_store",
    "gas_station",
    "gym",
    "hair_care",
    "hardware_store",
    "hindu_temple",
    "home_goods_store",
    "hospital",
    "insurance_agency",
    "jewelry_store",
    "laundry",
    "lawyer",
    "library",
    "light_rail_station",
    "liquor_store",
    "local_government_office",
    "locksmith",
    "lodging",
    "meal_delivery",
    "meal_takeaway",
    "mosque",
    "movie_rental",
    "movie_theater",
    "moving_company",
    "museum",
    "night_club",
    "painter",
    "park",
    "parking",
    "pet_store",
    "pharmacy",
    "physiotherapist",
    "plumber",
    "police",
    "post_office",
    "primary_school",
    "real_estate_agency",
    "restaurant",
    "roofing_contractor",
    "rv_park",
    "school",
    "secondary_school",
    "shoe_store",
    "shopping_mall",
    "spa",
    "stadium",
    "storage",
    "store",
    "subway_station",
    "supermarket",
    "synagogue",
    "taxi_stand",
    "tourist_attraction",
    "train_station",
    "transit_station",
    "travel_agency",
    "university",
    "veterinary_care",
    "zoo",
)
"""The 96 labels: Google Places' legacy "Table 1" types (V-IRL's ``place_types.txt``)."""

RANDOM_RANKINGS = 8
"""Random rankings offered to the random baseline per item (it picks one)."""

TOP_K = (1, 3, 5)


@dataclass
class RecognitionConfig:
    """Options of the Place Recognition benchmark.

    Attributes
    ----------
    city
        The city whose places are classified.
    n
        Places, balanced over their primary type.
    seed
        Seed of the sample and of the random baseline.
    policy
        The model policy's spec (the oracle and random baselines always run too).
    visual
        Show the rendered storefront view (else the sign's text only).
    image_size
        Side of the storefront view, pixels.
    batch
        Requests per policy call.
    """

    city: str = "manhattan"
    n: int = 100
    seed: int = 0
    policy: str = "oracle"
    visual: bool = False
    image_size: int = 384
    batch: int = 32

    def validate(self) -> None:
        """Raise `ValueError` naming a bad option."""
        if self.n < 1:
            raise ValueError(f"`n` must be at least 1, got {self.n}.")

    def data_params(self) -> dict[str, Any]:
        """What fixes the items."""
        return {
            "benchmark": NAME,
            "version": VERSION,
            "city": self.city,
            "n": self.n,
            "seed": self.seed,
        }


def labels_present(city: Any) -> list[str]:
    """The 96 labels that at least one named POI of the city carries."""
    present = {t for p in city.pois for t in p.categories}
    return [t for t in PLACE_TYPES_96 if t in present]


def build_items(config: RecognitionConfig) -> list[dict[str, Any]]:
    """Sample places balanced over their first 96-type (deterministic from the config)."""
    from openvirl.world import City

    city = City.load(config.city)
    labels = set(PLACE_TYPES_96)
    pools: dict[str, list[Any]] = defaultdict(list)
    for p in city.pois:
        truth = [t for t in p.categories if t in labels]
        if truth and p.name.strip():
            pools[truth[0]].append(p)
    rng = np.random.default_rng([config.seed, VERSION])
    order = sorted(pools)
    rng.shuffle(order)
    queues = {t: list(rng.permutation(len(pools[t]))) for t in order}
    chosen: list[Any] = []
    views: list[dict[str, float]] = []
    while len(chosen) < config.n and any(queues.values()):
        for t in order:
            if queues[t] and len(chosen) < config.n:
                place = pools[t][int(queues[t].pop())]
                view = usable_storefront(city, place)
                if view is not None:
                    chosen.append(place)
                    views.append(view)
    items = []
    for idx, (place, view) in enumerate(zip(chosen, views, strict=True)):
        items.append(
            {
                "id": f"{NAME}-{config.city}-{idx}",
                "place": {
                    "id": place.id,
                    "name": place.name,
                    "lat": place.lat,
                    "lon": place.lon,
                    "category": place.category,
                },
                "sign": sign_text(place),
                "truth": [t for t in place.categories if t in labels],
                "view": view,
            }
        )
    return items


_SPLIT = re.compile(r"[,;\n]|\d+[.)]\s")


def normalise_label(text: str) -> str | None:
    """A predicted label as one of the 96 ("Book store" → book_store, "cafes" → cafe, "it's a
    coffee shop" → cafe); None when no place-type word is in it."""
    key = re.sub(r"[^a-z_ ]", "", text.strip().lower()).strip().replace(" ", "_")
    if key in PLACE_TYPES_96:
        return key
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if key.endswith(suffix) and key[: -len(suffix)] + repl in PLACE_TYPES_96:
            return key[: -len(suffix)] + repl
    from openvirl.world.categories import parse_category_query

    # Free text ("it's a pharmacy"): the first place-type word in it.
    types, _ = parse_category_query(key.replace("_", " ")) if key else ((), [])
    return next((t for t in types if t in PLACE_TYPES_96), None)


def parse_ranking(reply: str) -> list[str]:
    """The distinct known labels of a reply, best first: a JSON list, ``{"types": [...]}``,
    or comma / line separated text."""
    from openvirl.agents.llm import parse_json_reply

    raw: list[Any]
    try:
        parsed = parse_json_reply(reply)
        if isinstance(parsed, dict):
            parsed = parsed.get("types") or parsed.get("labels") or parsed.get("type") or []
        raw = parsed if isinstance(parsed, list) else [parsed]
    except ValueError:
        raw = [p for p in _SPLIT.split(reply) if p.strip()]
    out: list[str] = []
    for entry in raw:
        label = normalise_label(str(entry))
        if label and label not in out:
            out.append(label)
    return out


def _prompt(item: dict[str, Any], visual: bool) -> str:
    labels = ", ".join(t.replace("_", " ") for t in PLACE_TYPES_96)
    where = (
        "Look at the storefront whose sign is in the middle of this street view."
        if visual
        else f'A storefront\'s sign reads: "{item["sign"]}".'
    )
    return (
        f"{where}\nWhat kind of place is it? Choose from these place types:\n{labels}\n"
        'Answer with JSON only: {"types": ["<most likely>", "<second>", ...]} '
        "(up to 5, best first)."
    )


def score(items: list[dict[str, Any]], replies: list[str], present: list[str]) -> dict[str, Any]:
    """Top-1/3/5 accuracy, mAcc (top-1 per type, 1/k weights) and per-type accuracy."""
    hits = dict.fromkeys(TOP_K, 0)
    weight: dict[str, float] = defaultdict(float)
    correct: dict[str, float] = defaultdict(float)
    unreadable = 0
    records = []
    for item, reply in zip(items, replies, strict=True):
        ranking = parse_ranking(reply)
        truth = set(item["truth"])
        unreadable += not ranking
        for k in TOP_K:
            hits[k] += bool(set(ranking[:k]) & truth)
        top1 = bool(ranking[:1] and ranking[0] in truth)
        for t in truth:
            weight[t] += 1.0 / len(truth)
            correct[t] += top1 / len(truth)
        records.append(
            {
                "id": item["id"],
                "success": top1,
                "answer": reply[:500],
                "ranking": ranking[:5],
                "truth": item["truth"],
                "place": item["place"]["name"],
                "outcome": "correct" if top1 else ("unreadable" if not ranking else "wrong"),
            }
        )
    n = len(items)
    per_type = {t: correct[t] / weight[t] for t in sorted(weight) if weight[t] > 0}
    metrics = {f"top{k}": rate(hits[k], n) for k in TOP_K}
    metrics.update(
        macc=sum(per_type.values()) / len(per_type) if per_type else None,
        per_type=per_type,
        types_present=len(present),
        types_in_items=len(per_type),
        unreadable_rate=unreadable / n if n else 0.0,
    )
    return {"metrics": metrics, "records": records}


def run(config: RecognitionConfig, *, out: str | Path | None = None) -> dict[str, Any]:
    """Generate (or load) the places, ask every policy, and write the run folder.

    Examples
    --------
    >>> from openvirl.benchmarks.recognition import RecognitionConfig, run
    >>> metrics = run(RecognitionConfig(city="monaco", n=30))     # doctest: +SKIP
    >>> metrics["policies"]["oracle"]["top1"]["value"]             # doctest: +SKIP
    1.0

    Returns
    -------
    dict
        The ``metrics.json`` content.
    """
    from openvirl.world import City

    config.validate()
    city = City.load(config.city)
    present = labels_present(city)
    shipped = f"{NAME}-{config.city}" if config.n == RecognitionConfig.n else None
    items, manifest = load_or_build(
        NAME, config.data_params(), lambda: build_items(config), shipped=shipped
    )
    manifest = {
        **manifest,
        "labels": len(PLACE_TYPES_96),
        "labels_present": present,
        "labels_missing": [t for t in PLACE_TYPES_96 if t not in present],
    }
    images: list[Any] = [None] * len(items)
    if config.visual:
        images = storefront_views(city, items, size=config.image_size)
    results = {}
    for label, policy in policies_for(config.policy, seed=config.seed):
        reqs = []
        for idx, (item, image) in enumerate(zip(items, images, strict=True)):
            rng = np.random.default_rng([config.seed, VERSION, idx, 1])
            rankings = [
                json.dumps(
                    {
                        "types": [
                            PLACE_TYPES_96[int(k)]
                            for k in rng.choice(len(PLACE_TYPES_96), 5, replace=False)
                        ]
                    }
                )
                for _ in range(RANDOM_RANKINGS)
            ]
            expert = json.dumps({"types": item["truth"]})
            reqs.append(
                request(
                    _prompt(item, config.visual and image is not None),
                    expert=expert,
                    valid=rankings,
                    task=f"bench:{NAME}",
                    image=image,
                )
            )
        replies = act_batched(policy, reqs, batch=config.batch)
        results[label] = score(items, replies, present)
    folder = Path(out) if out is not None else default_out(NAME, config.policy, config.seed)
    plots = headline_and_breakdown_plots(
        folder,
        results,
        key="top1",
        caption="Top-1 accuracy by policy",
        title="Place recognition (top-1)",
        ylabel="accuracy",
        breakdown_key="per_type",
        breakdown_caption="Per place type",
        breakdown_title="Top-1 accuracy per place type",
    )
    return write_bench_run(
        folder,
        name=NAME,
        title=f"Place recognition · {config.city}",
        spec=config.policy,
        config=asdict(config),
        manifest=manifest,
        items=items,
        results=results,
        headline=[
            ("macc", "mAcc (mean per-type top-1, 1/k weights)"),
            ("top1", "Top-1 accuracy"),
            ("top3", "Top-3 accuracy"),
            ("top5", "Top-5 accuracy"),
            ("unreadable_rate", "Unreadable answers"),
        ],
        plots=plots,
        notes=[
            f"Labels: the {len(PLACE_TYPES_96)} Google types; {len(present)} occur among "
            f"the places of `{config.city}` (OSM tags map onto fewer), so the metrics "
            "cover those present."
        ],
    )


__all__ = [
    "PLACE_TYPES_96",
    "RecognitionConfig",
    "build_items",
    "labels_present",
    "normalise_label",
    "parse_ranking",
    "run",
    "score",
]
