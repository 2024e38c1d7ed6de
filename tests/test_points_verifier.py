"""Verifier: the spec's worked examples, exactness, hostile inputs, property tests."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openvirl.envs.points import verifier
from openvirl.envs.points.solver import solution_table
from openvirl.envs.points.verifier import REWARDS, Outcome, Verdict, check, check_cards

HAND = [4, 3, 2, 10]

# Spec §2.6 worked examples for {4,3,2,10}, mapped onto our single outcomes (spaces and x
# are now fine; penalties no longer add up to -4).
WORKED = [
    ("4*3+2+10", Outcome.CORRECT, "Correct solution."),
    ("10+2+4*3", Outcome.CORRECT, "Correct solution."),
    ("4 * 3 + 2 + 10", Outcome.CORRECT, "Correct solution."),
    ("4x3+2+10", Outcome.CORRECT, "Correct solution."),
    ("4*3+2+13", Outcome.WRONG_NUMBERS, "not among the cards: [13], you didn't use numbers: [10]"),
    ("4*3+2", Outcome.WRONG_NUMBERS, "you didn't use numbers: [10]"),
    ("4*3+2+10+2", Outcome.WRONG_NUMBERS, "you used numbers: [2] too many times"),
    (
        "4+3+2+10",
        Outcome.WRONG_VALUE,
        "4 is partially correct but the full formula does not match any solution",
    ),
    ("(4*3+2+10))", Outcome.ILLEGAL_FORMULA, "unmatched closing parenthesis"),
    ("", Outcome.NO_ANSWER, '"formula": "<expression using each card value once>=24"'),
]


@pytest.mark.parametrize(("formula", "outcome", "message"), WORKED)
def test_worked_examples(formula: str, outcome: Outcome, message: str) -> None:
    verdict = check(formula, HAND, 24)
    assert verdict.outcome is outcome, verdict
    assert message in verdict.message
    assert verdict.reward == REWARDS[outcome]
    assert verdict.correct == (outcome is Outcome.CORRECT)


def test_reward_table_is_the_papers() -> None:
    assert {o.value: r for o, r in REWARDS.items()} == {
        "correct": 5.0,
        "wrong_value": -1.0,
        "wrong_numbers": -2.0,
        "illegal_formula": -3.0,
        "wrong_cards": -1.5,
        "no_answer": -3.0,
        "attempts_exhausted": -1.0,
    }
    assert set(REWARDS) == set(Outcome)
    assert Outcome.CORRECT == "correct"  # str enum: JSON-friendly


def test_float_bug_fixed() -> None:
    verdict = check("8/(3-8/3)", [3, 3, 8, 8], 24)
    assert verdict.correct and verdict.value == Fraction(24)
    assert check("8/(3-8/3)=24", [8, 3, 8, 3]).correct
    assert check("8 ÷ (3 − 8 ÷ 3)", [3, 3, 8, 8]).correct


@pytest.mark.parametrize(
    ("formula", "fragment"),
    [
        ("8/(3-8/3", "unclosed '('"),
        ("(8/(3-8/3)", "unclosed '('"),
        ("8/(3-8/3))", "unmatched closing parenthesis"),
        (")8/(3-8/3)", "cannot start with ')'"),
        ("4**3+2+10", "two operators in a row ('**')"),
        ("3 4+2+10", "put an operator between them"),
        ("()4*3+2+10", "empty parentheses"),
        ("4*3+2+10+", "ends with the operator"),
        ("-4*3+2+10", "cannot start with '-'"),
        ("4*(-3)+2+10", "cannot follow '('"),
        ("4*3(2+10)", "'(' cannot follow"),
        ("x4*3+2+10", "'x' means multiply only between"),
        ("4^3+2+10", "illegal characters: '^'"),
        ("4.0*3+2+10", "illegal characters: '.'"),
        ("[4*3]+2+10", "illegal characters"),
        ("__import__('os').system('x')", "illegal characters"),
    ],
)
def test_illegal_formulas(formula: str, fragment: str) -> None:
    verdict = check(formula, HAND, 24)
    assert verdict.outcome is Outcome.ILLEGAL_FORMULA, verdict
    assert fragment in verdict.message
    assert verdict.reward == -3.0


def test_tolerated_spellings() -> None:
    for formula in (
        "4×3+2+10",
        "4·3+2+10",
        "4 X 3 + 2 + 10",
        "(4)x(3)+2+10",
        "4*3+2+10 = 24",
        "4*3+2+10=24.",
        "'4*3+2+10'",
        '"4*3+2+10=24"',
        "`4*3+2+10`",
        "24 = 4*3+2+10",
        "4*3+2+10=25",  # anything after '=' is dropped
        "  4*3 + 02 + 10\n",
        "10 − 2 + 4*3 + 2 – 2",  # wrong numbers, but parsed
    ):
        verdict = check(formula, HAND, 24)
        if "−" in formula:
            assert verdict.outcome is Outcome.WRONG_NUMBERS
        else:
            assert verdict.correct, (formula, verdict)


def test_non_string_answers() -> None:
    for answer in (24, 24.0, None, ["4*3+2+10"], {"formula": "4*3+2+10"}, b"4*3+2+10", True):
        verdict = check(answer, HAND, 24)
        assert verdict.outcome is Outcome.NO_ANSWER
        assert verdict.reward < 0
        assert '"formula":' in verdict.message
    assert "must be a string, not int" in check(24, HAND).message
    for blank in ("", "   ", "\n\t", "null", "''", "=24", " = 24"):
        assert check(blank, HAND).outcome is Outcome.NO_ANSWER


def test_division_by_zero() -> None:
    verdict = check("3/(4-4)*2", [4, 4, 3, 2], 24)
    assert verdict.outcome is Outcome.ILLEGAL_FORMULA
    assert "divides by zero" in verdict.message
    # Numbers are checked first: a zero that is not a card is a wrong number.
    assert check("4/0+3+2+10", HAND).outcome is Outcome.WRONG_NUMBERS


def test_deep_nesting_no_recursion_error() -> None:
    deep = "(" * 10_000 + "8/(3-8/3)" + ")" * 10_000
    assert check(deep, [3, 3, 8, 8]).correct
    assert check(deep[:-1], [3, 3, 8, 8]).outcome is Outcome.ILLEGAL_FORMULA
    assert check("(" * 50_000, [3, 3, 8, 8]).outcome is Outcome.ILLEGAL_FORMULA
    assert check(")" * 50_000, [3, 3, 8, 8]).outcome is Outcome.ILLEGAL_FORMULA
    wrong = "(" * 10_000 + "8/(8-3/3)" + ")" * 10_000
    verdict = check(wrong, [3, 3, 8, 8])
    assert verdict.outcome is Outcome.WRONG_VALUE and verdict.value == Fraction(8, 7)


def test_huge_inputs_are_bounded() -> None:
    t0 = time.perf_counter()
    big = "9" * 5000
    verdict = check(big + "+4+3+2+10", HAND)
    assert verdict.outcome is Outcome.WRONG_NUMBERS
    assert "(5000 digits)" in verdict.message and len(verdict.message) < 300
    assert check("10**5000", HAND).outcome is Outcome.ILLEGAL_FORMULA
    many = "*".join(["9999999"] * 10_000)
    verdict = check(many, HAND)
    assert verdict.outcome is Outcome.WRONG_NUMBERS and len(verdict.message) < 300
    huge = "1+" * 500_000 + "1"
    verdict = check(huge, HAND)
    assert verdict.outcome is Outcome.ILLEGAL_FORMULA and "too long" in verdict.message
    assert check("\x00\xff" * 1000, HAND).outcome is Outcome.ILLEGAL_FORMULA
    assert time.perf_counter() - t0 < 5


def test_no_solution_statements() -> None:
    unsolvable = [1, 1, 1, 1]
    for text in (
        "no solution",
        "No solution exists.",
        "NONE",
        "impossible",
        "There is no solution",
    ):
        verdict = check(text, unsolvable, 24)
        assert verdict.correct, (text, verdict)
        assert verdict.reward == 5.0
        solvable = check(text, HAND, 24)
        assert solvable.outcome is Outcome.WRONG_VALUE
        assert "has a solution" in solvable.message
    verdict = check("1+1+1+1", unsolvable, 24)
    assert verdict.outcome is Outcome.WRONG_VALUE and "no solution" in verdict.message
    assert check("1+1+1", unsolvable).outcome is Outcome.WRONG_NUMBERS
    # With explicit (empty) solutions, as the env passes them.
    assert check("no solution", [5, 5, 5, 5], 24, solutions=[]).correct
    # A formula that reaches the target is correct whatever the solutions list says.
    assert check("4*3+2+10", HAND, 24, solutions=[]).correct


def test_wrong_value_messages() -> None:
    verdict = check("4*3*2-10", HAND)
    assert verdict.outcome is Outcome.WRONG_VALUE and verdict.value == 14
    assert verdict.message.startswith("4*3*2-10 evaluates to 14, not 24; ")
    assert "4*3 is partially correct" in verdict.message
    # No prefix at all.
    sols = ["10*2+4-...", "2*3*4"]
    hint = verifier._prefix_hint(["1", "0", "+"], sols)
    assert hint == "your formula does not match any solution"
    # '1' is not a token prefix of '10*...' (the reference's startswith said it was).
    assert verifier._prefix_hint(["1", "+", "2"], ["10*2+4"]).startswith("your formula")
    assert verifier._prefix_hint(["10", "*", "3"], ["10*2+4"]).startswith("10 is")
    # Fractional values are shown exactly.
    frac = check("8/3+3-8", [3, 3, 8, 8])
    assert frac.value == Fraction(-7, 3) and "-7/3" in frac.message


def test_hint_uses_given_solutions_unsorted() -> None:
    sols = list(reversed(solution_table(24).solutions(HAND)))
    verdict = check("4+3+2+10", HAND, 24, solutions=sols)
    assert "4 is partially correct" in verdict.message


def test_check_cards() -> None:
    assert check_cards(["A", "3", "K", "6"], ["6", "K", "A", "3"]) is None
    assert check_cards(["a", "3", "king", 6], ["6", "K", "A", "3"]) is None
    wrong = check_cards(["A", "3", "Q", "6"], ["6", "K", "A", "3"])
    assert isinstance(wrong, Verdict) and wrong.outcome is Outcome.WRONG_CARDS
    assert wrong.reward == -1.5 and "K" not in wrong.message.split(":", 1)[1]
    assert check_cards(None, ["A"]).outcome is Outcome.WRONG_CARDS  # type: ignore[union-attr]
    assert check_cards(["Z"], ["A"]).outcome is Outcome.WRONG_CARDS  # type: ignore[union-attr]


def test_speed_smoke() -> None:
    # The benchmark measures the real figure; this only guards against gross regressions.
    sols = solution_table(24).solutions(HAND)
    n = 5000
    t0 = time.perf_counter()
    for _ in range(n):
        check("4*3+2+10", HAND, 24, solutions=sols)
    assert n / (time.perf_counter() - t0) > 5000


# --------------------------------------------------------------------------- properties
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=300),
        st.text(alphabet="0123456789+-*/() x=", max_size=60),
    )
)
def test_any_input_gets_a_verdict(answer: object) -> None:
    t0 = time.perf_counter()
    verdict = check(answer, HAND, 24)
    assert time.perf_counter() - t0 < 0.5
    assert isinstance(verdict, Verdict) and isinstance(verdict.message, str)
    assert verdict.message
    assert verdict.reward == REWARDS[verdict.outcome]
    if verdict.outcome is not Outcome.CORRECT:
        assert verdict.reward < 0


@st.composite
def expression(draw: st.DrawFn) -> tuple[list[int], str, Fraction | None]:
    """A random expression tree over a random hand: (hand, text, exact value or None)."""
    hand = draw(st.lists(st.integers(1, 13), min_size=4, max_size=4))
    order = draw(st.permutations(hand))

    def build(leaves: list[int]) -> tuple[str, Fraction | None, int]:
        # Returns (text, value, precedence of the top operator; 3 for atoms).
        if len(leaves) == 1:
            return str(leaves[0]), Fraction(leaves[0]), 3
        cut = draw(st.integers(1, len(leaves) - 1))
        (lt, lv, lp), (rt, rv, rp) = build(leaves[:cut]), build(leaves[cut:])
        op = draw(st.sampled_from("+-*/"))
        prec = 1 if op in "+-" else 2
        # Parenthesize when needed (or at random, redundantly).
        if lp < prec or draw(st.booleans()):
            lt = f"({lt})"
        if rp < prec or (rp == prec and op in "-/") or draw(st.booleans()):
            rt = f"({rt})"
        space = draw(st.sampled_from(["", " "]))
        text = f"{lt}{space}{op}{space}{rt}"
        if lv is None or rv is None:
            value = None
        elif op == "+":
            value = lv + rv
        elif op == "-":
            value = lv - rv
        elif op == "*":
            value = lv * rv
        else:
            value = None if rv == 0 else lv / rv
        return text, value, prec

    text, value, _ = build(list(order))
    return hand, text, value


@settings(max_examples=400, deadline=None)
@given(expression())
def test_random_trees_judged_by_exact_value(case: tuple[list[int], str, Fraction | None]) -> None:
    hand, text, value = case
    verdict = check(text, hand, 24)
    if value is None:
        assert verdict.outcome is Outcome.ILLEGAL_FORMULA and "zero" in verdict.message
    elif value == 24:
        assert verdict.correct, (text, verdict)
    else:
        assert verdict.outcome is Outcome.WRONG_VALUE, (text, verdict)
        assert not verdict.correct and verdict.value == value
        assert "not 24" in verdict.message
