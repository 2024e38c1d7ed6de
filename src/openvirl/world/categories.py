"""OSM tags mapped to V-IRL/Google place types, and the words people use to ask for them.

A place's types come from its tags in table order, most specific first; the first one is its
primary `category`. Tags that map to nothing still make a named POI, typed
``point_of_interest``. The 20 types of V-IRL's localization and navigation benchmarks are all
covered (`VIRL_TYPES_20`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

POI_KEYS = ("amenity", "shop", "tourism", "leisure", "historic", "office", "craft")
"""Tag keys whose presence (with a name) makes an OSM object a POI."""

TRANSIT_TAGS = {
    ("railway", "station"),
    ("railway", "halt"),
    ("railway", "subway_entrance"),
    ("railway", "tram_stop"),
    ("public_transport", "station"),
    ("highway", "bus_stop"),
    ("amenity", "bus_station"),
}
"""Public-transport tags that make a named OSM object a POI."""

VIRL_TYPES_20 = (
    "bank",
    "restaurant",
    "supermarket",
    "bakery",
    "cafe",
    "pharmacy",
    "hospital",
    "spa",
    "convenience_store",
    "school",
    "library",
    "park",
    "lodging",
    "laundry",
    "movie_theater",
    "book_store",
    "clothing_store",
    "jewelry_store",
    "gym",
    "bar",
)
"""The 20 place types of V-IRL's localization and navigation benchmarks."""

GENERIC_TYPE = "point_of_interest"
"""Type of a named POI whose tags map to no specific type."""

