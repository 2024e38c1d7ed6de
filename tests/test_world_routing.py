"""Walking routes, steps, landmark milestones and waypoint tours."""

from __future__ import annotations

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from openvirl.world import City, NoRouteError, OutsideMapError, WorldError
from openvirl.world.geometry import (
    COMPASS_WORDS,
    EGOCENTRIC_WORDS,
    RELATIVE_TURN_WORDS,
    decode_polyline,
    haversine_m,
    polyline_length_m,
)
from openvirl.world.routing import NO_LANDMARK, solve_tour
from world_fixtures import grid_town, load_city


@pytest.fixture(scope="module")
def manhattan() -> City:
    return load_city("manhattan")


def _check_route(route, origin, destination):
    straight = haversine_m(origin.lat, origin.lon, destination.lat, destination.lon)
    assert straight <= route.length_m <= 2 * straight + 60
    assert route.length_m == pytest.approx(sum(s.distance_m for s in route.steps))
    assert route.length_m == pytest.approx(polyline_length_m(route.polyline), rel=0.02, abs=2)
    assert route.duration_s == pytest.approx(route.length_m / 1.4)
    assert route.polyline[0] == pytest.approx((origin.lat, origin.lon))
    assert route.polyline[-1] == pytest.approx((destination.lat, destination.lon))
    for k, step in enumerate(route.steps):
        assert step.compass in COMPASS_WORDS
        assert 0 <= step.heading < 360
        assert step.turn in (*RELATIVE_TURN_WORDS, "depart")
        assert (step.turn == "depart") == (k == 0)
        assert step.instruction.endswith(".")
        for lm in step.landmarks:
            assert lm.relation in EGOCENTRIC_WORDS
    last = route.steps[-1]
    assert last.landmarks[0].is_destination
    assert last.milestone == (
        f"The destination {destination.name} is on your {route.destination_relation}"
    )
    assert route.destination_relation in EGOCENTRIC_WORDS


def test_route_between_two_manhattan_pois(manhattan):
    esb = manhattan.search("Empire State Building")[0]
    gct = manhattan.search("Grand Central Terminal")[0]
    route = manhattan.route(esb, gct)
    _check_route(route, esb, gct)
    assert 2 <= len(route.steps) <= 8
    streets = {s.street for s in route.steps}
    assert "5th Avenue" in streets or "Madison Avenue" in streets or "Park Avenue" in streets
    # Milestones: non-final steps carry nearby named POIs as landmarks.
    with_landmarks = [s for s in route.steps[:-1] if s.landmarks]
    assert with_landmarks
    for step in with_landmarks:
        lm = step.landmarks[0]
        assert lm.distance_m <= 35 and lm.place is not None
        assert step.milestone == f"{lm.name} is on your {lm.relation}"
        assert lm.name in step.instruction
    assert all(s.milestone == NO_LANDMARK for s in route.steps[:-1] if not s.landmarks)
    # Texts and coordinates geocode too; "W 34th St & 7th Ave" -> route ends at the corner.
    text_route = manhattan.route("Empire State Building", "W 34th St & 7th Ave")
    assert text_route.destination.kind == "intersection"
    assert 450 < text_route.length_m < 900
    coords = manhattan.route((40.7484, -73.9857), (40.7527, -73.9772))
    assert 800 < coords.length_m < 1500


def test_random_manhattan_routes_are_plausible(manhattan):
    rng = random.Random(7)
    for _ in range(8):
        a, b = rng.sample(manhattan.pois, 2)
        if haversine_m(a.lat, a.lon, b.lat, b.lon) < 50:
            continue
        _check_route(manhattan.route(a, b), a, b)


def test_initial_heading_makes_the_first_turn_relative(manhattan):
    route = manhattan.route("Madison Square Garden", "Macy's", initial_heading=0.0)
    assert route.steps[0].turn in RELATIVE_TURN_WORDS
    assert route.steps[0].maneuver != "depart"


def test_virl_route_record(manhattan):
    route = manhattan.route("Empire State Building", "Macy's")
    record = route.to_virl_dict()
    json.dumps(record)  # JSON-able
    results = record["route_results"]
    assert results["geocode_list"] == route.turn_points
    assert len(results["polyline"]) == len(route.steps) == len(results["instructions"])
    first_leg = decode_polyline(results["polyline"][0])
    assert first_leg[0] == pytest.approx(route.steps[0].polyline[0], abs=1e-5)
    assert results["distance"] == pytest.approx(route.length_m, abs=0.1)
    assert len(results["landmark_list"]) == len(route.steps) - 1
    assert record["start_place"]["relocated_geocode"] == route.origin_snap
    assert record["init_heading"] == 0
    # The milestone template parses the way the navigation env reads it.
    blocks = record["milestone_info"].split("}\n{")
    assert len(blocks) == len(route.steps)
    last = dict(
        line.strip().rstrip(",").replace('"', "").split(": ", 1)
        for line in blocks[-1].strip("{}\n").splitlines()
    )
    assert last["landmarks"].startswith("The destination Macy")
    heading, word = last["to_next_intersection_heading"].split(" ")
    assert word.strip("()") in COMPASS_WORDS and 0 <= int(heading) < 360
    assert json.loads(json.dumps(route.to_dict()))["steps"][0]["street"] == route.steps[0].street


