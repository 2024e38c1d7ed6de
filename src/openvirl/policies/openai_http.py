"""A policy that asks any OpenAI-compatible chat server (vLLM, llama.cpp, hosted APIs, ours).

Requests go to ``POST {base_url}/chat/completions`` in parallel (at most `concurrency` in
flight), each retried with exponential backoff on connection errors, timeouts, HTTP 429 and
5xx, and replies that are not a chat completion (garbage JSON). When a request still fails,
`act` raises `PolicyError` naming the URL, the attempts and the last error, so an evaluation
can stop and keep the episodes it finished. Other HTTP errors (400, 401, 404 ...) are not
retried: the same request would fail again.

API keys: an explicit `api_key`, or the environment variable named by `api_key_env`, is sent
to the given server. ``OPENAI_API_KEY`` alone is sent only to OpenAI's own API
(``https://api.openai.com``, `OPENAI_KEY_HOSTS`): a local or third-party server, and anything
over plain http, never receives it unless asked, e.g.
``openai:http://127.0.0.1:8000/v1#m?api_key_env=OPENAI_API_KEY``.

Images travel as base64 PNG data URLs in ``image_url`` parts; text-only messages are sent with
string content, which every server accepts.
"""

from __future__ import annotations

import base64
import io
import os
import random
import threading
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

try:
    import httpx
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the `openai` policy needs httpx; install it with `pip install 'openvirl[train]'` "
        "(or `pip install httpx`)"
    ) from exc

from openvirl.policies.base import Message, PolicyError, Request, Usage, as_requests, mix_seed

OPENAI_KEY_HOSTS = frozenset({"api.openai.com"})
"""Hosts that get ``OPENAI_API_KEY`` without being asked (over https only)."""

RETRY_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
"""HTTP statuses worth retrying: overload, rate limits and transient server faults."""


def image_data_url(image: Any) -> str:
    """A PIL image as a ``data:image/png;base64,...`` URL (lossless, so pixels arrive exact)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def to_openai_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Convert openvirl chat messages to the OpenAI chat format.

    Text-only messages get string content; messages with images get a list of ``text`` and
    ``image_url`` parts in their original order.
    """
    converted = []
    for message in messages:
        parts = message["content"]
        if all(part.get("type") == "text" for part in parts):
            content: Any = "".join(part.get("text", "") for part in parts)
        else:
            content = []
            for part in parts:
                if part.get("type") == "image":
                    url = image_data_url(part["image"])
                    content.append({"type": "image_url", "image_url": {"url": url}})
                else:
                    content.append({"type": "text", "text": part.get("text", "")})
        converted.append({"role": message["role"], "content": content})
    return converted


def normalize_base_url(base_url: str) -> str:
    """Strip trailing slashes and add ``/v1`` when the URL has no path (``http://host:8000``)."""
    url = base_url.rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"`base_url` must start with http:// or https://, got {base_url!r}.")
    if httpx.URL(url).path in ("", "/"):
        url += "/v1"
    return url


def resolve_api_key(base_url: str, api_key: str | None, api_key_env: str | None) -> str | None:
    """The bearer token to send to `base_url`, or None (see the module docstring).

    Raises
    ------
    ValueError
        If `api_key_env` names a variable that is not set.
    """
    if api_key is not None:
        return api_key or None
    if api_key_env is not None:
        value = os.environ.get(api_key_env)
        if not value:
            raise ValueError(f"`api_key_env`: the environment variable {api_key_env} is not set.")
        return value
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        return None
    url = httpx.URL(base_url)
    if url.scheme == "https" and url.host in OPENAI_KEY_HOSTS:
        return key
    warnings.warn(
        f"OPENAI_API_KEY is not sent to {url.scheme}://{url.host}: it goes only to "
        f"https://{', '.join(sorted(OPENAI_KEY_HOSTS))}. To send it to this server, add "
        "`?api_key_env=OPENAI_API_KEY` to the policy spec.",
        stacklevel=3,
    )
    return None


class _RetryableError(Exception):
    """A failure worth another attempt (kept private: callers only see PolicyError)."""


