"""Optional online providers (Google Street View, Mapillary, Google Places) against a loopback
server that answers in each provider's documented format; no test touches the network."""

from __future__ import annotations

import numpy as np
import pytest

from fake_providers import BAND_COLOURS, FakeProviders
from openvirl.world import streetview as sv
from openvirl.world.providers import (
    GooglePlaces,
    GoogleStreetViewSource,
    KeyMissingError,
    KeyRejectedError,
    MapillaryViewSource,
    NoImageryError,
    ProviderCity,
    ProviderError,
    QuotaExceededError,
    place_provider_for,
    view_source_for,
)
from openvirl.world.providers.google import google_hours
from openvirl.world.providers.http import ResponseCache
from world_fixtures import load_city

POINT = (43.7396, 7.4271)  # Monaco, inside the fake's imagery box
BOX = (43.735, 7.42, 43.745, 7.435)
OUTSIDE = (43.7290, 7.4150)  # on the Monaco map, but without imagery in the fake


def _places(city) -> list[dict]:
    """Google-format results built from real Monaco cafes and restaurants."""
    out = []
    for k, p in enumerate(city.nearby(*POINT, 600, "restaurant")[:4]):
        out.append(
            {
                "place_id": f"ChIJ{k}",
                "name": p.name,
                "geometry": {"location": {"lat": p.lat, "lng": p.lon}},
                "types": ["restaurant", "food", "point_of_interest", "establishment"],
                "rating": 4.0 + k / 10,
                "user_ratings_total": 100 * (k + 1),
                "formatted_address": f"{k} Avenue, Monaco",
                "reviews": [
                    {"author_name": "A", "rating": 5, "text": f"Great food number {k}."},
                ],
                "opening_hours": {
                    "periods": [
                        {"open": {"day": 1, "time": "0900"}, "close": {"day": 1, "time": "1800"}},
                        {"open": {"day": 6, "time": "1800"}, "close": {"day": 0, "time": "0200"}},
                    ],
                    "weekday_text": ["Monday: 9:00 AM – 6:00 PM"],
                },
                "photos": [
                    {
                        "photo_reference": "ref",
                        "width": 800,
                        "height": 600,
                        "html_attributions": ['<a href="x">A</a>'],
                    }
                ],
            }
        )
    return out


@pytest.fixture(scope="module")
def city():
    return load_city("monaco")


@pytest.fixture
def fake(city):
    with FakeProviders(BOX, _places(city)) as server:
        yield server


@pytest.fixture
def cache(tmp_path):
    return ResponseCache("test", root=tmp_path / "cache")


def test_google_street_view_carries_copyright_and_is_cached(fake, cache):
    source = GoogleStreetViewSource("good", base_url=fake.url, cache=cache)
    image = source.view(*POINT, 90.0, fov=90, pitch=0, size=(320, 240))
    assert image.size == (320, 240)
    assert image.info["attribution"] == "© 2024 Google"
    assert image.info["pano_id"].startswith("pano_43.7396")
    assert source.http.requests == 2  # metadata, then the image
    again = GoogleStreetViewSource("good", base_url=fake.url, cache=cache)
    assert again.view(*POINT, 90.0, fov=90, pitch=0, size=(320, 240)).tobytes() == image.tobytes()
    assert again.http.requests == 0  # a rerun costs nothing
    # The heading reaches the provider (the fake shades by heading).
    other = source.view(*POINT, 270.0, fov=90, pitch=0, size=(320, 240))
    assert np.asarray(other)[..., 0].mean() > np.asarray(image)[..., 0].mean() + 50


def test_google_street_view_large_views_are_fetched_at_640_and_resized(fake, cache):
    source = GoogleStreetViewSource("good", base_url=fake.url, cache=cache)
    image = source.view(*POINT, 0.0, fov=60, pitch=0, size=(1024, 512))
    assert image.size == (1024, 512)
    assert any("streetview" in h for h in fake.hits)


