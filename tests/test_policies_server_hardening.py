"""`serve-model` under hostile and unlucky requests (issue 17): runaway generation, memory,
Host names, content types, API keys, malformed numbers and bad command lines.

Every server here binds 127.0.0.1; long generations use a tiny Llama whose config claims a
100k-token context, so a request can ask for tens of thousands of tokens (minutes of CPU)
and each test checks that the server stops it long before.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib

import pytest

httpx = pytest.importorskip("httpx")
openai = pytest.importorskip("openai")
pytest.importorskip("torch")

from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from openvirl.cli import app as cli_app  # noqa: E402
from openvirl.policies.hf import HFPolicy  # noqa: E402
from openvirl.policies.server import Limits, serve, serve_in_thread  # noqa: E402
from tiny_models import tiny_causal_lm, tiny_llava  # noqa: E402

LONG_CONTEXT = 100_000
"""What the long-context tiny model's config claims (its weights do not care)."""
LONG = 90_000
"""A max_tokens that would run for minutes on a CPU if nothing stopped it."""


def long_context_model(tmp_path):
    path = tiny_causal_lm(tmp_path, name="tiny-long")
    config = json.loads((path / "config.json").read_text())
    config["max_position_embeddings"] = LONG_CONTEXT
    (path / "config.json").write_text(json.dumps(config))
    return path


@pytest.fixture(scope="module")
def long_path(tmp_path_factory):
    return long_context_model(tmp_path_factory.mktemp("long"))


@pytest.fixture(scope="module")
def long_policy(long_path):
    return HFPolicy.from_pretrained(long_path, max_new_tokens=8)


def _body(policy, **fields):
    body = {"model": policy.name, "messages": [{"role": "user", "content": "hi"}]}
    body.update(fields)
    return body


def _post(server, body=None, *, content=None, headers=None, path="/chat/completions", **kw):
    headers = {"content-type": "application/json", **(headers or {})}
    if body is not None:
        content = json.dumps(body).encode()
    return httpx.post(f"{server.url}{path}", content=content, headers=headers, **kw)


def _wait_until(predicate, timeout_s, message):
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, message
        time.sleep(0.02)


def _long_request_in_background(server, policy, client_timeout_s):
    """A request for `LONG` tokens whose client gives up after `client_timeout_s` seconds."""

    def send():
        with contextlib.suppress(httpx.TimeoutException):  # the client leaves
            _post(server, _body(policy, max_tokens=LONG), timeout=client_timeout_s)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    _wait_until(server.runner.lock.locked, 10, "the long request never reached the model")
    return thread


# ----------------------------------------------------------------------------- runaway
def test_checks_come_before_the_model_lock_and_a_left_client_stops_generation(long_policy):
    with serve_in_thread(long_policy, limits=Limits(request_timeout_s=120)) as server:
        thread = _long_request_in_background(server, long_policy, client_timeout_s=4)
        # While the model is busy, hopeless requests are refused at once, not queued.
        for fields in (
            {"max_tokens": 10**30},
            {"max_tokens": LONG_CONTEXT + 1},
            {"messages": [{"role": "user", "content": "a" * (LONG_CONTEXT * 20)}]},
        ):
            start = time.monotonic()
            reply = _post(server, _body(long_policy, **fields), timeout=10)
            assert reply.status_code == 400, reply.text
            assert reply.json()["error"]["code"] == "context_length_exceeded"
            assert time.monotonic() - start < 3
            assert server.runner.lock.locked()  # the long one is still generating
        # Its client gives up after 4 s; generation stops within moments, not minutes.
        thread.join(10)
        _wait_until(lambda: not server.runner.lock.locked(), 10, "generation outlived its client")
        assert long_policy.last_usage.completion_tokens < LONG


