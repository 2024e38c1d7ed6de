"""Exact solver for the points game, and per-target tables of every hand's solutions.

The solver follows the reference (the Rosetta-code "24 game" solver): every distinct
ordering of the numbers, every operator sequence over ``+ - * /`` and a fixed set of bracket
placements, evaluated exactly. Unlike the reference it deduplicates and sorts the solution
strings, so the prefix hints of the verifier can bisect them.

The bracket set for ``n`` numbers (``2n - 1`` tokens) is, as in the reference:

* no brackets;
* one pair around every span of at least two numbers except the whole expression;
* for four numbers only, the double pair ``(a o b) o (c o d)``.

Bracket variants that evaluate the same way (``(4*3)+2+10`` and ``4*3+2+10``) are both kept:
a model that writes either one should get the same prefix hint.

A :class:`SolutionTable` holds the solutions of every multiset of ``n_cards`` values in
1..13 for one target. The target-24 four-card table ships with the package
(``tables/points-24-n4.json.gz``, rebuilt with
``python -m openvirl.envs.points.solver --build-tables``); any other table is built on first
use (well under a second, vectorized with numpy) and cached under
``openvirl._paths.cache_dir("points-tables")``.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from fractions import Fraction
from functools import cache, lru_cache
from itertools import permutations, product
from pathlib import Path
from typing import Any

# Table files carry this version; bump it whenever the solver's output changes so that
# stale caches are rebuilt instead of read.
TABLE_FORMAT = "openvirl.points.solution-table"
TABLE_VERSION = 1
VALUE_RANGE = (1, 13)
"""Card values a table covers (both ends inclusive): ranks 1..13 under either face rule."""
MAX_TABLE_CARDS = 4
"""Tables enumerate 13**n orderings; beyond four cards that stops being instant."""
MAX_TABLE_TARGET = 10**6
"""Tables evaluate in int64; targets beyond this bound could overflow the comparisons."""
TABLES_DIR = Path(__file__).resolve().parent / "tables"

_OPS = "+-*/"
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}

__all__ = [
    "SolutionTable",
    "build_table",
    "canonical_form",
    "distinct_solutions",
    "solution_table",
    "solve",
    "table_path",
]


# --------------------------------------------------------------------------- canonical form
_TOKEN = re.compile(r"\s*(\d+|[-+*/()])")


def canonical_form(expression: str) -> str:
    """A key that is equal for two solutions exactly when they are the same up to
    commutativity and associativity.

    Sums and products are flattened into signed terms and factors and sorted: `a+b`, `b+a`
    and `(a+b)` share a key, as do `(a*b)*c` and `a*(c*b)`; a minus or a division sign
    distributes over the group it applies to (`a-(b-c)` is `a-b+c`, `a/(b/c)` is `a*c/b`).
    Nothing else is simplified (`a*b*1` and `a*b/1` stay distinct).

    Parameters
    ----------
    expression
        A solution string over integers, ``+ - * /`` and brackets (as `solve` writes them).
    """
    tokens = _TOKEN.findall(expression)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def eat() -> str:
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def combine(op: str, a: tuple, b: tuple) -> tuple:
        kind = "s" if op in "+-" else "p"
        left = list(a[1]) if a[0] == kind else [(1, a)]
        right = list(b[1]) if b[0] == kind else [(1, b)]
        if op in "-/":
            right = [(-sign, x) for sign, x in right]
        return (kind, tuple(sorted(left + right, key=lambda t: (t[0], key(t[1])))))

    def expr() -> tuple:
        node = term()
        while peek() in ("+", "-"):
            op = eat()
            node = combine(op, node, term())
        return node

    def term() -> tuple:
        node = atom()
        while peek() in ("*", "/"):
            op = eat()
            node = combine(op, node, atom())
        return node

    def atom() -> tuple:
        tok = eat()
        if tok == "(":
            node = expr()
            eat()
            return node
        return ("n", tok)

    def key(node: tuple) -> str:
        if node[0] == "n":
            return node[1]
        parts = ",".join(("" if sign > 0 else "~") + key(x) for sign, x in node[1])
        return f"{node[0]}({parts})"

    return key(expr())


def distinct_solutions(solutions: Iterable[str]) -> list[str]:
    """One solution per `canonical_form` (its shortest written form, the first of those in
    the given order), in order of first appearance: "1*2*3*4", "(1+2+3)*4"... rather than
    every reordering and bracket variant."""
    seen: dict[str, str] = {}
    for text in solutions:
        key = canonical_form(text)
        if key not in seen or len(text) < len(seen[key]):
            seen[key] = text
    return list(seen.values())


# --------------------------------------------------------------------------- templates
def _bracket_sets(n: int) -> list[tuple[int, ...]]:
    """The reference's bracket insertion points for ``n`` numbers.

    Positions index the token list ``[n0, o0, n1, o1, ...]`` and are applied in order with
    ``list.insert``, exactly like the Rosetta-code solver, so the strings match its output.
    """
    length = 2 * n - 1
    sets: list[tuple[int, ...]] = [()]
    sets += [
        (x, y)
        for x in range(0, length, 2)
        for y in range(x + 4, length + 2, 2)
        if (x, y) != (0, length + 1)
    ]
    if n == 4:
        sets.append((0, 4, 6, 10))  # (a o b) o (c o d)
    return sets


def _to_rpn(tokens: Sequence[str | int]) -> tuple[str | int, ...]:
    """Shunting-yard over a bracket template whose operands are placeholder indices.

    The reverse-Polish form is a canonical evaluation tree: bracket variants that Python
    would evaluate identically get the same RPN, so each tree is evaluated only once.
    """
    out: list[str | int] = []
    stack: list[str] = []
    for tok in tokens:
        if isinstance(tok, int):
            out.append(tok)
        elif tok == "(":
            stack.append(tok)
        elif tok == ")":
            while stack[-1] != "(":
                out.append(stack.pop())
            stack.pop()
        else:
            while stack and stack[-1] != "(" and _PRECEDENCE[stack[-1]] >= _PRECEDENCE[tok]:
                out.append(stack.pop())
            stack.append(tok)
    while stack:
        out.append(stack.pop())
    return tuple(out)


@cache
def _templates(n: int) -> tuple[tuple[tuple[str | int, ...], tuple[str, ...]], ...]:
    """Every (evaluation tree, format strings) group for ``n`` numbers.

    Each format string has ``{0}``..``{n-1}`` placeholders for the ordered numbers; all the
    strings in one group evaluate through the same tree.
    """
    groups: dict[tuple[str | int, ...], list[str]] = {}
    for ops in product(_OPS, repeat=n - 1):
        base: list[str | int] = []
        for i in range(n):
            base.append(i)
            if i < n - 1:
                base.append(ops[i])
        for brackets in _bracket_sets(n):
            toks = list(base)
            for point, bracket in zip(brackets, "()" * (len(brackets) // 2), strict=True):
                toks.insert(point, bracket)
            fmt = "".join(f"{{{t}}}" if isinstance(t, int) else t for t in toks)
            groups.setdefault(_to_rpn(toks), []).append(fmt)
    return tuple((rpn, tuple(fmts)) for rpn, fmts in groups.items())


def _eval_rpn_exact(rpn: Sequence[str | int], nums: Sequence[int]) -> tuple[int, int] | None:
    """Evaluate a template tree on integers as an unreduced fraction ``(p, q)``.

    Returns None on division by zero. Integer pairs are exact and several times faster
    than :class:`fractions.Fraction` for the tiny numbers of a hand.
    """
    stack: list[tuple[int, int]] = []
    for tok in rpn:
        if isinstance(tok, int):
            stack.append((nums[tok], 1))
            continue
        p2, q2 = stack.pop()
        p1, q1 = stack.pop()
        if tok == "+":
            stack.append((p1 * q2 + p2 * q1, q1 * q2))
        elif tok == "-":
            stack.append((p1 * q2 - p2 * q1, q1 * q2))
        elif tok == "*":
            stack.append((p1 * p2, q1 * q2))
        else:
            if p2 == 0:
                return None
            stack.append((p1 * q2, q1 * p2))
    return stack[0]


# --------------------------------------------------------------------------- solve
def solve(numbers: Sequence[int], target: int | Fraction = 24) -> list[str]:
    """Every distinct solution string that reaches ``target`` with ``numbers``.

    Enumerates every distinct ordering of ``numbers``, every operator sequence over
    ``+ - * /`` and the reference's bracket set (see the module docstring), evaluates exactly
    (no floats: ``8/(3-8/3)`` is 24, not 23.999...), skips division by zero and returns the
    matching strings without spaces, deduplicated and sorted.

    Parameters
    ----------
    numbers
        The card values, each used exactly once (1 to 6 numbers; the game uses 4).
    target
        The value to reach, an integer or a :class:`fractions.Fraction`.

    Returns
    -------
    list[str]
        Sorted solution strings, e.g. ``solve([3, 3, 8, 8]) == ["8/(3-8/3)"]``; empty when
        the hand has no solution.
    """
    nums = [int(x) for x in numbers]
    if not 1 <= len(nums) <= 6:
        msg = f"`numbers` must hold 1 to 6 values, got {len(nums)}."
        raise ValueError(msg)
    goal = Fraction(target)
    t_num, t_den = goal.numerator, goal.denominator
    found: set[str] = set()
    groups = _templates(len(nums))
    for order in set(permutations(nums)):
        for rpn, fmts in groups:
            res = _eval_rpn_exact(rpn, order)
            if res is not None and res[0] * t_den == t_num * res[1]:
                found.update(fmt.format(*order) for fmt in fmts)
    return sorted(found)


@lru_cache(maxsize=4096)
def _solve_cached(key: tuple[int, ...], target: Fraction) -> tuple[str, ...]:
    return tuple(solve(key, target))


# --------------------------------------------------------------------------- building
def _key_text(key: Iterable[int]) -> str:
    return ",".join(str(v) for v in key)


def build_table(target: int = 24, n_cards: int = 4) -> dict[str, Any]:
    """Solve every multiset of ``n_cards`` values in 1..13 at once, vectorized with numpy.

    Every ordered tuple of values is one row (an ordering of exactly one multiset); each
    distinct evaluation tree of the reference's templates is evaluated over all rows as
    unreduced integer fractions, then the matching rows are formatted into strings. This is
    an independent implementation of :func:`solve` (the tests compare the two).

    Parameters
    ----------
    target
        Integer target, at most ``MAX_TABLE_TARGET`` in absolute value.
    n_cards
        Number of cards per hand, 1 to ``MAX_TABLE_CARDS``.

    Returns
    -------
    dict
        The JSON document :class:`SolutionTable` reads: ``entries`` maps ``"a,b,c,d"``
        (sorted values) to ``[space-joined solutions, n_trees, n_integer_trees]`` for every
        solvable multiset.
    """
    import numpy as np

    target, n_cards = _check_table_args(target, n_cards)
    lo, hi = VALUE_RANGE
    values = np.arange(lo, hi + 1, dtype=np.int64)
    # Every ordered tuple (rows), column j = value at position j.
    grids = np.meshgrid(*([values] * n_cards), indexing="ij")
    cols = [g.reshape(-1) for g in grids]
    n_rows = cols[0].shape[0]
    rows = np.stack(cols, axis=1)
    keys = np.sort(rows, axis=1)
    # A row's multiset id: mixed-radix code of its sorted values.
    radix = hi - lo + 1
    key_code = np.zeros(n_rows, dtype=np.int64)
    for j in range(n_cards):
        key_code = key_code * radix + (keys[:, j] - lo)

    hits: dict[int, set[str]] = {}
    trees: dict[int, int] = {}
    int_trees: dict[int, int] = {}
    ones = np.ones(n_rows, dtype=np.int64)
    true = np.ones(n_rows, dtype=bool)
    false = np.zeros(n_rows, dtype=bool)
    with np.errstate(all="ignore"):
        for rpn, fmts in _templates(n_cards):
            stack: list[tuple[Any, Any, Any, Any]] = []  # (p, q, valid, fractional)
            for tok in rpn:
                if isinstance(tok, int):
                    stack.append((cols[tok], ones, true, false))
                    continue
                p2, q2, v2, f2 = stack.pop()
                p1, q1, v1, f1 = stack.pop()
                valid = v1 & v2
                if tok == "+":
                    p, q = p1 * q2 + p2 * q1, q1 * q2
                elif tok == "-":
                    p, q = p1 * q2 - p2 * q1, q1 * q2
                elif tok == "*":
                    p, q = p1 * p2, q1 * q2
                else:
                    valid = valid & (p2 != 0)
                    p, q = p1 * q2, q1 * p2
                safe_q = np.where(q == 0, 1, q)
                frac = f1 | f2 | (p % safe_q != 0)
                stack.append((p, q, valid, frac))
            p, q, valid, frac = stack[0]
            ok = valid & (q != 0) & (p == target * q)
            for row in np.flatnonzero(ok).tolist():
                code = int(key_code[row])
                order = rows[row].tolist()
                hits.setdefault(code, set()).update(fmt.format(*order) for fmt in fmts)
                trees[code] = trees.get(code, 0) + 1
                if not frac[row]:
                    int_trees[code] = int_trees.get(code, 0) + 1

    entries: dict[str, list[Any]] = {}
    n_multisets = 0
    for code in sorted(set(key_code.tolist())):
        n_multisets += 1
        if code not in hits:
            continue
        key = []
        rest = code
        for _ in range(n_cards):
            rest, digit = divmod(rest, radix)
            key.append(digit + lo)
        text = _key_text(sorted(key))
        entries[text] = [" ".join(sorted(hits[code])), trees[code], int_trees.get(code, 0)]
    return {
        "format": TABLE_FORMAT,
        "version": TABLE_VERSION,
        "target": target,
        "n_cards": n_cards,
        "values": list(VALUE_RANGE),
        "n_multisets": n_multisets,
        "n_solvable": len(entries),
        "entries": dict(sorted(entries.items())),
    }


def _check_table_args(target: object, n_cards: object) -> tuple[int, int]:
    if isinstance(target, bool) or not isinstance(target, int):
        if isinstance(target, Fraction) and target.denominator == 1:
            target = int(target)
        else:
            msg = f"`target` must be an integer for a solution table, got {target!r}; "
            msg += "use `solve(numbers, target)` for fractional targets."
            raise TypeError(msg)
    if abs(target) > MAX_TABLE_TARGET:
        msg = f"`target` must be within +-{MAX_TABLE_TARGET} for a table, got {target}."
        raise ValueError(msg)
    if isinstance(n_cards, bool) or not isinstance(n_cards, int):
        msg = f"`n_cards` must be an integer, got {n_cards!r}."
        raise TypeError(msg)
    if not 1 <= n_cards <= MAX_TABLE_CARDS:
        msg = f"`n_cards` must be 1 to {MAX_TABLE_CARDS} for a table, got {n_cards}."
        raise ValueError(msg)
    return target, n_cards


def table_path(target: int = 24, n_cards: int = 4) -> Path:
    """Where the table for ``target`` lives: shipped in the package, else the user cache."""
    name = f"points-{target}-n{n_cards}.json.gz"
    shipped = TABLES_DIR / name
    if shipped.is_file():
        return shipped
    from openvirl._paths import cache_dir

    return cache_dir("points-tables") / f"v{TABLE_VERSION}-{name}"


def _write_table(doc: dict[str, Any], path: Path) -> None:
    """Write atomically so that two processes building the same table never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
            gz.write(json.dumps(doc, separators=(",", ":")).encode())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; tables are shared data
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _read_table(path: Path, target: int, n_cards: int) -> dict[str, Any] | None:
    """Read a table file, or None when it is missing, corrupt or from another version."""
    try:
        with gzip.open(path, "rb") as fh:
            doc = json.loads(fh.read())
    except (OSError, ValueError, EOFError):
        return None
    ok = (
        isinstance(doc, dict)
        and doc.get("format") == TABLE_FORMAT
        and doc.get("version") == TABLE_VERSION
        and doc.get("target") == target
        and doc.get("n_cards") == n_cards
        and isinstance(doc.get("entries"), dict)
    )
    return doc if ok else None


