"""Playing-card images for GeneralPoints, laid out like the reference's 1200×1200 observation.

The reference pastes four card PNGs onto a casino-green canvas (spec §2.4). We do not ship those
PNGs; every card is drawn here with PIL from the DejaVu fonts that matplotlib (a core dependency)
carries, so no system font is needed and a given Pillow + matplotlib install always produces the
same pixels (a different FreeType build may shift antialiasing slightly). The art favours
legibility over ornament: a vision-language model sees the hand downsized to about 560 px, so the
corner indices are large and bold, red suits are plainly red, and each face has its own colour.

Rendering is deterministic (no randomness anywhere) and cheap: each of the 52 cards is drawn once
per width and cached, the green canvas is cached per size, and a hand is a copy plus a few pastes.

    >>> from openvirl.envs.points.render import render_hand
    >>> render_hand([(1, "S"), (10, "H"), (12, "C"), (7, "D")]).size
    (1200, 1200)

`python -m openvirl.envs.points.render docs/gallery` rewrites the documentation images.
"""

from __future__ import annotations

import functools
import importlib.util
import operator
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

CARD_BACKGROUND = "#35654d"
"""Canvas colour behind the cards (the reference's casino green)."""

SUITS = ("S", "H", "D", "C")
"""Suit letters in the order the gallery and deck sheet use: spades, hearts, diamonds, clubs."""

_SUIT_GLYPHS = {"S": "\u2660", "H": "\u2665", "D": "\u2666", "C": "\u2663"}
_RANK_LABELS = ("A", "2", "3", "4", "5", "6", "7", "8", "9", "10", "J", "Q", "K")

# Ink colours. The red is saturated enough that a "red pixel" test (R high, G and B low) is
# unambiguous, and nothing drawn on a black-suit card (face frames included) comes close to it.
_RED = (200, 16, 36)
_BLACK = (20, 20, 20)
_CARD_FACE = (255, 255, 255)
_CARD_EDGE = (70, 70, 70)

# Face cards: (panel tint, frame and ornament colour). One hue per face so J, Q and K differ at a
# glance even before the letter is read; none of them is red.
_FACE_COLOURS = {
    11: ((221, 233, 250), (38, 84, 160)),  # Jack: blue
    12: ((238, 226, 246), (112, 56, 150)),  # Queen: purple
    13: ((248, 238, 200), (168, 120, 10)),  # King: gold
}

# Cards are drawn this many times larger and then downsampled, which antialiases the rounded
# outline, frames and polygons that PIL itself draws with hard edges.
_SUPERSAMPLE = 3

# Pip centres as (column, row) fractions of the card, for ranks 2..10. Columns sit well inside the
# corner-index strips; rows follow the standard layout (7 and 8 add centre pips between rows, 9 and
# 10 use four rows). Pips below the middle row are drawn upside down, as on a printed deck.
_L, _C, _R = 0.36, 0.5, 0.64
# The top row sits a little below the corner's suit symbol so the two never line up as a row.
_TOP, _BOT = 0.23, 0.77
_R4 = (_TOP, _TOP + (_BOT - _TOP) / 3, _BOT - (_BOT - _TOP) / 3, _BOT)
_R7 = (_TOP + 0.5) / 2  # the extra centre pip of 7 and 8
_R10 = ((_R4[0] + _R4[1]) / 2, (_R4[2] + _R4[3]) / 2)  # the two centre pips of 10
_PIP_LAYOUT: dict[int, tuple[tuple[float, float], ...]] = {
    2: ((_C, _TOP), (_C, _BOT)),
    3: ((_C, _TOP), (_C, 0.5), (_C, _BOT)),
    4: ((_L, _TOP), (_R, _TOP), (_L, _BOT), (_R, _BOT)),
    5: ((_L, _TOP), (_R, _TOP), (_C, 0.5), (_L, _BOT), (_R, _BOT)),
    6: ((_L, _TOP), (_R, _TOP), (_L, 0.5), (_R, 0.5), (_L, _BOT), (_R, _BOT)),
    7: ((_L, _TOP), (_R, _TOP), (_C, _R7), (_L, 0.5), (_R, 0.5), (_L, _BOT), (_R, _BOT)),
    8: (
        (_L, _TOP), (_R, _TOP), (_C, _R7), (_L, 0.5), (_R, 0.5),
        (_C, 1 - _R7), (_L, _BOT), (_R, _BOT),
    ),
    9: (*((x, y) for y in _R4 for x in (_L, _R)), (_C, 0.5)),
    10: (*((x, y) for y in _R4 for x in (_L, _R)), (_C, _R10[0]), (_C, _R10[1])),
}  # fmt: skip


