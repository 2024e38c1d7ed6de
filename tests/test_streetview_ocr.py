"""Legibility: a real OCR engine (Tesseract) reads POI names off rendered street views.

The benchmark (`benchmarks/bench_streetview.py`) reads 240 aimed views in Manhattan and
Helsinki; this test reads a fixed sample of 24 (12 per city, seed 0). Sampling noise on 24
views is about ±8 points, so it asserts 75% rather than the benchmark's 80% goal.
"""

from __future__ import annotations

import shutil

import pytest

from openvirl.world import streetview as sv
from world_fixtures import load_city

pytesseract = pytest.importorskip("pytesseract", reason="pytesseract (the `ocr` extra)")
if shutil.which("tesseract") is None:
    pytest.skip(
        "Debian's tesseract-ocr is not installed (`make test` installs it)", allow_module_level=True
    )

PER_CITY = 12
MIN_RATE = 0.75


def test_name_read_score_is_fuzzy_case_and_accent_blind():
    assert sv.name_read_score("Räätälistudio BQ", "raatalistudio bq") == 100.0
    assert sv.name_read_score("Excellent Dumpling House", "iT Excellent\n@ Dumpling House") >= 80
    assert sv.name_read_score("Chat n Chew", "Chat n Chevv") >= 80
    assert sv.name_read_score("Heaven Spa", "| ff ; ee") < 80
    assert sv.name_read_score("", "anything") == 0.0


def test_views_aimed_at_pois_are_readable():
    read = total = 0
    missed = []
    for name in ("manhattan", "helsinki"):
        city = load_city(name)
        views = sv.aimed_views(city, PER_CITY, seed=0)
        assert len(views) == PER_CITY
        assert views == sv.aimed_views(city, PER_CITY, seed=0)  # a fixed sample
        for v in views:
            assert 5.0 <= v.distance_m <= 40.0
            image = sv.render_view(
                city, v.lat, v.lon, v.heading, fov=sv.LEGIBILITY_FOV_DEG, size=sv.LEGIBILITY_SIZE_PX
            )
            if sv.name_read_score(v.label, sv.ocr_text(image)) >= sv.OCR_MATCH_MIN:
                read += 1
            else:
                missed.append(f"{name}: {v.label}")
            total += 1
    assert read / total >= MIN_RATE, f"read {read}/{total}; missed {missed}"