def test_requests_beyond_the_waiting_limit_get_503(long_policy):
    limits = Limits(request_timeout_s=60, max_waiting=1)
    with serve_in_thread(long_policy, limits=limits) as server:
        thread = _long_request_in_background(server, long_policy, client_timeout_s=3)
        reply = _post(server, _body(long_policy, max_tokens=2), timeout=10)
        assert reply.status_code == 503
        assert reply.json()["error"]["code"] == "overloaded"
        thread.join(10)
        _wait_until(lambda: not server.runner.lock.locked(), 10, "generation outlived its client")


def test_a_closed_stream_stops_generation(long_policy):
    with serve_in_thread(long_policy) as server:
        body = _body(long_policy, max_tokens=LONG, stream=True)
        headers = {"content-type": "application/json"}
        with httpx.stream(
            "POST", f"{server.url}/chat/completions", json=body, headers=headers, timeout=30
        ) as reply:
            assert reply.status_code == 200
            lines = (line for line in reply.iter_lines() if line)
            for _ in range(5):  # the role chunk, then tokens as they are generated
                assert next(lines).startswith("data: ")
            assert server.runner.lock.locked()
        _wait_until(lambda: not server.runner.lock.locked(), 10, "the stream outlived its client")
        assert long_policy.last_usage.completion_tokens < LONG


def test_each_request_has_a_time_limit(long_policy):
    with serve_in_thread(long_policy, limits=Limits(request_timeout_s=1.0)) as server:
        start = time.monotonic()
        reply = _post(server, _body(long_policy, max_tokens=LONG), timeout=60)
        elapsed = time.monotonic() - start
    assert reply.status_code == 200
    choice = reply.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert 0 < reply.json()["usage"]["completion_tokens"] < LONG
    assert elapsed < 10


def test_the_context_caps_prompt_and_completion(tmp_path):
    policy = HFPolicy.from_pretrained(tiny_causal_lm(tmp_path), max_new_tokens=8)  # 1024 positions
    with serve_in_thread(policy, limits=Limits(request_timeout_s=1.0)) as server:
        runner = server.runner
        assert runner.context == 1024
        huge = "a" * (1024 * runner.chars_per_token + 1)
        cheap = _post(server, _body(policy, messages=[{"role": "user", "content": huge}]))
        assert "characters" in cheap.json()["error"]["message"]  # refused before tokenizing
        long_prompt = "Turn left " * 300  # fewer characters than the bound, more tokens than fit
        exact = _post(server, _body(policy, messages=[{"role": "user", "content": long_prompt}]))
        assert exact.status_code == 400
        assert "for the prompt" in exact.json()["error"]["message"]
        both = _post(server, _body(policy, max_tokens=1020))  # a short prompt + 1020 > 1024
        assert both.status_code == 400 and both.json()["error"]["param"] == "max_tokens"
        fits = _post(server, _body(policy, max_tokens=1000), timeout=60)  # runs until 1 s
        assert fits.status_code == 200


