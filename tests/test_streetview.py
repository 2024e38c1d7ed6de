"""Rendered street views: pictures, bad input, determinism, the grid, bearings, visible()."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from openvirl.world import streetview as sv
from openvirl.world.errors import OutsideMapError, WorldError
from openvirl.world.geometry import egocentric_relation
from openvirl.world.places import Place
from openvirl.world.scene import scene_for, sign_label
from world_fixtures import load_city

# 5th Avenue at East 42nd Street, looking up the avenue (Manhattan's grid runs at 29°).
FIFTH_AVE = (40.7534805, -73.9808792, 29.0)
# Helsinki, Aleksanterinkatu at Mikonkatu, looking east along the street.
ALEKSI = (60.168897, 24.9455496, 80.0)


@pytest.fixture(scope="module")
def manhattan():
    return load_city("manhattan")


@pytest.fixture(scope="module")
def helsinki():
    return load_city("helsinki")


def test_a_view_shows_sky_facades_and_street(manhattan):
    lat, lon, heading = FIFTH_AVE
    image = sv.render_view(manhattan, lat, lon, heading, size=(256, 256))
    a = np.asarray(image, dtype=float)
    assert image.size == (256, 256) and image.mode == "RGB"
    top, bottom = a[:8, 100:156].reshape(-1, 3), a[-8:].reshape(-1, 3)
    assert top[:, 2].mean() > top[:, 0].mean() + 30  # blue sky up the avenue
    assert abs(bottom[:, 0].mean() - bottom[:, 2].mean()) < 20  # grey street below
    assert a[:, :60].std() > 20  # facades with windows at the side
    objects = sv.visible(manhattan, lat, lon, heading, size=(256, 256))
    assert {o.kind for o in objects} == {"poi", "street_sign"}
    assert {"5th Avenue", "East 42nd Street"} <= {o.name for o in objects}


def test_same_inputs_give_the_same_pixels(manhattan):
    lat, lon, heading = FIFTH_AVE
    first = sv.render_view(manhattan, lat, lon, heading, size=(160, 120))
    scene = scene_for(manhattan)
    scene.clear_caches()
    second = sv.render_view(manhattan, lat, lon, heading, size=(160, 120))
    assert first.tobytes() == second.tobytes()
    assert sv.observe(manhattan, lat, lon, heading, size=(160, 120))[0].tobytes() == (
        first.tobytes()
    )


def test_headings_wrap_into_0_360(manhattan):
    lat, lon, _ = FIFTH_AVE
    ref = sv.render_view(manhattan, lat, lon, 30.0, size=(64, 64)).tobytes()
    assert sv.render_view(manhattan, lat, lon, 390.0, size=(64, 64)).tobytes() == ref
    assert sv.render_view(manhattan, lat, lon, -330.0, size=(64, 64)).tobytes() == ref
    assert sv.make_camera(manhattan, lat, lon, -90).heading_deg == 270.0


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"lat": 0.0, "lon": 0.0}, OutsideMapError, "outside the map"),
        ({"fov": 5.0}, sv.InvalidViewError, "`fov`"),
        ({"fov": 130.0}, sv.InvalidViewError, "`fov`"),
        ({"pitch": 60.0}, sv.InvalidViewError, "`pitch`"),
        ({"heading": math.nan}, sv.InvalidViewError, "`heading`"),
        ({"size": (4096, 512)}, sv.InvalidViewError, "2048"),
        ({"size": (8, 8)}, sv.InvalidViewError, "`size`"),
        ({"size": "big"}, sv.InvalidViewError, "`size`"),
    ],
)
def test_bad_input_is_a_clear_error(manhattan, kwargs, error, words):
    args = {"lat": FIFTH_AVE[0], "lon": FIFTH_AVE[1], "heading": 0.0, **kwargs}
    lat, lon, heading = args.pop("lat"), args.pop("lon"), args.pop("heading")
    with pytest.raises(error, match=words) as info:
        sv.render_view(manhattan, lat, lon, heading, **args)
    assert isinstance(info.value, ValueError) and isinstance(info.value, WorldError)
    with pytest.raises(error):
        sv.visible(manhattan, lat, lon, heading, **args)


def test_pitch_moves_the_horizon(manhattan):
    lat, lon, heading = FIFTH_AVE

    def horizon_row(pitch: float) -> int:
        a = np.asarray(sv.render_view(manhattan, lat, lon, heading, pitch=pitch, size=128))
        column = a[:, 60:68].astype(float).mean(axis=1)
        bluish = column[:, 2] - column[:, 0] > 25
        return int(np.nonzero(bluish)[0].max())

    assert horizon_row(20.0) > horizon_row(0.0) + 10 > horizon_row(-20.0) + 20


def test_the_grid_is_front_right_back_left(manhattan):
    lat, lon, heading = FIFTH_AVE
    w, h = 96, 80
    grid = sv.view_grid(manhattan, lat, lon, heading, size=(w, h), labels=False)
    sep = sv.GRID_SEPARATOR_PX
    assert grid.size == (2 * w + sep, 2 * h + sep)
    a = np.asarray(grid)
    for k, (_, offset) in enumerate(sv.GRID_LAYOUT):
        x, y = (k % 2) * (w + sep), (k // 2) * (h + sep)
        view = sv.render_view(manhattan, lat, lon, heading + offset, size=(w, h))
        assert np.array_equal(a[y : y + h, x : x + w], np.asarray(view))
    assert a[:, w : w + sep].max() == 0 and a[h : h + sep].max() == 0
    assert [name for name, _ in sv.GRID_LAYOUT] == ["front", "right", "back", "left"]
    assert [o for _, o in sv.GRID_LAYOUT] == [0.0, 90.0, 180.0, 270.0]
    labelled = sv.view_grid(manhattan, lat, lon, heading, size=(w, h))
    assert labelled.size == grid.size and labelled.tobytes() != grid.tobytes()


def test_box_to_bearing_is_virls_linear_rule():
    assert sv.box_to_bearing(0, 512, 100, fov=90, width_px=512) == (55.0, 145.0)
    assert sv.box_to_bearing(128, 256, 0, fov=90, width_px=512) == (337.5, 0.0)
    assert sv.bearing_to_x(337.5, 0, fov=90, width_px=512) == 128.0
    assert sv.bearing_to_x(60, 0, fov=90) is None
    for x in (0.0, 100.0, 256.0, 400.0, 512.0):
        for model in ("linear", "pinhole"):
            b, _ = sv.box_to_bearing(x, x, 10, fov=90, width_px=512, model=model)
            assert sv.bearing_to_x(b, 10, fov=90, width_px=512, model=model) == pytest.approx(x)
    # The pinhole rule is the projection the renderer uses.
    cam = sv.Camera(0.0, 0.0, 10.0, 90.0, 0.0, 512, 512)
    b, _ = sv.box_to_bearing(100, 100, 10, fov=90, width_px=512, model="pinhole")
    assert float(cam.column_bearing_deg(100)) == pytest.approx(b)
    with pytest.raises(sv.InvalidViewError):
        sv.box_to_bearing(0, 1, 0, model="atan")


def _in_range(b: float, lo: float, hi: float, tol: float = 0.6) -> bool:
    span = (hi - lo) % 360.0
    return (b - lo + tol) % 360.0 <= span + 2 * tol


SAMPLES = [
    ("manhattan", *FIFTH_AVE),
    ("manhattan", 40.7453054, -73.998472, 119.0),  # W 23rd St at 8th Ave
    ("manhattan", 40.7578467, -73.9854508, 209.0),  # Broadway at W 45th St
    ("helsinki", *ALEKSI),
    ("helsinki", 60.1671257, 24.948475, 260.0),  # Esplanadi
]


@pytest.mark.parametrize(("name", "lat", "lon", "heading"), SAMPLES)
def test_unoccluded_signs_are_drawn_inside_their_bearing_range(name, lat, lon, heading):
    """Paint one object's signs magenta, render, and find the magenta pixels."""
    city = load_city(name)
    scene = scene_for(city)
    size = (320, 240)
    objects = sv.visible(city, lat, lon, heading, size=size, max_distance_m=45.0)
    shown = [o for o in objects if not o.occluded]
    assert shown, "no sign in view"
    index = {o.id: i for i, o in enumerate(scene.objects)}
    for o in shown[:6]:
        signs = scene.object_signs[index[o.id]]
        saved = scene.sbg[signs].copy(), scene.sfg[signs].copy()
        scene.sbg[signs] = (255, 0, 255)
        scene.sfg[signs] = (255, 0, 255)
        scene.textures.clear()
        try:
            a = np.asarray(sv.render_view(city, lat, lon, heading, size=size)).astype(int)
        finally:
            scene.sbg[signs], scene.sfg[signs] = saved
            scene.textures.clear()
        magenta = (a[..., 0] > 200) & (a[..., 1] < 60) & (a[..., 2] > 200)
        cols = np.nonzero(magenta.any(axis=0))[0]
        assert len(cols), f"{o.label} is listed as unoccluded but not drawn"
        assert o.x_min_px <= cols.min() and cols.max() < o.x_max_px
        cam = sv.make_camera(city, lat, lon, heading, size=size)
        for c in (cols.min(), cols.max() + 1):
            assert _in_range(
                float(cam.column_bearing_deg(c)), o.bearing_min_deg, o.bearing_max_deg
            ), o
        linear = sv.box_to_bearing(cols.min(), cols.max() + 1, heading, fov=90, width_px=size[0])
        assert all(_in_range(b, o.bearing_min_deg, o.bearing_max_deg, tol=6.0) for b in linear)


