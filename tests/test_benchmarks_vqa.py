"""Place VQA: tag-generated questions with one true option, circular scoring, baselines."""

from __future__ import annotations

import json

import pytest

from openvirl.benchmarks.common import read_items
from openvirl.benchmarks.vqa import (
    INTENTIONS,
    LETTERS,
    VQAConfig,
    build_items,
    parse_letter,
    related_types,
    rotations,
    run,
    score,
)
from world_fixtures import private_cache


@pytest.fixture(scope="module")
def items():
    with private_cache():
        return build_items(VQAConfig(city="monaco", n=40, seed=3))


def test_items_have_exactly_one_true_option(items):
    assert len(items) == 40
    for item in items:
        assert len(item["options"]) == 4 and item["answer"] in LETTERS
        truths = {o for t in item["attributes"] for o in INTENTIONS[t]}
        right = item["options"][LETTERS.index(item["answer"])]
        assert right in truths
        banned = related_types(set(item["attributes"]))
        assert not set(item["distractor_types"]) & banned
    assert len({i["place"]["id"] for i in items}) == 40
    # Deterministic per seed.
    with private_cache():
        again = build_items(VQAConfig(city="monaco", n=40, seed=3))
    assert again == items


def test_rotations_and_parsing(items):
    item = items[0]
    rots = rotations(item, True)
    assert len(rots) == 4
    for options, want in rots:
        assert options[LETTERS.index(want)] == item["options"][LETTERS.index(item["answer"])]
    opts = item["options"]
    assert parse_letter("B", opts) == "B"
    assert parse_letter("(c) because...", opts) == "C"
    assert parse_letter('{"answer": "D"}', opts) == "D"
    assert parse_letter(f"I think: {opts[0]}", opts) == "A"
    assert parse_letter("no idea", opts) is None


def test_circular_needs_all_four(items):
    first = items[:1]
    rots = rotations(first[0], True)
    good = [w for _, w in rots]
    assert score(first, [good])["metrics"]["accuracy"]["value"] == 1.0
    one_wrong = [*good[:3], "A" if good[3] != "A" else "B"]
    m = score(first, [one_wrong])["metrics"]
    assert m["accuracy"]["value"] == 0.0 and m["single_accuracy"]["value"] == 1.0


def test_run_oracle_perfect_random_near_chance(tmp_path):
    with private_cache():
        metrics = run(VQAConfig(city="monaco", n=60, seed=1, policy="random"), out=tmp_path)
    oracle, rand = metrics["policies"]["oracle"], metrics["policies"]["random"]
    assert oracle["accuracy"]["value"] == 1.0 and oracle["macc"] == 1.0
    assert 0.1 <= rand["single_accuracy"]["value"] <= 0.45  # chance 25%
    assert rand["accuracy"]["value"] <= 0.05  # chance 1/256
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["kind"] == "benchmark" and config["benchmark"] == "vqa"
    data, manifest = read_items(tmp_path / "data" / "vqa.jsonl.gz")  # sha256 checked
    assert len(data) == 60 and manifest["params"]["n"] == 60
    assert (tmp_path / "report.html").read_text().count("<img") >= 1
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 120
