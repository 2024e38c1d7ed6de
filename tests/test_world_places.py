"""Place search, nearby, geocoding, reverse geocoding and details (Manhattan and small cities)."""

from __future__ import annotations

import pytest

from openvirl.world import City, PlaceNotFoundError, UnknownCategoryError
from openvirl.world.geometry import haversine_m
from openvirl.world.places import normalize_street, parse_opening_hours, prominence_of
from world_fixtures import grid_town, load_city

BRYANT_PARK = (40.7536, -73.9832)


@pytest.fixture(scope="module")
def manhattan() -> City:
    return load_city("manhattan")


def test_search_finds_the_empire_state_building(manhattan):
    hits = manhattan.search("Empire State Building")
    assert hits[0].name == "Empire State Building"
    assert haversine_m(hits[0].lat, hits[0].lon, 40.7484, -73.9857) < 60
    assert hits[0].category == "tourist_attraction"
    assert hits[0].prominence > 5  # wikidata + wikipedia + many tags
    # A typo still finds it.
    assert manhattan.search("empire state bilding", limit=1)[0].id == hits[0].id


def test_coffee_near_bryant_park_returns_cafes_nearby_nearest_first(manhattan):
    hits = manhattan.search("coffee near Bryant Park")
    assert len(hits) >= 5
    centre = manhattan.geocode("Bryant Park")
    assert haversine_m(centre.lat, centre.lon, *BRYANT_PARK) < 150
    distances = [haversine_m(centre.lat, centre.lon, p.lat, p.lon) for p in hits]
    assert all(d <= 500 for d in distances)
    assert distances == sorted(distances)
    assert all("cafe" in p.categories for p in hits)
    # The same query with an explicit centre and radius.
    near = manhattan.search("cafe", near=BRYANT_PARK, radius_m=200)
    assert near and all(haversine_m(*BRYANT_PARK, p.lat, p.lon) <= 200 for p in near)


def test_search_brand_category_and_no_hit(manhattan):
    starbucks = manhattan.search("Starbucks", limit=50)
    assert len(starbucks) >= 10 and all("starbucks" in p.name.lower() for p in starbucks)
    pharmacies = manhattan.search("pharmacy", limit=5)
    assert len(pharmacies) == 5 and all("pharmacy" in p.categories for p in pharmacies)
    italian = manhattan.search("italian restaurant", limit=5)
    assert all("restaurant" in p.categories for p in italian)
    assert "italian" in (italian[0].tags.get("cuisine", "") + italian[0].name.lower())
    assert manhattan.search("zzqxj vvkw") == []
    assert manhattan.search("") == []
    with pytest.raises(UnknownCategoryError, match="Did you mean"):
        manhattan.search("x", category="cafee")


def test_nearby_by_category(manhattan):
    cafes = manhattan.nearby(*BRYANT_PARK, radius_m=200, category="cafe")
    assert cafes
    distances = [haversine_m(*BRYANT_PARK, p.lat, p.lon) for p in cafes]
    assert max(distances) <= 200 and distances == sorted(distances)
    everything = manhattan.nearby(*BRYANT_PARK, radius_m=200)
    assert len(everything) > len(cafes)
    assert manhattan.nearby(*BRYANT_PARK, 200, "coffee") == cafes


def test_geocode_intersections_addresses_places_and_streets(manhattan):
    corner = manhattan.geocode("W 34th St & 7th Ave")
    assert corner.kind == "intersection"
    assert haversine_m(corner.lat, corner.lon, 40.7506, -73.9905) < 80
    assert set(corner.name.split(" & ")) == {"West 34th Street", "7th Avenue"}
    # The RUN story's corner: "8th and 33rd".
    run = manhattan.geocode("corner of 8th and 33rd")
    assert haversine_m(run.lat, run.lon, 40.7515, -73.9939) < 80
    address = manhattan.geocode("350 5th Avenue")
    assert address.kind == "address"
    assert haversine_m(address.lat, address.lon, 40.7484, -73.9857) < 120
    msg = manhattan.geocode("Madison Square Garden")
    assert msg.kind == "poi" and msg.name == "Madison Square Garden"
    street = manhattan.geocode("Broadway")
    assert street.kind == "street" and street.name == "Broadway"
    with pytest.raises(PlaceNotFoundError, match="No place") as err:
        manhattan.geocode("Madisson Sqare Gardden Arena of Nowhere 99")
    assert isinstance(err.value, ValueError)


