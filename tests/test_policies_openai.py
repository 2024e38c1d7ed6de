"""OpenAIPolicy against real loopback servers: ours with tiny models, flaky ones, a dead port."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

pytest.importorskip("httpx")
pytest.importorskip("torch")
pytest.importorskip("fastapi")

from PIL import Image

from openvirl.policies.base import PolicyError, text_message
from openvirl.policies.hf import HFPolicy
from openvirl.policies.openai_http import (
    OpenAIPolicy,
    normalize_base_url,
    to_openai_messages,
)
from openvirl.policies.server import serve_in_thread
from tiny_models import tiny_causal_lm, tiny_llava

FAST_RETRIES = {"max_retries": 2, "backoff_s": 0.01, "backoff_max_s": 0.05, "timeout_s": 5.0}


def _requests(prompts):
    return [{"messages": [text_message("user", p)], "info": {}} for p in prompts]


@pytest.fixture(scope="module")
def text_policy(tmp_path_factory):
    return HFPolicy.from_pretrained(tiny_causal_lm(tmp_path_factory.mktemp("m")), max_new_tokens=8)


@pytest.fixture(scope="module")
def text_server(text_policy):
    with serve_in_thread(text_policy, model_name="tiny") as server:
        yield server


def test_round_trip_matches_the_local_policy(text_policy, text_server):
    prompts = ["Reach 24 with 3 3 8 8.", "Turn left", "hello", "0123 4567"]
    local = text_policy.act(_requests(prompts))
    with OpenAIPolicy(text_server.url, "tiny", max_new_tokens=8, concurrency=3) as remote:
        answers = remote.act(_requests(prompts))
        assert answers == local  # greedy, so the HTTP path changes nothing
        assert remote.last_usage.requests == 4
        assert remote.last_usage.completion_tokens > 0 and remote.last_usage.prompt_tokens > 0
        assert remote.name == "openai:tiny"


def test_model_discovery_and_multi_turn(text_policy, text_server):
    conversation = [
        text_message("user", "Reach 24."),
        text_message("assistant", "1+2=3"),
        text_message("user", "You failed this trial because it is wrong."),
    ]
    local = text_policy.act([{"messages": conversation}])
    bare_host = text_server.url.removesuffix("/v1")  # `/v1` is added to a bare host
    with OpenAIPolicy(bare_host, max_new_tokens=8) as remote:
        assert remote.list_models() == ["tiny"]
        assert remote.act([{"messages": conversation}]) == local
        assert remote.model == "tiny"


def test_round_trip_with_images(tmp_path_factory):
    vlm = HFPolicy.from_pretrained(tiny_llava(tmp_path_factory.mktemp("v")), max_new_tokens=6)
    red = Image.new("RGB", (20, 16), (200, 10, 10))
    noise = Image.effect_noise((16, 16), 60).convert("RGB")
    conversation = [
        text_message("user", "What cards?", image=red),
        text_message("assistant", "K and 3"),
        text_message("user", "And now?", image=noise),
    ]
    requests = [{"messages": conversation}, {"messages": [text_message("user", "x", image=red)]}]
    local = vlm.act(requests)
    with serve_in_thread(vlm) as server, OpenAIPolicy(server.url, max_new_tokens=6) as remote:
        assert remote.act(requests) == local  # PNG data URLs are lossless
        # The server saw both images of the first conversation: its prompt is the longer one.
        assert remote.last_usage.prompt_tokens == vlm.encode(requests)["attention_mask"].sum()


def test_messages_convert_to_openai_parts():
    image = Image.new("RGB", (2, 2))
    converted = to_openai_messages(
        [text_message("user", "look", image=image), text_message("assistant", "ok")]
    )
    assert converted[1] == {"role": "assistant", "content": "ok"}
    parts = converted[0]["content"]
    assert parts[0]["type"] == "image_url"
    assert parts[0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert parts[1] == {"type": "text", "text": "look"}
    assert normalize_base_url("http://h:1/") == "http://h:1/v1"
    assert normalize_base_url("https://api.example.com/v1/") == "https://api.example.com/v1"
    with pytest.raises(ValueError, match="base_url"):
        normalize_base_url("localhost:8000")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_down_server_raises_policy_error_after_retries():
    port = _free_port()  # bound then released: nothing listens there
    policy = OpenAIPolicy(f"http://127.0.0.1:{port}/v1", "m", **FAST_RETRIES)
    start = time.perf_counter()
    with pytest.raises(PolicyError) as error:
        policy.act(_requests(["a", "b"]))
    assert time.perf_counter() - start < 5
    message = str(error.value)
    assert f"http://127.0.0.1:{port}/v1/chat/completions" in message
    assert "3 attempt(s)" in message and "ConnectError" in message


class _Scripted(BaseHTTPRequestHandler):
    """Answers POSTs from a script of (status, body) pairs, then with a valid completion."""

    script: ClassVar[list[tuple[int, str]]] = []
    seen = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("content-length", 0)))
        with self.lock:
            type(self).seen += 1
            step = self.script.pop(0) if self.script else None
        if step is None:
            body = json.dumps({"choices": [{"message": {"role": "assistant", "content": "ok"}}]})
            step = (200, body)
        status, body = step
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if status == 429:
            self.send_header("retry-after", "0")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


@pytest.fixture()
def scripted_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Scripted.seen = 0
    yield server, f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_garbage_and_server_errors_are_retried(scripted_server):
    _, url = scripted_server
    _Scripted.script = [(200, "<html>garbage"), (503, "busy"), (429, "slow down")]
    policy = OpenAIPolicy(url, "m", concurrency=1, max_retries=3, backoff_s=0.01)
    assert policy.act(_requests(["q"])) == ["ok"]
    assert _Scripted.seen == 4


def test_persistent_garbage_gives_a_clear_error(scripted_server):
    _, url = scripted_server
    _Scripted.script = [(200, '{"not": "a completion"}')] * 10
    policy = OpenAIPolicy(url, "m", concurrency=1, **FAST_RETRIES)
    with pytest.raises(PolicyError, match="not a chat completion"):
        policy.act(_requests(["q"]))
    assert _Scripted.seen == 3


def test_client_errors_are_not_retried(scripted_server):
    _, url = scripted_server
    _Scripted.script = [(401, '{"error": {"message": "bad key"}}')]
    policy = OpenAIPolicy(url, "m", concurrency=1, **FAST_RETRIES)
    with pytest.raises(PolicyError, match="HTTP 401"):
        policy.act(_requests(["q"]))
    assert _Scripted.seen == 1


def test_api_key_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    hosted = OpenAIPolicy("https://api.openai.com/v1", "m")
    assert hosted._client.headers["authorization"] == "Bearer sk-test"
    explicit = OpenAIPolicy("http://h/v1", "m", api_key="other")
    assert explicit._client.headers["authorization"] == "Bearer other"


@pytest.mark.parametrize(
    "url",
    [
        "http://h/v1",
        "http://api.openai.com/v1",  # plain http, even to OpenAI's host
        "https://api.openai.com.evil.example/v1",
        "https://evil.example/v1?host=api.openai.com",
        "http://127.0.0.1:8000/v1",
    ],
)
def test_openai_key_is_not_sent_to_other_servers(monkeypatch, url):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    with pytest.warns(UserWarning, match="OPENAI_API_KEY is not sent"):
        policy = OpenAIPolicy(url, "m")
    assert "authorization" not in policy._client.headers


def test_api_key_env_sends_a_key_to_the_server_asked(monkeypatch):
    from openvirl.policies.registry import make_policy

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("MY_SERVER_KEY", "local-token")
    policy = make_policy("openai:http://127.0.0.1:9/v1#m?api_key_env=MY_SERVER_KEY")
    assert policy._client.headers["authorization"] == "Bearer local-token"
    asked = make_policy("openai:http://127.0.0.1:9/v1#m?api_key_env=OPENAI_API_KEY")
    assert asked._client.headers["authorization"] == "Bearer sk-secret"
    with pytest.raises(ValueError, match="NOT_SET_ANYWHERE is not set"):
        make_policy("openai:http://127.0.0.1:9/v1#m?api_key_env=NOT_SET_ANYWHERE")


def test_request_seed_sets_the_sent_seed():
    from openvirl.policies.base import text_message

    policy = OpenAIPolicy("http://127.0.0.1:9/v1", "m", seed=5)
    messages = [text_message("user", "q")]
    a = policy.payload(messages, 0, request_seed=123)["seed"]
    assert a == policy.payload(messages, 7, request_seed=123)["seed"]  # not the call position
    assert a != policy.payload(messages, 0, request_seed=124)["seed"]
    assert 0 <= a < 2**31 and policy.payload(messages, 3)["seed"] == 8
