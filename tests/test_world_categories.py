"""OSM tags to V-IRL/Google place types, and query words to types."""

from __future__ import annotations

from openvirl.world.categories import (
    VIRL_TYPES_20,
    all_types,
    is_poi,
    parse_category_query,
    resolve_category,
    types_for_tags,
)


def test_tags_map_to_virl_types_most_specific_first():
    assert types_for_tags({"amenity": "cafe"})[0] == "cafe"
    assert types_for_tags({"amenity": "fast_food"})[:2] == ("restaurant", "meal_takeaway")
    assert types_for_tags({"tourism": "hotel"}) == ("lodging",)
    assert types_for_tags({"leisure": "fitness_centre"}) == ("gym",)
    assert types_for_tags({"shop": "laundry"}) == ("laundry",)
    assert types_for_tags({"shop": "dry_cleaning"}) == ("laundry",)
    assert types_for_tags({"amenity": "cinema"}) == ("movie_theater",)
    assert types_for_tags({"shop": "gift"}) == ("store",)
    assert types_for_tags({"railway": "station", "station": "subway"})[0] == "subway_station"
    assert types_for_tags({"amenity": "place_of_worship", "religion": "jewish"})[0] == "synagogue"
    assert types_for_tags({"shop": "beauty", "beauty": "spa"})[0] == "spa"
    assert types_for_tags({"amenity": "toilets"}) == ("point_of_interest",)


def test_every_virl_benchmark_type_is_reachable():
    assert set(VIRL_TYPES_20) <= set(all_types())


def test_is_poi_needs_a_name_and_a_poi_key():
    assert is_poi({"name": "Joe", "amenity": "cafe"})
    assert is_poi({"name": "34 St", "railway": "subway_entrance"})
    assert not is_poi({"amenity": "cafe"})
    assert not is_poi({"name": "Main Street", "highway": "residential"})


def test_query_words():
    assert parse_category_query("coffee") == (("cafe",), [])
    assert parse_category_query("Coffee shops") == (("cafe",), [])
    assert parse_category_query("a good gym") == (("gym",), [])
    assert parse_category_query("pharmacies") == (("pharmacy",), [])
    assert parse_category_query("bus stops") == (("bus_station",), [])
    assert parse_category_query("italian restaurants") == (("restaurant",), ["italian"])
    assert parse_category_query("Empire State Building")[0] == ()
    assert resolve_category("book store") == ("book_store",)
    assert resolve_category("coffee") == ("cafe",)
    assert resolve_category("spaceport") is None
