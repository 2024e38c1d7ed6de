"""The README's `openvirl.world` example runs and prints what its comments say (issue 20).

Each statement of the block is run in turn. A comment that shows a result (`[Place(...`,
`Place(...`, `Tour(...`, on the statement's line or the comment line after it) must match
the value's repr piece by piece (the parts between "..." appear in order); a comment naming
an `...Error` must be raised by that statement.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from world_fixtures import private_cache

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "### The offline real-city platform (`openvirl.world`)"
SHOWN = re.compile(r"^\[?[A-Z]\w*\(")


def world_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the world section has no python block"
    return match.group(1)


def comment_of(lines: list[str], stmt: ast.stmt) -> str:
    """The comment on the statement's last line, or on a comment-only line right after."""
    line = lines[stmt.end_lineno - 1]
    comment = line.split("  # ", 1)[1].strip() if "  # " in line else ""
    if stmt.end_lineno < len(lines) and lines[stmt.end_lineno].lstrip().startswith("# "):
        comment = lines[stmt.end_lineno].lstrip()[2:].strip()
    return comment


def matches_repr(comment: str, value: object) -> bool:
    text = repr(value)
    pos = 0
    for piece in (p.strip(" ,") for p in comment.split("...")):
        if not piece or piece in ")]":
            continue
        found = text.find(piece, pos)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


def test_readme_world_example_prints_what_it_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = world_block()
    lines = source.splitlines()
    namespace: dict[str, object] = {}
    checked = 0
    with private_cache():
        for stmt in ast.parse(source).body:
            comment = comment_of(lines, stmt)
            is_expr = isinstance(stmt, ast.Expr)
            code = compile(
                ast.Expression(stmt.value) if is_expr else ast.Module([stmt], []),
                "README.md",
                "eval" if is_expr else "exec",
            )
            error = re.match(r"(\w+Error)\b", comment)
            if error:
                with pytest.raises(Exception) as err:
                    eval(code, namespace)  # the README's own code, not model output
                assert type(err.value).__name__ == error.group(1)
                checked += 1
                continue
            value = eval(code, namespace) if is_expr else exec(code, namespace)
            if is_expr and SHOWN.match(comment):
                assert matches_repr(comment, value), (comment, repr(value))
                checked += 1
    route = namespace["route"]
    assert round(route.length_m) == 1227  # "1227 m, 14.6 min at 1.4 m/s"
    assert f"{route.duration_s / 60:.1f}" == "14.6"
    assert (tmp_path / "route.png").stat().st_size > 0
    assert checked >= 5
    assert len(repr(namespace["city"].search("coffee near Bryant Park"))) < 2000
