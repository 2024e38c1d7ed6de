"""A real HTTP server on 127.0.0.1 that answers like Nominatim and Overpass, from bundled data.

Nominatim's ``/search?format=jsonv2`` answers a JSON list of places with ``boundingbox``
([south, north, west, east] as strings), ``lat``, ``lon``, ``display_name``, ``licence``,
``osm_type``, ``osm_id`` (as the public service documents). Overpass's ``/api/interpreter``
takes a POSTed ``data=`` query and answers OSM XML: here always the same cut of the bundled
Monaco extract (the Monte Carlo quarter), built once per test session with pyosmium: every way
with a node in the box, every node those ways use, and the tagged nodes in the box, nodes
first (the order Overpass's ``out body`` writes). Tests can queue failure statuses, turn on an
oversized answer and read the request log. No test touches the network.
"""

from __future__ import annotations

import json
import threading
import time
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from openvirl.world.catalog import cities_dir

MONTE_CARLO = (43.7355, 7.4215, 43.7425, 7.4310)
"""S W N E of the cut served as Overpass XML (about 0.8 km x 0.8 km of Monte Carlo)."""

PLACES = {
    "monte carlo, monaco": {
        "place_id": 1,
        "licence": "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright",
        "osm_type": "relation",
        "osm_id": 5986438,
        "lat": "43.7390",
        "lon": "7.4263",
        "category": "boundary",
        "type": "administrative",
        "place_rank": 16,
        "importance": 0.5,
        "addresstype": "suburb",
        "name": "Monte-Carlo",
        "display_name": "Monte-Carlo, Monaco",
        "boundingbox": ["43.7355", "43.7425", "7.4215", "7.4310"],
    },
    "monaco": {
        "place_id": 2,
        "licence": "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright",
        "osm_type": "relation",
        "osm_id": 1124039,
        "lat": "43.7384",
        "lon": "7.4246",
        "category": "boundary",
        "type": "administrative",
        "place_rank": 4,
        "importance": 0.8,
        "addresstype": "country",
        "name": "Monaco",
        "display_name": "Monaco",
        # The whole country with its waters: far above a small area limit.
        "boundingbox": ["43.5165", "43.7519", "7.4090", "7.5329"],
    },
}


@cache
def monte_carlo_xml(tmp_root: str) -> bytes:
    """OSM XML of `MONTE_CARLO`, cut from the bundled Monaco extract (cached per session)."""
    import osmium

    src = cities_dir() / "monaco.osm.pbf"
    s, w, n, e = MONTE_CARLO

    def inside(lat: float, lon: float) -> bool:
        return s <= lat <= n and w <= lon <= e

    keep_ways: set[int] = set()
    need_nodes: set[int] = set()
    for obj in osmium.FileProcessor(str(src)).with_locations():
        if obj.type_str() == "n" and len(obj.tags) and inside(obj.location.lat, obj.location.lon):
            need_nodes.add(obj.id)
        elif obj.type_str() == "w":
            refs = [nd for nd in obj.nodes if nd.location.valid()]
            if any(inside(nd.lat, nd.lon) for nd in refs):
                keep_ways.add(obj.id)
                need_nodes.update(nd.ref for nd in obj.nodes)
    out = Path(tmp_root) / "monte_carlo.osm"
    out.unlink(missing_ok=True)
    writer = osmium.SimpleWriter(str(out))
    try:
        for obj in osmium.FileProcessor(str(src)):
            kind = obj.type_str()
            if (kind == "n" and obj.id in need_nodes) or (kind == "w" and obj.id in keep_ways):
                writer.add(obj)
    finally:
        writer.close()
    return out.read_bytes()


class FakeOSMServer:
    """Nominatim + Overpass on ``http://127.0.0.1:<random port>``, served from a thread."""

    def __init__(self, xml: bytes) -> None:
        self.xml = xml
        self.requests: list[dict] = []
        self.fail_next: list[int] = []
        self.oversize = 0  # > 0: Overpass answers this many bytes of padding instead
        self.retry_after: str | None = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # quiet
                pass

            def _record(self, body: bytes = b"") -> dict:
                entry = {
                    "method": self.command,
                    "path": urlsplit(self.path).path,
                    "query": parse_qs(urlsplit(self.path).query),
                    "form": parse_qs(body.decode("utf-8")) if body else {},
                    "user_agent": self.headers.get("User-Agent", ""),
                    "time": time.monotonic(),
                }
                server.requests.append(entry)
                return entry

            def _send(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                if status == 429 and server.retry_after is not None:
                    self.send_header("Retry-After", server.retry_after)
                self.end_headers()
                self.wfile.write(body)

            def _maybe_fail(self) -> bool:
                if server.fail_next:
                    status = server.fail_next.pop(0)
                    self._send(status, b"<html><body>Too busy</body></html>", "text/html")
                    return True
                return False

            def do_GET(self) -> None:
                entry = self._record()
                if self._maybe_fail():
                    return
                if entry["path"] != "/search":
                    self._send(404, b"not found", "text/plain")
                    return
                q = " ".join(entry["query"].get("q", [""])[0].lower().split())
                hits = [PLACES[q]] if q in PLACES else []
                self._send(200, json.dumps(hits).encode("utf-8"), "application/json")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                entry = self._record(self.rfile.read(min(length, 1_000_000)))
                if self._maybe_fail():
                    return
                if entry["path"] != "/api/interpreter" or "data" not in entry["form"]:
                    self._send(400, b"<p>Error: no query</p>", "text/html")
                    return
                if server.oversize:
                    self._send(
                        200,
                        b"<?xml version='1.0'?><osm>" + b" " * server.oversize,
                        "application/osm3s+xml",
                    )
                    return
                self._send(200, server.xml, "application/osm3s+xml")

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def nominatim_url(self) -> str:
        return self.url

    @property
    def overpass_url(self) -> str:
        return f"{self.url}/api/interpreter"

    def start(self) -> FakeOSMServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def count(self, path: str) -> int:
        return sum(1 for r in self.requests if r["path"] == path)
