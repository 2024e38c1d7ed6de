"""GeneralPoints datasets: SFT pairs and held-out evaluation hands, loadable with `datasets`.

Layout written by `build_dataset` (Hugging Face "folder" convention, one folder a split)::

    DIR/
      train/metadata.jsonl   SFT pairs: prompt, completion (the expert answer), hand fields
      train/*.png            card images (with ``visual=True``)
      test/metadata.jsonl    held-out evaluation hands (same fields; replayable in the env)
      test/*.png
      manifest.json          config, seed, the hashed split rule, counts, file hashes

Load it with ``datasets.load_dataset("json", data_dir=DIR)`` (text) or
``load_dataset("imagefolder", data_dir=DIR)`` (with images). Train and test are disjoint
by construction: hands are drawn from the two sides of the hashed value-multiset split
(`openvirl.envs.points.splits`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from openvirl.envs.points.env import GeneralPointsEnv
from openvirl.envs.points.splits import describe_split

_SPLIT_STREAM = {"train": 1, "test": 2}


def episode_seed(seed: int, split: str, index: int) -> int:
    """The `reset` seed of hand `index` of `split`: independent of order and of other hands."""
    sequence = np.random.SeedSequence([seed, _SPLIT_STREAM[split], index])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def iter_hands(
    env: GeneralPointsEnv, split: str, n: int, seed: int
) -> Iterator[tuple[int, dict[str, Any], Any]]:
    """Yield ``(index, info, image)`` for `n` hands of `split`, deterministic per index."""
    env.config.split = split
    for index in range(n):
        obs, info = env.reset(seed=episode_seed(seed, split, index))
        yield index, {**info, "prompt": obs["prompt"]}, obs["image"]


def _row(index: int, split: str, info: dict[str, Any], seed: int, cfg: Any) -> dict[str, Any]:
    return {
        "id": f"points-{cfg.rule}-{cfg.suits}-{split}-{index:06d}",
        "prompt": info["prompt"],
        "completion": info["expert_answer"],
        "cards": info["cards"],
        "card_codes": info["card_codes"],
        "numbers": info["numbers"],
        "target": info["target"],
        "rule": cfg.rule,
        "suits": cfg.suits,
        "visual": cfg.visual,
        "solvable": info["solvable"],
        "n_solutions": info["difficulty"].get("n_solutions", len(info["solutions"])),
        "needs_fractions": info["difficulty"].get("needs_fractions", False),
        "split": split,
        "reset_seed": episode_seed(seed, split, index),
    }


def _json_config(cfg: Any) -> dict[str, Any]:
    """The env options as JSON values (tuples become lists), ``split`` left out."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items() if k != "split"}


def default_suits(visual: bool) -> str:
    """The suit pool a dataset uses unless told: GP-VL's training suits (black) for image
    datasets, the reference's mixed suits for text ones (what `openvirl eval` plays)."""
    return "black" if visual else "mixed"


def build_dataset(
    out: Path,
    *,
    n_test: int = 234,
    n_train: int = 1000,
    seed: int = 42,
    progress: bool = True,
    **env_options: Any,
) -> dict[str, Any]:
    """Write SFT pairs (train) and held-out hands (test) to `out`; return the manifest.

    Parameters
    ----------
    out
        Output folder (created; existing files of the same name are overwritten).
    n_test, n_train
        Hands per split.
    seed
        Dataset seed; hand ``i`` of a split depends only on ``(seed, split, i)``.
    progress
        Show a progress bar.
    **env_options
        `PointsConfig` options (rule, suits, visual, target, deal, allow_unsolvable, ...).
        Without `suits`, an image dataset (``visual=True``) uses black suits, as GP-VL trains
        and tests in distribution (`default_suits`); a text dataset uses mixed suits.
    """
    from rich.progress import Progress

    if n_test < 0 or n_train < 0:
        raise ValueError("`n_test` and `n_train` must be >= 0.")
    env_options.pop("split", None)
    if env_options.get("suits") is None:
        env_options["suits"] = default_suits(bool(env_options.get("visual", False)))
    env = GeneralPointsEnv(**env_options)
    cfg = env.config
    out = Path(out)
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    with Progress(disable=not progress, transient=True) as bar:
        for split, n in (("train", n_train), ("test", n_test)):
            folder = out / split
            folder.mkdir(parents=True, exist_ok=True)
            task = bar.add_task(f"{split} hands", total=n)
            meta_path = folder / "metadata.jsonl"
            with meta_path.open("w", encoding="utf-8") as meta:
                for index, info, image in iter_hands(env, split, n, seed):
                    row = _row(index, split, info, seed, cfg)
                    if image is not None:
                        name = f"{row['id']}.png"
                        image.save(folder / name, optimize=False)
                        row = {"file_name": name, **row}
                    meta.write(json.dumps(row, ensure_ascii=False) + "\n")
                    bar.advance(task)
            files[f"{split}/metadata.jsonl"] = _sha256(meta_path)
            counts[split] = n
    from openvirl import __version__

    manifest = {
        "dataset": "openvirl-generalpoints",
        "openvirl_version": __version__,
        "seed": seed,
        "config": {k: v for k, v in vars(cfg).items() if k != "split"},
        "split": describe_split(cfg.test_percent, cfg.split_by),
        # Everything a replay needs, per split (the split decides which hands are dealt).
        "env_id": "openvirl/GeneralPoints-v0",
        "splits": {split: {**_json_config(cfg), "split": split} for split in counts},
        "replay": "gym.make(manifest['env_id'], **manifest['splits'][row['split']])"
        ".reset(seed=row['reset_seed']) deals the row's hand",
        "counts": counts,
        "fields": {
            "prompt": "the first-turn prompt (GP-L or GP-VL template)",
            "completion": "the expert answer: one line of JSON with cards, number, formula",
            "split": "the side of the split the row was drawn from (a key of `splits`)",
            "reset_seed": "env.reset(seed=...) with the row's split config replays the hand",
        },
        "load_with": (
            "datasets.load_dataset('imagefolder', data_dir=DIR)"
            if cfg.visual
            else "datasets.load_dataset('json', data_dir=DIR)"
        ),
        "sha256": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    env.close()
    return manifest


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
