"""Issue 20: every shipped place-recognition and VQA item shows its own storefront, in frame
and identifiable, and the storefront views draw no category cue (no pictogram, one board
colour) that would give the answer away."""

from __future__ import annotations

import numpy as np
import pytest

from openvirl.benchmarks.common import (
    DATA_DIR,
    read_items,
    storefront_shows,
    storefront_view,
)
from openvirl.world.streetview import NEUTRAL_SIGN_BG, neutral_signs
from world_fixtures import load_city


@pytest.fixture(scope="module")
def manhattan():
    return load_city("manhattan")


@pytest.mark.parametrize("stem", ["recognition-manhattan", "vqa-manhattan"])
def test_every_shipped_item_shows_its_storefront(manhattan, stem):
    items, manifest = read_items(DATA_DIR / f"{stem}.jsonl.gz")
    assert manifest["params"]["version"] >= 2 and len(items) == manifest["n"] == 100
    hidden = [
        it["place"]["name"]
        for it in items
        if "view" not in it or not storefront_shows(manhattan, it["place"]["id"], it["view"])
    ]
    assert hidden == []
    # The sign shows the place's name, never the renderer's category fallback.
    for it in items:
        assert it["sign"] != (it["place"]["category"] or "").replace("_", " ").capitalize()


def _sign_of(scene, category: str) -> int:
    for k, obj in enumerate(scene.objects):
        if obj.category == category and scene.object_signs.get(k):
            return scene.object_signs[k][0]
    raise AssertionError(f"no {category} sign")


@pytest.mark.parametrize("category", ["pharmacy", "cafe", "restaurant"])
def test_neutral_signs_draw_no_category_cue(manhattan, category):
    from openvirl.world.scene import scene_for
    from openvirl.world.streetview import _make_texture

    scene = scene_for(manhattan)
    sign = _sign_of(scene, category)
    assert scene.sicon[sign] in ("cross", "cup", "fork")
    th = 64
    plain = np.asarray(_make_texture(scene, sign, 8 * th, th, 0.0))
    with neutral_signs():
        neutral = np.asarray(_make_texture(scene, sign, 8 * th, th, 0.0))
    # Without text, the neutral board is one colour inside its border: no pictogram.
    inner = neutral[th // 8 : -th // 8, th // 8 : -th // 8, :3].reshape(-1, 3)
    assert {tuple(c) for c in inner.tolist()} == {NEUTRAL_SIGN_BG}
    # The normal board has the pictogram (more than one colour there).
    assert len({tuple(c) for c in plain[th // 8 : -th // 8, :th, :3].reshape(-1, 3).tolist()}) > 1


def test_storefront_view_uses_the_items_pose_and_neutral_signs(manhattan):
    items, _ = read_items(DATA_DIR / "recognition-manhattan.jsonl.gz")
    it = items[0]
    p = it["place"]
    image = storefront_view(manhattan, p["lat"], p["lon"], size=128, view=it["view"])
    assert image.size == (128, 128)
    again = storefront_view(manhattan, p["lat"], p["lon"], size=128, view=it["view"])
    assert np.array_equal(np.asarray(image), np.asarray(again))
