"""The OpenAI wire format of `openvirl serve-model`: request checks and response shapes.

Everything here is plain Python (no web framework, no model), so the model server can check a
request completely before it waits for the model, and tests can check the rules directly.

A request is read as the OpenAI API documents it, with the limits a small local server needs:

- Fields the server honours: ``model``, ``messages`` (chat) or ``prompt`` (legacy
  completions), ``temperature``, ``top_p``, ``top_k`` (a vLLM extension), ``max_tokens`` /
  ``max_completion_tokens``, ``n``, ``stream``, ``stream_options.include_usage``, ``stop``,
  ``seed``, ``logprobs``, ``top_logprobs`` and ``user`` (recorded nowhere, like ``metadata``).
- Fields that ask for something the server does not do are refused with a 400 naming the field
  (``tools``, ``response_format`` other than text, penalties, ``logit_bias``, ``echo``...);
  they are accepted only at their do-nothing values (``tools: []``, ``presence_penalty: 0``,
  ``response_format: {"type": "text"}``...), which some clients always send.
- Any other field is an error too: a typo such as ``max_token`` gets a 400, not the default.
- Numbers must be finite and in range (``max_tokens: 1e400`` and ``temperature: 1e-300`` are
  400s, not 500s); ``stop`` is a string or up to four short strings.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MAX_N = 16
"""Most choices one request may ask for (``n`` times the number of prompts)."""
MAX_STOP = 4
"""Most stop strings (OpenAI's limit)."""
MAX_STOP_CHARS = 64
"""Longest stop string: transformers' stop-string matcher costs vocabulary x length."""
MAX_TOP_LOGPROBS = 20
"""Most alternatives per token for chat ``top_logprobs`` (OpenAI's limit)."""
MAX_COMPLETION_LOGPROBS = 5
"""Most alternatives per token for legacy completions' ``logprobs`` (OpenAI's limit)."""
MIN_TEMPERATURE = 1e-3
"""Smallest positive temperature: below it logits / temperature overflow to inf (NaN
probabilities); 0 asks for greedy decoding."""
MAX_MESSAGES = 4096
"""Most messages in one conversation."""
UNBOUNDED_MAX_TOKENS = 1 << 20
"""The ``max_tokens`` cap for policies whose context length is unknown."""

CHAT_ROLES = {"system", "user", "assistant", "developer"}
"""Message roles the server reads (``developer`` is OpenAI's newer name for ``system``)."""


class RequestError(ValueError):
    """A request the server refuses, answered as an OpenAI error body with `status`."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status = status
        self.param = param
        self.code = code
        self.kind = kind


def error_body(message: str, kind: str, param: str | None = None, code: str | None = None):
    """The body of every error the server sends: ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


@dataclass
class Limits:
    """What one request may cost; `openvirl serve-model` sets these from its options."""

    max_body_bytes: int = 20 * 2**20
    """Largest request body (413 beyond it, checked before any parsing)."""
    max_image_pixels: int = 4096 * 4096
    """Largest decoded image, width x height (checked from the header, before decoding)."""
    max_request_pixels: int = 4 * 4096 * 4096
    """Most decoded pixels over all images of one request."""
    request_timeout_s: float = 300.0
    """Time a request may take, waiting for the model included; generation stops there."""
    max_waiting: int = 32
    """Requests that may wait for the model at once; more get a 503."""


@dataclass
class Job:
    """A checked request: what to generate, how many times, and how to answer."""

    endpoint: str
    """``chat`` or ``completion``."""
    model: str
    conversations: list[dict[str, Any]]
    """One policy request per prompt: ``{"messages": [...]}`` or ``{"prompt": str}``."""
    n: int = 1
    stream: bool = False
    include_usage: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    max_tokens: int | None = None
    """The client's explicit ``max_tokens`` (None: the policy's default)."""
    options: dict[str, Any] = field(default_factory=dict)
    """Sampling options for `HFPolicy.generate` (temperature, top_p, top_k, seed, stop)."""
    prompt_chars: int = 0
    """Characters of text in the prompt, for the cheap context bound."""
    images: list[str] = field(default_factory=list)
    """``data:`` URLs still to decode (decoding is `decode_images`' job, with pixel caps)."""

    @property
    def stop(self) -> list[str]:
        """The stop strings as a list (possibly empty)."""
        stop = self.options.get("stop")
        return [] if stop is None else [stop] if isinstance(stop, str) else list(stop)


# ----------------------------------------------------------------------------- parsing
def parse_json(raw: bytes) -> dict[str, Any]:
    """The request body as a JSON object; malformed or absurdly nested JSON is a 400."""
    try:
        body = json.loads(raw)
    except RecursionError:
        raise RequestError("the body is nested too deeply to be a chat request") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise RequestError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object")
    return body


def _is_empty(value: Any) -> bool:
    return value is None or value == [] or value == {}


def _is_zero(value: Any) -> bool:
    return value is None or (isinstance(value, int | float) and value == 0)


# A field that asks nothing at these values is accepted; any other value is refused.
NEUTRAL_FIELDS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "tools": (_is_empty, "tool calling is not supported by this server"),
    "functions": (_is_empty, "function calling is not supported by this server"),
    "tool_choice": (lambda v: v in (None, "none", "auto"), "tool calling is not supported"),
    "function_call": (lambda v: v in (None, "none", "auto"), "function calling is not supported"),
    "parallel_tool_calls": (lambda v: v is None or isinstance(v, bool), "must be a boolean"),
    "response_format": (
        lambda v: v is None or v == {"type": "text"},
        "only response_format {'type': 'text'} is supported (no JSON mode or schemas)",
    ),
    "presence_penalty": (_is_zero, "penalties are not supported by this server"),
    "frequency_penalty": (_is_zero, "penalties are not supported by this server"),
    "logit_bias": (_is_empty, "logit_bias is not supported by this server"),
    "store": (lambda v: v in (None, False), "this server stores nothing"),
    "metadata": (lambda v: v is None or isinstance(v, dict), "must be an object"),
    "service_tier": (lambda v: v in (None, "auto", "default"), "service tiers are not offered"),
    "modalities": (lambda v: v in (None, ["text"]), "only text output is supported"),
    "audio": (lambda v: v is None, "audio output is not supported"),
    "prediction": (lambda v: v is None, "predicted outputs are not supported"),
    "reasoning_effort": (lambda v: v is None, "reasoning_effort is not supported"),
    "web_search_options": (lambda v: v is None, "web search is not supported"),
    "echo": (lambda v: v in (None, False), "echo is not supported"),
    "suffix": (lambda v: v in (None, ""), "suffix (insertion) is not supported"),
    "best_of": (lambda v: v in (None, 1), "best_of is not supported; use n"),
    # vLLM's extensions, which clients written for vLLM send at their defaults.
    "min_p": (_is_zero, "min_p is not supported by this server"),
    "min_tokens": (_is_zero, "min_tokens is not supported by this server"),
    "repetition_penalty": (lambda v: v in (None, 1), "repetition_penalty is not supported"),
    "skip_special_tokens": (lambda v: v in (None, True), "special tokens are always skipped"),
    "include_stop_str_in_output": (lambda v: v in (None, False), "stop strings are cut"),
}
"""Fields refused unless at a do-nothing value, with the reason given in the 400."""

