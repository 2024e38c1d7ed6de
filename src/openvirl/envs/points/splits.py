"""Train/test split of GeneralPoints hands by a hash of their value multiset.

A hand belongs to `test` when the SHA-256 of its canonical key falls in the first
`test_percent` of 100 buckets. The key is a sorted tuple plus the target, and the tuple is
one of two units (`SPLIT_UNITS`):

- ``"values"`` (the default, strict): the card *values* under the active rule, so under the
  ID rule a king and a queen (both 10) can never put the same arithmetic problem on both
  sides. ID test hands are then arithmetic problems the model never trained on.
- ``"ranks"`` (the paper's notion of in-distribution): the card *ranks*, so no test prompt was
  ever a training prompt (the text shows ranks, not suits), but ``K 3 6`` may be trained and
  ``Q 3 6`` tested: the same problem under another name. Under the OOD rule ranks and values
  coincide, so both units split OOD hands alike.

The rule is documented in every dataset manifest, so anyone can recompute it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import cache

SPLIT_VERSION = "points-split-v1"
DEFAULT_TEST_PERCENT = 20
SPLITS = ("train", "test")
SPLIT_UNITS = ("values", "ranks")


def split_key(values: Iterable[int], target: int) -> str:
    """Canonical string for a value multiset and a target, e.g. ``"24:1,3,10,10"``."""
    return f"{target}:" + ",".join(str(v) for v in sorted(values))


@cache
def split_of(values: tuple[int, ...], target: int, test_percent: int = DEFAULT_TEST_PERCENT) -> str:
    """Return ``"test"`` or ``"train"`` for a value multiset (order-insensitive via the key)."""
    key = f"{SPLIT_VERSION}:{split_key(values, target)}"
    bucket = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") % 100
    return "test" if bucket < test_percent else "train"


def describe_split(
    test_percent: int = DEFAULT_TEST_PERCENT, unit: str = "values"
) -> dict[str, object]:
    """The split rule as a JSON-able dict, written into dataset manifests."""
    if unit not in SPLIT_UNITS:
        raise ValueError(f"`unit` must be one of {SPLIT_UNITS}, got {unit!r}.")
    what = "card values under the rule" if unit == "values" else "card ranks (A=1 .. K=13)"
    example = "'24:1,3,10,10'" if unit == "values" else "'24:1,3,12,13'"
    return {
        "version": SPLIT_VERSION,
        "unit": f"multiset of {what}, plus the target",
        "split_by": unit,
        "key": f"'<target>:' + comma-joined sorted {unit}, e.g. {example}",
        "rule": f"sha256('{SPLIT_VERSION}:' + key), first 8 bytes big-endian, mod 100 "
        f"< {test_percent} -> test, else train",
        "test_percent": test_percent,
    }
