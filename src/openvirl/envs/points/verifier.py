"""Safe, exact verifier of points-game formulas: a verdict, a reward and a message for any input.

Nothing is ever passed to ``eval``. A formula is tokenized with one regular expression, parsed
by an iterative shunting-yard into reverse Polish notation (so 10,000 nested parentheses are
just a long loop, never a ``RecursionError``) and evaluated exactly: integers while division
is exact, :class:`fractions.Fraction` otherwise, so ``8/(3-8/3)`` is 24, not 23.999...

Checks run in the reference's order, but each answer gets exactly one outcome and one reward
from :data:`REWARDS` (the reference summed penalties into values such as -4 that are not in
its table):

1. no answer: not a string, empty, ``null``;
2. illegal formula: characters other than digits, ``+ - * / ( )`` and spaces, a formula too
   long, or a syntax error (``4**3``, ``3 4``, ``()``, an unmatched or *unclosed*
   parenthesis, a leading sign);
3. wrong numbers: numbers that are not cards, used too often or left unused, all in one
   message;
4. illegal formula again for a division by zero (only reached with the right numbers);
5. correct when the value equals the target exactly, otherwise wrong value with the
   reference's prefix hint: the longest token prefix of the formula that starts some
   solution.

Tolerated, unlike the reference: spaces; ``×``, ``·``, ``∗`` and ``x``/``X`` (between two
operands) for ``*``; ``÷`` for ``/``; ``−``, ``–`` and ``—`` for ``-``; anything after ``=``
(and a leading ``24=``); surrounding quotes or backticks; a trailing period.

Decisions:

* No unary signs. ``-3+...`` or ``3*-4`` is an illegal formula (the reference forbids a
  leading operator too): every card is used as the positive number it shows.
* A hand with no solution is answered by a statement such as ``no solution``, ``none``,
  ``impossible`` or ``No solution exists.`` (case-insensitive). That statement on a
  solvable hand is a wrong value whose message says a solution exists; a formula on an
  unsolvable hand is judged as usual, and its wrong-value message says the hand has none.
* A formula that reaches the target with the right numbers is correct even if the given
  ``solutions`` do not list it: the value is the ground truth, solutions only feed hints.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

MAX_FORMULA_CHARS = 100_000
"""Longer answers are rejected unread (a real formula is a few dozen characters)."""
MAX_NUMBER_DIGITS = 12
"""Longer numbers are never converted (Python refuses int() beyond 4,300 digits anyway)."""
_MAX_LISTED = 10  # numbers listed in one message before eliding the rest

MAX_ECHO_CHARS = 120
"""Longest piece of the answer quoted back in feedback; longer ones are clipped (a formula of
100,000 parentheses would otherwise come back whole, into the next prompt)."""


def _clip(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text`, or its start and length when longer than `limit`."""
    if len(text) <= limit:
        return text
    return f"{text[: limit - 20]}... ({len(text)} characters)"


class Outcome(str, Enum):
    """What happened to one answer; each maps to one reward in :data:`REWARDS`."""

    CORRECT = "correct"
    WRONG_VALUE = "wrong_value"
    WRONG_NUMBERS = "wrong_numbers"
    ILLEGAL_FORMULA = "illegal_formula"
    WRONG_CARDS = "wrong_cards"
    NO_ANSWER = "no_answer"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"


REWARDS: dict[Outcome, float] = {
    Outcome.CORRECT: 5.0,  # a legal equation that reaches the target
    Outcome.WRONG_VALUE: -1.0,  # a legal equation with the wrong value
    Outcome.WRONG_NUMBERS: -2.0,  # numbers that are not the cards (or not each used once)
    Outcome.ILLEGAL_FORMULA: -3.0,  # anything that is not an equation
    Outcome.WRONG_CARDS: -1.5,  # GP-VL: misrecognized cards
    Outcome.NO_ANSWER: -3.0,  # no formula at all (the reference scores "None" as illegal)
    Outcome.ATTEMPTS_EXHAUSTED: -1.0,  # past the maximum number of verified attempts
}
"""The paper's reward for each outcome (App. A.3), in one table."""


