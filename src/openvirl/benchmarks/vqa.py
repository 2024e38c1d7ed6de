"""Place VQA: which human intentions can be accomplished at a place? Four options, circular.

V-IRL's Place VQA (§3.4) asks, for each place photo, "which human intentions can be
accomplished here?" with four options GPT-4 wrote from the place's name and Google types,
exactly one of them true, and scores it circularly: the options are rotated four times and an
item counts only if all four answers are right (chance 1/256 instead of 1/4).

Here the questions are generated without an LLM: every option is an intention of a place type
(`INTENTIONS`); the right one belongs to one of the place's own types, the three wrong ones to
types of other groups (`TYPE_GROUPS`: a cafe's distractor is never "have a meal"), so exactly
one option is true. The model sees the place's rendered storefront view (``visual=True``) or
the text of its sign. Metrics: circular accuracy (the headline), single-pass accuracy and
mAcc, the mean of the circular accuracy per place type.
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

NAME = "vqa"
VERSION = 2
"""2: each item stores a verified storefront pose (`view`); signs drawn without category cues."""
LETTERS = ("A", "B", "C", "D")
QUESTION = "Which human intentions can be accomplished here?"

INTENTIONS: dict[str, tuple[str, ...]] = {
    "restaurant": (
        "Sit down with friends for a cooked dinner served at the table",
        "Have a proper lunch with a starter and a main course",
    ),
    "cafe": (
        "Grab a cappuccino and a croissant before work",
        "Sit with a laptop and a coffee for an hour",
    ),
    "bar": (
        "Meet colleagues for a few beers after work",
        "Order a cocktail and watch the game with friends",
    ),
    "bakery": (
        "Buy a fresh loaf of bread for the weekend",
        "Pick up a birthday cake ordered last week",
    ),
    "supermarket": (
        "Do the weekly grocery shopping for the family",
        "Buy vegetables, milk and pasta for dinner tonight",
    ),
    "convenience_store": (
        "Quickly buy a bottle of water and some snacks late at night",
        "Pick up a newspaper and a pack of gum on the way",
    ),
    "pharmacy": (
        "Fill a doctor's prescription for antibiotics",
        "Buy cough syrup and ask a pharmacist for advice",
    ),
    "hospital": (
        "Get emergency treatment for a broken arm",
        "Visit a relative who was admitted for surgery",
    ),
    "doctor": (
        "See a physician about a persistent cough",
        "Get a routine health check-up and a blood test",
    ),
    "dentist": ("Have a painful tooth examined and filled", "Get teeth cleaned and checked"),
    "bank": (
        "Open a savings account and talk to an advisor",
        "Deposit a cheque and ask about a mortgage",
    ),
    "atm": ("Withdraw some cash with a debit card",),
    "school": (
        "Enroll a child for the coming school year",
        "Attend a parent-teacher meeting about grades",
    ),
    "university": ("Attend a lecture and meet a professor during office hours",),
    "library": (
        "Borrow novels and study quietly among the shelves",
        "Return borrowed books and use the free reading room",
    ),
    "park": (
        "Take a stroll on the lawns and sit on a bench under the trees",
        "Have a picnic on the grass and let the kids run around",
    ),
    "lodging": (
        "Check in for three nights and drop off luggage in a room",
        "Book a room to sleep for the night",
    ),
    "laundry": (
        "Wash and dry a week's worth of clothes",
        "Have a suit dry-cleaned before an interview",
    ),
    "movie_theater": ("Watch the latest blockbuster on a big screen with popcorn",),
    "performing_arts_theater": ("Watch a live play or a musical on stage",),
    "book_store": (
        "Buy a new novel and browse the bestsellers",
        "Find a travel guide and a gift book",
    ),
    "clothing_store": ("Try on and buy a new jacket and jeans", "Shop for a dress for a wedding"),
    "shoe_store": ("Buy a pair of running shoes in the right size",),
    "jewelry_store": (
        "Choose an engagement ring or a gold necklace",
        "Have a watch battery replaced and a bracelet resized",
    ),
    "gym": (
        "Lift weights and run on a treadmill for an hour",
        "Join a spinning class and work out",
    ),
    "spa": ("Relax with a massage and a sauna session",),
    "beauty_salon": ("Get a manicure and a facial treatment",),
    "hair_care": ("Get a haircut and a beard trim",),
    "museum": (
        "See historical exhibits and learn about the city's past",
        "Visit an exhibition of ancient artefacts",
    ),
    "art_gallery": ("Look at contemporary paintings and perhaps buy an artwork",),
    "church": ("Attend a Sunday service and pray quietly",),
    "place_of_worship": ("Pray and attend a religious service",),
    "post_office": ("Send a parcel abroad and buy stamps",),
    "electronics_store": ("Buy a new phone charger and compare laptops",),
    "florist": ("Buy a bouquet of roses for an anniversary",),
    "hardware_store": ("Buy screws, paint and a drill for home repairs",),
    "furniture_store": ("Pick a new sofa and a dining table for the flat",),
    "pet_store": ("Buy dog food and a toy for the cat",),
    "liquor_store": ("Buy a bottle of wine to bring to a dinner party",),
    "department_store": ("Shop for clothes, cosmetics and kitchenware under one roof",),
    "subway_station": ("Catch an underground train across town",),
    "bus_station": ("Wait for a city bus to the next neighbourhood",),
    "train_station": ("Board a regional train to another city",),
    "parking": ("Leave the car for a few hours",),
    "gas_station": ("Refuel the car and check the tyre pressure",),
    "police": ("Report a stolen wallet to an officer",),
    "fire_station": ("See the fire engines of the local firefighters",),
    "veterinary_care": ("Get a sick dog examined and vaccinated",),
    "car_rental": ("Rent a car for a road trip",),
    "bicycle_store": ("Buy a bicycle and have a flat tyre repaired",),
    "night_club": ("Dance to a DJ set until the early morning",),
    "tourist_attraction": ("Take photos of a famous sight with other visitors",),
}
"""Place type → intentions that can be accomplished at such a place (each one sentence)."""

TYPE_GROUPS: tuple[frozenset[str], ...] = (
    frozenset(
        {
            "restaurant",
            "cafe",
            "bar",
            "bakery",
            "night_club",
            "meal_takeaway",
            "food",
            "liquor_store",
            "convenience_store",
            "supermarket",
            "lodging",
        }
    ),
    frozenset(
        {
            "supermarket",
            "convenience_store",
            "grocery_or_supermarket",
            "liquor_store",
            "department_store",
            "store",
            "pharmacy",
            "drugstore",
            "bakery",
        }
    ),
    frozenset(
        {
            "pharmacy",
            "drugstore",
            "doctor",
            "hospital",
            "dentist",
            "health",
            "veterinary_care",
            "beauty_salon",
            "spa",
        }
    ),
    frozenset({"bank", "atm", "finance", "post_office"}),
    frozenset({"school", "university", "library", "book_store"}),
    frozenset(
        {
            "clothing_store",
            "shoe_store",
            "jewelry_store",
            "department_store",
            "shopping_mall",
            "store",
            "electronics_store",
            "florist",
            "hardware_store",
            "furniture_store",
            "pet_store",
            "bicycle_store",
            "book_store",
        }
    ),
    frozenset({"gym", "spa", "beauty_salon", "hair_care", "lodging"}),
    frozenset(
        {
            "museum",
            "art_gallery",
            "tourist_attraction",
            "performing_arts_theater",
            "movie_theater",
            "church",
            "place_of_worship",
            "park",
            "library",
            "university",
            "night_club",
            "casino",
            "zoo",
            "aquarium",
        }
    ),
    frozenset(
        {
            "subway_station",
            "bus_station",
            "train_station",
            "transit_station",
            "light_rail_station",
            "parking",
            "gas_station",
            "car_rental",
            "taxi_stand",
        }
    ),
    frozenset({"police", "fire_station", "local_government_office", "city_hall", "courthouse"}),
)
"""Types whose intentions may overlap: a distractor never comes from a group of the place."""


def related_types(types: set[str]) -> set[str]:
    """The types sharing a `TYPE_GROUPS` group with any of `types` (and the types)."""
    out = set(types)
    for group in TYPE_GROUPS:
        if group & types:
            out |= group
    return out


@dataclass
class VQAConfig:
    """Options of the Place VQA benchmark.

    Attributes
    ----------
    city
        The city whose places are asked about.
    n
        Questions (places), balanced over place types.
    seed
        Seed of the place sample, the options and the random baseline.
    policy
        The model policy's spec (the oracle and random baselines always run too).
    visual
        Show the rendered storefront view (else the sign's text only).
    image_size
        Side of the storefront view, pixels.
    circular
        Rotate the options 4 times and count an item only if all 4 answers are right.
    batch
        Requests per policy call.
    """

    city: str = "manhattan"
    n: int = 100
    seed: int = 0
    policy: str = "oracle"
    visual: bool = False
    image_size: int = 384
    circular: bool = True
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


def _balanced(pools: dict[str, list[Any]], n: int, rng: np.random.Generator) -> list[tuple]:
    """Up to `n` (type, place) pairs, round-robin over types in a seeded order."""
    order = sorted(pools)
    rng.shuffle(order)
    queues = {t: list(rng.permutation(len(pools[t]))) for t in order}
    out, used = [], set()
    while len(out) < n and any(queues.values()):
        for t in order:
            while queues[t]:
                p = pools[t][int(queues[t].pop())]
                if p.id not in used:
                    used.add(p.id)
                    out.append((t, p))
                    break
            if len(out) >= n:
                break
    return out


def build_items(config: VQAConfig) -> list[dict[str, Any]]:
    """Generate the questions (deterministic from the config's city, n and seed)."""
    from openvirl.world import City

    city = City.load(config.city)
    rng = np.random.default_rng([config.seed, VERSION])
    pools: dict[str, list[Any]] = defaultdict(list)
    for p in city.pois:
        primary = next((t for t in p.categories if t in INTENTIONS), None)
        if primary is not None and p.name.strip():
            pools[primary].append(p)
    # Draw more than needed, keep those whose storefront is in frame and identifiable.
    views: dict[str, dict[str, float] | None] = {}
    chosen = []
    for primary, place in _balanced(pools, 3 * config.n, rng):
        if len(chosen) >= config.n:
            break
        if place.id not in views:
            views[place.id] = usable_storefront(city, place)
        if views[place.id] is not None:
            chosen.append((primary, place))
    items = []
    for idx, (primary, place) in enumerate(chosen):
        r = np.random.default_rng([config.seed, VERSION, idx])
        types = [t for t in place.categories if t in INTENTIONS]
        true_options = INTENTIONS[primary]
        answer = true_options[int(r.integers(len(true_options)))]
        banned = related_types(set(place.categories))
        others = [t for t in INTENTIONS if t not in banned]
        picks = r.choice(len(others), size=3, replace=False)
        distractors = [
            INTENTIONS[others[int(k)]][int(r.integers(len(INTENTIONS[others[int(k)]])))]
            for k in picks
        ]
        options = [answer, *distractors]
        perm = r.permutation(4)
        options = [options[int(k)] for k in perm]
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
                "attributes": types,
                "question": QUESTION,
                "options": options,
                "answer": LETTERS[options.index(answer)],
                "distractor_types": [others[int(k)] for k in picks],
                "view": views[place.id],
            }
        )
    return items