def test_reverse_geocode(manhattan):
    where = manhattan.reverse(40.75085, -73.99070)
    assert where.street in ("West 34th Street", "7th Avenue")
    assert set(where.intersection) >= {"West 34th Street", "7th Avenue"}
    assert where.intersection_distance_m < 60
    assert "near" in where.text
    assert where.to_dict()["street"] == where.street


def test_details_and_virl_place_dict(manhattan):
    grill = manhattan.search("Bryant Park Grill", limit=1)[0]
    info = manhattan.details(grill)
    assert info["name"] == "Bryant Park Grill"
    assert info["address"].startswith("25 West 40th Street")
    assert info["phone"] and info["website"]
    assert info["opening_hours"]["weekly"]["Mo"] == [["11:30", "22:00"]]
    assert "restaurant" in info["profile"] and "outdoor seating" in info["profile"]
    assert manhattan.details(grill.id) == info
    virl = grill.to_virl_dict(origin=BRYANT_PARK)
    assert set(virl) >= {
        "name",
        "geocode",
        "rating",
        "place_id",
        "distance",
        "n_reviews",
        "heading",
        "photo_reference",
        "place_types",
        "plus_code",
        "vicinity",
    }
    assert virl["rating"] == 0 and virl["n_reviews"] == 0 and virl["photo_reference"] is None
    assert virl["place_id"] == grill.id and virl["geocode"] == (grill.lat, grill.lon)
    assert virl["vicinity"] == "25 West 40th Street"
    assert 0 < virl["distance"] < 300 and 0 <= virl["heading"] < 360
    assert virl["place_types"][0] == "restaurant" and "establishment" in virl["place_types"]
    assert virl["prominence"] == grill.prominence


def test_opening_hours_parser():
    week = parse_opening_hours("Mo-Fr 08:00-18:00; Sa 09:00-14:00; Su off")["weekly"]
    assert week["Mo"] == week["Fr"] == [["08:00", "18:00"]]
    assert week["Sa"] == [["09:00", "14:00"]] and week["Su"] == []
    assert parse_opening_hours("24/7")["always_open"]
    wrap = parse_opening_hours("Su-Sa 11:30-22:00")["weekly"]
    assert len(wrap) == 7
    late = parse_opening_hours("Fr-Mo 18:00-02:00, 03:00-04:00")["weekly"]
    assert set(late) == {"Fr", "Sa", "Su", "Mo"} and late["Sa"][1] == ["03:00", "04:00"]
    odd = parse_opening_hours("Mo-Fr 09:00-17:00; PH off")
    assert odd["weekly"]["Tu"] == [["09:00", "17:00"]] and odd["unparsed"] == ["PH off"]
    assert parse_opening_hours("sunrise-sunset")["weekly"] is None


def test_prominence_is_a_documented_proxy_not_a_rating():
    plain = prominence_of({"name": "A", "amenity": "cafe"})
    famous = prominence_of({"name": "A", "amenity": "cafe", "wikidata": "Q1", "brand": "B"})
    dock = prominence_of({"name": "A", "amenity": "bicycle_rental", "wikidata": "Q1"})
    assert famous > plain > 0
    assert dock < famous


def test_street_name_normalisation():
    assert normalize_street("West 34th Street") == normalize_street("W 34th St") == "w 34th st"
    assert normalize_street("Seventh Avenue") == normalize_street("7 Av") == "7th ave"


def test_small_city_geocode_and_search(tmp_path):
    town = City.load(grid_town(tmp_path / "town.osm"), cache=False)
    corner = town.geocode("Row 2 St & Column 2 Ave")
    assert corner.id == "node/104"
    assert town.search("test cafe")[0].name == "Test Cafe"
    assert town.search("books")[0].name == "Corner Books"
    assert town.geocode("Row 1 Street").kind == "street"
    with pytest.raises(PlaceNotFoundError, match="Did you mean"):
        town.geocode("Tset Cafee Bar Lounge")