@dataclass(frozen=True)
class Verdict:
    """The verifier's judgement of one answer.

    Parameters
    ----------
    outcome
        What happened.
    value
        The formula's exact value when it could be evaluated, else None.
    message
        Feedback for the model, written to follow "You failed this trial because".
    reward
        ``REWARDS[outcome]``.
    """

    outcome: Outcome
    value: Fraction | None
    message: str
    reward: float

    @property
    def correct(self) -> bool:
        """Whether the answer solved the hand."""
        return self.outcome is Outcome.CORRECT


def _verdict(outcome: Outcome, message: str, value: Fraction | None = None) -> Verdict:
    return Verdict(outcome, value, message, REWARDS[outcome])


# --------------------------------------------------------------------------- text handling
_TRANSLATE = str.maketrans(
    {
        "×": "*", "·": "*", "⋅": "*", "∗": "*", "✕": "*", "✖": "*",
        "÷": "/", "∕": "/", "⁄": "/",
        "−": "-", "–": "-", "—": "-", "‐": "-", "‒": "-", "﹣": "-", "－": "-",
        "＋": "+", "（": "(", "）": ")", "\u00a0": " ",
    }
)  # fmt: skip
_QUOTES = "`'\"“”‘’ \t\r\n"
_ILLEGAL_RE = re.compile(r"[^0-9+\-*/()xX \t\r\n]")
_TOKEN_RE = re.compile(r"[0-9]+|[-+*/()xX]")
_BARE_NUMBER_RE = re.compile(r"\s*[0-9]+\s*")
_NONE_WORDS = frozenset(("null", "nil", "n/a"))  # "none" is a no-solution statement
_NO_SOLUTION_RE = re.compile(
    r"(?:there\s+is\s+|there's\s+|this\s+hand\s+has\s+)?"
    r"(?:no\s+(?:valid\s+|possible\s+)?(?:solutions?|answers?|formulas?)"
    r"(?:\s+(?:exists?|is\s+possible|possible|found))?"
    r"|none|impossible|unsolvable|not\s+solvable|no\s+way"
    r"|(?:it\s+)?(?:cannot|can't|can\s+not)\s+be\s+(?:solved|done|made))"
    r"\s*[.!]*",
    re.IGNORECASE,
)
_PREC = {"+": 1, "-": 1, "*": 2, "/": 2}


def _format_value(value: int | Fraction) -> str:
    return str(value)


def _expected_format(target: int | Fraction) -> str:
    return f'answer with "formula": "<expression using each card value once>={target}"'


def _show_number(tok: str) -> str:
    digits = tok.lstrip("0") or "0"
    if len(digits) <= MAX_NUMBER_DIGITS:
        return digits
    return f"{digits[:6]}...({len(digits)} digits)"


def _listing(items: Sequence[object]) -> str:
    shown = [str(x) for x in items[:_MAX_LISTED]]
    if len(items) > _MAX_LISTED:
        shown.append(f"... {len(items) - _MAX_LISTED} more")
    return "[" + ", ".join(shown) + "]"


def _number_problems(used: list[str], cards: list[int]) -> str | None:
    """Describe how the formula's numbers differ from the cards (None if they match).

    ``used`` holds the number tokens as written (digits only); numbers too long to convert
    are reported as not among the cards.
    """
    dealt = Counter(cards)
    seen: Counter[int] = Counter()
    invalid: list[str] = []
    invalid_seen: set[str] = set()
    for tok in used:
        shown = _show_number(tok)
        value = int(shown) if len(shown) <= MAX_NUMBER_DIGITS else None
        if value is None or value not in dealt:
            if shown not in invalid_seen:
                invalid_seen.add(shown)
                invalid.append(shown)
        else:
            seen[value] += 1
    too_many = [v for v in dealt if seen[v] > dealt[v]]
    missing = dealt - seen
    unused: list[int] = []
    for v in cards:  # dealing order, with multiplicity
        if missing[v] > 0:
            missing[v] -= 1
            unused.append(v)
    parts = []
    if invalid:
        parts.append(f"you used numbers that are not among the cards: {_listing(invalid)}")
    if too_many:
        parts.append(f"you used numbers: {_listing(too_many)} too many times")
    if unused:
        parts.append(f"you didn't use numbers: {_listing(unused)}")
    if not parts:
        return None
    return ", ".join(parts) + "; use each card value exactly once."


