"""The viewer under hostile input (issue 17): each test here fails on the viewer before it.

Cities are catalog names only, loaded once per real name and kept in a bounded LRU; values from
run files are escaped; only a run's own artifacts are served; Host names are checked and a
token guards a viewer beyond loopback; FIFOs, devices and deep JSON neither hang nor break
pages; every response carries nosniff and a Content Security Policy; the field of view stays
in the renderer's range.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from openvirl.viewer import create_app
from openvirl.viewer.security import FILE_CSP, PAGE_CSP, host_name

LOCAL = "http://127.0.0.1"
CITY = "monaco"
XSS = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(2)>"


def _client(app) -> TestClient:
    return TestClient(app, base_url=LOCAL, raise_server_exceptions=False)


def _record(index: int, **extra) -> dict:
    record = {
        "index": index,
        "task": "gp-l",
        "split": "id",
        "policy": "oracle",
        "success": index % 2 == 0,
        "episode_outcome": "correct" if index % 2 == 0 else "wrong_value",
        "steps": [{"action": "(1+2)*8", "reward": 1.0, "outcome": "correct"}],
    }
    record.update(extra)
    return record


def _run(folder: Path, *, metrics=None, config=None, records=(), suite=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(config if config is not None else {"config": {"task": "gp-l"}})
    )
    if metrics is not None:
        text = metrics if isinstance(metrics, str) else json.dumps(metrics)
        (folder / "metrics.json").write_text(text)
    if suite is not None:
        (folder / "suite.json").write_text(json.dumps(suite))
    if records:
        lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
        (folder / "trajectories.jsonl").write_text("\n".join(lines) + "\n")
    return folder


class _CountingLoad:
    """Stands in for `City.load`: records every name asked for, loads the real city once."""

    def __init__(self, monkeypatch) -> None:
        from openvirl.world import City

        self.calls: list[str] = []
        self._real = City.load
        self._cache: dict[str, object] = {}
        monkeypatch.setattr(City, "load", self)

    def __call__(self, name, **kwargs):
        self.calls.append(name)
        if name not in self._cache:
            self._cache[name] = self._real(name, **kwargs)
        return self._cache[name]


# ---------------------------------------------------------------------------- cities (high)
def test_every_spelling_of_a_city_shares_one_loaded_copy(monkeypatch):
    load = _CountingLoad(monkeypatch)
    app = create_app([], city_names=None)
    client = _client(app)
    for spelling in ("monaco", "Monaco", "MONACO", "mOnAcO", " monaco"):
        r = client.get(f"/api/cities/{spelling}")
        assert r.status_code == 200, spelling
        assert r.json()["name"].lower() == CITY
    assert load.calls == [CITY]
    assert app.state.cities.loaded() == [CITY]
    page = client.get("/cities/MONACO")
    assert page.status_code == 200 and "/cities/monaco" in page.text
    assert load.calls == [CITY]


def test_loaded_cities_are_a_bounded_lru(monkeypatch):
    from openvirl.world import City, catalog

    names = [e.name for e in catalog.list_cities()][:3]
    assert len(names) == 3

    class Fake:
        def __init__(self, name: str) -> None:
            self.name = name

        def stats(self) -> dict:
            return {"name": self.name}

    calls: list[str] = []
    monkeypatch.setattr(City, "load", lambda name, **kw: calls.append(name) or Fake(name))
    app = create_app([], max_loaded_cities=2)
    client = _client(app)
    for name in (*names, names[0], names[2]):
        assert client.get(f"/api/cities/{name.upper()}").status_code == 200
    assert app.state.cities.loaded() == [names[0], names[2]]
    assert calls == [names[0], names[1], names[2], names[0]]  # names[0] was dropped, reloaded


def test_paths_and_unknown_names_are_refused_never_parsed(monkeypatch, tmp_path):
    from openvirl.world import catalog

    load = _CountingLoad(monkeypatch)
    osm_file = next(e for e in catalog.list_cities() if e.name == CITY).files[0]
    assert Path(osm_file).is_file()
    run = _run(
        tmp_path / "hostile-city",
        records=[
            _record(0, city="/etc/passwd", route=[[43.73, 7.42], [43.74, 7.43]]),
            _record(1, city=str(osm_file), route=[[43.73, 7.42], [43.74, 7.43]]),
        ],
    )
    client = _client(create_app([run]))
    quoted = str(osm_file).replace("/", "%2F")
    for url in (
        f"/api/cities/{quoted}",
        f"/cities/{quoted}",
        "/api/cities/%2Fetc%2Fpasswd",
        "/cities/..%2F..%2Fetc%2Fpasswd",
        "/api/cities/atlantis/search?q=x",
        f"/api/cities/{'x' * 5000}",
    ):
        r = client.get(url)
        assert r.status_code == 404, url
    for index in (0, 1):
        page = client.get(f"/runs/hostile-city/episodes/{index}")
        assert page.status_code == 200 and "its route is not drawn" in page.text
        assert client.get(f"/api/runs/hostile-city/episodes/{index}/map.svg").status_code == 404
    assert load.calls == []  # nothing was parsed as OSM


# ---------------------------------------------------------------------------- escaping (medium)
def test_values_from_metrics_json_are_escaped_and_numbers_shown_as_numbers(tmp_path):
    metrics = {
        "task": "gp-l",
        "eval/success": 0.5,
        "eval/episodes": XSS,
        "eval/by_n_solutions/1/episodes": IMG,
        "eval/by_n_solutions/1/success": 0.5,
        f"eval/by_n_solutions/{XSS}/episodes": 3,
        f"eval/outcomes/{IMG}": 0.5,
        "episodes_planned": 4,
    }
    run = _run(tmp_path / "xss", metrics=metrics, records=[_record(0)])
    suite = _run(
        tmp_path / "suite-xss",
        suite={"suite": XSS, "rows": [{"task": XSS, "split": "id", "episodes": IMG,
                                      "value": 0.5, "metric": IMG}]},
    )  # fmt: skip
    client = _client(create_app([run, suite]))
    for url in ("/", "/runs/xss", "/runs/suite-xss", "/compare?a=xss&b=suite-xss"):
        r = client.get(url)
        assert r.status_code == 200, url
        assert "<script>alert" not in r.text and "<img src=x" not in r.text, url
    page = client.get("/runs/xss").text
    assert "&lt;script&gt;" in page  # shown, as text
    row = page.split("Success by solutions per hand", 1)[1]
    assert "<td class='num'>—</td>" in row  # a non-number count is a dash, not raw text


# ---------------------------------------------------------------------------- files (medium)
def test_a_bare_trajectories_file_serves_only_itself_and_its_images(tmp_path):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("PRIVATE KEY")
    (home / ".env").write_text("SECRET=1")
    (home / "notes.txt").write_text("private notes")
    (home / "config.json").write_text("{}")
    (home / "images").mkdir()
    (home / "images" / "0.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    (home / "images" / "other.png").write_bytes(b"\x89PNG\r\n\x1a\nfake")
    records = [_record(0, image="images/0.png"), _record(1, image=".env")]
    (home / "trajectories.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    client = _client(create_app([home / "trajectories.jsonl"]))
    run_id = client.get("/api/runs").json()[0]["id"]
    ok = client.get(f"/runs/{run_id}/files/trajectories.jsonl")
    assert ok.status_code == 200 and ok.headers["content-type"].startswith("text/plain")
    assert client.get(f"/runs/{run_id}/files/images/0.png").status_code == 200
    for rel in (".env", ".ssh/id_rsa", ".ssh%2Fid_rsa", "notes.txt", "config.json",
                "images/other.png", "images/../.env", "./.env"):  # fmt: skip
        r = client.get(f"/runs/{run_id}/files/{rel}")
        assert r.status_code == 404, rel
        assert "SECRET" not in r.text and "PRIVATE" not in r.text
    assert client.get(f"/api/runs/{run_id}/episodes/1/image.png").status_code in (200, 404)
    assert "SECRET" not in client.get(f"/api/runs/{run_id}/episodes/1/image.png").text


def test_run_folders_serve_no_dotfiles_and_no_unknown_files(tmp_path):
    run = _run(tmp_path / "r", metrics={"eval/success": 1.0}, records=[_record(0)])
    (run / ".env").write_text("SECRET=1")
    (run / "secret.txt").write_text("SECRET")
    (run / "plots").mkdir()
    (run / "plots" / ".hidden.png").write_bytes(b"SECRET")
    (run / "plots" / "ok.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    client = _client(create_app([run]))
    assert client.get("/runs/r/files/metrics.json").status_code == 200
    assert client.get("/runs/r/files/plots/ok.png").status_code == 200
    for rel in (".env", "secret.txt", "plots/.hidden.png"):
        assert client.get(f"/runs/r/files/{rel}").status_code == 404, rel


def _within(seconds: float, fn):
    """fn() run in a thread; fails (instead of hanging the suite) when it takes longer."""
    box: dict = {}
    worker = threading.Thread(target=lambda: box.update(value=fn()), daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s (blocked on a FIFO?)"
    return box["value"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_and_dev_zero_run_files_neither_hang_nor_fill_memory(tmp_path):
    fifo = _run(tmp_path / "fifo", records=[_record(0)])
    os.mkfifo(fifo / "metrics.json")
    zero = _run(tmp_path / "zero", records=[_record(0)])
    (zero / "metrics.json").symlink_to("/dev/zero")
    os.mkfifo(zero / "report.md")
    client = _client(create_app([fifo, zero]))

    urls = (
        "/api/health", "/", "/runs/fifo", "/runs/zero", "/episodes",
        "/runs/fifo/files/metrics.json", "/runs/zero/files/metrics.json",
        "/runs/zero/files/report.md",
    )  # fmt: skip

    def visit() -> list:
        return [client.get(url) for url in urls]

    health, home, fifo_page, zero_page, episodes, *files = _within(30, visit)
    assert health.status_code == home.status_code == episodes.status_code == 200
    assert fifo_page.status_code == 200 and "not a regular file" in fifo_page.text
    assert zero_page.status_code == 200 and "not a regular file" in zero_page.text
    assert [f.status_code for f in files] == [404, 404, 404]


# ---------------------------------------------------------------------------- host and token
def test_only_loopback_host_names_are_answered(tmp_path):
    app = create_app([_run(tmp_path / "r", metrics={"eval/success": 1.0})])
    for host in ("127.0.0.1", "127.0.0.1:8765", "localhost:8765", "[::1]:8765", "LOCALHOST"):
        assert TestClient(app, base_url=f"http://{host}").get("/").status_code == 200, host
    for host in ("evil.example", "evil.example:8765", "127.0.0.1.evil.example", "0.0.0.0"):
        client = TestClient(app, base_url=f"http://{host}")
        assert client.get("/").status_code == 400, host
        api = client.get("/api/runs")
        assert api.status_code == 400 and "loopback" in api.json()["error"]
        assert client.get("/runs/r/files/metrics.json").status_code == 400
    assert host_name("[::1]:80") == "::1"


def test_a_token_guards_every_request(tmp_path):
    token = "s3cret-token-123"
    app = create_app(
        [_run(tmp_path / "r", metrics={"eval/success": 1.0})], token=token, allowed_hosts=["*"]
    )
    client = TestClient(app, base_url="http://10.0.0.5:8765")
    assert client.get("/").status_code == 401
    assert client.get("/api/runs").status_code == 401
    assert client.get("/?token=wrong").status_code == 401
    assert client.get("/static/viewer.js").status_code == 401
    first = client.get(f"/?token={token}")
    assert first.status_code == 200 and "openvirl_view_token" in first.headers["set-cookie"]
    assert "httponly" in first.headers["set-cookie"].lower()
    assert client.get("/runs/r").status_code == 200  # the cookie carries it from here
    bare = TestClient(app, base_url="http://10.0.0.5:8765")
    assert bare.get("/api/runs", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_view_command_needs_a_token_beyond_loopback(monkeypatch, tmp_path):
    import uvicorn
    from typer.testing import CliRunner

    from openvirl.cli import app as cli_app

    served: dict = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.update(app=app, **kw))
    runner = CliRunner()
    refused = runner.invoke(cli_app, ["view", str(tmp_path), "--host", "0.0.0.0"])
    assert refused.exit_code == 2 and "--token" in refused.output and not served
    for bad in (["--port", "99999"], ["--city", "/etc/passwd"], ["--city", "atlantis"]):
        result = runner.invoke(cli_app, ["view", str(tmp_path), *bad])
        assert result.exit_code == 2, bad
        assert "Traceback" not in result.output and "error:" in result.output
    ok = runner.invoke(
        cli_app, ["view", str(tmp_path), "--host", "0.0.0.0", "--token", "long-enough-token"]
    )
    assert ok.exit_code == 0, ok.output
    assert "warning" in ok.output and served["host"] == "0.0.0.0"
    assert "?token=long-enough-token" in ok.output
    client = TestClient(served["app"], base_url="http://192.168.1.9:8765")
    assert client.get("/").status_code == 401
    assert client.get("/?token=long-enough-token").status_code == 200


# ---------------------------------------------------------------------------- hostile files (low)
def test_deep_json_lines_and_wrong_types_give_pages_not_500s(tmp_path):
    deep = _run(
        tmp_path / "deep",
        records=[_record(0), "[" * 100_000, '{"index": 5, "x": ' + "[" * 900 + "]" * 900 + "}"],
    )
    typed = _run(
        tmp_path / "typed",
        metrics={"eval/success": "high", "eval/success_ci95": ["a", None], "eval/episodes": [1],
                 "episodes_planned": "many", "complete": "yes", "error": {"x": 1}},
        config={"task": 5, "config": [], "episodes": "x"},
        records=[_record(0, total_reward="lots", reset_info=[1])],
    )  # fmt: skip
    suite = _run(tmp_path / "suite", suite={"rows": "not a list", "complete": 3})
    suite2 = _run(tmp_path / "suite2", suite={"rows": [1, {"episodes": "x", "paper": []}]})
    client = _client(create_app([deep, typed, suite, suite2]))
    for url in ("/", "/episodes", "/api/episodes", "/runs/deep", "/runs/typed", "/runs/suite",
                "/runs/suite2", "/compare?a=typed&b=suite", "/compare?a=suite2&b=deep",
                "/api/compare?a=typed&b=suite2", "/runs/typed/episodes/0",
                "/api/runs/typed/episodes/0"):  # fmt: skip
        assert client.get(url).status_code == 200, url
    episodes = client.get("/episodes?run=deep").text
    assert "are not JSON records" in episodes
    assert "`rows` is not a list" in client.get("/runs/suite").text
    assert "some `rows` are not objects" in client.get("/runs/suite2").text


# ---------------------------------------------------------------------------- headers, fov (low)
def test_every_response_has_nosniff_and_served_files_are_sandboxed(tmp_path):
    run = _run(tmp_path / "r", metrics={"eval/success": 1.0})
    (run / "report.html").write_text("<html><script>alert(document.cookie)</script></html>")
    (run / "plots").mkdir()
    (run / "plots" / "x.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>")
    client = _client(create_app([run], city_names=[CITY]))
    for url in ("/", "/runs/r", "/nope", "/api/runs", "/static/viewer.js", "/api/nope",
                "/runs/r/files/report.html", "/runs/r/files/plots/x.svg"):  # fmt: skip
        r = client.get(url)
        assert r.headers["x-content-type-options"] == "nosniff", url
        assert "content-security-policy" in r.headers, url
    for url in ("/runs/r/files/report.html", "/runs/r/files/plots/x.svg"):
        policy = client.get(url).headers["content-security-policy"]
        assert policy == FILE_CSP and "sandbox" in policy and "default-src 'none'" in policy
    assert client.get("/runs/r").headers["content-security-policy"] == PAGE_CSP


def test_field_of_view_stays_in_the_renderers_range():
    from openvirl.world.streetview import FOV_MAX_DEG

    client = _client(create_app([], city_names=[CITY]))
    params = {"lat": 43.7396, "lon": 7.4276, "heading": 0, "size": 64}
    wide = client.get(f"/api/cities/{CITY}/streetview.png", params={**params, "fov": 150})
    assert wide.status_code == 400 and f"{FOV_MAX_DEG:g}" in wide.json()["error"]
    nan = client.get(f"/api/cities/{CITY}/streetview.png", params={**params, "fov": "nan"})
    assert nan.status_code == 400
    page = client.get(f"/cities/{CITY}", params={"lat": 43.7396, "lon": 7.4276, "fov": 150})
    assert page.status_code == 200 and f"fov {FOV_MAX_DEG:.0f}°" in page.text
    assert "fov=150" not in page.text
