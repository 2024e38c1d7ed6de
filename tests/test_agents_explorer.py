"""Hiro, the intentional explorer: branches chosen by what is visible, a fitting place entered."""

from __future__ import annotations

import pytest

from openvirl.agents.explorer import Explorer, ExplorerConfig
from openvirl.world import PlaceNotFoundError
from openvirl.world.geometry import haversine_m
from world_fixtures import load_city


class Scripted:
    """Replies by step: a function of the prompt text."""

    name = "scripted"

    def __init__(self, fn) -> None:
        self.fn = fn
        self.prompts: list[str] = []

    def act(self, requests):
        texts = [r["messages"][0]["content"][-1]["text"] for r in requests]
        self.prompts.extend(texts)
        return [self.fn(t) for t in texts]


@pytest.fixture(scope="module")
def helsinki():
    return load_city("helsinki")


@pytest.fixture(scope="module")
def monaco():
    return load_city("monaco")


def _check_entered(city, data):
    assert data["success"]
    place = data["entered"]
    assert "restaurant" in place["categories"]
    assert place["fit"] >= 0.75
    cuisine = place["tags"].get("cuisine", "")
    assert not any(s in cuisine for s in ("sichuan", "thai", "indian", "korean", "mexican"))
    # Entered from the street: the walk passes within reach of it.
    end = data["trajectory"]
    assert min(haversine_m(a, b, place["lat"], place["lon"]) for a, b in end) <= 60


def test_hiro_finds_local_food_in_helsinki(helsinki, tmp_path):
    config = ExplorerConfig(city="helsinki", start="Kappeli", intention="local food, not spicy")
    result = Explorer(config, city=helsinki).run(out_dir=tmp_path)
    _check_entered(helsinki, result.data)
    assert result.data["preferences"]["likes"][0] == "finnish"
    assert result.map_png is not None and result.map_png.is_file()


def test_hiro_in_monaco_with_the_cone(monaco):
    config = ExplorerConfig(
        city="monaco", start="Stade Louis II", sight="cone", intention="local food, not spicy"
    )
    data = Explorer(config, city=monaco).run().data
    _check_entered(monaco, data)
    assert data["decisions"] and all(d["source"] == "baseline" for d in data["decisions"])


def test_policy_declines_then_enters_and_malformed_branches_fall_back(helsinki):
    declined: list[str] = []

    def reply(prompt: str) -> str:
        if "Do you go in" in prompt:
            if not declined:
                declined.append(prompt)
                return '{"enter": false, "reason": "too expensive"}'
            return '{"enter": "yes"}'
        return "left, I think"  # unreadable branch choice: the baseline decides

    policy = Scripted(reply)
    config = ExplorerConfig(
        city="helsinki", start="Kappeli", intention="local food, not spicy", sight="cone"
    )
    hiro = Explorer(config, policy, city=helsinki)
    data = hiro.run().data
    assert data["success"] and len(data["declined"]) == 1
    assert data["declined"][0] != data["entered"]["name"]
    assert data["entered"]["source"] == "llm"
    branch_calls = [c for c in hiro.log.calls if c.step == "branch"]
    assert branch_calls and all(not c.ok for c in branch_calls)


def test_policy_branch_choice_is_followed(helsinki):
    policy = Scripted(lambda p: '{"branch": 1}' if "Which way" in p else '{"enter": false}')
    config = ExplorerConfig(city="helsinki", start="Kappeli", sight="cone", max_steps=5)
    data = Explorer(config, policy, city=helsinki).run().data
    assert not data["success"] and data["steps"] == 5
    assert all(d["choice"] == 0 and d["source"] == "llm" for d in data["decisions"])


def test_bad_inputs(helsinki):
    # No Helsinki name shares a word with it, so no unrelated "Did you mean" (issue 20).
    with pytest.raises(PlaceNotFoundError, match=r"No place.*`Hogwarts Castle`") as err:
        Explorer(ExplorerConfig(city="helsinki", start="Hogwarts Castle"), city=helsinki).run()
    assert "Did you mean" not in str(err.value)
    with pytest.raises(ValueError, match="sight"):
        ExplorerConfig(sight="x-ray").validate()
