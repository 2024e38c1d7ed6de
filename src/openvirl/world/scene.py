"""The per-city 3-D scene that street views are drawn from: facades, signs and street ground.

`scene_for(city)` builds it once per `City` instance (about a second for Manhattan) and keeps it
as long as the city lives. Everything is in the city's local metres (x east, y north, z up):

- **Facades**: every edge of every building footprint (simplified by `FACADE_SIMPLIFY_M`, split
  into pieces of at most `FACADE_PIECE_M`) is a vertical quad from the building's base to its
  top, with an outward direction, a colour (from `building:colour`, else a palette chosen by
  building type and a hash of the id, shaded by orientation), a window style and storey height.
  Heights come from the city (`height`, `building:levels`); a building with neither gets a
  believable height from its type (`TYPE_HEIGHTS_M`, varied by ±15% with its id hash).
- **Signs**: each named POI gets a storefront fascia on the nearest street-facing facade of its
  building (where the POI is) plus a projecting blade sign; POIs away from buildings (parks,
  stops, monuments) get a free-standing panel on two posts facing the nearest walkway. Each
  intersection of two named streets gets a pole with green street-name blades parallel to the
  streets. A sign carries its text lines, colours and a category pictogram key.
- **Ground**: street centre-lines with carriageway widths (by `highway`), footpaths and zebra
  crossings, rasterised on demand into 128 m tiles with mip levels (`ground_tile`).

Names are drawn with DejaVu Sans Bold (matplotlib's copy). A name with characters that font
lacks (CJK, Thai, ...) falls back to `name:en`, `int_name`, `name:latin`, `brand:en` or `brand`,
and else to the category in words ("Cafe"); `SceneObject.label` is the text actually drawn.
"""

from __future__ import annotations

import functools
import math
import re
import threading
import weakref
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import shapely
from PIL import Image, ImageDraw, ImageFont

from openvirl.world.city import STREET_HIGHWAYS

if TYPE_CHECKING:
    from openvirl.world.city import City
    from openvirl.world.places import Place

SCENE_VERSION = 1
"""Bump when the scene's content changes (sign placement, heights, colours)."""

FACADE_SIMPLIFY_M = 0.3
"""Footprints are simplified to this tolerance before their edges become facades, metres."""

FACADE_PIECE_M = 25.0
"""Facade edges longer than this are split into pieces, metres (keeps the spatial grid tight)."""

GRID_CELL_M = 50.0
"""Cell size of the spatial grids over facades and signs, metres."""

EXPOSURE_PROBE_M = 1.0
"""A facade is street-facing when the point this far outside its middle is in no building."""

FASCIA_SNAP_M = 30.0
"""A POI gets a storefront sign on a street-facing facade at most this far away, metres."""

OUTSIDE_FASCIA_M = 12.0
"""A POI outside any footprint uses a facade sign only when a facade is this close, metres."""

TYPE_HEIGHTS_M = {
    "house": 7.0,
    "detached": 7.0,
    "semidetached_house": 7.0,
    "terrace": 9.0,
    "bungalow": 4.5,
    "residential": 15.0,
    "apartments": 18.0,
    "dormitory": 18.0,
    "hotel": 24.0,
    "commercial": 16.0,
    "office": 24.0,
    "retail": 7.0,
    "supermarket": 6.0,
    "kiosk": 3.0,
    "industrial": 9.0,
    "warehouse": 9.0,
    "garage": 3.0,
    "garages": 3.0,
    "carport": 2.6,
    "shed": 3.0,
    "hut": 3.0,
    "cabin": 3.5,
    "roof": 4.5,
    "service": 4.0,
    "transformer_tower": 6.0,
    "church": 20.0,
    "cathedral": 30.0,
    "chapel": 10.0,
    "mosque": 15.0,
    "synagogue": 15.0,
    "temple": 12.0,
    "school": 14.0,
    "university": 18.0,
    "college": 18.0,
    "public": 16.0,
    "civic": 16.0,
    "government": 18.0,
    "hospital": 24.0,
    "train_station": 14.0,
    "parking": 12.0,
    "construction": 8.0,
    "ruins": 4.0,
    "stadium": 20.0,
    "tower": 30.0,
    "pavilion": 5.0,
    "yes": 12.0,
}
"""Height of a building with neither `height` nor `building:levels`, by `building=*`, metres."""

STREET_WIDTHS_M = {
    "trunk": 16.0,
    "primary": 14.0,
    "secondary": 12.0,
    "tertiary": 10.0,
    "trunk_link": 7.0,
    "primary_link": 7.0,
    "secondary_link": 7.0,
    "tertiary_link": 7.0,
    "unclassified": 8.0,
    "residential": 8.0,
    "road": 8.0,
    "living_street": 6.0,
    "service": 4.5,
    "pedestrian": 7.0,
}
"""Carriageway width of a street centre-line by `highway=*`, metres."""

FOOTPATH_WIDTH_M = 2.2
"""Width drawn for footways, paths, steps and cycleways, metres."""

# Sign kinds.
FASCIA, BLADE, PANEL, STREET_BLADE, POLE = 0, 1, 2, 3, 4
SIGN_KIND_NAMES = ("fascia", "blade", "panel", "street_blade", "pole")

# Physical sign sizes, metres.
FASCIA_HEIGHT_M = 1.6
FASCIA_BASE_M = 3.1
FASCIA_MAX_WIDTH_M = 6.5
FASCIA_LONG_WIDTH_M = 14.0
"""A name that fits no `FASCIA_MAX_WIDTH_M` sign may get one this long, metres."""
FASCIA_MARGIN_M = 0.2
ICON_GAP = 0.4
"""Gap between a sign's pictogram and its text, in single-line board heights (OCR engines
merge a pictogram that touches the first letter into a glyph)."""
SIGN_OFFSET_M = 0.12
"""Signs stand this far proud of their facade, metres."""
BLADE_HEIGHT_M = 1.2
BLADE_ABOVE_M = 0.35
"""A blade sign hangs this far above the top of its fascia, metres."""
BLADE_MAX_WIDTH_M = 2.6
BLADE_GAP_M = 0.15
PANEL_HEIGHT_M = 1.5
PANEL_BASE_M = 0.9
PANEL_MAX_WIDTH_M = 4.5
PANEL_LONG_WIDTH_M = 7.0
PANEL_FACE_STREET_M = 40.0
"""A free-standing panel faces the nearest street centre-line within this distance, metres."""
STREET_BLADE_HEIGHT_M = 0.5
STREET_BLADE_BASE_M = (3.75, 3.2)
STREET_POLE_TOP_M = 4.35
POLE_WIDTH_M = 0.12

SKIP_POI_TAGS = {"historic": {"district"}, "boundary": None, "place": None, "landuse": None}
"""POIs with these tags (value None: any value) get no sign: districts and areas have none."""

PANEL_CATEGORIES = frozenset(
    {
        "park",
        "bus_station",
        "transit_station",
        "light_rail_station",
        "subway_station",
        "train_station",
        "taxi_stand",
        "parking",
        "atm",
        "campground",
        "natural_feature",
    }
)
"""Categories that get a free-standing panel rather than a storefront sign."""

PANEL_HISTORIC = frozenset({"memorial", "monument", "statue", "wayside_cross", "boundary_stone"})


