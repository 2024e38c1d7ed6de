"""Street views rendered from the map: pinhole views, what they show, 2x2 grids, panorama crops.

openvirl ships no photographs, so a street view is drawn from OpenStreetMap itself: a pinhole
camera at eye height (`EYE_HEIGHT_M`) looks at the city's `Scene` (`openvirl.world.scene`):
building facades extruded from the footprints, storefront and blade signs with POI names and
pictograms, street-name blades at intersections, streets with markings, sky and haze.

How a view is drawn (numpy and PIL only, one core, deterministic):

1. **Ray casting per column.** Facades are vertical quads, so in each image column every facade
   the column's ray crosses is one depth and one vertical pixel run. The runs of all facades
   within `RENDER_DISTANCE_M` are sorted by depth per column; a facade standing on the ground
   hides everything farther below its top, so a running minimum of run tops gives the exact
   visible part of each run (Doom's clipping). Facades raised off the ground (canopies,
   bridges) are drawn afterwards, far to near. This yields a per-pixel facade id and depth.
2. **Shading.** Facade pixels get the building's colour with storeys of windows (or a glass
   curtain wall, or arched church windows) that fade to their average colour with distance;
   ground pixels sample the scene's street raster (mip-mapped by footprint); the rest is sky.
   Everything blends into the horizon haze with distance.
3. **Signs.** Every sign quad near the camera is tested against the depth buffer pixel by pixel,
   nearest first (signs hide signs too); the visible pixels get the sign's texture (board, name,
   pictogram), warped in perspective. The same pass, without drawing, answers `visible()`, so
   the text observation and the image tell the same facts.

Pitch is rendered by shifting the horizon (y-shearing, as Doom does), exact for vertical
lines, and limited to ±`MAX_RENDER_PITCH_DEG`. The bearing of an image column follows the
pinhole model (`atan`); V-IRL's linear box-to-bearing rule is `box_to_bearing(model="linear")`.

Legibility is measured with a real OCR engine: `aimed_views` samples views aimed at POI signs
from the nearest street, `ocr_text` reads them with Tesseract and `name_read_score` matches the
names (`benchmarks/bench_streetview.py`: 87.5% of 240 names read in Manhattan and Helsinki at
V-IRL's default 640x640, fov 60).

A user who owns panoramas plugs them in with `PanoramaViewSource` (V-IRL's offline layout:
`<pano_id>.jpg` + `<pano_id>.metadata.json` with `rotation`, and a GPS→pano mapping) and gets
pinhole crops from the same `render_view` call.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
import os
import pickle
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
from PIL import Image, ImageDraw

from openvirl.world.errors import WorldError
from openvirl.world.furniture import KINDS as FURNITURE_KINDS
from openvirl.world.furniture import (
    MIN_OBJECT_HEIGHT_PX,
    VISIBLE_DISTANCE_M,
    FurnitureHit,
    furniture_for,
    furniture_pass,
)
from openvirl.world.geometry import egocentric_relation, haversine_m
from openvirl.world.scene import (
    FASCIA,
    GROUND_LEVELS,
    GROUND_TILE_M,
    GROUND_TILE_PX,
    ICON_GAP,
    PANEL,
    POLE,
    POLE_WIDTH_M,
    SIGN_KIND_NAMES,
    STREET_BLADE,
    Scene,
    font,
    scene_for,
)

if TYPE_CHECKING:
    from openvirl.world.city import City

EYE_HEIGHT_M = 2.5
"""Camera height above the street, metres (Street View cameras ride at about 2.5 m)."""

RENDER_DISTANCE_M = 300.0
"""Nothing farther than this is drawn (it has faded into the haze), metres."""

NEAR_PLANE_M = 0.25
"""Geometry nearer than this along the view axis is clipped, metres."""

FOV_MIN_DEG = 10.0
FOV_MAX_DEG = 120.0
"""Horizontal field of view limits, degrees (Google Street View's range)."""

MAX_VIEW_SIDE_PX = 2048
"""Largest image side, pixels."""

MIN_VIEW_SIDE_PX = 16
"""Smallest image side, pixels."""

MAX_RENDER_PITCH_DEG = 40.0
"""Largest |pitch| a rendered view accepts, degrees (pitch is a horizon shift)."""

DEFAULT_VISIBLE_DISTANCE_M = 100.0
"""`visible()` lists signs up to this far by default, metres."""

OCCLUDED_BELOW = 0.5
"""A sign with less than this fraction of its in-frame pixels visible is `occluded`."""

MIN_SIGN_HEIGHT_PX = 2.0
"""Signs projected smaller than this (height, pixels) are not drawn nor listed."""

MIN_TEXT_PX = 3.5
"""Sign text smaller than this (font size, pixels) is not drawn; the board still is."""

GRID_SEPARATOR_PX = 5
"""Black separator between the views of a 2x2 grid, pixels (as in the reference)."""

GRID_LAYOUT = (("front", 0.0), ("right", 90.0), ("back", 180.0), ("left", 270.0))
"""The 2x2 grid: (label, heading offset in degrees), filled row by row."""

SKY_HORIZON_RGB = np.array([206, 220, 232], np.float32)
SKY_ZENITH_RGB = np.array([96, 148, 212], np.float32)
HAZE_RGB = np.array([200, 210, 220], np.float32)
GLASS_RGB = np.array([58, 72, 92], np.float32)
GLASS_SKY_RGB = np.array([130, 155, 185], np.float32)
SHOPFRONT_RGB = np.array([44, 50, 58], np.float32)
GROUND_FLOOR_M = 6.4
"""Height of the shopfront storey of buildings at least 12 m tall, metres (signs live there)."""


class InvalidViewError(WorldError):
    """A view was asked with a bad heading, field of view, pitch or image size."""


class PanoramaNotFoundError(WorldError):
    """No panorama lies within the mapping radius of the requested point."""


# Results -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VisibleObject:
    """A POI or street-name sign seen in a view, with where it appears.

    Attributes
    ----------
    id
        The POI's OSM id ("node/123"), or "street_sign/<node>/<k>".
    name
        The POI's or street's display name.
    label
        The text drawn on the sign.
    category
        The POI's primary place type, or "street_sign".
    kind
        "poi", "street_sign" or "street_object" (street furniture, with `visible(...,
        furniture=True)`; its `category` is the `openvirl.world.furniture.KINDS` key).
    bearing_deg
        Bearing of the sign as seen (middle of its most visible part), degrees clockwise
        from north.
    bearing_min_deg, bearing_max_deg
        Bearing range its visible pixels cover (its whole in-frame extent if occluded),
        degrees; min is the left edge, so the range may wrap through north.
    distance_m
        Distance from the camera to the sign, metres.
    side
        Egocentric relation of `bearing_deg` to the camera heading ("front", "left front",
        ...; V-IRL's eight 45° bins).
    occluded
        True when every sign of it is mostly hidden (less than `OCCLUDED_BELOW` of its
        in-frame pixels visible).
    visible_fraction
        Largest visible fraction among its signs, 0..1.
    x_min_px, x_max_px
        Image columns its visible pixels span (left edges; `x_max_px` is exclusive).
    text_height_px
        Height of capital letters on its best sign, pixels (below ~8 px, hard to read).
    sign
        Kind of its best sign: "fascia", "blade", "panel" or "street_blade"; "furniture"
        for a street object.
    """

    id: str
    name: str
    label: str
    category: str
    kind: str
    bearing_deg: float
    bearing_min_deg: float
    bearing_max_deg: float
    distance_m: float
    side: str
    occluded: bool
    visible_fraction: float
    x_min_px: int
    x_max_px: int
    text_height_px: float
    sign: str

    def to_dict(self) -> dict[str, object]:
        """JSON-able dict of every field."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Camera:
    """A pinhole camera in a city's local metres (x east, y north), at eye height.

    Attributes
    ----------
    x_m, y_m
        Position, metres.
    heading_deg
        View direction, degrees clockwise from north, in [0, 360).
    fov_deg
        Horizontal field of view, degrees.
    pitch_deg
        Up (positive) or down, degrees.
    width_px, height_px
        Image size, pixels.
    eye_height_m
        Camera height, metres.
    """

    x_m: float
    y_m: float
    heading_deg: float
    fov_deg: float
    pitch_deg: float
    width_px: int
    height_px: int
    eye_height_m: float = EYE_HEIGHT_M

    @property
    def focal_px(self) -> float:
        """Focal length, pixels."""
        return (self.width_px / 2) / math.tan(math.radians(self.fov_deg) / 2)

    @property
    def cx(self) -> float:
        """Principal point column, pixels."""
        return self.width_px / 2

    @property
    def cy(self) -> float:
        """Horizon row, pixels (moves down as the camera pitches up)."""
        return self.height_px / 2 + self.focal_px * math.tan(math.radians(self.pitch_deg))

    @property
    def forward(self) -> tuple[float, float]:
        """Unit view direction (east, north)."""
        h = math.radians(self.heading_deg)
        return math.sin(h), math.cos(h)

    @property
    def right(self) -> tuple[float, float]:
        """Unit direction to the camera's right (east, north)."""
        h = math.radians(self.heading_deg)
        return math.cos(h), -math.sin(h)

    def column_bearing_deg(self, x_px: np.ndarray | float) -> np.ndarray | float:
        """Bearing of image column position `x_px` (pixels from the left edge), degrees."""
        return (
            self.heading_deg + np.degrees(np.arctan((np.asarray(x_px) - self.cx) / self.focal_px))
        ) % 360.0


# Validation ----------------------------------------------------------------------------------


def _check_size(size: tuple[int, int] | int) -> tuple[int, int]:
    if isinstance(size, (int, np.integer)):
        size = (int(size), int(size))
    try:
        w, h = (int(v) for v in size)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise InvalidViewError(f"`size` must be (width, height) in pixels, got {size!r}.") from None
    lo, hi = MIN_VIEW_SIDE_PX, MAX_VIEW_SIDE_PX
    if not (lo <= w <= hi and lo <= h <= hi):
        raise InvalidViewError(
            f"`size` {w}x{h} is out of range: each side must be {MIN_VIEW_SIDE_PX} to "
            f"{MAX_VIEW_SIDE_PX} pixels; render tiles or resize the image for larger output."
        )
    return w, h


def _check_angles(heading: float, fov: float, pitch: float, *, max_pitch: float) -> float:
    """Validate the angles; return the heading wrapped to [0, 360)."""
    for name, value in (("heading", heading), ("fov", fov), ("pitch", pitch)):
        if not isinstance(value, (int, float, np.number)) or not math.isfinite(float(value)):
            raise InvalidViewError(f"`{name}` must be a finite number of degrees, got {value!r}.")
    if not FOV_MIN_DEG <= fov <= FOV_MAX_DEG:
        raise InvalidViewError(
            f"`fov` {fov}° is out of range: pass {FOV_MIN_DEG:g} to {FOV_MAX_DEG:g} degrees."
        )
    if abs(pitch) > max_pitch:
        raise InvalidViewError(
            f"`pitch` {pitch}° is out of range: pass -{max_pitch:g} to {max_pitch:g} degrees."
        )
    return float(heading) % 360.0


def make_camera(
    city: City,
    lat: float,
    lon: float,
    heading: float,
    *,
    fov: float = 90.0,
    pitch: float = 0.0,
    size: tuple[int, int] | int = (512, 512),
    max_pitch: float = MAX_RENDER_PITCH_DEG,
) -> Camera:
    """Validate a view request and build its `Camera`.

    Raises `OutsideMapError` for a point off the map and `InvalidViewError` for a bad angle or
    size; the heading is wrapped into [0, 360).
    """
    heading = _check_angles(heading, fov, pitch, max_pitch=max_pitch)
    w, h = _check_size(size)
    city.check_inside(float(lat), float(lon))
    x, y = city.to_xy(float(lat), float(lon))
    return Camera(float(x), float(y), heading, float(fov), float(pitch), w, h)


# Ray casting ---------------------------------------------------------------------------------


@dataclass
class _Raster:
    """What ray casting found: per pixel the facade run id and depth."""

    pid: np.ndarray  # (H, W) int32 index into the run arrays, -1 for none
    zbuf: np.ndarray  # (H, W) float32 depth along the view axis, metres (inf: none)
    run_seg: np.ndarray  # facade index per run
    run_t: np.ndarray  # depth per run, metres
    run_u: np.ndarray  # metres along the facade ring per run
    ray_norm: np.ndarray  # (W,) length of each column's ray direction per unit depth


def _ray_dirs(cam: Camera) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-column ray directions (east, north) with unit forward component, and their norms."""
    a = (np.arange(cam.width_px) + 0.5 - cam.cx) / cam.focal_px
    fx, fy = cam.forward
    rx, ry = cam.right
    dx = fx + rx * a
    dy = fy + ry * a
    return dx, dy, np.sqrt(1.0 + a * a)


def _raycast(scene: Scene, cam: Camera) -> _Raster:
    W, H = cam.width_px, cam.height_px
    f, cx, cy, eye = cam.focal_px, cam.cx, cam.cy, cam.eye_height_m
    fx, fy = cam.forward
    rx, ry = cam.right
    dxs, dys, norms = _ray_dirs(cam)
    pid = np.full((H, W), -1, np.int32)
    zbuf = np.full((H, W), np.inf, np.float32)
    empty = _Raster(pid, zbuf, np.zeros(0, np.int64), np.zeros(0), np.zeros(0), norms)

    idx = scene.facade_grid.query(cam.x_m, cam.y_m, RENDER_DISTANCE_M + scene.facade_reach_m)
    if len(idx) == 0:
        return empty
    ax = scene.fx0[idx] - cam.x_m
    ay = scene.fy0[idx] - cam.y_m
    bx = scene.fx1[idx] - cam.x_m
    by = scene.fy1[idx] - cam.y_m
    ex, ey = bx - ax, by - ay
    # Keep facades that face the camera (outside is right of p0 -> p1), are near enough and
    # reach in front of the near plane.
    facing = (ex * ay - ey * ax) > 0
    za, zb = ax * fx + ay * fy, bx * fx + by * fy
    ll = np.maximum(ex * ex + ey * ey, 1e-12)
    tt = np.clip(-(ax * ex + ay * ey) / ll, 0.0, 1.0)
    dmin = np.hypot(ax + tt * ex, ay + tt * ey)
    keep = facing & (np.maximum(za, zb) > NEAR_PLANE_M) & (dmin < RENDER_DISTANCE_M)
    if not keep.any():
        return empty
    idx, ax, ay, bx, by, ex, ey, za, zb = (v[keep] for v in (idx, ax, ay, bx, by, ex, ey, za, zb))
    xa, xb = ax * rx + ay * ry, bx * rx + by * ry
    # Clip to the near plane.
    ca = za < NEAR_PLANE_M
    cb = zb < NEAR_PLANE_M
    with np.errstate(divide="ignore", invalid="ignore"):
        ta = np.where(ca, (NEAR_PLANE_M - za) / (zb - za), 0.0)
        tb = np.where(cb, (NEAR_PLANE_M - zb) / (za - zb), 0.0)
    xa2 = np.where(ca, xa + ta * (xb - xa), xa)
    za2 = np.where(ca, NEAR_PLANE_M, za)
    xb2 = np.where(cb, xb + tb * (xa - xb), xb)
    zb2 = np.where(cb, NEAR_PLANE_M, zb)
    sa = cx + f * xa2 / za2
    sb = cx + f * xb2 / zb2
    c0 = np.clip(np.ceil(np.minimum(sa, sb) - 0.5), 0, W).astype(np.int64)
    c1 = np.clip(np.floor(np.maximum(sa, sb) - 0.5), -1, W - 1).astype(np.int64)
    n = np.maximum(c1 - c0 + 1, 0)
    total = int(n.sum())
    if total == 0:
        return empty
    rep = np.repeat(np.arange(len(n)), n)
    col = (np.arange(total) - np.repeat(np.cumsum(n) - n, n)) + c0[rep]
    # Exact intersection of each column's ray with its facade.
    dx, dy = dxs[col], dys[col]
    pax, pay, pex, pey = ax[rep], ay[rep], ex[rep], ey[rep]
    den = dx * pey - dy * pex
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (pax * pey - pay * pex) / den
        s = (pax * dy - pay * dx) / den
    ok = (
        np.isfinite(t)
        & (t > NEAR_PLANE_M)
        & (s > -1e-6)
        & (s < 1 + 1e-6)
        & (t * norms[col] < RENDER_DISTANCE_M)
    )
    if not ok.any():
        return empty
    rep, col, t, s = rep[ok], col[ok], t[ok], np.clip(s[ok], 0.0, 1.0)
    seg = idx[rep]
    top = scene.ftop[seg]
    base = scene.fbase[seg]
    rt = np.clip(np.ceil(cy - f * (top - eye) / t - 0.5), 0, H).astype(np.int64)
    rb = np.clip(np.ceil(cy + f * (eye - base) / t - 0.5), 0, H).astype(np.int64)
    grounded = base <= 0.05
    # Per column, near to far: a grounded facade hides what is farther below its top.
    order = np.lexsort((t, col))
    col_s, rt_s, rb_s, g_s = col[order], rt[order], rb[order], grounded[order]
    big = H + 1
    key = np.where(g_s, rt_s, H) - col_s * big
    running = np.minimum.accumulate(key) + col_s * big  # inclusive running min of tops
    prev = np.empty_like(running)
    prev[0] = H
    prev[1:] = running[:-1]
    starts = np.ones(len(col_s), bool)
    starts[1:] = col_s[1:] != col_s[:-1]
    prev[starts] = H
    vtop = rt_s
    vbot = np.minimum(rb_s, prev)
    vis = vbot > vtop
    runs = order[vis]
    run_top, run_bot, run_col, run_g = vtop[vis], vbot[vis], col_s[vis], g_s[vis]
    run_ids = np.arange(len(runs), dtype=np.int32)
    # Grounded runs are disjoint per column: fill them all at once.
    gm = run_g
    lengths = (run_bot - run_top)[gm]
    if lengths.sum() > 0:
        rows = np.arange(int(lengths.sum())) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        rows += np.repeat(run_top[gm], lengths)
        cols = np.repeat(run_col[gm], lengths)
        pid[rows, cols] = np.repeat(run_ids[gm], lengths)
    # Raised facades (canopies, bridges) over the top, far to near.
    raised = np.nonzero(~gm)[0]
    if len(raised):
        raised = raised[np.argsort(-t[runs[raised]], kind="stable")]
        for k in raised:
            pid[run_top[k] : run_bot[k], run_col[k]] = run_ids[k]
    run_seg = seg[runs]
    run_t = t[runs]
    run_u = scene.fu0[run_seg] + s[runs] * scene.flen[run_seg]
    covered = pid >= 0
    zbuf[covered] = run_t[pid[covered]]
    return _Raster(pid, zbuf, run_seg, run_t, run_u, norms)


# Shading -------------------------------------------------------------------------------------


def _fog(dist_m: np.ndarray) -> np.ndarray:
    """Haze fraction at a distance: 0 near, 1 at `RENDER_DISTANCE_M` (metres in)."""
    r = RENDER_DISTANCE_M
    return np.clip((dist_m - 0.12 * r) / (0.88 * r), 0.0, 1.0) ** 1.3


def _sky(cam: Camera, rows: np.ndarray) -> np.ndarray:
    el = np.arctan2(cam.cy - (rows + 0.5), cam.focal_px)
    k = np.clip(el / (math.pi / 3), 0.0, 1.0) ** 0.7
    return SKY_HORIZON_RGB[None, :] * (1 - k[:, None]) + SKY_ZENITH_RGB[None, :] * k[:, None]


def _shade_facades(scene: Scene, cam: Camera, r: _Raster, out: np.ndarray) -> None:
    rows, cols = np.nonzero(r.pid >= 0)
    if len(rows) == 0:
        return
    run = r.pid[rows, cols]
    seg = r.run_seg[run]
    t = r.run_t[run].astype(np.float32)
    u = r.run_u[run].astype(np.float32)
    v = cam.eye_height_m + (cam.cy - (rows + 0.5)).astype(np.float32) * t / cam.focal_px
    top = scene.ftop[seg]
    storey = scene.fstorey[seg]
    pitch = scene.fpitch[seg]
    style = scene.fstyle[seg]
    base_rgb = scene.fcolor[seg].astype(np.float32)
    # A tall ground floor (shopfronts and their signs), then storeys of windows.
    gf = np.where(top >= 12.0, GROUND_FLOOR_M, np.clip(storey * 1.2, 3.0, 4.4))
    fu = np.mod(u, pitch) / pitch
    fv = np.mod(v - gf, storey) / storey
    upper = (v > gf) & (v < top - 0.7)
    punched = (fu > 0.27) & (fu < 0.73) & (fv > 0.22) & (fv < 0.76)
    curtain = (fv > 0.1) & (np.mod(u, 1.5) > 0.09)
    arched = (fu > 0.4) & (fu < 0.6) & (fv > 0.12) & (fv < 0.86)
    win = upper & np.select([style == 1, style == 2, style == 3], [punched, curtain, arched], False)
    shop = (
        (style != 0)
        & (v > 0.35)
        & (v < 2.6)
        & (np.mod(u, 5.0) > 0.45)
        & (np.mod(u, 5.0) < 4.55)
        & (top > 4.5)
    )
    # Window panes vary a little (reflections, blinds), deterministic per pane.
    pane = (
        np.floor(u / pitch).astype(np.int64) * 73856093
        ^ np.floor((v - gf) / storey).astype(np.int64) * 19349663
        ^ seg * 83492791
    )
    jitter = ((pane >> 7) & 15).astype(np.float32) / 15.0
    sky_mix = np.clip(v / np.maximum(top, 1.0), 0, 1)[:, None] * 0.55 + jitter[:, None] * 0.25
    glass = GLASS_RGB[None, :] * (1 - sky_mix) + GLASS_SKY_RGB[None, :] * sky_mix
    frac = np.select([style == 1, style == 2, style == 3], [0.25, 0.85, 0.17], 0.0)
    frac = np.where(upper, frac, 0.0).astype(np.float32)
    # Window detail fades out once a metre spans a few pixels only.
    mpp = t / cam.focal_px
    detail = np.clip((0.5 - mpp) / 0.25, 0.0, 1.0)[:, None]
    near_rgb = np.where(win[:, None], glass, base_rgb)
    near_rgb = np.where(shop[:, None], SHOPFRONT_RGB[None, :] + jitter[:, None] * 18, near_rgb)
    far_rgb = base_rgb * (1 - frac[:, None]) + GLASS_RGB[None, :] * frac[:, None]
    shop_frac = np.where((style != 0) & (v < 2.6) & (top > 4.5), 0.8, 0.0)[:, None]
    far_rgb = far_rgb * (1 - shop_frac) + SHOPFRONT_RGB[None, :] * shop_frac
    rgb = near_rgb * detail + far_rgb * (1 - detail)
    # Cornice and plinth.
    rgb *= np.where((v > top - 0.45) & (top > 3.0), 0.78, 1.0)[:, None]
    rgb *= np.where(v < 0.3, 0.8, 1.0)[:, None]
    dist = t * r.ray_norm[cols]
    fog = _fog(dist)[:, None]
    out[rows, cols] = rgb * (1 - fog) + HAZE_RGB[None, :] * fog


def _shade_ground(scene: Scene, cam: Camera, r: _Raster, out: np.ndarray) -> None:
    H, _W = r.pid.shape
    first = max(0, math.floor(cam.cy - 0.5) + 1)
    if first >= H:
        return
    rows_all = np.arange(first, H)
    below = (rows_all + 0.5) > cam.cy
    rows_all = rows_all[below]
    if len(rows_all) == 0:
        return
    sub = r.pid[rows_all] < 0
    ri, cols = np.nonzero(sub)
    if len(ri) == 0:
        return
    rows = rows_all[ri]
    f, eye = cam.focal_px, cam.eye_height_m
    t_row = (f * eye / ((rows_all + 0.5) - cam.cy)).astype(np.float64)
    # Mip level per row from the ground footprint of one pixel.
    across = t_row / f
    along = t_row * t_row / (f * eye)
    m = np.sqrt(across * along)
    level_row = np.clip(
        np.floor(np.log2(np.maximum(m, 1e-6) / (GROUND_TILE_M / GROUND_TILE_PX)) + 0.5),
        0,
        GROUND_LEVELS - 1,
    ).astype(np.int64)
    t = t_row[ri]
    level = level_row[ri]
    dxs, dys, norms = _ray_dirs(cam)
    wx = cam.x_m + t * dxs[cols]
    wy = cam.y_m + t * dys[cols]
    dist = t * norms[cols]
    rgb = np.empty((len(rows), 3), np.float32)
    far = dist >= RENDER_DISTANCE_M
    rgb[far] = HAZE_RGB
    near = np.nonzero(~far)[0]
    if len(near):
        gx = wx[near] / GROUND_TILE_M
        gy = wy[near] / GROUND_TILE_M
        tx = np.floor(gx).astype(np.int64)
        ty = np.floor(gy).astype(np.int64)
        lv = level[near]
        keys = (tx * 1_000_003 + ty) * 8 + lv
        uniq, inv = np.unique(keys, return_inverse=True)
        for j in range(len(uniq)):
            sel = np.nonzero(inv == j)[0]
            k = near[sel[0]]
            tile = scene.ground_tile(int(tx[sel[0]]), int(ty[sel[0]]))
            L = int(level[k])
            img = tile[L]
            side = img.shape[0]
            fx = (gx[sel] - tx[sel]) * side
            fy = (1.0 - (gy[sel] - ty[sel])) * side
            if L == 0:
                # Near the camera a texel spans many pixels: interpolate (bilinear).
                fx, fy = fx - 0.5, fy - 0.5
                x0 = np.floor(fx)
                y0 = np.floor(fy)
                wx = (fx - x0)[:, None].astype(np.float32)
                wy = (fy - y0)[:, None].astype(np.float32)
                x0 = np.clip(x0.astype(np.int64), 0, side - 1)
                y0 = np.clip(y0.astype(np.int64), 0, side - 1)
                x1 = np.minimum(x0 + 1, side - 1)
                y1 = np.minimum(y0 + 1, side - 1)
                top = img[y0, x0] * (1 - wx) + img[y0, x1] * wx
                bot = img[y1, x0] * (1 - wx) + img[y1, x1] * wx
                rgb[near[sel]] = top * (1 - wy) + bot * wy
            else:
                px = np.clip(fx.astype(np.int64), 0, side - 1)
                py = np.clip(fy.astype(np.int64), 0, side - 1)
                rgb[near[sel]] = img[py, px]
    fog = _fog(dist)[:, None]
    out[rows, cols] = rgb * (1 - fog) + HAZE_RGB[None, :] * fog


# Signs ---------------------------------------------------------------------------------------


@dataclass
class _SignHit:
    sign: int
    visible_px: int
    total_px: int
    x_min: int
    x_max: int  # exclusive
    vis_x_min: int
    vis_x_max: int  # exclusive
    distance_m: float
    centre_t: float


def _sign_candidates(scene: Scene, cam: Camera):
    """Sign quads in front of the camera within range, oriented to be read, near first."""
    idx = scene.sign_grid.query(cam.x_m, cam.y_m, RENDER_DISTANCE_M + scene.sign_reach_m)
    if len(idx) == 0:
        return []
    x0 = scene.sx0[idx].copy()
    y0 = scene.sy0[idx].copy()
    x1 = scene.sx1[idx].copy()
    y1 = scene.sy1[idx].copy()
    kind = scene.skind[idx]
    fx, fy = cam.forward
    rx, ry = cam.right
    # Poles face the camera (billboards).
    pole = kind == POLE
    if pole.any():
        half = POLE_WIDTH_M / 2
        x0[pole] -= rx * half
        y0[pole] -= ry * half
        x1[pole] += rx * half
        y1[pole] += ry * half
    ax, ay = x0 - cam.x_m, y0 - cam.y_m
    bx, by = x1 - cam.x_m, y1 - cam.y_m
    ex, ey = bx - ax, by - ay
    front = (ex * ay - ey * ax) > 0
    double = scene.sdouble[idx]
    keep = front | double
    swap = ~front & double
    ax, bx = np.where(swap, bx, ax), np.where(swap, ax, bx)
    ay, by = np.where(swap, by, ay), np.where(swap, ay, by)
    za, zb = ax * fx + ay * fy, bx * fx + by * fy
    xa, xb = ax * rx + ay * ry, bx * rx + by * ry
    mid = np.hypot((ax + bx) / 2, (ay + by) / 2)
    keep &= (np.maximum(za, zb) > NEAR_PLANE_M) & (mid < RENDER_DISTANCE_M)
    # Rough frustum test on the projected extent.
    half_w = math.tan(math.radians(cam.fov_deg) / 2)
    keep &= ~(
        (xa > half_w * np.maximum(za, 1e-3))
        & (xb > half_w * np.maximum(zb, 1e-3))
        & (za > 0)
        & (zb > 0)
    )
    keep &= ~(
        (xa < -half_w * np.maximum(za, 1e-3))
        & (xb < -half_w * np.maximum(zb, 1e-3))
        & (za > 0)
        & (zb > 0)
    )
    # Big enough to see.
    zmin = np.maximum(np.minimum(za, zb), NEAR_PLANE_M)
    height = (scene.stop[idx] - scene.sbase[idx]) * cam.focal_px / zmin
    keep &= height >= MIN_SIGN_HEIGHT_PX
    sel = np.nonzero(keep)[0]
    order = sel[np.argsort((za[sel] + zb[sel]) / 2, kind="stable")]
    return [(int(idx[k]), ax[k], ay[k], bx[k], by[k], za[k], zb[k], xa[k], xb[k]) for k in order]


def _sign_pass(scene: Scene, cam: Camera, r: _Raster, canvas: np.ndarray | None) -> list[_SignHit]:
    """Test every candidate sign against the depth buffer (and draw it on `canvas`)."""
    W, H = cam.width_px, cam.height_px
    f, cx, cy, eye = cam.focal_px, cam.cx, cam.cy, cam.eye_height_m
    dxs, dys, _ = _ray_dirs(cam)
    zb = r.zbuf.copy()
    hits: list[_SignHit] = []
    for sign, ax, ay, bx, by, za, zb_, xa, xb in _sign_candidates(scene, cam):
        # Near-plane clipping, keeping the texture coordinate range [ua, ub].
        ua, ub = 0.0, 1.0
        if za < NEAR_PLANE_M:
            ua = (NEAR_PLANE_M - za) / (zb_ - za)
        if zb_ < NEAR_PLANE_M:
            ub = 1.0 - (NEAR_PLANE_M - zb_) / (za - zb_)
        if ub <= ua:
            continue
        pza, pxa = za + ua * (zb_ - za), xa + ua * (xb - xa)
        pzb, pxb = za + ub * (zb_ - za), xa + ub * (xb - xa)
        sa, sb = cx + f * pxa / pza, cx + f * pxb / pzb
        c0 = max(0, math.ceil(min(sa, sb) - 0.5))
        c1 = min(W - 1, math.floor(max(sa, sb) - 0.5))
        if c1 < c0:
            continue
        cols = np.arange(c0, c1 + 1)
        ex, ey = bx - ax, by - ay
        dx, dy = dxs[cols], dys[cols]
        den = dx * ey - dy * ex
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (ax * ey - ay * ex) / den
        t = np.where(np.isfinite(t) & (t > NEAR_PLANE_M), t, np.inf)
        top, base = float(scene.stop[sign]), float(scene.sbase[sign])
        with np.errstate(invalid="ignore"):
            rt = np.clip(np.ceil(cy - f * (top - eye) / t - 0.5), 0, H)
            rb = np.clip(np.ceil(cy + f * (eye - base) / t - 0.5), 0, H)
        rt = np.where(np.isfinite(t), rt, 0).astype(np.int64)
        rb = np.where(np.isfinite(t), rb, 0).astype(np.int64)
        r0, r1 = int(rt.min()), int(rb.max())
        if r1 <= r0:
            continue
        rr = np.arange(r0, r1)[:, None]
        cover = (rr >= rt[None, :]) & (rr < rb[None, :])
        total = int(cover.sum())
        if total == 0:
            continue
        window = zb[r0:r1, c0 : c1 + 1]
        tt = t[None, :].astype(np.float32)
        vis = cover & (window >= tt - 0.02)
        visible = int(vis.sum())
        window[vis] = np.broadcast_to(tt, vis.shape)[vis]
        kind = int(scene.skind[sign])
        mx, my = (ax + bx) / 2, (ay + by) / 2
        centre_t = mx * cam.forward[0] + my * cam.forward[1]
        vcols = np.nonzero(vis.any(axis=0))[0]
        hits.append(
            _SignHit(
                sign,
                visible,
                total,
                c0,
                c1 + 1,
                c0 + int(vcols[0]) if len(vcols) else c0,
                c0 + int(vcols[-1]) + 1 if len(vcols) else c1 + 1,
                float(math.hypot(mx, my)),
                float(max(centre_t, NEAR_PLANE_M)),
            )
        )
        if canvas is not None and visible:
            _draw_sign(
                scene,
                cam,
                canvas,
                sign,
                kind,
                (ua, ub),
                (pxa, pza, pxb, pzb),
                (r0, r1, c0, c1 + 1),
                vis,
                float(np.nanmin(t)),
            )
    return hits


def _homography(src: np.ndarray, dst: np.ndarray) -> list[float]:
    """Coefficients (a..h) mapping `dst` points to `src` points, PIL's PERSPECTIVE order."""
    A = []
    b = []
    for (u, v), (x, y) in zip(src, dst, strict=True):
        A.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        A.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b += [u, v]
    sol = np.linalg.solve(np.asarray(A, float), np.asarray(b, float))
    return sol.tolist()


def _draw_sign(
    scene: Scene,
    cam: Camera,
    canvas: np.ndarray,
    sign: int,
    kind: int,
    urange: tuple[float, float],
    ends: tuple[float, float, float, float],
    box: tuple[int, int, int, int],
    vis: np.ndarray,
    t_near: float,
) -> None:
    f, cx, cy, eye = cam.focal_px, cam.cx, cam.cy, cam.eye_height_m
    top, base = float(scene.stop[sign]), float(scene.sbase[sign])
    r0, r1, c0, c1 = box
    xa, za, xb, zb = ends
    if kind == POLE:
        rgb = np.asarray(_sign_colours(scene, sign)[0], np.float32)
        fog = _fog(np.array([t_near]))[0]
        rgb = rgb * (1 - fog) + HAZE_RGB * fog
        canvas[r0:r1, c0:c1][vis] = rgb.astype(np.uint8)
        return
    height_px = (top - base) * f / max(t_near, NEAR_PLANE_M)
    tex = _texture(scene, sign, height_px)
    tw, th = tex.size
    ua, ub = urange
    # Screen corners: bottom-left, bottom-right, top-right, top-left.
    dst = np.array(
        [
            (cx + f * xa / za - c0, cy + f * (eye - base) / za - r0),
            (cx + f * xb / zb - c0, cy + f * (eye - base) / zb - r0),
            (cx + f * xb / zb - c0, cy - f * (top - eye) / zb - r0),
            (cx + f * xa / za - c0, cy - f * (top - eye) / za - r0),
        ]
    )
    src = np.array([(ua * tw, th), (ub * tw, th), (ub * tw, 0.0), (ua * tw, 0.0)])
    try:
        coeffs = _homography(src, dst)
    except np.linalg.LinAlgError:
        return
    bw, bh = c1 - c0, r1 - r0
    patch = np.asarray(
        tex.transform(
            (bw, bh),
            Image.Transform.PERSPECTIVE,
            coeffs,
            resample=Image.Resampling.BILINEAR,
            fillcolor=(0, 0, 0, 0),
        ),
        dtype=np.float32,
    )
    alpha = patch[..., 3:4] / 255.0 * vis[..., None]
    dist = t_near * 1.0
    fog = float(_fog(np.array([dist]))[0])
    rgb = patch[..., :3] * (1 - fog) + HAZE_RGB * fog
    region = canvas[r0:r1, c0:c1].astype(np.float32)
    canvas[r0:r1, c0:c1] = (region * (1 - alpha) + rgb * alpha + 0.5).astype(np.uint8)


TEXTURE_CACHE = 512
"""Sign textures kept per scene (keyed by sign and pixel height)."""


NEUTRAL_SIGN_BG = (44, 44, 50)
"""Board colour of every POI sign while `neutral_signs()` is on."""

_NEUTRAL = contextvars.ContextVar("openvirl_neutral_signs", default=False)


@contextlib.contextmanager
def neutral_signs() -> Iterator[None]:
    """Draw POI signs without their category cues inside this block: no pictogram (coffee
    cup, fork and knife, pharmacy cross...) and one board colour (`NEUTRAL_SIGN_BG`), so a
    view asked "what kind of place is this?" shows only the sign's text and the street.

    The benchmarks' storefront views use it; the geometry (what `visible` lists) is the same.
    """
    token = _NEUTRAL.set(True)
    try:
        yield
    finally:
        _NEUTRAL.reset(token)


def _sign_colours(scene: Scene, sign: int) -> tuple[tuple[int, ...], tuple[int, ...], str]:
    """(board colour, text colour, pictogram) of a sign as drawn now (see `neutral_signs`)."""
    kind = int(scene.skind[sign])
    bg = tuple(int(c) for c in scene.sbg[sign])
    fg = tuple(int(c) for c in scene.sfg[sign])
    if _NEUTRAL.get() and kind != STREET_BLADE:
        return NEUTRAL_SIGN_BG, (255, 255, 255), ""
    return bg, fg, scene.sicon[sign]


def _texture(scene: Scene, sign: int, height_px: float) -> Image.Image:
    """The sign's RGBA texture at about 1.3x its on-screen height (cached by size step)."""
    width_m = float(
        math.hypot(scene.sx1[sign] - scene.sx0[sign], scene.sy1[sign] - scene.sy0[sign])
    )
    height_m = float(scene.stop[sign] - scene.sbase[sign])
    want = max(8.0, min(320.0, height_px * 1.3))
    step = 2 ** (round(math.log2(want) * 3) / 3)
    th = round(step)
    tw = round(th * width_m / max(height_m, 1e-6))
    if tw > 2400:
        th = max(4, int(th * 2400 / tw))
        tw = 2400
    tw = max(tw, 2)
    em_px = float(scene.sem[sign]) / height_m * th
    with_text = em_px * (height_px / th) >= MIN_TEXT_PX
    key = (sign, th, with_text, _NEUTRAL.get())
    with scene.lock:
        tex = scene.textures.get(key)
        if tex is not None:
            scene.textures.move_to_end(key)
            return tex
    tex = _make_texture(scene, sign, tw, th, em_px if with_text else 0.0)
    with scene.lock:
        scene.textures[key] = tex
        while len(scene.textures) > TEXTURE_CACHE:
            scene.textures.popitem(last=False)
    return tex


def _make_texture(scene: Scene, sign: int, tw: int, th: int, em_px: float) -> Image.Image:
    bg, fg, icon = _sign_colours(scene, sign)
    kind = int(scene.skind[sign])
    img = Image.new("RGBA", (tw, th), (*bg, 255))
    draw = ImageDraw.Draw(img)
    border = max(1, round(th * 0.04))
    edge = tuple(int(c * 0.55) for c in bg) if kind != STREET_BLADE else (255, 255, 255)
    draw.rectangle([0, 0, tw - 1, th - 1], outline=(*edge, 255), width=border)
    lines = scene.slines[sign]
    x_text0 = 0.0
    if icon and kind in (FASCIA, PANEL):
        single_h = th / (1.0 + 0.55 * (len(lines) - 1)) if lines else th
        side = 0.76 * single_h
        x0 = 0.16 * single_h
        y0 = (th - side) / 2
        draw.rounded_rectangle([x0, y0, x0 + side, y0 + side], radius=side * 0.18, fill=(*fg, 255))
        _draw_icon(draw, icon, (x0, y0, x0 + side, y0 + side), bg)
        x_text0 = x0 + side + (ICON_GAP - 0.16) * single_h
    if em_px <= 0 or not lines:
        return img
    fnt = font(max(1, round(em_px)))
    n = len(lines)
    area_w = tw - x_text0
    for i, line in enumerate(lines):
        yc = th / 2 + (i - (n - 1) / 2) * 1.1 * em_px
        draw.text((x_text0 + area_w / 2, yc), line, font=fnt, fill=(*fg, 255), anchor="mm")
    return img


def _draw_icon(
    draw: ImageDraw.ImageDraw,
    key: str,
    box: tuple[float, float, float, float],
    colour: tuple[int, ...],
) -> None:
    """Draw pictogram `key` in `colour` inside the square `box` (x0, y0, x1, y1)."""
    x0, y0, x1, _y1 = box
    s = x1 - x0
    c = (*colour[:3], 255)
    w = max(1, round(s * 0.08))

    def p(u: float, v: float) -> tuple[float, float]:
        return (x0 + u * s, y0 + v * s)

    def glyph(text: str, size: float = 0.7) -> None:
        fnt = font(max(1, round(s * size)))
        draw.text(p(0.5, 0.52), text, font=fnt, fill=c, anchor="mm")

    if key == "cup":
        draw.rectangle([p(0.22, 0.38), p(0.66, 0.78)], fill=c)
        draw.arc([p(0.58, 0.44), p(0.84, 0.68)], -90, 90, fill=c, width=w)
        draw.line([p(0.16, 0.84), p(0.8, 0.84)], fill=c, width=w)
        for u in (0.32, 0.46):
            draw.line([p(u, 0.16), p(u + 0.04, 0.3)], fill=c, width=w)
    elif key == "fork":
        draw.line([p(0.33, 0.15), p(0.33, 0.85)], fill=c, width=w)
        for u in (0.22, 0.44):
            draw.line([p(u, 0.15), p(u, 0.38)], fill=c, width=w)
        draw.line([p(0.22, 0.38), p(0.44, 0.38)], fill=c, width=w)
        draw.rounded_rectangle([p(0.6, 0.15), p(0.74, 0.55)], radius=s * 0.06, fill=c)
        draw.line([p(0.67, 0.5), p(0.67, 0.85)], fill=c, width=w)
    elif key == "glass":
        draw.polygon([p(0.2, 0.2), p(0.8, 0.2), p(0.5, 0.52)], fill=c)
        draw.line([p(0.5, 0.5), p(0.5, 0.8)], fill=c, width=w)
        draw.line([p(0.32, 0.82), p(0.68, 0.82)], fill=c, width=w)
    elif key == "bread":
        draw.ellipse([p(0.14, 0.32), p(0.86, 0.72)], fill=c)
    elif key == "bed":
        draw.rectangle([p(0.12, 0.5), p(0.88, 0.66)], fill=c)
        draw.rectangle([p(0.12, 0.28), p(0.2, 0.8)], fill=c)
        draw.rectangle([p(0.8, 0.56), p(0.88, 0.8)], fill=c)
        draw.ellipse([p(0.24, 0.36), p(0.42, 0.5)], fill=c)
    elif key == "cross":
        draw.rectangle([p(0.38, 0.14), p(0.62, 0.86)], fill=c)
        draw.rectangle([p(0.14, 0.38), p(0.86, 0.62)], fill=c)
    elif key == "dollar":
        glyph("$", 0.78)
    elif key == "book":
        draw.polygon([p(0.12, 0.28), p(0.48, 0.34), p(0.48, 0.8), p(0.12, 0.74)], fill=c)
        draw.polygon([p(0.52, 0.34), p(0.88, 0.28), p(0.88, 0.74), p(0.52, 0.8)], fill=c)
    elif key == "tree":
        draw.ellipse([p(0.2, 0.1), p(0.8, 0.66)], fill=c)
        draw.rectangle([p(0.44, 0.6), p(0.56, 0.88)], fill=c)
    elif key == "bus":
        draw.rounded_rectangle([p(0.2, 0.14), p(0.8, 0.78)], radius=s * 0.08, fill=c)
        draw.ellipse([p(0.26, 0.74), p(0.4, 0.88)], fill=c)
        draw.ellipse([p(0.6, 0.74), p(0.74, 0.88)], fill=c)
    elif key == "metro":
        glyph("M", 0.66)
    elif key == "spire":
        draw.rectangle([p(0.24, 0.5), p(0.76, 0.86)], fill=c)
        draw.polygon([p(0.38, 0.5), p(0.5, 0.12), p(0.62, 0.5)], fill=c)
    elif key == "temple":
        draw.polygon([p(0.12, 0.34), p(0.5, 0.14), p(0.88, 0.34)], fill=c)
        for u in (0.2, 0.42, 0.64):
            draw.rectangle([p(u, 0.38), p(u + 0.12, 0.76)], fill=c)
        draw.rectangle([p(0.12, 0.78), p(0.88, 0.86)], fill=c)
    elif key == "star":
        pts = []
        for k in range(10):
            ang = math.pi / 2 + k * math.pi / 5
            rad = 0.4 if k % 2 == 0 else 0.17
            pts.append(p(0.5 + rad * math.cos(ang), 0.54 - rad * math.sin(ang)))
        draw.polygon(pts, fill=c)
    elif key == "dumbbell":
        draw.rectangle([p(0.2, 0.46), p(0.8, 0.54)], fill=c)
        for u in (0.14, 0.7):
            draw.rectangle([p(u, 0.28), p(u + 0.16, 0.72)], fill=c)
    elif key == "parking":
        glyph("P", 0.78)
    elif key == "envelope":
        draw.rectangle([p(0.14, 0.26), p(0.86, 0.74)], outline=c, width=w)
        draw.line([p(0.14, 0.26), p(0.5, 0.54), p(0.86, 0.26)], fill=c, width=w)
    elif key == "scissors":
        draw.ellipse([p(0.16, 0.58), p(0.38, 0.82)], outline=c, width=w)
        draw.ellipse([p(0.62, 0.58), p(0.84, 0.82)], outline=c, width=w)
        draw.line([p(0.34, 0.62), p(0.72, 0.14)], fill=c, width=w)
        draw.line([p(0.66, 0.62), p(0.28, 0.14)], fill=c, width=w)
    elif key == "washer":
        draw.rectangle([p(0.18, 0.14), p(0.82, 0.86)], outline=c, width=w)
        draw.ellipse([p(0.3, 0.34), p(0.7, 0.74)], outline=c, width=w)
    elif key == "bag":
        draw.polygon([p(0.2, 0.36), p(0.8, 0.36), p(0.86, 0.86), p(0.14, 0.86)], fill=c)
        draw.arc([p(0.34, 0.14), p(0.66, 0.52)], 180, 360, fill=c, width=w)
    else:
        glyph("i", 0.72)


# Putting a view together ---------------------------------------------------------------------


def _render(
    scene: Scene, cam: Camera, city: City | None = None
) -> tuple[Image.Image, list[_SignHit], list[FurnitureHit]]:
    """Draw the view: sky, ground, facades, signs, then the city's street furniture."""
    r = _raycast(scene, cam)
    H, W = cam.height_px, cam.width_px
    out = np.empty((H, W, 3), np.float32)
    out[:] = _sky(cam, np.arange(H, dtype=np.float64))[:, None, :]
    _shade_ground(scene, cam, r, out)
    _shade_facades(scene, cam, r, out)
    canvas = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    hits = _sign_pass(scene, cam, r, canvas)
    furniture = (
        furniture_pass(city, cam, r.zbuf, canvas, haze_rgb=HAZE_RGB, fog=_fog)
        if city is not None
        else []
    )
    return Image.fromarray(canvas, "RGB"), hits, furniture


def _furniture_objects(
    city: City, cam: Camera, hits: list[FurnitureHit], max_distance_m: float
) -> list[VisibleObject]:
    """The street objects a view shows, as `VisibleObject`s (kind "street_object")."""
    objects = furniture_for(city).objects
    result = []
    for h in hits:
        if h.distance_m > max_distance_m or h.y_max - h.y_min < MIN_OBJECT_HEIGHT_PX:
            continue
        o = objects[h.index]
        fraction = h.visible_px / h.total_px
        bearing = float(cam.column_bearing_deg((h.x_min + h.x_max) / 2))
        result.append(
            VisibleObject(
                id=o.id,
                name=FURNITURE_KINDS[o.kind].words,
                label="",
                category=o.kind,
                kind="street_object",
                bearing_deg=round(bearing, 2),
                bearing_min_deg=round(float(cam.column_bearing_deg(h.x_min)), 2),
                bearing_max_deg=round(float(cam.column_bearing_deg(h.x_max)), 2),
                distance_m=round(h.distance_m, 2),
                side=egocentric_relation(bearing, cam.heading_deg),
                occluded=fraction < OCCLUDED_BELOW,
                visible_fraction=round(fraction, 3),
                x_min_px=int(h.x_min),
                x_max_px=math.ceil(h.x_max),
                text_height_px=0.0,
                sign="furniture",
            )
        )
    return result


def _objects(
    scene: Scene, cam: Camera, hits: list[_SignHit], max_distance_m: float
) -> list[VisibleObject]:
    """Group sign hits by the object they belong to."""
    by_obj: dict[int, list[_SignHit]] = {}
    for h in hits:
        if int(scene.skind[h.sign]) == POLE:
            continue
        by_obj.setdefault(int(scene.sobject[h.sign]), []).append(h)
    result = []
    for obj, group in by_obj.items():
        best = max(group, key=lambda h: (h.visible_px / h.total_px, h.visible_px))
        if best.distance_m > max_distance_m:
            continue
        seen = [h for h in group if h.visible_px > 0]
        if seen:
            x_lo = min(h.vis_x_min for h in seen)
            x_hi = max(h.vis_x_max for h in seen)
            bx0, bx1 = best.vis_x_min, best.vis_x_max
        else:
            x_lo = min(h.x_min for h in group)
            x_hi = max(h.x_max for h in group)
            bx0, bx1 = best.x_min, best.x_max
        o = scene.objects[obj]
        fraction = best.visible_px / best.total_px
        bearing = float(cam.column_bearing_deg((bx0 + bx1) / 2))
        em_m = float(scene.sem[best.sign])
        result.append(
            VisibleObject(
                id=o.id,
                name=o.name,
                label=o.label,
                category=o.category,
                kind=o.kind,
                bearing_deg=round(bearing, 2),
                bearing_min_deg=round(float(cam.column_bearing_deg(x_lo)), 2),
                bearing_max_deg=round(float(cam.column_bearing_deg(x_hi)), 2),
                distance_m=round(best.distance_m, 2),
                side=egocentric_relation(bearing, cam.heading_deg),
                occluded=fraction < OCCLUDED_BELOW,
                visible_fraction=round(fraction, 3),
                x_min_px=int(x_lo),
                x_max_px=int(x_hi),
                text_height_px=round(0.73 * em_m * cam.focal_px / best.centre_t, 2),
                sign=SIGN_KIND_NAMES[int(scene.skind[best.sign])],
            )
        )
    result.sort(key=lambda v: (v.distance_m, v.id))
    return result


# View sources --------------------------------------------------------------------------------


@runtime_checkable
class ViewSource(Protocol):
    """Anything that turns a camera pose into a pinhole image.

    `view(lat, lon, heading, *, fov, pitch, size)` gets validated arguments: heading in
    [0, 360) degrees, fov in degrees, pitch in degrees, size (width, height) in pixels.
    """

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
        """Return the view as an RGB image of `size`."""
        ...


class RenderedViewSource:
    """The default view source: views drawn from the city's OpenStreetMap data.

    Parameters
    ----------
    city
        The city to draw.
    """

    max_pitch_deg = MAX_RENDER_PITCH_DEG
    name = "rendered"

    def __init__(self, city: City) -> None:
        self._city = weakref.ref(city)

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
        """Render the view (see `render_view`)."""
        city = self._city()
        if city is None:
            raise InvalidViewError("The city of this RenderedViewSource no longer exists.")
        cam = make_camera(city, lat, lon, heading, fov=fov, pitch=pitch, size=size)
        image, _, _ = _render(scene_for(city), cam, city)
        return image


class PanoramaViewSource:
    """Pinhole crops from the user's own equirectangular panoramas (V-IRL's offline mode).

    Layout as in V-IRL: `panorama_dir/<pano_id>.jpg` (or .png) with
    `panorama_dir/<pano_id>.metadata.json` whose `rotation` is the north offset in degrees, and
    a mapping `{(lat, lon): pano_id}` (a dict, or the path of a JSON file or of V-IRL's pickle,
    read by `load_gps_to_pano` without resolving any global, so it cannot run code). A request
    at a mapped (lat, lon) uses that panorama; any other point uses the nearest mapped point
    closer than `mapping_radius_m`, else raises `PanoramaNotFoundError` (or asks `fallback`).

    The crop follows V-IRL's `get_perspective_from_panorama`: the panorama column of heading
    `h` is `((h + rotation) / 360) mod 1` of the width (column 0 at heading `-rotation`);
    pitch rotates about the camera's horizontal axis, positive up.

    Parameters
    ----------
    panorama_dir
        Folder of panoramas and their metadata.
    gps_to_pano
        Mapping `(lat, lon) -> pano_id`, or the path of a JSON file or of V-IRL's pickle
        (see `load_gps_to_pano`).
    mapping_radius_m
        How far a request may be from a mapped point, metres.
    fallback
        Where to get views with no panorama nearby (e.g. a `RenderedViewSource`); None raises.
    """

    max_pitch_deg = 90.0
    name = "panoramas"

    def __init__(
        self,
        panorama_dir: str | os.PathLike[str],
        gps_to_pano: Mapping[tuple[float, float], str] | str | os.PathLike[str],
        *,
        mapping_radius_m: float = 20.0,
        fallback: ViewSource | None = None,
    ) -> None:
        self.panorama_dir = Path(panorama_dir)
        if not self.panorama_dir.is_dir():
            raise InvalidViewError(f"`panorama_dir` {self.panorama_dir} is not a folder.")
        if isinstance(gps_to_pano, (str, os.PathLike)):
            gps_to_pano = load_gps_to_pano(gps_to_pano)
        if not isinstance(gps_to_pano, Mapping) or not gps_to_pano:
            raise InvalidViewError("`gps_to_pano` must be a non-empty {(lat, lon): pano_id}.")
        self.mapping = {(float(k[0]), float(k[1])): str(v) for k, v in gps_to_pano.items()}
        self._keys = np.array(list(self.mapping), dtype=float)
        self._ids = list(self.mapping.values())
        self.mapping_radius_m = float(mapping_radius_m)
        self.fallback = fallback
        self._cache: dict[str, tuple[np.ndarray, float]] = {}

    def relocate(self, lat: float, lon: float) -> tuple[tuple[float, float] | None, str | None]:
        """The mapped point and pano id for (`lat`, `lon`): the exact key, else the nearest
        mapped point closer than `mapping_radius_m`; (None, None) if there is none."""
        key = (float(lat), float(lon))
        if key in self.mapping:
            return key, self.mapping[key]
        d = haversine_m(lat, lon, self._keys[:, 0], self._keys[:, 1])
        k = int(np.argmin(d))
        if d[k] < self.mapping_radius_m:
            return (float(self._keys[k, 0]), float(self._keys[k, 1])), self._ids[k]
        return None, None

    def _panorama(self, pano_id: str) -> tuple[np.ndarray, float]:
        cached = self._cache.get(pano_id)
        if cached is not None:
            return cached
        image_path = None
        for ext in (".jpg", ".jpeg", ".png"):
            p = self.panorama_dir / f"{pano_id}{ext}"
            if p.is_file():
                image_path = p
                break
        if image_path is None:
            raise PanoramaNotFoundError(
                f"No image for panorama `{pano_id}` in {self.panorama_dir} "
                "(expected <pano_id>.jpg or .png)."
            )
        meta_path = self.panorama_dir / f"{pano_id}.metadata.json"
        rotation = 0.0
        if meta_path.is_file():
            rotation = float(json.loads(meta_path.read_text()).get("rotation", 0.0))
        with Image.open(image_path) as im:
            arr = np.asarray(im.convert("RGB"), dtype=np.uint8)
        if len(self._cache) >= 8:
            self._cache.pop(next(iter(self._cache)))
        self._cache[pano_id] = (arr, rotation)
        return arr, rotation

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
        """Crop the pinhole view from the nearest panorama (see the class docstring)."""
        _, pano_id = self.relocate(lat, lon)
        if pano_id is None:
            if self.fallback is not None:
                return self.fallback.view(lat, lon, heading, fov=fov, pitch=pitch, size=size)
            raise PanoramaNotFoundError(
                f"No panorama within {self.mapping_radius_m:g} m of ({lat:.6f}, {lon:.6f}); "
                "pass a mapped point, a larger `mapping_radius_m`, or a `fallback` source."
            )
        pano, rotation = self._panorama(pano_id)
        return Image.fromarray(
            equirect_to_pinhole(
                pano, heading, fov=fov, pitch=pitch, size=size, rotation_deg=rotation
            ),
            "RGB",
        )


class _DataOnlyUnpickler(pickle.Unpickler):
    """An unpickler that resolves no global at all, so a crafted file cannot run code.

    V-IRL ships its GPS→pano mapping as a pickle of a dict of tuples and strings; those need
    no global, so refusing every `find_class` reads them and nothing else.
    """

    def find_class(self, module: str, name: str) -> object:
        raise pickle.UnpicklingError(f"refused: the file asks for {module}.{name}")


def load_gps_to_pano(path: str | os.PathLike[str]) -> dict[tuple[float, float], str]:
    """Read a GPS→pano mapping: JSON (`{"lat,lon": pano_id}` or `[[lat, lon, pano_id], ...]`)
    or V-IRL's pickle of `{(lat, lon): pano_id}`, read without resolving any global (so it
    cannot run code)."""
    path = Path(path)
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict):
                return {
                    tuple(float(x) for x in str(k).split(",")[:2]): str(v)  # type: ignore[misc]
                    for k, v in data.items()
                }
            return {(float(a), float(b)): str(c) for a, b, c in data}
        with open(path, "rb") as fh:
            data = _DataOnlyUnpickler(fh).load()
    except (OSError, ValueError, TypeError, pickle.UnpicklingError, EOFError) as err:
        raise InvalidViewError(
            f"`gps_to_pano` file {path}: {err} (expected JSON, or V-IRL's pickle of a "
            "{(lat, lon): pano_id} dict: plain data only)."
        ) from None
    if not isinstance(data, Mapping):
        raise InvalidViewError(
            f"the GPS→pano mapping {path} is not a {{(lat, lon): pano_id}} dict."
        )
    return data  # type: ignore[return-value]


