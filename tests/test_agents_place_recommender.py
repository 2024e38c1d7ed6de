"""Aria, the place recommender: Sichuan wishes, tag profiles, ratings from a policy."""

from __future__ import annotations

import pytest

from openvirl.agents.place_recommender import (
    PlaceRecommender,
    PlaceRecommenderConfig,
    read_preferences,
)
from openvirl.world import PlaceNotFoundError
from world_fixtures import load_city


class Scripted:
    name = "scripted"

    def __init__(self, fn) -> None:
        self.fn = fn

    def act(self, requests):
        return [self.fn(r["messages"][0]["content"][-1]["text"]) for r in requests]


@pytest.fixture(scope="module")
def manhattan():
    return load_city("manhattan")


def test_preferences_read_regions_and_negations():
    p = read_preferences("Peng is from Chengdu, Sichuan. Lunch please.")
    assert p.likes[:3] == ["sichuan", "szechuan", "chinese"]
    q = read_preferences("local food, not spicy", city="monaco")
    assert "sichuan" in q.avoid and "thai" in q.avoid and "french" in q.likes
    assert "sichuan" not in q.likes


def test_sichuan_intention_ranks_sichuan_food_first(manhattan, tmp_path):
    # Szechuan Gourmet (cuisine=chinese) lies on W 39th St, next to Bryant Park.
    config = PlaceRecommenderConfig(
        start="Bryant Park", persona="a student", intention="lunch, I am from Sichuan", radius_m=500
    )
    result = PlaceRecommender(config, city=manhattan).run(out_dir=tmp_path)
    ranked = result.data["ranked"]
    assert result.data["category"][0] == "restaurant"
    assert ranked[0]["name"] == "Szechuan Gourmet"
    assert all("chinese" in r["cuisine"] for r in ranked[:3])
    assert [r["rating"] for r in ranked] == sorted((r["rating"] for r in ranked), reverse=True)
    assert "sichuan" in ranked[0]["description"].lower() or "chinese" in ranked[0]["description"]
    assert result.map_png is not None and result.map_png.is_file()


def test_policy_ratings_are_used_and_malformed_ones_fall_back(manhattan):
    def reply(prompt: str) -> str:
        if "Choose one place type" in prompt:
            return '{"category": "cafe"}'
        if "Blue Bottle" in prompt:
            return '{"rating": 10, "reason": "loves this one"}'
        return "no idea, sorry"

    config = PlaceRecommenderConfig(
        start="Bryant Park", intention="somewhere nice", radius_m=400, max_candidates=30
    )
    aria = PlaceRecommender(config, Scripted(reply), city=manhattan)
    data = aria.run().data
    assert data["category"] == ["cafe"]
    ranked = data["ranked"]
    llm = [r for r in ranked if r["source"] == "llm"]
    assert llm and all(r["rating"] == 10 for r in llm) and ranked[0]["source"] == "llm"
    assert any(r["source"] == "baseline" for r in ranked)
    assert aria.log.n_fallbacks == len(ranked) - len(llm)


def test_unknown_start_lists_close_matches(manhattan):
    config = PlaceRecommenderConfig(start="Bryant Parc Grille Nowhere Zzz")
    with pytest.raises(PlaceNotFoundError, match="Did you mean"):
        PlaceRecommender(config, city=manhattan).run()


def test_fallbacks_are_shown_and_counted_and_never_credited_to_the_model(manhattan, tmp_path):
    """A run whose model answers failed once showed "policy X" over the baseline's ratings."""

    def reply(prompt: str) -> str:
        if "Choose one place type" in prompt:
            return '{"category": "cafe"}'
        if "Blue Bottle" in prompt:
            return '{"rating": 10, "reason": "loves this one"}'
        return "no idea, sorry"

    config = PlaceRecommenderConfig(
        start="Bryant Park", intention="somewhere nice", radius_m=400, max_candidates=30, top_k=30
    )
    result = PlaceRecommender(config, Scripted(reply), city=manhattan).run(out_dir=tmp_path)
    m = result.metrics
    assert m["llm/fallbacks"] > 0 and m["llm/model_answers"] > 0
    assert m["llm/answered_by"] == "model and baseline"
    report = (tmp_path / "report.md").read_text()
    assert f"answers used: {m['llm/model_answers']} of {m['llm/calls']}" in report
    assert f"**Warning:** {m['llm/fallbacks']} of the {m['llm/calls']} answers" in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and "m |" in line]
    for line, r in zip(rows, result.data["ranked"], strict=False):
        assert line.rstrip(" |").endswith("scripted" if r["source"] == "llm" else "baseline")
    import json

    config_json = json.loads((tmp_path / "config.json").read_text())
    assert config_json["answered_by"] == "model and baseline"
    from openvirl.viewer.runs import load_run

    run = load_run(tmp_path)
    assert run.kind == "agent" and any("could not be used" in p for p in run.problems)


def test_strict_mode_fails_instead_of_falling_back(manhattan):
    from openvirl.agents.llm import ModelAnswerError, strict_answers

    config = PlaceRecommenderConfig(start="Bryant Park", intention="a cafe", radius_m=300)
    aria = PlaceRecommender(config, Scripted(lambda prompt: "no idea"), city=manhattan)
    with strict_answers(), pytest.raises(ModelAnswerError, match="no usable answer for `category`"):
        aria.run()
    assert PlaceRecommender(config, Scripted(lambda p: "no idea"), city=manhattan).run().data