# (key, value) -> Google types, most specific first; value "*" matches any value of the key.
_TAG_TYPES: dict[tuple[str, str], tuple[str, ...]] = {
    # Food and drink.
    ("amenity", "restaurant"): ("restaurant", "food"),
    ("amenity", "fast_food"): ("restaurant", "meal_takeaway", "food"),
    ("amenity", "food_court"): ("restaurant", "food"),
    ("amenity", "cafe"): ("cafe", "food"),
    ("amenity", "bar"): ("bar",),
    ("amenity", "pub"): ("bar",),
    ("amenity", "biergarten"): ("bar",),
    ("amenity", "nightclub"): ("night_club",),
    ("amenity", "ice_cream"): ("food",),
    ("shop", "bakery"): ("bakery", "food", "store"),
    ("shop", "pastry"): ("bakery", "food", "store"),
    ("shop", "coffee"): ("cafe", "store"),
    ("shop", "supermarket"): ("supermarket", "grocery_or_supermarket", "food", "store"),
    ("shop", "convenience"): ("convenience_store", "store"),
    ("shop", "alcohol"): ("liquor_store", "store"),
    ("shop", "wine"): ("liquor_store", "store"),
    # Shops.
    ("shop", "books"): ("book_store", "store"),
    ("shop", "clothes"): ("clothing_store", "store"),
    ("shop", "fashion"): ("clothing_store", "store"),
    ("shop", "boutique"): ("clothing_store", "store"),
    ("shop", "shoes"): ("shoe_store", "store"),
    ("shop", "jewelry"): ("jewelry_store", "store"),
    ("shop", "laundry"): ("laundry",),
    ("shop", "dry_cleaning"): ("laundry",),
    ("shop", "electronics"): ("electronics_store", "store"),
    ("shop", "mobile_phone"): ("electronics_store", "store"),
    ("shop", "computer"): ("electronics_store", "store"),
    ("shop", "hardware"): ("hardware_store", "store"),
    ("shop", "doityourself"): ("hardware_store", "store"),
    ("shop", "furniture"): ("furniture_store", "home_goods_store", "store"),
    ("shop", "florist"): ("florist", "store"),
    ("shop", "department_store"): ("department_store", "store"),
    ("shop", "mall"): ("shopping_mall",),
    ("shop", "pet"): ("pet_store", "store"),
    ("shop", "bicycle"): ("bicycle_store", "store"),
    ("shop", "hairdresser"): ("hair_care",),
    ("shop", "beauty"): ("beauty_salon",),
    ("shop", "chemist"): ("drugstore", "store"),
    ("shop", "travel_agency"): ("travel_agency",),
    ("shop", "car"): ("car_dealer",),
    ("shop", "car_repair"): ("car_repair",),
    ("shop", "*"): ("store",),
    # Services.
    ("amenity", "pharmacy"): ("pharmacy", "drugstore", "health"),
    ("amenity", "hospital"): ("hospital", "health"),
    ("amenity", "clinic"): ("doctor", "health"),
    ("amenity", "doctors"): ("doctor", "health"),
    ("amenity", "dentist"): ("dentist", "health"),
    ("amenity", "veterinary"): ("veterinary_care",),
    ("amenity", "bank"): ("bank", "finance"),
    ("amenity", "atm"): ("atm", "finance"),
    ("amenity", "bureau_de_change"): ("finance",),
    ("amenity", "school"): ("school",),
    ("amenity", "kindergarten"): ("school",),
    ("amenity", "college"): ("school",),
    ("amenity", "university"): ("university",),
    ("amenity", "library"): ("library",),
    ("amenity", "cinema"): ("movie_theater",),
    ("amenity", "theatre"): ("performing_arts_theater", "tourist_attraction"),
    ("amenity", "arts_centre"): ("art_gallery",),
    ("amenity", "casino"): ("casino",),
    ("amenity", "police"): ("police",),
    ("amenity", "fire_station"): ("fire_station",),
    ("amenity", "post_office"): ("post_office",),
    ("amenity", "townhall"): ("city_hall", "local_government_office"),
    ("amenity", "courthouse"): ("courthouse",),
    ("amenity", "embassy"): ("embassy",),
    ("amenity", "parking"): ("parking",),
    ("amenity", "fuel"): ("gas_station",),
    ("amenity", "car_rental"): ("car_rental",),
    ("amenity", "car_wash"): ("car_wash",),
    ("amenity", "taxi"): ("taxi_stand",),
    ("amenity", "bus_station"): ("bus_station", "transit_station"),
    ("amenity", "marketplace"): ("store",),
    ("amenity", "place_of_worship"): ("place_of_worship",),
    # Lodging, tourism and leisure.
    ("tourism", "hotel"): ("lodging",),
    ("tourism", "hostel"): ("lodging",),
    ("tourism", "guest_house"): ("lodging",),
    ("tourism", "motel"): ("lodging",),
    ("tourism", "apartment"): ("lodging",),
    ("tourism", "museum"): ("museum", "tourist_attraction"),
    ("tourism", "gallery"): ("art_gallery", "tourist_attraction"),
    ("tourism", "zoo"): ("zoo", "tourist_attraction"),
    ("tourism", "aquarium"): ("aquarium", "tourist_attraction"),
    ("tourism", "theme_park"): ("amusement_park", "tourist_attraction"),
    ("tourism", "camp_site"): ("campground",),
    ("tourism", "attraction"): ("tourist_attraction",),
    ("tourism", "viewpoint"): ("tourist_attraction",),
    ("tourism", "artwork"): ("tourist_attraction",),
    ("leisure", "park"): ("park",),
    ("leisure", "garden"): ("park",),
    ("leisure", "playground"): ("park",),
    ("leisure", "fitness_centre"): ("gym",),
    ("leisure", "sports_centre"): ("gym",),
    ("leisure", "spa"): ("spa",),
    ("leisure", "stadium"): ("stadium",),
    ("leisure", "bowling_alley"): ("bowling_alley",),
    ("historic", "*"): ("tourist_attraction",),
    # Offices and crafts.
    ("office", "lawyer"): ("lawyer",),
    ("office", "insurance"): ("insurance_agency",),
    ("office", "estate_agent"): ("real_estate_agency",),
    ("office", "accountant"): ("accounting",),
    ("office", "government"): ("local_government_office",),
    ("office", "travel_agent"): ("travel_agency",),
    ("craft", "electrician"): ("electrician",),
    ("craft", "plumber"): ("plumber",),
    ("craft", "painter"): ("painter",),
    ("craft", "locksmith"): ("locksmith",),
    # Public transport.
    ("railway", "subway_entrance"): ("subway_station", "transit_station"),
    ("railway", "tram_stop"): ("light_rail_station", "transit_station"),
    ("railway", "halt"): ("train_station", "transit_station"),
    ("highway", "bus_stop"): ("bus_station", "transit_station"),
    ("public_transport", "station"): ("transit_station",),
}

_RELIGION_TYPES = {
    "christian": "church",
    "muslim": "mosque",
    "jewish": "synagogue",
    "hindu": "hindu_temple",
}