def _parse(tokens: list[str]) -> tuple[list[int | str], list[str]] | str:
    """Shunting-yard: tokens -> (RPN with ints and operator chars, number tokens) or an error.

    Iterative on purpose: parentheses nest as deep as the input allows without recursion.
    Numbers too long to convert stay as strings in the RPN; they never reach evaluation
    because they cannot match a card.
    """
    out: list[int | str] = []
    ops: list[str] = []
    nums: list[str] = []
    expect_operand = True
    prev = ""
    depth = 0
    for tok in tokens:
        first = tok[0]
        if first <= "9" and first >= "0":
            if not expect_operand:
                return (
                    f"a number cannot follow {prev!r} directly ('{prev} {tok}'): "
                    "put an operator between them"
                )
            nums.append(tok)
            out.append(int(tok) if len(tok) <= MAX_NUMBER_DIGITS else tok)
            expect_operand = False
        elif first == "(":
            if not expect_operand:
                return f"'(' cannot follow {prev!r}: write the operator, e.g. 2*(3+4)"
            ops.append("(")
            depth += 1
        elif first == ")":
            if expect_operand:
                if prev == "(":
                    return "empty parentheses '()'"
                if not prev:
                    return "the formula cannot start with ')'"
                return f"')' cannot follow the operator {prev!r}"
            if depth == 0:
                return "unmatched closing parenthesis"
            while ops[-1] != "(":
                out.append(ops.pop())
            ops.pop()
            depth -= 1
        else:
            op = "*" if first in "xX" else first
            if expect_operand:
                if first in "xX":
                    return "'x' means multiply only between two numbers or parentheses"
                if not prev:
                    return (
                        f"the formula cannot start with {op!r}: no signs, use each card "
                        "value as a positive number"
                    )
                if prev == "(":
                    return f"{op!r} cannot follow '(': no signs inside parentheses"
                return f"two operators in a row ('{prev}{op}'); no signs are allowed"
            prec = _PREC[op]
            while ops and ops[-1] != "(" and _PREC[ops[-1]] >= prec:
                out.append(ops.pop())
            ops.append(op)
            expect_operand = True
        prev = tok
    if not prev:
        return "the formula is empty"
    if expect_operand:
        return f"the formula ends with the operator {prev!r}"
    if depth:
        return "unclosed '(': every '(' needs a matching ')'"
    while ops:
        out.append(ops.pop())
    return out, nums


def _evaluate(rpn: list[int | str]) -> int | Fraction | None:
    """Evaluate RPN exactly; ints while division is exact. None on division by zero."""
    stack: list[int | Fraction] = []
    push = stack.append
    pop = stack.pop
    for tok in rpn:
        if tok.__class__ is int:
            push(tok)  # type: ignore[arg-type]
            continue
        b = pop()
        a = pop()
        if tok == "+":
            push(a + b)
        elif tok == "-":
            push(a - b)
        elif tok == "*":
            push(a * b)
        else:
            if b == 0:
                return None
            if a.__class__ is int and b.__class__ is int:
                q, r = divmod(a, b)  # type: ignore[call-overload]
                push(q if r == 0 else Fraction(a, b))
            else:
                push(Fraction(a) / b)
    return stack[0]


