"""Answer parsing: every format models write, round trips, and garbage that never raises."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from openvirl.envs.points.cards import LABEL_RANKS, RANK_LABELS
from openvirl.envs.points.parsing import ParsedAnswer, parse_answer

REFERENCE_STYLE = """{
  "cards": ['A', '3', 'K', '6'],
  "number": [1, 3, 13, 6],
  "formula": "(13-6)*3+1=24",
}"""


def test_reference_style_with_trailing_commas() -> None:
    parsed = parse_answer(REFERENCE_STYLE)
    assert parsed.cards == ["A", "3", "K", "6"]
    assert parsed.numbers == [1, 3, 13, 6]
    assert parsed.formula == "(13-6)*3+1=24"
    assert parsed.error is None and parsed.problems == {}
    assert parsed.raw == REFERENCE_STYLE


def test_strict_json_and_numeric_cards() -> None:
    # The reference turned both of these into [] (spec §2.5).
    parsed = parse_answer('{"cards": [2, 5, 7, 9], "number": [2, 5, 7, 9], "formula": "x"}')
    assert parsed.cards == ["2", "5", "7", "9"] and parsed.numbers == [2, 5, 7, 9]
    text = "```json\n" + json.dumps({"cards": ["10", "J", "A", "2"], "number": [10, 10, 1, 2],
                                    "formula": "10+10+2*1=24"}) + "\n```"  # fmt: skip
    parsed = parse_answer("Let me think.\n" + text + "\nThat's it.")
    assert parsed.cards == ["10", "J", "A", "2"]
    assert parsed.formula == "10+10+2*1=24"


def test_single_quoted_formula_python_dict_and_key_case() -> None:
    parsed = parse_answer("{'Cards': ['T', 'q', 'ace', 'K'], 'NUMBER': [10, 10, 1, 10], "
                          "'Formula': '10+10+1*10'}")  # fmt: skip
    assert parsed.cards == ["10", "Q", "A", "K"]
    assert parsed.numbers == [10, 10, 1, 10]
    assert parsed.formula == "10+10+1*10"
    parsed = parse_answer('"cards": ["A","3"],\n"formula": \'4*3+2+10=24\',')
    assert parsed.formula == "4*3+2+10=24"
    assert parsed.numbers is None and "number" in parsed.problems["numbers"]


def test_last_block_wins_over_echoed_template() -> None:
    text = (
        'The format is {"cards": [x, y, z, w], "formula": "an equation"}.\n'
        'My answer: {"cards": ["4", "3", "2", "10"], "number": [4,3,2,10], "formula": "4*3+2+10"}'
    )
    parsed = parse_answer(text)
    assert parsed.formula == "4*3+2+10" and parsed.cards == ["4", "3", "2", "10"]


def test_bare_and_nested_forms() -> None:
    parsed = parse_answer("cards: A, 3, K, 6\nnumber: 1, 3, 10, 6\nformula: (10-6)*3*1*2=24")
    assert parsed.cards == ["A", "3", "K", "6"]
    assert parsed.numbers == [1, 3, 10, 6]
    assert parsed.formula == "(10-6)*3*1*2=24"
    nested = parse_answer('{"answer": {"formula": "8/(3-8/3)"}}')
    assert nested.formula == "8/(3-8/3)"
    assert parse_answer({"formula": "1+2", "cards": [1, 2]}).cards == ["A", "2"]


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ('{"cards": ["A"], "number": [1], "formula": 24}', "not a number (24)"),
        ('{"cards": ["A"], "number": [1], "formula": null}', "not null"),
        ('{"cards": ["A"], "number": [1], "formula": ["1", "+"]}', "not a list"),
        ('"formula": None,', "not null"),
        ('"formula": 24,', "not a number"),
        ('"formula": [1, 2],', "not a list"),
    ],
)
def test_formula_must_be_a_string(text: str, kind: str) -> None:
    parsed = parse_answer(text)
    assert parsed.formula is None
    assert parsed.error is not None and "must be a string" in parsed.error and kind in parsed.error
    assert "Expected format" in parsed.error


def test_missing_and_malformed_fields_are_explained() -> None:
    parsed = parse_answer("I think the answer is twenty-four.")
    assert parsed.formula is None and parsed.cards is None and parsed.numbers is None
    assert parsed.error is not None
    assert 'no "formula" field' in parsed.error and '"formula":' in parsed.error
    bad = parse_answer('{"cards": ["A", "Z", "K"], "number": [1, "x"], "formula": ""}')
    assert bad.cards == ["A", "Z", "K"]  # unreadable items kept as written, never a label
    assert "'Z'" in bad.problems["cards"]
    assert bad.numbers is None and "'x'" in bad.problems["numbers"]
    assert bad.formula is None and "empty" in bad.problems["formula"]
    for empty in ("", "   ", None, 42, [1, 2]):
        assert parse_answer(empty).formula is None  # type: ignore[arg-type]
        assert parse_answer(empty).error  # type: ignore[arg-type]
    assert parse_answer(b'{"formula": "1+2"}').formula == "1+2"


# --------------------------------------------------------------------------- round trips
_RANKS = st.integers(1, 13)
_FORMULA = st.text(alphabet="0123456789+-*/() =xX÷", min_size=1, max_size=40).filter(
    lambda s: s.strip() != ""
)


def _card_list(ranks: list[int], style: str) -> str:
    if style == "numeric":
        return "[" + ", ".join(str(r) for r in ranks) + "]"
    labels = ["T" if r == 10 and style == "t" else RANK_LABELS[r] for r in ranks]
    if style == "single":
        return "[" + ", ".join(f"'{x}'" for x in labels) + "]"
    return json.dumps([x.lower() if style == "lower" else x for x in labels])


def _render(ranks: list[int], numbers: list[int], formula: str, style: str, cstyle: str) -> str:
    cards = _card_list(ranks, cstyle)
    nums = "[" + ", ".join(str(n) for n in numbers) + "]"
    fq = json.dumps(formula)
    if style == "json":
        return f'{{"cards": {cards}, "number": {nums}, "formula": {fq}}}'
    if style == "reference":
        return f'{{\n  "cards": {cards},\n  "number": {nums},\n  "formula": {fq},\n}}'
    if style == "fenced":
        return f'Reasoning first.\n```json\n{{"cards": {cards}, "number": {nums}, "formula": {fq}}}\n```\nDone.'  # noqa: E501
    if style == "python":
        return f"{{'cards': {cards}, 'number': {nums}, 'formula': '{formula}'}}"
    if style == "keycase":
        return f'{{"CARDS": {cards}, "Numbers": {nums}, "FORMULA": {fq}}} trailing text'
    raise AssertionError(style)


@settings(max_examples=300, deadline=None)
@given(
    ranks=st.lists(_RANKS, min_size=1, max_size=6),
    numbers=st.lists(st.integers(0, 99), min_size=1, max_size=6),
    formula=_FORMULA,
    style=st.sampled_from(["json", "reference", "fenced", "python", "keycase"]),
    cstyle=st.sampled_from(["json", "single", "numeric", "t", "lower"]),
)
def test_round_trip(
    ranks: list[int], numbers: list[int], formula: str, style: str, cstyle: str
) -> None:
    text = _render(ranks, numbers, formula, style, cstyle)
    parsed = parse_answer(text)
    assert parsed.cards == [RANK_LABELS[r] for r in ranks], text
    assert parsed.numbers == numbers, text
    assert parsed.formula == formula.strip(), text
    assert parsed.error is None, (text, parsed.error)
    assert all(LABEL_RANKS[c] == r for c, r in zip(parsed.cards, ranks, strict=True))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.text(max_size=400),
        st.binary(max_size=200),
        st.text(alphabet="{}[]\"':,formulacards number0123456789\n ", max_size=200),
        st.none(),
        st.integers(),
        st.lists(st.integers(), max_size=5),
        st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4),
    )
)
def test_garbage_never_raises(text: object) -> None:
    parsed = parse_answer(text)
    assert isinstance(parsed, ParsedAnswer)
    assert parsed.formula is None or isinstance(parsed.formula, str)
    assert parsed.cards is None or all(isinstance(c, str) for c in parsed.cards)
    assert parsed.numbers is None or all(isinstance(n, int) for n in parsed.numbers)
    assert (parsed.error is None) == (not parsed.problems)


def test_hostile_sizes_are_bounded() -> None:
    import time

    t0 = time.perf_counter()
    assert parse_answer("{" * 100_000).formula is None
    assert parse_answer("[" * 100_000 + '"formula": "1+2"').formula == "1+2"
    deep = '{"formula": "1+2", "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    assert parse_answer(deep).formula == "1+2"
    big = "x" * 2_000_000 + '{"formula": "4*3+2+10"}'
    assert parse_answer(big).formula == "4*3+2+10"
    assert parse_answer("```" * 10_000).formula is None
    assert time.perf_counter() - t0 < 10
