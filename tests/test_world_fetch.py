"""`City.fetch` / `openvirl city fetch` against a real local Nominatim + Overpass fake.

The server (tests/fake_osm_server.py) binds 127.0.0.1 on a random port and answers with the
public services' formats, built from the bundled Monaco extract; no test touches the network.
"""

from __future__ import annotations

import json
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from fake_osm_server import MONTE_CARLO, FakeOSMServer, monte_carlo_xml
from openvirl.cli import app
from openvirl.world import catalog
from openvirl.world.fetch import (
    Area,
    FetchError,
    FetchOptions,
    bbox_around,
    check_bbox,
    extracts_dir,
    fetch_extract,
    slug,
)

runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    xml = monte_carlo_xml(str(tmp_path_factory.mktemp("osm")))
    srv = FakeOSMServer(xml).start()
    yield srv
    srv.stop()


@pytest.fixture
def iso(tmp_path, monkeypatch, server):
    """A fresh cache and registry per test; the fake server's queues reset."""
    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENVIRL_CONFIG", str(tmp_path / "config"))
    monkeypatch.delenv("OPENVIRL_OVERPASS_URL", raising=False)
    monkeypatch.delenv("OPENVIRL_NOMINATIM_URL", raising=False)
    server.requests.clear()
    server.fail_next.clear()
    server.oversize = 0
    server.retry_after = None
    return tmp_path


def opts(server, **kw) -> FetchOptions:
    base = dict(
        nominatim_url=server.nominatim_url,
        overpass_url=server.overpass_url,
        min_interval_s=0.0,
        backoff_s=0.01,
        timeout_s=20.0,
    )
    base.update(kw)
    return FetchOptions(**base)


def test_fetch_place_builds_a_city_then_comes_from_the_cache(iso, server):
    from openvirl.world import City

    city = City.fetch(
        "Monte Carlo, Monaco",
        nominatim_url=server.nominatim_url,
        overpass_url=server.overpass_url,
        min_interval_s=0.0,
        progress=False,
    )
    assert city.name == "monte-carlo-monaco"
    assert city.graph.number_of_nodes() > 100 and len(city.pois) > 10
    s, w, n, e = MONTE_CARLO
    lat, lon = city.center
    assert s - 0.01 < lat < n + 0.01 and w - 0.01 < lon < e + 0.01
    assert city.search("Casino")  # the Casino de Monte-Carlo lies in the cut
    # Etiquette: one geocode, one Overpass POST, both with our User-Agent.
    assert server.count("/search") == 1 and server.count("/api/interpreter") == 1
    assert all(r["user_agent"].startswith("openvirl/") for r in server.requests)
    query = server.requests[1]["form"]["data"][0]
    assert query.startswith("[out:xml]") and "[bbox:43.7355,7.4215,43.7425,7.431]" in query
    assert 'way["highway"]' in query and 'nwr["building"]' in query and 'nwr["amenity"]' in query
    # Registered like `openvirl city add`, with provenance beside the extract.
    entry = catalog.resolve("monte-carlo-monaco")
    assert entry.source == "user" and entry.files[0].parent == extracts_dir()
    prov = json.loads(entry.files[0].with_suffix(".provenance.json").read_text())
    assert prov["attribution"] == "© OpenStreetMap contributors" and "ODbL" in prov["license"]
    assert prov["query"] == "Monte Carlo, Monaco" and prov["bounds"]["north"] == 43.7425
    assert [src["service"] for src in prov["sources"]] == ["Nominatim", "Overpass API"]
    assert prov["sources"][1]["url"] == server.overpass_url and prov["fetched"].startswith("20")
    assert prov["overpass_query"] == query
    # A second fetch of the same area makes no request at all.
    again = fetch_extract("Monte Carlo, Monaco", options=opts(server), progress=False)
    assert again.from_cache and again.path == entry.files[0]
    assert len(server.requests) == 2


def test_bbox_and_around_build_the_right_query(iso, server):
    got = fetch_extract(bbox=MONTE_CARLO, name="mc-box", options=opts(server), progress=False)
    assert got.name == "mc-box" and not got.from_cache and got.path.stat().st_size > 10_000
    assert server.count("/search") == 0
    around = fetch_extract(
        around=(43.739, 7.4263), radius_m=300, options=opts(server), progress=False
    )
    assert around.name.startswith("bbox-")
    b = around.provenance["bounds"]
    assert b["south"] < 43.739 < b["north"] and b["west"] < 7.4263 < b["east"]
    assert 0.3 < around.provenance["area_km2"] < 0.42  # (2 x 300 m)^2 = 0.36 km²
    # The same box under another name reuses the file.
    other = fetch_extract(bbox=MONTE_CARLO, name="mc-again", options=opts(server), progress=False)
    assert other.from_cache and other.path == got.path
    assert catalog.resolve("mc-again").files == (got.path.resolve(),)


def test_the_area_guard_refuses_before_downloading(iso, server):
    with pytest.raises(FetchError) as err:
        fetch_extract("Monaco", options=opts(server, max_area_km2=5), progress=False)
    text = str(err.value)
    assert "km²" in text and "--around 43." in text and "--max-area-km2" in text
    assert "\n" not in text
    assert server.count("/api/interpreter") == 0


