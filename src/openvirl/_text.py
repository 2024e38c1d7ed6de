"""Text that can always be written: model output may hold lone surrogates no encoder accepts."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


def clean_text(text: str) -> str:
    """`text` made encodable as UTF-8: a surrogate pair becomes its character, a lone surrogate
    (which a model's bytes or a JSON ``"\\ud800"`` escape can produce) becomes U+FFFD.

    Every string of a record on disk passes through here, so a line can always be written and
    read back.
    """
    if _SURROGATE.search(text) is None:
        return text
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


__all__ = ["clean_text"]
