"""Loading cities: the bundled extracts, the cache, user extracts and bad files."""

from __future__ import annotations

import bz2
import math
import time

import networkx as nx
import pytest
from shapely.geometry import LineString, Polygon

from openvirl.world import (
    City,
    MapFileError,
    OutsideMapError,
    UnknownCityError,
    WorldError,
    catalog,
)
from openvirl.world.catalog import ATTRIBUTION, cities_dir
from world_fixtures import grid_town, load_city, private_cache, write_osm


@pytest.mark.parametrize("name", ["singapore", "monaco", "helsinki", "tokyo-shibuya"])
def test_bundled_city_loads_with_clean_structures(name):
    city = load_city(name)
    G = city.graph
    assert isinstance(G, nx.Graph) and G.number_of_nodes() > 100
    assert nx.number_connected_components(G) < G.number_of_nodes() / 10
    _, data = next(iter(G.nodes(data=True)))
    assert {"lat", "lon", "x", "y"} <= set(data)
    assert city.bounds.contains(data["lat"], data["lon"])
    x, y = city.to_xy(data["lat"], data["lon"])
    assert x == pytest.approx(data["x"], abs=0.01) and y == pytest.approx(data["y"], abs=0.01)
    lat, lon = city.to_latlon(data["x"], data["y"])
    assert lat == pytest.approx(data["lat"], abs=1e-7) and lon == pytest.approx(data["lon"])
    for u, v, e in list(G.edges(data=True))[:200]:
        assert e["length_m"] > 0 and e["weight"] >= e["length_m"] - 1e-9
        assert isinstance(e["geometry"], LineString)
        assert e["geometry_start"] in (u, v)
        coords = city.edge_xy(u, v)
        assert coords[0] == pytest.approx([G.nodes[u]["x"], G.nodes[u]["y"]], abs=0.01)
        # The geometry's planar length agrees with the great-circle length within 1%.
        assert e["geometry"].length == pytest.approx(e["length_m"], rel=0.01, abs=0.05)
    assert city.pois and all(
        p.name and p.id.split("/")[0] in ("node", "way", "relation") for p in city.pois
    )
    assert all(p.category == p.categories[0] for p in city.pois)
    assert city.intersections and all(G.degree(n) >= 3 for n in city.intersections)
    assert city.attribution == ATTRIBUTION == "© OpenStreetMap contributors"
    assert city.stats()["pois"] == len(city.pois)


def test_manhattan_has_buildings_with_heights_and_named_intersections():
    city = load_city("manhattan")
    assert len(city.buildings) > 5000
    esb = [b for b in city.buildings if b.name == "Empire State Building"]
    assert esb and esb[0].height_m == pytest.approx(443.2) and esb[0].height_source == "height"
    assert isinstance(esb[0].footprint, Polygon) and 5000 < esb[0].footprint.area < 12000
    sources = {b.height_source for b in city.buildings}
    assert sources == {"height", "levels", "default"}
    named = [names for names in city.intersections.values() if len(names) >= 2]
    assert any({"West 34th Street", "7th Avenue"} <= set(n) for n in named)
    # Sidewalks are part of the graph and carry the name of their street.
    inferred = [d for _, _, d in city.graph.edges(data=True) if d["street_inferred"]]
    assert len(inferred) > 100 and all(d["footway"] == "sidewalk" for d in inferred)


def test_tokyo_prefers_english_names_and_keeps_local_ones():
    city = load_city("tokyo-shibuya")
    hachiko = city.search("Hachiko Memorial Statue")[0]
    assert hachiko.name == "Hachiko Memorial Statue"
    assert hachiko.local_name == "忠犬ハチ公像"
    # POIs of the wide POI file are clipped to the streets' extent.
    b = city.bounds
    assert all(b.contains(p.lat, p.lon, margin_m=300) for p in city.pois)
    assert 100 < len(city.pois) < 1000


def test_cache_hit_is_faster_and_equal(tmp_path):
    with private_cache(tmp_path):
        start = time.perf_counter()
        first = City.load("singapore", progress=False)
        built_s = time.perf_counter() - start
        start = time.perf_counter()
        second = City.load("singapore", progress=False)
        cached_s = time.perf_counter() - start
        assert list((tmp_path / "world").glob("city-*.signed"))
    assert not first.from_cache and second.from_cache
    assert cached_s < built_s
    assert first.sha256 == second.sha256
    a, b = first.stats(), second.stats()
    for key in ("from_cache", "load_seconds"):
        a.pop(key), b.pop(key)
    assert a == b
    assert nx.utils.graphs_equal(first.graph, second.graph) or (
        sorted(first.graph.edges) == sorted(second.graph.edges)
    )
    assert [p.id for p in first.pois] == [p.id for p in second.pois]


def test_stale_or_corrupt_cache_is_rebuilt(tmp_path):
    with private_cache(tmp_path):
        City.load("singapore", progress=False)
        (cache_file,) = (tmp_path / "world").glob("city-*.signed")
        cache_file.write_bytes(b"not a pickle")
        again = City.load("singapore", progress=False)
    assert not again.from_cache and again.pois