def equirect_to_pinhole(
    pano: np.ndarray,
    heading: float,
    *,
    fov: float,
    pitch: float,
    size: tuple[int, int],
    rotation_deg: float = 0.0,
) -> np.ndarray:
    """Cut a pinhole view out of an equirectangular panorama (bilinear, wraps around).

    Parameters
    ----------
    pano
        (H, W, 3) uint8 panorama: columns span 360° of longitude, rows 180° of latitude.
    heading
        View direction, degrees clockwise from north.
    fov
        Horizontal field of view, degrees.
    pitch
        Up (positive) or down, degrees.
    size
        (width, height) of the view, pixels.
    rotation_deg
        The panorama's north offset (V-IRL's `metadata.json` `rotation`), degrees.

    Returns
    -------
    numpy.ndarray
        (height, width, 3) uint8 view.
    """
    w, h = size
    ph, pw = pano.shape[:2]
    f = 0.5 * w / math.tan(math.radians(fov) / 2)
    xs = (np.arange(w) - (w - 1) / 2.0) / f
    ys = (np.arange(h) - (h - 1) / 2.0) / f
    X, Y = np.meshgrid(xs, ys)
    Z = np.ones_like(X)
    # Pitch about the camera x axis (image y points down, so up is negative y).
    p = math.radians(pitch)
    Y2 = Y * math.cos(p) - Z * math.sin(p)
    Z2 = Y * math.sin(p) + Z * math.cos(p)
    # Heading about the vertical axis, with V-IRL's north convention.
    a = math.radians(((heading - 180.0) % 360.0 + rotation_deg) % 360.0)
    X3 = X * math.cos(a) + Z2 * math.sin(a)
    Z3 = -X * math.sin(a) + Z2 * math.cos(a)
    norm = np.sqrt(X3 * X3 + Y2 * Y2 + Z3 * Z3)
    lon = np.arctan2(X3, Z3)
    lat = np.arcsin(np.clip(Y2 / norm, -1.0, 1.0))
    u = (lon / (2 * math.pi) + 0.5) * (pw - 1)
    v = (lat / math.pi + 0.5) * (ph - 1)
    u0 = np.floor(u).astype(np.int64)
    v0 = np.clip(np.floor(v).astype(np.int64), 0, ph - 1)
    du = (u - u0)[..., None]
    dv = (v - v0)[..., None]
    u1 = (u0 + 1) % pw
    u0 = u0 % pw
    v1 = np.clip(v0 + 1, 0, ph - 1)
    img = pano.astype(np.float32)
    top = img[v0, u0] * (1 - du) + img[v0, u1] * du
    bot = img[v1, u0] * (1 - du) + img[v1, u1] * du
    return np.clip(top * (1 - dv) + bot * dv + 0.5, 0, 255).astype(np.uint8)


