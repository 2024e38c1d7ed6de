"""The web viewer: runs, episodes step by step, and a city explorer, served locally.

>>> from openvirl.viewer import create_app
>>> app = create_app(["runs/eval/gp-l__id__oracle__s42"], city_names=["monaco"])

``openvirl view RUN_DIR ...`` serves it on http://127.0.0.1:8765 (see `view_command`). Importing
this package is light; FastAPI loads with `create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from openvirl.viewer.app import create_app
    from openvirl.viewer.cli import view_command

_LAZY = {"create_app": "openvirl.viewer.app", "view_command": "openvirl.viewer.cli"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'openvirl.viewer' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = ["create_app", "view_command"]