# Words people use in queries -> Google types. Multi-word phrases are matched first.
QUERY_WORDS: dict[str, tuple[str, ...]] = {
    "restaurant": ("restaurant",),
    "food": ("restaurant",),
    "eat": ("restaurant",),
    "lunch": ("restaurant",),
    "dinner": ("restaurant",),
    "breakfast": ("restaurant", "cafe"),
    "fast food": ("meal_takeaway",),
    "takeaway": ("meal_takeaway",),
    "takeout": ("meal_takeaway",),
    "coffee": ("cafe",),
    "coffee shop": ("cafe",),
    "coffeeshop": ("cafe",),
    "cafe": ("cafe",),
    "café": ("cafe",),
    "espresso": ("cafe",),
    "tea": ("cafe",),
    "bar": ("bar",),
    "pub": ("bar",),
    "beer": ("bar",),
    "drink": ("bar",),
    "cocktail": ("bar",),
    "nightclub": ("night_club",),
    "club": ("night_club",),
    "bakery": ("bakery",),
    "bread": ("bakery",),
    "pastry": ("bakery",),
    "supermarket": ("supermarket",),
    "grocery": ("supermarket",),
    "groceries": ("supermarket",),
    "convenience": ("convenience_store",),
    "convenience store": ("convenience_store",),
    "bodega": ("convenience_store",),
    "book": ("book_store",),
    "bookstore": ("book_store",),
    "bookshop": ("book_store",),
    "book store": ("book_store",),
    "clothing": ("clothing_store",),
    "clothes": ("clothing_store",),
    "fashion": ("clothing_store",),
    "shoe": ("shoe_store",),
    "jewelry": ("jewelry_store",),
    "jewellery": ("jewelry_store",),
    "jeweler": ("jewelry_store",),
    "laundry": ("laundry",),
    "laundromat": ("laundry",),
    "dry cleaning": ("laundry",),
    "dry cleaner": ("laundry",),
    "pharmacy": ("pharmacy",),
    "drugstore": ("pharmacy", "drugstore"),
    "chemist": ("pharmacy", "drugstore"),
    "hospital": ("hospital",),
    "doctor": ("doctor",),
    "dentist": ("dentist",),
    "bank": ("bank",),
    "atm": ("atm",),
    "cash machine": ("atm",),
    "school": ("school",),
    "university": ("university",),
    "library": ("library",),
    "cinema": ("movie_theater",),
    "movie": ("movie_theater",),
    "movie theater": ("movie_theater",),
    "movie theatre": ("movie_theater",),
    "theater": ("performing_arts_theater", "movie_theater"),
    "theatre": ("performing_arts_theater", "movie_theater"),
    "park": ("park",),
    "gym": ("gym",),
    "fitness": ("gym",),
    "spa": ("spa",),
    "hotel": ("lodging",),
    "hostel": ("lodging",),
    "motel": ("lodging",),
    "lodging": ("lodging",),
    "accommodation": ("lodging",),
    "subway": ("subway_station",),
    "subway station": ("subway_station",),
    "metro": ("subway_station",),
    "bus": ("bus_station",),
    "bus stop": ("bus_station",),
    "bus station": ("bus_station",),
    "train station": ("train_station",),
    "railway station": ("train_station",),
    "station": ("transit_station",),
    "museum": ("museum",),
    "gallery": ("art_gallery",),
    "attraction": ("tourist_attraction",),
    "sight": ("tourist_attraction",),
    "landmark": ("tourist_attraction",),
    "church": ("church",),
    "mosque": ("mosque",),
    "synagogue": ("synagogue",),
    "temple": ("hindu_temple", "place_of_worship"),
    "police": ("police",),
    "post office": ("post_office",),
    "hairdresser": ("hair_care",),
    "barber": ("hair_care",),
    "salon": ("beauty_salon", "hair_care"),
    "shop": ("store",),
    "store": ("store",),
    "parking": ("parking",),
    "gas station": ("gas_station",),
    "mall": ("shopping_mall",),
}

_STOP_WORDS = frozenset(
    {
        "a",
        "an",
        "the",
        "some",
        "any",
        "good",
        "best",
        "nice",
        "nearby",
        "near",
        "closest",
        "nearest",
        "me",
        "i",
        "want",
        "to",
        "find",
        "for",
        "of",
        "place",
        "places",
        "spot",
        "spots",
        "where",
        "is",
        "get",
        "grab",
        "buy",
        "cheap",
        "open",
    }
)


_ALL_TYPES = frozenset(
    {t for ts in _TAG_TYPES.values() for t in ts}
    | set(_RELIGION_TYPES.values())
    | {"subway_station", "train_station", "transit_station", GENERIC_TYPE}
)


def all_types() -> list[str]:
    """Every place type this module can assign, sorted."""
    return sorted(_ALL_TYPES)


def is_poi(tags: Mapping[str, str]) -> bool:
    """Whether a named OSM object with these tags is a POI.

    A POI has a `name` and one of `POI_KEYS` or a `TRANSIT_TAGS` tag.

    Parameters
    ----------
    tags
        The object's OSM tags.

    Returns
    -------
    bool
        True for a POI.
    """
    if "name" not in tags and "name:en" not in tags:
        return False
    if any(k in tags for k in POI_KEYS):
        return True
    return any(tags.get(k) == v for k, v in TRANSIT_TAGS)