_LETTER = re.compile(r"\b([ABCD])\b")


def parse_letter(reply: str, options: list[str]) -> str | None:
    """The option letter of a reply: "B", "B.", "(b) ...", {"answer": "B"}, or the text of
    exactly one option; None when unreadable."""
    text = reply.strip()
    if not text:
        return None
    try:
        data = json.loads(text)
        if isinstance(data, dict):
            text = str(data.get("answer") or data.get("choice") or "")
    except (json.JSONDecodeError, ValueError):
        pass
    head = text.strip().strip("()[]*").upper()
    if head[:1] in LETTERS and (len(head) == 1 or not head[1].isalpha()):
        return head[0]
    m = _LETTER.search(text.upper().replace("OPTION", " "))
    if m and len(set(_LETTER.findall(text.upper()))) == 1:
        return m.group(1)
    low = text.lower()
    hits = [k for k, o in enumerate(options) if o.lower().rstrip(".") in low]
    return LETTERS[hits[0]] if len(hits) == 1 else None


def _prompt(item: dict[str, Any], options: list[str], visual: bool) -> str:
    lines = [f"{L}. {o}" for L, o in zip(LETTERS, options, strict=True)]
    where = (
        "Look at the place whose sign is in the middle of this street view."
        if visual
        else f'You stand in front of a place whose sign reads: "{item["sign"]}".'
    )
    return (
        f"{where}\n{item['question']}\n"
        + "\n".join(lines)
        + "\nAnswer with the option's letter (A, B, C or D) directly."
    )


