"""Navigation datasets: SFT pairs along training rails and held-out evaluation routes.

SFT data are "optimal single-turn prompt-response pairs" (spec §7.1): for every position of
a training route's rail, the first-turn prompt with the ground-truth history, paired with the
expert answer (first-person oracle observation, the instruction sentence, the action).

Layout written by `build_dataset` (Hugging Face "folder" convention, one folder a split)::

    DIR/
      train/metadata.jsonl   one row per rail position: prompt, completion, route fields
      train/*.png            view grids (with ``visual=True``)
      test/metadata.jsonl    one row per held-out route: its first prompt and replay seed
      manifest.json          options, seed, the route sets' manifests, counts, file hashes

Load it with ``datasets.load_dataset("json", data_dir=DIR)`` (text) or
``load_dataset("imagefolder", data_dir=DIR)`` (with images). Train rows come only from
``split="train"`` routes and test rows only from ``split="test"`` routes, which are disjoint
by route and by area (`openvirl.envs.navigation.routes`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from openvirl.envs.navigation.env import NavigationEnv

_SPLIT_STREAM = {"train": 1, "test": 2}


def episode_seed(seed: int, split: str, index: int) -> int:
    """The `reset` seed of route `index` of `split`: independent of order and of other routes."""
    sequence = np.random.SeedSequence([seed, 100 + _SPLIT_STREAM[split], index])
    return int(sequence.generate_state(1, dtype=np.uint32)[0])


def iter_positions(env: NavigationEnv, route_index: int, seed: int) -> Iterator[dict[str, Any]]:
    """Walk one route's rail with expert answers; yield each position's prompt, answer, image.

    Yields
    ------
    dict
        ``prompt``, ``completion`` (the expert answer), ``image`` (PIL or None) and the
        position's info (``position``, ``gt_action``, ``entry_kind``...).
    """
    obs, info = env.reset(seed=seed, options={"route_index": route_index})
    while True:
        yield {
            "prompt": obs["prompt"],
            "completion": info["expert_answer"],
            "image": obs["image"],
            "info": info,
        }
        obs, _, terminated, truncated, info = env.step(info["expert_answer"])
        if terminated or truncated:
            return


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_dataset(
    out: Path,
    *,
    n_train: int | None = None,
    n_test: int | None = None,
    seed: int = 42,
    progress: bool = True,
    train_routes: Any = None,
    test_routes: Any = None,
    **env_options: Any,
) -> dict[str, Any]:
    """Write SFT pairs (train routes) and held-out routes (test) to `out`; return the manifest.

    Parameters
    ----------
    out
        Output folder (created; files of the same name are overwritten).
    n_train, n_test
        Routes per split (None: all routes of the split).
    seed
        Dataset seed; route ``i`` of a split is replayed with
        ``env.reset(seed=episode_seed(seed, split, i), options={"route_index": i})``.
    progress
        Show a progress bar.
    train_routes, test_routes
        Routes (a file path or `NavRoute` objects) that replace a side's split, e.g. V-IRL
        route files read with `openvirl.envs.navigation.virl_io.load_route_file`.
    **env_options
        `NavigationConfig` options (city, actions, instructions, visual, preset...); ``split``
        is set per side.
    """
    from rich.progress import Progress

    env_options.pop("split", None)
    out = Path(out)
    files: dict[str, str] = {}
    counts: dict[str, int] = {}
    cfg = None
    with Progress(disable=not progress, transient=True) as bar:
        sides = {"train": train_routes, "test": test_routes}
        for split, n in (("train", n_train), ("test", n_test)):
            given = sides[split]
            extra = {} if given is None else {"routes": given, "order": "fixed"}
            env = NavigationEnv(**{**env_options, "split": split, **extra})
            cfg = env.config
            total = len(env.routes) if n is None else min(int(n), len(env.routes))
            folder = out / split
            folder.mkdir(parents=True, exist_ok=True)
            task = bar.add_task(f"{split} routes", total=total)
            meta_path = folder / "metadata.jsonl"
            rows = 0
            with meta_path.open("w", encoding="utf-8") as meta:
                for i in range(total):
                    reset_seed = episode_seed(seed, split, i)
                    positions = iter_positions(env, i, reset_seed)
                    if split == "test":
                        positions = iter([next(positions)])
                    for item in positions:
                        info = item["info"]
                        row = {
                            "id": f"nav-{info['route_id']}-{split}-{i:05d}-{info['position']:03d}",
                            "prompt": item["prompt"],
                            "completion": item["completion"],
                            "route_id": info["route_id"],
                            "route_index": i,
                            "city": info["city"],
                            "position": info["position"],
                            "rail_length": info["rail_length"],
                            "entry_kind": info["entry_kind"],
                            "gt_action": info["gt_action"],
                            "actions": cfg.actions,
                            "instructions": cfg.instructions,
                            "visual": cfg.visual,
                            "split": split,
                            "reset_seed": reset_seed,
                        }
                        if item["image"] is not None:
                            name = f"{row['id']}.png"
                            item["image"].save(folder / name, optimize=False)
                            row = {"file_name": name, **row}
                        meta.write(json.dumps(row, ensure_ascii=False) + "\n")
                        rows += 1
                    bar.advance(task)
            env.close()
            files[f"{split}/metadata.jsonl"] = _sha256(meta_path)
            counts[f"{split}_routes"] = total
            counts[f"{split}_rows"] = rows
    from openvirl import __version__

    assert cfg is not None
    config = {k: v for k, v in vars(cfg).items() if k not in ("split", "routes")}
    # `preset` was merged into the options already; replaying with the merged options alone
    # gives the same config even if a preset changes later.
    replay_config = {k: v for k, v in config.items() if k != "preset"}
    manifest = {
        "dataset": "openvirl-navigation",
        "openvirl_version": __version__,
        "seed": seed,
        "config": config,
        # Everything a replay needs, per split (the split decides the route set).
        "env_id": "openvirl/Navigation-v0",
        "splits": {split: {**replay_config, "split": split} for split in ("train", "test")},
        "replay": "gym.make(manifest['env_id'], **manifest['splits'][row['split']]).reset("
        "seed=row['reset_seed'], options={'route_index': row['route_index']}) replays the "
        "row's route; train rows then follow the expert answers to row['position']",
        "routes": "train rows from split='train' routes, test rows from split='test' routes; "
        "disjoint by route and by area (see the route files' manifests)",
        "counts": counts,
        "route_files": {
            side: (str(r) if isinstance(r, (str, Path)) else f"{len(list(r))} routes given")
            for side, r in sides.items()
            if r is not None
        },
        "fields": {
            "prompt": "the first-turn prompt at a rail position (ground-truth history)",
            "completion": "the expert answer: JSON with current observation, current "
            "instruction, action",
            "split": "the route set the row comes from (a key of `splits`)",
            "reset_seed": "with the row's split config, reset(seed=reset_seed, options="
            "{'route_index': route_index}) replays the episode",
        },
        "load_with": (
            "datasets.load_dataset('imagefolder', data_dir=DIR)"
            if cfg.visual
            else "datasets.load_dataset('json', data_dir=DIR)"
        ),
        "sha256": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


__all__ = ["build_dataset", "episode_seed", "iter_positions"]
