"""The agents' one LLM step: send a prompt to a policy, read a JSON reply tolerantly, fall back.

Every agent asks its policy through `ask_json`: one prompt becomes one `Request` (a user turn,
with an optional image), a batch of prompts is one `policy.act` call, and each reply is parsed
by `parse_json_reply` (code fences, prose around the JSON, single quotes and trailing commas
tolerated; never `eval`). A reply that cannot be read, or that the caller's `check` rejects,
gives ``None`` for that item: the agent then uses its deterministic baseline for it, and the
`LLMLog` records the fallback, so a run says how often the model was actually followed. Every
place a result is shown says so too: the report's header (`fallback_notice`), the terminal,
``metrics.json`` (``llm/fallbacks``, ``llm/answered_by``) and the viewer.

Strict mode (``--strict`` on the command line, `strict_answers` in Python) turns the first
unusable answer into a `ModelAnswerError` instead of a fallback, so a result is either the
model's or no result at all.

Each request's privileged ``info`` carries the baseline's own answer as ``expert_answer`` (and
as the only ``valid_actions`` entry), so ``oracle`` and ``random`` policies reproduce the
baseline through the LLM path: useful for testing the plumbing without a model.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from openvirl.policies.base import Policy, Request, text_message

MAX_LOGGED_CHARS = 4000
"""Prompts and replies longer than this are cut in the log (the result JSON stays small)."""

_STRICT: contextvars.ContextVar[bool] = contextvars.ContextVar("openvirl_strict", default=False)


class ModelAnswerError(ValueError):
    """Strict mode: the policy's answer could not be used, and no baseline may stand in."""


@contextlib.contextmanager
def strict_answers(enabled: bool = True) -> Iterator[None]:
    """Within this block, an unusable model answer raises `ModelAnswerError` (no fallback).

    Example
    -------
    >>> from openvirl.policies.registry import make_policy
    >>> with strict_answers():                                       # doctest: +SKIP
    ...     PlaceRecommender(config, make_policy("hf:gemma-3-270m")).run()
    Traceback (most recent call last):
    ModelAnswerError: policy 'gemma-3-270m' gave no usable answer for `category` ...
    """
    token = _STRICT.set(bool(enabled))
    try:
        yield
    finally:
        _STRICT.reset(token)


def is_strict() -> bool:
    """Whether unusable answers raise (inside `strict_answers`) rather than fall back."""
    return _STRICT.get()


_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


@dataclass
class LLMCall:
    """One prompt sent to the policy and what came of it.

    Attributes
    ----------
    step
        What the agent was deciding ("category", "rating", "branch", ...).
    prompt
        The prompt text (cut at `MAX_LOGGED_CHARS`).
    reply
        The policy's reply (cut likewise).
    ok
        True when the reply was read and accepted; False when the baseline was used.
    error
        Why the reply was not used ("" when `ok`).
    """

    step: str
    prompt: str
    reply: str
    ok: bool
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {
            "step": self.step,
            "prompt": self.prompt,
            "reply": self.reply,
            "ok": self.ok,
            "error": self.error,
        }


@dataclass
class LLMLog:
    """Every LLM call of one agent run, in order."""

    calls: list[LLMCall] = field(default_factory=list)

    @property
    def n_calls(self) -> int:
        """Prompts sent."""
        return len(self.calls)

    @property
    def n_fallbacks(self) -> int:
        """Replies that could not be used (the baseline answered instead)."""
        return sum(not c.ok for c in self.calls)

    def summary(self) -> dict[str, Any]:
        """Counts for `metrics.json`: calls, fallbacks, their share and who answered.

        ``llm/answered_by`` is ``"model"`` (every answer used), ``"baseline"`` (none used,
        or no model asked), or ``"model and baseline"``.
        """
        n = self.n_calls
        return {
            "llm/calls": n,
            "llm/model_answers": n - self.n_fallbacks,
            "llm/fallbacks": self.n_fallbacks,
            "llm/fallback_rate": (self.n_fallbacks / n) if n else 0.0,
            "llm/answered_by": answered_by(n, self.n_fallbacks),
        }

    def to_list(self) -> list[dict[str, Any]]:
        """JSON-able list of the calls."""
        return [c.to_dict() for c in self.calls]