def test_route_errors(tmp_path, monkeypatch):
    town = City.load(grid_town(tmp_path / "town.osm", island=True), cache=False)
    cafe = town.search("Test Cafe")[0]
    with pytest.raises(NoRouteError, match="No walking connection"):
        town.route(cafe, (48.0040, 11.0023))
    with pytest.raises(OutsideMapError):
        town.route(cafe, (48.5, 11.5))
    import openvirl.world.routing as routing

    monkeypatch.setattr(routing, "MAX_SNAP_M", 100.0)
    with pytest.raises(OutsideMapError, match="more than 100 m"):
        town.route(cafe, (48.0028, 11.0060))  # inside the map, 180 m from every street
    monkeypatch.undo()
    with pytest.raises(WorldError, match="speed_mps"):
        town.route(cafe, cafe, speed_mps=0)
    same = town.route(cafe, cafe)
    assert same.length_m == pytest.approx(2 * same.origin.distance_m(*same.origin_snap), rel=0.01)
    # Along one edge: straight route, one step, on the right street.
    r = town.route((48.0, 11.0003), (48.0, 11.0025))
    assert len(r.steps) == 1 and r.steps[0].street == "Row 1 Street"
    assert r.steps[0].compass == "east" and r.length_m == pytest.approx(164, rel=0.03)
    # Round a corner: a left turn onto Column 3 Avenue, the destination on the right.
    turn = town.route((48.0, 11.0001), (48.0015, 11.00268))
    assert [s.street for s in turn.steps] == ["Row 1 Street", "Column 3 Avenue"]
    assert [s.turn for s in turn.steps] == ["depart", "left"]
    assert turn.steps[1].compass == "north"


def _brute_force(dist, start=None, end=None, round_trip=False):
    n = len(dist)
    best = None
    for perm in itertools.permutations(range(n)):
        if start is not None and perm[0] != start:
            continue
        if end is not None and perm[-1] != end:
            continue
        cost = sum(dist[a][b] for a, b in itertools.pairwise(perm))
        if round_trip:
            cost += dist[perm[-1]][perm[0]]
        best = cost if best is None else min(best, cost)
    return best


@settings(max_examples=40, deadline=None)
@given(
    points=st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 1000)), min_size=1, max_size=7),
    mode=st.sampled_from(["open", "start", "start_end", "round_trip"]),
)
def test_tour_solver_is_optimal_for_small_n(points, mode):
    dist = [[((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 for b in points] for a in points]
    n = len(points)
    kwargs = {
        "open": {},
        "start": {"start": 0},
        "start_end": {"start": 0, "end": n - 1} if n > 1 else {"start": 0},
        "round_trip": {"round_trip": True},
    }[mode]
    order, cost, method = solve_tour(dist, **kwargs)
    assert sorted(order) == list(range(n)) and method == "exact"
    assert cost == pytest.approx(_brute_force(dist, **kwargs), abs=1e-6)


def test_tour_solver_uses_two_opt_beyond_ten_stops():
    rng = random.Random(3)
    pts = [(rng.uniform(0, 1000), rng.uniform(0, 1000)) for _ in range(14)]
    dist = [[((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 for b in pts] for a in pts]
    order, cost, method = solve_tour(dist, start=0, round_trip=True)
    assert method == "2-opt" and order[0] == 0 and sorted(order) == list(range(14))
    identity = sum(dist[a][b] for a, b in itertools.pairwise([*range(14), 0]))
    assert cost < identity
    with pytest.raises(WorldError):
        solve_tour(dist, end=3, round_trip=True)


def test_city_tour_matches_brute_force():
    city = load_city("monaco")
    stops = [p for p in city.pois if p.category in ("restaurant", "cafe", "bank", "pharmacy")]
    stops = sorted(stops, key=lambda p: p.id)[:5]
    tour = city.tour(stops[1:], start=stops[0])
    assert tour.method == "exact" and sorted(tour.order) == [0, 1, 2, 3]
    dist = tour.distance_matrix_m
    assert sum(leg.length_m for leg in tour.legs) == pytest.approx(tour.length_m)
    best = _brute_force(dist, start=0)
    chosen = sum(dist[a][b] for a, b in itertools.pairwise([0, *[i + 1 for i in tour.order]]))
    assert chosen == pytest.approx(best)
    assert [leg.origin.id for leg in tour.legs] == [stops[0].id] + [p.id for p in tour.stops[:-1]]
    loop = city.tour(stops, round_trip=True)
    assert loop.legs[-1].destination.id == loop.legs[0].origin.id
    with pytest.raises(WorldError):
        city.tour([])
