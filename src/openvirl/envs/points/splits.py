"""Train/test split of GeneralPoints hands by a hash of their value multiset.

A hand belongs to `test` when the SHA-256 of its canonical key falls in the first
`test_percent` of 100 buckets. The key is the sorted tuple of card *values* under the
active rule plus the target, so under the ID rule a king and a queen (both 10) can never
put the same arithmetic problem on both sides of the split. The rule is documented in
every dataset manifest, so anyone can recompute it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache

SPLIT_VERSION = "points-split-v1"
DEFAULT_TEST_PERCENT = 20
SPLITS = ("train", "test")


def split_key(values: Iterable[int], target: int) -> str:
    """Canonical string for a value multiset and a target, e.g. ``"24:1,3,10,10"``."""
    return f"{target}:" + ",".join(str(v) for v in sorted(values))


@cache
def split_of(values: tuple[int, ...], target: int, test_percent: int = DEFAULT_TEST_PERCENT) -> str:
    """Return ``"test"`` or ``"train"`` for a value multiset (order-insensitive via the key)."""
    key = f"{SPLIT_VERSION}:{split_key(values, target)}"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def describe_split(test_percent: int = DEFAULT_TEST_PERCENT) -> dict[str, object]:
    """The split rule as a JSON-able dict, written into dataset manifests."""
    return {
        "version": SPLIT_VERSION,
        "unit": "multiset of card values under the rule, plus the target",
        "key": "'<target>:' + comma-joined sorted values, e.g. '24:1,3,10,10'",
        "rule": f"sha256('{SPLIT_VERSION}:' + key), first 8 bytes big-endian, mod 100 "
        f"< {test_percent} -> test, else train",
        "test_percent": test_percent,
    }
