"""The viewer's pages and JSON API through FastAPI's TestClient: content, filters and bad input."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import viewer_data

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from openvirl.viewer import create_app
from openvirl.viewer.cities import street_view_support

CITY = viewer_data.NAV_CITY
LOCAL = "http://127.0.0.1"  # the viewer answers loopback Host names only


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    return viewer_data.shared_runs(tmp_path_factory)


@pytest.fixture(scope="module")
def client(runs) -> TestClient:
    order = ("oracle", "random", "vision", "half", "nav", "agent", "suite", "empty", "missing")
    app = create_app([runs[k] for k in order], city_names=[CITY])
    # Server errors must come back as pages, not exceptions, exactly as a browser sees them.
    return TestClient(app, base_url=LOCAL, raise_server_exceptions=False)


def _no_traceback(response) -> None:
    assert "Traceback" not in response.text
    assert "Internal Server Error" not in response.text


def test_runs_page_lists_every_folder_with_its_state(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for name in ("gp-l-oracle", "half-written", "nav-monaco", "agent-demo", "suite-demo"):
        assert f"/runs/{name}" in r.text
    assert "not started" in r.text and "missing" in r.text and "partial" in r.text
    assert "100.0%" in r.text
    assert "<script src='/static/viewer.js'>" in r.text
    assert client.get("/static/viewer.js").status_code == 200
    assert client.get("/static/viewer.css").status_code == 200


def test_nothing_is_loaded_from_the_network(client):
    pages = [
        "/",
        "/runs/gp-l-oracle",
        "/episodes",
        "/runs/nav-monaco/episodes/0",
        f"/cities/{CITY}",
    ]
    for url in pages:
        text = client.get(url).text
        assert not re.search(r"""(src|href)=['"]?(https?:)?//""", text), url
        assert "cdn" not in text.lower()


def test_run_page_shows_metrics_plots_and_config(client):
    r = client.get("/runs/gp-l-oracle")
    assert r.status_code == 200
    assert "Success (solved within the attempts)" in r.text
    assert "/runs/gp-l-oracle/files/plots/success.png" in r.text
    assert "Configuration (config.json)" in r.text
    png = client.get("/runs/gp-l-oracle/files/plots/success.png")
    assert png.status_code == 200 and png.content[:4] == b"\x89PNG"
    report = client.get("/runs/gp-l-oracle/files/report.html")
    assert report.status_code == 200 and "<html" in report.text
    api = client.get("/api/runs/gp-l-oracle").json()
    assert api["metrics"]["eval/success"] == 1.0
    assert api["headline"]["metric"] == "eval/success"
    assert "/runs/gp-l-oracle/files/plots/success.png" in api["plot_urls"]


def test_missing_half_written_and_empty_runs_get_clear_pages(client):
    for run_id, words in (
        ("no-such-run", "does not exist"),
        ("not-started", "has not started"),
        ("half-written", "half-written"),
    ):
        r = client.get(f"/runs/{run_id}")
        assert r.status_code == 200, run_id
        assert words in r.text, run_id
        _no_traceback(r)
    half = client.get("/runs/half-written")
    assert "metrics recomputed from the episodes" in half.text
    episodes = client.get("/episodes?run=half-written")
    assert episodes.status_code == 200 and "half-written" in episodes.text
    unknown = client.get("/runs/typo-run")
    assert unknown.status_code == 404 and "There is no run `typo-run`" in unknown.text
    _no_traceback(unknown)
    assert client.get("/api/runs/typo-run").json()["error"].startswith("There is no run")


def test_suite_and_agent_pages(client):
    suite = client.get("/runs/suite-demo")
    assert suite.status_code == 200 and "Settings" in suite.text
    assert "/runs/suite-demo.gp-l__id" in suite.text
    agent = client.get("/runs/agent-demo")
    assert agent.status_code == 200 and "place_recommender" in agent.text and "50.0%" in agent.text
    assert "Result (result.json)" in agent.text and "/runs/agent-demo/files/map.png" in agent.text
    report = client.get("/runs/agent-demo/files/report.md")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/plain")
    assert client.get("/runs/agent-demo/episodes/1").status_code == 200


def test_episode_list_filters(client):
    every = client.get("/api/episodes").json()
    assert every["total"] == 8 + 8 + 3 + 7 + 3 + 2 + 8  # the suite member repeats the oracle run
    solved = client.get("/api/episodes", params={"success": "yes"}).json()
    assert solved["total"] == 8 + 2 + 8
    assert all(e["success"] for e in solved["episodes"])
    ood = client.get("/api/episodes", params={"task": "gp-l", "split": "rule-ood"}).json()
    assert ood["total"] == 8 + 7 and {e["run"] for e in ood["episodes"]} == {
        "gp-l-random",
        "half-written",
    }
    outcome = ood["episodes"][0]["outcomes"][0]
    by_outcome = client.get("/api/episodes", params={"outcome": outcome}).json()
    assert by_outcome["total"] >= 1
    assert "rule-ood" in every["facets"]["split"]
    page = client.get("/episodes", params={"run": "gp-l-random", "success": "no"})
    assert page.status_code == 200 and page.text.count("<tr data-href=") == 8
    paged = client.get("/api/runs/gp-l-random/episodes", params={"offset": 6, "limit": 5}).json()
    assert [e["index"] for e in paged["episodes"]] == [6, 7]
    assert client.get("/episodes?page=0").status_code == 400  # a friendly "bad request" page


def test_episode_page_steps_image_and_neighbours(client):
    r = client.get("/runs/gp-l-random/episodes/2?step=2")
    assert r.status_code == 200
    assert r.text.count("<section class='step") >= 2
    assert "data-step='2' id='step-2'" in r.text and "class='step hidden' data-step='1'" in r.text
    assert "/runs/gp-l-random/episodes/1" in r.text and "/runs/gp-l-random/episodes/3" in r.text
    assert "Verifier's feedback" in r.text and "Model's answer" in r.text
    image = client.get("/api/runs/gp-l-random/episodes/2/image.png")
    assert image.status_code == 200 and image.content[:4] == b"\x89PNG"  # drawn hand (GP-L)
    vision = client.get("/api/runs/gp-vl-random/episodes/0/image.png")
    assert vision.status_code == 200 and vision.content[:4] == b"\x89PNG"  # the saved image
    data = client.get("/api/runs/gp-l-random/episodes/2").json()
    assert data["summary"]["index"] == 2 and data["steps"][0]["action"]
    assert data["track"] is None
    missing = client.get("/runs/gp-l-random/episodes/99")
    assert missing.status_code == 404 and "has no episode 99" in missing.text


def test_navigation_episode_has_a_route_map(client):
    r = client.get("/runs/nav-monaco/episodes/0")
    assert r.status_code == 200
    assert 'id="episode-map"' in r.text and 'class="route"' in r.text
    assert r.text.count('class="pose') == 1 + r.text.count("<section class='step")
    svg = client.get("/api/runs/nav-monaco/episodes/1/map.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    track = client.get("/api/runs/nav-monaco/episodes/0").json()["track"]
    assert track["city"] == CITY and len(track["poses"]) >= 2


def test_compare_two_runs_with_deltas(client):
    r = client.get("/compare", params={"a": "gp-l-random", "b": "gp-l-oracle"})
    assert r.status_code == 200
    assert "B − A" in r.text and "gp-l/id" in r.text and "gp-l/rule-ood" in r.text
    data = client.get("/api/compare", params={"a": "suite-demo", "b": "gp-l-oracle"}).json()
    (row,) = data["rows"]
    assert (row["task"], row["split"], row["in_a"], row["in_b"]) == ("gp-l", "id", True, True)
    assert row["metrics"][0]["delta"] == 0.0
    # Two single-setting runs of different settings are set side by side, with a note.
    paired = client.get("/api/compare", params={"a": "gp-l-random", "b": "gp-l-oracle"}).json()
    (row,) = paired["rows"]
    assert row["label"] == "A gp-l/rule-ood · B gp-l/id" and "different settings" in paired["note"]
    success = row["metrics"][0]
    assert (success["a"], success["b"], success["delta"]) == (0.0, 1.0, 1.0)
    assert success["significant"] is True
    assert client.get("/compare").status_code == 200
    assert client.get("/compare?a=gp-l-oracle&b=nope").status_code == 404


def test_files_stay_inside_the_run_folder(client):
    for rel in ("..%2F..%2F..%2Fetc%2Fpasswd", "%2E%2E/%2E%2E/config.json", "plots/nope.png"):
        r = client.get(f"/runs/gp-l-oracle/files/{rel}")
        assert r.status_code == 404, rel
        assert "root:" not in r.text


def test_city_search_route_and_reverse_api(client):
    assert [c["name"] for c in client.get("/api/cities").json()] == [CITY]
    found = client.get(f"/api/cities/{CITY}/search", params={"q": "casino"}).json()["results"]
    assert found and "Casino" in found[0]["name"]
    route = client.get(
        f"/api/cities/{CITY}/route", params={"from": found[0]["id"], "to": "pharmacy"}
    ).json()
    assert route["length_m"] > 0 and route["steps"][0]["instruction"]
    geojson = client.get(
        f"/api/cities/{CITY}/route.geojson", params={"from": found[0]["id"], "to": "pharmacy"}
    )
    assert geojson.status_code == 200 and geojson.json()["type"] == "FeatureCollection"
    nowhere = client.get(f"/api/cities/{CITY}/route", params={"from": "0,0", "to": "pharmacy"})
    assert nowhere.status_code == 400 and "outside the map" in nowhere.json()["error"]
    lat, lon = found[0]["lat"], found[0]["lon"]
    reverse = client.get(f"/api/cities/{CITY}/reverse", params={"lat": lat, "lon": lon}).json()
    assert reverse["street"]
    svg = client.get(f"/api/cities/{CITY}/map.svg")
    assert svg.status_code == 200 and "© OpenStreetMap contributors" in svg.text
    bad = client.get(f"/api/cities/{CITY}/map.svg", params={"south": 1})
    assert bad.status_code == 400


def test_city_page_search_route_and_view(client):
    r = client.get(f"/cities/{CITY}", params={"q": "casino"})
    assert r.status_code == 200 and "id='results'" in r.text and "Casino" in r.text
    r = client.get(f"/cities/{CITY}", params={"from": "Casino de Monte-Carlo", "to": "pharmacy"})
    assert r.status_code == 200 and "Walking route" in r.text and 'class="route"' in r.text
    geojson = re.search(r"href='(/api/cities/[^']+route\.geojson[^']*)'", r.text).group(1)
    assert client.get(geojson.replace("&amp;", "&")).status_code == 200
    # A search result's "from here" keeps its id while the box shows its name.
    casino = client.get(f"/api/cities/{CITY}/search", params={"q": "casino"}).json()["results"][0]
    by_ref = client.get(
        f"/cities/{CITY}",
        params={"from": casino["name"], "from_ref": casino["id"], "to": "pharmacy"},
    )
    assert f"<b>{casino['name']}</b> →" in by_ref.text
    lost = client.get(f"/cities/{CITY}", params={"from": "zzqx nowhere qqq", "to": "pharmacy"})
    assert lost.status_code == 200 and "Origin:" in lost.text
    _no_traceback(lost)
    bad = client.get(f"/cities/{CITY}", params={"lat": "abc", "lon": "7.42"})
    assert bad.status_code == 200 and "are not a point" in bad.text
    view = client.get(f"/cities/{CITY}", params={"lat": "43.7396", "lon": "7.4276", "heading": 90})
    assert view.status_code == 200 and "Street view" in view.text
    available, why = street_view_support()
    if available:
        assert "id='street-view'" in view.text
    else:
        assert why in view.text
    unknown = client.get("/cities/atlantis")
    assert unknown.status_code == 404 and "atlantis" in unknown.text
    _no_traceback(unknown)


def test_street_view_endpoint_renders_or_says_why(client):
    params = {"lat": 43.7396, "lon": 7.4276, "heading": 45, "size": 96}
    r = client.get(f"/api/cities/{CITY}/streetview.png", params=params)
    available, why = street_view_support()
    if available:
        assert r.status_code == 200 and r.content[:4] == b"\x89PNG"
    else:
        assert r.status_code == 501 and r.json()["error"] == why
    outside = client.get(f"/api/cities/{CITY}/streetview.png", params={**params, "lat": 0})
    assert outside.status_code in (400, 501)


def test_unexpected_errors_become_a_friendly_page(runs, monkeypatch):
    app = create_app([runs["oracle"]], city_names=[CITY])
    client = TestClient(app, base_url=LOCAL, raise_server_exceptions=False)

    def explode(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(app.state.store, "episodes", explode)
    r = client.get("/runs/gp-l-oracle")
    assert r.status_code == 500 and "Something went wrong" in r.text and "disk on fire" in r.text
    _no_traceback(r)
    api = client.get("/api/episodes")
    assert api.status_code == 500 and api.json() == {"error": "RuntimeError: disk on fire"}
    assert client.get("/no/such/page").status_code == 404


def test_viewer_without_runs_points_to_the_cli():
    client = TestClient(create_app([], city_names=[CITY]), base_url=LOCAL)
    r = client.get("/")
    assert r.status_code == 200 and "openvirl view" in r.text
    assert client.get("/api/runs").json() == []
    assert client.get("/episodes").status_code == 200


def test_real_navigation_run_draws_its_shipped_route(tmp_path):
    pytest.importorskip("openvirl.envs.navigation.env")
    from openvirl.evaluation.tasks import TASKS

    if "nav-l" not in TASKS:
        pytest.skip("the nav-l evaluation task is not registered")
    run = viewer_data.eval_run(tmp_path / "nav", task="nav-l", episodes=1, report=False)
    client = TestClient(create_app([run], city_names=["manhattan"]), base_url=LOCAL)
    data = client.get("/api/runs/nav/episodes/0").json()
    track = data["track"]
    assert track["city"] == "manhattan" and len(track["route"]) >= 2 and track["rail"]
    assert len(track["poses"]) == len(data["steps"]) + 1
    page = client.get("/runs/nav/episodes/0")
    assert page.status_code == 200 and 'class="route"' in page.text
    assert "expected action here" in page.text and "Instruction" in page.text


def test_view_command_serves_on_loopback(runs, monkeypatch):
    import uvicorn
    from typer.testing import CliRunner

    from openvirl.cli import app as cli_app

    served = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    result = CliRunner().invoke(cli_app, ["view", str(runs["oracle"]), "--port", "8799"])
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8799/" in result.output
    assert served["host"] == "127.0.0.1" and served["port"] == 8799
    assert TestClient(served["app"], base_url=LOCAL).get("/runs/gp-l-oracle").status_code == 200