_SOURCES: weakref.WeakKeyDictionary[City, ViewSource] = weakref.WeakKeyDictionary()


def set_view_source(city: City, source: ViewSource | None) -> None:
    """Make `source` the view source of `city` (None restores the rendered views).

    `render_view`, `view_grid` and `City.street_view` then use it without further arguments.
    """
    if source is None:
        _SOURCES.pop(city, None)
        return
    if not isinstance(source, ViewSource):
        raise InvalidViewError(
            "`source` must have a `view(lat, lon, heading, *, fov, pitch, "
            "size)` method (see `ViewSource`)."
        )
    _SOURCES[city] = source


def _source(city: City, source: ViewSource | None) -> ViewSource:
    if source is not None:
        return source
    return _SOURCES.get(city) or RenderedViewSource(city)


# Public API ----------------------------------------------------------------------------------


def render_view(
    city: City,
    lat: float,
    lon: float,
    heading: float,
    *,
    fov: float = 90.0,
    pitch: float = 0.0,
    size: tuple[int, int] | int = (512, 512),
    source: ViewSource | None = None,
) -> Image.Image:
    """A street view at (`lat`, `lon`) looking toward `heading`, like Street View Static.

    Examples
    --------
    >>> from openvirl.world import City
    >>> from openvirl.world.streetview import render_view
    >>> city = City.load("monaco")
    >>> image = render_view(city, 43.7396, 7.4271, 90, fov=90, size=(256, 256))
    >>> image.size
    (256, 256)

    The camera stands exactly at the point given, at eye height; snap it to the street first
    (`city.panoramas.nearest_pano`) to see what a walker sees. The same arguments always give
    the same pixels.

    Parameters
    ----------
    city
        The city.
    lat, lon
        Camera position, degrees.
    heading
        View direction, degrees clockwise from north; wrapped into [0, 360).
    fov
        Horizontal field of view, degrees, 10 to 120.
    pitch
        Up (positive) or down, degrees; a rendered view takes ±`MAX_RENDER_PITCH_DEG`.
    size
        (width, height) in pixels, each 16 to `MAX_VIEW_SIDE_PX`; an int means a square.
    source
        Where the pixels come from; default the source set with `set_view_source`, else the
        views rendered from the map.

    Returns
    -------
    PIL.Image.Image
        The RGB view.

    Raises
    ------
    OutsideMapError
        The point is outside the city's map.
    InvalidViewError
        Bad fov, pitch, heading (not finite) or size.
    """
    src = _source(city, source)
    max_pitch = float(getattr(src, "max_pitch_deg", MAX_RENDER_PITCH_DEG))
    cam = make_camera(city, lat, lon, heading, fov=fov, pitch=pitch, size=size, max_pitch=max_pitch)
    if isinstance(src, RenderedViewSource) and src._city() is city:
        image, _, _ = _render(scene_for(city), cam, city)
        return image
    return src.view(
        float(lat),
        float(lon),
        cam.heading_deg,
        fov=cam.fov_deg,
        pitch=cam.pitch_deg,
        size=(cam.width_px, cam.height_px),
    )


