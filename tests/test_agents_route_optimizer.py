"""Peng, the route optimizer, on the bundled Manhattan extract."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openvirl.agents.route_optimizer import (
    RouteOptimizer,
    RouteOptimizerConfig,
    parse_waypoint_sentence,
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


# V-IRL's Peng config (tools/cfgs/peng/peng.yaml), WAY_POINTS_LANGUAGE, with its line break.
PENG_SENTENCE = (
    "I need to go to five places to submit my documents: NYU Card Center, NYU \n"
    "      Lipton Hall, NYU Center for Data Science, Elmer Holmes Bobst Library and John A. "
    "Paulson Center."
)


def test_virl_waypoint_sentences_become_place_queries():
    got = parse_waypoint_sentence(PENG_SENTENCE)
    assert got is not None and got.count == 5 and got.purpose == "to submit my documents"
    assert got.places == [
        "NYU Card Center",
        "NYU Lipton Hall",
        "NYU Center for Data Science",
        "Elmer Holmes Bobst Library",
        "John A. Paulson Center",
    ]
    assert split_sentence(PENG_SENTENCE) == got.places
    intention = (
        "Peng needs to visit five locations around the city: his University Card Center, "
        "Residence Hall, Research Center, Library, and Student Center"
    )
    assert split_sentence(intention) == [
        "University Card Center",
        "Residence Hall",
        "Research Center",
        "Library",
        "Student Center",
    ]
    # The stated count keeps a name with "and" in it whole.
    assert split_sentence("3 places to shop: Macy's, Barnes and Noble, and Nordstrom") == [
        "Macy's",
        "Barnes and Noble",
        "Nordstrom",
    ]
    assert parse_waypoint_sentence("Take me to Bryant Park and Macy's") is None


def test_a_virl_sentence_plans_a_walk(manhattan):
    sentence = (
        "I need to go to three places to submit my documents: Grand Central Terminal, "
        "Bryant Park and Macy's."
    )
    config = RouteOptimizerConfig(
        city="manhattan", start="Empire State Building", sentence=sentence
    )
    d = RouteOptimizer(config, city=manhattan).run().data
    assert d["stops"] == ["Grand Central Terminal", "Bryant Park", "Macy's"]
    assert len(d["optimized_order"]) == 4 and d["optimized_m"] <= d["given_m"]


_WORD = st.text(alphabet="BCDFGHJKLMNPQRSTVWXZbcdfghjklmnpqrstvwxz", min_size=2, max_size=9)
_NAME = st.lists(_WORD, min_size=1, max_size=4).map(lambda ws: " ".join(w.title() for w in ws))
_NUMBERS = ["one", "two", "three", "four", "five", "six", "seven", "eight"]


@settings(max_examples=80, deadline=None)
@given(
    names=st.lists(_NAME, min_size=1, max_size=8, unique=True),
    words=st.booleans(),
    oxford=st.booleans(),
    lead=st.sampled_from(["I need to go to", "Peng must visit", "Please plan", ""]),
    noun=st.sampled_from(["places", "locations", "stops"]),
)
def test_waypoint_sentences_round_trip(names, words, oxford, lead, noun):
    n = len(names)
    count = _NUMBERS[n - 1] if words else str(n)
    if n == 1:
        listing = names[0]
    else:
        listing = ", ".join(names[:-1]) + ("," if oxford and n > 2 else "") + " and " + names[-1]
    sentence = f"{lead} {count} {noun} to run errands: {listing}."
    got = parse_waypoint_sentence(sentence)
    assert got is not None and got.count == n and got.places == names
