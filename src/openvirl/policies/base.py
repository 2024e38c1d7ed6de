"""The one small protocol every policy implements: a batch of requests in, a batch of texts out.

A request carries the conversation so far as chat messages (what a model sees) and the
environment's `info` dict (what only privileged policies such as the oracle may read).
Models never see `info`; the oracle never needs the messages.

A request is ``{"messages": [...], "info": {...}}``; `act` also takes a bare conversation (a
list of messages, as the README shows) and message content given as a plain string, which
`as_request` turns into that form.

Messages follow the Hugging Face chat format, with content always a list of parts::

    {"role": "user", "content": [{"type": "image", "image": <PIL.Image>},
                                 {"type": "text", "text": "..."}]}
    {"role": "assistant", "content": [{"type": "text", "text": "..."}]}
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict, runtime_checkable


class PolicyError(RuntimeError):
    """A policy could not answer (server down after retries, stdin closed, ...).

    Raised instead of returning made-up answers, so an evaluation can stop cleanly and keep the
    episodes it has already finished. The message names what failed and what was tried.
    """


@dataclass
class Usage:
    """Token counts of model calls, for compute accounting (spec §5.7).

    Model-backed policies keep two: `last_usage` (the latest `act` call) and `total_usage`
    (cumulative since construction). Policies without a model (oracle, random, human) have none.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    calls: int = 0

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        """Accumulate `other` into this counter in place."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.requests += other.requests
        self.calls += other.calls


class ContentPart(TypedDict, total=False):
    """One message part: `{"type": "text", "text": str}` or `{"type": "image", "image": PIL}`."""

    type: str
    text: str
    image: Any


class Message(TypedDict):
    """A chat message whose content is a list of parts (images first where a turn has one)."""

    role: str
    content: list[ContentPart]


class Request(TypedDict, total=False):
    """What a policy is asked: the conversation so far and the env's `info` (privileged).

    `seed`, when present, is the seed of this one answer (`answer_seed` of the episode's seed
    and the attempt): a sampling policy draws from it instead of from its own running stream,
    so an answer does not depend on what was asked before it, and a resumed evaluation gives
    exactly the answers of an uninterrupted one.
    """

    messages: list[Message]
    info: dict[str, Any]
    seed: int


def mix_seed(*parts: int) -> int:
    """A well-spread seed in [0, 2**63) from integers (any sign or size), stable everywhere."""
    text = ":".join(str(int(p)) for p in parts).encode("ascii")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1


def answer_seed(episode_seed: int, attempt: int) -> int:
    """The seed of answer `attempt` (0-based) of the episode reset with `episode_seed`."""
    return mix_seed(episode_seed, attempt)


@runtime_checkable
class Policy(Protocol):
    """Anything that answers a batch of requests with one text each, in order."""

    name: str

    def act(self, requests: Sequence[Request]) -> list[str]:
        """Return one answer text per request."""
        ...


def text_message(role: str, text: str, image: Any | None = None) -> Message:
    """Build a message with an optional leading image part."""
    content: list[ContentPart] = []
    if image is not None:
        content.append({"type": "image", "image": image})
    content.append({"type": "text", "text": text})
    return {"role": role, "content": content}


def message_text(message: Message) -> str:
    """The concatenated text parts of a message (images dropped)."""
    parts = message["content"]
    return "".join(part.get("text", "") for part in parts if part.get("type") == "text")


def message_images(message: Message) -> list[Any]:
    """The images of a message, in order."""
    return [part["image"] for part in message["content"] if part.get("type") == "image"]


def as_message(message: Any) -> Message:
    """A chat message with list-of-parts content (a plain string content becomes one text part).

    Raises
    ------
    ValueError
        Not a ``{"role", "content"}`` mapping.
    """
    if not isinstance(message, dict) or "role" not in message or "content" not in message:
        raise ValueError(
            f"a message must be a dict with `role` and `content`, got {type(message).__name__}: "
            f"{str(message)[:80]!r}."
        )
    content = message["content"]
    if isinstance(content, str):
        return {"role": str(message["role"]), "content": [{"type": "text", "text": content}]}
    if not isinstance(content, list):
        raise ValueError(
            f"message content must be a string or a list of parts, got {type(content).__name__}."
        )
    return {"role": str(message["role"]), "content": content}


def as_request(item: Any) -> Request:
    """One request from what a caller passed to `act`.

    Accepts a `Request` (``{"messages": [...], "info": {...}}``), a bare conversation (a list
    of messages) or a single message; string contents become text parts.

    Example
    -------
    >>> as_request([{"role": "user", "content": "Cards: 3 3 8 8."}])["messages"][0]["content"]
    [{'type': 'text', 'text': 'Cards: 3 3 8 8.'}]

    Raises
    ------
    ValueError
        Anything else, with what was received.
    """
    extra: dict[str, Any] = {}  # a request's other fields (its answer `seed`, a raw `prompt`)
    if isinstance(item, dict) and "messages" in item:
        messages = item["messages"]
        info = item.get("info") or {}
        extra = {k: v for k, v in item.items() if k not in ("messages", "info")}
    elif isinstance(item, dict) and isinstance(item.get("prompt"), str):
        # A raw completion prompt (the model server's /v1/completions): no conversation.
        messages, info = [], item.get("info") or {}
        extra = {k: v for k, v in item.items() if k not in ("messages", "info")}
    elif isinstance(item, dict) and "role" in item:
        messages, info = [item], {}
    elif isinstance(item, (list, tuple)):
        messages, info = item, {}
    else:
        raise ValueError(
            "each request must be {'messages': [...], 'info': {...}} or a conversation "
            f"(a list of {{'role', 'content'}} messages); got {type(item).__name__}."
        )
    if not isinstance(messages, (list, tuple)):
        raise ValueError(f"`messages` must be a list of messages, got {type(messages).__name__}.")
    messages = [as_message(m) for m in messages]
    return {**extra, "messages": messages, "info": dict(info)}  # type: ignore[typeddict-item]


def as_requests(items: Any) -> list[Request]:
    """`as_request` over a batch; a single request or conversation is not a batch.

    Raises
    ------
    ValueError
        `items` is not a list (or tuple) of requests or conversations.
    """
    if isinstance(items, dict):
        raise ValueError(
            "`act` takes a batch: a list of requests or conversations, e.g. "
            "act([[{'role': 'user', 'content': '...'}]])."
        )
    if not isinstance(items, (list, tuple)):
        raise ValueError(f"`act` takes a list of requests, got {type(items).__name__}.")
    return [as_request(item) for item in items]