def types_for_tags(tags: Mapping[str, str]) -> tuple[str, ...]:
    """Map OSM tags to V-IRL/Google place types, most specific first.

    Parameters
    ----------
    tags
        The object's OSM tags.

    Returns
    -------
    tuple[str, ...]
        The place types without duplicates; ``("point_of_interest",)`` when nothing maps.
    """
    found: list[str] = []

    def add(types: tuple[str, ...]) -> None:
        for t in types:
            if t not in found:
                found.append(t)

    # Stations first: a subway station is tagged railway=station + station=subway.
    if tags.get("railway") == "station" or tags.get("public_transport") == "station":
        if tags.get("station") == "subway" or tags.get("subway") == "yes":
            add(("subway_station", "transit_station"))
        elif tags.get("railway") == "station" or tags.get("train") == "yes":
            add(("train_station", "transit_station"))
    if tags.get("amenity") == "place_of_worship" and tags.get("religion") in _RELIGION_TYPES:
        add((_RELIGION_TYPES[tags["religion"]],))
    if tags.get("shop") == "beauty" and tags.get("beauty") == "spa":
        add(("spa",))
    if tags.get("cuisine", "").startswith("coffee"):
        add(("cafe",))
    for key in (*POI_KEYS, "railway", "highway", "public_transport"):
        value = tags.get(key)
        if value is None:
            continue
        types = _TAG_TYPES.get((key, value)) or _TAG_TYPES.get((key, "*"))
        if types:
            add(types)
    return tuple(found) if found else (GENERIC_TYPE,)


def _singular(word: str) -> str:
    # Fold a plural only onto a word we know ("cafes" -> "cafe", but "bus" stays "bus").
    if word in QUERY_WORDS or word in _ALL_TYPES:
        return word
    for suffix, repl in (("ies", "y"), ("es", ""), ("s", "")):
        if word.endswith(suffix):
            candidate = word[: -len(suffix)] + repl
            if candidate in QUERY_WORDS or candidate in _ALL_TYPES:
                return candidate
    return word


def parse_category_query(text: str) -> tuple[tuple[str, ...], list[str]]:
    """Find the place types a free-text query asks for.

    Phrases of `QUERY_WORDS` are matched (two-word phrases first, plurals folded); exact type
    names also match, with spaces for underscores ("book store", "convenience_store").

    Parameters
    ----------
    text
        The query, e.g. "coffee", "italian restaurants", "a good gym".

    Returns
    -------
    tuple
        (types, leftover): the types asked for (possibly empty), and the words that are
        neither category words nor stop words (e.g. ["italian"]).
    """
    words = [_singular(w) for w in re.findall(r"[\w'’]+", text.lower().replace("_", " "))]
    known_types = _ALL_TYPES
    types: list[str] = []
    leftover: list[str] = []
    i = 0
    while i < len(words):
        pair = " ".join(words[i : i + 2]) if i + 1 < len(words) else None
        if pair and pair not in QUERY_WORDS and pair.endswith("s") and pair[:-1] in QUERY_WORDS:
            pair = pair[:-1]  # "bus stops" -> "bus stop"
        hit: tuple[str, ...] | None = None
        if pair and (pair in QUERY_WORDS or pair.replace(" ", "_") in known_types):
            hit = QUERY_WORDS.get(pair) or (pair.replace(" ", "_"),)
            i += 2
        else:
            word = words[i]
            if word in QUERY_WORDS:
                hit = QUERY_WORDS[word]
            elif word in known_types:
                hit = (word,)
            elif word not in _STOP_WORDS:
                leftover.append(word)
            i += 1
        if hit:
            types.extend(t for t in hit if t not in types)
    return tuple(types), leftover


def resolve_category(category: str) -> tuple[str, ...] | None:
    """Turn a category argument (a type name or a query word) into place types.

    Parameters
    ----------
    category
        A Google type ("cafe", "book_store") or a word of `QUERY_WORDS` ("coffee").

    Returns
    -------
    tuple[str, ...] or None
        The matching types, or None when the category is unknown.
    """
    key = category.strip().lower()
    if key.replace(" ", "_") in _ALL_TYPES:
        return (key.replace(" ", "_"),)
    types, leftover = parse_category_query(key)
    if types and not leftover:
        return types
    return None


def vocabulary() -> list[str]:
    """All category names and query words accepted by `resolve_category`, sorted."""
    return sorted(_ALL_TYPES | set(QUERY_WORDS))


__all__ = [
    "GENERIC_TYPE",
    "POI_KEYS",
    "QUERY_WORDS",
    "TRANSIT_TAGS",
    "VIRL_TYPES_20",
    "all_types",
    "is_poi",
    "parse_category_query",
    "resolve_category",
    "types_for_tags",
    "vocabulary",
]
