"""Places of a city: fuzzy search, nearby queries, geocoding, reverse geocoding and details.

`Place` is V-IRL's place (§1.2 of the platform spec) built from OSM tags; `to_virl_dict` gives
the exact V-IRL place dict. OSM has no ratings or reviews: `prominence` is a documented proxy
(wikidata, wikipedia, brand, tag count), and V-IRL's `rating` and `n_reviews` are always 0.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from openvirl.world.categories import (
    GENERIC_TYPE,
    all_types,
    parse_category_query,
    resolve_category,
    vocabulary,
)
from openvirl.world.errors import PlaceNotFoundError, UnknownCategoryError
from openvirl.world.geometry import bearing_deg, haversine_m

if TYPE_CHECKING:
    from openvirl.world.city import City

DEFAULT_NEAR_RADIUS_M = 500.0
"""Search radius of a "X near Y" query without `radius_m`, metres."""

NAME_SCORE_CUTOFF = 80.0
"""Lowest search confidence (0-100) for a name to count as a search hit: rapidfuzz WRatio
times the share of the query's words found in the name (see `name_confidence`)."""

GEOCODE_SCORE_CUTOFF = 86.0
"""Lowest confidence (0-100) for `geocode` to accept a place or street name: WRatio times the
share of the query's words found in the name times the share of the name's words found in the
query, so "Union Square" does not accept "Union Square Cafe" (66) nor "Central Park" accept
"Central Parking" (60); below it `geocode` raises and lists the best candidates."""

CANDIDATE_MIN_CONFIDENCE = 40.0
"""A geocoding error lists candidates at least this confident; below, close names instead."""

TOKEN_MATCH_CUTOFF = 85.0
"""Lowest rapidfuzz ratio (0-100) for two words to count as the same word ("tower" ~
"towers" 91; "park" vs "parking" 73 does not); numbers must be equal."""

_STOP_WORDS = frozenset(
    {"the", "of", "a", "an", "and", "at", "on", "in", "de", "la", "le", "du", "des", "der"}
)

MIN_NAME_CHARS = 3
"""Alternative names shorter than this many characters are not searched ("W", "MSG" is kept)."""

STREET_SCORE_CUTOFF = 85.0
"""Lowest token-set score (0-100) for a street name in an intersection or address."""

# Prominence proxy weights (no ratings exist in OSM): notability links, brands, tag richness.
PROMINENCE_WEIGHTS = {
    "wikidata": 3.0,
    "wikipedia": 2.0,
    "brand": 1.5,
    "tourism_or_historic": 1.0,
    "per_tag": 0.1,
    "max_tags": 30,
    "minor_factor": 0.25,
}

MINOR_POI_TAGS = frozenset(
    {
        ("amenity", "bicycle_rental"),
        ("amenity", "bicycle_parking"),
        ("amenity", "parking_entrance"),
        ("amenity", "vending_machine"),
        ("amenity", "telephone"),
        ("amenity", "post_box"),
        ("amenity", "toilets"),
        ("amenity", "drinking_water"),
        ("amenity", "bench"),
        ("amenity", "waste_basket"),
        ("amenity", "charging_station"),
        ("amenity", "parking"),
        ("highway", "bus_stop"),
    }
)
"""Street furniture and stops: richly tagged but poor landmarks, so their prominence is
scaled by `PROMINENCE_WEIGHTS["minor_factor"]`."""


def prominence_of(tags: Mapping[str, str]) -> float:
    """A deterministic prominence proxy for a POI, since OSM has no ratings or reviews.

    `3 * wikidata + 2 * wikipedia + 1.5 * brand + 1 * (tourism or historic) + 0.1 * number of
    tags (at most 30)`, where each name stands for "the tag is present"; see
    `PROMINENCE_WEIGHTS`. Street furniture and stops (`MINOR_POI_TAGS`: bike docks, bus
    stops, toilets...) get a quarter of that. Higher means better known; it is not a rating.

    Parameters
    ----------
    tags
        The POI's OSM tags.

    Returns
    -------
    float
        The prominence score, >= 0.
    """
    w = PROMINENCE_WEIGHTS
    score = w["wikidata"] * ("wikidata" in tags) + w["wikipedia"] * ("wikipedia" in tags)
    score += w["brand"] * ("brand" in tags or "brand:wikidata" in tags)
    score += w["tourism_or_historic"] * ("tourism" in tags or "historic" in tags)
    score += w["per_tag"] * min(len(tags), w["max_tags"])
    if any(tags.get(k) == v for k, v in MINOR_POI_TAGS):
        score *= w["minor_factor"]
    return round(float(score), 2)