CHAT_FIELDS = {
    "model",
    "messages",
    "temperature",
    "top_p",
    "top_k",
    "max_tokens",
    "max_completion_tokens",
    "n",
    "stream",
    "stream_options",
    "stop",
    "seed",
    "logprobs",
    "top_logprobs",
    "user",
}
"""Fields a chat request may carry (plus `NEUTRAL_FIELDS` at their neutral values)."""

COMPLETION_FIELDS = (CHAT_FIELDS - {"messages", "max_completion_tokens", "top_logprobs"}) | {
    "prompt"
}
"""Fields a legacy completions request may carry (``logprobs`` is a count there)."""

_CHAT_ONLY_NEUTRAL = {"echo", "suffix", "best_of"}
_VLLM_NEUTRAL = {
    "min_p",
    "min_tokens",
    "repetition_penalty",
    "skip_special_tokens",
    "include_stop_str_in_output",
}
_COMPLETION_NEUTRAL = {"echo", "suffix", "best_of", "logit_bias", "presence_penalty"} | {
    "frequency_penalty",
    "metadata",
    "store",
    "service_tier",
    *_VLLM_NEUTRAL,
}


def _check_fields(body: dict[str, Any], allowed: set[str], neutral: set[str]) -> None:
    for key, value in body.items():
        if key in allowed:
            continue
        if key in neutral:
            accepts, reason = NEUTRAL_FIELDS[key]
            if accepts(value):
                continue
            raise RequestError(f"`{key}`: {reason}", param=key, code="unsupported_parameter")
        raise RequestError(
            f"unsupported field `{key}` (this server reads: {', '.join(sorted(allowed))})",
            param=key,
            code="unsupported_parameter",
        )