def test_visible_fields_agree(helsinki):
    lat, lon, heading = ALEKSI
    objects = sv.visible(helsinki, lat, lon, heading, max_distance_m=80.0)
    assert objects == sorted(objects, key=lambda o: (o.distance_m, o.id))
    assert any(o.kind == "poi" for o in objects)
    for o in objects:
        assert o.distance_m <= 80.0
        assert o.side == egocentric_relation(o.bearing_deg, heading)
        assert _in_range(o.bearing_deg, o.bearing_min_deg, o.bearing_max_deg)
        assert 0.0 <= o.visible_fraction <= 1.0 and o.occluded == (o.visible_fraction < 0.5)
        assert 0 <= o.x_min_px < o.x_max_px <= 512
        assert o.sign in ("fascia", "blade", "panel", "street_blade")
        assert set(o.to_dict()) >= {"id", "name", "bearing_min_deg", "bearing_max_deg", "side"}
    with pytest.raises(sv.InvalidViewError, match="max_distance_m"):
        sv.visible(helsinki, lat, lon, heading, max_distance_m=1e4)


def test_signs_behind_the_camera_are_not_listed(helsinki):
    lat, lon, heading = ALEKSI
    ahead = {o.id for o in sv.visible(helsinki, lat, lon, heading, fov=60)}
    behind = {o.id for o in sv.visible(helsinki, lat, lon, heading + 180, fov=60)}
    assert ahead and behind and not ahead & behind


