"""Gymnasium spaces for text actions/observations and optional PIL images.

Language-model environments exchange free text, and vision variants attach a PIL image;
neither fits `Box` or `Text` (whose charset is fixed), so these two small spaces say
exactly what is allowed and can sample for `check_env`.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np
from gymnasium import spaces

_SAMPLE_ALPHABET = np.array(list(string.ascii_letters + string.digits + string.punctuation + " \n"))


class FreeText(spaces.Space[str]):
    """Any Python string of at most `max_length` characters (model output, prompts)."""

    def __init__(self, max_length: int = 1_000_000, seed: int | np.random.Generator | None = None):
        self.max_length = max_length
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> str:
        """A random printable string of 0..64 characters."""
        length = int(self.np_random.integers(0, 65))
        return "".join(self.np_random.choice(_SAMPLE_ALPHABET, size=length))

    def contains(self, x: Any) -> bool:
        return isinstance(x, str) and len(x) <= self.max_length

    def __repr__(self) -> str:
        return f"FreeText(max_length={self.max_length})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FreeText) and other.max_length == self.max_length


class OptionalImage(spaces.Space[Any]):
    """A PIL image of a fixed size (RGB), or `None` in text-only variants."""

    def __init__(self, size: tuple[int, int] | None, seed: int | np.random.Generator | None = None):
        self.size = size
        super().__init__(shape=None, dtype=None, seed=seed)

    @property
    def is_np_flattenable(self) -> bool:
        return False

    def sample(self, mask: Any = None, probability: Any = None) -> Any:
        """A random-noise image of the declared size, or `None` when the space holds no image."""
        if self.size is None:
            return None
        from PIL import Image

        w, h = self.size
        pixels = self.np_random.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        return Image.fromarray(pixels, "RGB")

    def contains(self, x: Any) -> bool:
        if self.size is None:
            return x is None
        return hasattr(x, "size") and tuple(x.size) == tuple(self.size)

    def __repr__(self) -> str:
        return f"OptionalImage(size={self.size})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, OptionalImage) and other.size == self.size