def test_the_byte_guard_cuts_a_large_answer(iso, server):
    server.oversize = 60_000
    with pytest.raises(FetchError, match="--max-mb"):
        fetch_extract(bbox=MONTE_CARLO, options=opts(server, max_bytes=20_000), progress=False)
    assert not list(extracts_dir().glob("*.osm"))


def test_retries_with_backoff_on_429_and_504(iso, server):
    server.fail_next[:] = [429, 504]
    got = fetch_extract(bbox=MONTE_CARLO, name="mc-retry", options=opts(server), progress=False)
    assert got.path.is_file() and server.count("/api/interpreter") == 3
    server.requests.clear()
    server.fail_next[:] = [429, 429, 429]
    with pytest.raises(FetchError, match="HTTP 429"):
        fetch_extract(around=(43.739, 7.4263), options=opts(server, retries=1), progress=False)
    assert server.count("/api/interpreter") == 2


def test_retry_after_and_rate_limit_between_requests(iso, server):
    server.retry_after = "0"
    server.fail_next[:] = [429]
    options = opts(server, min_interval_s=0.3, backoff_s=5.0)  # Retry-After: 0 wins
    fetch_extract(bbox=MONTE_CARLO, name="mc-rate", options=options, progress=False)
    times = [r["time"] for r in server.requests]
    assert len(times) == 2 and times[1] - times[0] >= 0.29


def test_unknown_place_and_bad_input_are_one_line(iso, server):
    with pytest.raises(FetchError, match="found no place named `Atlantis`"):
        fetch_extract("Atlantis", options=opts(server), progress=False)
    with pytest.raises(FetchError, match="exactly one of"):
        fetch_extract("Monaco", bbox=MONTE_CARLO, options=opts(server), progress=False)
    with pytest.raises(FetchError, match="S W N E"):
        fetch_extract(bbox=(43.8, 7.4, 43.7, 7.5), options=opts(server), progress=False)
    with pytest.raises(FetchError, match="name"):
        fetch_extract(bbox=MONTE_CARLO, name="Bad Name!", options=opts(server), progress=False)
    from openvirl.world import City

    with pytest.raises(FetchError, match="unknown fetch option"):
        City.fetch("Monaco", overpas_url=server.overpass_url)


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def test_offline_fails_with_one_line_naming_city_add(iso):
    port = _closed_port()
    options = FetchOptions(
        nominatim_url=f"http://127.0.0.1:{port}",
        overpass_url=f"http://127.0.0.1:{port}/api/interpreter",
        min_interval_s=0.0,
        retries=0,
        timeout_s=5.0,
    )
    with pytest.raises(FetchError) as err:
        fetch_extract("Milan, Italy", options=options, progress=False)
    assert "offline?" in str(err.value) and "openvirl city add" in str(err.value)
    result = runner.invoke(
        app, ["city", "fetch", "Milan, Italy", "--nominatim-url", f"http://127.0.0.1:{port}"]
    )
    assert result.exit_code == 2
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "openvirl city add" in lines[0]


def test_cli_fetch_with_env_servers(iso, server, monkeypatch):
    monkeypatch.setenv("OPENVIRL_NOMINATIM_URL", server.nominatim_url)
    monkeypatch.setenv("OPENVIRL_OVERPASS_URL", server.overpass_url)
    s, w, n, e = MONTE_CARLO
    result = runner.invoke(
        app,
        ["city", "fetch", "--bbox", str(s), str(w), str(n), str(e), "--name", "mc", "--json"],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["fetched"]["name"] == "mc" and data["stats"]["pois"] > 10
    assert data["fetched"]["provenance"]["attribution"] == "© OpenStreetMap contributors"
    assert server.count("/api/interpreter") == 1
    listed = json.loads(runner.invoke(app, ["city", "list", "--json"]).stdout)
    assert "mc" in [c["name"] for c in listed["cities"]]
    info = json.loads(runner.invoke(app, ["city", "info", "mc", "--json"]).stdout)
    assert info["sources"].endswith(".provenance.json")
    again = runner.invoke(
        app, ["city", "fetch", "--bbox", str(s), str(w), str(n), str(e), "--name", "mc"]
    )
    assert again.exit_code == 0 and "from the cache" in again.stdout
    assert server.count("/api/interpreter") == 1


def test_slug_and_geometry_helpers():
    assert slug("Milan, Italy") == "milan-italy"
    assert slug("São Paulo") == "sao-paulo"
    assert slug("東京") == "city"
    with pytest.raises(FetchError):
        check_bbox(0, 10, 1, 5)
    with pytest.raises(FetchError):
        bbox_around(43.7, 7.4, -5)


@settings(max_examples=60, deadline=None)
@given(
    lat=st.floats(-80, 80),
    lon=st.floats(-179, 179),
    radius=st.floats(50, 5000),
)
def test_bbox_around_contains_the_point_and_has_the_right_area(lat, lon, radius):
    s, w, n, e = bbox_around(lat, lon, radius)
    assert s < lat < n and w < lon < e
    area = Area(s, w, n, e).area_km2()
    expected = (2 * radius / 1000) ** 2
    assert area == pytest.approx(expected, rel=0.02)
