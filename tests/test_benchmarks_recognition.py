"""Place recognition: the 96 labels, ranked answers, top-k and mAcc, baselines."""

from __future__ import annotations

import pytest

from openvirl.benchmarks.recognition import (
    PLACE_TYPES_96,
    RecognitionConfig,
    normalise_label,
    parse_ranking,
    run,
    score,
)
from world_fixtures import private_cache


class Scripted:
    name = "scripted"

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.images = []

    def act(self, requests):
        for r in requests:
            self.images.append([p for p in r["messages"][0]["content"] if p["type"] == "image"])
        return [self.reply for _ in requests]


def test_labels_and_parsing():
    assert len(PLACE_TYPES_96) == 96 == len(set(PLACE_TYPES_96))
    assert normalise_label("Book Store") == "book_store"
    assert normalise_label("cafes") == "cafe"
    assert normalise_label("coffee") == "cafe"
    assert normalise_label("spaceship") is None
    assert parse_ranking('{"types": ["bank", "atm", "bank"]}') == ["bank", "atm"]
    assert parse_ranking("1. restaurant 2. bar") == ["restaurant", "bar"]
    assert parse_ranking("") == []


def test_macc_weights_places_with_several_types():
    items = [
        {"id": "a", "truth": ["restaurant", "meal_takeaway"], "place": {"name": "a"}},
        {"id": "b", "truth": ["bank"], "place": {"name": "b"}},
    ]
    m = score(items, ['["restaurant"]', '["atm", "bank"]'], ["restaurant"])["metrics"]
    assert m["top1"]["value"] == 0.5 and m["top3"]["value"] == 1.0
    assert m["per_type"] == {"bank": 0.0, "meal_takeaway": 1.0, "restaurant": 1.0}
    assert m["macc"] == pytest.approx(2 / 3)


def test_run_oracle_perfect_random_near_chance(tmp_path):
    with private_cache():
        metrics = run(RecognitionConfig(city="monaco", n=40, seed=2, policy="random"), out=tmp_path)
    oracle, rand = metrics["policies"]["oracle"], metrics["policies"]["random"]
    assert oracle["top1"]["value"] == 1.0 and oracle["macc"] == 1.0
    assert rand["top1"]["value"] <= 0.15 and rand["top5"]["value"] <= 0.35
    assert 20 <= oracle["types_present"] < 96


def test_a_vision_policy_gets_the_storefront_image(tmp_path):
    pytest.importorskip("openvirl.world.streetview", reason="the street-view renderer")
    policy = Scripted("It's a pharmacy, obviously")
    from openvirl.benchmarks import recognition

    config = RecognitionConfig(city="monaco", n=3, seed=0, visual=True, image_size=96)
    original = recognition.policies_for
    recognition.policies_for = lambda spec, seed: [("scripted", policy)]
    try:
        with private_cache():
            metrics = run(config, out=tmp_path)
    finally:
        recognition.policies_for = original
    assert all(len(images) == 1 for images in policy.images)
    assert policy.images[0][0]["image"].size == (96, 96)
    assert metrics["policies"]["scripted"]["unreadable_rate"] == 0.0