def test_render_view_and_grid_take_the_provider(fake, cache, city):
    source = GoogleStreetViewSource("good", base_url=fake.url, cache=cache)
    grid = sv.view_grid(city, *POINT, 0.0, size=(64, 64), source=source)
    assert grid.info["attribution"] == "© 2024 Google"
    sv.set_view_source(city, source)
    try:
        assert city.street_view(*POINT, 90.0, size=(64, 64)).info["provider"] == "google"
    finally:
        sv.set_view_source(city, None)


def test_google_zero_results_fails_or_falls_back(fake, cache, city):
    source = GoogleStreetViewSource("good", base_url=fake.url, cache=cache)
    with pytest.raises(NoImageryError, match="no outdoor panorama within 50 m"):
        source.view(*OUTSIDE, 0.0, fov=90, pitch=0, size=(64, 64))
    both = GoogleStreetViewSource(
        "good", base_url=fake.url, cache=cache, fallback=sv.RenderedViewSource(city)
    )
    image = both.view(*OUTSIDE, 0.0, fov=90, pitch=0, size=(64, 64))
    assert image.size == (64, 64) and "attribution" not in image.info


def test_google_key_missing_rejected_and_over_quota(fake, cache, monkeypatch):
    monkeypatch.delenv("GOOGLE_MAPS_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with pytest.raises(KeyMissingError, match="GOOGLE_MAPS_API_KEY"):
        GoogleStreetViewSource(base_url=fake.url, cache=cache)
    assert fake.hits == []  # nothing was sent without a key
    with pytest.raises(KeyRejectedError, match=r"REQUEST_DENIED.*invalid"):
        GoogleStreetViewSource("bad", base_url=fake.url, cache=cache).metadata(*POINT)
    with pytest.raises(QuotaExceededError, match="OVER_QUERY_LIMIT"):
        GoogleStreetViewSource("quota", base_url=fake.url, cache=cache).metadata(*POINT)
    # A key accepted by the metadata endpoint but refused for images (HTTP 403).
    source = GoogleStreetViewSource("good", base_url=fake.url, cache=cache)
    source.metadata(*POINT)
    source._key = "bad"
    with pytest.raises(KeyRejectedError, match="HTTP 403"):
        source.view(*POINT, 10.0, fov=90, pitch=0, size=(64, 64))
    # The key is taken from the environment too.
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "good")
    assert GoogleStreetViewSource(base_url=fake.url, cache=cache).metadata(*POINT)["status"] == "OK"