# --------------------------------------------------------------------------- table
class SolutionTable:
    """All solutions of every multiset of ``n_cards`` values in 1..13 for one target.

    Lookups are order-insensitive (the key is the sorted values) and O(1); a multiset's
    solution strings are split out of the file's compact form on first access only, which
    keeps loading fast and memory small. Hands outside the table (values beyond 1..13, or
    another number of cards) fall back to :func:`solve`, cached.

    Parameters
    ----------
    doc
        A document produced by :func:`build_table`.
    """

    def __init__(self, doc: dict[str, Any]) -> None:
        self.target: int = int(doc["target"])
        self.n_cards: int = int(doc["n_cards"])
        self.n_multisets: int = int(doc["n_multisets"])
        lo, hi = doc.get("values", VALUE_RANGE)
        self.value_range: tuple[int, int] = (int(lo), int(hi))
        self._raw: dict[tuple[int, ...], list[Any]] = {
            tuple(int(v) for v in key.split(",")): entry for key, entry in doc["entries"].items()
        }
        self._split: dict[tuple[int, ...], tuple[str, ...]] = {}

    def __repr__(self) -> str:
        return (
            f"SolutionTable(target={self.target}, n_cards={self.n_cards}, "
            f"solvable={len(self._raw)}/{self.n_multisets})"
        )

    def __len__(self) -> int:
        """Number of solvable multisets."""
        return len(self._raw)

    def _covers(self, key: tuple[int, ...]) -> bool:
        lo, hi = self.value_range
        return len(key) == self.n_cards and lo <= key[0] and key[-1] <= hi

    def solutions(self, numbers: Iterable[int]) -> tuple[str, ...]:
        """Sorted solution strings for a hand's values (any order); empty if unsolvable."""
        key = tuple(sorted(int(v) for v in numbers))
        cached = self._split.get(key)
        if cached is not None:
            return cached
        entry = self._raw.get(key)
        if entry is not None:
            sols = tuple(entry[0].split(" "))
        elif self._covers(key):
            sols = ()
        else:
            sols = _solve_cached(key, Fraction(self.target))
        self._split[key] = sols
        return sols

    def is_solvable(self, numbers: Iterable[int]) -> bool:
        """Whether some formula over the values reaches the target."""
        key = tuple(sorted(int(v) for v in numbers))
        if key in self._raw:
            return True
        if self._covers(key):
            return False
        return bool(_solve_cached(key, Fraction(self.target)))

    def difficulty(self, numbers: Iterable[int]) -> dict[str, Any]:
        """How hard a hand is, for curricula and difficulty-sliced reports.

        Returns
        -------
        dict
            ``solvable``; ``n_solutions`` (solutions distinct up to commutativity and
            associativity, see `canonical_form`: 4 for 1 2 3 4); ``n_solution_strings``
            (distinct written forms, reorderings and bracket variants included: 314 for
            1 2 3 4); ``n_distinct_values_paths`` (distinct pairs of card order and
            evaluation tree that reach the target, i.e. solutions up to redundant
            brackets); ``needs_fractions`` (every solution passes through a non-integer
            intermediate value, as ``8/(3-8/3)`` does).
        """
        key = tuple(sorted(int(v) for v in numbers))
        entry = self._raw.get(key)
        if entry is None and not self._covers(key):
            return _difficulty_of(key, Fraction(self.target))
        sols = self.solutions(key)
        n_trees = int(entry[1]) if entry is not None else 0
        n_int = int(entry[2]) if entry is not None else 0
        return {
            "solvable": bool(sols),
            "n_solutions": _n_distinct(sols),
            "n_solution_strings": len(sols),
            "n_distinct_values_paths": n_trees,
            "needs_fractions": bool(sols) and n_int == 0,
        }

    def multisets(self, *, solvable: bool | None = True) -> list[tuple[int, ...]]:
        """Sorted value multisets in the table: solvable ones, unsolvable ones, or all."""
        from itertools import combinations_with_replacement

        lo, hi = self.value_range
        every = combinations_with_replacement(range(lo, hi + 1), self.n_cards)
        if solvable is None:
            return list(every)
        return [key for key in every if (key in self._raw) == solvable]


