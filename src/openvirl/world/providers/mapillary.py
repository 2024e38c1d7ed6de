"""Mapillary's open street-level imagery as a view source (Graph API v4, free access token).

Mapillary images are CC BY-SA 4.0: each view carries `info["attribution"]` naming Mapillary and
the photographer, to be shown with it. The nearest 360° panorama within `radius_m` is cropped to
the requested pinhole view (the same `equirect_to_pinhole` as user panoramas); where there is
none, the nearest flat photo whose camera faces within half the field of view of the heading is
used, centre-cropped to the requested aspect. Image lists and downloads are cached on disk with
no expiry (the licence allows it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from PIL import Image

from openvirl.world.providers.errors import (
    KeyRejectedError,
    NoImageryError,
    ProviderUnavailableError,
    QuotaExceededError,
)
from openvirl.world.providers.google import _decode_image
from openvirl.world.providers.http import (
    ProviderHTTP,
    ResponseCache,
    resolve_base_url,
    resolve_key,
)

KEY_ENV = ("MAPILLARY_ACCESS_TOKEN",)
URL_ENV = "OPENVIRL_MAPILLARY_URL"
DEFAULT_URL = "https://graph.mapillary.com"
KEY_HOW = "create a free client token at mapillary.com/dashboard/developers."
FIELDS = (
    "id,computed_geometry,geometry,compass_angle,computed_compass_angle,is_pano,captured_at,"
    "creator,thumb_2048_url"
)
_M_PER_DEG = 111_320.0


def _angle_diff(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


class MapillaryViewSource:
    """Views from Mapillary (a `ViewSource`; see `GoogleStreetViewSource` for how to plug it).

    Parameters
    ----------
    token
        Client access token; default `MAPILLARY_ACCESS_TOKEN`.
    base_url
        Default `OPENVIRL_MAPILLARY_URL`, else https://graph.mapillary.com.
    radius_m
        How far from the point an image may be.
    fallback
        Where to get a view when Mapillary has none nearby; None raises `NoImageryError`.
    cache, transport
        As for `GoogleStreetViewSource` (no expiry: the imagery is openly licensed).
    """

    max_pitch_deg = 90.0
    name = "mapillary"

    def __init__(
        self,
        token: str | None = None,
        *,
        base_url: str | None = None,
        radius_m: float = 30.0,
        fallback: Any = None,
        cache: ResponseCache | None = None,
        transport: Any = None,
    ) -> None:
        self._token = resolve_key(token, KEY_ENV, provider="Mapillary", how=KEY_HOW)
        self.base_url = resolve_base_url(base_url, URL_ENV, DEFAULT_URL)
        self.radius_m = float(radius_m)
        self.fallback = fallback
        self.cache = cache or ResponseCache("mapillary")
        self.http = ProviderHTTP("Mapillary", self.base_url, transport=transport)
        self.last_attribution: str | None = None

    def images_near(self, lat: float, lon: float) -> list[dict[str, Any]]:
        """Images within `radius_m` of the point, nearest first, with `distance_m`."""
        dlat = self.radius_m / _M_PER_DEG
        dlon = self.radius_m / (_M_PER_DEG * max(0.05, math.cos(math.radians(lat))))
        bbox = f"{lon - dlon:.6f},{lat - dlat:.6f},{lon + dlon:.6f},{lat + dlat:.6f}"
        params = {"bbox": bbox, "fields": FIELDS, "limit": "100"}
        ck = self.cache.key("images", self.base_url, params)
        data = self.cache.get_json(ck)
        if data is None:
            status, body, _ = self.http.get(
                "images", params, headers={"Authorization": f"OAuth {self._token}"}
            )
            data = self.http.json(body)
            self._check(status, data)
            self.cache.put_json(ck, data)
        out = []
        for item in data.get("data") or []:
            if not isinstance(item, Mapping):
                continue
            geom = item.get("computed_geometry") or item.get("geometry") or {}
            try:
                ilon, ilat = (float(v) for v in geom["coordinates"][:2])
            except (KeyError, TypeError, ValueError):
                continue
            d = math.hypot(
                (ilat - lat) * _M_PER_DEG,
                (ilon - lon) * _M_PER_DEG * math.cos(math.radians(lat)),
            )
            if d <= self.radius_m and item.get("thumb_2048_url"):
                out.append({**item, "lat": ilat, "lon": ilon, "distance_m": d})
        out.sort(key=lambda r: (r["distance_m"], str(r.get("id"))))
        return out

    @staticmethod
    def _check(status: int, data: Any) -> None:
        """Map a Graph API error (`{"error": {"message", "type", "code"}}`) to our errors."""
        err = data.get("error") if isinstance(data, Mapping) else None
        if status == 200 and not err:
            return
        message = str((err or {}).get("message") or f"HTTP {status}")[:200]
        code = (err or {}).get("code")
        if (
            status in (401, 403)
            or code in (190, 102)
            or (err or {}).get("type") == "OAuthException"
        ):
            raise KeyRejectedError(
                f"Mapillary rejected the access token ({message}); create a client token at "
                "mapillary.com/dashboard/developers."
            )
        if code in (4, 17, 32, 613):
            raise QuotaExceededError(f"Mapillary rate limit reached ({message}); wait and retry.")
        raise ProviderUnavailableError(f"Mapillary request failed ({message}).")

    def _download(self, image: Mapping[str, Any]) -> Image.Image:
        ck = self.cache.key("thumb", str(image.get("id")))
        data = self.cache.get_bytes(ck)
        if data is None:
            status, data, ctype = self.http.get(str(image["thumb_2048_url"]))
            if status != 200 or not ctype.startswith("image/"):
                raise ProviderUnavailableError(
                    f"Mapillary image {image.get('id')} could not be downloaded (HTTP {status})."
                )
            self.cache.put_bytes(ck, data)
        return _decode_image(data, "Mapillary")

    def view(
        self,
        lat: float,
        lon: float,
        heading: float,
        *,
        fov: float,
        pitch: float,
        size: tuple[int, int],
    ) -> Image.Image:
        """The view from the nearest panorama, else the nearest photo facing `heading`."""
        from openvirl.world.streetview import equirect_to_pinhole

        images = self.images_near(lat, lon)
        panos = [r for r in images if r.get("is_pano")]
        flats = [
            r
            for r in images
            if not r.get("is_pano") and _angle_diff(float(_compass(r)), heading) <= fov / 2.0
        ]
        if panos:
            chosen = panos[0]
            pano = np.asarray(self._download(chosen), dtype=np.uint8)
            # Mapillary's compass angle is the heading of the panorama's centre column.
            rotation = 180.0 - float(_compass(chosen))
            image = Image.fromarray(
                equirect_to_pinhole(
                    pano, heading, fov=fov, pitch=pitch, size=size, rotation_deg=rotation
                ),
                "RGB",
            )
        elif flats:
            chosen = flats[0]
            image = _cover(self._download(chosen), size)
        elif self.fallback is not None:
            return self.fallback.view(lat, lon, heading, fov=fov, pitch=pitch, size=size)
        else:
            raise NoImageryError(
                f"Mapillary has no panorama, and no photo facing {heading:.0f}°, within "
                f"{self.radius_m:g} m of ({lat:.6f}, {lon:.6f}); pass a fallback to draw one."
            )
        creator = chosen.get("creator") or {}
        who = creator.get("username") if isinstance(creator, Mapping) else None
        attribution = f"© Mapillary{f', {who}' if who else ''} (CC BY-SA 4.0)"
        image.info.update(
            provider=self.name, pano_id=str(chosen.get("id")), attribution=attribution
        )
        self.last_attribution = attribution
        return image


def _compass(item: Mapping[str, Any]) -> float:
    value = item.get("computed_compass_angle", item.get("compass_angle", 0.0))
    try:
        return float(value) % 360.0
    except (TypeError, ValueError):
        return 0.0


def _cover(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Centre-crop `image` to the aspect of `size`, then resize to it."""
    w, h = size
    src_w, src_h = image.size
    target = w / h
    if src_w / src_h > target:
        new_w = round(src_h * target)
        box = ((src_w - new_w) // 2, 0, (src_w - new_w) // 2 + new_w, src_h)
    else:
        new_h = round(src_w / target)
        box = (0, (src_h - new_h) // 2, src_w, (src_h - new_h) // 2 + new_h)
    return image.crop(box).resize((w, h), Image.Resampling.LANCZOS)
