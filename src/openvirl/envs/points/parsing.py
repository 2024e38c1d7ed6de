"""Tolerant extraction of the answer block (cards, numbers, formula) from a model's text.

The reference read fields with ``json.loads`` or one regex per key, so strict JSON and
unquoted numeric cards parsed to ``[]`` and a single-quoted formula to the string "None"
(spec §2.5, §10 item 3). This parser accepts what models actually write:

* the block anywhere in the text, inside a fenced code block or not; the last block that
  names a field wins (models often echo the template before answering);
* strict JSON, the reference's JSON with trailing commas, Python dicts (single quotes);
* keys in any case (``"Cards"``, ``FORMULA``), ``number`` or ``numbers``;
* cards as labels or numbers (``['A', '3', 'K', '6']``, ``[2, 5, 7, 9]``, ``"T"``, ``"10"``),
  normalized with :func:`~openvirl.envs.points.cards.normalize_card_label`;
* the formula in double or single quotes, or bare (``formula: 4*3+2+10=24``).

It never raises. Whatever is missing or malformed is described in ``error`` (and per field
in ``problems``), phrased as feedback the model can act on.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from openvirl.envs.points.cards import normalize_card_label

MAX_TEXT_CHARS = 200_000
"""Longer texts are cut to their last ``MAX_TEXT_CHARS`` characters (the answer is at the end)."""
EXPECTED_FORMAT = (
    '{"cards": [x, y, z, w], "number": [a, b, c, d], '
    '"formula": "<equation using each card value once>"}'
)

_FIELD_KEYS = {
    "cards": ("cards", "card"),
    "numbers": ("number", "numbers", "values"),
    "formula": ("formula", "equation", "expression"),
}
_KEY_TO_FIELD = {key: name for name, keys in _FIELD_KEYS.items() for key in keys}
_KEY_RE = re.compile(
    r"""["'`]?\b(cards?|numbers?|values|formula|equation|expression)\b["'`]?\s*[:=]\s*""",
    re.IGNORECASE,
)
_FENCE_RE = re.compile(r"```[A-Za-z0-9_+-]*[ \t]*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")
_QUOTE_PAIRS = {'"': '"', "'": "'", "“": "”", "‘": "’", "`": "`"}
_ITEM_STRIP = " \t\r\n'\"`“”‘’"
_NUMBER_RE = re.compile(r"[+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?")
_NULLS = frozenset(("null", "none", "nil", "undefined"))


