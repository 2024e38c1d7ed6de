"""Navigation actions: the two action spaces, a tolerant answer parser, outcomes and rewards.

The verifier compares one canonical action string with the rail's ground truth (spec §3.5),
so everything here turns free model text into exactly one of ``forward()``,
``turn_direction(<word>)`` or ``stop()``, or says why it could not. Rewards live in one table
keyed by a named outcome (DESIGN.md), never as loose numbers in the environment.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import Enum

from openvirl.world.geometry import COMPASS_WORDS, RELATIVE_TURN_WORDS

ACTION_SPACES = ("absolute", "relative")
"""``absolute``: 8 compass words (the training rule); ``relative``: 4 turn words (rule OOD)."""

FORWARD = "forward()"
STOP = "stop()"


def turn(word: str) -> str:
    """The canonical turn action for a direction word, e.g. ``turn_direction(north)``."""
    return f"turn_direction({word})"


def valid_actions(space: str) -> tuple[str, ...]:
    """Every canonical action of an action space, forward first and stop last.

    Raises
    ------
    ValueError
        If `space` is not ``"absolute"`` or ``"relative"``.
    """
    if space == "absolute":
        words: tuple[str, ...] = COMPASS_WORDS
    elif space == "relative":
        words = RELATIVE_TURN_WORDS
    else:
        raise ValueError(f"`actions` must be one of {ACTION_SPACES}, got {space!r}.")
    return (FORWARD, *(turn(w) for w in words), STOP)


def action_space_text(space: str) -> str:
    """The three-line action-space block of the prompt (spec §3.5, our wording)."""
    if space == "absolute":
        words = ", ".join(f"'{w}'" for w in COMPASS_WORDS)
        what = f"x is one of the 8 compass directions [{words}]"
    else:
        words = ", ".join(f"'{w}'" for w in RELATIVE_TURN_WORDS)
        what = f"x is one of the turns [{words}], relative to the way you face now"
    valid_actions(space)  # validates `space`
    return (
        '"forward()": move forward one step along the street\n'
        f'"turn_direction(x)": turn to face direction x and move on; {what}\n'
        '"stop()": you have reached the destination; the navigation ends'
    )


class Outcome(str, Enum):
    """What one verified answer amounted to (DESIGN.md names)."""

    CORRECT = "correct"
    WRONG_ACTION = "wrong_action"
    WRONG_OBSERVATION = "wrong_observation"
    ATTEMPTS_EXHAUSTED = "attempts_exhausted"


REWARDS: dict[Outcome, float] = {
    Outcome.CORRECT: 1.0,
    Outcome.WRONG_ACTION: -1.0,
    Outcome.WRONG_OBSERVATION: -1.5,
    Outcome.ATTEMPTS_EXHAUSTED: -1.0,
}
"""Reward of each outcome (spec §3.6). ``attempts_exhausted`` is added to the reward of the
last failed attempt at a position, which also ends the episode (the reference instead spent
an extra, never-verified generation on a −1 "Exceed maximum verify steps")."""

OUTPUT_FORMAT = (
    '{"current observation": "your latest observation", '
    '"current instruction": "the instruction sentence to execute now", '
    '"action": "one action from the action space"}'
)
"""The answer shape, repeated in feedback messages; plain text, so braces are single (the
reference's messages kept literal doubled braces, spec §10.6)."""

_RETRY = " Try again, answering in the same format:\n" + OUTPUT_FORMAT

FEEDBACK = {
    "correct": "Correct action.",
    "wrong_action": "you took an incorrect action. Avoid this action." + _RETRY,
    "not_at_intersection": (
        "you are not at any intersection, but your observation says you are; look again "
        "and avoid this action." + _RETRY
    ),
    "missed_intersection": (
        "you are at an intersection, but your observation does not say so; look again "
        "and avoid this action." + _RETRY
    ),
    "no_action": "your answer has no action I could read ({problem})." + _RETRY,
    "outside_space": (
        "{action} is not in the action space of this task; choose forward(), stop() or "
        "turn_direction(x) with x from the action space." + _RETRY
    ),
}
"""Verifier messages; the environment prefixes them with "You failed this trial because "."""


# ---------------------------------------------------------------------------- parsing
_ABBREVIATIONS = {
    "n": "north",
    "ne": "northeast",
    "e": "east",
    "se": "southeast",
    "s": "south",
    "sw": "southwest",
    "w": "west",
    "nw": "northwest",
}
_FIELD_NAMES = {
    "action": ("action",),
    "observation": ("current observation", "current_observation", "observation"),
    "instruction": ("current instruction", "current_instruction", "instruction"),
}
_MAX_TEXT = 20_000
"""Only this many characters of an answer are parsed (a reply is a few hundred)."""


@dataclass(frozen=True)
class ParsedAnswer:
    """The fields read from a model's answer.

    Attributes
    ----------
    action
        The canonical action (``forward()``, ``turn_direction(w)``, ``stop()``), or None.
    observation, instruction
        The stated ``current observation`` and ``current instruction``, or None.
    error
        Why no action could be read, or None.
    """

    action: str | None
    observation: str | None
    instruction: str | None
    error: str | None = None


def normalize_direction(word: str) -> str | None:
    """A direction word in canonical form (``north-east`` → ``northeast``), or None."""
    w = re.sub(r"[\s_\-]+", " ", word.strip().strip("'\"`").lower()).strip()
    if w in _ABBREVIATIONS:
        return _ABBREVIATIONS[w]
    compact = w.replace(" ", "")
    if compact in COMPASS_WORDS:
        return compact
    if w in RELATIVE_TURN_WORDS:
        return w
    if w in ("slight left", "slightly to the left", "a little left", "left slightly"):
        return "slightly left"
    if w in ("slight right", "slightly to the right", "a little right", "right slightly"):
        return "slightly right"
    if w in ("turn left", "to the left"):
        return "left"
    if w in ("turn right", "to the right"):
        return "right"
    return None


def normalize_action(text: str) -> str | None:
    """One action text in canonical form, or None if it is not an action.

    Accepts the canonical strings and harmless variants: any case, spaces, quotes,
    backticks, a missing ``()``, ``turn_direction('north-east')``, ``turn_direction: left``,
    ``turn left``, ``NE`` or a bare direction word.
    """
    t = text.strip().strip("'\"` .,;").strip()
    low = re.sub(r"\s+", " ", t.lower())
    if re.fullmatch(r"(move )?forwards?( ?\( ?\))?( one step)?", low):
        return FORWARD
    if re.fullmatch(r"stop( ?\( ?\))?", low):
        return STOP
    m = re.fullmatch(r"turn[ _]?direction ?(?:\((.*)\)|[:=] ?(.*))", low)
    if m:
        word = normalize_direction(m.group(1) if m.group(1) is not None else m.group(2))
        return turn(word) if word else None
    m = re.fullmatch(r"(?:turn|face|go|head)(?: to| towards?)?(?: the)? (.+)", low)
    if m:
        word = normalize_direction(m.group(1))
        return turn(word) if word else None
    word = normalize_direction(low)
    return turn(word) if word else None


def _json_object(text: str) -> dict | None:
    """The first JSON-ish object in `text`, tolerating fences and trailing commas."""
    start = text.find("{")
    end = text.rfind("}")
    if start < 0 or end <= start:
        return None
    body = text[start : end + 1]
    body = re.sub(r",\s*}", "}", body)
    try:
        value = json.loads(body)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _regex_field(text: str, names: tuple[str, ...]) -> str | None:
    for name in names:
        value_pattern = r"""\s*[:=]\s*(?:"([^"\n]*)"|'([^'\n]*)'|([^,\n}]*))"""
        pattern = r"""["']?""" + re.escape(name) + r"""["']?""" + value_pattern
        m = re.search(pattern, text, flags=re.IGNORECASE)
        if m:
            value = next(g for g in m.groups() if g is not None)
            return value.strip()
    return None


def parse_answer(text: str) -> ParsedAnswer:
    """Read the observation, instruction and action of a model's answer.

    The answer should be ``{"current observation": ..., "current instruction": ...,
    "action": ...}``. The parser tries JSON first (after dropping code fences and trailing
    commas, which made the reference's JSON path always fail), then field-by-field patterns,
    then, when there is no ``action`` field at all, an answer that is only an action. Nothing
    is evaluated, and any input gets a result.

    Parameters
    ----------
    text
        The model's whole reply.

    Returns
    -------
    ParsedAnswer
        The canonical action or the reason it is missing, plus the two stated fields.
    """
    if not isinstance(text, str):
        return ParsedAnswer(None, None, None, "the answer is not text")
    text = text[:_MAX_TEXT]
    fields: dict[str, str | None] = {}
    obj = _json_object(text)
    if obj is not None:
        lowered = {str(k).strip().lower(): v for k, v in obj.items()}
        for key, names in _FIELD_NAMES.items():
            value = next((lowered[n] for n in names if n in lowered), None)
            fields[key] = None if value is None else str(value)
    for key, names in _FIELD_NAMES.items():
        if fields.get(key) is None:
            fields[key] = _regex_field(text, names)
    observation, instruction = fields["observation"], fields["instruction"]
    raw = fields["action"]
    if raw is None:
        bare = normalize_action(text)
        if bare is not None:
            return ParsedAnswer(bare, observation, instruction)
        return ParsedAnswer(None, observation, instruction, 'no "action" field was found')
    action = normalize_action(raw)
    if action is None:
        shown = raw if len(raw) <= 60 else raw[:57] + "..."
        return ParsedAnswer(None, observation, instruction, f"{shown!r} is not an action")
    return ParsedAnswer(action, observation, instruction)


_NEGATED_INTERSECTION = re.compile(
    r"\b(no|not at an?|not at any|not near an?|without an?|don't see an?|do not see an?)"
    r"\s+(\w+\s+)?intersections?\b"
)


def claims_intersection(observation: str | None) -> bool:
    """Whether a stated observation says the agent is at an intersection.

    "I observe an intersection" counts; "no intersection" or "not at any intersection" do not.
    """
    if not observation:
        return False
    low = observation.lower()
    if "intersection" not in low:
        return False
    stripped = _NEGATED_INTERSECTION.sub(" ", low)
    return "intersection" in stripped


__all__ = [
    "ACTION_SPACES",
    "FEEDBACK",
    "FORWARD",
    "OUTPUT_FORMAT",
    "REWARDS",
    "STOP",
    "Outcome",
    "ParsedAnswer",
    "action_space_text",
    "claims_intersection",
    "normalize_action",
    "normalize_direction",
    "parse_answer",
    "turn",
    "valid_actions",
]