def _has_prefix(sols: Sequence[str], prefix: str, ends_in_number: bool) -> bool:
    """Whether some (sorted) solution starts with ``prefix`` at a token boundary.

    A prefix ending in a number must not continue with a digit in the solution: ``1`` is
    not a prefix of ``10*2+...``, which the reference's plain ``startswith`` accepted.
    """
    n = len(sols)
    i = bisect_left(sols, prefix)
    if not ends_in_number:
        return i < n and sols[i].startswith(prefix)
    if i < n and sols[i] == prefix:
        return True
    for nxt in ")*+-/":
        probe = prefix + nxt
        j = bisect_left(sols, probe, i)
        if j < n and sols[j].startswith(probe):
            return True
    return False


def _prefix_hint(tokens: list[str], sols: Sequence[str]) -> str:
    """The reference's hint: the longest token prefix of the formula that starts a solution.

    The reported prefix is trimmed of trailing operators and ``(`` so it reads as an
    expression (``4*3`` rather than ``4*3+``).
    """
    ordered = sorted(sols)
    best = 0
    prefix = ""
    for i, tok in enumerate(tokens):
        prefix += tok
        if not _has_prefix(ordered, prefix, tok[0].isdigit()):
            break
        best = i + 1
    kept = tokens[:best]
    while kept and not (kept[-1][0].isdigit() or kept[-1] == ")"):
        kept.pop()
    if not kept:
        return "your formula does not match any solution"
    shown = _clip("".join(kept))
    return f"{shown} is partially correct but the full formula does not match any solution"


def _normal_tokens(tokens: list[str]) -> list[str]:
    """Tokens as solution strings spell them: ``*`` for x, numbers without leading zeros."""
    return [
        "*" if t in ("x", "X") else (t.lstrip("0") or "0") if t[0].isdigit() else t for t in tokens
    ]


# --------------------------------------------------------------------------- public API
def check(
    formula: object,
    numbers: Sequence[int],
    target: int | Fraction = 24,
    *,
    solutions: Sequence[str] | None = None,
) -> Verdict:
    """Judge one answer for a hand: outcome, exact value, feedback message and reward.

    Never raises for any ``formula`` and never evaluates it as code; the work is bounded by
    ``MAX_FORMULA_CHARS``. See the module docstring for the checks, tolerances and
    decisions.

    Parameters
    ----------
    formula
        The model's formula, e.g. ``"4*3+2+10=24"``; any object is accepted (non-strings
        are a ``no_answer``).
    numbers
        The hand's card values under the active rule, each to be used exactly once.
    target
        The value to reach.
    solutions
        The hand's solution strings, used for prefix hints and to know whether the hand is
        solvable. When None they come from :func:`~openvirl.envs.points.solver.solution_table`
        (or a direct solve for hands outside the table).

    Returns
    -------
    Verdict
        ``check("8/(3-8/3)", [3, 3, 8, 8]).correct`` is True.
    """
    cards = [int(n) for n in numbers]
    goal = target if isinstance(target, int) else Fraction(target)

    # 1. No answer at all.
    if not isinstance(formula, str):
        if formula is None:
            return _verdict(Outcome.NO_ANSWER, f"you gave no formula; {_expected_format(goal)}.")
        kind = type(formula).__name__
        return _verdict(
            Outcome.NO_ANSWER,
            f"the formula must be a string, not {kind}; {_expected_format(goal)}.",
        )
    if len(formula) > MAX_FORMULA_CHARS:
        return _verdict(
            Outcome.ILLEGAL_FORMULA,
            f"the formula is too long ({len(formula)} characters, at most "
            f"{MAX_FORMULA_CHARS}); {_expected_format(goal)}.",
        )
    text = formula.strip(_QUOTES).rstrip(".").strip(_QUOTES)
    if not text or text.lower() in _NONE_WORDS:
        return _verdict(Outcome.NO_ANSWER, f"you gave no formula; {_expected_format(goal)}.")

    # A "no solution" statement.
    if _NO_SOLUTION_RE.fullmatch(text):
        if _solutions(cards, goal, solutions):
            return _verdict(
                Outcome.WRONG_VALUE,
                f"this hand has a solution; find a formula that makes {goal}.",
            )
        return _verdict(Outcome.CORRECT, "Correct: this hand has no solution.")

    # Keep the left side of an equation; "24=<formula>" is read as <formula>.
    if "=" in text:
        left, _, right = text.partition("=")
        if _BARE_NUMBER_RE.fullmatch(left) and right.strip(" =").strip():
            text = right.partition("=")[0]
        else:
            text = left
        if not text.strip():
            return _verdict(Outcome.NO_ANSWER, f"you gave no formula; {_expected_format(goal)}.")
    text = text.translate(_TRANSLATE)

    # 2. Illegal characters and syntax.
    bad = _ILLEGAL_RE.findall(text)
    if bad:
        shown = ", ".join(repr(c) for c in dict.fromkeys(bad[:200]))
        return _verdict(
            Outcome.ILLEGAL_FORMULA,
            f"the formula has illegal characters: {shown}; use only the card numbers, "
            "+ - * / and parentheses.",
        )
    tokens = _TOKEN_RE.findall(text)
    parsed = _parse(tokens)
    if isinstance(parsed, str):
        return _verdict(Outcome.ILLEGAL_FORMULA, f"the formula is not valid: {parsed}.")
    rpn, used = parsed

    # 3. The numbers must be the cards, each exactly once.
    ints = _ints(rpn)
    if len(ints) != len(used) or sorted(ints) != sorted(cards):
        problem = _number_problems(used, cards)
        if problem is not None:
            return _verdict(Outcome.WRONG_NUMBERS, problem)

    # 4./5. Exact value.
    value = _evaluate(rpn)
    if value is None:
        return _verdict(Outcome.ILLEGAL_FORMULA, "the formula divides by zero.")
    if value == goal:
        return _verdict(Outcome.CORRECT, "Correct solution.", Fraction(value))
    sols = _solutions(cards, goal, solutions)
    shown_value = _format_value(value)
    normal = _normal_tokens(tokens)
    head = f"{_clip(''.join(normal))} evaluates to {shown_value}, not {goal}"
    if not sols:
        message = f"{head}, and this hand has no solution: answer 'no solution'."
    else:
        message = f"{head}; {_prefix_hint(normal, sols)}."
    return _verdict(Outcome.WRONG_VALUE, message, Fraction(value))