class OpenAIPolicy:
    """Answer requests through an OpenAI-compatible ``/v1/chat/completions`` endpoint.

    Example
    -------
    >>> policy = OpenAIPolicy("http://127.0.0.1:8000/v1", "gemma-3-270m", max_new_tokens=64)
    >>> policy.act([{"messages": [text_message("user", "Cards: 3 3 8 8. Reach 24.")]}])

    Parameters
    ----------
    base_url
        The API root, e.g. ``http://127.0.0.1:8000/v1`` (``/v1`` is added to a bare host).
    model
        The model id sent with each request; None asks the server's ``/models`` once and uses
        the first (what vLLM and llama.cpp serve).
    api_key
        Bearer token sent to this server (prefer `api_key_env`: a spec is saved with the run).
    api_key_env
        Name of an environment variable holding the token for this server. With neither,
        ``OPENAI_API_KEY`` is sent to ``https://api.openai.com`` only (see the module docstring).
    temperature, top_p, max_new_tokens, seed, stop
        Sent as ``temperature``, ``top_p``, ``max_tokens``, ``seed`` and ``stop`` (omitted
        when None). `seed` is offset by the request's index in the call, so requests differ;
        a request that carries its own `seed` (evaluation's per-answer seed) sends that mixed
        with this one instead, so a resumed run asks with the same seeds.
    concurrency
        Requests in flight at once.
    max_retries
        Retries after the first attempt (so ``max_retries + 1`` attempts in all).
    backoff_s, backoff_max_s
        The first retry waits `backoff_s` (plus up to 10% jitter), doubling each time up to
        `backoff_max_s`; a 429's ``Retry-After`` is honoured up to the same cap.
    timeout_s
        Per-attempt timeout of one HTTP request, seconds.
    name
        The policy's name in reports; defaults to ``openai:<model>``.
    extra_body
        More JSON fields for every request (``{"top_k": 20}`` for vLLM ...).
    """

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        api_key_env: str | None = None,
        temperature: float = 0.0,
        top_p: float | None = None,
        max_new_tokens: int = 256,
        seed: int | None = 0,
        stop: Sequence[str] | str | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        backoff_max_s: float = 16.0,
        timeout_s: float = 120.0,
        name: str | None = None,
        extra_body: dict[str, Any] | None = None,
    ):
        if concurrency < 1:
            raise ValueError(f"`concurrency` must be >= 1, got {concurrency}.")
        if max_retries < 0:
            raise ValueError(f"`max_retries` must be >= 0, got {max_retries}.")
        self.base_url = normalize_base_url(base_url)
        self.model = model
        self.temperature = temperature
        self.top_p = top_p
        self.max_new_tokens = max_new_tokens
        self.seed = seed
        self.stop = [stop] if isinstance(stop, str) else stop
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.extra_body = dict(extra_body or {})
        self._name = name
        key = resolve_api_key(self.base_url, api_key, api_key_env)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(headers=headers, timeout=timeout_s)
        self._lock = threading.Lock()
        self._jitter = random.Random(0)  # jitter only; answers never depend on it
        self.last_usage = Usage()
        self.total_usage = Usage()

    @property
    def name(self) -> str:
        """``openai:<model>`` unless a name was given."""
        return self._name or f"openai:{self.model or 'default'}"

    @property
    def completions_url(self) -> str:
        """The endpoint every request is posted to."""
        return f"{self.base_url}/chat/completions"

    # ------------------------------------------------------------------ answering
    def act(self, requests: Sequence[Request]) -> list[str]:
        """Answer every request, in order; raise `PolicyError` if any still fails after retries."""
        requests = as_requests(requests)
        if self.model is None:
            self.model = self.list_models()[0]
        usage = Usage(calls=1)
        if not requests:
            self.last_usage = usage
            return []
        workers = min(self.concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openvirl-http") as pool:
            futures = [
                pool.submit(self._complete, request["messages"], index, request.get("seed"))
                for index, request in enumerate(requests)
            ]
            try:
                results = [future.result() for future in futures]
            except BaseException:
                # Requests not started yet would only fail the same way; drop them.
                for future in futures:
                    future.cancel()
                raise
        answers = []
        for text, prompt_tokens, completion_tokens in results:
            answers.append(text)
            usage.prompt_tokens += prompt_tokens
            usage.completion_tokens += completion_tokens
        usage.requests = len(requests)
        self.last_usage = usage
        with self._lock:
            self.total_usage.add(usage)
        return answers

    def list_models(self) -> list[str]:
        """The model ids the server lists at ``/models`` (retried like completions)."""
        url = f"{self.base_url}/models"
        body = self._with_retries(lambda: self._get_json(url), url)
        try:
            ids = [str(entry["id"]) for entry in body["data"]]
        except (KeyError, TypeError) as exc:
            raise PolicyError(f"{url} did not return a model list: {str(body)[:200]}") from exc
        if not ids:
            raise PolicyError(f"{url} lists no models; pass the model name explicitly.")
        return ids

    def payload(
        self, messages: Sequence[Message], index: int = 0, request_seed: int | None = None
    ) -> dict[str, Any]:
        """The JSON body sent for one conversation (`index`, or the request's own seed, sets
        the seed)."""
        body: dict[str, Any] = {
            "model": self.model,
            "messages": to_openai_messages(messages),
            "temperature": self.temperature,
            "max_tokens": self.max_new_tokens,
        }
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.seed is not None:
            if request_seed is None:
                body["seed"] = self.seed + index
            else:  # 31 bits: every OpenAI-compatible server takes that
                body["seed"] = mix_seed(self.seed, request_seed) % (2**31 - 1)
        if self.stop:
            body["stop"] = list(self.stop)
        body.update(self.extra_body)
        return body

    def _complete(
        self, messages: Sequence[Message], index: int, request_seed: int | None = None
    ) -> tuple[str, int, int]:
        body = self.payload(messages, index, request_seed)
        return self._with_retries(lambda: self._post_completion(body), self.completions_url)

    def _post_completion(self, body: dict[str, Any]) -> tuple[str, int, int]:
        data = self._request_json("POST", self.completions_url, body)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise _RetryableError(f"not a chat completion: {str(data)[:200]}") from exc
        usage = data.get("usage") or {}
        return (
            text if isinstance(text, str) else "",
            int(usage.get("prompt_tokens") or 0),
            int(usage.get("completion_tokens") or 0),
        )

    def _get_json(self, url: str) -> Any:
        return self._request_json("GET", url, None)

    def _request_json(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        try:
            response = self._client.request(method, url, json=body)
        except httpx.TransportError as exc:  # refused, reset, DNS, timeouts
            raise _RetryableError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code in RETRY_STATUS:
            error = _RetryableError(f"HTTP {response.status_code}: {response.text[:200]}")
            error.retry_after = _retry_after(response)  # type: ignore[attr-defined]
            raise error
        if response.status_code >= 400:
            raise PolicyError(
                f"{method} {url} failed with HTTP {response.status_code} (not retried): "
                f"{response.text[:300]}"
            )
        try:
            return response.json()
        except ValueError as exc:
            raise _RetryableError(f"invalid JSON: {response.text[:200]!r}") from exc

    def _with_retries(self, attempt: Any, url: str) -> Any:
        delay = self.backoff_s
        attempts = self.max_retries + 1
        for number in range(1, attempts + 1):
            try:
                return attempt()
            except _RetryableError as error:
                if number == attempts:
                    raise PolicyError(
                        f"{url} failed after {attempts} attempt(s) over "
                        f"{self.max_retries} retr{'y' if self.max_retries == 1 else 'ies'}: "
                        f"{error}. Is the server running and reachable?"
                    ) from error
                wait = getattr(error, "retry_after", None)
                if wait is None:
                    with self._lock:
                        wait = delay * (1 + 0.1 * self._jitter.random())
                time.sleep(min(wait, self.backoff_max_s))
                delay = min(delay * 2, self.backoff_max_s)
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()

    def __enter__(self) -> OpenAIPolicy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIPolicy({self.base_url!r}, model={self.model!r})"


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds from a ``Retry-After`` header (numeric form only), else None."""
    value = response.headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
