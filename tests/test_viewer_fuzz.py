"""A bounded fuzz of the viewer: hostile run folders and requests, no 500s, bounded memory.

Run folders are built from a fixed seed out of the shapes that broke the viewer before (wrong
JSON types, deep nesting, huge numbers, lone surrogates, markup, non-UTF-8 bytes, FIFOs, links
to ``/dev/zero`` and outside the folder, folders where files belong); requests walk every page
and API route with ids, indices, filters, file names and city names from the same kind of
menu. Everything runs in-process through FastAPI's TestClient (no socket), with a cap on the
number of requests and on the wall time. Asserted: no response is a 5xx (except 501 where
street views are not built), no markup from a file reaches a page unescaped, the cities in
memory stay within the viewer's bound, and the process grows by less than `MAX_GROWTH_MB`.
"""

from __future__ import annotations

import json
import os
import random
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from openvirl.viewer import create_app

SEED = 17
N_FOLDERS = 24
MAX_REQUESTS = 900
MAX_SECONDS = 90.0
MAX_GROWTH_MB = 400
CITY = "monaco"
MARK = "<script>fuzz()</script>"

HOSTILE_VALUES: list = [
    MARK, "<img src=x onerror=fuzz()>", "\ud800", "", " ", "a" * 5000, "../../etc/passwd",
    "/etc/passwd", "monaco", "MONACO", 0, -1, 1, 2**63, 10**400, -(10**400), 1e308, -1e308,
    float("nan"), float("inf"), True, False, None, [], {}, [1, 2], [MARK, None], {"a": MARK},
    ["a", "b"], [0.1, "x"], {"lat": "x"},
]  # fmt: skip
METRIC_KEYS = [
    "task", "split", "policy", "eval/success", "eval/success_ci95", "eval/episodes",
    "episodes_planned", "complete", "error", "eval/per_step_accuracy",
    "eval/by_n_solutions/1/episodes", "eval/by_n_solutions/1/success",
    f"eval/by_n_solutions/{MARK}/success", "eval/by_needs_fractions/yes/success_ci95",
    "eval/outcomes/correct", f"eval/outcomes/{MARK}", "eval/mean_return", "accuracy", "score",
]  # fmt: skip
RECORD_KEYS = [
    "index", "task", "split", "policy", "success", "episode_outcome", "steps", "reset_info",
    "total_reward", "image", "city", "route", "route_id", "seed", "prompt", "outcome",
]  # fmt: skip
FILE_NAMES = [
    "config.json", "metrics.json", "trajectories.jsonl", "report.html", "report.md",
    ".env", ".ssh/id_rsa", "plots/a.png", "images/0.png", "../secret.txt", "%2e%2e/x",
    "plots/../../secret.txt", "a" * 300, "suite.json", "sessions.jsonl", "images/.x.png",
]  # fmt: skip
CITY_NAMES = [CITY, "Monaco", "MONACO", "mOnAcO", "/etc/passwd", "..%2Fx", "atlantis", "nyc",
              "x" * 200, "%00", MARK]  # fmt: skip


def _value(rng: random.Random, depth: int = 0):
    if depth < 3 and rng.random() < 0.15:
        return {str(rng.choice(RECORD_KEYS)): _value(rng, depth + 1) for _ in range(3)}
    if depth < 3 and rng.random() < 0.1:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return rng.choice(HOSTILE_VALUES)


def _dumps(value) -> str:
    return json.dumps(value, allow_nan=True)


def _step(rng: random.Random):
    if rng.random() < 0.2:
        return _value(rng)
    return {k: _value(rng) for k in rng.sample(["action", "reward", "outcome", "feedback",
                                                "image", "info", "prompt"], 4)}  # fmt: skip


def _record(rng: random.Random, index: int):
    record = {k: _value(rng) for k in rng.sample(RECORD_KEYS, rng.randint(2, len(RECORD_KEYS)))}
    if rng.random() < 0.7:
        record["index"] = index
    if rng.random() < 0.7:
        record["steps"] = [_step(rng) for _ in range(rng.randint(0, 4))]
    if rng.random() < 0.3:
        record["reset_info"] = {"cards": _value(rng), "card_codes": _value(rng),
                                "instruction": _value(rng), "target": _value(rng)}  # fmt: skip
    return record


def _write(path: Path, rng: random.Random, content: str) -> None:
    """`content` as the file, or one of the hostile forms of a file."""
    form = rng.random()
    if form < 0.06 and hasattr(os, "mkfifo"):
        os.mkfifo(path)
    elif form < 0.11:
        path.symlink_to("/dev/zero")
    elif form < 0.15:
        path.symlink_to(path.parent.parent / "secret.txt")
    elif form < 0.19:
        path.mkdir()
    elif form < 0.24:
        path.write_bytes(b"\xff\xfe\x00garbage")
    elif form < 0.28:
        path.write_text("")
    else:
        path.write_text(content, encoding="utf-8", errors="surrogatepass")


