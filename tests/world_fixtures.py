"""Shared, offline helpers for the `openvirl.world` tests: cached cities and tiny OSM files.

Each bundled city is loaded once per test session from the session's cache (never the user's
own cache) and shared by every test module::

    from world_fixtures import load_city, write_osm

    city = load_city("monaco")
    path = write_osm(tmp_path / "two_islands.osm", ways=[...])
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

_CACHE_ROOT: str | None = None


def session_cache() -> str:
    """The cache folder of this test session: `OPENVIRL_CACHE` when set (tests/conftest.py
    points it at a per-checkout folder), else a temporary folder removed at exit."""
    global _CACHE_ROOT
    if _CACHE_ROOT is None:
        _CACHE_ROOT = os.environ.get("OPENVIRL_CACHE")
        if not _CACHE_ROOT:
            _CACHE_ROOT = tempfile.mkdtemp(prefix="openvirl-world-test-")
            atexit.register(shutil.rmtree, _CACHE_ROOT, ignore_errors=True)
    return _CACHE_ROOT


@contextmanager
def private_cache(path: str | os.PathLike[str] | None = None) -> Iterator[str]:
    """Point `OPENVIRL_CACHE` (and so the user-city registry) at `path` for a block."""
    root = str(path) if path is not None else session_cache()
    old = os.environ.get("OPENVIRL_CACHE")
    old_config = os.environ.pop("OPENVIRL_CONFIG", None)
    os.environ["OPENVIRL_CACHE"] = root
    try:
        yield root
    finally:
        if old is None:
            os.environ.pop("OPENVIRL_CACHE", None)
        else:
            os.environ["OPENVIRL_CACHE"] = old
        if old_config is not None:
            os.environ["OPENVIRL_CONFIG"] = old_config


@functools.cache
def load_city(name: str):
    """The bundled city `name`, built once per session in the private cache."""
    from openvirl.world import City

    with private_cache():
        return City.load(name, progress=False)


def write_osm(
    path: Path,
    *,
    nodes: Iterable[tuple[int, float, float, dict[str, str]]],
    ways: Iterable[tuple[int, list[int], dict[str, str]]] = (),
) -> Path:
    """Write a small OSM XML file.

    Parameters
    ----------
    path
        Where to write it (ending in .osm).
    nodes
        (id, lat, lon, tags) tuples.
    ways
        (id, node ids, tags) tuples.
    """

    def tag_xml(tags: dict[str, str]) -> str:
        return "".join(f'<tag k="{k}" v="{v}"/>' for k, v in tags.items())

    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<osm version="0.6" generator="test">']
    # osmium's area assembly needs objects sorted by id.
    for nid, lat, lon, tags in sorted(nodes, key=lambda n: n[0]):
        lines.append(f'<node id="{nid}" lat="{lat}" lon="{lon}">{tag_xml(tags)}</node>')
    for wid, refs, tags in sorted(ways, key=lambda w: w[0]):
        nds = "".join(f'<nd ref="{r}"/>' for r in refs)
        lines.append(f'<way id="{wid}">{nds}{tag_xml(tags)}</way>')
    lines.append("</osm>")
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def grid_town(path: Path, *, island: bool = False) -> Path:
    """A 3 x 3 grid of named streets (about 100 m blocks) near (48.0, 11.0), with a cafe, a
    3-storey building and a 25 m tower; with `island`, also a separate 300 m street that
    touches nothing."""
    lat0, lon0 = 48.0, 11.0
    dlat, dlon = 0.0009, 0.00134  # about 100 m each way at 48° N
    nodes = []
    ways = []
    for i in range(3):
        for j in range(3):
            nodes.append((100 + 3 * i + j, lat0 + i * dlat, lon0 + j * dlon, {}))
    for i in range(3):  # east-west streets
        ways.append(
            (
                10 + i,
                [100 + 3 * i + j for j in range(3)],
                {"highway": "residential", "name": f"Row {i + 1} Street"},
            )
        )
    for j in range(3):  # north-south avenues
        ways.append(
            (
                20 + j,
                [100 + 3 * i + j for i in range(3)],
                {"highway": "secondary", "name": f"Column {j + 1} Avenue"},
            )
        )
    nodes.append(
        (
            900,
            lat0 + 0.5 * dlat,
            lon0 + 0.2 * dlon,
            {"amenity": "cafe", "name": "Test Cafe", "opening_hours": "Mo-Fr 08:00-18:00"},
        )
    )
    nodes.append(
        (
            901,
            lat0 + 1.5 * dlat,
            lon0 + 1.5 * dlon,
            {"shop": "books", "name": "Corner Books", "wikidata": "Q1"},
        )
    )
    # Two buildings: one with levels, one with a height in feet.
    sq = [(0.0001, 0.0001), (0.0001, 0.0003), (0.0003, 0.0003), (0.0003, 0.0001)]
    for b, (tags, off) in enumerate(
        [
            ({"building": "yes", "building:levels": "3"}, 0.0),
            ({"building": "office", "height": "82 ft", "name": "Tower"}, 0.0004),
        ]
    ):
        ids = []
        for k, (a, c) in enumerate(sq):
            nid = 700 + 10 * b + k
            nodes.append((nid, lat0 + a + off, lon0 + c, {}))
            ids.append(nid)
        ways.append((50 + b, [*ids, ids[0]], tags))
    if island:
        nodes.append((800, lat0 + 0.0040, lon0 + 0.0003, {}))
        nodes.append((801, lat0 + 0.0040, lon0 + 0.0043, {}))
        ways.append((30, [800, 801], {"highway": "residential", "name": "Island Road"}))
    return write_osm(path, nodes=nodes, ways=ways)