@lru_cache(maxsize=8192)
def _n_distinct_cached(sols: tuple[str, ...]) -> int:
    return len({canonical_form(t) for t in sols})


def _n_distinct(sols: Sequence[str]) -> int:
    """Number of solutions distinct up to commutativity and associativity."""
    return _n_distinct_cached(tuple(sols))


@lru_cache(maxsize=1024)
def _difficulty_of(key: tuple[int, ...], target: Fraction) -> dict[str, Any]:
    """Difficulty of a hand outside any table, from a direct enumeration."""
    t_num, t_den = target.numerator, target.denominator
    sols: set[str] = set()
    n_trees = n_int = 0
    for order in set(permutations(key)):
        for rpn, fmts in _templates(len(key)):
            res = _eval_rpn_exact(rpn, order)
            if res is None or res[0] * t_den != t_num * res[1]:
                continue
            sols.update(fmt.format(*order) for fmt in fmts)
            n_trees += 1
            n_int += _all_integer(rpn, order)
    return {
        "solvable": bool(sols),
        "n_solutions": _n_distinct(sorted(sols)),
        "n_solution_strings": len(sols),
        "n_distinct_values_paths": n_trees,
        "needs_fractions": bool(sols) and n_int == 0,
    }


def _all_integer(rpn: Sequence[str | int], nums: Sequence[int]) -> bool:
    """Whether every intermediate value of a (zero-division-free) tree is an integer."""
    stack: list[Fraction] = []
    for tok in rpn:
        if isinstance(tok, int):
            stack.append(Fraction(nums[tok]))
            continue
        b, a = stack.pop(), stack.pop()
        val = a + b if tok == "+" else a - b if tok == "-" else a * b if tok == "*" else a / b
        if val.denominator != 1:
            return False
        stack.append(val)
    return True