def _integer(body: dict[str, Any], key: str, low: float, high: float) -> int | None:
    """An integer field in ``[low, high]`` (integral floats such as 5.0 accepted), or None."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError(f"`{key}` must be an integer, got {_show(value)}", param=key)
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise RequestError(f"`{key}` must be an integer, got {_show(value)}", param=key)
    if not low <= value <= high:
        raise RequestError(
            f"`{key}` must be between {low} and {high}, got {_show(value)}", param=key
        )
    return int(value)


def _number(body: dict[str, Any], key: str, low: float, high: float) -> float | None:
    """A finite number field in ``[low, high]``, or None."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise RequestError(f"`{key}` must be a finite number, got {_show(value)}", param=key)
    if not low <= value <= high:
        raise RequestError(
            f"`{key}` must be between {low} and {high}, got {_show(value)}", param=key
        )
    return float(value)


def _boolean(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(f"`{key}` must be true or false, got {_show(value)}", param=key)
    return value


def clean_text(text: str) -> str:
    """`text` with lone surrogates (``"\\ud800"`` is valid JSON) replaced by U+FFFD.

    Tokenizers cannot encode them, so they would otherwise fail deep inside the model call.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _show(value: Any) -> str:
    """A short rendering of a bad value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _sampling(body: dict[str, Any], max_tokens_cap: int) -> tuple[dict[str, Any], int | None]:
    """The sampling options and the explicit max_tokens of a request (shared by both APIs)."""
    options: dict[str, Any] = {}
    temperature = _number(body, "temperature", 0.0, 2.0)
    if temperature is not None:
        if 0 < temperature < MIN_TEMPERATURE:
            raise RequestError(
                f"`temperature` {temperature:g} is too small to sample with; use 0 for greedy "
                f"decoding or at least {MIN_TEMPERATURE:g}",
                param="temperature",
            )
        options["temperature"] = temperature
    top_p = _number(body, "top_p", 0.0, 1.0)
    if top_p is not None:
        if top_p == 0:
            raise RequestError("`top_p` must be above 0", param="top_p")
        options["top_p"] = top_p
    top_k = _integer(body, "top_k", -1, 1 << 20)
    if top_k is not None:
        options["top_k"] = max(top_k, 0)  # vLLM's -1 means "off", like 0 here
    seed = _integer(body, "seed", -(1 << 63), (1 << 63) - 1)
    if seed is not None:
        options["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        items = [stop] if isinstance(stop, str) else stop
        if not isinstance(items, list) or not all(isinstance(s, str) for s in items):
            raise RequestError(
                f"`stop` must be a string or a list of strings, got {_show(stop)}", param="stop"
            )
        if len(items) > MAX_STOP or any(len(s) > MAX_STOP_CHARS for s in items):
            raise RequestError(
                f"`stop` takes at most {MAX_STOP} strings of at most {MAX_STOP_CHARS} characters",
                param="stop",
            )
        options["stop"] = [clean_text(s) for s in items if s]
    max_tokens = None
    for key in ("max_tokens", "max_completion_tokens"):
        value = _integer(body, key, 1, math.inf)
        if value is not None:
            if value > max_tokens_cap:
                raise RequestError(
                    f"`{key}` is {value}, but this model's context holds {max_tokens_cap} tokens "
                    "in all (prompt and completion)",
                    param=key,
                    code="context_length_exceeded",
                )
            max_tokens = value if max_tokens is None else min(max_tokens, value)
    return options, max_tokens


def _common(body: dict[str, Any], job: Job, model_name: str, max_tokens_cap: int) -> None:
    """Fill the fields both APIs share into `job`."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise RequestError("`model` is required (a string; see /v1/models)", param="model")
    if model != model_name:
        raise RequestError(
            f"the model `{model[:100]}` does not exist here; this server serves `{model_name}`",
            param="model",
            code="model_not_found",
        )
    job.model = model
    job.n = _integer(body, "n", 1, MAX_N) or 1
    job.stream = _boolean(body, "stream")
    stream_options = body.get("stream_options")
    if stream_options is not None:
        if not isinstance(stream_options, dict) or set(stream_options) - {"include_usage"}:
            raise RequestError(
                "`stream_options` may only hold `include_usage`", param="stream_options"
            )
        if not job.stream:
            raise RequestError("`stream_options` needs `stream: true`", param="stream_options")
        job.include_usage = _boolean(stream_options, "include_usage")
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise RequestError("`user` must be a string", param="user")
    job.options, job.max_tokens = _sampling(body, max_tokens_cap)


def parse_chat(body: dict[str, Any], model_name: str, max_tokens_cap: int) -> Job:
    """Check a ``/v1/chat/completions`` body and turn it into a `Job` (images not decoded)."""
    _check_fields(body, CHAT_FIELDS, set(NEUTRAL_FIELDS) - _CHAT_ONLY_NEUTRAL)
    job = Job(endpoint="chat", model="", conversations=[])
    _common(body, job, model_name, max_tokens_cap)
    job.logprobs = _boolean(body, "logprobs")
    top = _integer(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
    if top is not None and not job.logprobs:
        raise RequestError("`top_logprobs` needs `logprobs: true`", param="top_logprobs")
    job.top_logprobs = top or 0
    messages, chars, images = from_openai_messages(body.get("messages"))
    job.conversations = [{"messages": messages}]
    job.prompt_chars, job.images = chars, images
    return job


def parse_completion(body: dict[str, Any], model_name: str, max_tokens_cap: int) -> Job:
    """Check a legacy ``/v1/completions`` body and turn it into a `Job`."""
    _check_fields(body, COMPLETION_FIELDS, _COMPLETION_NEUTRAL)
    job = Job(endpoint="completion", model="", conversations=[])
    _common(body, job, model_name, max_tokens_cap)
    count = _integer(body, "logprobs", 0, MAX_COMPLETION_LOGPROBS)
    job.logprobs, job.top_logprobs = count is not None, count or 0
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if (
        not isinstance(prompts, list)
        or not prompts
        or not all(isinstance(p, str) and p for p in prompts)
    ):
        raise RequestError(
            "`prompt` must be a non-empty string or a list of them (token-id prompts are not "
            "supported)",
            param="prompt",
        )
    if len(prompts) * job.n > MAX_N:
        raise RequestError(f"at most {MAX_N} completions per request (prompts x n)", param="n")
    job.conversations = [{"prompt": clean_text(p)} for p in prompts]
    job.prompt_chars = max(len(p) for p in prompts)
    return job


def from_openai_messages(messages: Any) -> tuple[list[dict[str, Any]], int, list[str]]:
    """Check OpenAI chat messages; return openvirl messages, their characters and image URLs.

    Image parts become ``{"type": "image", "image": <index into the URL list>}`` until
    `decode_images` replaces the index by the decoded picture.
    """
    if not isinstance(messages, list) or not messages:
        raise RequestError("`messages` must be a non-empty list", param="messages")
    if len(messages) > MAX_MESSAGES:
        raise RequestError(f"at most {MAX_MESSAGES} messages per request", param="messages")
    converted: list[dict[str, Any]] = []
    chars = 0
    images: list[str] = []
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise RequestError(f"`{where}` must be an object with a `role`", param=where)
        role = message["role"]
        if role in ("tool", "function"):
            raise RequestError(
                f"`{where}` has role {role!r}: tool calling is not supported by this server",
                param=where,
            )
        if role not in CHAT_ROLES:
            raise RequestError(
                f"`{where}` has role {role[:40]!r}; expected one of {sorted(CHAT_ROLES)}",
                param=where,
            )
        for key, value in message.items():
            if key in ("role", "content", "name"):
                continue
            if key in ("refusal", "annotations", "audio", "function_call", "tool_calls"):
                if _is_empty(value):
                    continue  # what the OpenAI client echoes back from an earlier reply
                raise RequestError(f"`{where}.{key}` is not supported by this server", param=where)
            raise RequestError(f"`{where}` has an unsupported field `{key[:40]}`", param=where)
        parts: list[dict[str, Any]] = []
        content = message.get("content")
        if content is None:
            if role != "assistant":
                raise RequestError(f"`{where}.content` is required", param=where)
        elif isinstance(content, str):
            parts.append({"type": "text", "text": clean_text(content)})
            chars += len(content)
        elif isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text" and isinstance(part.get("text"), str):
                    parts.append({"type": "text", "text": clean_text(part["text"])})
                    chars += len(part["text"])
                elif kind == "image_url":
                    image_url = part.get("image_url")
                    url = image_url.get("url") if isinstance(image_url, dict) else image_url
                    if not isinstance(url, str):
                        raise RequestError(f"`{where}` has an image_url without url", param=where)
                    if not url.startswith("data:"):
                        raise RequestError(
                            "only data: image URLs are accepted (this server never fetches "
                            f"from the network); got {url[:40]!r}",
                            param=where,
                        )
                    parts.append({"type": "image", "image": len(images)})
                    images.append(url)
                else:
                    raise RequestError(
                        f"`{where}` has a content part of type {_show(kind)}; expected text "
                        "(with a string `text`) or image_url",
                        param=where,
                    )
        else:
            raise RequestError(f"`{where}.content` must be a string or a list", param=where)
        converted.append({"role": "system" if role == "developer" else role, "content": parts})
    return converted, chars, images


# ----------------------------------------------------------------------------- responses
def new_id(endpoint: str) -> str:
    """A fresh response id in OpenAI's style (``chatcmpl-...`` or ``cmpl-...``)."""
    prefix = "chatcmpl" if endpoint == "chat" else "cmpl"
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


@dataclass
class Choice:
    """One finished answer: its text, why it ended, and its tokens' log-probabilities."""

    text: str
    finish_reason: str = "stop"
    logprobs: list[dict[str, Any]] | None = None
    """Per token: ``{"token", "logprob", "bytes", "top_logprobs": [...]}`` (chat form)."""


def usage_body(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's ``usage`` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def logprobs_body(endpoint: str, entries: list[dict[str, Any]] | None, offset: int = 0) -> Any:
    """Token log-probabilities in the chat form or the legacy completions form."""
    if entries is None:
        return None
    if endpoint == "chat":
        return {"content": entries, "refusal": None}
    offsets, position = [], offset
    for entry in entries:
        offsets.append(position)
        position += len(entry["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def response_body(job: Job, response_id: str, choices: list[Choice], usage: dict[str, int]):
    """The non-streaming reply: a ``chat.completion`` or a ``text_completion``."""
    created = int(time.time())
    if job.endpoint == "chat":
        return {
            "id": response_id,
            "object": "chat.completion",
            "created": created,
            "model": job.model,
            "choices": [
                {
                    "index": i,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": logprobs_body("chat", c.logprobs),
                    "finish_reason": c.finish_reason,
                }
                for i, c in enumerate(choices)
            ],
            "usage": usage,
        }
    return {
        "id": response_id,
        "object": "text_completion",
        "created": created,
        "model": job.model,
        "choices": [
            {
                "index": i,
                "text": c.text,
                "logprobs": logprobs_body("completion", c.logprobs),
                "finish_reason": c.finish_reason,
            }
            for i, c in enumerate(choices)
        ],
        "usage": usage,
    }


def chunk_body(
    job: Job,
    response_id: str,
    index: int,
    *,
    text: str | None = None,
    role: bool = False,
    logprobs: list[dict[str, Any]] | None = None,
    finish_reason: str | None = None,
    text_offset: int = 0,
) -> dict[str, Any]:
    """One server-sent event's payload for choice `index` of a streamed reply."""
    created = int(time.time())
    if job.endpoint == "chat":
        delta: dict[str, Any] = {}
        if role:
            delta["role"] = "assistant"
        if text is not None:
            delta["content"] = text
        choice = {
            "index": index,
            "delta": delta,
            "logprobs": logprobs_body("chat", logprobs),
            "finish_reason": finish_reason,
        }
        kind = "chat.completion.chunk"
    else:
        choice = {
            "index": index,
            "text": text or "",
            "logprobs": logprobs_body("completion", logprobs, text_offset),
            "finish_reason": finish_reason,
        }
        kind = "text_completion"
    return {
        "id": response_id,
        "object": kind,
        "created": created,
        "model": job.model,
        "choices": [choice],
    }


def usage_chunk(job: Job, response_id: str, usage: dict[str, int]) -> dict[str, Any]:
    """The last event when ``stream_options.include_usage`` is set: no choices, the usage."""
    kind = "chat.completion.chunk" if job.endpoint == "chat" else "text_completion"
    return {
        "id": response_id,
        "object": kind,
        "created": int(time.time()),
        "model": job.model,
        "choices": [],
        "usage": usage,
    }


def sse(payload: Any) -> bytes:
    """One server-sent event (``data: <json>`` and a blank line); `payload` "[DONE]" ends."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


# ----------------------------------------------------------------------------- images
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")
"""Image formats a data URL may hold (PIL's other readers are never tried)."""


def decode_data_url(url: str, max_pixels: int) -> Any:
    """Decode a ``data:image/...;base64,...`` URL into an RGB PIL image.

    The size is read from the image header and checked against `max_pixels` before any pixel
    is decoded, so a small file that claims to be 20000 x 20000 pixels costs nothing.
    """
    import base64
    import binascii
    import io

    from PIL import Image

    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise RequestError("image data URLs must be base64-encoded (data:image/png;base64,...)")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RequestError(f"could not decode the image data URL: {exc}") from None
    try:
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
        width, height = image.size
        if width * height > max_pixels:
            raise RequestError(
                f"an image of {width} x {height} pixels is larger than this server's limit "
                f"of {max_pixels} pixels (--max-image-pixels)",
                code="image_too_large",
            )
        image.load()
        return image.convert("RGB")
    except RequestError:
        raise
    except Image.DecompressionBombError as exc:  # PIL's own limit, met before ours if lower
        raise RequestError(f"the image is too large to decode: {exc}") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        raise RequestError(f"could not decode the image data URL: {exc}") from None


def decode_images(job: Job, limits: Limits) -> None:
    """Replace the image indices in `job`'s messages by decoded images, within the pixel caps."""
    if not job.images:
        return
    decoded, total = [], 0
    for url in job.images:
        image = decode_data_url(url, limits.max_image_pixels)
        total += image.size[0] * image.size[1]
        if total > limits.max_request_pixels:
            raise RequestError(
                f"the images of this request hold more than {limits.max_request_pixels} pixels",
                code="image_too_large",
            )
        decoded.append(image)
    for conversation in job.conversations:
        for message in conversation.get("messages", []):
            for part in message["content"]:
                if part.get("type") == "image":
                    part["image"] = decoded[part["image"]]
