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
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
"""The YAML presets shipped in the wheel (``configs/*.yaml``, DeepSpeed and accelerate)."""


_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

MAX_YAML_ALIASES = 16
"""Most ``*alias`` references a config may hold. Aliases share one node while loading but are
copied by everything after, so nested ones ("billion laughs") blow a few hundred bytes of
YAML up into gigabytes; a config needs few or none."""

_LOADER: type | None = None


def _loader_class() -> type:
    """yaml's `SafeLoader` (no Python objects) that counts aliases and stops at too many."""
    global _LOADER
    if _LOADER is None:
        import yaml

        class _BoundedSafeLoader(yaml.SafeLoader):
            aliases = 0

            def compose_node(self, parent: Any, index: Any) -> Any:
                if self.check_event(yaml.AliasEvent):
                    self.aliases += 1
                    if self.aliases > MAX_YAML_ALIASES:
                        mark = self.peek_event().start_mark
                        raise yaml.YAMLError(
                            f"more than {MAX_YAML_ALIASES} aliases (*name) at {mark}; a config "
                            "may repeat a value a few times, not expand it exponentially"
                        )
                return super().compose_node(parent, index)

        _LOADER = _BoundedSafeLoader
    return _LOADER


def load_yaml(text: str, source: str = "<string>") -> Any:
    """Parse YAML safely: plain data only, at most `MAX_YAML_ALIASES` aliases, bounded depth.

    Raises
    ------
    ValueError
        A syntax error, too many aliases or too deep nesting, as one line naming `source`.
    """
    import yaml

    try:
        return yaml.load(text, Loader=_loader_class())
    except yaml.YAMLError as exc:
        where = " ".join(str(exc).split())
        raise ValueError(f"{source}: invalid YAML: {where}") from None
    except RecursionError:
        raise ValueError(f"{source}: invalid YAML: nested too deeply") from None


def _field_names(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def _accepts(hint: Any, value: Any) -> bool:
    """Whether `value` fits type `hint` (plain types, unions, containers; else anything)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(arg, value) for arg in typing.get_args(hint))
    if origin is typing.Literal:
        return value in typing.get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is Path:
        return isinstance(value, (str, Path))
    base = origin or hint
    if base in (dict, Mapping):
        return isinstance(value, Mapping)
    if base in (list, tuple, Sequence):
        return isinstance(value, (list, tuple))
    return True


def _describe(hint: Any) -> str:
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    names.update({Path: "a path", type(None): "null"})
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return " or ".join(_describe(arg) for arg in typing.get_args(hint))
    base = typing.get_origin(hint) or hint
    if base in (dict, Mapping):
        return "a mapping"
    if base in (list, tuple, Sequence):
        return "a list"
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def check_types(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with each value checked against its field's type, before anything slow (a model
    load) would trip over it: ``learning_rate=fast`` fails here, naming the option.

    A whole float given for an integer option (``max_steps=1e3``) becomes that integer, and a
    number given for a text option (``output_dir=2024``, which YAML reads as an integer) is
    taken as its text.

    Raises
    ------
    ValueError
        For a value of the wrong type.
    """
    out = dict(data)
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # annotations that do not resolve here: leave checking to the class
        return out
    for key, value in data.items():
        hint = hints.get(key)
        if hint is None or _accepts(hint, value):
            continue
        if isinstance(value, float) and value.is_integer() and _accepts(hint, 0):
            out[key] = int(value)  # max_steps=1e3
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool) and _accepts(hint, ""):
            out[key] = str(value)
            continue
        raise ValueError(f"option `{key}` must be {_describe(hint)}, got {value!r}.")
    return out


def config_from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Build dataclass `cls` from a mapping; unknown keys raise `ValueError` with a suggestion,
    and values of the wrong type (`check_types`) one naming the option."""
    names = _field_names(cls)
    for key in data:
        if key not in names:
            close = difflib.get_close_matches(key, names, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise ValueError(f"unknown option `{key}` for {cls.__name__}.{hint}")
    return cls(**check_types(cls, data))


def _parse_override(text: str) -> tuple[list[str], Any]:
    key, equals, raw = text.partition("=")
    if not equals or not key.strip():
        raise ValueError(f"override {text!r} must look like key=value (e.g. lr=1e-5).")
    value = load_yaml(raw, f"override {text!r}") if raw.strip() else ""
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
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        if not file.exists() and (CONFIGS_DIR / file).exists():
            file = CONFIGS_DIR / file
        if not file.exists():
            shipped = ", ".join(sorted(p.name for p in CONFIGS_DIR.glob("*.yaml")))
            raise FileNotFoundError(f"config file {path} not found; shipped presets: {shipped}")
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read config file {file}: {exc}") from None
        loaded = load_yaml(text, str(file)) or {}
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