def _ints(rpn: list[int | str]) -> list[int]:
    return [t for t in rpn if t.__class__ is int]  # type: ignore[misc]


def _solutions(
    cards: list[int], goal: int | Fraction, solutions: Sequence[str] | None
) -> Sequence[str]:
    if solutions is not None:
        return solutions
    from openvirl.envs.points.solver import _solve_cached, solution_table

    if isinstance(goal, int) and 1 <= len(cards) <= 4:
        try:
            return solution_table(goal, len(cards)).solutions(cards)
        except (TypeError, ValueError):
            pass
    return _solve_cached(tuple(sorted(cards)), Fraction(goal))


def check_cards(cards: object, expected: Sequence[str]) -> Verdict | None:
    """GP-VL recognition gate: a ``wrong_cards`` verdict, or None when the cards match.

    Both sides are normalized with
    :func:`~openvirl.envs.points.cards.normalize_card_label` and compared as multisets. The
    message does not reveal the true cards, so a wrong guess cannot be fixed by copying.

    Parameters
    ----------
    cards
        The recognized cards as parsed from the answer (a list, or None if absent).
    expected
        The hand's plain card labels.
    """
    from openvirl.envs.points.cards import normalize_card_label

    truth = sorted(normalize_card_label(c) or "?" for c in expected)
    if isinstance(cards, (list, tuple)):
        seen = [normalize_card_label(c) for c in cards]
        if None not in seen and sorted(seen) == truth:  # type: ignore[type-var]
            return None
        shown = [s if s is not None else repr(c)[:20] for s, c in zip(seen, cards, strict=True)]
        return _verdict(
            Outcome.WRONG_CARDS,
            f"you recognized wrong cards: {_listing(shown)} is not the hand in the image.",
        )
    return _verdict(
        Outcome.WRONG_CARDS,
        'you recognized wrong cards: give the four cards as "cards": [x, y, z, w].',
    )