@dataclass(frozen=True, slots=True)
class Place:
    """A named place: a POI, or an intersection, address, street or bare point from geocoding.

    Attributes
    ----------
    name
        Display name (`name:en` when tagged, else `name`).
    lat, lon
        Position, degrees (a node, or the representative point of an area).
    category
        Primary V-IRL/Google place type ("cafe"), or "intersection", "address", "street",
        "point" for geocoding results.
    tags
        The OSM tags (empty for non-POIs).
    id
        OSM id, "node/123", "way/45" or "relation/67"; "" for a bare point.
    local_name
        The `name` tag (the local-language name), or the display name.
    categories
        Every place type, most specific first.
    prominence
        Prominence proxy (see `prominence_of`); not a rating.
    kind
        "poi", "intersection", "address", "street" or "point".
    """

    name: str
    lat: float
    lon: float
    category: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    id: str = ""
    local_name: str | None = None
    categories: tuple[str, ...] = ()
    prominence: float = 0.0
    kind: str = "poi"

    def __hash__(self) -> int:
        return hash((self.id, self.name, self.lat, self.lon))

    def __repr__(self) -> str:
        # Short on purpose: the OSM tags (often 30 of them) are in `tags` / `to_dict()`.
        return (
            f"Place(name={self.name!r}, category={self.category!r}, lat={self.lat:.6f}, "
            f"lon={self.lon:.6f}, id={self.id!r}, kind={self.kind!r})"
        )

    @property
    def latlon(self) -> tuple[float, float]:
        """(lat, lon), degrees."""
        return (self.lat, self.lon)

    @property
    def vicinity(self) -> str:
        """ "<housenumber> <street>" from `addr:*`, or "" (V-IRL's `vicinity`)."""
        parts = [self.tags.get("addr:housenumber", ""), self.tags.get("addr:street", "")]
        return " ".join(p for p in parts if p)

    def distance_m(self, lat: float, lon: float) -> float:
        """Great-circle distance from (`lat`, `lon`) to this place, metres."""
        return haversine_m(lat, lon, self.lat, self.lon)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field."""
        return {
            "id": self.id,
            "name": self.name,
            "local_name": self.local_name,
            "lat": self.lat,
            "lon": self.lon,
            "category": self.category,
            "categories": list(self.categories),
            "prominence": self.prominence,
            "kind": self.kind,
            "tags": dict(self.tags),
        }

    def to_virl_dict(self, origin: tuple[float, float] | None = None) -> dict[str, Any]:
        """V-IRL's place dict (§1.2), key for key, plus the `prominence` proxy.

        Parameters
        ----------
        origin
            The query point (lat, lon), degrees. `distance` (metres) and `heading` (degrees
            clockwise from north) are measured from it; without it they are None.

        Returns
        -------
        dict
            `{name, geocode, rating, place_id, distance, n_reviews, heading, photo_reference,
            place_types, plus_code, vicinity, prominence}`; `rating` and `n_reviews` are 0
            because OSM has neither.
        """
        distance = heading = None
        if origin is not None:
            distance = haversine_m(origin[0], origin[1], self.lat, self.lon)
            heading = bearing_deg(origin[0], origin[1], self.lat, self.lon)
        types = [t for t in self.categories or (self.category or GENERIC_TYPE,)]
        for generic in ("point_of_interest", "establishment"):
            if self.kind == "poi" and generic not in types:
                types.append(generic)
        return {
            "name": self.name,
            "geocode": (self.lat, self.lon),
            "rating": 0,
            "place_id": self.id,
            "distance": distance,
            "n_reviews": 0,
            "heading": heading,
            "photo_reference": None,
            "place_types": types,
            "plus_code": "",
            "vicinity": self.vicinity,
            "prominence": self.prominence,
        }


@dataclass(frozen=True)
class ReverseGeocode:
    """Where a point is: its nearest street and nearest named intersection.

    Attributes
    ----------
    lat, lon
        The query point, degrees.
    street
        Name of the nearest named street ("" if none within reach).
    street_distance_m
        Distance from the point to that street, metres.
    intersection
        Names of the streets of the nearest intersection of two or more named streets.
    intersection_node
        Its graph node id (None if the city has none).
    intersection_lat, intersection_lon
        Its position, degrees.
    intersection_distance_m
        Distance from the point to it, metres.
    """

    lat: float
    lon: float
    street: str
    street_distance_m: float
    intersection: tuple[str, ...] = ()
    intersection_node: int | None = None
    intersection_lat: float | None = None
    intersection_lon: float | None = None
    intersection_distance_m: float | None = None

    @property
    def text(self) -> str:
        """A one-line description, e.g. "West 34th Street, near West 34th Street & 7th Avenue"."""
        parts = [self.street or "unnamed way"]
        if self.intersection:
            parts.append(f"near {' & '.join(self.intersection)}")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict of every field plus `text`."""
        return {
            "lat": self.lat,
            "lon": self.lon,
            "street": self.street,
            "street_distance_m": self.street_distance_m,
            "intersection": list(self.intersection),
            "intersection_node": self.intersection_node,
            "intersection_lat": self.intersection_lat,
            "intersection_lon": self.intersection_lon,
            "intersection_distance_m": self.intersection_distance_m,
            "text": self.text,
        }


# Street-name normalisation -------------------------------------------------------------------

_ABBREVIATIONS = {
    "west": "w",
    "east": "e",
    "north": "n",
    "south": "s",
    "street": "st",
    "str": "st",
    "avenue": "ave",
    "av": "ave",
    "boulevard": "blvd",
    "place": "pl",
    "road": "rd",
    "drive": "dr",
    "lane": "ln",
    "square": "sq",
    "plaza": "plz",
    "terrace": "ter",
    "court": "ct",
    "parkway": "pkwy",
    "highway": "hwy",
    "saint": "st",
    "first": "1st",
    "second": "2nd",
    "third": "3rd",
    "fourth": "4th",
    "fifth": "5th",
    "sixth": "6th",
    "seventh": "7th",
    "eighth": "8th",
    "ninth": "9th",
    "tenth": "10th",
    "eleventh": "11th",
    "twelfth": "12th",
}
_STREET_TYPES = {"st", "ave", "blvd", "pl", "rd", "dr", "ln", "sq", "plz", "ter", "ct", "pkwy"}


def _ordinal(n: int) -> str:
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return str(n) + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def normalize_street(text: str) -> str:
    """Canonical short form of a street name: "West 34th Street" -> "w 34th st".

    Lower case, accents and punctuation removed, words abbreviated (west -> w, avenue -> ave,
    seventh -> 7th), and a bare number before a street type gets its ordinal ("7 av" ->
    "7th ave").
    """
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    words = [_ABBREVIATIONS.get(w, w) for w in re.findall(r"[\w]+", text)]
    for i, w in enumerate(words):
        if w.isdigit() and i + 1 < len(words) and words[i + 1] in _STREET_TYPES:
            words[i] = _ordinal(int(w))
    return " ".join(words)


def _numbers(text: str) -> set[str]:
    return set(re.findall(r"\d+", text))


_DIRECTIONS = frozenset({"n", "s", "e", "w", "ne", "nw", "se", "sw"})


def _directions(normalized: str) -> frozenset[str]:
    """The compass words of a normalised street name ("w 53rd st" -> {"w"})."""
    return frozenset(w for w in normalized.split() if w in _DIRECTIONS)