@cache
def solution_table(target: int = 24, n_cards: int = 4) -> SolutionTable:
    """The solution table for ``target``, loaded once per process.

    The target-24 four-card table ships with the package; other tables are built on first
    use with :func:`build_table` and cached on disk (see :func:`table_path`), so later
    processes load them in milliseconds.

    Parameters
    ----------
    target
        Integer target value.
    n_cards
        Cards per hand (1 to 4).

    Returns
    -------
    SolutionTable
        The table; ``solution_table(24).is_solvable([3, 3, 8, 8])`` is True.
    """
    target, n_cards = _check_table_args(target, n_cards)
    path = table_path(target, n_cards)
    doc = _read_table(path, target, n_cards)
    if doc is None:
        doc = build_table(target, n_cards)
        # A read-only cache only costs a rebuild in the next process.
        with contextlib.suppress(OSError):
            _write_table(doc, path)
    return SolutionTable(doc)


# --------------------------------------------------------------------------- script
def build_shipped_tables(out_dir: Path = TABLES_DIR) -> list[Path]:
    """(Re)build the tables shipped in the package: target 24 with four cards."""
    written = []
    for target, n_cards in ((24, 4),):
        doc = build_table(target, n_cards)
        path = out_dir / f"points-{target}-n{n_cards}.json.gz"
        _write_table(doc, path)
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m openvirl.envs.points.solver``: build the shipped tables or solve one hand."""
    parser = argparse.ArgumentParser(prog="python -m openvirl.envs.points.solver")
    parser.add_argument("--build-tables", action="store_true", help="rebuild shipped tables")
    parser.add_argument("--target", type=int, default=24, help="target value")
    parser.add_argument("numbers", nargs="*", type=int, help="card values to solve")
    args = parser.parse_args(argv)
    if args.build_tables:
        for path in build_shipped_tables():
            doc = _read_table(path, 24, 4) or {}
            print(f"wrote {path} ({doc.get('n_solvable')}/{doc.get('n_multisets')} solvable)")
        return 0
    if not args.numbers:
        parser.error("give card values to solve, or --build-tables")
    for line in solve(args.numbers, args.target) or ["no solution"]:
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
