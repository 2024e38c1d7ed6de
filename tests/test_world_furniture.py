"""Street furniture: read from OSM, drawn where it is mapped, listed by `visible()` exactly when
drawn, hidden by buildings, and counted by the urban robots' oracle detector from the views."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from openvirl.world import furniture as fu
from openvirl.world import streetview as sv
from world_fixtures import load_city, private_cache, write_osm

LAT0, LON0 = 48.0, 11.0
CAMERA = (LAT0, 11.002)


@pytest.fixture(scope="module")
def town(tmp_path_factory):
    """One east-west street; north of it a building with a hydrant behind it, a hydrant in
    front of it, a tree row of four trees along the street, and a bench."""
    from openvirl.world import City

    tmp = tmp_path_factory.mktemp("furniture-town")
    nodes = [(1 + i, LAT0, LON0 + i * 0.001, {}) for i in range(5)]
    ways = [(1, [1, 2, 3, 4, 5], {"highway": "residential", "name": "Main Street"})]
    box = [(48.0001, 11.0019), (48.0001, 11.0021), (48.0003, 11.0021), (48.0003, 11.0019)]
    for k, (lat, lon) in enumerate(box):
        nodes.append((100 + k, lat, lon, {}))
    ways.append((2, [100, 101, 102, 103, 100], {"building": "yes", "height": "20"}))
    nodes.append((200, 48.0004, 11.002, {"emergency": "fire_hydrant"}))  # behind the building
    nodes.append((201, 48.00008, 11.00205, {"emergency": "fire_hydrant"}))  # in front of it
    nodes.append((202, 47.99990, 11.0024, {"amenity": "bench"}))
    nodes += [(300, 47.99985, 11.0015, {}), (301, 47.99985, 11.0018, {})]
    ways.append((3, [300, 301], {"natural": "tree_row"}))  # 22.4 m: trees at 0, 8, 16 m
    path = write_osm(tmp / "town.osm", nodes=nodes, ways=ways)
    with private_cache(tmp):
        return City.load(path, progress=False)


def test_objects_are_read_with_tree_rows_and_cached_as_json(town, monkeypatch):
    objects = fu.street_objects(town)
    kinds = sorted(o.kind for o in objects)
    assert kinds == ["bench", "fire_hydrant", "fire_hydrant", "tree", "tree", "tree"]
    trees = sorted((o for o in objects if o.kind == "tree"), key=lambda o: o.lon)
    gaps = [np.hypot(b.x - a.x, b.y - a.y) for a, b in itertools.pairwise(trees)]
    assert np.allclose(gaps, fu.TREE_ROW_SPACING_M, atol=0.05)
    cache = fu._cache_file(town)
    assert json.loads(cache.read_text())["version"] == fu.FURNITURE_VERSION
    # A second city object reads the JSON cache, not the OSM files.
    fu._OBJECTS.clear()
    monkeypatch.setattr(fu, "_read_osm", lambda files: pytest.fail("re-read the OSM files"))
    assert [o.id for o in fu.street_objects(town)] == [o.id for o in objects]


def test_a_corrupt_cache_is_rebuilt(town):
    cache = fu._cache_file(town)
    cache.write_text("{not json")
    fu._OBJECTS.clear()
    assert len(fu.street_objects(town)) == 6


def test_hydrant_is_drawn_where_mapped_and_listed(town):
    seen = sv.visible(town, *CAMERA, 0.0, size=(256, 256), furniture=True)
    objects = [v for v in seen if v.kind == "street_object"]
    assert [(v.id, v.category) for v in objects] == [("node/201", "fire_hydrant")]
    hydrant = objects[0]
    assert hydrant.distance_m == pytest.approx(9.6, abs=0.3)
    assert 15 < hydrant.bearing_deg < 30 and hydrant.side == "right front"
    assert not hydrant.occluded and hydrant.name == "fire hydrant"
    # The pixels under its box are hydrant red in the view, and street without furniture.
    scene = sv.scene_for(town)
    cam = sv.make_camera(town, *CAMERA, 0.0, size=(256, 256))
    with_f = np.asarray(sv._render(scene, cam, town)[0], float)
    without = np.asarray(sv._render(scene, cam, None)[0], float)
    cols = slice(hydrant.x_min_px, hydrant.x_max_px)
    diff = np.abs(with_f[:, cols] - without[:, cols]).sum(axis=2)
    rows = np.nonzero(diff.max(axis=1) > 30)[0]
    assert len(rows) >= 3
    red = with_f[rows[len(rows) // 2], cols]
    assert (red[:, 0] > red[:, 1] + 60).any()


def test_objects_behind_buildings_are_not_seen(town):
    seen = sv.visible(town, *CAMERA, 0.0, size=(256, 256), furniture=True, furniture_distance_m=60)
    assert "node/200" not in {v.id for v in seen if not v.occluded}
    # Looking south-west at the tree row and east at the bench.
    west = sv.visible(
        town, *CAMERA, 235.0, size=(256, 256), furniture=True, furniture_distance_m=60
    )
    assert sum(v.category == "tree" for v in west) == 3
    east = sv.visible(
        town, *CAMERA, 100.0, size=(256, 256), furniture=True, furniture_distance_m=90
    )
    assert [v.category for v in east if v.kind == "street_object"] == ["bench"]
    assert sv.visible(town, *CAMERA, 100.0, size=(256, 256)) == [
        v for v in east if v.kind != "street_object"
    ]  # off by default: sign lists are unchanged


def test_visible_lists_what_is_drawn_in_a_real_city():
    city = load_city("helsinki")
    f = fu.furniture_for(city)
    busiest = max(f.objects, key=lambda o: (len(f.near(o.x, o.y, 25.0)), o.id))
    pano = city.panoramas.nearest_pano(busiest.lat, busiest.lon, radius_m=80)
    scene = sv.scene_for(city)
    listed = 0
    for heading in (0.0, 90.0, 180.0, 270.0):
        cam = sv.make_camera(city, pano.lat, pano.lon, heading, size=(320, 240))
        with_f = np.asarray(sv._render(scene, cam, city)[0], float)
        without = np.asarray(sv._render(scene, cam, None)[0], float)
        for v in sv.visible(city, pano.lat, pano.lon, heading, size=(320, 240), furniture=True):
            if v.kind != "street_object" or v.occluded:
                continue
            listed += 1
            box = np.abs(with_f[:, v.x_min_px : v.x_max_px] - without[:, v.x_min_px : v.x_max_px])
            assert box.max() > 20, v  # every listed object is drawn in its box
    assert listed >= 3


def test_urban_oracle_detector_reads_the_rendered_views(town):
    from openvirl.agents.urban import _Survey

    survey = _Survey(
        town,
        ["fire_hydrant", "bench"],
        None,
        perception="policy",
        sight_radius_m=60.0,
        dedup_radius_m=8.0,
        fov=90.0,
        images=True,
        image_size=256,
        agent="test",
    )
    answer = survey._in_view(*CAMERA, 0.0)
    assert [a["kind"] for a in answer] == ["fire_hydrant"]  # the hidden one is not "seen"
    assert answer[0]["distance_m"] == pytest.approx(9.6, abs=0.3)
