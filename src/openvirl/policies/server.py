"""Serve a policy as an OpenAI-compatible API (`openvirl serve-model`).

Endpoints: ``POST /v1/chat/completions``, ``POST /v1/completions`` (legacy, raw text prompts),
``GET /v1/models``, ``GET /v1/models/{id}`` and ``GET /health``. What clients send is served
completely for `HFPolicy` (the tiny test models and real checkpoints alike): ``n`` choices,
``stream: true`` as server-sent events ending with ``data: [DONE]`` (token by token from the
decoding loop, see `openvirl.policies.server_generation`), ``logprobs`` / ``top_logprobs`` of the
generated tokens, ``stop``, ``seed`` and the sampling fields. The request rules are in
`openvirl.policies.server_protocol`; every failure, 404 and 405 included, is an OpenAI error body
``{"error": {"message", "type", "param", "code"}}``.

Other policies with no privileged needs (``human``, ``openai:`` proxies, test doubles) are
answered through `act`: the same endpoints and shapes, the whole answer as one streamed piece,
no log-probabilities. ``oracle`` and ``random`` read the env's ``info``, which an HTTP client
cannot send, so `openvirl serve-model` refuses them at start.

Safety and bounds (see README, Security):

- Host names: only loopback names (``localhost``, ``127.0.0.1``, ``::1``) in the ``Host`` header
  unless more are allowed, so a DNS-rebinding web page cannot reach the server.
- ``--api-key`` (or ``$OPENVIRL_API_KEY``): every endpoint but ``/health`` wants
  ``Authorization: Bearer <key>``; binding to a non-loopback address requires one.
- POST bodies must be ``application/json`` (415) and at most `Limits.max_body_bytes` (413,
  checked before parsing); images are checked for size before decoding.
- Requests are checked in full before they wait for the model; ``max_tokens`` is capped by the
  model's context and a prompt that cannot fit is refused before (and, exactly, after)
  tokenizing.
- Each request has a time limit (waiting included); generation stops there, when its client
  disconnects, and when the server is asked to stop (SIGTERM, Ctrl-C).

Requests are answered one at a time (a lock around the policy): models are not thread-safe, and
batching across HTTP requests is left to real inference servers such as vLLM.

Example
-------
>>> from openvirl.policies.server import serve_in_thread
>>> with serve_in_thread(policy) as server:           # a free loopback port
...     OpenAIPolicy(server.url).act(requests)
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import Response, StreamingResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the model server needs fastapi and uvicorn; install them with "
        "`pip install 'openvirl[viewer]'`"
    ) from exc

from openvirl.policies.base import Policy, Usage
from openvirl.policies.server_protocol import (
    UNBOUNDED_MAX_TOKENS,
    Choice,
    Job,
    Limits,
    RequestError,
    chunk_body,
    decode_images,
    error_body,
    new_id,
    parse_chat,
    parse_completion,
    parse_json,
    response_body,
    sse,
    usage_body,
    usage_chunk,
)

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
"""Host names accepted by default (plus any 127.x.x.x address)."""

PRIVILEGED_POLICIES = {"oracle", "random"}
"""Policies that read the env's `info`, which an HTTP request cannot carry."""

__all__ = [
    "Limits",
    "RequestError",
    "RunningServer",
    "create_app",
    "is_loopback",
    "serve",
    "serve_in_thread",
]