def rotations(item: dict[str, Any], circular: bool) -> list[tuple[list[str], str]]:
    """(options, right letter) for each rotation (one without `circular`)."""
    k0 = LETTERS.index(item["answer"])
    out = []
    for shift in range(4 if circular else 1):
        options = item["options"][shift:] + item["options"][:shift]
        out.append((options, LETTERS[(k0 - shift) % 4]))
    return out


def score(items: list[dict[str, Any]], replies: list[list[str]]) -> dict[str, Any]:
    """Circular and single-pass accuracy, mAcc over types and the unreadable share."""
    per_type: dict[str, list[float]] = defaultdict(list)
    circ = single = unreadable = total = 0
    records = []
    for item, answers in zip(items, replies, strict=True):
        rots = rotations(item, len(answers) == 4)
        letters = [parse_letter(a, o) for a, (o, _) in zip(answers, rots, strict=True)]
        rights = [got == want for got, (_, want) in zip(letters, rots, strict=True)]
        unreadable += sum(x is None for x in letters)
        total += len(letters)
        ok = all(rights)
        circ += ok
        single += rights[0]
        for t in item["attributes"]:
            per_type[t].append(float(ok))
        records.append(
            {
                "id": item["id"],
                "success": ok,
                "first_correct": rights[0],
                "answers": answers,
                "parsed": letters,
                "expected": [w for _, w in rots],
                "place": item["place"]["name"],
                "attributes": item["attributes"],
                "outcome": "correct" if ok else ("unreadable" if None in letters else "wrong"),
            }
        )
    n = len(items)
    type_acc = {t: sum(v) / len(v) for t, v in sorted(per_type.items())}
    metrics = {
        "accuracy": rate(circ, n),
        "single_accuracy": rate(single, n),
        "macc": sum(type_acc.values()) / len(type_acc) if type_acc else None,
        "per_type": type_acc,
        "unreadable_rate": unreadable / total if total else 0.0,
    }
    return {"metrics": metrics, "records": records}