def _street_score(query: str, candidate: str, *, subset: bool = True) -> float:
    """Similarity (0-100) of two normalised street names; the query's numbers must appear in
    the candidate, and compass words must not disagree ("w 53rd st" never matches "e 53rd
    st"). `subset` uses token-set similarity (a part of the name scores 100), otherwise
    token-sort similarity, and then the compass words must be the same."""
    from rapidfuzz import fuzz

    if not _numbers(query) <= _numbers(candidate):
        return 0.0
    q_dirs, c_dirs = _directions(query), _directions(candidate)
    if (q_dirs and c_dirs and q_dirs != c_dirs) or (not subset and q_dirs != c_dirs):
        return 0.0  # "W 53rd St" is not "E 53rd St"; "Union Square" is not "Union Square W"
    if subset:
        return float(fuzz.token_set_ratio(query, candidate))
    return float(fuzz.token_sort_ratio(query, candidate))


def _fold(text: str) -> str:
    """Accents removed ("Café" -> "Cafe"), so they never decide a match."""
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


def _word_hits(words: list[str], others: list[str]) -> list[bool]:
    """For each word, whether some word of `others` is the same word (equal numbers, or a
    rapidfuzz ratio >= `TOKEN_MATCH_CUTOFF` between words)."""
    from rapidfuzz import fuzz

    out = []
    words, others = [_fold(w) for w in words], [_fold(o) for o in others]
    for w in words:
        if w.isdigit() or any(c.isdigit() for c in w):
            out.append(w in others)
        else:
            out.append(any(fuzz.ratio(w, o) >= TOKEN_MATCH_CUTOFF for o in others))
    return out


def _coverage(words: list[str], others: list[str]) -> float:
    """Share of the characters of `words` (stop words and single letters left out) that
    belong to words found in `others`."""
    keep = [w for w in words if w not in _STOP_WORDS and len(w) > 1] or words
    if not keep:
        return 0.0
    hits = _word_hits(keep, others)
    return sum(len(w) for w, h in zip(keep, hits, strict=True) if h) / sum(len(w) for w in keep)


def name_confidence(query: str, name: str, *, whole_name: bool = False) -> float:
    """How surely a name is the one a query means, 0-100.

    rapidfuzz WRatio of the two (lower-cased, punctuation removed) times the share of the
    query's words found in the name (character-weighted; words match at ratio >=
    `TOKEN_MATCH_CUTOFF`), so "Eiffel Tower" scores 0 against the pet store "WE" that WRatio
    alone rates 90. With `whole_name` (geocoding), also times the share of the name's words
    found in the query: a name with extra words is another place ("Union Square Cafe" is a
    cafe, not Union Square).
    """
    from rapidfuzz import fuzz
    from rapidfuzz.utils import default_process

    q, n = default_process(_fold(query)), default_process(_fold(name))
    if not q or not n:
        return 0.0
    q_words, n_words = q.split(), n.split()
    score = float(fuzz.WRatio(q, n)) * _coverage(q_words, n_words)
    if whole_name:
        score *= _coverage(n_words, q_words)
    return round(score, 1)


# Opening hours --------------------------------------------------------------------------------

_DAYS = ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su")
_DAY = r"(?:Mo|Tu|We|Th|Fr|Sa|Su)"
_DAY_RANGE = rf"{_DAY}(?:\s*-\s*{_DAY})?"
_DAY_SPEC = re.compile(rf"^({_DAY_RANGE}(?:\s*,\s*{_DAY_RANGE})*)\b\s*(.*)$")
_TIME_RANGE = re.compile(r"(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})(\+?)")


def _day_set(spec: str) -> list[str] | None:
    days: list[str] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, _, b = part.partition("-")
            a, b = a.strip()[:2].title(), b.strip()[:2].title()
            if a not in _DAYS or b not in _DAYS:
                return None
            i, j = _DAYS.index(a), _DAYS.index(b)
            span = range(i, j + 1) if i <= j else [*range(i, 7), *range(0, j + 1)]
            days.extend(_DAYS[k] for k in span)
        else:
            d = part[:2].title()
            if d not in _DAYS or len(part) != 2:
                return None
            days.append(d)
    return days


def parse_opening_hours(text: str) -> dict[str, Any]:
    """Parse the common forms of OSM `opening_hours` into a weekly table.

    Handles "24/7", rules separated by ";" such as "Mo-Fr 08:00-18:00; Sa 09:00-14:00",
    day lists and wrapping ranges ("Su-Sa", "Fr-Mo"), several time ranges per rule, ranges past
    midnight ("18:00-02:00") and "off"/"closed". Later rules override earlier ones for their
    days, as in the OSM specification. Rules it cannot read (public holidays, months, week
    numbers) are listed under `unparsed`.

    Parameters
    ----------
    text
        The `opening_hours` value.

    Returns
    -------
    dict
        `{"raw": text, "always_open": bool, "weekly": {"Mo": [["08:00", "18:00"]], ...} or
        None when no rule could be read, "unparsed": [rules]}`. A day absent from `weekly`
        is closed or unknown.
    """
    raw = text.strip()
    result: dict[str, Any] = {"raw": raw, "always_open": False, "weekly": None, "unparsed": []}
    if raw == "24/7":
        result["always_open"] = True
        result["weekly"] = {d: [["00:00", "24:00"]] for d in _DAYS}
        return result
    weekly: dict[str, list[list[str]]] = {}
    parsed_any = False
    for rule in (r.strip() for r in raw.split(";")):
        if not rule:
            continue
        m = _DAY_SPEC.match(rule)
        day_spec, times = (m.group(1), m.group(2).strip()) if m else ("", rule)
        days = _day_set(day_spec) if day_spec else list(_DAYS)
        if days is None:
            result["unparsed"].append(rule)
            continue
        if times.lower() in ("off", "closed"):
            for d in days:
                weekly[d] = []
            parsed_any = True
            continue
        if times == "24/7" or times == "00:00-24:00":
            ranges = [["00:00", "24:00"]]
        else:
            found = _TIME_RANGE.findall(times)
            leftover = _TIME_RANGE.sub("", times).replace(",", "").strip()
            if not found or leftover:
                result["unparsed"].append(rule)
                continue
            ranges = [[f"{int(a):02d}:{b}", f"{int(c):02d}:{d}"] for a, b, c, d, _ in found]
        for d in days:
            weekly[d] = [list(r) for r in ranges]
        parsed_any = True
    if parsed_any:
        result["weekly"] = {d: weekly[d] for d in _DAYS if d in weekly}
        result["always_open"] = all(weekly.get(d) == [["00:00", "24:00"]] for d in _DAYS)
    return result


