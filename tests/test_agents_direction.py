"""Local writes landmark directions; Ling follows them in the navigation env and re-asks."""

from __future__ import annotations

import json

import pytest

from openvirl.agents.direction import (
    DirectionGiver,
    DirectionGiverConfig,
    Tourist,
    TouristConfig,
    question_query,
)
from openvirl.policies.registry import make_policy
from openvirl.world import PlaceNotFoundError
from openvirl.world.geometry import haversine_m
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
def monaco():
    return load_city("monaco")


START = "Casino de Monte-Carlo"


def test_question_words_are_stripped():
    assert question_query("Where can I buy a gift?") == "gift"
    assert question_query("Where is the pharmacy?") == "pharmacy"


def test_local_routes_to_the_nearest_match_with_landmarks(monaco, tmp_path):
    config = DirectionGiverConfig(
        city="monaco", start=START, question="Where is the nearest pharmacy?"
    )
    result = DirectionGiver(config, city=monaco).run(out_dir=tmp_path)
    d = result.data
    assert "pharmacy" in d["destination"]["categories"]
    assert d["instructions"][0].startswith("First, turn")
    assert d["instructions"][-1].startswith("Move forward until you reach the destination")
    assert d["route_record"]["route_results"]["geocode_list"]
    assert len(d["instructions"]) == 2 * (d["turns"] + 1)
    assert result.map_png is not None and result.map_png.is_file()


def test_local_policy_writes_directions_or_falls_back(monaco):
    config = DirectionGiverConfig(city="monaco", start=START, question="I need a pharmacy")
    policy = Scripted('{"query": "pharmacy"}', '{"instructions": ["Walk to it.", "Stop."]}')
    d = DirectionGiver(config, policy, city=monaco).run().data
    assert d["instructions"] == ["Walk to it.", "Stop."] and d["instruction_source"] == "llm"
    assert d["nav_route"]["instruction"] == ["Walk to it.", "Stop."]
    broken = Scripted("pharmacy!", "[]")
    local = DirectionGiver(config, broken, city=monaco)
    d = local.run().data
    assert d["instruction_source"] == "baseline" and local.log.n_fallbacks == 2


def test_unknown_destination_lists_close_matches(monaco):
    config = DirectionGiverConfig(city="monaco", start=START, question="Where is Hogwarts Castle?")
    with pytest.raises(PlaceNotFoundError, match="Did you mean"):
        DirectionGiver(config, city=monaco).run()


def test_ling_with_the_oracle_reaches_the_destination(monaco, tmp_path):
    config = TouristConfig(city="monaco", start=START, question="Where is the nearest pharmacy?")
    result = Tourist(config, make_policy("oracle"), city=monaco).run(out_dir=tmp_path)
    d = result.data
    assert d["success"] and d["asks"] == 1
    last = d["attempts"][-1]
    assert last["steps"][-1]["gt_action"] == "stop()"
    dest = d["destination"]
    assert haversine_m(*last["end"], dest["lat"], dest["lon"]) < 60
    records = [json.loads(x) for x in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert records[0]["success"] and records[0]["steps"][0]["position"]


def test_ling_re_asks_local_from_where_it_stands(monaco):
    # Always "stop()": the first answer of every walk is wrong, so each ask fails at once...
    config = TouristConfig(
        city="monaco", start=START, question="Where is the nearest pharmacy?", max_asks=3
    )
    policy = Scripted('{"action": "stop()"}')
    d = Tourist(config, policy, city=monaco).run().data
    assert not d["success"] and d["asks"] == 3
    assert all(len(a["steps"]) == 1 for a in d["attempts"])
    # ...and a later ask is asked from where the previous walk ended.
    assert d["attempts"][1]["start"] == pytest.approx(d["attempts"][0]["end"], abs=1e-4)