def visible(
    city: City,
    lat: float,
    lon: float,
    heading: float,
    *,
    fov: float = 90.0,
    pitch: float = 0.0,
    size: tuple[int, int] | int = (512, 512),
    max_distance_m: float = DEFAULT_VISIBLE_DISTANCE_M,
    furniture: bool = False,
    furniture_distance_m: float = VISIBLE_DISTANCE_M,
) -> list[VisibleObject]:
    """What the camera of `render_view` sees: POI and street-name signs, nearest first.

    It runs the renderer's own ray casting and sign test without drawing, so every object
    listed with `occluded=False` is drawn in the view, inside its bearing range. POIs whose
    signs are all out of frame, beyond `max_distance_m` or smaller than
    `MIN_SIGN_HEIGHT_PX` are left out; hidden ones are listed with `occluded=True`.

    Parameters
    ----------
    city, lat, lon, heading, fov, pitch, size
        As for `render_view`.
    max_distance_m
        Farthest sign to list, metres (at most `RENDER_DISTANCE_M`).
    furniture
        Also list the street objects drawn in the view (trees, lamps, hydrants, benches, ...;
        `kind="street_object"`, `category` their `openvirl.world.furniture.KINDS` key), from
        the same depth test as the drawing.
    furniture_distance_m
        Farthest street object to list, metres.

    Returns
    -------
    list[VisibleObject]
        Nearest first.
    """
    cam = make_camera(city, lat, lon, heading, fov=fov, pitch=pitch, size=size)
    if not 0 < max_distance_m <= RENDER_DISTANCE_M:
        raise InvalidViewError(
            f"`max_distance_m` must be in (0, {RENDER_DISTANCE_M:g}] metres, got "
            f"{max_distance_m!r}."
        )
    scene = scene_for(city)
    r = _raycast(scene, cam)
    hits = _sign_pass(scene, cam, r, None)
    seen = _objects(scene, cam, hits, max_distance_m)
    if furniture:
        found = furniture_pass(city, cam, r.zbuf, None, haze_rgb=HAZE_RGB, fog=_fog)
        seen += _furniture_objects(city, cam, found, furniture_distance_m)
        seen.sort(key=lambda v: (v.distance_m, v.id))
    return seen


