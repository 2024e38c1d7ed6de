"""Run configs as YAML: load a dataclass from a file plus ``key=value`` overrides, and save it.

Every trainer keeps all of its options in one dataclass (`SFTRunConfig`, `PPOConfig`,
`GRPORunConfig`); a YAML file holds any subset of its fields, and the command line overrides
single fields (``lr=1e-5``, ``env_kwargs.target=12``; values are read as YAML scalars).
Unknown names fail with the closest valid one, like Gymnasium's "Did you mean".
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
"""The YAML presets shipped in the wheel (``configs/*.yaml``, DeepSpeed and accelerate)."""


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise `ValueError` with a suggestion."""
    names = _field_names(cls)
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise ValueError(f"unknown option `{key}` for {cls.__name__}.{hint}")
    return cls(**dict(data))


def _parse_override(text: str) -> tuple[list[str], Any]:
    import yaml

    key, equals, raw = text.partition("=")
    if not equals or not key.strip():
        raise ValueError(f"override {text!r} must look like key=value (e.g. lr=1e-5).")
    value = yaml.safe_load(raw) if raw.strip() else ""
    return key.strip().split("."), _number(value)


def _number(value: Any) -> Any:
    """YAML 1.1 reads ``1e-5`` (no dot) as text; numbers written that way become numbers."""
    if isinstance(value, str) and _NUMBER.match(value.strip()):
        text = value.strip()
        return int(text) if text.lstrip("+-").isdigit() else float(text)
    if isinstance(value, dict):
        return {k: _number(v) for k, v in value.items()}
    return value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Set ``a.b=value`` overrides into a nested dict (values parsed as YAML scalars)."""
    out = dict(data)
    for text in overrides:
        path, value = _parse_override(text)
        target = out
        for part in path[:-1]:
            child = target.get(part)
            child = dict(child) if isinstance(child, Mapping) else {}
            target[part] = child
            target = child
        target[path[-1]] = value
    return out


def load_config(cls: type[T], path: Path | str | None = None, overrides: Sequence[str] = ()) -> T:
    """Load `cls` from a YAML file (optional) and overrides; validation is the class's own.

    A relative `path` that does not exist is also looked up among the shipped presets
    (`CONFIGS_DIR`), so ``--config ppo-gp-l-quick.yaml`` works from any folder.
    """
    import yaml

    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.exists() and (CONFIGS_DIR / file).exists():
            file = CONFIGS_DIR / file
        if not file.exists():
            shipped = ", ".join(sorted(p.name for p in CONFIGS_DIR.glob("*.yaml")))
            raise FileNotFoundError(f"config file {path} not found; shipped presets: {shipped}")
        loaded = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, Mapping):
            raise ValueError(f"{file} must hold a mapping of option names to values.")
        data = {k: _number(v) for k, v in loaded.items()}
    data = apply_overrides(data, overrides)
    return config_from_dict(cls, data)


def resolve_shipped(path: str | None) -> str | None:
    """A config file path as given, or inside `CONFIGS_DIR` when only it has one by that name.

    Lets YAML presets say ``deepspeed: deepspeed/zero3.json`` from any working directory.
    """
    if path is None or Path(path).exists() or not (CONFIGS_DIR / path).exists():
        return path
    return str(CONFIGS_DIR / path)


def launch_world_size() -> int:
    """Processes of this launch (``accelerate launch``, torchrun, DeepSpeed or MPI), read from
    the environment the launcher sets, without initializing a distributed state (HF Trainer
    must do that itself, with its own CPU/GPU choice)."""
    import os

    for name in ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) > 0:
            return int(value)
    return 1


def config_to_dict(config: Any) -> dict[str, Any]:
    """A dataclass config as plain YAML/JSON types (paths become strings)."""

    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, Mapping):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(config, f.name)) for f in dataclasses.fields(config)}


def save_config(config: Any, path: Path) -> None:
    """Write a config as YAML (the file `load_config` reads back)."""
    import yaml

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(config_to_dict(config), sort_keys=False), "utf-8")


def field_docs(cls: type) -> dict[str, str]:
    """Each field's documentation: its ``help`` metadata (TRL style) or the docstring under it
    (CleanRL style, read from the class source)."""
    import ast
    import inspect
    import textwrap

    docs: dict[str, str] = {}
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, after in itertools.pairwise(body):
            is_doc = isinstance(after, ast.Expr) and isinstance(
                getattr(after, "value", None), ast.Constant
            )
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and is_doc:
                docs[node.target.id] = str(after.value.value).strip()
    except (OSError, TypeError, SyntaxError):  # pragma: no cover - source unavailable
        pass
    for f in dataclasses.fields(cls):
        if "help" in f.metadata:
            docs[f.name] = str(f.metadata["help"])
    return docs


def describe_options(cls: type) -> str:
    """Every option of a config class with its default and documentation, one per line."""
    docs = field_docs(cls)
    lines = []
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:  # pragma: no cover - every config field has a default
            default = "(required)"
        lines.append(f"{f.name} = {default!r}\n    {docs.get(f.name, '')}")
    return "\n".join(lines)


__all__ = [
    "CONFIGS_DIR",
    "apply_overrides",
    "config_from_dict",
    "config_to_dict",
    "describe_options",
    "field_docs",
    "launch_world_size",
    "load_config",
    "resolve_shipped",
    "save_config",
]
