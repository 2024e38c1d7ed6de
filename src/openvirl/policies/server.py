"""Serve any policy as an OpenAI-compatible chat API (`openvirl serve-model`).

Endpoints: ``POST /v1/chat/completions`` (non-streaming, ``n=1``), ``GET /v1/models`` and
``GET /health``. Messages arrive in the OpenAI format, string content or lists of ``text`` and
``image_url`` parts; images must be ``data:`` URLs (the server never fetches from the network)
and become PIL images in openvirl's message format. ``temperature``, ``top_p``,
``max_tokens`` (or ``max_completion_tokens``), ``seed`` and ``stop`` go to the policy's
`generate` when it has one (`HFPolicy`); other policies answer with their own settings.

Requests are answered one at a time (a lock around the policy): models are not thread-safe
and batching across HTTP requests is left to real inference servers such as vLLM.

Example
-------
>>> from openvirl.policies.server import serve_in_thread
>>> with serve_in_thread(policy) as server:           # a free loopback port
...     OpenAIPolicy(server.url).act(requests)
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
import time
import uuid
from typing import Any

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the model server needs fastapi and uvicorn; install them with "
        "`pip install 'openvirl[viewer]'`"
    ) from exc

from openvirl.policies.base import ContentPart, Message, Policy, Usage

GENERATION_FIELDS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
    "seed": "seed",
    "stop": "stop",
}
"""OpenAI request fields passed on to `policy.generate`, by the option name they map to."""


class RequestError(ValueError):
    """A malformed chat request (answered with HTTP 400 and the message)."""


def decode_data_url(url: str) -> Any:
    """Decode a ``data:image/...;base64,...`` URL into an RGB PIL image."""
    from PIL import Image

    if not url.startswith("data:"):
        raise RequestError(
            "only data: image URLs are accepted (this server never fetches from the network); "
            f"got {url[:40]!r}"
        )
    header, _, payload = url.partition(",")
    if ";base64" not in header:
        raise RequestError("image data URLs must be base64-encoded (data:image/png;base64,...)")
    try:
        image = Image.open(io.BytesIO(base64.b64decode(payload, validate=True)))
        image.load()
    except (binascii.Error, OSError, ValueError) as exc:
        raise RequestError(f"could not decode the image data URL: {exc}") from exc
    return image.convert("RGB")


def from_openai_messages(messages: Any) -> list[Message]:
    """Convert OpenAI chat messages into openvirl messages (content always a list of parts)."""
    if not isinstance(messages, list) or not messages:
        raise RequestError("`messages` must be a non-empty list")
    converted: list[Message] = []
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or "role" not in message:
            raise RequestError(f"`messages[{index}]` must be an object with a `role`")
        content = message.get("content")
        parts: list[ContentPart] = []
        if content is None:
            pass
        elif isinstance(content, str):
            parts.append({"type": "text", "text": content})
        elif isinstance(content, list):
            for part in content:
                kind = part.get("type") if isinstance(part, dict) else None
                if kind == "text":
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                elif kind == "image_url":
                    image_url = part.get("image_url")
                    url = image_url.get("url") if isinstance(image_url, dict) else image_url
                    if not isinstance(url, str):
                        raise RequestError(f"`messages[{index}]` has an image_url without url")
                    parts.append({"type": "image", "image": decode_data_url(url)})
                else:
                    raise RequestError(
                        f"`messages[{index}]` has a content part of type {kind!r}; "
                        "expected text or image_url"
                    )
        else:
            raise RequestError(f"`messages[{index}].content` must be a string or a list")
        converted.append({"role": str(message["role"]), "content": parts})
    return converted


def generation_options(body: dict[str, Any]) -> dict[str, Any]:
    """The policy options a chat request sets (OpenAI names mapped to `generate`'s)."""
    if body.get("stream"):
        raise RequestError("`stream=true` is not supported by this server")
    if body.get("n", 1) != 1:
        raise RequestError("only `n=1` is supported by this server")
    options = {}
    for field, option in GENERATION_FIELDS.items():
        if body.get(field) is not None:
            options[option] = body[field]
    return options


def create_app(policy: Policy, *, model_name: str | None = None) -> FastAPI:
    """A FastAPI app answering OpenAI chat requests with `policy`.

    Parameters
    ----------
    policy
        Any policy; one with a ``generate(requests, **options)`` method also honours the
        request's sampling fields, and one with ``last_usage`` reports token usage.
    model_name
        The model id listed at ``/v1/models`` and echoed in replies; defaults to `policy.name`.
    """
    name = model_name or getattr(policy, "name", "policy")
    lock = threading.Lock()
    app = FastAPI(title="openvirl model server", version="1")

    @app.exception_handler(RequestError)
    async def _bad_request(_request: Request, error: RequestError) -> JSONResponse:
        return _error(400, str(error), "invalid_request_error")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": name}

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {
            "object": "list",
            "data": [{"id": name, "object": "model", "created": 0, "owned_by": "openvirl"}],
        }

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> JSONResponse:
        try:
            body = await request.json()
        except ValueError as exc:
            raise RequestError(f"the body is not JSON: {exc}") from exc
        if not isinstance(body, dict):
            raise RequestError("the body must be a JSON object")
        messages = from_openai_messages(body.get("messages"))
        options = generation_options(body)
        # The model runs in a worker thread so the event loop keeps serving /health.
        try:
            text, usage = await run_in_threadpool(_answer, policy, lock, messages, options)
        except (ValueError, TypeError) as exc:
            raise RequestError(str(exc)) from exc
        except Exception as exc:  # the policy failed: report it like OpenAI does
            return _error(500, f"{type(exc).__name__}: {exc}", "server_error")
        max_tokens = options.get("max_new_tokens")
        hit_limit = max_tokens is not None and usage.completion_tokens >= int(max_tokens)
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": name,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "length" if hit_limit else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": usage.prompt_tokens,
                    "completion_tokens": usage.completion_tokens,
                    "total_tokens": usage.total_tokens,
                },
            }
        )

    return app


