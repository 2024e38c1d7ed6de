"""Time GeneralPoints hand rendering; prints one JSON object.

The budget is 20 ms per 1200×1200 hand on one core, since the env renders an image at every reset
(and the trainer may render thousands). "Cold" is the first hand after the caches are emptied:
it pays for drawing its four cards; every later hand only pastes cached cards onto the canvas.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable

from openvirl.envs.points import render

HANDS = [
    [(1, "S"), (10, "H"), (12, "C"), (7, "D")],
    [(13, "H"), (3, "D"), (9, "H"), (11, "D")],
    [(12, "S"), (5, "C"), (8, "S"), (1, "C")],
    [(2, "D"), (4, "C"), (6, "H"), (10, "S")],
]
N_WARM = 200


def _clear_caches() -> None:
    for fn in (render._card_image, render._canvas, render._glyph_tile):
        fn.cache_clear()
    for fn in (render._font, render._font_path):
        fn.cache_clear()


def _ms(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


def _warm_median(size: int) -> float:
    for hand in HANDS:  # draw every card once so the loop below only composes
        render.render_hand(hand, size=size)
    times = [_ms(lambda i=i: render.render_hand(HANDS[i % len(HANDS)], size=size))
             for i in range(N_WARM)]  # fmt: skip
    return statistics.median(times)


def main() -> None:
    _clear_caches()
    cold_hand = _ms(lambda: render.render_hand(HANDS[0], size=1200))
    _clear_caches()
    cold_deck = _ms(lambda: render.preload(1200))
    result = {
        "warm_ms_per_hand_1200": round(_warm_median(1200), 3),
        "cold_ms_first_hand_1200": round(cold_hand, 2),
        "cold_ms_full_deck_1200": round(cold_deck, 1),
        "warm_ms_per_hand_560": round(_warm_median(560), 3),
        "n_warm": N_WARM,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