# The index ------------------------------------------------------------------------------------

_NEAR_RE = re.compile(r"^(.*?)\s+(?:near|around|close to|next to|by)\s+(.+)$", re.IGNORECASE)
_INTERSECTION_SPLIT = re.compile(r"\s*(?:&|\+|@|/|\band\b|\bat\b|\bx\b)\s*", re.IGNORECASE)
_ADDRESS_RE = re.compile(r"^\s*(\d+[A-Za-z]?(?:-\d+)?)\s+([^,]+?)\s*(?:,.*)?$")
_NUMBERED_STREET = re.compile(r"(?:\b([nsew]) )?\b(\d+)(?:st|nd|rd|th) (st|ave)\b")
_DIRECTION_WORDS = {"n": "North", "s": "South", "e": "East", "w": "West"}
_KIND_WORDS = {"st": "Street", "ave": "Avenue"}
_NAME_TAGS = (
    "name",
    "name:en",
    "brand",
    "alt_name",
    "short_name",
    "official_name",
    "loc_name",
)


def _name_variants(place: Place) -> set[str]:
    """Every name a place goes by: display, local and the `_NAME_TAGS` values (";" lists
    split, so "The Humanities ... Library;New York Public Library" gives both)."""
    names = {place.name, place.local_name or ""}
    for key in _NAME_TAGS:
        names.update(v.strip() for v in place.tags.get(key, "").split(";"))
    names.discard("")
    return names