def test_serve_model_command_serves_and_sigterm_stops_it_mid_generation(long_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    command = [sys.executable, "-m", "openvirl", "serve-model"]
    command += ["--policy", f"hf:{long_path}?max_new_tokens=4", "--port", str(port)]
    command += ["--log-level", "warning"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("OPENVIRL_API_KEY", None)
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _healthy(base, process), 120, "the server did not come up")
        assert httpx.get(f"{base}/health").json() == {"status": "ok", "model": "tiny-long"}
        body = {"model": "tiny-long", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx.post(f"{base}/v1/chat/completions", json=body, timeout=60).json()
        assert 0 < reply["usage"]["completion_tokens"] <= 4  # the spec's max_new_tokens
        body.update(max_tokens=LONG, stream=True)
        with httpx.stream("POST", f"{base}/v1/chat/completions", json=body, timeout=60) as reply:
            lines = reply.iter_lines()
            for _ in range(4):
                next(lines)  # it is generating now
            process.send_signal(signal.SIGTERM)
            start = time.monotonic()
            process.wait(timeout=30)
        assert time.monotonic() - start < 15
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _healthy(base, process):
    assert process.poll() is None, process.stdout.read().decode()
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


# ----------------------------------------------------------------------------- memory
@pytest.fixture(scope="module")
def small_server(tmp_path_factory):
    policy = HFPolicy.from_pretrained(
        tiny_causal_lm(tmp_path_factory.mktemp("s")), max_new_tokens=4
    )
    limits = Limits(max_body_bytes=2**20)
    with serve_in_thread(policy, limits=limits) as server:
        yield server, policy


@pytest.fixture(scope="module")
def vlm_server(tmp_path_factory):
    policy = HFPolicy.from_pretrained(tiny_llava(tmp_path_factory.mktemp("v")), max_new_tokens=2)
    limits = Limits(max_image_pixels=64 * 64, max_request_pixels=2 * 64 * 64)
    with serve_in_thread(policy, limits=limits) as server:
        yield server, policy


def test_oversized_bodies_are_413_before_parsing(small_server):
    server, policy = small_server
    big = _body(policy, messages=[{"role": "user", "content": "x" * (2 * 2**20)}])
    assert _post(server, big).status_code == 413
    # A chunked body (no Content-Length) is cut off as it arrives.
    payload = json.dumps(big).encode()
    chunks = (payload[i : i + 65536] for i in range(0, len(payload), 65536))
    reply = httpx.post(
        f"{server.url}/chat/completions",
        content=chunks,
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "request_too_large"


def _png(width, height):
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (9, 9, 9)).save(buffer, format="PNG")
    return buffer.getvalue()


def _claimed_png(width, height):
    """A 1x1 PNG whose header claims `width` x `height` pixels (a decompression bomb's header)."""
    data = bytearray(_png(1, 1))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data[16:29] = header
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header) & 0xFFFFFFFF)
    return bytes(data)


def _image_message(data):
    url = "data:image/png;base64," + base64.b64encode(data).decode()
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]


@pytest.mark.parametrize(("width", "height"), [(65, 64), (12_000, 12_000), (20_000, 20_000)])
def test_images_over_the_pixel_cap_are_400s_before_decoding(vlm_server, width, height):
    server, policy = vlm_server
    reply = _post(server, _body(policy, messages=_image_message(_claimed_png(width, height))))
    assert reply.status_code == 400
    assert "pixels" in reply.json()["error"]["message"]


def test_images_within_the_cap_decode(vlm_server):
    server, policy = vlm_server
    reply = _post(server, _body(policy, messages=_image_message(_png(64, 64))), timeout=30)
    assert reply.status_code == 200, reply.text
    three = _image_message(_png(64, 64)) * 3  # each within the cap, together over it
    assert "pixels" in _post(server, _body(policy, messages=three)).json()["error"]["message"]


def test_a_text_only_model_refuses_images(small_server):
    server, policy = small_server
    reply = _post(server, _body(policy, messages=_image_message(_png(8, 8))))
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "image_input_not_supported"


# ----------------------------------------------------------------------------- who may ask
@pytest.mark.parametrize("host", ["evil.example", "evil.example:80", "192.168.1.5", ""])
def test_only_loopback_host_names_by_default(small_server, host):
    server, _ = small_server
    reply = httpx.get(f"{server.url}/models", headers={"host": host})
    assert reply.status_code == 400
    assert reply.json()["error"]["code"] == "invalid_host"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]", "localhost:8000"])
