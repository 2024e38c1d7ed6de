"""Pinhole crops from the user's own equirectangular panoramas (V-IRL's offline layout)."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
from PIL import Image

from openvirl.world import streetview as sv
from openvirl.world.geometry import destination_point
from world_fixtures import load_city

W, H = 720, 360  # half a degree per pixel
ROTATION_DEG = 30.0
POINT = (43.7396, 7.4271)  # Monaco


def _panorama() -> np.ndarray:
    """Red encodes the panorama column (0..255 over 360°), green the row."""
    cols = np.arange(W)
    rows = np.arange(H)
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 0] = (cols * 255 // (W - 1))[None, :]
    img[..., 1] = (rows * 255 // (H - 1))[:, None]
    img[..., 2] = 128
    return img


@pytest.fixture
def pano_dir(tmp_path):
    Image.fromarray(_panorama()).save(tmp_path / "pano1.png")
    (tmp_path / "pano1.metadata.json").write_text(json.dumps({"rotation": ROTATION_DEG}))
    return tmp_path


def _column_of(view: np.ndarray) -> float:
    """The panorama column seen at the view's centre."""
    h, w = view.shape[:2]
    red = view[h // 2 - 1 : h // 2 + 1, w // 2 - 1 : w // 2 + 1, 0].astype(float).mean()
    return red / 255 * (W - 1)


@pytest.mark.parametrize("heading", [0.0, 45.0, 90.0, 200.0, 300.0])
def test_the_crop_follows_virls_north_rotation(heading):
    view = sv.equirect_to_pinhole(
        _panorama(), heading, fov=60, pitch=0, size=(64, 64), rotation_deg=ROTATION_DEG
    )
    expected = ((heading + ROTATION_DEG) / 360.0) % 1.0 * (W - 1)
    diff = abs(_column_of(view) - expected)
    assert min(diff, W - diff) <= 3.0  # within 1.5 degrees
    # Looking right shows higher columns (bearings grow clockwise across the image).
    if 10 < expected < W - 40:
        assert view[32, 60, 0] > view[32, 4, 0]


def test_pitch_up_looks_above_the_horizon():
    level = sv.equirect_to_pinhole(_panorama(), 0, fov=60, pitch=0, size=(32, 32))
    up = sv.equirect_to_pinhole(_panorama(), 0, fov=60, pitch=30, size=(32, 32))
    assert abs(int(level[16, 16, 1]) - 128) <= 3  # the equator row
    assert up[16, 16, 1] < level[16, 16, 1] - 30  # rows above it


def test_panorama_source_serves_render_view(pano_dir, tmp_path):
    city = load_city("monaco")
    mapping = {POINT: "pano1"}
    source = sv.PanoramaViewSource(pano_dir, mapping, mapping_radius_m=20)
    view = sv.render_view(city, *POINT, 90.0, fov=60, size=(48, 40), source=source)
    assert view.size == (48, 40)
    expected = ((90.0 + ROTATION_DEG) / 360.0) * (W - 1)
    assert abs(_column_of(np.asarray(view)) - expected) <= 3.0
    # A point 10 m away uses the same panorama; 50 m away there is none.
    near = destination_point(*POINT, 45.0, 10.0)
    assert source.relocate(*near) == (POINT, "pano1")
    assert np.array_equal(
        np.asarray(sv.render_view(city, *near, 90.0, fov=60, size=(48, 40), source=source)),
        np.asarray(view),
    )
    far = destination_point(*POINT, 45.0, 50.0)
    assert source.relocate(*far) == (None, None)
    with pytest.raises(sv.PanoramaNotFoundError, match="20 m"):
        sv.render_view(city, *far, 90.0, source=source)
    # The mapping may be V-IRL's pickle, and a fallback can fill the gaps.
    path = tmp_path / "gps_pano_mapping.pkl"
    path.write_bytes(pickle.dumps(mapping))
    rendered = sv.RenderedViewSource(city)
    both = sv.PanoramaViewSource(pano_dir, path, fallback=rendered)
    grid = sv.view_grid(city, *far, 0.0, size=(32, 32), source=both, labels=False)
    assert np.asarray(grid).std() > 5
    sv.set_view_source(city, source)
    try:
        assert city.street_view(*POINT, 90.0, fov=60, size=(48, 40)).tobytes() == view.tobytes()
    finally:
        sv.set_view_source(city, None)


def test_panorama_source_errors(pano_dir, tmp_path):
    with pytest.raises(sv.InvalidViewError, match="panorama_dir"):
        sv.PanoramaViewSource(tmp_path / "missing", {POINT: "pano1"})
    with pytest.raises(sv.InvalidViewError, match="gps_to_pano"):
        sv.PanoramaViewSource(pano_dir, {})
    source = sv.PanoramaViewSource(pano_dir, {POINT: "nope"})
    with pytest.raises(sv.PanoramaNotFoundError, match="nope"):
        source.view(*POINT, 0.0, fov=90, pitch=0, size=(16, 16))


class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_mapping_pickle_with_code_is_refused(pano_dir, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "gps_pano_mapping.pkl"
    path.write_bytes(pickle.dumps({POINT: _RunsCode(str(marker))}))
    with pytest.raises(sv.InvalidViewError, match=r"gps_to_pano.*plain data only"):
        sv.PanoramaViewSource(pano_dir, path)
    assert not marker.exists()
    path.write_bytes(b"\x80\x05 truncated")
    with pytest.raises(sv.InvalidViewError, match="gps_to_pano"):
        sv.PanoramaViewSource(pano_dir, path)
