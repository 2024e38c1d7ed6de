"""Vivek, the estate recommender: sample homes, counts within walking distance, best first."""

from __future__ import annotations

import json

import pytest

from openvirl.agents.estate import SAMPLE_HOMES, EstateRecommender, EstateRecommenderConfig
from openvirl.world import PlaceNotFoundError, WorldError
from world_fixtures import load_city


class Scripted:
    name = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.n = 0

    def act(self, requests):
        out = []
        for _ in requests:
            out.append(self.replies[min(self.n, len(self.replies) - 1)])
            self.n += 1
        return out


@pytest.fixture(scope="module")
def manhattan():
    return load_city("manhattan")


def test_sample_homes_sorted_best_first_with_counts(manhattan, tmp_path):
    assert "SYNTHETIC" in SAMPLE_HOMES.read_text()
    result = EstateRecommender(EstateRecommenderConfig(), city=manhattan).run(out_dir=tmp_path)
    d = result.data
    assert d["types"] == ["supermarket", "subway_station", "gym"]
    ratings = [r["rating"] for r in d["ranked"]]
    assert ratings == sorted(ratings, reverse=True) and ratings[0] > ratings[-1]
    assert set(d["dropped"]) == {"h04", "h11"}  # rents above the 3000 window
    for r in d["ranked"]:
        for t, info in r["around"].items():
            label = t.replace("_", " ")
            if info["count"]:
                assert f"{info['count']} {label}" in r["reason"]
            else:
                assert f"no {label}" in r["reason"]
    # The top home has all three within 400 m; the bottom one misses at least one.
    assert all(v["count"] > 0 for v in d["ranked"][0]["around"].values())
    assert any(v["count"] == 0 for v in d["ranked"][-1]["around"].values())
    assert result.map_png is not None and (tmp_path / "result.json").is_file()


def test_policy_path_types_and_ratings(manhattan):
    policy = Scripted('{"types": ["park"]}', '{"rating": 3, "reason": "meh"}', "garbage")
    vivek = EstateRecommender(EstateRecommenderConfig(), policy, city=manhattan)
    d = vivek.run().data
    assert d["types"] == ["park"]
    assert d["ranked"][0]["source"] == "baseline"  # the malformed ones fall back
    assert sum(r["source"] == "llm" for r in d["ranked"]) == 1
    assert vivek.log.n_fallbacks == len(d["ranked"]) - 1


def test_bad_rows_are_named(manhattan, tmp_path):
    csv = tmp_path / "homes.csv"
    csv.write_text("id,address,lat,lon,rent_usd\nx1,999 Nowhere Boulevard Zzz,,,2000\n")
    with pytest.raises(PlaceNotFoundError, match="row 1"):
        EstateRecommender(EstateRecommenderConfig(homes=str(csv)), city=manhattan).run()
    # A point off the map is skipped, not fatal; only a file with no home on the map fails.
    csv.write_text("id,address,lat,lon,rent_usd\nx1,,48.85,2.35,2000\n")
    with pytest.raises(WorldError, match="none of the 1 listings"):
        EstateRecommender(EstateRecommenderConfig(homes=str(csv)), city=manhattan).run()
    csv.write_text("id,address,lat,lon,rent_usd\nx1,,48.85,2.35,2000\nx2,,40.7592,-73.9937,2100\n")
    with pytest.warns(UserWarning, match="1 listing"):
        d = EstateRecommender(EstateRecommenderConfig(homes=str(csv)), city=manhattan).run().data
    assert d["skipped_outside"] == ["x1"] and [r["id"] for r in d["ranked"]] == ["x2"]


def _listing(lid: str, lat: float, lon: float, price: float, beds: int = 1) -> dict:
    """A listing as V-IRL's data/estate/ny_peng_rent.json stores it (RentCast fields)."""
    return {
        "county": "New York",
        "bedrooms": beds,
        "bathrooms": 1,
        "propertyType": "Apartment",
        "price": price,
        "addressLine1": f"{lid} Test St",
        "city": "New York",
        "state": "NY",
        "formattedAddress": f"{lid} Test St, New York, NY",
        "status": "Active",
        "id": lid,
        "latitude": lat,
        "longitude": lon,
    }


def test_virl_estate_json_skips_listings_off_the_map(manhattan, tmp_path):
    listings = [
        _listing("in-a", 40.7592, -73.9937, 1986),
        _listing("in-b", 40.7418, -73.9783, 2750, beds=2),
        _listing("in-pricey", 40.7500, -73.9850, 5300),
        _listing("lic-queens", 40.747871, -73.943733, 2947),  # across the East River
        _listing("staten-island", 40.563034, -74.099922, 3500),
    ]
    path = tmp_path / "ny_peng_rent.json"
    path.write_text(json.dumps(listings))
    config = EstateRecommenderConfig(homes=str(path))
    with pytest.warns(UserWarning, match=r"2 listing.*outside the map of `manhattan`"):
        result = EstateRecommender(config, city=manhattan).run(out_dir=tmp_path / "run")
    d = result.data
    assert d["skipped_outside"] == ["lic-queens", "staten-island"]
    assert d["dropped"] == ["in-pricey"] and d["homes"] == 3
    assert {r["id"] for r in d["ranked"]} == {"in-a", "in-b"}
    top = next(r for r in d["ranked"] if r["id"] == "in-a")
    assert top["rent_usd"] == 1986 and top["bedrooms"] == 1
    assert top["address"] == "in-a Test St, New York, NY"
    assert result.metrics["skipped_outside"] == 2
    assert "outside the map" in (tmp_path / "run" / "report.md").read_text()
    path.write_text(json.dumps(listings[3:]))
    with pytest.raises(WorldError, match=r"none of the 2 listings.*openvirl city fetch"):
        EstateRecommender(config, city=manhattan).run()
    path.write_text("[{not json")
    with pytest.raises(WorldError, match="not JSON"):
        EstateRecommender(config, city=manhattan).run()
