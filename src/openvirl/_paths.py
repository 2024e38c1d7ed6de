"""Where openvirl keeps bundled data and its caches."""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def data_dir() -> Path:
    """Directory of the bundled data (cities and their SOURCES.md).

    A wheel carries the data inside the package (`openvirl/_data`); an editable install
    reads it from the repository's `data/` folder.
    """
    packaged = _PACKAGE_DIR / "_data"
    if packaged.is_dir():
        return packaged
    return _PACKAGE_DIR.parent.parent / "data"


def cache_dir(*parts: str) -> Path:
    """The user cache directory (override with `OPENVIRL_CACHE`), created on demand."""
    root = os.environ.get("OPENVIRL_CACHE")
    if root:
        base = Path(root).expanduser()
    else:
        from platformdirs import user_cache_dir

        base = Path(user_cache_dir("openvirl"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
