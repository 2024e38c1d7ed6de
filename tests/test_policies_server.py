"""The OpenAI-compatible model server: endpoints, request parsing, errors, the CLI command."""

from __future__ import annotations

import base64
import functools
import io

import pytest

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from openvirl.policies.base import Usage, message_images, message_text  # noqa: E402
from openvirl.policies.hf import HFPolicy  # noqa: E402
from openvirl.policies.server import serve_in_thread  # noqa: E402
from openvirl.policies.server_protocol import RequestError, from_openai_messages  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402


class EchoPolicy:
    """Answers with what it saw, so tests can check the server's message conversion."""

    name = "echo"

    def __init__(self):
        self.last_usage = Usage(prompt_tokens=3, completion_tokens=2, requests=1, calls=1)

    def act(self, requests):
        messages = requests[0]["messages"]
        sizes = [image.size for m in messages for image in message_images(m)]
        return [f"{len(messages)}|{message_text(messages[-1])}|{sizes}"]


class BrokenPolicy:
    name = "broken"

    def act(self, requests):
        raise RuntimeError("the model fell over")


def _png_url(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def echo_server():
    with serve_in_thread(EchoPolicy()) as server:
        yield server


def _chat(server, **body):
    body.setdefault("model", "echo")
    return httpx.post(f"{server.url}/chat/completions", json=body, timeout=30)


def test_health_and_models(echo_server):
    assert httpx.get(f"{echo_server.url.removesuffix('/v1')}/health").json() == {
        "status": "ok",
        "model": "echo",
    }
    models = httpx.get(f"{echo_server.url}/models").json()
    assert models["object"] == "list" and models["data"][0]["id"] == "echo"


def test_openai_messages_with_images_reach_the_policy(echo_server):
    image = Image.new("RGB", (7, 5), (1, 2, 3))
    messages = [
        {"role": "system", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": _png_url(image)}},
                {"type": "text", "text": "cards?"},
            ],
        },
        {"role": "assistant", "content": "K"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "again"},
                {"type": "image_url", "image_url": _png_url(image)},
            ],
        },
    ]
    reply = _chat(echo_server, messages=messages)
    assert reply.status_code == 200
    body = reply.json()
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"] == {
        "role": "assistant",
        "content": "4|again|[(7, 5), (7, 5)]",
    }
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"messages": []}, "non-empty list"),
        ({"messages": [{"content": "no role"}]}, "role"),
        ({"messages": [{"role": "user", "content": [{"type": "audio"}]}]}, "'audio'"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                        ],
                    }
                ]
            },
            "never fetches",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,!!!"}}
                        ],
                    }
                ]
            },
            "could not decode",
        ),
        ({"messages": [{"role": "user", "content": "hi"}], "n": 0}, "`n`"),
        ({"messages": [{"role": "user", "content": "hi"}], "logprobs": True}, "log-prob"),
    ],
)
def test_bad_requests_get_400_with_a_reason(echo_server, body, fragment):
    reply = _chat(echo_server, **body)
    assert reply.status_code == 400
    assert fragment in reply.json()["error"]["message"]


def test_not_json_gets_400(echo_server):
    reply = httpx.post(
        f"{echo_server.url}/chat/completions",
        content=b"{oops",
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert reply.status_code == 400
    assert "not valid JSON" in reply.json()["error"]["message"]


def test_policy_failure_is_a_500_with_the_cause():
    with serve_in_thread(BrokenPolicy()) as server:
        reply = _chat(server, model="broken", messages=[{"role": "user", "content": "hi"}])
    assert reply.status_code == 500
    assert "the model fell over" in reply.json()["error"]["message"]


def test_request_sampling_fields_reach_generate(tmp_path):
    policy = HFPolicy.from_pretrained(tiny_causal_lm(tmp_path), max_new_tokens=6)
    messages = [{"role": "user", "content": "Reach 24"}]
    with serve_in_thread(policy) as server:
        chat = functools.partial(_chat, server, model=policy.name, messages=messages)
        greedy = chat().json()["choices"][0]["message"]["content"]
        sampled = [chat(temperature=2.0, seed=s, max_tokens=6).json() for s in (1, 1, 2)]
        short = chat(max_tokens=2).json()
    texts = [s["choices"][0]["message"]["content"] for s in sampled]
    assert texts[0] == texts[1]  # same seed, same sample
    assert len({greedy, texts[0], texts[2]}) >= 2
    assert short["usage"]["completion_tokens"] <= 2
    assert short["choices"][0]["finish_reason"] == "length"
    assert policy.options["temperature"] == 0.0  # per-request options never stick


def test_from_openai_messages_rejects_bad_content():
    with pytest.raises(RequestError):
        from_openai_messages([{"role": "user", "content": 5}])
    assert from_openai_messages([{"role": "assistant", "content": None}])[0] == [
        {"role": "assistant", "content": []}
    ]
