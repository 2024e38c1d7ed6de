"""Vivek, the estate recommender: sample homes, counts within walking distance, best first."""

from __future__ import annotations

import pytest

from openvirl.agents.estate import SAMPLE_HOMES, EstateRecommender, EstateRecommenderConfig
from openvirl.world import OutsideMapError, PlaceNotFoundError
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
    csv.write_text("id,address,lat,lon,rent_usd\nx1,,48.85,2.35,2000\n")
    with pytest.raises(OutsideMapError):
        EstateRecommender(EstateRecommenderConfig(homes=str(csv)), city=manhattan).run()
