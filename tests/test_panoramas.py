"""Virtual panoramas along the walk graph: ids, spacing, headings, moves, V-IRL's mapping."""

from __future__ import annotations

import math

import numpy as np
import pytest

from openvirl.world.errors import WorldError
from openvirl.world.geometry import destination_point, haversine_m
from openvirl.world.panoramas import PANO_SPACING_M, Panoramas, UnknownPanoramaError
from world_fixtures import load_city


@pytest.fixture(scope="module")
def city():
    return load_city("helsinki")


@pytest.fixture(scope="module")
def panos(city):
    return city.panoramas


def _sample(panos, n=300):
    rng = np.random.default_rng(0)
    return [panos.ids[int(i)] for i in rng.choice(len(panos), size=n, replace=False)]


def test_ids_cover_nodes_and_edge_points(city, panos):
    assert city.panoramas is panos  # cached on the City
    nodes = city.graph.number_of_nodes()
    assert all(str(n) in panos for n in city.graph.nodes)
    inside = sum(
        max(1, round(d["geometry"].length / PANO_SPACING_M)) - 1
        for _, _, d in city.graph.edges(data=True)
    )
    assert len(panos) == nodes + inside
    for pid in _sample(panos):
        parts = pid.split("-")
        assert len(parts) in (1, 3)
        if len(parts) == 3:
            u, v, k = map(int, parts)
            assert u < v and k >= 1 and city.graph.has_edge(u, v)


def test_neighbours_are_about_ten_metres_apart_and_symmetric(panos):
    for pid in _sample(panos):
        pano = panos.get(pid)
        assert len(pano.headings_deg) == len(pano.neighbours) == pano.degree >= 1
        for nb, heading in zip(pano.neighbours, pano.headings_deg, strict=True):
            other = panos.get(nb)
            assert pid in other.neighbours
            d = haversine_m(pano.lat, pano.lon, other.lat, other.lon)
            assert d <= 1.5 * PANO_SPACING_M + 0.5
            assert 0.0 <= heading < 360.0
        if "-" in pid:
            assert pano.degree == 2 and not pano.is_intersection


def test_intersections_have_one_heading_per_way(city, panos):
    node = next(n for n in sorted(city.intersections) if city.graph.degree(n) >= 4)
    pano = panos.get(str(node))
    assert pano.degree == city.graph.degree(node) and pano.is_intersection


def test_move_follows_the_closest_heading_and_back(panos):
    moved = 0
    for pid in _sample(panos, 200):
        pano = panos.get(pid)
        if pano.degree != 2:
            continue
        h = pano.headings_deg[1]
        nxt = panos.move(pid, h + 10.0)  # roughly that way is enough
        assert nxt is not None and nxt.id == pano.neighbours[1]
        back = panos.move(nxt.id, (h + 180.0) % 360.0)
        assert back is not None and back.id == pid
        moved += 1
    assert moved > 50
    pano = panos.get(_sample(panos, 1)[0])
    h = pano.headings_deg[0]
    assert panos.move(pano.id, h + 120, max_turn_deg=30) in (None, *map(panos.get, pano.neighbours))


def test_nearest_pano_and_virl_relocation(panos):
    pano = panos.get(_sample(panos, 1)[0])
    assert panos.nearest_pano(pano.lat, pano.lon).id == pano.id
    # V-IRL semantics: an exact key maps to itself; a nearby point to the nearest panorama.
    assert panos.gps_to_pano[(pano.lat, pano.lon)] == pano.id
    assert panos.relocate(pano.lat, pano.lon) == ((pano.lat, pano.lon), pano.id)
    lat, lon = destination_point(pano.lat, pano.lon, 45.0, 2.0)
    (rlat, rlon), rid = panos.relocate(lat, lon)
    assert haversine_m(lat, lon, rlat, rlon) <= 2.0 + 1e-6
    assert rid in panos and rid == panos.nearest_pano(lat, lon).id
    # Far from every street: nothing.
    far = (60.2, 24.6)
    assert panos.nearest_pano(*far) is None
    assert panos.relocate(*far) == (None, None)


def test_bad_ids_and_arguments(city, panos):
    with pytest.raises(UnknownPanoramaError, match="nearest_pano"):
        panos.get("1-2-3")
    assert isinstance(UnknownPanoramaError("x"), ValueError)
    with pytest.raises(WorldError):
        panos.nearest_pano(math.nan, 24.9)
    with pytest.raises(WorldError):
        Panoramas(city, spacing_m=0)
    coarse = Panoramas(city, spacing_m=40.0)
    assert len(coarse) < len(panos)