def test_unknown_city_lists_known_ones_and_suggests():
    with pytest.raises(UnknownCityError) as err:
        City.load("monacco")
    message = str(err.value)
    for name in ("manhattan", "helsinki", "monaco", "tokyo-shibuya", "singapore"):
        assert name in message
    assert "Did you mean: `monaco`" in message
    assert isinstance(err.value, ValueError)


def test_aliases_and_case():
    assert catalog.resolve("Tokyo").name == "tokyo-shibuya"
    assert catalog.resolve("NYC").name == "manhattan"
    assert catalog.resolve(None).name == "manhattan"


@pytest.mark.parametrize(
    ("filename", "content", "problem"),
    [
        ("empty.osm.pbf", b"", "empty"),
        ("junk.osm.pbf", b"this is not a protobuf file at all" * 20, "not a readable OSM"),
        ("junk.osm", b"hello, I am a text file", "not a readable OSM"),
        ("html.osm", b"<html><body>hi</body></html>", "not a readable OSM"),
        ("nothing.osm", b'<?xml version="1.0"?><osm version="0.6"></osm>', "no OSM objects"),
    ],
)
def test_bad_files_raise_map_file_error_naming_the_file(tmp_path, filename, content, problem):
    path = tmp_path / filename
    path.write_bytes(content)
    with pytest.raises(MapFileError) as err:
        City.load(path, cache=False)
    assert str(path) in str(err.value) and problem in str(err.value)


def test_truncated_files_raise(tmp_path):
    pbf = (cities_dir() / "singapore_bayfront.osm.pbf").read_bytes()
    truncated = tmp_path / "cut.osm.pbf"
    truncated.write_bytes(pbf[: len(pbf) // 2])
    with pytest.raises(MapFileError, match="truncated"):
        City.load(truncated, cache=False)
    xml = grid_town(tmp_path / "town.osm").read_bytes()
    cut_bz2 = tmp_path / "town.osm.bz2"
    cut_bz2.write_bytes(bz2.compress(xml)[:-40])
    with pytest.raises(MapFileError, match=r"town\.osm\.bz2"):
        City.load(cut_bz2, cache=False)


def test_missing_file_and_file_without_streets(tmp_path):
    with pytest.raises(MapFileError, match="file not found"):
        City.load(tmp_path / "nowhere.osm.pbf")
    with pytest.raises(MapFileError, match="file not found"):
        City.load(str(tmp_path / "nowhere.osm"))
    no_streets = write_osm(
        tmp_path / "cafe.osm", nodes=[(1, 48.0, 11.0, {"amenity": "cafe", "name": "Lonely"})]
    )
    with pytest.raises(MapFileError, match="no walkable street"):
        City.load(no_streets, cache=False)


def test_small_xml_and_bz2_files_load_with_building_heights(tmp_path):
    path = grid_town(tmp_path / "town.osm")
    packed = tmp_path / "town.osm.bz2"
    packed.write_bytes(bz2.compress(path.read_bytes()))
    for source in (path, packed):
        city = City.load(source, cache=False)
        assert city.name == "town"
        assert city.graph.number_of_nodes() == 9
        assert city.graph.number_of_edges() == 12
        heights = sorted((b.height_m, b.height_source) for b in city.buildings)
        assert heights == [(pytest.approx(9.0), "levels"), (pytest.approx(82 * 0.3048), "height")]
        assert {p.name for p in city.pois} == {"Test Cafe", "Corner Books"}
        assert city.intersections[104] == ("Column 2 Avenue", "Row 2 Street")


def test_point_outside_the_map(tmp_path):
    city = load_city("singapore")
    with pytest.raises(OutsideMapError, match="outside the map"):
        city.check_inside(48.85, 2.35)
    with pytest.raises(OutsideMapError):
        city.nearest_node(float("nan"), 103.86)
    with pytest.raises(OutsideMapError):
        city.route((48.85, 2.35), city.pois[0])
    assert isinstance(OutsideMapError("x"), WorldError)


def test_user_city_registry(tmp_path):
    path = grid_town(tmp_path / "town.osm")
    with private_cache(tmp_path / "cache"):
        entry = catalog.add_city(path, "my-town", description="A test town")
        assert entry.name == "my-town" and entry.source == "user"
        assert "my-town" in catalog.known_names()
        city = City.load("my-town", progress=False)
        assert city.name == "my-town" and math.isclose(city.center[0], 48.0009, abs_tol=1e-3)
        with pytest.raises(WorldError, match="already registered"):
            catalog.add_city(path, "my-town")
        with pytest.raises(WorldError, match="bundled city"):
            catalog.add_city(path, "monaco")
        with pytest.raises(WorldError, match="lower-case"):
            catalog.add_city(path, "My Town!")
        assert catalog.remove_city("my-town")
        with pytest.raises(UnknownCityError):
            City.load("my-town")