class PlaceIndex:
    """Search structures over a city's POIs, streets, intersections and addresses.

    Built on first use by `City.places`; all queries are offline and deterministic.

    Parameters
    ----------
    city
        The loaded city.
    """

    def __init__(self, city: City) -> None:
        from rapidfuzz.utils import default_process

        self.city = city
        self.pois = city.pois
        n = len(self.pois)
        lats = np.fromiter((p.lat for p in self.pois), float, n)
        lons = np.fromiter((p.lon for p in self.pois), float, n)
        if n:
            self.xs, self.ys = city.to_xy(lats, lons)
        else:
            self.xs = self.ys = np.zeros(0)
        self.prominence = np.fromiter((p.prominence for p in self.pois), float, n)
        self.by_id = {p.id: p for p in self.pois}
        # Name variants for fuzzy search, pre-processed once and deduplicated (chains repeat).
        slot: dict[str, int] = {}
        owners: list[list[int]] = []
        self._poi_choices: list[list[int]] = []
        for i, p in enumerate(self.pois):
            variants = _name_variants(p)
            mine: list[int] = []
            for v in variants:
                processed = default_process(v)
                if len(processed) < MIN_NAME_CHARS and v != p.name:
                    continue  # "W" as a short_name would match any query containing a w
                if not processed:
                    continue
                j = slot.setdefault(processed, len(slot))
                if j == len(owners):
                    owners.append([])
                owners[j].append(i)
                mine.append(j)
            self._poi_choices.append(mine)
        self._choices: list[str] = list(slot)
        # What extra query words ("italian restaurant") are matched against.
        self._hay = [
            " ".join(
                [
                    p.name,
                    p.tags.get("cuisine", "").replace(";", " ").replace("_", " "),
                    p.tags.get("brand", ""),
                ]
            ).lower()
            for p in self.pois
        ]
        self._choice_owners = [np.asarray(o, dtype=np.int64) for o in owners]
        self._by_type: dict[str, np.ndarray] = {}
        members: dict[str, list[int]] = defaultdict(list)
        for i, p in enumerate(self.pois):
            for t in p.categories:
                members[t].append(i)
        self._by_type = {t: np.asarray(v, dtype=np.int64) for t, v in members.items()}
        self._build_streets()

    # Streets, intersections, addresses -----------------------------------------------------

    def _build_streets(self) -> None:
        city = self.city
        G = city.graph
        street_edges: dict[str, list[tuple[int, int]]] = defaultdict(list)
        for u, v, d in G.edges(data=True):
            if d["street"] and not d["street_inferred"]:
                street_edges[d["street"]].append((u, v))
        self.street_edges = dict(street_edges)
        self.street_norm = {name: normalize_street(name) for name in street_edges}
        for name, local in {
            (d["street"], d["local_name"]) for _, _, d in G.edges(data=True) if d["street"]
        }:
            self.street_norm.setdefault(name, normalize_street(name))
            if local and local != name:
                self.street_norm.setdefault(local, normalize_street(local))
        # Named intersections: two or more distinct street names.
        nodes = [n for n, names in city.intersections.items() if len(names) >= 2]
        self.int_nodes = np.asarray(nodes, dtype=np.int64)
        self.int_xy = np.array(
            [(G.nodes[n]["x"], G.nodes[n]["y"]) for n in nodes], dtype=float
        ).reshape(-1, 2)
        self.nodes_by_street: dict[str, set[int]] = defaultdict(set)
        for n in nodes:
            for name in city.intersections[n]:
                self.nodes_by_street[name].add(n)
        self.addresses_by_street: dict[str, list[tuple[str, float, float, str, str, str]]] = (
            defaultdict(list)
        )
        for number, street, lat, lon, oid, name in city.addresses:
            self.addresses_by_street[normalize_street(street)].append(
                (number, lat, lon, oid, name, street)
            )

    # Helpers -------------------------------------------------------------------------------

    def get(self, place_id: str) -> Place:
        """The POI with OSM id `place_id` ("node/123", "way/45").

        Raises
        ------
        PlaceNotFoundError
            No POI has this id.
        """
        try:
            return self.by_id[place_id]
        except KeyError:
            raise PlaceNotFoundError(place_id) from None

    def query_centre(
        self, text: str, near: Place | tuple[float, float] | str | None = None
    ) -> tuple[str, tuple[float, float] | None]:
        """Split a query into what is searched and the centre it is searched around.

        Parameters
        ----------
        text
            The query; "X near Y" (also "around", "close to", "next to", "by") names a centre.
        near
            An explicit centre (Place, (lat, lon) degrees, or text); it wins over the text.

        Returns
        -------
        tuple
            (what, centre): the searched words and the centre (lat, lon) in degrees, or None.
            If "Y" cannot be geocoded, "near" is taken as part of a name and centre is None.
        """
        what = text.strip()
        if near is not None:
            return what, self.resolve_point(near)
        m = _NEAR_RE.match(what)
        if m:
            try:
                return m.group(1).strip(), self.resolve_point(m.group(2).strip())
            except PlaceNotFoundError:
                pass
        return what, None

    def resolve_point(self, where: Place | tuple[float, float] | str) -> tuple[float, float]:
        """A Place, (lat, lon) tuple or text (geocoded) as (lat, lon), degrees."""
        if isinstance(where, Place):
            return where.lat, where.lon
        if isinstance(where, str):
            p = self.geocode(where)
            return p.lat, p.lon
        lat, lon = float(where[0]), float(where[1])
        self.city.check_inside(lat, lon)
        return lat, lon

    def _within(self, lat: float, lon: float, radius_m: float) -> tuple[np.ndarray, np.ndarray]:
        """Indices of POIs within `radius_m` of a point, and their distances (metres)."""
        x, y = self.city.to_xy(lat, lon)
        d = np.hypot(self.xs - x, self.ys - y)
        idx = np.nonzero(d <= radius_m)[0]
        return idx, d[idx]

    def _name_scores(self, query: str, allowed: np.ndarray | None) -> dict[int, float]:
        """Search confidence of `query` against every name variant (WRatio times the share of
        the query's words in the name, see `name_confidence`); the best per POI, those >=
        `NAME_SCORE_CUTOFF` only."""
        from rapidfuzz import fuzz, process
        from rapidfuzz.utils import default_process

        q = default_process(query)
        if not q:
            return {}
        if allowed is None:
            choice_ids = None
            choices = self._choices
        else:
            allowed_set = set(allowed.tolist())
            choice_ids = sorted({j for i in allowed_set for j in self._poi_choices[i]})
            choices = [self._choices[j] for j in choice_ids]
        scores: dict[int, float] = {}
        q_words = q.split()
        for choice, ratio, k in process.extract(
            q,
            choices,
            scorer=fuzz.WRatio,
            processor=None,
            score_cutoff=NAME_SCORE_CUTOFF,
            limit=None,
        ):
            score = round(float(ratio) * _coverage(q_words, choice.split()), 1)
            if score < NAME_SCORE_CUTOFF:
                continue  # WRatio rates "we" 90 for "eiffel tower": no query word is in it
            j = k if choice_ids is None else choice_ids[k]
            for owner in self._choice_owners[j].tolist():
                if allowed is not None and owner not in allowed_set:
                    continue
                if score > scores.get(owner, 0.0):
                    scores[owner] = float(score)
        return scores

    # Queries --------------------------------------------------------------------------------

    def search(
        self,
        text: str,
        *,
        near: Place | tuple[float, float] | str | None = None,
        radius_m: float | None = None,
        limit: int = 10,
        category: str | None = None,
    ) -> list[Place]:
        """Fuzzy search of POIs by name, brand, alternative names and category.

        The text may end in "near <place>" ("coffee near Bryant Park"); that place is geocoded
        and used as `near`. Words of the category vocabulary ("coffee", "pharmacy", "hotel")
        select POIs of the mapped V-IRL types; other words are matched against names with
        rapidfuzz's WRatio (hits score >= `NAME_SCORE_CUTOFF`). Hits are ranked by score, then
        by distance from `near` when given, else by `prominence`.

        Parameters
        ----------
        text
            The query.
        near
            Centre of the search: a Place, (lat, lon) degrees, or a text to geocode.
        radius_m
            Search radius around `near`, metres (default `DEFAULT_NEAR_RADIUS_M` when a
            centre is given; unlimited otherwise).
        limit
            Most results to return.
        category
            Only POIs of this type ("cafe") or query word ("coffee").

        Returns
        -------
        list[Place]
            Best first; [] when nothing matches.

        Raises
        ------
        UnknownCategoryError
            `category` is not in the vocabulary.
        """
        what, centre = self.query_centre(text, near)
        allowed: np.ndarray | None = None
        dist: dict[int, float] = {}
        if centre is not None:
            radius = DEFAULT_NEAR_RADIUS_M if radius_m is None else float(radius_m)
            idx, d = self._within(centre[0], centre[1], radius)
            allowed = idx
            dist = dict(zip(idx.tolist(), d.tolist(), strict=True))
        if category is not None:
            types = resolve_category(category)
            if types is None:
                raise UnknownCategoryError(category, vocabulary())
            members = self._members(types)
            allowed = members if allowed is None else np.intersect1d(allowed, members)
        if allowed is not None and allowed.size == 0:
            return []
        types, leftover = parse_category_query(what) if what else ((), [])
        scores: dict[int, float] = {}
        if types:
            members = self._members(types)
            if allowed is not None:
                members = np.intersect1d(members, allowed)
            if not leftover:
                scores = dict.fromkeys(members.tolist(), 100.0)
            else:
                extra = self._leftover_scores(" ".join(leftover), members)
                # The other words must match too: "central park" is not every park.
                scores = {i: 85.0 + 0.15 * sc for i, sc in extra.items()}
        if what and (leftover or not types):
            for i, s in self._name_scores(what, allowed).items():
                scores[i] = max(scores.get(i, 0.0), s)
        elif not what and allowed is not None and category is not None:
            scores = dict.fromkeys(allowed.tolist(), 100.0)
        if not scores:
            return []
        if centre is not None:
            order = sorted(scores, key=lambda i: (-round(scores[i]), dist[i], self.pois[i].id))
        else:
            order = sorted(
                scores,
                key=lambda i: (-round(scores[i]), -self.prominence[i], self.pois[i].id),
            )
        return [self.pois[i] for i in order[: max(0, int(limit))]]

    def _members(self, types: tuple[str, ...]) -> np.ndarray:
        arrays = [self._by_type[t] for t in types if t in self._by_type]
        if not arrays:
            return np.zeros(0, dtype=np.int64)
        return np.unique(np.concatenate(arrays))

    def _leftover_scores(self, words: str, members: np.ndarray) -> dict[int, float]:
        """How well extra query words ("italian") match a POI's name, cuisine or brand
        (rapidfuzz partial ratio, 0-100; only scores >= 80 are returned)."""
        from rapidfuzz import fuzz, process

        ids = members.tolist()
        hays = [self._hay[i] for i in ids]
        return {
            ids[k]: float(score)
            for _, score, k in process.extract(
                words.lower(),
                hays,
                scorer=fuzz.partial_ratio,
                processor=None,
                score_cutoff=80,
                limit=None,
            )
        }

    def nearby(
        self,
        lat: float,
        lon: float,
        radius_m: float = 200.0,
        category: str | None = None,
        *,
        limit: int | None = None,
    ) -> list[Place]:
        """POIs within a radius of a point, nearest first.

        Parameters
        ----------
        lat, lon
            The centre, degrees.
        radius_m
            Search radius, metres.
        category
            Only POIs of this V-IRL type ("cafe", "bank") or query word ("coffee").
        limit
            Most results to return (all when None).

        Returns
        -------
        list[Place]
            Nearest first (ties by prominence); [] when none.

        Raises
        ------
        OutsideMapError
            The point is off the map.
        UnknownCategoryError
            `category` is not in the vocabulary.
        """
        self.city.check_inside(lat, lon)
        idx, d = self._within(lat, lon, float(radius_m))
        if category is not None:
            types = resolve_category(category)
            if types is None:
                raise UnknownCategoryError(category, vocabulary())
            keep = np.isin(idx, self._members(types))
            idx, d = idx[keep], d[keep]
        order = np.lexsort((-self.prominence[idx], d))
        chosen = idx[order].tolist()
        if limit is not None:
            chosen = chosen[: int(limit)]
        return [self.pois[i] for i in chosen]

    def geocode(self, text: str) -> Place:
        """Find the place a text names.

        Tried in order: an intersection of two streets ("W 34th St & 7th Ave", "8th and 33rd",
        separators &, and, at, /, @, +), a street address ("350 5th Avenue", from `addr:*`
        tags; West/East must agree), a POI name (the candidate whose `name_confidence` with
        `whole_name` clears `GEOCODE_SCORE_CUTOFF`), a street name. Nothing is guessed: a
        text that matches nothing with that confidence raises.

        Parameters
        ----------
        text
            What to find.

        Returns
        -------
        Place
            With `kind` "intersection", "address", "poi" or "street".

        Raises
        ------
        PlaceNotFoundError
            Nothing clears the confidence; the message lists the best candidates with their
            confidence (or close names) and says when a numbered street or house number lies
            outside the extract.
        """
        query = text.strip()
        if not query:
            raise PlaceNotFoundError(text)
        parts = [
            p
            for p in _INTERSECTION_SPLIT.split(
                re.sub(r"^(?:the\s+)?corner\s+of\s+", "", query, flags=re.IGNORECASE)
            )
            if p.strip()
        ]
        if len(parts) == 2:
            hit = self._intersection(parts[0], parts[1])
            if hit is not None:
                return hit
        note = ""
        m = _ADDRESS_RE.match(query)
        if m:
            hit, note = self._address(m.group(1), m.group(2))
            if hit is not None:
                return hit
        poi, poi_score, candidates = self._best_poi(query)
        street, street_score = self._street(query)
        if street is not None and street_score >= max(poi_score, GEOCODE_SCORE_CUTOFF):
            return street
        if poi is not None:
            return poi
        if street is not None:
            candidates.append((street_score, f"{street.name} (street, {street_score:.0f})"))
        best = [label for _, label in sorted(candidates, key=lambda c: -c[0])[:3]]
        note = note or self._outside_note(query)
        raise PlaceNotFoundError(
            text,
            [] if note else self.suggest(query),  # outside the extract: no look-alikes
            candidates=best,
            note=note,
            cutoff=GEOCODE_SCORE_CUTOFF,
        )

    def _best_poi(self, query: str) -> tuple[Place | None, float, list[tuple[float, str]]]:
        """The POI a geocoding query names, its confidence (see `name_confidence` with
        `whole_name`) and the best candidates as (confidence, label); the POI is None when
        no candidate clears `GEOCODE_SCORE_CUTOFF`. A pure category query ("pharmacy")
        accepts its best search hit with confidence 100."""
        from rapidfuzz import fuzz, process
        from rapidfuzz.utils import default_process

        types, leftover = parse_category_query(query)
        if types and not leftover:
            hits = self.search(query, limit=1)
            if hits:
                return hits[0], 100.0, []
        q = default_process(query)
        if not q:
            return None, 0.0, []
        pool = {self.by_id[p.id] for p in self.search(query, limit=5)}
        for _, _, k in process.extract(
            q, self._choices, scorer=fuzz.WRatio, processor=None, limit=20, score_cutoff=50
        ):
            pool.update(self.pois[i] for i in self._choice_owners[k].tolist()[:50])
        scored: list[tuple[float, float, str, Place]] = []
        for p in pool:
            names = _name_variants(p)
            conf = max(
                (
                    name_confidence(query, n, whole_name=True)
                    for n in names
                    if n and (len(n) >= MIN_NAME_CHARS or n == p.name)
                ),
                default=0.0,
            )
            scored.append((conf, p.prominence, p.id, p))
        scored.sort(key=lambda t: (-t[0], -t[1], t[2]))
        labels: list[tuple[float, str]] = []
        for conf, _, _, p in scored:
            label = f"{p.name} ({p.category}, {conf:.0f})"
            if conf >= CANDIDATE_MIN_CONFIDENCE and all(lab != label for _, lab in labels):
                labels.append((conf, label))
        if scored and scored[0][0] >= GEOCODE_SCORE_CUTOFF:
            return scored[0][3], scored[0][0], labels
        return None, 0.0, labels[:3]

    def _outside_note(self, text: str) -> str:
        """A sentence saying a numbered street ("W 110th St", "11 W 53rd St") lies outside the
        extract's range of such streets, or ""."""
        q = normalize_street(text)
        m = _NUMBERED_STREET.search(q)
        if not m:
            return ""
        direction, number, kind = m.group(1) or "", int(m.group(2)), m.group(3)
        numbers = []
        for norm in self.street_norm.values():
            mm = _NUMBERED_STREET.fullmatch(norm)
            if mm and (mm.group(1) or "") == direction and mm.group(3) == kind:
                numbers.append(int(mm.group(2)))
        if not numbers or min(numbers) <= number <= max(numbers):
            return ""
        what = " ".join(
            w for w in (_DIRECTION_WORDS.get(direction, ""), _KIND_WORDS[kind] + "s") if w
        )
        return (
            f"It lies outside this extract's bounds: its numbered {what} run from "
            f"{_ordinal(min(numbers))} to {_ordinal(max(numbers))}."
        )

    def suggest(self, text: str, *, n: int = 3) -> list[str]:
        """Up to `n` known POI or street names that look like `text`."""
        from rapidfuzz import fuzz, process
        from rapidfuzz.utils import default_process

        q = default_process(text)
        if not q:
            return []
        names = list(dict.fromkeys([p.name for p in self.pois] + list(self.street_edges)))
        hits = process.extract(
            q, names, scorer=fuzz.WRatio, processor=default_process, limit=20 * n, score_cutoff=50
        )
        # A suggestion shares a word with the text ("Eiffel Tower" never suggests "WE").
        q_words = q.split()
        shared = [h[0] for h in hits if _coverage(q_words, default_process(h[0]).split()) > 0]
        return shared[:n]

    def _matching_streets(self, part: str, *, subset: bool = True) -> dict[str, float]:
        """Street names matching `part` (score >= `STREET_SCORE_CUTOFF`); with `subset`, a
        part of a name matches it ("8th" matches "8th Avenue")."""
        q = normalize_street(part)
        if not q:
            return {}
        out = {}
        for name, norm in self.street_norm.items():
            s = _street_score(q, norm, subset=subset)
            if s >= STREET_SCORE_CUTOFF:
                out[name] = s
        return out

    def _intersection(self, a: str, b: str) -> Place | None:
        ma, mb = self._matching_streets(a), self._matching_streets(b)
        if not ma or not mb:
            return None
        G = self.city.graph
        best: tuple[float, int, int] | None = None
        nodes_a = set().union(*(self.nodes_by_street.get(s, set()) for s in ma))
        nodes_b = set().union(*(self.nodes_by_street.get(s, set()) for s in mb))
        best_names = ("", "")
        for n in sorted(nodes_a & nodes_b):
            names = self.city.intersections[n]
            pair_score, pair = max(
                (
                    (ma.get(p, 0.0) + mb.get(q, 0.0), (p, q))
                    for p in names
                    for q in names
                    if p != q and p in ma and q in mb
                ),
                default=(0.0, ("", "")),
            )
            if pair_score == 0.0:
                continue
            real = sum(
                1 for _, _, d in G.edges(n, data=True) if d["street"] and not d["street_inferred"]
            )
            key = (pair_score, real, -n)
            if best is None or key > best:
                best, best_names = key, pair
        if best is None:
            return None
        node = -best[2]
        name_a, name_b = best_names
        data = G.nodes[node]
        return Place(
            name=f"{name_a} & {name_b}",
            lat=data["lat"],
            lon=data["lon"],
            category="intersection",
            id=f"node/{node}",
            local_name=f"{name_a} & {name_b}",
            categories=("intersection",),
            kind="intersection",
        )

    def _address(self, number: str, street: str) -> tuple[Place | None, str]:
        """The mapped address `number street`, or the nearest mapped number on that street
        when `number` lies within the street's mapped numbers (an approximation, labelled
        with the number found); else None and a note saying why."""
        q = normalize_street(street)
        candidates = [(s, _street_score(q, s)) for s in self.addresses_by_street]
        candidates = [(s, sc) for s, sc in candidates if sc >= STREET_SCORE_CUTOFF]
        if not candidates:
            return None, self._outside_note(street)
        best_street = max(candidates, key=lambda c: (c[1], -abs(len(c[0]) - len(q))))[0]
        entries = self.addresses_by_street[best_street]
        exact = [e for e in entries if e[0].lower() == number.lower()]
        if exact:
            hit = exact[0]
        else:
            digits = re.match(r"\d+", number)
            target = int(digits.group()) if digits else 0
            known = [int(d.group()) for e in entries if (d := re.match(r"\d+", e[0]))]
            if not known:
                return None, ""
            if not min(known) <= target <= max(known):
                name = entries[0][5]
                return None, (
                    f"{name} has mapped numbers {min(known)} to {max(known)} here; number "
                    f"{number} may lie outside the extract's bounds."
                )

            def gap(entry: tuple) -> float:
                d = re.match(r"\d+", entry[0])
                return abs(int(d.group()) - target) if d else math.inf

            # Within the mapped range: the nearest mapped number (its label says which).
            hit = min(entries, key=gap)
        num, lat, lon, oid, name, street_name = hit
        label = f"{num} {street_name}".strip()
        return Place(
            name=label,
            lat=lat,
            lon=lon,
            category="address",
            tags={"addr:housenumber": num, "addr:street": street_name},
            id=oid,
            local_name=name or label,
            categories=("address",),
            kind="address",
        ), ""

    def _street(self, text: str) -> tuple[Place | None, float]:
        """The street a text names, placed at its most central edge, and the match score."""
        matches = {
            s: sc
            for s, sc in self._matching_streets(text, subset=False).items()
            if s in self.street_edges
        }
        if not matches:
            return None, 0.0
        top = max(matches.values())
        name = min(
            (s for s, sc in matches.items() if sc == top),
            key=lambda s: (-len(self.street_edges[s]), s),
        )
        G = self.city.graph
        edges = self.street_edges[name]
        xs = np.array([(G.nodes[u]["x"] + G.nodes[v]["x"]) / 2 for u, v in edges])
        ys = np.array([(G.nodes[u]["y"] + G.nodes[v]["y"]) / 2 for u, v in edges])
        k = int(np.argmin(np.hypot(xs - xs.mean(), ys - ys.mean())))
        u, v = edges[k]
        mid = G[u][v]["geometry"].interpolate(0.5, normalized=True)
        lat, lon = self.city.to_latlon(mid.x, mid.y)
        place = Place(
            name=name,
            lat=lat,
            lon=lon,
            category="street",
            id=f"way/{G[u][v]['way_ids'][0]}",
            local_name=G[u][v]["local_name"] or name,
            categories=("street",),
            kind="street",
        )
        return place, top

    def reverse(self, lat: float, lon: float) -> ReverseGeocode:
        """The nearest named street and the nearest named intersection of a point.

        Parameters
        ----------
        lat, lon
            The point, degrees.

        Returns
        -------
        ReverseGeocode
            Street and intersection with their distances (metres).

        Raises
        ------
        OutsideMapError
            The point is off the map.
        """
        city = self.city
        city.check_inside(lat, lon)
        x, y = city.to_xy(lat, lon)
        street, street_d = city.router.nearest_street(x, y)
        result: dict[str, Any] = {}
        if len(self.int_nodes):
            d = np.hypot(self.int_xy[:, 0] - x, self.int_xy[:, 1] - y)
            k = int(np.argmin(d))
            node = int(self.int_nodes[k])
            data = city.graph.nodes[node]
            result = {
                "intersection": city.intersections[node],
                "intersection_node": node,
                "intersection_lat": data["lat"],
                "intersection_lon": data["lon"],
                "intersection_distance_m": float(d[k]),
            }
        return ReverseGeocode(lat, lon, street, street_d, **result)

    def details(self, place: Place | str) -> dict[str, Any]:
        """Everything OSM says about a POI, in plain fields, plus a profile text.

        Parameters
        ----------
        place
            The POI, or its id ("node/123").

        Returns
        -------
        dict
            `id, name, local_name, category, categories, address, cuisine (list),
            opening_hours (see `parse_opening_hours`, or None), website, phone, email,
            wheelchair, outdoor_seating, takeaway, delivery, internet_access, diet ({"vegan":
            "yes", ...}), brand, operator, level, wikidata, wikipedia, description, prominence,
            lat, lon, osm_url, attribution` and `profile`, a deterministic sentence summary
            that stands in for V-IRL's reviews (OSM has none).
        """
        if isinstance(place, str):
            place = self.get(place)
        t = place.tags
        address_parts = [
            " ".join(p for p in (t.get("addr:housenumber", ""), t.get("addr:street", "")) if p),
            t.get("addr:city", ""),
            " ".join(p for p in (t.get("addr:state", ""), t.get("addr:postcode", "")) if p),
        ]
        address = t.get("addr:full") or ", ".join(p for p in address_parts if p)
        hours = parse_opening_hours(t["opening_hours"]) if "opening_hours" in t else None
        cuisine = [
            c.strip().replace("_", " ") for c in t.get("cuisine", "").split(";") if c.strip()
        ]
        diet = {k.split(":", 1)[1]: v for k, v in t.items() if k.startswith("diet:")}
        info: dict[str, Any] = {
            "id": place.id,
            "name": place.name,
            "local_name": place.local_name,
            "category": place.category,
            "categories": list(place.categories),
            "address": address,
            "cuisine": cuisine,
            "opening_hours": hours,
            "website": t.get("website") or t.get("contact:website"),
            "phone": t.get("phone") or t.get("contact:phone"),
            "email": t.get("email") or t.get("contact:email"),
            "wheelchair": t.get("wheelchair"),
            "outdoor_seating": t.get("outdoor_seating"),
            "takeaway": t.get("takeaway"),
            "delivery": t.get("delivery"),
            "internet_access": t.get("internet_access"),
            "diet": diet,
            "brand": t.get("brand"),
            "operator": t.get("operator"),
            "level": t.get("level"),
            "wikidata": t.get("wikidata"),
            "wikipedia": t.get("wikipedia"),
            "description": t.get("description"),
            "prominence": place.prominence,
            "lat": place.lat,
            "lon": place.lon,
            "osm_url": f"https://www.openstreetmap.org/{place.id}" if place.id else None,
            "attribution": self.city.attribution,
        }
        info["profile"] = _profile(place, info)
        return info


