"""A loopback server that answers like Google Street View, Google Places and Mapillary.

Responses follow each provider's documented formats (Street View metadata `status` values,
the Places web-service JSON, Mapillary's Graph API `{"data": [...]}` and `{"error": {...}}`),
so the providers are tested through real HTTP without the network. The key decides the
outcome: "good" answers, "bad" is rejected, "quota" is over its limit. Locations inside
`box` have imagery; anything else has none (ZERO_RESULTS / empty data).
"""

from __future__ import annotations

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from PIL import Image

# Equirectangular test panorama: four 90°-wide colour bands, north band first from column 0.
BAND_COLOURS = [(220, 30, 30), (30, 200, 30), (30, 30, 220), (230, 230, 30)]


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95)
    return buf.getvalue()


def band_panorama(width: int = 720, height: int = 360) -> Image.Image:
    """Columns [k*w/4, (k+1)*w/4) are BAND_COLOURS[k]."""
    im = Image.new("RGB", (width, height))
    for k, colour in enumerate(BAND_COLOURS):
        im.paste(colour, (k * width // 4, 0, (k + 1) * width // 4, height))
    return im


class FakeProviders:
    """Run the fake server on 127.0.0.1 in a thread; `url` is its base URL."""

    def __init__(self, box: tuple[float, float, float, float], places: list[dict[str, Any]]):
        self.box = box  # south, west, north, east
        self.places = places
        self.hits: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(parts.query).items()}
                owner.hits.append(parts.path)
                try:
                    status, ctype, body = owner.answer(parts.path, q, dict(self.headers))
                except Exception as err:  # the fake must never hang a test
                    status, ctype, body = 500, "text/plain", repr(err).encode()
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

    def inside(self, lat: float, lon: float) -> bool:
        s, w, n, e = self.box
        return s <= lat <= n and w <= lon <= e

    # ------------------------------------------------------------------ answers
    def answer(self, path: str, q: dict[str, str], headers: dict[str, str]):
        if path.startswith("/maps/api/"):
            return self._google(path, q)
        if path == "/images":
            return self._mapillary(q, headers)
        if path.startswith("/thumbs/"):
            return 200, "image/jpeg", _jpeg(band_panorama())
        return 404, "text/plain", b"not found"

    @staticmethod
    def _json(data: Any, status: int = 200):
        return status, "application/json; charset=UTF-8", json.dumps(data).encode()

    def _google(self, path: str, q: dict[str, str]):
        key = q.get("key", "")
        if path == "/maps/api/streetview":  # the image endpoint answers errors in plain text
            if key != "good":
                return 403, "text/plain", b"The Google Maps Platform server rejected your request."
            w, h = (int(v) for v in q["size"].split("x"))
            shade = int(float(q.get("heading", 0)) / 360 * 255)
            return 200, "image/jpeg", _jpeg(Image.new("RGB", (w, h), (shade, 128, 255 - shade)))
        if key == "bad":
            return self._json(
                {"status": "REQUEST_DENIED", "error_message": "The provided API key is invalid."}
            )
        if key == "quota":
            return self._json({"status": "OVER_QUERY_LIMIT", "error_message": "Quota exceeded."})
        if path == "/maps/api/streetview/metadata":
            lat, lon = (float(v) for v in q["location"].split(","))
            if not self.inside(lat, lon):
                return self._json({"status": "ZERO_RESULTS"})
            return self._json(
                {
                    "copyright": "© 2024 Google",
                    "date": "2024-05",
                    "location": {"lat": lat + 1e-5, "lng": lon},
                    "pano_id": f"pano_{lat:.4f}_{lon:.4f}",
                    "status": "OK",
                }
            )
        if path in ("/maps/api/place/textsearch/json", "/maps/api/place/nearbysearch/json"):
            results = self.places
            if "type" in q:
                results = [r for r in results if q["type"] in r["types"]]
            if "query" in q:
                words = q["query"].lower().split()
                results = [r for r in results if any(w in r["name"].lower() for w in words)]
            if not results:
                return self._json(
                    {"html_attributions": [], "results": [], "status": "ZERO_RESULTS"}
                )
            return self._json({"html_attributions": [], "results": results, "status": "OK"})
        if path == "/maps/api/place/details/json":
            for r in self.places:
                if r["place_id"] == q.get("place_id"):
                    return self._json({"html_attributions": [], "result": r, "status": "OK"})
            return self._json({"html_attributions": [], "status": "NOT_FOUND"})
        return self._json({"status": "INVALID_REQUEST"}, 400)

    def _mapillary(self, q: dict[str, str], headers: dict[str, str]):
        auth = headers.get("Authorization", "")
        if auth == "OAuth quota":
            return self._json({"error": {"message": "rate limit", "code": 613}}, 429)
        if auth != "OAuth good":
            return self._json(
                {
                    "error": {
                        "message": "Invalid OAuth access token - Cannot parse access token",
                        "type": "OAuthException",
                        "code": 190,
                    }
                },
                401,
            )
        w, s, e, n = (float(v) for v in q["bbox"].split(","))
        lat, lon = (s + n) / 2, (w + e) / 2
        if not self.inside(lat, lon):
            return self._json({"data": []})
        item = {
            "id": "1001",
            "computed_geometry": {"type": "Point", "coordinates": [lon, lat]},
            "compass_angle": 180.0,  # the panorama's centre column looks south
            "is_pano": True,
            "captured_at": 1700000000000,
            "creator": {"username": "walker", "id": "7"},
            "thumb_2048_url": f"{self.url}/thumbs/1001.jpg",
        }
        return self._json({"data": [item]})