def test_city_methods_delegate(helsinki):
    lat, lon, heading = ALEKSI
    image = helsinki.street_view(lat, lon, heading, size=(96, 64))
    assert image.tobytes() == sv.render_view(helsinki, lat, lon, heading, size=(96, 64)).tobytes()
    assert helsinki.visible(lat, lon, heading) == sv.visible(helsinki, lat, lon, heading)
    assert helsinki.view_grid(lat, lon, heading, size=40).size == (85, 85)
    assert len(helsinki.panoramas) > helsinki.graph.number_of_nodes()


def test_scene_is_compact_and_complete(manhattan):
    scene = scene_for(manhattan)
    stats = scene.stats()
    assert stats["megabytes"] < 500
    assert stats["facades"] > 10 * stats["buildings"] / 2
    assert stats["signs_fascia"] > 1000 and stats["signs_street_blade"] > 500
    assert stats["unplaced_pois"] < 0.1 * len(manhattan.pois)
    assert scene_for(manhattan) is scene  # cached per City instance


def test_sign_labels_fall_back_to_latin_text():
    place = Place(
        name="渋谷駅",
        lat=0,
        lon=0,
        category="train_station",
        tags={"name": "渋谷駅", "name:en": "Shibuya Station"},
    )
    assert sign_label(place) == "Shibuya Station"
    bare = Place(name="渋谷", lat=0, lon=0, category="cafe", tags={"name": "渋谷"})
    assert sign_label(bare) == "Cafe"
    long = Place(name="A " * 40, lat=0, lon=0, category="cafe")
    assert len(sign_label(long)) <= 48