def _profile(place: Place, info: dict[str, Any]) -> str:
    """A deterministic description of a POI from its tags (V-IRL's review substitute)."""
    kind = (place.category or GENERIC_TYPE).replace("_", " ")
    article = "an" if kind[:1] in "aeiou" else "a"
    text = f"{place.name} is {article} {kind}"
    if info["cuisine"]:
        text += f" serving {', '.join(info['cuisine'])} food"
    if info["brand"] and info["brand"] != place.name:
        text += f" of the {info['brand']} brand"
    if info["address"]:
        text += f" at {info['address']}"
    sentences = [text + "."]
    if info["opening_hours"]:
        sentences.append(f"Opening hours: {info['opening_hours']['raw']}.")
    flags = []
    for key, label in (
        ("outdoor_seating", "outdoor seating"),
        ("takeaway", "takeaway"),
        ("delivery", "delivery"),
        ("internet_access", "internet access"),
    ):
        if info[key] and info[key] != "no":
            flags.append(label)
    if flags:
        sentences.append("It offers " + ", ".join(flags) + ".")
    diets = [k.replace("_", " ") for k, v in info["diet"].items() if v in ("yes", "only")]
    if diets:
        sentences.append("Diet options: " + ", ".join(diets) + ".")
    if info["wheelchair"]:
        sentences.append(f"Wheelchair access: {info['wheelchair']}.")
    if info["description"]:
        sentences.append(info["description"].rstrip(".") + ".")
    return " ".join(sentences)


__all__ = [
    "DEFAULT_NEAR_RADIUS_M",
    "PROMINENCE_WEIGHTS",
    "Place",
    "PlaceIndex",
    "ReverseGeocode",
    "all_types",
    "normalize_street",
    "parse_opening_hours",
    "prominence_of",
]