def test_loopback_host_names_are_accepted(small_server, host):
    server, _ = small_server
    assert httpx.get(f"{server.url}/models", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_posts_must_be_json(small_server, content_type):
    server, policy = small_server
    headers = {"content-type": content_type} if content_type else {}
    reply = httpx.post(
        f"{server.url}/chat/completions", content=json.dumps(_body(policy)), headers=headers
    )
    assert reply.status_code == 415
    assert reply.json()["error"]["code"] == "unsupported_media_type"


def test_api_key_is_required_when_set(tmp_path):
    policy = HFPolicy.from_pretrained(tiny_causal_lm(tmp_path), max_new_tokens=2)
    with serve_in_thread(policy, api_key="s3cret") as server:
        assert httpx.get(f"{server.url}/models").status_code == 401
        wrong = httpx.get(f"{server.url}/models", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{server.url.removesuffix('/v1')}/health").status_code == 200
        with openai.OpenAI(base_url=server.url, api_key="s3cret", max_retries=0) as client:
            reply = client.chat.completions.create(
                model=policy.name, messages=[{"role": "user", "content": "hi"}]
            )
            assert reply.choices[0].message.content is not None
        with (
            openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0) as client,
            pytest.raises(openai.AuthenticationError),
        ):
            client.models.list()


def test_binding_beyond_loopback_needs_a_key(small_server):
    _, policy = small_server
    with pytest.raises(ValueError, match="API key"):
        serve(policy, host="0.0.0.0", port=0)


# ----------------------------------------------------------------------------- malformed values
@pytest.mark.parametrize(
    "raw",
    [
        b'{"max_tokens": 1e400}',
        b'{"max_tokens": 5.5}',
        b'{"max_tokens": -3}',
        b'{"max_tokens": "ten"}',
        b'{"stop": [1, 2]}',
        b'{"stop": ["a", "b", "c", "d", "e"]}',
        b'{"temperature": 1e-300}',
        b'{"temperature": -1}',
        b'{"temperature": NaN}',
        b'{"top_p": Infinity}',
        b'{"seed": 1e300}',
        b'{"n": true}',
        b'{"stream": "yes"}',
        b'{"logprobs": true, "top_logprobs": 99}',
    ],
)
def test_bad_numbers_and_types_are_400s(small_server, raw):
    server, policy = small_server
    fields = raw.decode()[1:-1]
    base = json.dumps(_body(policy))[:-1]
    reply = _post(server, content=f"{base}, {fields}}}".encode())
    assert reply.status_code == 400, reply.text
    assert reply.json()["error"]["message"]


def test_lone_surrogates_in_text_are_replaced_not_a_500(small_server):
    server, policy = small_server
    raw = json.dumps(_body(policy, stop=["\ud800"], max_tokens=2))
    raw = raw.replace('"hi"', '"h\\udfffi"')
    reply = _post(server, content=raw.encode())
    assert reply.status_code == 200, reply.text
    prompt = {"model": policy.name, "prompt": "a\ud800", "max_tokens": 2}
    assert _post(server, prompt, path="/completions").status_code == 200


def test_deeply_nested_bodies_are_400s(small_server):
    server, _ = small_server
    for depth in (200_000, 5_000):
        reply = _post(server, content=b"[" * depth + b"]" * depth)
        assert reply.status_code == 400
        assert reply.json()["error"]["type"] == "invalid_request_error"


# ----------------------------------------------------------------------------- the command line
@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--policy", "gpt5"], "unknown policy kind"),
        (["--policy", "hf:/nonexistent/model"], "no model folder"),
        (["--port", "99999"], "--port"),
        (["--policy", "oracle"], "info"),
        (["--policy", "random"], "info"),
        (["--host", "0.0.0.0", "--policy", "oracle"], "info"),
        (["--host", "0.0.0.0"], "--api-key"),
    ],
)
def test_bad_command_lines_are_one_line_errors(args, fragment, monkeypatch):
    monkeypatch.delenv("OPENVIRL_API_KEY", raising=False)
    result = CliRunner().invoke(cli_app, ["serve-model", *args])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0], result.output


def test_the_api_key_can_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENVIRL_API_KEY", "from-env")
    result = CliRunner().invoke(
        cli_app, ["serve-model", "--host", "0.0.0.0", "--policy", "hf:/nonexistent/model"]
    )
    assert result.exit_code == 2
    assert "no model folder" in result.output  # past the key check: the key was found
