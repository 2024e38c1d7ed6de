"""Route and area maps (PNG) and GeoJSON export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import shape

from openvirl.world import maps
from world_fixtures import load_city


@pytest.fixture(scope="module")
def monaco():
    return load_city("monaco")


@pytest.fixture(scope="module")
def route(monaco):
    return monaco.route("Casino de Monte-Carlo", "Musée Océanographique")


def test_route_map_png_is_written_and_detailed(monaco, route, tmp_path):
    out = monaco.route_map(route, tmp_path / "maps" / "route.png", size_px=600)
    assert out.is_file() and out.stat().st_size > 30_000
    image = np.asarray(Image.open(out).convert("RGB"))
    assert image.shape == (600, 600, 3)
    colours = {tuple(c) for c in image.reshape(-1, 3)[::7]}
    assert len(colours) > 200  # streets, buildings, the route, markers and text
    route_blue = np.all(np.abs(image.astype(int) - (31, 111, 209)) < 40, axis=-1)
    assert route_blue.sum() > 500  # the route line is drawn


def test_area_map_png(monaco, tmp_path):
    casino = monaco.search("Casino de Monte-Carlo")[0]
    out = maps.area_map(
        monaco,
        casino.lat,
        casino.lon,
        tmp_path / "area.png",
        radius_m=200,
        size_px=500,
        category="restaurant",
    )
    image = Image.open(out)
    assert image.size == (500, 500) and out.stat().st_size > 20_000


def test_route_geojson_is_valid(route, tmp_path):
    data = route.to_geojson()
    path = maps.write_geojson(data, tmp_path / "route.geojson")
    loaded = json.loads(path.read_text(encoding="utf-8"))
    assert loaded["type"] == "FeatureCollection"
    assert loaded["attribution"] == "© OpenStreetMap contributors"
    kinds = [f["properties"]["kind"] for f in loaded["features"]]
    assert kinds.count("route") == 1 and kinds.count("step") == len(route.steps)
    assert {"origin", "destination", "turn_point"} <= set(kinds)
    for feature in loaded["features"]:
        assert feature["type"] == "Feature"
        geom = shape(feature["geometry"])
        assert geom.is_valid and not geom.is_empty
        lon, lat = (
            feature["geometry"]["coordinates"][0]
            if geom.geom_type == "LineString"
            else (feature["geometry"]["coordinates"])
        )
        assert 7.3 < lon < 7.5 and 43.7 < lat < 43.8  # [lon, lat] order, in Monaco
    line = next(f for f in loaded["features"] if f["properties"]["kind"] == "route")
    assert len(line["geometry"]["coordinates"]) == len(route.polyline)


def test_places_geojson(monaco):
    cafes = monaco.search("cafe", limit=5)
    data = maps.places_geojson(cafes)
    assert [f["properties"]["name"] for f in data["features"]] == [p.name for p in cafes]
    assert all(f["geometry"]["type"] == "Point" for f in data["features"])