@functools.lru_cache(maxsize=2)
def _font_path(bold: bool) -> str:
    """Path of a DejaVu Sans face inside matplotlib's data (never a system font).

    The package is located without importing it: importing matplotlib costs about 0.2 s, which
    would otherwise land on the first rendered hand.
    """
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    spec = importlib.util.find_spec("matplotlib")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "mpl-data" / "fonts" / "ttf" / name
        if path.is_file():
            return str(path)
    import matplotlib  # an unusual layout: ask matplotlib itself where its data lives

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name)


@functools.lru_cache(maxsize=64)
def _font(size: int, bold: bool = True) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(_font_path(bold), size)


def _check_card(rank: Any, suit: Any) -> tuple[int, str]:
    """Validate one card and return it as `(rank, suit)` with an upper-case suit letter."""
    msg = f"`rank` must be an int in 1..13 (1 = ace, 11..13 = J, Q, K), got {rank!r}."
    if isinstance(rank, bool):
        raise ValueError(msg)
    try:
        rank = operator.index(rank)  # numpy integers are fine; floats and strings are not
    except TypeError:
        raise ValueError(msg) from None
    if not 1 <= rank <= 13:
        raise ValueError(msg)
    if not isinstance(suit, str) or suit.upper() not in _SUIT_GLYPHS:
        msg = f"`suit` must be one of 'S', 'H', 'D', 'C', got {suit!r}."
        raise ValueError(msg)
    return rank, suit.upper()


def _ink(suit: str) -> tuple[int, int, int]:
    return _RED if suit in ("H", "D") else _BLACK


@functools.lru_cache(maxsize=512)
def _glyph_tile(
    text: str, size: int, colour: tuple[int, int, int], bold: bool = True
) -> Image.Image:
    """An RGBA tile holding `text` cropped to its ink, so it can be centred on its ink.

    Font metrics centre a glyph on its line box, which leaves suit symbols visibly off-centre;
    cropping to the drawn pixels makes pip and index placement exact.
    """
    font = _font(size, bold)
    pad = size // 2
    left, top, right, bottom = font.getbbox(text)
    tile = Image.new("L", (right - left + 2 * pad, bottom - top + 2 * pad), 0)
    ImageDraw.Draw(tile).text((pad - left, pad - top), text, font=font, fill=255)
    box = tile.getbbox() or (0, 0, 1, 1)
    alpha = tile.crop(box)
    out = Image.new("RGBA", alpha.size, (*colour, 0))
    out.putalpha(alpha)
    return out


def _fit(tile: Image.Image, max_w: int) -> Image.Image:
    """Squeeze a tile horizontally to at most `max_w` pixels (keeps "10" as tall as "8")."""
    if tile.width <= max_w:
        return tile
    return tile.resize((max_w, tile.height), Image.Resampling.LANCZOS)


def _paste_centred(card: Image.Image, tile: Image.Image, cx: float, cy: float) -> None:
    card.alpha_composite(tile, (round(cx - tile.width / 2), round(cy - tile.height / 2)))


