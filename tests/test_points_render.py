"""GeneralPoints card images: reference geometry, colours, determinism and input handling."""

from __future__ import annotations

import itertools
from collections import namedtuple

import numpy as np
import pytest
from PIL import Image

from openvirl.envs.points import render
from openvirl.envs.points.render import CARD_BACKGROUND, hand_layout, render_card, render_hand

GREEN = (0x35, 0x65, 0x4D)
HAND = [(1, "S"), (10, "H"), (12, "C"), (7, "D")]
REFERENCE_X = (5, 302, 599, 896)


def _red_mask(pixels: np.ndarray) -> np.ndarray:
    """Strongly red pixels: the suit red and its antialiased edges, nothing grey, gold or green."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return (r > 150) & (g < 90) & (b < 90)


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"))


def test_hand_is_rgb_and_square():
    for size in (1200, 560):
        image = render_hand(HAND, size=size)
        assert image.mode == "RGB"
        assert image.size == (size, size)


def test_card_size_follows_the_reference_ratio():
    card = render_card(13, "H")
    assert card.size == (270, 378)
    assert card.mode in ("RGB", "RGBA")
    assert render_card(5, "C", width=100).size == (100, 140)


def test_same_input_same_bytes_even_after_clearing_the_cache():
    first = render_hand(HAND).tobytes()
    assert render_hand(HAND).tobytes() == first
    render._card_image.cache_clear()
    render._glyph_tile.cache_clear()
    assert render_hand(HAND).tobytes() == first


def test_boxes_match_the_reference_positions_for_1200():
    boxes = hand_layout(4, 1200)
    assert [box[0] for box in boxes] == list(REFERENCE_X)
    for x0, y0, x1, y1 in boxes:
        assert (y0, x1 - x0, y1 - y0) == (411, 270, 378)


def test_cards_are_drawn_exactly_in_their_boxes():
    pixels = _rgb(render_hand(HAND))
    for x0, y0, x1, y1 in hand_layout(4, 1200):
        x_mid, y_mid = (x0 + x1) // 2, (y0 + y1) // 2
        # Just outside each edge is canvas; the card's border sits on its first and last pixels.
        assert tuple(pixels[y_mid, x0 - 1]) == GREEN
        assert tuple(pixels[y_mid, x1]) == GREEN
        assert tuple(pixels[y0 - 1, x_mid]) == GREEN
        assert tuple(pixels[y1, x_mid]) == GREEN
        for y, x in ((y_mid, x0), (y_mid, x1 - 1), (y0, x_mid), (y1 - 1, x_mid)):
            assert np.abs(pixels[y, x].astype(int) - GREEN).sum() > 60


def test_background_colour_at_the_corners():
    assert CARD_BACKGROUND == "#35654d"
    pixels = _rgb(render_hand(HAND))
    for y, x in itertools.product((0, 1199), (0, 1199)):
        assert tuple(pixels[y, x]) == GREEN


@pytest.mark.parametrize("suit", ["H", "D", "S", "C"])
def test_red_suits_are_red_and_black_suits_have_no_red(suit):
    boxes = hand_layout(4, 1200)
    for ranks in ((1, 2, 3, 4), (5, 6, 7, 8), (9, 10, 11, 12), (13, 13, 13, 13)):
        pixels = _rgb(render_hand([(rank, suit) for rank in ranks]))
        for x0, y0, x1, y1 in boxes:
            n_red = int(_red_mask(pixels[y0:y1, x0:x1]).sum())
            if suit in ("H", "D"):
                assert n_red > 500
            else:
                assert n_red == 0


def test_every_rank_gives_a_different_card():
    for suit in ("S", "H"):
        images = {render_card(rank, suit).tobytes() for rank in range(1, 14)}
        assert len(images) == 13
    suits = {render_card(7, suit).tobytes() for suit in ("S", "H", "D", "C")}
    assert len(suits) == 4


def test_ten_and_king_differ_clearly():
    ten = _rgb(render_card(10, "H")).astype(int)
    king = _rgb(render_card(13, "H")).astype(int)
    changed = np.abs(ten - king).sum(axis=2) > 60
    assert changed.mean() > 0.2


def test_face_cards_are_tinted_and_pip_cards_are_not():
    def tinted_share(rank: int) -> float:
        pixels = _rgb(render_card(rank, "S")).astype(int)
        spread = pixels.max(axis=2) - pixels.min(axis=2)
        return float((spread > 20).mean())

    assert all(tinted_share(rank) > 0.15 for rank in (11, 12, 13))
    assert all(tinted_share(rank) < 0.01 for rank in range(1, 11))


def test_card_objects_and_pairs_render_the_same():
    Card = namedtuple("Card", "rank suit")

    class Plain:
        def __init__(self, rank: int, suit: str) -> None:
            self.rank, self.suit = rank, suit

    expected = render_hand(HAND).tobytes()
    assert render_hand([Card(*pair) for pair in HAND]).tobytes() == expected
    assert render_hand([Plain(*pair) for pair in HAND]).tobytes() == expected
    assert render_hand([(rank, suit.lower()) for rank, suit in HAND]).tobytes() == expected
    assert render_hand([(np.int64(rank), suit) for rank, suit in HAND]).tobytes() == expected


@pytest.mark.parametrize(
    "bad", [(0, "S"), (14, "H"), (True, "H"), (5.0, "H"), (5, "X"), (5, None), ("5", "S")]
)
def test_invalid_cards_raise(bad):
    with pytest.raises(ValueError):
        render_hand([bad])
    with pytest.raises(ValueError):
        render_card(*bad)


def test_non_card_raises_type_error():
    with pytest.raises(TypeError, match="rank"):
        render_hand([42])


@pytest.mark.parametrize("n_cards", [0, 1, 2, 3, 5, 6])
def test_other_hand_sizes_fit_without_overlap(n_cards):
    size = 1200
    boxes = hand_layout(n_cards, size)
    assert len(boxes) == n_cards
    for (_, _, right, _), (left, _, _, _) in itertools.pairwise(boxes):
        assert right < left
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= size and 0 <= y0 < y1 <= size
        assert y1 - y0 == int((x1 - x0) * 7 / 5)
    if n_cards <= 4:  # fewer cards keep the reference slots
        assert [box[0] for box in boxes] == list(REFERENCE_X[:n_cards])
    image = render_hand([(rank, "D") for rank in range(1, n_cards + 1)], size=size)
    assert image.size == (size, size)


def test_hand_layout_rejects_negative_counts():
    with pytest.raises(ValueError, match="n_cards"):
        hand_layout(-1, 1200)