def test_mapillary_and_places_without_a_key(fake, cache, monkeypatch):
    for var in ("MAPILLARY_ACCESS_TOKEN", "GOOGLE_MAPS_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(KeyMissingError, match="MAPILLARY_ACCESS_TOKEN"):
        MapillaryViewSource(base_url=fake.url, cache=cache)
    with pytest.raises(KeyMissingError, match="GOOGLE_MAPS_API_KEY"):
        GooglePlaces(base_url=fake.url, cache=cache)
    assert fake.hits == []


def test_keys_never_go_over_plain_http_to_a_remote_host(cache):
    with pytest.raises(ProviderError, match="plain http"):
        GoogleStreetViewSource("good", base_url="http://example.com", cache=cache)
    with pytest.raises(ProviderError, match="not an http"):
        MapillaryViewSource("good", base_url="ftp://example.com", cache=cache)


def test_unreachable_provider_is_one_line(cache):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = GoogleStreetViewSource("good", base_url=f"http://127.0.0.1:{port}", cache=cache)
    with pytest.raises(ProviderError, match="could not be reached"):
        source.metadata(*POINT)


@pytest.mark.parametrize(("heading", "band"), [(45.0, 0), (135.0, 1), (225.0, 2), (315.0, 3)])
def test_mapillary_panorama_is_cropped_toward_the_heading(fake, cache, heading, band):
    source = MapillaryViewSource("good", base_url=fake.url, cache=cache)
    image = source.view(*POINT, heading, fov=30, pitch=0, size=(48, 48))
    centre = np.asarray(image)[20:28, 20:28].reshape(-1, 3).mean(axis=0)
    assert np.abs(centre - np.array(BAND_COLOURS[band])).max() < 40
    assert image.info["attribution"] == "© Mapillary, walker (CC BY-SA 4.0)"


def test_mapillary_errors(fake, cache, city):
    with pytest.raises(KeyRejectedError, match="access token"):
        MapillaryViewSource("bad", base_url=fake.url, cache=cache).view(
            *POINT, 0.0, fov=90, pitch=0, size=(32, 32)
        )
    with pytest.raises(QuotaExceededError):
        MapillaryViewSource("quota", base_url=fake.url, cache=cache).view(
            *POINT, 0.0, fov=90, pitch=0, size=(32, 32)
        )
    source = MapillaryViewSource("good", base_url=fake.url, cache=cache)
    with pytest.raises(NoImageryError, match="no panorama"):
        source.view(*OUTSIDE, 0.0, fov=90, pitch=0, size=(32, 32))
    source.fallback = sv.RenderedViewSource(city)
    assert source.view(*OUTSIDE, 0.0, fov=90, pitch=0, size=(32, 32)).size == (32, 32)


def test_google_places_search_nearby_details(fake, cache, city):
    places = GooglePlaces("good", base_url=fake.url, cache=cache)
    near = places.nearby(*POINT, 600, "restaurant")
    assert len(near) == 4 and all(p.id.startswith("google:ChIJ") for p in near)
    dists = [p.distance_m(*POINT) for p in near]
    assert dists == sorted(dists)
    assert places.nearby(*POINT, 600, "museum") == []  # ZERO_RESULTS is an empty answer
    first = near[0]
    assert places.search(first.name.split()[0], near=POINT)[0].category == "restaurant"
    details = places.details(first)
    assert details["rating"] >= 4.0 and details["reviews"][0]["text"].startswith("Great food")
    assert details["photos"][0]["html_attributions"]
    assert details["opening_hours"]["weekly"]["Mo"] == [["09:00", "18:00"]]
    assert "Reviews say" in details["profile"] and details["attribution"] == "Google"
    with pytest.raises(NoImageryError, match="NOT_FOUND"):
        places.details("google:nope")
    with pytest.raises(KeyRejectedError):
        GooglePlaces("bad", base_url=fake.url, cache=cache).nearby(*POINT, 100, "cafe")
    with pytest.raises(QuotaExceededError):
        GooglePlaces("quota", base_url=fake.url, cache=cache).search("pizza")


def test_google_hours_after_midnight_and_always_open():
    hours = google_hours(
        {"periods": [{"open": {"day": 5, "time": "2000"}, "close": {"day": 6, "time": "0200"}}]}
    )
    assert hours["weekly"] == {"Fr": [["20:00", "26:00"]]}
    always = google_hours({"periods": [{"open": {"day": 0, "time": "0000"}}]})
    assert always["always_open"] and always["weekly"]["Su"] == [["00:00", "24:00"]]
    assert google_hours(None) is None


def test_place_recommender_runs_on_google_places(fake, cache, city, tmp_path):
    from openvirl.agents.place_recommender import PlaceRecommender, PlaceRecommenderConfig

    places = GooglePlaces("good", base_url=fake.url, cache=cache)
    config = PlaceRecommenderConfig(
        city="monaco", start=POINT, intention="find a restaurant for lunch", radius_m=600
    )
    result = PlaceRecommender(config, city=ProviderCity(city, places)).run(out_dir=tmp_path)
    ranked = result.data["ranked"]
    assert ranked and all(str(r["id"]).startswith("google:") for r in ranked)


def test_names_choose_providers(fake, city, monkeypatch):
    assert isinstance(view_source_for(None, city), sv.RenderedViewSource)
    monkeypatch.setenv("OPENVIRL_IMAGERY", "google")
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "good")
    monkeypatch.setenv("OPENVIRL_GOOGLE_MAPS_URL", fake.url)
    source = view_source_for(None, city, fallback=True)
    assert isinstance(source, GoogleStreetViewSource)
    assert isinstance(source.fallback, sv.RenderedViewSource)
    assert isinstance(place_provider_for("google", city), GooglePlaces)
    with pytest.raises(ProviderError, match="choose one of: rendered, google, mapillary"):
        view_source_for("bing", city)