class _Flat:
    """A view source that paints one colour (a stand-in for the user's own imagery)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def view(self, lat, lon, heading, *, fov, pitch, size):
        self.calls.append((lat, lon, heading, fov, pitch, size))
        return Image.new("RGB", size, (10, 200, 30))


def test_a_view_source_plugs_in(helsinki):
    lat, lon, heading = ALEKSI
    flat = _Flat()
    image = sv.render_view(helsinki, lat, lon, heading + 360, size=(32, 24), source=flat)
    assert image.getpixel((0, 0)) == (10, 200, 30)
    assert flat.calls[-1][2:] == (heading, 90.0, 0.0, (32, 24))
    sv.set_view_source(helsinki, flat)
    try:
        assert helsinki.street_view(lat, lon, heading, size=16).getpixel((5, 5)) == (10, 200, 30)
        assert len(flat.calls) == 2
    finally:
        sv.set_view_source(helsinki, None)
    assert helsinki.street_view(lat, lon, heading, size=16).getpixel((5, 5)) != (10, 200, 30)
    with pytest.raises(sv.InvalidViewError):
        sv.set_view_source(helsinki, object())  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["monaco", "singapore", "tokyo-shibuya"])
def test_every_bundled_city_renders(name):
    city = load_city(name)
    lat, lon = city.center
    pano = city.panoramas.nearest_pano(lat, lon, radius_m=500)
    assert pano is not None
    image = sv.render_view(city, pano.lat, pano.lon, pano.headings_deg[0], size=(64, 48))
    assert np.asarray(image).std() > 5


def test_a_tiny_city_with_one_street_and_no_buildings(tmp_path):
    from openvirl.world import City
    from world_fixtures import private_cache, write_osm

    nodes = [(i + 1, 60.0, 24.0 + i * 0.001, {}) for i in range(3)]
    nodes.append((9, 60.0002, 24.001, {"amenity": "cafe", "name": "Kahvila"}))
    path = write_osm(
        tmp_path / "tiny.osm",
        nodes=nodes,
        ways=[(1, [1, 2, 3], {"highway": "residential", "name": "Katu"})],
    )
    with private_cache(tmp_path):
        city = City.load(path, progress=False)
    image, objects = sv.observe(city, 60.0, 24.0005, 90.0, size=(256, 256))
    a = np.asarray(image, dtype=float)
    assert a[0, :, 2].mean() > a[0, :, 0].mean()  # sky
    assert [o.label for o in objects] == ["Kahvila"]  # its free-standing panel
    assert scene_for(city).stats()["facades"] == 0
    assert len(city.panoramas) > 3


def test_the_view_command(tmp_path):
    from typer.testing import CliRunner

    from openvirl.cli import app
    from world_fixtures import private_cache, session_cache

    runner = CliRunner()
    out = tmp_path / "view.png"
    with private_cache(session_cache()):
        result = runner.invoke(
            app,
            [
                "city",
                "view",
                "--city",
                "helsinki",
                "--at",
                f"{ALEKSI[0]},{ALEKSI[1]}",
                "--heading",
                "440",
                "--out",
                str(out),
                "--size",
                "96x64",
                "--json",
            ],
        )
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["heading"] == 80.0 and data["size"] == [96, 64] and data["panorama"]
        assert Image.open(out).size == (96, 64)
        grid = runner.invoke(
            app,
            [
                "city",
                "view",
                "-c",
                "helsinki",
                "--at",
                "Esplanadi",
                "--grid",
                "--size",
                "48",
                "--out",
                str(tmp_path / "g.png"),
            ],
        )
        assert grid.exit_code == 0, grid.output
        assert Image.open(tmp_path / "g.png").size == (101, 101)
        bad = runner.invoke(
            app,
            [
                "city",
                "view",
                "-c",
                "helsinki",
                "--at",
                "Esplanadi",
                "--fov",
                "150",
                "--out",
                str(tmp_path / "b.png"),
            ],
        )
        assert bad.exit_code == 2 and "`fov`" in bad.output