def _folder(root: Path, rng: random.Random, n: int) -> Path:
    folder = root / f"run{n:02d}"
    folder.mkdir()
    metrics = {k: _value(rng) for k in rng.sample(METRIC_KEYS, rng.randint(1, len(METRIC_KEYS)))}
    config = {"config": {"task": _value(rng), "city": _value(rng)}, "task": _value(rng)}
    if rng.random() < 0.2:
        config = _value(rng)
    _write(folder / "config.json", rng, _dumps(config))
    if rng.random() < 0.8:
        _write(folder / "metrics.json", rng, _dumps(metrics if rng.random() < 0.9 else [1]))
    if rng.random() < 0.25:
        rows = [{k: _value(rng) for k in ("task", "split", "episodes", "value", "ci95",
                                          "metric", "paper", "run")} for _ in range(2)]  # fmt: skip
        suite = {"rows": rows if rng.random() < 0.7 else _value(rng), "suite": _value(rng)}
        _write(folder / "suite.json", rng, _dumps(suite))
        member = folder / "gp-l__id"
        member.mkdir()
        (member / "metrics.json").write_text(_dumps(metrics))
    if rng.random() < 0.3:
        kind = rng.choice(["agent", "benchmark", MARK, 5])
        _write(folder / "manifest.json", rng, _dumps({"kind": kind, "name": _value(rng)}))
        _write(folder / "result.json", rng, _dumps(_value(rng)))
    lines = []
    for index in range(rng.randint(0, 6)):
        shape = rng.random()
        if shape < 0.08:
            lines.append("[" * rng.choice([100, 5000, 100_000]))
        elif shape < 0.12:
            lines.append('{"index": 1, "x": ' + "[" * 120 + "]" * 120 + "}")
        elif shape < 0.16:
            lines.append(_dumps(_value(rng)))
        else:
            lines.append(_dumps(_record(rng, index)))
    tail = "" if rng.random() < 0.8 else '{"index": 99, "half'
    _write(folder / "trajectories.jsonl", rng, "\n".join(lines) + "\n" + tail)
    if rng.random() < 0.3:
        (folder / ".env").write_text("SECRET=fuzz")
        (folder / "plots").mkdir()
        (folder / "plots" / "a.png").write_bytes(b"\x89PNG\r\n\x1a\n")
        (folder / "plots" / "b.svg").write_text(f"<svg>{MARK}</svg>")
    return folder


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError):
        return 0.0


def _requests(rng: random.Random, run_ids: list[str]) -> list[str]:
    urls = ["/", "/episodes", "/api/runs", "/api/episodes", "/api/health", "/cities", "/compare"]
    for run_id in [*run_ids, "nope", MARK]:
        urls += [f"/runs/{run_id}", f"/episodes?run={run_id}", f"/api/runs/{run_id}",
                 f"/api/runs/{run_id}/episodes?limit=5", f"/runs/{run_id}/episodes"]  # fmt: skip
        for index in (0, 1, 2, 99, -1):
            urls += [f"/runs/{run_id}/episodes/{index}?step={rng.choice([1, 2, 50])}",
                     f"/api/runs/{run_id}/episodes/{index}",
                     f"/api/runs/{run_id}/episodes/{index}/image.png",
                     f"/api/runs/{run_id}/episodes/{index}/map.svg"]  # fmt: skip
        urls += [f"/runs/{run_id}/files/{rng.choice(FILE_NAMES)}" for _ in range(3)]
    for _ in range(40):
        a, b = rng.choice(run_ids), rng.choice([*run_ids, "nope"])
        urls += [f"/compare?a={a}&b={b}", f"/api/compare?a={a}&b={b}"]
        urls.append(
            f"/episodes?run={rng.choice(run_ids)}&task={rng.choice(['gp-l', MARK, ''])}"
            f"&success={rng.choice(['yes', 'no', 'maybe'])}&outcome={rng.choice(['x', ''])}"
            f"&page={rng.choice([1, 2, 10**6])}"
        )
    for name in CITY_NAMES:
        urls += [f"/api/cities/{name}", f"/cities/{name}", f"/api/cities/{name}/search?q=cafe",
                 f"/api/cities/{name}/reverse?lat=43.73&lon=7.42"]  # fmt: skip
    for _ in range(12):
        lat = rng.choice(["43.7396", "nan", "1e400", "-91", "abc", ""])
        lon = rng.choice(["7.4276", "inf", "", "0"])
        fov = rng.choice(["90", "150", "1e9", "-5", "nan"])
        heading = rng.choice(["0", "1e308", "nan", "-720"])
        urls.append(f"/cities/{CITY}?lat={lat}&lon={lon}&fov={fov}&heading={heading}&q={MARK}")
        urls.append(
            f"/api/cities/{CITY}/streetview.png?lat={lat}&lon={lon}&fov={fov}"
            f"&heading={heading}&size=32"
        )
        urls.append(f"/cities/{CITY}?from={rng.choice([MARK, '0,0', 'cafe'])}&to=pharmacy")
    rng.shuffle(urls)
    return urls[:MAX_REQUESTS]


def test_hostile_run_folders_and_requests_never_give_500s(tmp_path):
    rng = random.Random(SEED)
    (tmp_path / "secret.txt").write_text("SECRET=outside")
    root = tmp_path / "runs"
    root.mkdir()
    folders = [_folder(root, rng, n) for n in range(N_FOLDERS)]
    app = create_app([*folders, root / "missing"], city_names=[CITY])
    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    run_ids = [r["id"] for r in client.get("/api/runs").json()]
    assert len(run_ids) >= N_FOLDERS
    start, base = time.monotonic(), _rss_mb()
    peak, failures, done = base, [], 0
    for url in _requests(rng, run_ids):
        if time.monotonic() - start > MAX_SECONDS:
            break
        response = client.get(url)
        done += 1
        peak = max(peak, _rss_mb())
        if response.status_code >= 500 and response.status_code != 501:
            failures.append((url, response.status_code, response.text[:200]))
        page = response.headers.get("content-type", "").startswith("text/html")
        if page and "/files/" not in url and MARK in response.text:
            failures.append((url, "unescaped markup", ""))
        assert response.headers.get("x-content-type-options") == "nosniff", url
        assert "SECRET=" not in response.text, url
    assert done >= 100, f"only {done} requests in {MAX_SECONDS} s"
    assert not failures, failures[:10]
    assert len(app.state.cities.loaded()) <= app.state.cities.max_loaded
    assert peak - base < MAX_GROWTH_MB, f"grew by {peak - base:.0f} MB"