def answered_by(calls: int, fallbacks: int) -> str:
    """Who produced an agent's answers: "model", "baseline" or "model and baseline"."""
    if calls == 0 or fallbacks >= calls:
        return "baseline"
    return "model" if fallbacks == 0 else "model and baseline"


def fallback_notice(metrics: Any, policy: str) -> str:
    """One sentence saying how many of `policy`'s answers were replaced by the baseline;
    "" when every answer was the model's (or no model was asked).

    Examples
    --------
    >>> fallback_notice({"llm/calls": 16, "llm/fallbacks": 16}, "gemma-3-270m")[:60]
    'None of the 16 answers of gemma-3-270m could be used: every '
    """
    calls = int(metrics.get("llm/calls") or 0)
    fallbacks = int(metrics.get("llm/fallbacks") or 0)
    if calls == 0 or fallbacks == 0:
        return ""
    if fallbacks >= calls:
        return (
            f"None of the {calls} answers of {policy} could be used: every result here is the "
            f"deterministic baseline's, not {policy}'s (see llm/* in metrics.json; --strict "
            "makes this an error)."
        )
    return (
        f"{fallbacks} of the {calls} answers of {policy} could not be used; the deterministic "
        "baseline answered those (rows marked 'baseline'; --strict makes this an error)."
    )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LOGGED_CHARS else text[:MAX_LOGGED_CHARS] + " …"


