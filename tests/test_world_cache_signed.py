"""The city cache is never unpickled unless this user's openvirl signed it for these files.

A crafted pickle dropped into the cache folder (under the old ``.pkl`` name, or the new name
with no or a forged signature) would run code if it were loaded; each case here would have
created the marker file with the unsigned cache of earlier versions.
"""

from __future__ import annotations

import os
import pathlib
import pickle
import stat

import pytest

from openvirl import _signed
from openvirl.world.city import CACHE_VERSION, City, _cache_path, files_sha256
from world_fixtures import grid_town, private_cache


class _RunsCode:
    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def _evil(marker: pathlib.Path) -> bytes:
    return pickle.dumps({"version": CACHE_VERSION, "built": _RunsCode(marker)})


@pytest.fixture
def town(tmp_path):
    with private_cache(tmp_path / "cache"):
        yield grid_town(tmp_path / "town.osm")


def test_signed_cache_round_trip(town, tmp_path):
    City.load(town, progress=False)
    again = City.load(town, progress=False)
    assert again.from_cache
    (path,) = (tmp_path / "cache" / "world").glob("city-*.signed")
    assert path.read_bytes().startswith(_signed.MAGIC)
    key = tmp_path / "cache" / _signed.KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_old_unsigned_pickle_is_never_read(town, tmp_path):
    marker = tmp_path / "pwned"
    sha = files_sha256([town])
    world = tmp_path / "cache" / "world"
    world.mkdir(parents=True, exist_ok=True)
    for version in range(1, CACHE_VERSION + 1):  # every old-style name
        (world / f"city-{sha[:32]}-v{version}.pkl").write_bytes(_evil(marker))
    city = City.load(town, progress=False)
    assert not city.from_cache and not marker.exists()


def test_unsigned_or_forged_file_under_the_new_name_is_rebuilt(town, tmp_path):
    marker = tmp_path / "pwned"
    sha = files_sha256([town])
    path = _cache_path(sha)
    payload = _evil(marker)
    cases = [
        payload,  # no signature at all
        _signed.MAGIC + b"\0" * 32 + payload,  # a made-up tag
        _signed.MAGIC + os.urandom(32) + payload,
    ]
    for data in cases:
        path.write_bytes(data)
        city = City.load(town, progress=False)
        assert not city.from_cache and not marker.exists()
        assert path.read_bytes().startswith(_signed.MAGIC)  # replaced by a signed rebuild


def test_a_file_signed_for_another_city_or_key_is_refused(town, tmp_path):
    marker = tmp_path / "pwned"
    sha = files_sha256([town])
    # Signed by us, but for other files: a valid file cannot be swapped in for another.
    _signed.write_signed(_cache_path(sha), _evil(marker), f"openvirl city cache v7 {'0' * 64}")
    assert not City.load(town, progress=False).from_cache and not marker.exists()
    # Signed for this city but with another user's key.
    key = tmp_path / "cache" / _signed.KEY_FILE
    key.write_bytes(os.urandom(32))
    assert not City.load(town, progress=False).from_cache


def test_a_key_others_can_write_disables_the_cache(town, tmp_path):
    City.load(town, progress=False)
    key = tmp_path / "cache" / _signed.KEY_FILE
    key.chmod(0o666)
    _signed._warned.clear()
    with pytest.warns(UserWarning, match="cache key"):
        city = City.load(town, progress=False)
    assert not city.from_cache


def test_signed_roundtrip_property():
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import strategies as st

    @hypothesis.settings(max_examples=50, deadline=None)
    @hypothesis.given(payload=st.binary(max_size=256), purpose=st.text(max_size=20))
    def check(payload, purpose):
        path = pathlib.Path(os.environ["OPENVIRL_CACHE"]) / "prop.signed"
        assert _signed.write_signed(path, payload, purpose)
        assert bytes(_signed.read_signed(path, purpose)) == payload
        assert _signed.read_signed(path, purpose + "x") is None
        data = bytearray(path.read_bytes())
        if len(data) > len(_signed.MAGIC) + 32:
            data[-1] ^= 1  # any flipped payload bit
            path.write_bytes(bytes(data))
            assert _signed.read_signed(path, purpose) is None

    check()