@dataclass
class ParsedAnswer:
    """The fields read from one answer.

    Parameters
    ----------
    cards
        Normalized card labels (``"A"``, ``"2"``..``"10"``, ``"J"``, ``"Q"``, ``"K"``); an item
        that is no card is kept as written (at most 20 characters) so it can never match a
        real label. None when absent.
    numbers
        The ``number`` list as integers; None when absent or not all integers.
    formula
        The formula string as written (stripped); None when absent or not a string.
    error
        What is missing or malformed and the expected format, or None when all three fields
        were read.
    raw
        The text that was parsed.
    problems
        The same problems keyed by field (``"cards"``, ``"numbers"``, ``"formula"``).
    """

    cards: list[str] | None
    numbers: list[int] | None
    formula: str | None
    error: str | None
    raw: str
    problems: dict[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------- blocks
def _brace_spans(text: str) -> list[tuple[int, int]]:
    """Top-level ``{...}`` spans; an unclosed final ``{`` runs to the end of the text."""
    spans = []
    depth = 0
    start = 0
    for m in re.finditer(r"[{}]", text):
        if m.group() == "{":
            if depth == 0:
                start = m.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                spans.append((start, m.end()))
    if depth:
        spans.append((start, len(text)))
    return spans


def _answer_block(text: str) -> str:
    """The last brace block (else fenced block, else the whole text) that names a field."""
    for start, end in reversed(_brace_spans(text)):
        block = text[start:end]
        if _KEY_RE.search(block):
            return block
    for m in reversed(list(_FENCE_RE.finditer(text))):
        if _KEY_RE.search(m.group(1)):
            return m.group(1)
    return text


def _json_fields(block: str) -> dict[str, Any] | None:
    """Fields from a block that is JSON (possibly with trailing commas), else None."""
    stripped = block.strip()
    if not stripped.startswith("{"):
        return None
    for candidate in (stripped, _TRAILING_COMMA_RE.sub(r"\1", stripped)):
        try:
            obj = json.loads(candidate)
        except (ValueError, RecursionError):
            continue
        return _dict_fields(obj)
    return None


def _dict_fields(obj: object, depth: int = 0) -> dict[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    fields: dict[str, Any] = {}
    for key, value in obj.items():
        name = _KEY_TO_FIELD.get(str(key).strip().lower())
        if name is not None and name not in fields:
            fields[name] = value
    if not fields and depth < 3:
        # {"answer": {"cards": ...}}: look one level down.
        for value in obj.values():
            inner = _dict_fields(value, depth + 1)
            if inner:
                return inner
    return fields


class _Bare(str):
    """An unquoted value as written (number, null, bare formula)."""


class _ListText(str):
    """The inside of a ``[...]`` as written."""


def _read_value(text: str, pos: int, stops: str = ",\n}", opens: str = "[(") -> object:
    """Read one value starting at ``pos``: a quoted string, a list's inside, or bare text.

    Bare text runs to the first character of ``stops`` (list fields pass ``"\n}"`` so that
    ``cards: A, 3, K, 6`` reads as one list); a list starts with a character of ``opens``
    (the formula passes only ``"["``: ``(10-6)*...`` is a formula, not a tuple).
    """
    if pos >= len(text):
        return _Bare("")
    first = text[pos]
    if first in opens:
        close = "]" if first == "[" else ")"
        end = text.find(close, pos + 1)
        if end < 0:
            newline = text.find("\n", pos + 1)
            end = newline if newline >= 0 else len(text)
        return _ListText(text[pos + 1 : end])
    if first in _QUOTE_PAIRS:
        quote = _QUOTE_PAIRS[first]
        chars: list[str] = []
        i = pos + 1
        while i < len(text):
            ch = text[i]
            if ch == "\\" and i + 1 < len(text):
                chars.append(text[i + 1])
                i += 2
                continue
            if ch == quote:
                if first == '"':
                    # JSON escapes (\u00f7, \n) decode exactly as json would.
                    try:
                        return str(json.loads(text[pos : i + 1]))
                    except ValueError:
                        pass
                return "".join(chars)
            if ch == "\n":
                break
            chars.append(ch)
            i += 1
        return "".join(chars)
    end = pos
    while end < len(text) and text[end] not in stops:
        end += 1
    return _Bare(text[pos:end].strip())


def _regex_fields(block: str) -> dict[str, Any]:
    """Fields read key by key (the last occurrence of each wins)."""
    fields: dict[str, Any] = {}
    for m in _KEY_RE.finditer(block):
        name = _KEY_TO_FIELD[m.group(1).lower()]
        if name == "formula":
            fields[name] = _read_value(block, m.end(), ",\n}", "[")
        else:
            fields[name] = _read_value(block, m.end(), "\n}", "[(")
    return fields


# --------------------------------------------------------------------------- fields
def _items(value: object) -> list[object] | None:
    """A list value as items: JSON lists as-is, list text split on commas or spaces."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str):
        inner = value.strip().strip("[]()")
        sep = "," if "," in inner else None
        parts = [p.strip(_ITEM_STRIP) for p in inner.split(sep)]
        return [p for p in parts if p]
    return None


def _kind(value: object) -> str:
    if value is None or (isinstance(value, _Bare) and value.lower() in _NULLS):
        return "null"
    if isinstance(value, _Bare):
        return f"a number ({value})" if _NUMBER_RE.fullmatch(value) else "unquoted text"
    if isinstance(value, (_ListText, list, tuple)):
        return "a list"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value})"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _cards(value: object) -> tuple[list[str] | None, str | None]:
    items = _items(value)
    if items is None:
        return None, f'"cards" must be a list such as ["A", "3", "K", "6"], not {_kind(value)}'
    if not items:
        return None, '"cards" is empty; list the cards such as ["A", "3", "K", "6"]'
    labels: list[str] = []
    unread: list[str] = []
    for item in items:
        label = normalize_card_label(item)
        if label is None:
            shown = str(item)[:20]
            unread.append(shown)
            labels.append(shown)
        else:
            labels.append(label)
    if unread:
        shown = ", ".join(repr(u) for u in unread[:10])
        return labels, f"could not read the cards {shown}; write cards as A, 2-10, J, Q or K"
    return labels, None


def _numbers(value: object) -> tuple[list[int] | None, str | None]:
    items = _items(value)
    if items is None:
        return None, f'"number" must be a list of integers, not {_kind(value)}'
    out: list[int] = []
    bad: list[str] = []
    for item in items:
        if isinstance(item, bool):
            bad.append(str(item))
        elif isinstance(item, int):
            out.append(item)
        elif isinstance(item, float) and item.is_integer() and abs(item) < 1e15:
            out.append(int(item))
        elif isinstance(item, str) and re.fullmatch(r"[+-]?[0-9]{1,12}", item.strip()):
            out.append(int(item.strip()))
        else:
            bad.append(str(item)[:20])
    if bad:
        shown = ", ".join(repr(b) for b in bad[:10])
        return None, f'"number" must list integers (the card values), could not read {shown}'
    if not out:
        return None, '"number" is empty; list the card values such as [1, 3, 10, 6]'
    return out, None


def _formula(value: object) -> tuple[str | None, str | None]:
    if isinstance(value, _Bare):
        text = value.strip()
        if not text or text.lower() in _NULLS or _NUMBER_RE.fullmatch(text):
            return None, f'"formula" must be a string in quotes, not {_kind(_Bare(text))}'
        return text, None
    if isinstance(value, _ListText) or not isinstance(value, str):
        return None, f'"formula" must be a string such as "4*3+2+10=24", not {_kind(value)}'
    text = value.strip()
    if not text:
        return None, '"formula" is empty'
    return text, None


def parse_answer(text: object) -> ParsedAnswer:
    """Read cards, numbers and formula from a model's answer; never raises.

    Parameters
    ----------
    text
        The model's whole response (any object: bytes are decoded as UTF-8, a dict is read
        as an already-parsed block, anything else is an empty answer).

    Returns
    -------
    ParsedAnswer
        The fields found, with ``error`` describing what is missing (None when all three
        fields were read).
    """
    if isinstance(text, dict):
        raw = _safe_repr(text)
        found = _dict_fields(text) or {}
    else:
        if isinstance(text, (bytes, bytearray)):
            raw = bytes(text[-MAX_TEXT_CHARS * 4 :]).decode("utf-8", errors="replace")
        elif isinstance(text, str):
            raw = text
        else:
            raw = ""
        body = raw[-MAX_TEXT_CHARS:]
        if not body.strip():
            return ParsedAnswer(
                None,
                None,
                None,
                f"the answer is empty; reply with {EXPECTED_FORMAT}.",
                raw,
                {"formula": "the answer is empty"},
            )
        block = _answer_block(body)
        json_found = _json_fields(block)
        found = json_found if json_found else _regex_fields(block)

    problems: dict[str, str] = {}
    formula = cards = numbers = None
    if "formula" in found:
        formula, problem = _formula(found["formula"])
        if problem:
            problems["formula"] = problem
    else:
        problems["formula"] = 'no "formula" field was found'
    if "cards" in found:
        cards, problem = _cards(found["cards"])
        if problem:
            problems["cards"] = problem
    else:
        problems["cards"] = 'no "cards" field was found'
    if "numbers" in found:
        numbers, problem = _numbers(found["numbers"])
        if problem:
            problems["numbers"] = problem
    else:
        problems["numbers"] = 'no "number" field was found'
    error = None
    if problems:
        error = "; ".join(problems.values()) + f". Expected format: {EXPECTED_FORMAT}"
    return ParsedAnswer(cards, numbers, formula, error, raw, problems)


def _safe_repr(obj: object) -> str:
    try:
        return json.dumps(obj, default=str)[:MAX_TEXT_CHARS]
    except (ValueError, TypeError, RecursionError):
        return ""
