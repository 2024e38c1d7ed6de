"""Diego, the concierge: the time budget, opening hours and meals chosen by Aria."""

from __future__ import annotations

import pytest

from openvirl.agents.concierge import Concierge, ConciergeConfig, open_during, to_minutes
from openvirl.world.places import parse_opening_hours
from world_fixtures import load_city


class Scripted:
    name = "scripted"

    def __init__(self, *replies: str) -> None:
        self.replies = list(replies)
        self.n = 0

    def act(self, requests):
        out = []
        for _ in requests:
            out.append(self.replies[self.n % len(self.replies)])
            self.n += 1
        return out


@pytest.fixture(scope="module")
def manhattan():
    return load_city("manhattan")


def test_open_during_common_forms():
    week = parse_opening_hours("Mo-Fr 08:00-18:00; Sa 10:00-14:00")
    assert open_during(week, "Mo", 8 * 60, 18 * 60) is True
    assert open_during(week, "Sa", 13 * 60, 15 * 60) is False
    assert open_during(week, "Su", 600, 660) is False
    assert open_during(parse_opening_hours("24/7"), "Su", 0, 1440) is True
    assert open_during(parse_opening_hours("18:00-02:00"), "Tu", 20 * 60, 23 * 60) is True
    assert open_during(None, "Mo", 0, 10) is None


def _check_plan(city, data, config):
    end = to_minutes(config.end_time)
    start = to_minutes(config.start_time)
    previous = start
    for item in data["plan"]:
        s, e = to_minutes(item["start"]), to_minutes(item["end"])
        assert previous <= s <= e <= end, item
        previous = e
        if "place" in item and item.get("hours"):
            hours = parse_opening_hours(item["hours"])
            if hours["weekly"] is not None:
                assert open_during(hours, config.day, s, e), item


def test_baseline_plan_respects_budget_hours_and_has_lunch(manhattan, tmp_path):
    config = ConciergeConfig(start="Grand Central Terminal", day="Mo", end_time="16:00")
    result = Concierge(config, city=manhattan).run(out_dir=tmp_path)
    data = result.data
    _check_plan(manhattan, data, config)
    assert data["visits"] >= 2 and data["meals"] == ["lunch"]
    lunch = next(i for i in data["plan"] if i["type"] == "eat")
    assert "12:00" <= lunch["start"] <= "14:00"
    assert data["plan"][-1]["type"] == "end"
    ids = [i["place"]["id"] for i in data["plan"] if "place" in i]
    assert len(ids) == len(set(ids))  # nothing twice
    # Monday: the Morgan Library & Museum (Mo off) must not be visited.
    assert all("Morgan" not in i["place"]["name"] for i in data["plan"] if "place" in i)
    assert result.map_png is not None and result.map_png.is_file()


def test_policy_choices_and_fallbacks(manhattan):
    config = ConciergeConfig(
        start="Bryant Park", day="Sa", start_time="14:00", end_time="17:00", lunch=None, dinner=None
    )
    # First choice: option 2; then a malformed reply (baseline); then end the day.
    policy = Scripted('{"choice": 2, "reason": "art"}', "hmm", '{"choice": 0}')
    diego = Concierge(config, policy, city=manhattan)
    data = diego.run().data
    _check_plan(manhattan, data, config)
    visits = [i for i in data["plan"] if i["type"] == "visit"]
    assert len(visits) == 2
    assert visits[0]["source"] == "llm" and visits[1]["source"] == "baseline"
    assert diego.log.n_calls == 3 and diego.log.n_fallbacks == 1


def test_bad_options_are_named():
    with pytest.raises(ValueError, match="end_time"):
        ConciergeConfig(start_time="18:00", end_time="09:00").validate()
    with pytest.raises(ValueError, match="day"):
        ConciergeConfig(day="Monday").validate()
