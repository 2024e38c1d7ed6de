"""Peng, the route optimizer, on the bundled Manhattan extract."""

from __future__ import annotations

import itertools
import json

import pytest

from openvirl.agents.route_optimizer import (
    RouteOptimizer,
    RouteOptimizerConfig,
    path_length,
    split_sentence,
)
from openvirl.world import PlaceNotFoundError
from world_fixtures import load_city


class Scripted:
    name = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.calls = 0

    def act(self, requests):
        out = [
            self.replies[min(self.calls + i, len(self.replies) - 1)] for i in range(len(requests))
        ]
        self.calls += len(requests)
        return out


@pytest.fixture(scope="module")
def manhattan():
    return load_city("manhattan")


def test_demo_order_is_optimal_and_no_longer_than_given(manhattan, tmp_path):
    result = RouteOptimizer(RouteOptimizerConfig(), city=manhattan).run(out_dir=tmp_path)
    d = result.data
    assert d["optimized_m"] <= d["given_m"]
    assert d["saving_m"] == pytest.approx(d["given_m"] - d["optimized_m"], abs=0.2)
    assert d["method"] == "exact"
    # Brute force over every order of the 5 stops (start fixed, round trip) agrees.
    opt = RouteOptimizer(RouteOptimizerConfig(), city=manhattan)
    tour = manhattan.tour(
        opt._places(d["stops"]), start=manhattan.geocode(d["start"]), round_trip=True
    )
    m = tour.distance_matrix_m
    brute = min(
        path_length(m, [0, *p], round_trip=True) for p in itertools.permutations(range(1, len(m)))
    )
    assert d["optimized_m"] == pytest.approx(brute, abs=0.2)
    assert sorted(d["optimized_order"][1:]) == sorted(d["given_order"][1:])
    # The run folder the viewer opens.
    assert result.map_png is not None and result.map_png.stat().st_size > 10_000
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == "agent" and config["agent"] == "route_optimizer"
    assert json.loads((tmp_path / "metrics.json").read_text())["saving_m"] >= 0
    assert (tmp_path / "report.md").read_text().count("→") >= 5


def test_without_start_the_first_place_starts_an_open_walk(manhattan):
    config = RouteOptimizerConfig(
        start=None,
        round_trip=False,
        stops=["Macy's", "Grand Central Terminal", "Madison Square Garden"],
    )
    d = RouteOptimizer(config, city=manhattan).run().data
    assert d["optimized_order"][0] == "Macy's"
    assert d["optimized_m"] <= d["given_m"]


def test_sentence_splitter_and_the_policy_path(manhattan):
    sentence = "I want to visit Bryant Park, Macy's and then Grand Central Terminal."
    assert split_sentence(sentence) == ["Bryant Park", "Macy's", "Grand Central Terminal"]
    good = Scripted('{"places": ["Bryant Park", "Macy\'s"]}')
    d = RouteOptimizer(RouteOptimizerConfig(sentence=sentence), good, city=manhattan).run().data
    assert d["stops"] == ["Bryant Park", "Macy's"]
    assert d["llm"][0]["ok"]
    bad = Scripted("Sure, I'd visit all of them!")
    opt = RouteOptimizer(RouteOptimizerConfig(sentence=sentence), bad, city=manhattan)
    d = opt.run().data
    assert d["stops"] == ["Bryant Park", "Macy's", "Grand Central Terminal"]  # baseline
    assert opt.log.n_fallbacks == 1


def test_unknown_place_names_close_matches(manhattan):
    config = RouteOptimizerConfig(stops=["Bryant Park", "Hogwarts Castle", "Macy's"])
    with pytest.raises(PlaceNotFoundError) as err:
        RouteOptimizer(config, city=manhattan).run()
    assert "Hogwarts Castle" in str(err.value)
    assert "Did you mean" in str(err.value)