def is_loopback(host: str) -> bool:
    """Whether a host name or address is loopback (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _host_name(header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8000`` -> ``::1``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON response, ASCII-escaped so no text (lone surrogates included) can fail to encode."""
    return Response(
        json.dumps(body, ensure_ascii=True),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _error(error: RequestError) -> Response:
    headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
    return _json(error.status, error_body(str(error), error.kind, error.param, error.code), headers)


# ----------------------------------------------------------------------------- the guard
class Guard:
    """ASGI middleware: Host names, the API key, content type and body size, before routing.

    Pure ASGI (not `BaseHTTPMiddleware`), so the endpoints still see the client disconnect.
    """

    def __init__(
        self,
        app: Any,
        *,
        allowed_hosts: set[str] | None,
        api_key: str | None,
        max_body_bytes: int,
    ):
        self.app = app
        self.allowed_hosts = allowed_hosts
        self.api_key = api_key
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {
                key.decode("latin-1").lower(): value.decode("latin-1")
                for key, value in scope.get("headers", [])
            }
            try:
                self._check(scope, headers)
            except RequestError as error:
                await _error(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _check(self, scope: Any, headers: dict[str, str]) -> None:
        if self.allowed_hosts is not None:
            host = headers.get("host", "")
            name = _host_name(host)
            if name not in self.allowed_hosts and not is_loopback(name):
                raise RequestError(
                    f"Host {host[:80]!r} is not allowed: this server answers loopback names only "
                    "(add names with --allowed-host)",
                    code="invalid_host",
                )
        if self.api_key is not None and scope.get("path") != "/health":
            scheme, _, token = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(
                token.strip().encode(), self.api_key.encode()
            ):
                raise RequestError(
                    "a valid API key is required: send `Authorization: Bearer <key>`",
                    status=401,
                    code="invalid_api_key",
                )
        if scope.get("method") in ("POST", "PUT", "PATCH"):
            media = headers.get("content-type", "").partition(";")[0].strip().lower()
            if media != "application/json":
                raise RequestError(
                    f"the body must be application/json, not {media[:60] or 'untyped'}",
                    status=415,
                    code="unsupported_media_type",
                )
            length = headers.get("content-length")
            if length is not None:
                if not length.strip().isdigit():
                    raise RequestError("malformed Content-Length header")
                if int(length) > self.max_body_bytes:
                    raise _too_large(self.max_body_bytes)


def _too_large(limit: int) -> RequestError:
    return RequestError(
        f"the request body is larger than this server's limit of {limit} bytes (--max-body-mb)",
        status=413,
        code="request_too_large",
    )


# ----------------------------------------------------------------------------- the model side
class ModelRunner:
    """Runs checked jobs on the policy, one at a time, with every per-request bound.

    Parameters
    ----------
    policy
        The policy to serve. `HFPolicy` gets the full treatment (token hooks, exact context
        checks); any other policy is answered through ``generate`` or ``act``.
    limits
        Per-request bounds.
    """

    def __init__(self, policy: Policy, limits: Limits):
        self.policy = policy
        self.limits = limits
        self.lock = threading.Lock()
        self.shutdown = threading.Event()
        """Set when the server stops: generation ends at the next step, waiting requests 503."""
        self.is_hf = all(
            getattr(policy, attr, None) is not None
            for attr in ("model", "tokenizer", "render", "generate", "options")
        )
        self.context: int | None = None
        self.chars_per_token = 0
        if self.is_hf:
            from openvirl.policies.server_generation import context_length, max_chars_per_token

            self.context = context_length(policy)
            self.chars_per_token = max_chars_per_token(policy.tokenizer)  # type: ignore[attr-defined]
        self._waiting = 0
        self._waiting_lock = threading.Lock()

    @property
    def max_tokens_cap(self) -> int:
        """The largest ``max_tokens`` any request may ask for."""
        return self.context or UNBOUNDED_MAX_TOKENS

    def check(self, job: Job) -> None:
        """What can be refused before waiting for the model (no tokenizer involved)."""
        if not self.is_hf:
            if job.logprobs:
                raise RequestError(
                    f"the policy {self.policy.name!r} gives no token log-probabilities",
                    param="logprobs",
                )
            if job.endpoint == "completion":
                raise RequestError(
                    f"the policy {self.policy.name!r} answers chat messages only; use "
                    "/v1/chat/completions",
                )
            return
        if job.images and not getattr(self.policy, "is_vlm", False):
            raise RequestError(
                f"{self.policy.name} is a text-only model: image inputs are not supported",
                param="messages",
                code="image_input_not_supported",
            )
        if job.endpoint == "completion" and getattr(self.policy, "is_vlm", False):
            raise RequestError(
                "/v1/completions serves text-only models; use /v1/chat/completions for this VLM"
            )
        if self.context and job.prompt_chars > self.context * self.chars_per_token:
            raise RequestError(
                f"the prompt has {job.prompt_chars} characters, more than this model's context "
                f"of {self.context} tokens can hold",
                param="messages" if job.endpoint == "chat" else "prompt",
                code="context_length_exceeded",
            )

    def enter_queue(self) -> None:
        """Count a request that will wait for the model; 503 when too many already wait."""
        with self._waiting_lock:
            if self._waiting >= self.limits.max_waiting:
                raise RequestError(
                    f"{self._waiting} requests are already waiting for the model; retry later",
                    status=503,
                    kind="server_error",
                    code="overloaded",
                )
            self._waiting += 1

    def leave_queue(self) -> None:
        with self._waiting_lock:
            self._waiting -= 1

    def run(
        self,
        job: Job,
        cancel: threading.Event,
        deadline: float,
        on_token: Callable[[int, str, dict[str, Any] | None], None] | None = None,
        on_start: Callable[[], None] | None = None,
    ) -> tuple[list[Choice], dict[str, int]]:
        """Answer `job` under the model lock; `on_token(choice, text, logprob)` streams."""
        while not self.lock.acquire(timeout=0.05):
            if cancel.is_set() or self.shutdown.is_set():
                raise _shutting_down() if self.shutdown.is_set() else _gone()
            if time.monotonic() > deadline:
                raise RequestError(
                    "the model stayed busy for this request's whole time limit; retry later",
                    status=503,
                    kind="server_error",
                    code="timeout",
                )
        try:
            if self.shutdown.is_set():
                raise _shutting_down()
            if self.is_hf:
                return self._run_hf(job, cancel, deadline, on_token, on_start)
            if on_start is not None:
                on_start()
            return self._run_other(job, on_token)
        finally:
            self.lock.release()

    # -------------------------------------------------------------- HFPolicy
    def _prompt_tokens(self, conversation: dict[str, Any]) -> int:
        policy: Any = self.policy
        if getattr(policy, "is_vlm", False):  # image tokens count too: the processor knows
            return int(policy.encode([conversation])["attention_mask"].sum())
        if "prompt" in conversation:
            ids = policy.tokenizer(conversation["prompt"], return_attention_mask=False)
        else:
            text = policy.render(conversation["messages"])
            ids = policy.tokenizer(
                text, add_special_tokens=policy.add_special_tokens, return_attention_mask=False
            )
        return len(ids["input_ids"])

    def _run_hf(
        self,
        job: Job,
        cancel: threading.Event,
        deadline: float,
        on_token: Callable[[int, str, dict[str, Any] | None], None] | None,
        on_start: Callable[[], None] | None,
    ) -> tuple[list[Choice], dict[str, int]]:
        from openvirl.policies.hf import PLAIN_STOP
        from openvirl.policies.server_generation import TokenWatch

        policy: Any = self.policy
        # Measure and check every prompt before generating anything.
        plans = []
        for conversation in job.conversations:
            count = self._prompt_tokens(conversation)
            max_new = job.max_tokens or int(policy.options["max_new_tokens"])
            if self.context is not None:
                room = self.context - count
                if room < 1 or (job.max_tokens is not None and job.max_tokens > room):
                    asked = f" and {job.max_tokens} for the completion" if job.max_tokens else ""
                    raise RequestError(
                        f"this model's context holds {self.context} tokens; the request needs "
                        f"{count} for the prompt{asked}",
                        param="max_tokens" if room >= 1 else None,
                        code="context_length_exceeded",
                    )
                max_new = min(max_new, room)
            plans.append((conversation, max_new))
        if on_start is not None:
            on_start()
        options = dict(job.options)
        if job.endpoint == "completion":
            options.setdefault("stop", [])  # raw text: no chat stop strings unless asked
        stop = options.get("stop", policy.options["stop"])
        stop = [stop] if isinstance(stop, str) else stop
        if stop is None and not policy.uses_chat_template:
            stop = list(PLAIN_STOP)
        stop = [s for s in stop or [] if s]
        choices: list[Choice] = []
        prompt_tokens = completion_tokens = 0
        for index, (conversation, max_new) in enumerate(plans):
            offset = index * job.n
            watch = TokenWatch(
                policy.tokenizer,
                job.n,
                end_ids=policy._end_token_ids(),
                pad_id=policy.tokenizer.pad_token_id,
                stop=stop,
                top_logprobs=job.top_logprobs if job.logprobs else None,
                events=(cancel, self.shutdown),
                deadline=deadline,
                on_token=(lambda row, text, entry, o=offset: on_token(o + row, text, entry))
                if on_token is not None
                else None,
            )
            answers = policy.generate(
                [conversation] * job.n,
                generate_kwargs=watch.generate_kwargs(),
                max_new_tokens=max_new,
                **options,
            )
            if self.shutdown.is_set():
                raise _shutting_down()
            usage: Usage = policy.last_usage
            prompt_tokens += usage.prompt_tokens // job.n  # n copies of one prompt
            completion_tokens += usage.completion_tokens
            for row, text in enumerate(answers):
                choices.append(
                    Choice(
                        text=text,
                        finish_reason=watch.finish_reason(row),
                        logprobs=watch.logprobs[row] if job.logprobs else None,
                    )
                )
        return choices, usage_body(prompt_tokens, completion_tokens)

    # -------------------------------------------------------------- other policies
    def _run_other(
        self, job: Job, on_token: Callable[[int, str, dict[str, Any] | None], None] | None
    ) -> tuple[list[Choice], dict[str, int]]:
        from openvirl.policies.hf import truncate_at_stop

        policy: Any = self.policy
        requests = [{**job.conversations[0], "info": {}} for _ in range(job.n)]
        generate = getattr(policy, "generate", None)
        options = dict(job.options)
        if job.max_tokens is not None:
            options["max_new_tokens"] = job.max_tokens
        answers = generate(requests, **options) if callable(generate) else policy.act(requests)
        answers = [truncate_at_stop(str(a), job.stop) for a in answers]
        usage = getattr(policy, "last_usage", None) or Usage()
        hit = job.max_tokens is not None and usage.completion_tokens >= job.max_tokens * job.n
        choices = [Choice(text=a, finish_reason="length" if hit else "stop") for a in answers]
        if on_token is not None:
            for i, answer in enumerate(answers):
                on_token(i, answer, None)
        return choices, usage_body(usage.prompt_tokens, usage.completion_tokens)


def _shutting_down() -> RequestError:
    return RequestError(
        "the server is shutting down", status=503, kind="server_error", code="shutting_down"
    )


def _gone() -> RequestError:
    return RequestError("the client disconnected", status=499, code="client_closed")


# ----------------------------------------------------------------------------- the app
def create_app(
    policy: Policy,
    *,
    model_name: str | None = None,
    limits: Limits | None = None,
    api_key: str | None = None,
    allowed_hosts: set[str] | bool | None = True,
) -> FastAPI:
    """A FastAPI app answering OpenAI requests with `policy`.

    Parameters
    ----------
    policy
        Any policy that needs no env `info`; `HFPolicy` is served completely (see the module).
    model_name
        The model id listed at ``/v1/models`` and required in requests; defaults to
        `policy.name`.
    limits
        Per-request bounds (body size, pixels, time, waiting requests).
    api_key
        When set, every endpoint but ``/health`` requires ``Authorization: Bearer <api_key>``.
    allowed_hosts
        ``True``: loopback names only (the default). A set: loopback names plus these.
        ``None`` or ``False``: no Host check (a non-loopback server protected by its API key).
    """
    name = model_name or getattr(policy, "name", "policy")
    limits = limits or Limits()
    runner = ModelRunner(policy, limits)
    app = FastAPI(
        title="openvirl model server", version="1", docs_url=None, redoc_url=None, openapi_url=None
    )
    app.state.runner = runner
    hosts: set[str] | None
    if allowed_hosts is True:
        hosts = set(LOOPBACK_NAMES)
    elif not allowed_hosts:
        hosts = None
    else:
        hosts = set(LOOPBACK_NAMES) | {h.lower() for h in allowed_hosts}
    app.add_middleware(
        Guard, allowed_hosts=hosts, api_key=api_key or None, max_body_bytes=limits.max_body_bytes
    )

    @app.exception_handler(RequestError)
    async def _request_error(_request: Request, error: RequestError) -> Response:
        return _error(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed"}
        message = {
            404: f"no such endpoint: {request.method} {request.url.path[:100]}",
            405: f"{request.method} is not allowed on {request.url.path[:100]}",
        }.get(error.status_code, str(error.detail))
        return _json(
            error.status_code,
            error_body(message, "invalid_request_error", None, codes.get(error.status_code)),
            getattr(error, "headers", None),
        )

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, error: RequestValidationError) -> Response:
        return _json(400, error_body(str(error)[:500], "invalid_request_error"))

    @app.exception_handler(Exception)
    async def _server_error(_request: Request, error: Exception) -> Response:
        return _json(500, error_body(f"{type(error).__name__}: {error}"[:2000], "server_error"))

    @app.get("/health")
    def health() -> Response:
        return _json(200, {"status": "ok", "model": name})

    def model_card() -> dict[str, Any]:
        card: dict[str, Any] = {"id": name, "object": "model", "created": 0, "owned_by": "openvirl"}
        if runner.context:
            card["max_model_len"] = runner.context  # vLLM's field, read by some clients
        return card

    @app.get("/v1/models")
    def models() -> Response:
        return _json(200, {"object": "list", "data": [model_card()]})

    @app.get("/v1/models/{model_id:path}")
    def model(model_id: str) -> Response:
        if model_id != name:
            raise RequestError(
                f"the model `{model_id[:100]}` does not exist here; this server serves `{name}`",
                status=404,
                param="model",
                code="model_not_found",
            )
        return _json(200, model_card())

    async def prepare(request: Request, endpoint: str) -> Job:
        raw = await _read_body(request, limits.max_body_bytes)

        def parse() -> Job:
            body = parse_json(raw)
            parser = parse_chat if endpoint == "chat" else parse_completion
            job = parser(body, name, runner.max_tokens_cap)
            runner.check(job)
            decode_images(job, limits)
            return job

        return await run_in_threadpool(parse)

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await answer(request, await prepare(request, "chat"))

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await answer(request, await prepare(request, "completion"))

    def start(job: Job, cancel: threading.Event, *hooks: Any) -> asyncio.Future[Any]:
        # Counted from here until the model is done with it (bounded by the time limit).
        runner.enter_queue()
        deadline = time.monotonic() + limits.request_timeout_s
        task = asyncio.ensure_future(run_in_threadpool(runner.run, job, cancel, deadline, *hooks))
        task.add_done_callback(lambda _: runner.leave_queue())
        return task

    async def answer(request: Request, job: Job) -> Response:
        return await (stream if job.stream else complete)(request, job)

    async def complete(request: Request, job: Job) -> Response:
        cancel = threading.Event()
        choices, usage = await _watch_client(start(job, cancel), request, cancel)
        return _json(200, response_body(job, new_id(job.endpoint), choices, usage))

    async def stream(request: Request, job: Job) -> Response:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[Any, ...]] = asyncio.Queue()
        cancel = threading.Event()
        started = asyncio.Event()

        def on_token(index: int, text: str, entry: dict[str, Any] | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, ("token", index, text, entry))

        def on_start() -> None:
            loop.call_soon_threadsafe(started.set)

        task = start(job, cancel, on_token, on_start)
        # Wait until the request passed its exact checks, so refusals are plain HTTP errors.
        waiter = asyncio.ensure_future(started.wait())
        try:
            await _watch_client(asyncio.ensure_future(_first(task, waiter)), request, cancel)
        except BaseException:
            cancel.set()
            raise
        return StreamingResponse(
            _events(job, task, queue, cancel),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return app


async def _first(task: asyncio.Future[Any], waiter: asyncio.Future[Any]) -> None:
    """Return when `waiter` is done, or re-raise `task`'s error if it fails first."""
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done() and not waiter.done():
        waiter.cancel()
        task.result()  # raises the refusal


async def _events(
    job: Job,
    task: asyncio.Future[Any],
    queue: asyncio.Queue[tuple[Any, ...]],
    cancel: threading.Event,
) -> AsyncIterator[bytes]:
    """The server-sent events of a streamed reply; cancelling the generator cancels the model."""
    response_id = new_id(job.endpoint)
    total = job.n * len(job.conversations)
    sent = [""] * total

    def token_event(item: tuple[Any, ...]) -> bytes:
        """The event of one decoded piece of choice `index`; its offset counts what was sent."""
        _, index, text, entry = item
        event = sse(
            chunk_body(
                job,
                response_id,
                index,
                text=text,
                logprobs=[entry] if entry is not None else None,
                text_offset=len(sent[index]),
            )
        )
        sent[index] += text
        return event

    try:
        if job.endpoint == "chat":
            for index in range(total):
                yield sse(chunk_body(job, response_id, index, text="", role=True))
        getter = asyncio.ensure_future(queue.get())
        while True:
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                item = getter.result()
                getter = asyncio.ensure_future(queue.get())
                yield token_event(item)
                continue
            getter.cancel()
            while not queue.empty():  # tokens that came with the end
                yield token_event(queue.get_nowait())
            try:
                choices, usage = task.result()
            except RequestError as error:
                yield sse(error_body(str(error), error.kind, error.param, error.code))
                return
            except Exception as error:  # the policy failed mid-stream
                yield sse(error_body(f"{type(error).__name__}: {error}"[:2000], "server_error"))
                return
            for index, choice in enumerate(choices):
                rest = (
                    choice.text[len(sent[index]) :] if choice.text.startswith(sent[index]) else ""
                )
                yield sse(
                    chunk_body(
                        job,
                        response_id,
                        index,
                        text=rest,
                        finish_reason=choice.finish_reason,
                        text_offset=len(sent[index]),
                    )
                )
            if job.include_usage:
                yield sse(usage_chunk(job, response_id, usage))
            yield sse("[DONE]")
            return
    finally:
        if not task.done():
            cancel.set()  # the client left (or the server stops): end generation now


async def _watch_client(
    task: asyncio.Future[Any], request: Request, cancel: threading.Event
) -> Any:
    """Await `task`, setting `cancel` as soon as the client disconnects."""
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.1)
            if done:
                return task.result()
            if await request.is_disconnected():
                cancel.set()
    finally:
        if not task.done():
            cancel.set()


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it grows past `limit` bytes."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


# ----------------------------------------------------------------------------- running it
class ModelServer(uvicorn.Server):
    """uvicorn's server, which also stops generation when asked to exit (SIGTERM, Ctrl-C)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        _runner_of(self.config.app).shutdown.set()
        super().handle_exit(sig, frame)


def _runner_of(app: Any) -> ModelRunner:
    return app.state.runner


def serve(
    policy: Policy,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_name: str | None = None,
    log_level: str = "info",
    limits: Limits | None = None,
    api_key: str | None = None,
    allowed_hosts: set[str] | None = None,
) -> None:
    """Serve `policy` until interrupted (what `openvirl serve-model` runs).

    A non-loopback `host` needs an `api_key`; its Host check is then off unless
    `allowed_hosts` names the names clients use.
    """
    if not is_loopback(host) and not api_key:
        raise ValueError(
            f"binding to {host} exposes the model beyond this machine: set an API key "
            "(--api-key or $OPENVIRL_API_KEY)"
        )
    hosts: set[str] | bool | None = True
    if not is_loopback(host):
        hosts = set(allowed_hosts) if allowed_hosts else None
    elif allowed_hosts:
        hosts = set(allowed_hosts)
    app = create_app(
        policy, model_name=model_name, limits=limits, api_key=api_key, allowed_hosts=hosts
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        timeout_graceful_shutdown=5,
        limit_concurrency=256,
    )
    ModelServer(config).run()


class RunningServer:
    """A server started by `serve_in_thread`; `url` is its OpenAI base URL."""

    def __init__(self, server: ModelServer, thread: threading.Thread, host: str, port: int):
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        """The base URL to give an OpenAI client, e.g. ``http://127.0.0.1:54321/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    @property
    def runner(self) -> ModelRunner:
        """The server's `ModelRunner` (its lock shows whether the model is busy)."""
        return _runner_of(self._server.config.app)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the server to exit (ending any generation) and wait for its thread."""
        _runner_of(self._server.config.app).shutdown.set()
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
    limits: Limits | None = None,
    api_key: str | None = None,
) -> RunningServer:
    """Start the server in a daemon thread and return once it accepts connections.

    ``port=0`` picks a free port (read it back from `RunningServer.port`). For tests,
    notebooks and evaluations that want an HTTP policy without a second process.
    """
    config = uvicorn.Config(
        create_app(policy, model_name=model_name, limits=limits, api_key=api_key),
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
        timeout_graceful_shutdown=5,
    )
    server = ModelServer(config)
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