@dataclass(frozen=True, slots=True)
class SceneObject:
    """A thing a street view can show: a POI with its signs, or an intersection's name sign.

    Attributes
    ----------
    id
        The POI's OSM id ("node/123"), or "street_sign/<node>/<k>" for a street-name blade.
    name
        Display name of the POI or street.
    label
        The text drawn on its sign(s) (the name, or its Latin-script fallback).
    category
        The POI's primary place type, or "street_sign".
    kind
        "poi" or "street_sign".
    lat, lon
        The POI's position (or the sign pole's), degrees.
    """

    id: str
    name: str
    label: str
    category: str
    kind: str
    lat: float
    lon: float


class GridIndex:
    """A uniform grid over 2-D points for radius queries, with sorted index runs per cell.

    Parameters
    ----------
    x, y
        Point coordinates, metres.
    cell_m
        Cell size, metres.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, *, cell_m: float = GRID_CELL_M) -> None:
        self.cell_m = float(cell_m)
        n = len(x)
        if n == 0:
            self.x0 = self.y0 = 0.0
            self.nx = self.ny = 1
            self.order = np.zeros(0, np.int32)
            self.starts = np.zeros(2, np.int64)
            return
        self.x0 = float(np.min(x)) - 1.0
        self.y0 = float(np.min(y)) - 1.0
        self.nx = int((np.max(x) - self.x0) // self.cell_m) + 1
        self.ny = int((np.max(y) - self.y0) // self.cell_m) + 1
        cells = self._cells(np.asarray(x), np.asarray(y))
        self.order = np.argsort(cells, kind="stable").astype(np.int32)
        counts = np.bincount(cells, minlength=self.nx * self.ny)
        self.starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def _cells(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        cx = np.clip(((x - self.x0) // self.cell_m).astype(np.int64), 0, self.nx - 1)
        cy = np.clip(((y - self.y0) // self.cell_m).astype(np.int64), 0, self.ny - 1)
        return cy * self.nx + cx

    def query(self, x: float, y: float, radius_m: float) -> np.ndarray:
        """Indices of the points in the cells that touch the square around (`x`, `y`).

        A superset of the points within `radius_m` metres; callers filter exactly.
        """
        c = self.cell_m
        i0 = max(0, int((x - radius_m - self.x0) // c))
        i1 = min(self.nx - 1, int((x + radius_m - self.x0) // c))
        j0 = max(0, int((y - radius_m - self.y0) // c))
        j1 = min(self.ny - 1, int((y + radius_m - self.y0) // c))
        if i1 < i0 or j1 < j0:
            return np.zeros(0, np.int32)
        parts = []
        for j in range(j0, j1 + 1):
            a = self.starts[j * self.nx + i0]
            b = self.starts[j * self.nx + i1 + 1]
            if b > a:
                parts.append(self.order[a:b])
        if not parts:
            return np.zeros(0, np.int32)
        return np.concatenate(parts)


# Fonts and text -------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def font_path() -> str:
    """Path of DejaVu Sans Bold inside matplotlib's data (a core dependency, no system font)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / "DejaVuSans-Bold.ttf"
        if path.is_file():
            return str(path)
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans-Bold.ttf")


@functools.lru_cache(maxsize=128)
def font(size_px: int) -> ImageFont.FreeTypeFont:
    """DejaVu Sans Bold at `size_px` pixels (cached)."""
    return ImageFont.truetype(font_path(), max(1, int(size_px)))


@functools.lru_cache(maxsize=1)
def _charmap() -> frozenset[int]:
    from matplotlib.ft2font import FT2Font

    return frozenset(FT2Font(font_path()).get_charmap())


def drawable(text: str) -> bool:
    """Whether every character of `text` has a glyph in DejaVu Sans Bold."""
    chars = _charmap()
    return all(ord(ch) in chars or ch.isspace() for ch in text)


_FALLBACK_TAGS = (
    "name:en",
    "int_name",
    "name:latin",
    "name:ja-Latn",
    "name:ja_rm",
    "brand:en",
    "brand",
    "operator:en",
)
MAX_LABEL_CHARS = 48
"""Longer names are cut at a word boundary (with "…") to fit a sign."""


def sign_label(place: Place) -> str:
    """The text a POI's sign shows: its display name, or a Latin fallback (module docstring)."""
    candidates = [place.name]
    candidates += [place.tags.get(k, "") for k in _FALLBACK_TAGS]
    for text in candidates:
        text = " ".join((text or "").split())
        if text and drawable(text):
            break
    else:
        text = (place.category or "place").replace("_", " ").capitalize()
    if len(text) > MAX_LABEL_CHARS:
        cut = text[: MAX_LABEL_CHARS - 1].rsplit(" ", 1)[0]
        text = cut + "…"
    return text


@functools.lru_cache(maxsize=8192)
def text_em(text: str) -> float:
    """Advance width of `text` in DejaVu Sans Bold, in ems (font size = 1)."""
    return font(200).getlength(text) / 200.0


def _wrap(text: str, n_lines: int) -> list[str]:
    """Split `text` at spaces into `n_lines` lines of balanced width (fewer if too few words)."""
    words = text.split(" ")
    if n_lines <= 1 or len(words) == 1:
        return [text]
    n_lines = min(n_lines, len(words))
    total = text_em(text)
    lines: list[str] = []
    current: list[str] = []
    for i, word in enumerate(words):
        remaining_words = len(words) - i
        remaining_lines = n_lines - len(lines)
        trial = " ".join([*current, word])
        if (
            current
            and (text_em(trial) > total / n_lines * 1.08 or remaining_words < remaining_lines)
            and len(lines) < n_lines - 1
        ):
            lines.append(" ".join(current))
            current = [word]
        else:
            current.append(word)
    lines.append(" ".join(current))
    return lines


@dataclass(frozen=True, slots=True)
class SignLayout:
    """How a sign's text is set: lines, board size and font size, metres."""

    lines: tuple[str, ...]
    width_m: float
    height_m: float
    em_m: float
    icon: bool


def layout_sign(
    text: str,
    *,
    board_h_m: float,
    max_w_m: float,
    max_lines: int,
    icon: bool,
    min_scale: float = 0.55,
) -> SignLayout | None:
    """Set `text` on a board of height `board_h_m` (one line) no wider than `max_w_m`.

    Tries 1 to `max_lines` lines (the board grows by 55% of its height per extra line) and
    shrinks the text down to `min_scale` of its natural size; keeps the largest text. Returns
    None when nothing fits.
    """
    best: SignLayout | None = None
    for n in range(1, max_lines + 1):
        lines = _wrap(text, n)
        if len(lines) < n and n > 1:
            break
        h = board_h_m * (1.0 + 0.55 * (n - 1))
        em = h * 0.66 / (1.0 + 1.1 * (n - 1))
        pad = 0.16 * board_h_m
        icon_w = (0.76 + ICON_GAP) * board_h_m if icon else 0.0
        widest = max(text_em(line) for line in lines)
        natural = 2 * pad + icon_w + widest * em
        scale = 1.0 if natural <= max_w_m else (max_w_m - 2 * pad - icon_w) / (widest * em)
        if scale < min_scale:
            continue
        width = 2 * pad + icon_w + widest * em * scale
        cand = SignLayout(tuple(lines), width, h, em * scale, icon)
        if best is None or cand.em_m > best.em_m * 1.05:
            best = cand
    return best