def _index_tile(rank: int, suit: str, w: int) -> Image.Image:
    """The corner index: the rank above a small suit symbol, on a transparent tile.

    The rank is sized for a VLM that sees the card about 126 px wide: its cap height is about a
    sixth of the card width, which survives the downscale as roughly 20 px of bold ink.
    """
    colour = _ink(suit)
    strip = round(0.215 * w)  # widest the index may be without reaching the pip columns
    rank_tile = _fit(_glyph_tile(_RANK_LABELS[rank - 1], round(0.225 * w), colour), strip)
    # Smaller than a pip, so the index never reads as one more pip to count.
    suit_tile = _glyph_tile(_SUIT_GLYPHS[suit], round(0.15 * w), colour)
    gap = round(0.02 * w)
    width = max(rank_tile.width, suit_tile.width, strip)
    tile = Image.new("RGBA", (width, rank_tile.height + gap + suit_tile.height), (*colour, 0))
    tile.alpha_composite(rank_tile, ((width - rank_tile.width) // 2, 0))
    tile.alpha_composite(suit_tile, ((width - suit_tile.width) // 2, rank_tile.height + gap))
    return tile


def _draw_pips(card: Image.Image, rank: int, suit: str, w: int, h: int) -> None:
    colour = _ink(suit)
    if rank == 1:
        _paste_centred(card, _glyph_tile(_SUIT_GLYPHS[suit], round(0.62 * w), colour), w / 2, h / 2)
        return
    pip = _glyph_tile(_SUIT_GLYPHS[suit], round(0.18 * w), colour)
    flipped = pip.rotate(180)
    for fx, fy in _PIP_LAYOUT[rank]:
        _paste_centred(card, flipped if fy > 0.5 else pip, fx * w, fy * h)


def _draw_face(card: Image.Image, rank: int, suit: str, w: int, h: int) -> None:
    """A framed, tinted panel with the face letter and suit, 180°-symmetric like a real court card.

    Court figures are out of scope; what matters to the model is that J, Q and K read as letters
    and differ in colour from each other and from pip cards.
    """
    tint, accent = _FACE_COLOURS[rank]
    colour = _ink(suit)
    draw = ImageDraw.Draw(card)
    x0, y0, x1, y1 = round(0.255 * w), round(0.085 * h), round(0.745 * w), round(0.915 * h)
    line = max(1, round(0.012 * w))
    inset = round(0.03 * w)
    # Two tints split on the diagonal give the mirrored halves of a court card.
    shade = tuple(round(0.75 * t + 0.25 * a) for t, a in zip(tint, accent, strict=True))
    draw.rectangle((x0, y0, x1, y1), fill=tint)
    draw.polygon(((x1, y0), (x1, y1), (x0, y1)), fill=shade)
    draw.rectangle((x0, y0, x1, y1), outline=accent, width=2 * line)
    draw.rectangle((x0 + inset, y0 + inset, x1 - inset, y1 - inset), outline=accent, width=line)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    # An upright oval medallion, so the letter can be as tall as the panel allows.
    rx = (x1 - x0) / 2 - inset
    ry = 1.3 * rx
    draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=_CARD_FACE, outline=accent,
                 width=2 * line)  # fmt: skip
    letter = _glyph_tile(_RANK_LABELS[rank - 1], round(0.42 * w), colour)
    _paste_centred(card, letter, cx, cy)
    # The suit above and (upside down) below the medallion, midway to the frame.
    pip = _glyph_tile(_SUIT_GLYPHS[suit], round(0.17 * w), colour)
    dy = (cy - ry - y0) / 2 + ry
    _paste_centred(card, pip, cx, cy - dy)
    _paste_centred(card, pip.rotate(180), cx, cy + dy)


# Three card widths' worth of decks (about 21 MB each at the reference's 270 px): enough for the
# 1200 px observation, a downsized copy and the gallery, without growing without bound.
@functools.lru_cache(maxsize=3 * 52)
def _card_image(rank: int, suit: str, width: int) -> Image.Image:
    """Draw one card at `_SUPERSAMPLE`× and downsample; cached per (rank, suit, width)."""
    height = int(width * 7 / 5)
    w, h = width * _SUPERSAMPLE, height * _SUPERSAMPLE
    card = Image.new("RGBA", (w, h), (*_CARD_FACE, 0))
    draw = ImageDraw.Draw(card)
    radius = round(0.06 * w)
    edge = max(_SUPERSAMPLE, round(0.006 * w))
    draw.rounded_rectangle((0, 0, w - 1, h - 1), radius=radius, fill=(*_CARD_FACE, 255),
                           outline=(*_CARD_EDGE, 255), width=edge)  # fmt: skip
    if rank >= 11:
        _draw_face(card, rank, suit, w, h)
    else:
        _draw_pips(card, rank, suit, w, h)
    index = _index_tile(rank, suit, w)
    margin_x, margin_y = round(0.025 * w), round(0.03 * w)
    card.alpha_composite(index, (margin_x, margin_y))
    far_corner = (w - margin_x - index.width, h - margin_y - index.height)
    card.alpha_composite(index.rotate(180), far_corner)
    return card.resize((width, height), Image.Resampling.LANCZOS)


def render_card(rank: int, suit: str, *, width: int = 270) -> Image.Image:
    """Draw one playing card.

    Parameters
    ----------
    rank
        1 (ace) to 13 (king).
    suit
        ``"S"``, ``"H"``, ``"D"`` or ``"C"`` (case-insensitive).
    width
        Card width in pixels; the height is ``int(width * 7 / 5)`` as in the reference.

    Returns
    -------
    PIL.Image.Image
        An RGBA card whose rounded corners are transparent. It is a fresh copy, so callers may
        draw on it without touching the cache.
    """
    rank, suit = _check_card(rank, suit)
    if width < 16:
        msg = f"`width` must be at least 16 px to draw a legible card, got {width}."
        raise ValueError(msg)
    return _card_image(rank, suit, int(width)).copy()


def hand_layout(n_cards: int, size: int = 1200) -> list[tuple[int, int, int, int]]:
    """Card boxes ``(x0, y0, x1, y1)`` (``x1``, ``y1`` exclusive) for a hand on a square canvas.

    Up to four cards use the reference geometry exactly: width ``int(size / 4 * 0.9)``, card ``i``
    at ``x = 5 + int(i * width * 1.1)``, vertically centred; fewer cards keep those slots from the
    left rather than moving, so a card's position never depends on the hand size. More than four
    cards shrink the width to ``int(size / n * 0.9)`` with the same spacing rule, so they still fit.

    Parameters
    ----------
    n_cards
        Number of cards (0 gives an empty list).
    size
        Canvas side in pixels.

    Returns
    -------
    list of tuple of int
        One box per card, left to right.
    """
    if n_cards < 0:
        msg = f"`n_cards` must be >= 0, got {n_cards}."
        raise ValueError(msg)
    width = int(size / max(n_cards, 4) * 0.9)
    height = int(width * 7 / 5)
    if n_cards and width < 16:
        msg = f"{n_cards} cards do not fit legibly on a {size} px canvas; pass a larger `size`."
        raise ValueError(msg)
    y = (size - height) // 2
    boxes = []
    for i in range(n_cards):
        x = 5 + int(i * width * 1.1)
        boxes.append((x, y, x + width, y + height))
    return boxes


@functools.lru_cache(maxsize=8)
def _canvas(size: int) -> Image.Image:
    return Image.new("RGB", (size, size), CARD_BACKGROUND)


def preload(size: int = 1200, n_cards: int = 4) -> None:
    """Draw all 52 cards for hands of `n_cards` on a `size` canvas now, not on first use.

    Rendering is lazy and cached, so only the first hand that shows a card pays for drawing it;
    call this once (e.g. at env construction) when every reset should take the same time.

    Parameters
    ----------
    size
        Canvas side the hands will be drawn at.
    n_cards
        Hand size, which sets the card width (see `hand_layout`).
    """
    x0, _, x1, _ = hand_layout(max(n_cards, 1), size)[0]
    _canvas(int(size))
    for suit in SUITS:
        for rank in range(1, 14):
            _card_image(rank, suit, x1 - x0)


def _as_pair(card: Any) -> tuple[int, str]:
    if hasattr(card, "rank") and hasattr(card, "suit"):
        return _check_card(card.rank, card.suit)
    try:
        rank, suit = card
    except (TypeError, ValueError):
        msg = f"each card must be a (rank, suit) pair or have `.rank` and `.suit`, got {card!r}."
        raise TypeError(msg) from None
    return _check_card(rank, suit)


def render_hand(
    cards: Sequence[tuple[int, str]] | Sequence[Any], *, size: int = 1200
) -> Image.Image:
    """Draw a hand the way the reference's observation image looks (spec §2.4).

    Parameters
    ----------
    cards
        ``(rank, suit)`` pairs or objects with ``.rank`` and ``.suit`` (e.g. ``points.cards.Card``),
        drawn left to right in `hand_layout` boxes. No text is drawn outside the cards.
    size
        Canvas side in pixels; 1200 matches the reference.

    Returns
    -------
    PIL.Image.Image
        An RGB ``size``×``size`` image on `CARD_BACKGROUND`.
    """
    pairs = [_as_pair(card) for card in cards]
    image = _canvas(int(size)).copy()
    for (rank, suit), (x0, y0, x1, _) in zip(pairs, hand_layout(len(pairs), size), strict=True):
        card = _card_image(rank, suit, x1 - x0)
        image.paste(card, (x0, y0), card)
    return image


def write_gallery(out_dir: str | Path) -> list[Path]:
    """Write the documentation images: three sample hands and a sheet of all 52 cards.

    Parameters
    ----------
    out_dir
        Folder to write into (created if missing).

    Returns
    -------
    list of Path
        The files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    hands = {
        "gp_hand_mixed.png": [(1, "S"), (10, "H"), (12, "C"), (7, "D")],
        "gp_hand_red.png": [(13, "H"), (3, "D"), (9, "H"), (11, "D")],
        "gp_hand_black.png": [(12, "S"), (5, "C"), (8, "S"), (1, "C")],
    }
    written = []
    for name, hand in hands.items():
        path = out / name
        render_hand(hand).save(path, optimize=True)
        written.append(path)
    # The deck sheet: one row per suit, ace to king, to review every design at once.
    width, gap = 120, 8
    height = int(width * 7 / 5)
    sheet = Image.new("RGB", (13 * (width + gap) + gap, 4 * (height + gap) + gap), CARD_BACKGROUND)
    for row, suit in enumerate(SUITS):
        for rank in range(1, 14):
            card = _card_image(rank, suit, width)
            sheet.paste(card, (gap + (rank - 1) * (width + gap), gap + row * (height + gap)), card)
    path = out / "gp_deck.png"
    sheet.save(path, optimize=True)
    written.append(path)
    return written


if __name__ == "__main__":
    import sys

    for written_path in write_gallery(sys.argv[1] if len(sys.argv) > 1 else "docs/gallery"):
        print(written_path)