def _answer(
    policy: Policy, lock: threading.Lock, messages: list[Message], options: dict[str, Any]
) -> tuple[str, Usage]:
    """Run the policy on one conversation under the lock; return its text and usage."""
    requests = [{"messages": messages, "info": {}}]
    with lock:
        generate = getattr(policy, "generate", None)
        answers = generate(requests, **options) if callable(generate) else policy.act(requests)
        usage = getattr(policy, "last_usage", None) or Usage()
    return answers[0], usage


def _error(status: int, message: str, kind: str) -> JSONResponse:
    """An OpenAI-style error body."""
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": None}},
        status_code=status,
    )


def serve(
    policy: Policy,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    log_level: str = "info",
) -> None:
    """Serve `policy` until interrupted (what `openvirl serve-model` runs)."""
    uvicorn.run(
        create_app(policy, model_name=model_name), host=host, port=port, log_level=log_level
    )


class RunningServer:
    """A server started by `serve_in_thread`; `url` is its OpenAI base URL."""

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, host: str, port: int):
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client, e.g. ``http://127.0.0.1:54321/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to exit and wait for its thread."""
        self._server.should_exit = True
        self._thread.join(timeout_s)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def serve_in_thread(
    policy: Policy,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    model_name: str | None = None,
    log_level: str = "warning",
    startup_timeout_s: float = 30.0,
) -> RunningServer:
    """Start the server in a daemon thread and return once it accepts connections.

    ``port=0`` picks a free port (read it back from `RunningServer.port`). For tests,
    notebooks and evaluations that want an HTTP policy without a second process.
    """
    config = uvicorn.Config(
        create_app(policy, model_name=model_name),
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="openvirl-model-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError(f"the model server did not start on {host}:{port}")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return RunningServer(server, thread, host, bound)