# Colours -------------------------------------------------------------------------------------

_PALETTES: dict[str, tuple[tuple[int, int, int], ...]] = {
    "brick": ((152, 78, 58), (170, 96, 72), (128, 72, 56), (182, 112, 86), (140, 92, 74)),
    "stone": ((206, 196, 172), (190, 180, 158), (216, 208, 190), (176, 166, 146)),
    "concrete": ((168, 168, 162), (150, 154, 158), (186, 184, 176), (132, 134, 136)),
    "plaster": (
        (228, 214, 180),
        (222, 190, 150),
        (232, 226, 212),
        (214, 176, 150),
        (205, 214, 196),
        (236, 204, 140),
    ),
    "glass": ((92, 108, 124), (110, 126, 140), (80, 94, 110), (120, 132, 128)),
}
_CSS_COLOURS = {
    "white": (235, 235, 230),
    "black": (40, 40, 40),
    "grey": (150, 150, 150),
    "gray": (150, 150, 150),
    "red": (170, 60, 50),
    "brown": (130, 85, 60),
    "yellow": (230, 205, 120),
    "beige": (215, 200, 165),
    "orange": (220, 150, 80),
    "pink": (225, 170, 165),
    "blue": (90, 120, 170),
    "green": (110, 150, 100),
    "tan": (210, 180, 140),
    "silver": (190, 190, 195),
    "cream": (240, 230, 200),
}

WINDOW_NONE, WINDOW_PUNCHED, WINDOW_CURTAIN, WINDOW_ARCHED = 0, 1, 2, 3


def parse_colour(text: str | None) -> tuple[int, int, int] | None:
    """An OSM colour ("#aabbcc", "#abc", or a common CSS name) as RGB, else None."""
    if not text:
        return None
    text = text.strip().lower()
    m = re.fullmatch(r"#?([0-9a-f]{6}|[0-9a-f]{3})", text)
    if m:
        h = m.group(1)
        if len(h) == 3:
            h = "".join(c * 2 for c in h)
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    return _CSS_COLOURS.get(text)


def _hash(text: str) -> int:
    return zlib.crc32(text.encode("utf-8"))


def _building_look(
    bid: str, btype: str, height_m: float, tags: dict[str, str]
) -> tuple[tuple[int, int, int], int, float]:
    """(colour, window style, window pitch metres) of a building, deterministic per id."""
    h = _hash(bid)
    colour = parse_colour(tags.get("building:colour"))
    if btype in ("church", "cathedral", "chapel", "mosque", "synagogue", "temple"):
        family, style = "stone", WINDOW_ARCHED
    elif (
        btype
        in (
            "garage",
            "garages",
            "carport",
            "shed",
            "hut",
            "roof",
            "construction",
            "ruins",
            "transformer_tower",
            "kiosk",
        )
        or height_m < 3.5
    ):
        family, style = "concrete", WINDOW_NONE
    elif (btype in ("office", "commercial") and height_m >= 35) or height_m >= 90:
        family, style = ("glass", WINDOW_CURTAIN) if h % 3 else ("concrete", WINDOW_PUNCHED)
    elif btype in ("industrial", "warehouse", "parking"):
        family, style = "concrete", WINDOW_PUNCHED
    else:
        families = ("brick", "brick", "stone", "plaster", "plaster", "concrete")
        family, style = families[h % len(families)], WINDOW_PUNCHED
        if height_m >= 45 and h % 4 == 0:
            family, style = "glass", WINDOW_CURTAIN
    palette = _PALETTES[family]
    if colour is None:
        colour = palette[(h >> 8) % len(palette)]
    pitch = 2.6 + 0.4 * ((h >> 16) % 3)
    return colour, style, pitch


def _default_height(bid: str, btype: str) -> float:
    base = TYPE_HEIGHTS_M.get(btype, TYPE_HEIGHTS_M["yes"])
    jitter = 0.85 + 0.3 * ((_hash(bid) >> 4) % 1000) / 1000.0
    return base * jitter


SUN_AZIMUTH_DEG = 150.0
"""Direction the sunlight comes from, degrees clockwise from north (facade shading)."""

# Category -> (pictogram, board colour); text colour follows contrast.
_SIGN_STYLES: dict[str, tuple[str, tuple[int, int, int]]] = {
    "cafe": ("cup", (92, 52, 28)),
    "restaurant": ("fork", (150, 24, 28)),
    "food": ("fork", (150, 24, 28)),
    "meal_takeaway": ("fork", (178, 60, 16)),
    "bakery": ("bread", (140, 80, 20)),
    "bar": ("glass", (84, 28, 104)),
    "night_club": ("glass", (60, 20, 90)),
    "lodging": ("bed", (0, 84, 100)),
    "pharmacy": ("cross", (0, 120, 60)),
    "drugstore": ("cross", (0, 120, 60)),
    "hospital": ("cross", (170, 20, 30)),
    "doctor": ("cross", (0, 100, 140)),
    "dentist": ("cross", (0, 100, 140)),
    "health": ("cross", (0, 110, 90)),
    "bank": ("dollar", (16, 48, 120)),
    "atm": ("dollar", (16, 48, 120)),
    "finance": ("dollar", (16, 48, 120)),
    "school": ("book", (40, 60, 110)),
    "university": ("book", (40, 60, 110)),
    "library": ("book", (60, 50, 110)),
    "book_store": ("book", (100, 40, 60)),
    "park": ("tree", (30, 96, 40)),
    "bus_station": ("bus", (0, 80, 160)),
    "transit_station": ("bus", (0, 80, 160)),
    "light_rail_station": ("bus", (0, 110, 140)),
    "subway_station": ("metro", (20, 20, 24)),
    "train_station": ("metro", (20, 60, 120)),
    "church": ("spire", (70, 60, 80)),
    "place_of_worship": ("spire", (70, 60, 80)),
    "museum": ("temple", (110, 30, 40)),
    "art_gallery": ("temple", (40, 40, 44)),
    "tourist_attraction": ("star", (150, 90, 0)),
    "performing_arts_theater": ("star", (120, 16, 40)),
    "movie_theater": ("star", (120, 16, 40)),
    "gym": ("dumbbell", (30, 30, 34)),
    "parking": ("parking", (0, 70, 160)),
    "post_office": ("envelope", (170, 110, 0)),
    "hair_care": ("scissors", (120, 30, 90)),
    "beauty_salon": ("scissors", (140, 40, 100)),
    "spa": ("scissors", (60, 110, 120)),
    "laundry": ("washer", (0, 90, 150)),
    "supermarket": ("bag", (0, 110, 70)),
    "convenience_store": ("bag", (170, 70, 0)),
    "clothing_store": ("bag", (40, 40, 44)),
    "shoe_store": ("bag", (80, 40, 30)),
    "jewelry_store": ("star", (90, 70, 20)),
    "store": ("bag", (170, 70, 0)),
    "liquor_store": ("glass", (100, 20, 40)),
    "street_sign": ("", (0, 108, 60)),
}
_DEFAULT_SIGN_STYLE = ("info", (44, 44, 50))