def parse_json_reply(text: str) -> Any:
    """Read the first JSON object or list in a model's reply, tolerantly; never evaluates it.

    Tried in order: the whole text; the inside of a ```json fence; every ``{`` or ``[`` from the
    left, decoding one JSON value from there (so prose before and after is ignored, and nested
    objects are kept whole, unlike V-IRL's cut at the first ``}``). Each candidate is also tried
    with trailing commas removed and, when it has no double quote, with single quotes as
    double quotes.

    Examples
    --------
    >>> parse_json_reply('Sure! ```json\\n{"rating": 8, "reason": "spicy"}\\n``` Enjoy.')
    {'rating': 8, 'reason': 'spicy'}
    >>> parse_json_reply("{'choice': 2,}")
    {'choice': 2}

    Parameters
    ----------
    text
        The reply.

    Returns
    -------
    Any
        The decoded dict or list.

    Raises
    ------
    ValueError
        No JSON object or list could be read.
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty reply")
    candidates = [text.strip()]
    candidates += [m.group(1).strip() for m in _FENCE.finditer(text)]
    for candidate in candidates:
        for variant in _variants(candidate):
            try:
                value = json.loads(variant)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(value, (dict, list)):
                return value
    decoder = json.JSONDecoder()
    for variant in _variants(text):
        for i, ch in enumerate(variant):
            if ch not in "{[":
                continue
            try:
                value, _ = decoder.raw_decode(variant, i)
            except (json.JSONDecodeError, RecursionError):
                continue
            if isinstance(value, (dict, list)):
                return value
    raise ValueError("no JSON object or list in the reply")


def _variants(text: str) -> list[str]:
    out = [text]
    fixed = _TRAILING_COMMA.sub(r"\1", text)
    if fixed != text:
        out.append(fixed)
    if '"' not in text and "'" in text:
        out.append(_TRAILING_COMMA.sub(r"\1", text.replace("'", '"')))
    return out


def ask_json(
    policy: Policy,
    prompts: Sequence[str],
    *,
    step: str,
    experts: Sequence[Any],
    check: Callable[[Any], Any] | None = None,
    images: Sequence[Any] | None = None,
    log: LLMLog | None = None,
    task: str = "agent",
) -> list[Any | None]:
    """Ask the policy one JSON question per prompt (one batched `act` call); None = fall back.

    Examples
    --------
    >>> from openvirl.policies.registry import make_policy
    >>> ask_json(make_policy("oracle"), ["Rate this cafe as JSON."], step="rating",
    ...          experts=[{"rating": 7, "reason": "close by"}])
    [{'rating': 7, 'reason': 'close by'}]

    Parameters
    ----------
    policy
        Any `Policy`.
    prompts
        The prompt texts, one request each.
    step
        What is being decided, for the log.
    experts
        The baseline's answer to each prompt (JSON-able); sent as the privileged
        ``info["expert_answer"]`` so oracle policies can answer. Same length as `prompts`.
    check
        Turns a parsed reply into the value the agent uses, raising `ValueError`, `KeyError`
        or `TypeError` when it is unusable (a rating outside 0..10, an index out of range).
        Default: the parsed JSON as is.
    images
        An image (PIL) per prompt, or None entries; sent before the text.
    log
        Where to record each call.
    task
        ``info["task"]`` of the requests.

    Returns
    -------
    list
        One value per prompt: what `check` returned, or None when the reply was unusable.

    Raises
    ------
    ModelAnswerError
        In strict mode (`strict_answers`), for the first unusable reply.
    """
    if len(experts) != len(prompts):
        raise ValueError("`experts` must hold one baseline answer per prompt.")
    if images is not None and len(images) != len(prompts):
        raise ValueError("`images` must hold one image (or None) per prompt.")
    if not prompts:
        return []
    requests: list[Request] = []
    for i, prompt in enumerate(prompts):
        expert = json.dumps(experts[i], ensure_ascii=False)
        image = images[i] if images is not None else None
        requests.append(
            {
                "messages": [text_message("user", prompt, image)],
                "info": {
                    "task": task,
                    "step": step,
                    "expert_answer": expert,
                    "valid_actions": [expert],
                },
            }
        )
    replies = policy.act(requests)
    if len(replies) != len(prompts):
        raise RuntimeError(
            f"policy {getattr(policy, 'name', policy)!r} returned {len(replies)} replies to "
            f"{len(prompts)} requests."
        )
    out: list[Any | None] = []
    for prompt, reply in zip(prompts, replies, strict=True):
        reply_text = reply if isinstance(reply, str) else str(reply)
        value: Any | None = None
        error = ""
        try:
            parsed = parse_json_reply(reply_text)
            value = check(parsed) if check is not None else parsed
        except (ValueError, KeyError, TypeError, IndexError) as err:
            value, error = None, f"{type(err).__name__}: {err}"
        if log is not None:
            log.calls.append(
                LLMCall(step, _clip(prompt), _clip(reply_text), value is not None, error)
            )
        if value is None and is_strict():
            name = getattr(policy, "name", type(policy).__name__)
            raise ModelAnswerError(
                f"policy {name!r} gave no usable answer for `{step}` ({error}); its reply began "
                f"{reply_text[:120]!r}. Strict mode stops here instead of using the baseline."
            )
        out.append(value)
    return out


def rating_check(parsed: Any) -> dict[str, Any]:
    """Accept ``{"rating": 0..10, "reason": str}`` (rating as number or numeric text).

    Raises
    ------
    ValueError
        Missing or out-of-range rating.
    """
    if not isinstance(parsed, dict):
        raise TypeError("expected a JSON object with `rating` and `reason`")
    raw = parsed.get("rating", parsed.get("score"))
    if isinstance(raw, str):
        m = re.search(r"-?\d+(?:\.\d+)?", raw)
        raw = float(m.group(0)) if m else None
    if isinstance(raw, bool) or not isinstance(raw, (int, float)):
        raise ValueError("`rating` must be a number from 0 to 10")
    rating = float(raw)
    if not 0.0 <= rating <= 10.0:
        raise ValueError(f"`rating` {rating} is outside 0..10")
    reason = parsed.get("reason") or parsed.get("explanation") or ""
    return {"rating": rating, "reason": str(reason)}


__all__ = [
    "LLMCall",
    "LLMLog",
    "ModelAnswerError",
    "answered_by",
    "ask_json",
    "fallback_notice",
    "is_strict",
    "parse_json_reply",
    "rating_check",
    "strict_answers",
]
