"""Prompt templates per task and variant: plain text files, rendered in one place.

Environments fill the templates in; policies never edit them. Templates live in
`prompts/templates/*.txt` so they can be read and diffed without reading code.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

FEEDBACK_PREFIX = "You failed this trial because "
"""Sequential revision: a wrong attempt's message returns as a user turn with this prefix."""


@cache
def load_template(name: str) -> str:
    """Return the text of `templates/<name>.txt`.

    Raises
    ------
    KeyError
        If no template has that name; the message lists the available ones.
    """
    folder = resources.files("openvirl.prompts") / "templates"
    path = folder / f"{name}.txt"
    if not path.is_file():
        known = sorted(
            p.name.removesuffix(".txt") for p in folder.iterdir() if p.name.endswith(".txt")
        )
        raise KeyError(f"unknown prompt template {name!r}; known templates: {', '.join(known)}")
    return path.read_text(encoding="utf-8").rstrip("\n")


def render(name: str, **fields: Any) -> str:
    """Fill template `name` with `fields` (str.format syntax; literal braces are doubled)."""
    return load_template(name).format(**fields)


def feedback_message(message: str) -> str:
    """The user turn that carries a verifier's message back to the model."""
    return FEEDBACK_PREFIX + message