def observe(
    city: City,
    lat: float,
    lon: float,
    heading: float,
    *,
    fov: float = 90.0,
    pitch: float = 0.0,
    size: tuple[int, int] | int = (512, 512),
    max_distance_m: float = DEFAULT_VISIBLE_DISTANCE_M,
    furniture: bool = False,
) -> tuple[Image.Image, list[VisibleObject]]:
    """The rendered view and what it shows, from one pass (`render_view` + `visible`);
    `furniture` adds the street objects it shows (see `visible`)."""
    cam = make_camera(city, lat, lon, heading, fov=fov, pitch=pitch, size=size)
    if not 0 < max_distance_m <= RENDER_DISTANCE_M:
        raise InvalidViewError(f"`max_distance_m` must be in (0, {RENDER_DISTANCE_M:g}] metres.")
    scene = scene_for(city)
    image, hits, found = _render(scene, cam, city)
    seen = _objects(scene, cam, hits, max_distance_m)
    if furniture:
        seen += _furniture_objects(city, cam, found, min(max_distance_m, VISIBLE_DISTANCE_M))
        seen.sort(key=lambda v: (v.distance_m, v.id))
    return image, seen


def view_grid(
    city: City,
    lat: float,
    lon: float,
    heading: float,
    *,
    fov: float = 90.0,
    pitch: float = 0.0,
    size: tuple[int, int] | int = (512, 512),
    labels: bool = True,
    source: ViewSource | None = None,
) -> Image.Image:
    """Four views at the current heading in a labelled 2x2 grid: [front, right; back, left].

    The views look at `heading` + 0, 90, 180 and 270 degrees (the reference's grid looked at
    ±45° and ±135° while its prompt said front/right/back/left; this one matches the prompt).
    They are separated by `GRID_SEPARATOR_PX` black pixels, as in the reference.

    Parameters
    ----------
    city, lat, lon, heading, fov, pitch, source
        As for `render_view`.
    size
        Size of each view, (width, height) pixels; the grid is (2w + 5, 2h + 5).
    labels
        Write "front 90°" etc. in each view's top-left corner.

    Returns
    -------
    PIL.Image.Image
        The RGB grid.
    """
    w, h = _check_size(size)
    heading = _check_angles(heading, fov, pitch, max_pitch=90.0)
    sep = GRID_SEPARATOR_PX
    grid = Image.new("RGB", (2 * w + sep, 2 * h + sep), (0, 0, 0))
    credits: list[str] = []
    for k, (name, offset) in enumerate(GRID_LAYOUT):
        view_heading = (heading + offset) % 360.0
        view = render_view(
            city, lat, lon, view_heading, fov=fov, pitch=pitch, size=(w, h), source=source
        )
        credit = view.info.get("attribution")
        if credit and credit not in credits:
            credits.append(str(credit))
        if labels:
            _label(view, f"{name} {view_heading:.0f}°")
        grid.paste(view, ((k % 2) * (w + sep), (k // 2) * (h + sep)))
    if credits:  # imagery from a provider travels with its copyright line
        grid.info["attribution"] = "; ".join(credits)
    return grid


def _label(image: Image.Image, text: str) -> None:
    draw = ImageDraw.Draw(image)
    size = max(10, round(image.width / 22))
    fnt = font(size)
    pad = max(3, size // 3)
    x1 = pad * 2 + fnt.getlength(text)
    draw.rectangle([0, 0, x1, size + 2 * pad], fill=(0, 0, 0))
    draw.text((pad, pad), text, font=fnt, fill=(255, 255, 255))


def box_to_bearing(
    x_min_px: float,
    x_max_px: float,
    heading: float,
    *,
    fov: float = 90.0,
    width_px: int = 512,
    model: str = "linear",
) -> tuple[float, float]:
    """Bearing range of an image box's horizontal extent.

    `model="linear"` is V-IRL's rule (§1.3): bearing = heading + (x − W/2) / W · fov, which
    every V-IRL box-to-place match uses; `model="pinhole"` is the exact projection of these
    views: bearing = heading + atan((x − W/2) / f) with f = (W/2) / tan(fov/2). They agree at
    the centre and the edges and differ by up to ~4° in between at fov 90.

    Parameters
    ----------
    x_min_px, x_max_px
        The box's left and right edges, pixels from the image's left edge.
    heading
        View heading, degrees clockwise from north.
    fov
        Horizontal field of view, degrees.
    width_px
        Image width, pixels.
    model
        "linear" (V-IRL) or "pinhole".

    Returns
    -------
    tuple[float, float]
        (bearing at `x_min_px`, bearing at `x_max_px`), degrees in [0, 360).
    """
    return (
        _x_to_bearing(x_min_px, heading, fov, width_px, model),
        _x_to_bearing(x_max_px, heading, fov, width_px, model),
    )


def _x_to_bearing(x: float, heading: float, fov: float, width: int, model: str) -> float:
    if model == "linear":
        return (heading + (x - width / 2) / width * fov) % 360.0
    if model == "pinhole":
        f = (width / 2) / math.tan(math.radians(fov) / 2)
        return (heading + math.degrees(math.atan((x - width / 2) / f))) % 360.0
    raise InvalidViewError(f"`model` must be 'linear' or 'pinhole', got {model!r}.")


def bearing_to_x(
    bearing: float,
    heading: float,
    *,
    fov: float = 90.0,
    width_px: int = 512,
    model: str = "linear",
) -> float | None:
    """Image column (pixels from the left edge) where `bearing` appears, or None outside.

    The inverse of `box_to_bearing` under the same `model` ("linear" is V-IRL's rule).

    Parameters
    ----------
    bearing, heading
        Degrees clockwise from north.
    fov
        Horizontal field of view, degrees.
    width_px
        Image width, pixels.
    model
        "linear" or "pinhole".

    Returns
    -------
    float or None
        The column, or None when the bearing is outside the field of view.
    """
    delta = (bearing - heading + 180.0) % 360.0 - 180.0
    if abs(delta) > fov / 2:
        return None
    if model == "linear":
        return width_px / 2 + delta / fov * width_px
    if model == "pinhole":
        f = (width_px / 2) / math.tan(math.radians(fov) / 2)
        return width_px / 2 + f * math.tan(math.radians(delta))
    raise InvalidViewError(f"`model` must be 'linear' or 'pinhole', got {model!r}.")


# Legibility: views aimed at POIs, and reading them with OCR ------------------------------------

LEGIBILITY_FOV_DEG = 60.0
"""Field of view of legibility views: V-IRL's default Street View (640x640, fov 60)."""

LEGIBILITY_SIZE_PX = (640, 640)
"""Image size of legibility views, pixels (V-IRL's default Street View)."""

AIMED_MAX_INCIDENCE_DEG = 70.0
"""An aimed view is kept when its sign faces the camera within this angle, degrees."""

OCR_MATCH_MIN = 80.0
"""A name counts as read when its fuzzy match score against the OCR text reaches this."""


@dataclass(frozen=True, slots=True)
class AimedView:
    """A view aimed at a POI's sign from the nearest street point (a legibility sample).

    Attributes
    ----------
    poi_id, name, label
        The POI's id, display name and the text on its sign.
    lat, lon, heading
        The camera: position (degrees) and heading (degrees clockwise from north).
    distance_m
        Camera to sign centre, metres.
    """

    poi_id: str
    name: str
    label: str
    lat: float
    lon: float
    heading: float
    distance_m: float


def aimed_views(
    city: City,
    n: int,
    *,
    seed: int = 0,
    min_distance_m: float = 5.0,
    max_distance_m: float = 40.0,
    fov: float = LEGIBILITY_FOV_DEG,
    size: tuple[int, int] = LEGIBILITY_SIZE_PX,
) -> list[AimedView]:
    """Up to `n` views, each aimed at a named POI's sign from the nearest street point.

    POIs are visited in a random order fixed by `seed`. For each, the camera stands at the
    point of a street centre-line (a carriageway, where Street View cars drive) nearest to the
    POI's sign (its storefront fascia or free-standing panel: where the view shows the POI);
    the POI is kept when that point is `min_distance_m` to `max_distance_m` from the sign, the
    sign faces the camera within `AIMED_MAX_INCIDENCE_DEG`, and `visible()` reports the POI
    unoccluded from there, looking at the sign.

    Parameters
    ----------
    city
        The city.
    n
        How many views to return (fewer if the city runs out of POIs).
    seed
        Order of the POIs.
    min_distance_m, max_distance_m
        Accepted camera-to-sign distances, metres.
    fov, size
        The camera of the views (V-IRL's default Street View).

    Returns
    -------
    list[AimedView]
        Deterministic for a given city, `n` and `seed`.
    """
    import shapely

    from openvirl.world.geometry import xy_bearing_deg

    scene = scene_for(city)
    street = np.nonzero(np.isin(scene.street_kind, (0, 3)))[0]
    tree = shapely.STRtree([scene.street_geoms[i] for i in street])
    pois = [i for i, o in enumerate(scene.objects) if o.kind == "poi" and scene.object_signs[i]]
    order = np.random.default_rng(seed).permutation(len(pois))
    views: list[AimedView] = []
    for k in order:
        if len(views) >= n:
            break
        obj = pois[int(k)]
        sign = scene.object_signs[obj][0]
        sx = float(scene.sx0[sign] + scene.sx1[sign]) / 2
        sy = float(scene.sy0[sign] + scene.sy1[sign]) / 2
        point = shapely.Point(sx, sy)
        hit, dist = tree.query_nearest(point, max_distance=max_distance_m, return_distance=True)
        if len(hit) == 0 or not min_distance_m <= float(dist[0]) <= max_distance_m:
            continue
        line = scene.street_geoms[int(street[int(hit[0])])]
        cam = line.interpolate(line.project(point))
        # The sign must face the camera (within AIMED_MAX_INCIDENCE_DEG), not show its edge.
        ex = float(scene.sx1[sign] - scene.sx0[sign])
        ey = float(scene.sy1[sign] - scene.sy0[sign])
        cx, cy = cam.x - sx, cam.y - sy
        facing = (ey * cx - ex * cy) / max(math.hypot(ex, ey) * math.hypot(cx, cy), 1e-9)
        if scene.sdouble[sign]:
            facing = abs(facing)
        if facing < math.cos(math.radians(AIMED_MAX_INCIDENCE_DEG)):
            continue
        lat, lon = city.to_latlon(cam.x, cam.y)
        heading = xy_bearing_deg(sx - cam.x, sy - cam.y)
        o = scene.objects[obj]
        seen = visible(
            city, lat, lon, heading, fov=fov, size=size, max_distance_m=max_distance_m + 10.0
        )
        # Keep it when its main sign (not just a blade seen edge-on) shows.
        if not any(v.id == o.id and not v.occluded and v.sign in ("fascia", "panel") for v in seen):
            continue
        views.append(
            AimedView(o.id, o.name, o.label, float(lat), float(lon), heading, float(dist[0]))
        )
    return views


OCR_PASSES = (("--psm 3", 1), ("--psm 6", 1), ("--psm 11", 2))
"""Tesseract runs of `ocr_text`: (options, upscale factor). Automatic page segmentation, one
text block, and sparse text on the image enlarged twice (bicubic): in street scenes each finds
names the others miss (measured on 200 aimed views: one run reads ~75%, these three ~90%)."""


def ocr_text(image: Image.Image, *, passes: tuple[tuple[str, int], ...] = OCR_PASSES) -> str:
    """Read the text in a view with Tesseract (the `ocr` extra and Debian's tesseract-ocr).

    The image is converted to grayscale and read once per entry of `passes` (Tesseract
    options, upscale factor); the outputs are joined with newlines.

    Parameters
    ----------
    image
        The view.
    passes
        (Tesseract command-line options, integer upscale factor) per run.

    Returns
    -------
    str
        Everything Tesseract read.

    Raises
    ------
    ImportError
        pytesseract is missing (`pip install openvirl[ocr]`) or the tesseract binary is not
        installed (`apt-get install tesseract-ocr`).
    """
    try:
        import pytesseract
    except ImportError:
        raise ImportError(
            "Reading views needs pytesseract: `pip install openvirl[ocr]` and the tesseract "
            "binary (`apt-get install tesseract-ocr`)."
        ) from None
    gray = image.convert("L")
    texts = []
    try:
        for options, scale in passes:
            img = (
                gray
                if scale == 1
                else gray.resize(
                    (gray.width * scale, gray.height * scale), Image.Resampling.BICUBIC
                )
            )
            texts.append(pytesseract.image_to_string(img, config=options))
    except pytesseract.TesseractNotFoundError:
        raise ImportError(
            "The tesseract binary is not installed: `apt-get install tesseract-ocr`."
        ) from None
    return "\n".join(texts)


def name_read_score(name: str, text: str) -> float:
    """How well an OCR `text` contains `name`, 0..100 (rapidfuzz, case and accent blind).

    The score is rapidfuzz's `partial_ratio` of the name against the text (whitespace and line
    breaks collapsed), or, for a multi-word name set on several lines, the worst
    `partial_ratio` of its words (words of one or two letters must appear exactly), whichever
    is higher. `OCR_MATCH_MIN` (80) counts as read.
    """
    import unicodedata

    from rapidfuzz import fuzz

    def fold(x: str) -> str:
        x = unicodedata.normalize("NFKD", x)
        return " ".join("".join(c for c in x if not unicodedata.combining(c)).lower().split())

    name_f, text_f = fold(name), fold(text)
    if not name_f:
        return 0.0
    score = float(fuzz.partial_ratio(name_f, text_f))
    words = name_f.split(" ")
    if len(words) > 1:
        worst = min(
            float(fuzz.partial_ratio(w, text_f)) if len(w) > 2 else (100.0 if w in text_f else 0.0)
            for w in words
        )
        score = max(score, worst)
    return score


__all__ = [
    "DEFAULT_VISIBLE_DISTANCE_M",
    "EYE_HEIGHT_M",
    "FOV_MAX_DEG",
    "FOV_MIN_DEG",
    "GRID_LAYOUT",
    "LEGIBILITY_FOV_DEG",
    "LEGIBILITY_SIZE_PX",
    "MAX_RENDER_PITCH_DEG",
    "MAX_VIEW_SIDE_PX",
    "NEUTRAL_SIGN_BG",
    "OCR_MATCH_MIN",
    "OCR_PASSES",
    "RENDER_DISTANCE_M",
    "AimedView",
    "Camera",
    "InvalidViewError",
    "PanoramaNotFoundError",
    "PanoramaViewSource",
    "RenderedViewSource",
    "ViewSource",
    "VisibleObject",
    "aimed_views",
    "bearing_to_x",
    "box_to_bearing",
    "equirect_to_pinhole",
    "load_gps_to_pano",
    "make_camera",
    "name_read_score",
    "neutral_signs",
    "observe",
    "ocr_text",
    "render_view",
    "set_view_source",
    "view_grid",
    "visible",
]