def sign_style(place: Place) -> tuple[str, tuple[int, int, int], tuple[int, int, int]]:
    """(pictogram key, board colour, text colour) of a POI's sign."""
    icon, bg = _DEFAULT_SIGN_STYLE
    for cat in (*place.categories, place.category or ""):
        if cat in _SIGN_STYLES:
            icon, bg = _SIGN_STYLES[cat]
            break
    own = parse_colour(place.tags.get("brand:colour") or place.tags.get("colour"))
    if own is not None:
        bg = own
    lum = 0.2126 * bg[0] + 0.7152 * bg[1] + 0.0722 * bg[2]
    if lum > 150:  # a light board: darken it slightly, dark text
        return icon, bg, (20, 20, 20)
    if lum > 95:  # mid tones read badly with white text: darken the board
        bg = tuple(int(c * 0.6) for c in bg)  # type: ignore[assignment]
    return icon, bg, (255, 255, 255)


# The scene -----------------------------------------------------------------------------------


class Scene:
    """The renderer's precomputed scene of one city (see the module docstring).

    Facade arrays (one entry per facade quad): `fx0, fy0, fx1, fy1` endpoints (metres; the
    outside is to the right of p0 → p1), `fbase, ftop` (metres), `fcolor` (uint8 RGB, shaded),
    `fu0` (metres along the ring where the quad starts, for window rhythm), `flen` (metres),
    `fstyle` (window style), `fpitch` (window pitch, metres), `fstorey` (storey height, metres),
    `fexposed` (street-facing), `fbuilding` (index into `city.buildings`).

    Sign arrays (one entry per sign quad): `skind`, `sx0, sy0, sx1, sy1` (bottom edge, text
    reads p0 → p1 seen from the front, which is to the right of p0 → p1), `sbase, stop`,
    `sobject` (index into `objects`), `sdouble` (double-sided), `sbg, sfg` (RGB), plus
    the lists `slines` (text lines) and `sicon` (pictogram key); `sem` is the font size (em)
    in metres. `objects` lists what the signs belong to and `object_signs` maps an object's
    index to its signs.

    Street ground: `street_lines` (centre-line vertices, metres), `street_geoms` (the same as
    shapely LineStrings, indexed by `street_tree`), `street_width_m` and `street_kind`
    (0 carriageway, 1 footpath, 2 zebra crossing, 3 pedestrian street).
    """

    def __init__(self, city: City) -> None:
        self.city_name = city.name
        self.eye_height_m = 2.5
        self._build_facades(city)
        self._build_streets(city)
        self._build_signs(city)
        self.facade_grid = GridIndex(
            (self.fx0 + self.fx1) / 2, (self.fy0 + self.fy1) / 2, cell_m=GRID_CELL_M
        )
        self.facade_reach_m = float(np.max(self.flen) / 2) if len(self.flen) else 0.0
        self.sign_grid = GridIndex(
            (self.sx0 + self.sx1) / 2, (self.sy0 + self.sy1) / 2, cell_m=GRID_CELL_M
        )
        self.sign_reach_m = (
            float(np.max(np.hypot(self.sx1 - self.sx0, self.sy1 - self.sy0)) / 2)
            if len(self.sx0)
            else 0.0
        )
        self._tiles: OrderedDict[tuple[int, int], list[np.ndarray]] = OrderedDict()
        self.lock = threading.Lock()
        """Guards the tile and texture caches (views may be drawn from several threads)."""
        self.textures: OrderedDict[tuple, Image.Image] = OrderedDict()

    # Facades -----------------------------------------------------------------------------

    def _build_facades(self, city: City) -> None:
        buildings = city.buildings
        n_b = len(buildings)
        heights = np.zeros(n_b)
        bases = np.zeros(n_b)
        storeys = np.zeros(n_b)
        colours = np.zeros((n_b, 3))
        styles = np.zeros(n_b, np.uint8)
        pitches = np.zeros(n_b)
        for i, b in enumerate(buildings):
            btype = b.tags.get("building", "yes")
            top = b.height_m if b.height_source != "default" else _default_height(b.id, btype)
            base = b.min_height_m
            if btype == "roof" and base <= 0.0:
                base = max(2.4, top - 1.0)  # a canopy on pillars
            top = max(top, base + 0.5)
            levels = b.levels if b.levels and b.levels > 0 else None
            storey = (
                (top - base) / levels
                if levels
                else (3.6 if btype in ("office", "commercial") else 3.2)
            )
            storey = float(np.clip(storey, 2.6, 5.0))
            colour, style, pitch = _building_look(b.id, btype, top, b.tags)
            heights[i], bases[i], storeys[i] = top, base, storey
            colours[i], styles[i], pitches[i] = colour, style, pitch

        geoms = np.array([b.footprint for b in buildings], dtype=object)
        if n_b:
            geoms = shapely.simplify(geoms, FACADE_SIMPLIFY_M, preserve_topology=True)
            geoms = shapely.orient_polygons(geoms, exterior_cw=False)
            parts, part_idx = shapely.get_parts(geoms, return_index=True)
            rings, ring_part = shapely.get_rings(parts, return_index=True)
            coords, ring_of = shapely.get_coordinates(rings, return_index=True)
            building_of_ring = part_idx[ring_part]
        else:
            coords = np.zeros((0, 2))
            ring_of = np.zeros(0, np.int64)
            building_of_ring = np.zeros(0, np.int64)
        # Consecutive vertices of the same ring make an edge.
        same = ring_of[:-1] == ring_of[1:]
        p0 = coords[:-1][same]
        p1 = coords[1:][same]
        ring = ring_of[:-1][same]
        bidx = building_of_ring[ring] if len(ring) else np.zeros(0, np.int64)
        seg = p1 - p0
        length = np.hypot(seg[:, 0], seg[:, 1])
        # u along the ring: cumulative length before each edge within its ring.
        cum = np.cumsum(length) - length
        if len(ring):
            ring_start = np.zeros(len(ring), bool)
            ring_start[0] = True
            ring_start[1:] = ring[1:] != ring[:-1]
            first = np.maximum.accumulate(np.where(ring_start, np.arange(len(ring)), 0))
            u0 = cum - cum[first]
        else:
            u0 = cum
        keep = length > 0.05
        p0, p1, bidx, length, u0 = p0[keep], p1[keep], bidx[keep], length[keep], u0[keep]
        # Split long edges into pieces.
        pieces = np.maximum(1, np.ceil(length / FACADE_PIECE_M)).astype(np.int64)
        rep = np.repeat(np.arange(len(length)), pieces)
        k = np.arange(len(rep)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
        frac0 = k / pieces[rep]
        frac1 = (k + 1) / pieces[rep]
        d = (p1 - p0)[rep]
        q0 = p0[rep] + d * frac0[:, None]
        q1 = p0[rep] + d * frac1[:, None]
        self.fx0, self.fy0 = q0[:, 0].copy(), q0[:, 1].copy()
        self.fx1, self.fy1 = q1[:, 0].copy(), q1[:, 1].copy()
        self.flen = (length[rep] / pieces[rep]).astype(np.float32)
        self.fu0 = (u0[rep] + length[rep] * frac0).astype(np.float32)
        b = bidx[rep]
        self.fbuilding = b.astype(np.int32)
        self.fbase = bases[b].astype(np.float32)
        self.ftop = heights[b].astype(np.float32)
        self.fstorey = storeys[b].astype(np.float32)
        self.fstyle = styles[b]
        self.fpitch = pitches[b].astype(np.float32)
        # Orientation shading: outward normal (right of p0 -> p1) against the sun.
        ex, ey = self.fx1 - self.fx0, self.fy1 - self.fy0
        norm = np.maximum(np.hypot(ex, ey), 1e-9)
        nx, ny = ey / norm, -ex / norm
        sun = math.radians(SUN_AZIMUTH_DEG)
        light = nx * math.sin(sun) + ny * math.cos(sun)
        shade = 0.74 + 0.26 * np.clip(light, 0.0, 1.0)
        self.fcolor = np.clip(colours[b] * shade[:, None], 0, 255).astype(np.uint8)
        # Street-facing: the point just outside the middle is in no building.
        mx = (self.fx0 + self.fx1) / 2 + nx * EXPOSURE_PROBE_M
        my = (self.fy0 + self.fy1) / 2 + ny * EXPOSURE_PROBE_M
        exposed = np.ones(len(mx), bool)
        if len(mx) and n_b:
            tree = city.building_tree
            hit, _ = tree.query(shapely.points(mx, my), predicate="within")
            exposed[hit] = False
        self.fexposed = exposed
        self.building_heights_m = heights
        self.n_buildings = n_b

    # Streets (ground) --------------------------------------------------------------------

    def _build_streets(self, city: City) -> None:
        lines: list[np.ndarray] = []
        widths: list[float] = []
        kinds: list[int] = []  # 0 carriageway, 1 footpath, 2 crossing, 3 pedestrian area
        for _, _, d in city.graph.edges(data=True):
            hw = d.get("highway", "")
            coords = np.asarray(d["geometry"].coords, dtype=float)
            if len(coords) < 2:
                continue
            if d.get("footway") == "crossing":
                kinds.append(2)
                widths.append(3.2)
            elif hw == "pedestrian":
                kinds.append(3)
                widths.append(STREET_WIDTHS_M["pedestrian"])
            elif hw in STREET_HIGHWAYS:
                kinds.append(0)
                widths.append(STREET_WIDTHS_M.get(hw, 8.0))
            else:
                kinds.append(1)
                widths.append(FOOTPATH_WIDTH_M)
            lines.append(coords)
        self.street_lines = lines
        self.street_width_m = np.asarray(widths, dtype=float)
        self.street_kind = np.asarray(kinds, dtype=np.int8)
        geoms = [shapely.LineString(c) for c in lines]
        self.street_tree = shapely.STRtree(geoms)
        self.street_geoms = geoms

    def ground_tile(self, tx: int, ty: int) -> list[np.ndarray]:
        """The ground raster of tile (`tx`, `ty`) as mip levels (RGB uint8; level k has
        `GROUND_TILE_PX >> k` pixels a side over `GROUND_TILE_M` metres; row 0 is north)."""
        key = (tx, ty)
        with self.lock:
            tile = self._tiles.get(key)
            if tile is not None:
                self._tiles.move_to_end(key)
                return tile
        tile = _rasterise_tile(self, tx, ty)
        with self.lock:
            self._tiles[key] = tile
            while len(self._tiles) > GROUND_TILE_CACHE:
                self._tiles.popitem(last=False)
        return tile

    def clear_caches(self) -> None:
        """Drop the ground tiles and sign textures (they are rebuilt, identically, on use)."""
        with self.lock:
            self._tiles.clear()
            self.textures.clear()

    # Signs ---------------------------------------------------------------------------------

    def _build_signs(self, city: City) -> None:
        b = _SignBuilder()
        self.objects: list[SceneObject] = []
        self.unplaced_pois = 0
        self._place_poi_signs(city, b)
        self._place_street_signs(city, b)
        self.skind = np.asarray(b.kind, np.uint8)
        xy = np.asarray(b.xy, float).reshape(-1, 4)
        self.sx0, self.sy0, self.sx1, self.sy1 = (xy[:, i].copy() for i in range(4))
        self.sbase = np.asarray(b.base, np.float32)
        self.stop = np.asarray(b.top, np.float32)
        self.sobject = np.asarray(b.obj, np.int32)
        self.sdouble = np.asarray(b.double, bool)
        self.sbg = np.asarray(b.bg, np.uint8).reshape(-1, 3)
        self.sfg = np.asarray(b.fg, np.uint8).reshape(-1, 3)
        self.sem = np.asarray(b.em, np.float32)
        self.slines: list[tuple[str, ...]] = b.lines
        self.sicon: list[str] = b.icon
        self.object_signs: dict[int, list[int]] = defaultdict(list)
        for i, o in enumerate(b.obj):
            self.object_signs[o].append(i)

    def _place_poi_signs(self, city: City, b: _SignBuilder) -> None:
        pois = [p for p in city.pois if p.name and not _skip_poi(p)]
        pois.sort(key=lambda p: (-p.prominence, p.id))
        if not pois:
            return
        px, py = city.to_xy(np.array([p.lat for p in pois]), np.array([p.lon for p in pois]))
        px, py = np.atleast_1d(px), np.atleast_1d(py)
        # Containing building of each POI (or -1).
        inside = np.full(len(pois), -1, np.int64)
        if city.buildings:
            pi, bi = city.building_tree.query(shapely.points(px, py), predicate="within")
            inside[pi[::-1]] = bi[::-1]  # first hit wins
        grid = GridIndex((self.fx0 + self.fx1) / 2, (self.fy0 + self.fy1) / 2)
        reach = float(np.max(self.flen) / 2) if len(self.flen) else 0.0
        walk = _WalkSnap(city, self)
        occupied: dict[int, list[tuple[float, float]]] = defaultdict(list)
        for k, place in enumerate(pois):
            label = sign_label(place)
            icon, bg, fg = sign_style(place)
            obj = len(self.objects)
            self.objects.append(
                SceneObject(
                    place.id,
                    place.name,
                    label,
                    place.category or "point_of_interest",
                    "poi",
                    place.lat,
                    place.lon,
                )
            )
            x, y = float(px[k]), float(py[k])
            panel = _wants_panel(place)
            placed = False
            if not panel:
                placed = self._place_fascia(
                    b, obj, label, icon, bg, fg, x, y, int(inside[k]), grid, reach, occupied
                )
            if not placed:
                placed = self._place_panel(b, obj, label, icon, bg, fg, x, y, walk)
            if not placed:
                self.unplaced_pois += 1

    def _place_fascia(
        self,
        b: _SignBuilder,
        obj: int,
        label: str,
        icon: str,
        bg,
        fg,
        x: float,
        y: float,
        building: int,
        grid: GridIndex,
        reach: float,
        occupied: dict[int, list[tuple[float, float]]],
    ) -> bool:
        idx = grid.query(x, y, FASCIA_SNAP_M + reach)
        if len(idx) == 0:
            return False
        idx = idx[self.fexposed[idx] & (self.flen[idx] >= 1.6)]
        if len(idx) == 0:
            return False
        x0, y0, x1, y1 = self.fx0[idx], self.fy0[idx], self.fx1[idx], self.fy1[idx]
        ex, ey = x1 - x0, y1 - y0
        ll = np.maximum(ex * ex + ey * ey, 1e-12)
        s = np.clip(((x - x0) * ex + (y - y0) * ey) / ll, 0.0, 1.0)
        dist = np.hypot(x0 + s * ex - x, y0 + s * ey - y)
        outward = (ey * (x - x0) - ex * (y - y0)) > 0  # the POI is outside this facade
        own = self.fbuilding[idx] == building
        if building >= 0:
            ok = own & (dist <= FASCIA_SNAP_M)
        else:
            ok = outward & (dist <= OUTSIDE_FASCIA_M)
        if not ok.any():
            return False
        cand = np.nonzero(ok)[0]
        cand = cand[np.lexsort((idx[cand], dist[cand]))][:6]
        for c in cand:
            f = int(idx[c])
            if float(self.fbase[f]) > 0.5:
                continue
            length = float(self.flen[f])
            top_limit = float(self.ftop[f]) - 0.3
            base, board_h = FASCIA_BASE_M, FASCIA_HEIGHT_M
            if base + board_h > top_limit:
                # A low building: the sign sits lower and is smaller.
                board_h = min(board_h, max(0.7, top_limit - 1.2))
                base = max(1.0, top_limit - board_h)
                if base + board_h > top_limit + 0.01:
                    continue
            lay = None
            for cap in (FASCIA_MAX_WIDTH_M, FASCIA_LONG_WIDTH_M):  # a long name: a long sign
                max_w = min(cap, length - 2 * FASCIA_MARGIN_M)
                lay = layout_sign(label, board_h_m=board_h, max_w_m=max_w, max_lines=2, icon=True)
                if lay is not None:
                    break
            if lay is None or base + lay.height_m > top_limit + 0.01:
                continue
            want = float(s[c]) * length
            a = _free_slot(
                occupied[f], want, lay.width_m, FASCIA_MARGIN_M, length - FASCIA_MARGIN_M
            )
            if a is None:
                continue
            occupied[f].append((a - 0.25, a + lay.width_m + 0.25))
            fx0, fy0 = float(self.fx0[f]), float(self.fy0[f])
            ux, uy = float(ex[c]) / length, float(ey[c]) / length
            nx, ny = uy, -ux  # outward
            ax, ay = fx0 + ux * a + nx * SIGN_OFFSET_M, fy0 + uy * a + ny * SIGN_OFFSET_M
            bx, by = ax + ux * lay.width_m, ay + uy * lay.width_m
            top = base + lay.height_m
            b.add(
                FASCIA, (ax, ay, bx, by), base, top, obj, False, bg, fg, lay.lines, icon, lay.em_m
            )
            self._add_blade(
                b,
                obj,
                label,
                bg,
                fg,
                ax,
                ay,
                ux,
                uy,
                nx,
                ny,
                base=top + BLADE_ABOVE_M,
                top_limit=top_limit,
            )
            return True
        return False

    def _add_blade(
        self,
        b: _SignBuilder,
        obj: int,
        label: str,
        bg,
        fg,
        ax: float,
        ay: float,
        ux: float,
        uy: float,
        nx: float,
        ny: float,
        *,
        base: float,
        top_limit: float,
    ) -> None:
        """A double-sided blade sign above the fascia's start, standing out from the wall."""
        lay = layout_sign(
            label,
            board_h_m=BLADE_HEIGHT_M,
            max_w_m=BLADE_MAX_WIDTH_M,
            max_lines=3,
            icon=False,
            min_scale=0.4,
        )
        if lay is None or base + lay.height_m > top_limit:
            return
        px, py = ax + ux * 0.2 - nx * SIGN_OFFSET_M, ay + uy * 0.2 - ny * SIGN_OFFSET_M
        s0x, s0y = px + nx * BLADE_GAP_M, py + ny * BLADE_GAP_M
        s1x, s1y = s0x + nx * lay.width_m, s0y + ny * lay.width_m
        b.add(
            BLADE,
            (s0x, s0y, s1x, s1y),
            base,
            base + lay.height_m,
            obj,
            True,
            bg,
            fg,
            lay.lines,
            "",
            lay.em_m,
        )

    def _place_panel(
        self,
        b: _SignBuilder,
        obj: int,
        label: str,
        icon: str,
        bg,
        fg,
        x: float,
        y: float,
        walk: _WalkSnap,
    ) -> bool:
        where = walk.panel_spot(x, y)
        if where is None:
            return False
        cx, cy, fx, fy = where  # centre and the direction the panel faces (unit)
        lay = layout_sign(
            label,
            board_h_m=PANEL_HEIGHT_M,
            max_w_m=PANEL_MAX_WIDTH_M,
            max_lines=3,
            icon=True,
            min_scale=0.45,
        ) or layout_sign(
            label,
            board_h_m=PANEL_HEIGHT_M,
            max_w_m=PANEL_LONG_WIDTH_M,
            max_lines=3,
            icon=True,
            min_scale=0.3,
        )
        if lay is None:
            return False
        # Text reads p0 -> p1 seen from the front, which is to the right of p0 -> p1.
        ux, uy = -fy, fx  # p0 -> p1 direction, so that (uy, -ux) = (fx, fy) is the front
        half = lay.width_m / 2
        x0, y0 = cx - ux * half, cy - uy * half
        x1, y1 = cx + ux * half, cy + uy * half
        b.add(
            PANEL,
            (x0, y0, x1, y1),
            PANEL_BASE_M,
            PANEL_BASE_M + lay.height_m,
            obj,
            True,
            bg,
            fg,
            lay.lines,
            icon,
            lay.em_m,
        )
        for t in (0.12, 0.88):
            qx, qy = x0 + (x1 - x0) * t, y0 + (y1 - y0) * t
            b.add(
                POLE,
                (qx, qy, qx, qy),
                0.0,
                PANEL_BASE_M + 0.05,
                obj,
                True,
                (70, 72, 76),
                (70, 72, 76),
                (),
                "",
                0.0,
            )
        return True

    def _place_street_signs(self, city: City, b: _SignBuilder) -> None:
        G = city.graph
        poles: list[tuple[float, float, tuple[str, ...]]] = []
        for node in sorted(city.intersections):
            streets: dict[str, tuple[float, float, float]] = {}
            for _, _other, d in G.edges(node, data=True):
                if d.get("highway") not in STREET_HIGHWAYS or not d.get("street"):
                    continue
                if d.get("street_inferred"):
                    continue
                coords = np.asarray(d["geometry"].coords)
                if d["geometry_start"] != node:
                    coords = coords[::-1]
                vx, vy = coords[1] - coords[0]
                n = math.hypot(vx, vy)
                if n < 1e-6:
                    continue
                width = STREET_WIDTHS_M.get(d["highway"], 8.0)
                name = d["street"]
                if name not in streets or width > streets[name][2]:
                    streets[name] = (vx / n, vy / n, width)
            if len(streets) < 2:
                continue
            names = sorted(streets)[:2]
            (ax, ay, wa), (bx, by, wb) = streets[names[0]], streets[names[1]]
            nd = G.nodes[node]
            x, y = float(nd["x"]), float(nd["y"])
            # The corner between the two streets, on the sidewalk.
            sx, sy = ax + bx, ay + by
            sn = math.hypot(sx, sy)
            if sn < 0.2:
                sx, sy, sn = -ay, ax, 1.0
            sx, sy = sx / sn, sy / sn
            half_angle = math.acos(max(-1.0, min(1.0, ax * sx + ay * sy)))
            need = max(wa, wb) / 2 + 1.6
            dist = min(22.0, need / max(0.3, math.sin(half_angle)))
            qx, qy = x + sx * dist, y + sy * dist
            key = tuple(names)
            if any(n == key and math.hypot(qx - ox, qy - oy) < 15.0 for ox, oy, n in poles):
                continue
            poles.append((qx, qy, key))
            lat, lon = city.to_latlon(qx, qy)
            first = len(self.objects)
            for k, name in enumerate(names):
                label = name if drawable(name) else ""
                if not label:
                    continue
                vx, vy = streets[name][0], streets[name][1]
                lay = layout_sign(
                    label,
                    board_h_m=STREET_BLADE_HEIGHT_M,
                    max_w_m=2.8,
                    max_lines=1,
                    icon=False,
                    min_scale=0.5,
                )
                if lay is None:
                    continue
                obj = len(self.objects)
                self.objects.append(
                    SceneObject(
                        f"street_sign/{node}/{k}",
                        name,
                        label,
                        "street_sign",
                        "street_sign",
                        lat,
                        lon,
                    )
                )
                half = lay.width_m / 2
                base = STREET_BLADE_BASE_M[k]
                b.add(
                    STREET_BLADE,
                    (qx - vx * half, qy - vy * half, qx + vx * half, qy + vy * half),
                    base,
                    base + lay.height_m,
                    obj,
                    True,
                    (0, 108, 60),
                    (255, 255, 255),
                    lay.lines,
                    "",
                    lay.em_m,
                )
            if len(self.objects) > first:
                b.add(
                    POLE,
                    (qx, qy, qx, qy),
                    0.0,
                    STREET_POLE_TOP_M,
                    first,
                    True,
                    (60, 64, 60),
                    (60, 64, 60),
                    (),
                    "",
                    0.0,
                )

    # Sizes -------------------------------------------------------------------------------

    def nbytes(self) -> int:
        """Approximate memory held by the scene's arrays and caches, bytes."""
        total = 0
        for value in vars(self).values():
            if isinstance(value, np.ndarray):
                total += value.nbytes
        total += sum(c.nbytes for c in self.street_lines)
        total += sum(a.nbytes for t in self._tiles.values() for a in t)
        total += sum(len(im.tobytes()) for im in self.textures.values())
        return total

    def stats(self) -> dict[str, int | float]:
        """Counts of what the scene holds (facades, signs by kind, unplaced POIs)."""
        kinds = np.bincount(self.skind, minlength=len(SIGN_KIND_NAMES))
        return {
            "facades": len(self.fx0),
            "buildings": self.n_buildings,
            "objects": len(self.objects),
            **{f"signs_{name}": int(kinds[i]) for i, name in enumerate(SIGN_KIND_NAMES)},
            "unplaced_pois": self.unplaced_pois,
            "street_lines": len(self.street_lines),
            "megabytes": round(self.nbytes() / 1e6, 2),
        }


class _SignBuilder:
    """Collects sign quads in lists before they become the scene's arrays."""

    def __init__(self) -> None:
        self.kind: list[int] = []
        self.xy: list[float] = []
        self.base: list[float] = []
        self.top: list[float] = []
        self.obj: list[int] = []
        self.double: list[bool] = []
        self.bg: list[int] = []
        self.fg: list[int] = []
        self.lines: list[tuple[str, ...]] = []
        self.icon: list[str] = []
        self.em: list[float] = []

    def add(
        self,
        kind: int,
        xy: Sequence[float],
        base: float,
        top: float,
        obj: int,
        double: bool,
        bg: Sequence[int],
        fg: Sequence[int],
        lines: Sequence[str],
        icon: str,
        em: float,
    ) -> None:
        self.kind.append(kind)
        self.xy.extend(float(v) for v in xy)
        self.base.append(float(base))
        self.top.append(float(top))
        self.obj.append(obj)
        self.double.append(double)
        self.bg.extend(int(c) for c in bg)
        self.fg.extend(int(c) for c in fg)
        self.lines.append(tuple(lines))
        self.icon.append(icon)
        self.em.append(float(em))


class _WalkSnap:
    """Where a free-standing panel goes: near the POI, beside the nearest walkway, facing the
    nearest street (within `PANEL_FACE_STREET_M`) so that passers-by on it can read it."""

    def __init__(self, city: City, scene: Scene) -> None:
        self.scene = scene
        self.tree = scene.street_tree
        self.geoms = scene.street_geoms
        self.streets = np.nonzero(np.isin(scene.street_kind, (0, 3)))[0]
        self.street_tree = shapely.STRtree([self.geoms[i] for i in self.streets])

    def panel_spot(self, x: float, y: float) -> tuple[float, float, float, float] | None:
        point = shapely.Point(x, y)
        hit = self.tree.query_nearest(
            point, max_distance=400.0, return_distance=True, all_matches=False
        )
        if len(hit[0]) == 0:
            return None
        i = int(hit[0][0])
        dist = float(hit[1][0])
        line = self.geoms[i]
        near = line.interpolate(line.project(point))
        half = float(self.scene.street_width_m[i]) / 2
        kind = int(self.scene.street_kind[i])
        clearance = half + (1.4 if kind in (0, 3) else 0.8)
        dx, dy = x - near.x, y - near.y
        if dist < 1e-6:
            # On the line itself: step to its left side.
            s = line.project(point)
            a = line.interpolate(max(0.0, s - 1.0))
            c = line.interpolate(min(line.length, s + 1.0))
            tx, ty = c.x - a.x, c.y - a.y
            tn = math.hypot(tx, ty) or 1.0
            dx, dy, dist = -ty / tn, tx / tn, 1.0
        ux, uy = dx / dist, dy / dist
        # Stand at the POI if it is close to the walkway, else at the walkway's edge.
        stand = min(max(dist, clearance), clearance + 6.0)
        cx, cy = near.x + ux * stand, near.y + uy * stand
        fx, fy = -ux, -uy
        spot = shapely.Point(cx, cy)
        hit = self.street_tree.query_nearest(
            spot, max_distance=PANEL_FACE_STREET_M, return_distance=True, all_matches=False
        )
        if len(hit[0]):
            street = self.geoms[int(self.streets[int(hit[0][0])])]
            q = street.interpolate(street.project(spot))
            d = math.hypot(q.x - cx, q.y - cy)
            if d > 0.5:
                fx, fy = (q.x - cx) / d, (q.y - cy) / d
        return cx, cy, fx, fy


def _free_slot(
    taken: list[tuple[float, float]], want_centre: float, width: float, lo: float, hi: float
) -> float | None:
    """Start of a free interval of `width` in [lo, hi] nearest `want_centre`, or None."""
    if hi - lo < width:
        return None
    candidates = [want_centre - width / 2, lo, hi - width]
    for a, b in taken:
        candidates += [b, a - width]
    best = None
    for start in candidates:
        start = min(max(start, lo), hi - width)
        end = start + width
        if any(start < b and end > a for a, b in taken):
            continue
        cost = abs(start + width / 2 - want_centre)
        if best is None or cost < best[0]:
            best = (cost, start)
    return None if best is None else best[1]


def _skip_poi(place: Place) -> bool:
    for key, values in SKIP_POI_TAGS.items():
        value = place.tags.get(key)
        if value is not None and (values is None or value in values):
            return True
    return False


def _wants_panel(place: Place) -> bool:
    if place.tags.get("historic") in PANEL_HISTORIC or place.tags.get("tourism") == "artwork":
        return True
    if place.tags.get("highway") == "bus_stop" or place.tags.get("railway") in (
        "subway_entrance",
        "tram_stop",
        "halt",
    ):
        return True
    return (place.category or "") in PANEL_CATEGORIES


# Ground tiles --------------------------------------------------------------------------------

GROUND_TILE_M = 128.0
"""Side of a ground tile, metres."""
GROUND_TILE_PX = 512
"""Side of a ground tile at mip level 0, pixels (0.25 m per pixel)."""
GROUND_LEVELS = 5
"""Mip levels per tile: 0.25, 0.5, 1, 2 and 4 m per pixel."""
GROUND_TILE_CACHE = 160
"""Tiles kept in memory per scene (about 1 MB each)."""

PAVEMENT_RGB = (176, 174, 168)
CURB_RGB = (150, 148, 144)
ASPHALT_RGB = (84, 86, 90)
FOOTPATH_RGB = (190, 186, 176)
PLAZA_RGB = (196, 190, 178)
MARKING_RGB = (228, 228, 222)


def _rasterise_tile(scene: Scene, tx: int, ty: int) -> list[np.ndarray]:
    """Draw the ground of one tile: pavement, footpaths, carriageways, markings, zebras."""
    size = GROUND_TILE_PX
    res = GROUND_TILE_M / size
    x0, y0 = tx * GROUND_TILE_M, ty * GROUND_TILE_M
    y1 = y0 + GROUND_TILE_M
    img = Image.new("RGB", (size, size), PAVEMENT_RGB)
    draw = ImageDraw.Draw(img)
    pad = 20.0
    box = shapely.box(x0 - pad, y0 - pad, x0 + GROUND_TILE_M + pad, y1 + pad)
    hits = np.sort(scene.street_tree.query(box))

    def to_px(c: np.ndarray) -> list[tuple[float, float]]:
        return list(
            zip(((c[:, 0] - x0) / res).tolist(), ((y1 - c[:, 1]) / res).tolist(), strict=True)
        )

    kinds = scene.street_kind[hits]
    widths = scene.street_width_m[hits]
    # Footpaths, then curbs, plazas, carriageways, markings, crossings.
    for i in hits[kinds == 1]:
        draw.line(
            to_px(scene.street_lines[i]),
            fill=FOOTPATH_RGB,
            width=max(1, round(scene.street_width_m[i] / res)),
            joint="curve",
        )
    for i in hits[kinds == 0]:
        draw.line(
            to_px(scene.street_lines[i]),
            fill=CURB_RGB,
            width=max(1, round((scene.street_width_m[i] + 0.5) / res)),
            joint="curve",
        )
    for i in hits[kinds == 3]:
        draw.line(
            to_px(scene.street_lines[i]),
            fill=PLAZA_RGB,
            width=max(1, round(scene.street_width_m[i] / res)),
            joint="curve",
        )
    for i in hits[kinds == 0]:
        draw.line(
            to_px(scene.street_lines[i]),
            fill=ASPHALT_RGB,
            width=max(1, round(scene.street_width_m[i] / res)),
            joint="curve",
        )
    for i, w in zip(hits[kinds == 0], widths[kinds == 0], strict=True):
        if w >= 7.9:
            _dashes(
                draw,
                scene.street_lines[i],
                x0,
                y1,
                res,
                dash_m=3.0,
                gap_m=6.0,
                width_px=max(2, round(0.3 / res)),
            )
    for i in hits[kinds == 2]:
        _zebra(draw, scene.street_lines[i], x0, y1, res)
    arr = np.asarray(img, dtype=np.uint8)
    # Deterministic grain so large surfaces do not look flat.
    rng = np.random.default_rng(_hash(f"{scene.city_name}:{tx}:{ty}"))
    # Grain: fine speckle plus soft 2 m blotches (stains, patches), both faint.
    coarse = rng.integers(-5, 6, size=(size // 8, size // 8, 1), dtype=np.int16)
    grain = rng.integers(-3, 4, size=(size, size, 1), dtype=np.int16)
    grain += np.repeat(np.repeat(coarse, 8, axis=0), 8, axis=1)
    arr = np.clip(arr.astype(np.int16) + grain, 0, 255).astype(np.uint8)
    levels = [arr]
    for _ in range(1, GROUND_LEVELS):
        a = levels[-1].astype(np.uint16)
        a = (a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4
        levels.append(a.astype(np.uint8))
    return levels


def _walk_polyline(coords: np.ndarray, step_m: float):
    """Yield (x, y, ux, uy) every `step_m` metres along a polyline (unit tangent u)."""
    seg = np.diff(coords, axis=0)
    lens = np.hypot(seg[:, 0], seg[:, 1])
    total = float(lens.sum())
    if total <= 0:
        return
    cum = np.concatenate([[0.0], np.cumsum(lens)])
    for s in np.arange(step_m / 2, total, step_m):
        k = int(np.searchsorted(cum, s, side="right") - 1)
        k = min(k, len(lens) - 1)
        if lens[k] <= 0:
            continue
        t = (s - cum[k]) / lens[k]
        ux, uy = seg[k] / lens[k]
        yield coords[k, 0] + seg[k, 0] * t, coords[k, 1] + seg[k, 1] * t, ux, uy


def _dashes(
    draw: ImageDraw.ImageDraw,
    coords: np.ndarray,
    x0: float,
    y1: float,
    res: float,
    *,
    dash_m: float,
    gap_m: float,
    width_px: int,
) -> None:
    for x, y, ux, uy in _walk_polyline(coords, dash_m + gap_m):
        a = ((x - ux * dash_m / 2 - x0) / res, (y1 - (y - uy * dash_m / 2)) / res)
        b = ((x + ux * dash_m / 2 - x0) / res, (y1 - (y + uy * dash_m / 2)) / res)
        draw.line([a, b], fill=MARKING_RGB, width=width_px)


def _zebra(draw: ImageDraw.ImageDraw, coords: np.ndarray, x0: float, y1: float, res: float) -> None:
    """Zebra stripes along a crossing: bars across the walking line, 0.5 m wide, 1 m apart."""
    half = 1.6
    width_px = max(1, round(0.5 / res))
    for x, y, ux, uy in _walk_polyline(coords, 1.0):
        a = ((x - uy * half - x0) / res, (y1 - (y + ux * half)) / res)
        b = ((x + uy * half - x0) / res, (y1 - (y - ux * half)) / res)
        draw.line([a, b], fill=MARKING_RGB, width=width_px)


# Cache per City ------------------------------------------------------------------------------

_SCENES: weakref.WeakKeyDictionary[City, Scene] = weakref.WeakKeyDictionary()


def scene_for(city: City) -> Scene:
    """The scene of `city`, built on first use and kept as long as the city object lives.

    Parameters
    ----------
    city
        A loaded `City`.

    Returns
    -------
    Scene
        Its facades, signs and street ground.
    """
    scene = _SCENES.get(city)
    if scene is None:
        scene = Scene(city)
        _SCENES[city] = scene
    return scene


__all__ = [
    "SCENE_VERSION",
    "STREET_WIDTHS_M",
    "TYPE_HEIGHTS_M",
    "GridIndex",
    "Scene",
    "SceneObject",
    "SignLayout",
    "layout_sign",
    "scene_for",
    "sign_label",
    "sign_style",
]