def run(config: VQAConfig, *, out: str | Path | None = None) -> dict[str, Any]:
    """Generate (or load) the questions, ask every policy, and write the run folder.

    Examples
    --------
    >>> from openvirl.benchmarks.vqa import VQAConfig, run
    >>> metrics = run(VQAConfig(city="monaco", n=20, policy="random"))  # doctest: +SKIP
    >>> metrics["policies"]["oracle"]["accuracy"]["value"]              # doctest: +SKIP
    1.0

    Returns
    -------
    dict
        The ``metrics.json`` content: every policy's metrics under ``policies``.
    """
    config.validate()
    shipped = f"{NAME}-{config.city}" if config.n == VQAConfig.n else None
    items, manifest = load_or_build(
        NAME, config.data_params(), lambda: build_items(config), shipped=shipped
    )
    images: list[Any] = [None] * len(items)
    if config.visual:
        from openvirl.world import City

        city = City.load(config.city)
        images = storefront_views(city, items, size=config.image_size)
    results = {}
    for label, policy in policies_for(config.policy, seed=config.seed):
        reqs, shape = [], []
        for item, image in zip(items, images, strict=True):
            rots = rotations(item, config.circular)
            for options, want in rots:
                reqs.append(
                    request(
                        _prompt(item, options, config.visual and image is not None),
                        expert=want,
                        valid=LETTERS,
                        task=f"bench:{NAME}",
                        image=image,
                    )
                )
            shape.append(len(rots))
        flat = act_batched(policy, reqs, batch=config.batch)
        grouped, k = [], 0
        for m in shape:
            grouped.append(flat[k : k + m])
            k += m
        results[label] = score(items, grouped)
    folder = Path(out) if out is not None else default_out(NAME, config.policy, config.seed)
    plots = headline_and_breakdown_plots(
        folder,
        results,
        key="accuracy",
        caption="Circular accuracy by policy",
        title="Place VQA (circular)",
        ylabel="accuracy",
        breakdown_key="per_type",
        breakdown_caption="Per place type",
        breakdown_title="Circular accuracy per place type",
    )
    return write_bench_run(
        folder,
        name=NAME,
        title=f"Place VQA · {config.city}",
        spec=config.policy,
        config=asdict(config),
        manifest=manifest,
        items=items,
        results=results,
        headline=[
            ("accuracy", "Accuracy, circular (all 4 rotations right)"),
            ("single_accuracy", "Accuracy, single pass"),
            ("macc", "mAcc (mean over place types, circular)"),
            ("unreadable_rate", "Unreadable answers"),
        ],
        plots=plots,
        notes=[
            "Options come from place-type intention tables (no LLM); chance is 25% single "
            "and 1/256 circular."
        ],
    )


__all__ = ["INTENTIONS", "TYPE_GROUPS", "VQAConfig", "build_items", "parse_letter", "run", "score"]
