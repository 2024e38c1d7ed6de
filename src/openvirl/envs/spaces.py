"""Gymnasium spaces for text actions/observations and optional PIL images.

Language-model environments exchange free text, and vision variants attach a PIL image;
neither fits `Box` or `Text` (whose charset is fixed), so these two small spaces say
exactly what is allowed and can sample for `check_env`. Both register gymnasium's
shared-memory hooks, so `AsyncVectorEnv` works with its default ``shared_memory=True``.
"""

from __future__ import annotations

import multiprocessing as mp
import string
from collections.abc import Sequence as SequenceABC
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import (
    create_shared_memory,
    read_from_shared_memory,
    write_to_shared_memory,
)

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


# ---------------------------------------------------------------------------- vector envs
#
# `AsyncVectorEnv(shared_memory=True)` (gymnasium's default) asks three singledispatch hooks
# for every observation space: `create_shared_memory` allocates one buffer for all
# sub-environments, `read_from_shared_memory` returns, once, the object the vector env hands
# out as its observations (so it must stay live: it is read again after every step), and
# `write_to_shared_memory` runs in each worker. Strings and images travel as bytes in fixed
# slots; the views below decode a slot when it is read, and deep-copy to a plain tuple (the
# vector env deep-copies observations before returning them, as it does for `Tuple` spaces).

_LENGTH = 8  # bytes of the length header in front of each text slot


def _slot_bytes(space: FreeText) -> int:
    return _LENGTH + 4 * space.max_length  # UTF-8 needs at most 4 bytes a character


def _buffer(shared_memory: Any) -> np.ndarray:
    return np.frombuffer(shared_memory.get_obj(), dtype=np.uint8)


class SharedTexts(SequenceABC):
    """The strings of all sub-environments, read from their shared-memory slots on access."""

    def __init__(self, shared_memory: Any, n: int, slot: int):
        self._memory, self._n, self._slot = shared_memory, n, slot

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        if not -self._n <= index < self._n:
            raise IndexError(index)
        start = (index % self._n) * self._slot
        data = _buffer(self._memory)
        length = int(data[start : start + _LENGTH].view(np.int64)[0])
        return bytes(data[start + _LENGTH : start + _LENGTH + length]).decode("utf-8")

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SequenceABC) and tuple(self) == tuple(other)

    def __repr__(self) -> str:
        return f"SharedTexts({tuple(self)!r})"


class SharedImages(SequenceABC):
    """The images (or `None`) of all sub-environments, read from shared memory on access."""

    def __init__(self, shared_memory: Any, n: int, size: tuple[int, int]):
        self._memory, self._n, self._size = shared_memory, n, size
        self._slot = 1 + size[0] * size[1] * 3  # a has-image flag, then the RGB pixels

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(self._n)))
        if not -self._n <= index < self._n:
            raise IndexError(index)
        from PIL import Image

        start = (index % self._n) * self._slot
        data = _buffer(self._memory)
        if not data[start]:
            return None
        w, h = self._size
        pixels = data[start + 1 : start + self._slot].reshape(h, w, 3)
        return Image.fromarray(pixels.copy(), "RGB")

    def __deepcopy__(self, memo: dict[int, Any]) -> tuple[Any, ...]:
        return tuple(self)

    def __repr__(self) -> str:
        return f"SharedImages(n={self._n}, size={self._size})"


@create_shared_memory.register(FreeText)
def _create_text_memory(space: FreeText, n: int = 1, ctx: Any = mp) -> Any:
    return ctx.Array("B", n * _slot_bytes(space))


@read_from_shared_memory.register(FreeText)
def _read_text_memory(space: FreeText, shared_memory: Any, n: int = 1) -> SharedTexts:
    return SharedTexts(shared_memory, n, _slot_bytes(space))


@write_to_shared_memory.register(FreeText)
def _write_text_memory(space: FreeText, index: int, value: str, shared_memory: Any) -> None:
    if not space.contains(value):
        raise ValueError(f"{value!r:.80} is not in {space}")
    encoded = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
    slot = _slot_bytes(space)
    data = _buffer(shared_memory)
    start = index * slot
    data[start : start + _LENGTH] = np.array([encoded.size], dtype=np.int64).view(np.uint8)
    data[start + _LENGTH : start + _LENGTH + encoded.size] = encoded


@create_shared_memory.register(OptionalImage)
def _create_image_memory(space: OptionalImage, n: int = 1, ctx: Any = mp) -> Any:
    if space.size is None:
        return None  # nothing to share: the observation is always None
    w, h = space.size
    return ctx.Array("B", n * (1 + w * h * 3))


@read_from_shared_memory.register(OptionalImage)
def _read_image_memory(space: OptionalImage, shared_memory: Any, n: int = 1) -> Any:
    if space.size is None:
        return (None,) * n
    return SharedImages(shared_memory, n, space.size)


@write_to_shared_memory.register(OptionalImage)
def _write_image_memory(space: OptionalImage, index: int, value: Any, shared_memory: Any) -> None:
    if space.size is None:
        if value is not None:
            raise ValueError(f"{space} holds no image, got {type(value).__name__}")
        return
    w, h = space.size
    slot = 1 + w * h * 3
    data = _buffer(shared_memory)
    start = index * slot
    if value is None:
        data[start] = 0
        return
    if not space.contains(value):
        raise ValueError(f"an image of size {space.size} was expected, got {value!r:.80}")
    data[start + 1 : start + slot] = np.asarray(value.convert("RGB"), dtype=np.uint8).reshape(-1)
    data[start] = 1