def test_gps_to_pano_pickle_is_read_without_running_code(tmp_path):
    import pickle

    good = tmp_path / "map.pkl"
    good.write_bytes(pickle.dumps({(1.0, 2.0): "p1"}))
    assert sv.load_gps_to_pano(good) == {(1.0, 2.0): "p1"}

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({(1.0, 2.0): Evil()}))
    with pytest.raises(sv.InvalidViewError, match="refused"):
        sv.load_gps_to_pano(evil)
    as_json = tmp_path / "map.json"
    as_json.write_text('{"1.0,2.0": "p1"}')
    assert sv.load_gps_to_pano(as_json) == {(1.0, 2.0): "p1"}


def test_visual_navigation_env_views_come_from_the_provider(city, monkeypatch, tmp_path):
    from openvirl.envs.navigation.env import NavigationEnv
    from openvirl.envs.navigation.routes import GenerationConfig, generate_routes

    small = GenerationConfig(min_length_m=150, max_length_m=600, max_turns=3)
    routes = generate_routes(city, 1, seed=0, config=small)
    with FakeProviders((-90.0, -180.0, 90.0, 180.0), []) as fake:  # imagery everywhere
        monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path))  # the provider cache stays private
        monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "good")
        monkeypatch.setenv("OPENVIRL_GOOGLE_MAPS_URL", fake.url)
        env = NavigationEnv(routes=routes, visual=True, image_size=133, imagery="google")
        obs, _ = env.reset(seed=0)
        assert obs["image"].size == (133, 133)
        assert fake.hits.count("/maps/api/streetview") == 4  # the four views of the grid
    with pytest.raises(ValueError, match="`imagery` must be one of"):
        NavigationEnv(routes=routes, visual=True, imagery="bing")


def test_city_view_cli_with_imagery(fake, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from openvirl.cli import app

    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENVIRL_GOOGLE_MAPS_URL", fake.url)
    monkeypatch.delenv("GOOGLE_MAPS_API_KEY", raising=False)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    args = ["city", "view", "--city", "monaco", "--at", f"{POINT[0]},{POINT[1]}", "--no-snap"]
    out = tmp_path / "v.png"
    runner = CliRunner()
    missing = runner.invoke(app, [*args, "--imagery", "google", "--out", str(out)])
    assert missing.exit_code == 2 and "GOOGLE_MAPS_API_KEY" in missing.output
    assert "Traceback" not in missing.output
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "good")
    ok = runner.invoke(app, [*args, "--imagery", "google", "--out", str(out), "--json"])
    assert ok.exit_code == 0, ok.output
    assert '"imagery_attribution": "© 2024 Google"' in ok.output and out.is_file()


def test_agent_cli_takes_google_places(fake, monkeypatch, tmp_path):
    from typer.testing import CliRunner

    from openvirl.cli import app

    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("OPENVIRL_GOOGLE_MAPS_URL", fake.url)
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "bad")
    args = ["agent", "aria", "--city", "monaco", "--start", f"{POINT[0]},{POINT[1]}"]
    args += ["--intention", "a restaurant for lunch", "--radius", "600", "--json"]
    runner = CliRunner()
    rejected = runner.invoke(app, [*args, "--places", "google", "--out", str(tmp_path / "a")])
    assert rejected.exit_code == 2 and "rejected the key" in rejected.output
    monkeypatch.setenv("GOOGLE_MAPS_API_KEY", "good")
    ok = runner.invoke(app, [*args, "--places", "google", "--out", str(tmp_path / "b")])
    assert ok.exit_code == 0, ok.output
    assert '"google:ChIJ' in ok.output
