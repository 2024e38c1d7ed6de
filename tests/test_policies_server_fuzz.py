"""Hostile requests against `serve-model` (loopback only, bounded in count and time): no 500,
every refusal an OpenAI error body, bounded memory, and the server still healthy after.

Also a hypothesis property test: the request parser raises nothing but `RequestError`.
"""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import time
import zlib
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from PIL import Image  # noqa: E402

from openvirl.policies.hf import HFPolicy  # noqa: E402
from openvirl.policies.server import Limits, serve_in_thread  # noqa: E402
from openvirl.policies.server_protocol import (  # noqa: E402
    RequestError,
    parse_chat,
    parse_completion,
    parse_json,
)
from tiny_models import tiny_causal_lm  # noqa: E402

FUZZ_REQUESTS = 300
"""Most hostile requests sent."""
FUZZ_SECONDS = 60.0
"""Stop sending after this long, whatever the count (the CPU may be shared)."""
RSS_GROWTH_MB = 250
"""Largest resident-memory growth allowed over the whole run, after a warm-up."""
ALLOWED = {200, 400, 401, 404, 405, 413, 415}
"""Every status a hostile request may get (no 5xx)."""


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def _png(width: int, height: int, claimed: tuple[int, int] | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (3, 4, 5)).save(buffer, format="PNG")
    data = bytearray(buffer.getvalue())
    if claimed is not None:  # a header that lies about the size (a decompression bomb's)
        header = struct.pack(">IIBBBBB", *claimed, 8, 2, 0, 0, 0)
        data[16:29] = header
        data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    return bytes(data)


def _values(rng: random.Random) -> object:
    """A hostile JSON value."""
    choices = [
        lambda: rng.choice([10**30, -(10**30), 2**63, -1, 0, 1, 17, 10**6]),
        lambda: rng.choice([1e-300, -0.0, 1e300, 0.5, 2.5, 5e-324]),
        lambda: rng.choice([True, False, None]),
        lambda: "x" * rng.choice([0, 1, 100, 70_000]),
        lambda: "\ud800\udfff\x00<script>",
        lambda: [rng.choice([1, "a", None, {}])] * rng.choice([1, 5, 50]),
        lambda: {"type": rng.choice(["text", "json_schema", "function", 3])},
        lambda: _nested(rng.choice([10, 500, 900])),  # deeper ones go as raw bytes
    ]
    return rng.choice(choices)()


def _nested(depth: int) -> object:
    value: object = []
    for _ in range(depth):
        value = [value]
    return value


FIELDS = [
    "model",
    "messages",
    "prompt",
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
    "tools",
    "response_format",
    "logit_bias",
    "echo",
    "best_of",
    "zzz",
]


def _image_part(rng: random.Random) -> dict:
    kind = rng.choice(["bomb", "huge", "garbage", "truncated", "ok", "svg", "not-base64"])
    if kind == "bomb":
        data = _png(1, 1, claimed=(rng.choice([12_000, 20_000, 65_535]),) * 2)
    elif kind == "huge":
        data = _png(1, 1, claimed=(1, 2**31 - 1))
    elif kind == "garbage":
        data = rng.randbytes(200)
    elif kind == "truncated":
        data = _png(32, 32)[:60]
    elif kind == "svg":
        data = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"
    else:
        data = _png(16, 16)
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    if kind == "not-base64":
        url = "data:image/png;base64,%%%%"
    return {"type": "image_url", "image_url": {"url": url}}


def _hostile(rng: random.Random, name: str) -> dict:
    """One request: method, path, headers and body bytes."""
    headers = {"content-type": "application/json"}
    path = rng.choice(["/v1/chat/completions"] * 6 + ["/v1/completions"] * 2 + ["/v1/models"])
    body: dict = {"model": name, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    if path == "/v1/completions":
        body = {"model": name, "prompt": "Cards:", "max_tokens": 2}
    kind = rng.randrange(9)
    if kind == 0:  # a hostile value in a field
        body[rng.choice(FIELDS)] = _values(rng)
    elif kind == 1:  # hostile messages
        body["messages"] = [
            {
                "role": rng.choice(["user", "system", "tool", "assistant", "root", 5]),
                "content": rng.choice(
                    ["hi", None, 7, [_image_part(rng), {"type": "text", "text": "?"}], [{}]]
                ),
            }
            for _ in range(rng.choice([1, 2, 300]))
        ]
    elif kind == 2:  # raw bytes that are not a request
        raw = rng.choice(
            [
                rng.randbytes(rng.choice([1, 100, 5000])),
                b"[" * 200_000,
                b'{"model": "' + b"\xff\xfe" * 10 + b'"}',
                b'{"max_tokens": ' + b"9" * 5000 + b"}",
                b'{"max_tokens": 1e400, "temperature": NaN}',
                b"",
                b"null",
            ]
        )
        return {"method": "POST", "path": path, "headers": headers, "content": raw}
    elif kind == 3:  # wrong content type or Host
        if rng.random() < 0.5:
            headers["content-type"] = rng.choice(["text/plain", "multipart/form-data", ""])
        else:
            headers["host"] = rng.choice(["evil.example", "127.0.0.1.evil.example", "[::2]"])
    elif kind == 4:  # an oversized body
        body["messages"] = [{"role": "user", "content": "z" * (2**20 + 10)}]
    elif kind == 5:  # odd paths and methods
        return {
            "method": rng.choice(["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "POST"]),
            "path": rng.choice(
                ["/", "/v1", "/v1/models/../../etc/passwd", "/v1/models/%00", "/docs", "/health"]
            ),
            "headers": headers,
            "content": b"{}",
        }
    elif kind == 6:  # expensive but legal: the time limit bounds it
        body.update(n=rng.choice([1, 4, 16]), max_tokens=rng.choice([8, 64, 900]))
        body.update(stream=rng.random() < 0.5, logprobs=path.endswith("chat/completions"))
        if path.endswith("/completions") and "prompt" in body:
            body["logprobs"] = 5
    elif kind == 7:  # stop strings
        body["stop"] = rng.choice([["a"] * 5, ["x" * 100], [""], "Y", [1, 2], ["\ud800"]])
    else:  # a text prompt near the character bound
        text = "Turn left " * rng.choice([10, 200, 5000])
        if "prompt" in body:
            body["prompt"] = text
        else:
            body["messages"] = [{"role": "user", "content": text}]
    content = json.dumps(body).encode("utf-8", "surrogatepass")
    return {"method": "POST", "path": path, "headers": headers, "content": content}


def test_hostile_requests_get_no_500_and_memory_stays_bounded(tmp_path):
    policy = HFPolicy.from_pretrained(tiny_causal_lm(tmp_path), max_new_tokens=4)
    limits = Limits(
        max_body_bytes=2**20,
        max_image_pixels=256 * 256,
        max_request_pixels=4 * 256 * 256,
        request_timeout_s=2.0,
    )
    rng = random.Random(0)
    with serve_in_thread(policy, limits=limits) as server, httpx.Client(timeout=30) as client:
        base = f"http://{server.host}:{server.port}"
        for _ in range(20):  # warm-up: allocator pools, stop-string tables, tokenizer caches
            request = _hostile(rng, policy.name)
            client.request(request["method"], base + request["path"], **_send(request))
        start_rss, start = _rss_mb(), time.monotonic()
        statuses: dict[int, int] = {}
        sent = 0
        while sent < FUZZ_REQUESTS and time.monotonic() - start < FUZZ_SECONDS:
            request = _hostile(rng, policy.name)
            reply = client.request(request["method"], base + request["path"], **_send(request))
            sent += 1
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
            assert reply.status_code in ALLOWED, (reply.status_code, reply.text[:300], request)
            if reply.status_code != 200:
                assert set(reply.json()["error"]) == {"message", "type", "param", "code"}
        growth = _rss_mb() - start_rss
        assert httpx.get(f"{base}/health").json()["status"] == "ok"
    assert sent >= 50, f"only {sent} requests in {FUZZ_SECONDS} s"
    assert statuses.get(400, 0) > sent // 4 and statuses.get(200, 0) > 0, statuses
    assert growth < RSS_GROWTH_MB, f"RSS grew {growth:.0f} MB over {sent} requests"
    print(f"fuzz: {sent} requests, statuses {statuses}, RSS growth {growth:.0f} MB")


def _send(request: dict) -> dict:
    return {"headers": request["headers"], "content": request["content"]}


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
KEYS = st.sampled_from([*FIELDS, "messages", "messages"])
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "tool", "x"]), "content": JSON}
)


@settings(max_examples=300, deadline=None)
@given(
    body=st.dictionaries(KEYS, JSON, max_size=6),
    messages=st.one_of(st.none(), st.lists(MESSAGE, max_size=3)),
)
def test_the_parser_raises_only_request_errors(body, messages):
    if messages is not None:
        body["messages"] = messages
    body.setdefault("model", "m")
    for parse in (parse_chat, parse_completion):
        try:
            job = parse(body, "m", 1024)
        except RequestError as error:
            assert 400 <= error.status < 500 and str(error)
        else:
            assert 1 <= job.n <= 16 and (job.max_tokens is None or job.max_tokens <= 1024)
    with pytest.raises(RequestError):
        parse_json(json.dumps(messages).encode() if messages is not None else b"]")
