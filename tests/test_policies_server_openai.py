"""`serve-model` as the official OpenAI Python client sees it: a real uvicorn server on loopback
serving the tiny random Llama, answering n > 1, streams, log-probabilities, legacy
completions and errors exactly as the client parses them."""

from __future__ import annotations

import json

import pytest

openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
torch = pytest.importorskip("torch")

from openvirl.policies.base import text_message  # noqa: E402
from openvirl.policies.hf import HFPolicy  # noqa: E402
from openvirl.policies.server import serve_in_thread  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402

MESSAGES = [{"role": "user", "content": "Reach 24 with 3 3 8 8."}]
LOCAL = [text_message("user", "Reach 24 with 3 3 8 8.")]
"""`MESSAGES` as the policy receives it."""


@pytest.fixture(scope="module")
def policy(tmp_path_factory):
    return HFPolicy.from_pretrained(tiny_causal_lm(tmp_path_factory.mktemp("m")), max_new_tokens=8)


@pytest.fixture(scope="module")
def server(policy):
    with serve_in_thread(policy) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    with openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=60) as c:
        yield c


def _local(policy, n=1, **options):
    return policy.generate([{"messages": LOCAL}] * n, **options)


def test_models_list_and_retrieve(client, policy):
    assert [m.id for m in client.models.list()] == [policy.name]
    assert client.models.retrieve(policy.name).id == policy.name
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-5")
    assert missing.value.body["code"] == "model_not_found"


def test_n_choices_are_the_policys_samples(client, policy):
    reply = client.chat.completions.create(
        model=policy.name, messages=MESSAGES, n=3, temperature=1.0, seed=5, max_tokens=6
    )
    assert [c.index for c in reply.choices] == [0, 1, 2]
    texts = [c.message.content for c in reply.choices]
    assert texts == _local(policy, 3, temperature=1.0, seed=5, max_new_tokens=6)
    assert len(set(texts)) > 1  # sampled rows differ
    assert reply.usage.completion_tokens <= 18
    assert reply.usage.prompt_tokens == policy.last_usage.prompt_tokens // 3


def test_stream_is_incremental_and_equals_the_whole_answer(client, policy):
    whole = client.chat.completions.create(
        model=policy.name, messages=MESSAGES, n=2, temperature=1.0, seed=3, max_tokens=8
    )
    stream = client.chat.completions.create(
        model=policy.name,
        messages=MESSAGES,
        n=2,
        temperature=1.0,
        seed=3,
        max_tokens=8,
        stream=True,
        stream_options={"include_usage": True},
    )
    texts, finish, pieces = ["", ""], [None, None], 0
    usage = None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            pieces += bool(choice.delta.content)
            finish[choice.index] = choice.finish_reason or finish[choice.index]
    assert texts == [c.message.content for c in whole.choices]
    assert finish == [c.finish_reason for c in whole.choices]
    assert pieces > 4  # token by token, not one finished piece
    assert usage is not None and usage.completion_tokens == whole.usage.completion_tokens


def test_raw_stream_is_server_sent_events_ending_with_done(server, policy):
    body = {"model": policy.name, "messages": MESSAGES, "stream": True, "max_tokens": 4}
    with httpx.stream("POST", f"{server.url}/chat/completions", json=body, timeout=30) as reply:
        assert reply.headers["content-type"].startswith("text/event-stream")
        events = [line for line in reply.iter_lines() if line]
    assert all(line.startswith("data: ") for line in events)
    assert events[-1] == "data: [DONE]"
    first = json.loads(events[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"


def test_stop_string_ends_the_stream_and_the_answer(client, policy):
    greedy = _local(policy, max_new_tokens=8)[0]
    stop = greedy[len(greedy) // 2 :][:2]
    expected = greedy[: greedy.index(stop)]
    reply = client.chat.completions.create(
        model=policy.name, messages=MESSAGES, max_tokens=8, stop=[stop]
    )
    assert reply.choices[0].message.content == expected
    assert reply.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(
        model=policy.name, messages=MESSAGES, max_tokens=8, stop=[stop], stream=True
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected


def test_logprobs_are_the_models_own(client, policy):
    reply = client.chat.completions.create(
        model=policy.name,
        messages=MESSAGES,
        max_tokens=5,
        logprobs=True,
        top_logprobs=3,
        stop=[],
    )
    content = reply.choices[0].logprobs.content
    assert len(content) == reply.usage.completion_tokens == 5
    # Greedy decoding: the chosen token is the most likely one, and the numbers are those of
    # transformers' own raw logits for the same prompt.
    batch = policy.encode([{"messages": LOCAL}])
    output = policy.model.generate(
        **batch,
        max_new_tokens=5,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=policy.tokenizer.pad_token_id,
        eos_token_id=None,
    )
    for entry, logits in zip(content, output.logits, strict=True):
        reference = torch.log_softmax(logits[0].float(), -1)
        assert entry.logprob == pytest.approx(float(reference.max()), abs=1e-4)
        assert [t.logprob for t in entry.top_logprobs] == sorted(
            (t.logprob for t in entry.top_logprobs), reverse=True
        )
        assert entry.top_logprobs[0].token == entry.token
        assert len(entry.top_logprobs) == 3
        assert bytes(entry.bytes).decode("utf-8", "replace") == entry.token


def test_legacy_completions(client, policy):
    prompt = "Cards: ['K', '3'"
    reply = client.completions.create(
        model=policy.name, prompt=prompt, max_tokens=5, n=2, logprobs=2
    )
    local = policy.generate([{"prompt": prompt}] * 2, stop=[], max_new_tokens=5)
    assert [c.text for c in reply.choices] == local
    assert reply.object == "text_completion"
    assert len(reply.choices[0].logprobs.tokens) == 5
    assert all(len(top) == 2 for top in reply.choices[0].logprobs.top_logprobs)
    # The raw prompt gets the tokenizer's BOS and no chat template.
    assert reply.usage.prompt_tokens == len(policy.tokenizer(prompt)["input_ids"])
    stream = client.completions.create(model=policy.name, prompt=prompt, max_tokens=5, stream=True)
    assert "".join(c.choices[0].text for c in stream if c.choices) == local[0]


@pytest.mark.parametrize(
    ("extra", "code"),
    [
        ({"tools": [{"type": "function", "function": {"name": "submit"}}]}, "unsupported"),
        ({"response_format": {"type": "json_object"}}, "unsupported"),
        ({"presence_penalty": 0.5}, "unsupported"),
        ({"logit_bias": {"5": 10}}, "unsupported"),
        ({"max_token": 5}, "unsupported"),  # a typo is not silently the default
        ({"top_logprobs": 2}, None),  # without logprobs
        ({"n": 17}, None),
    ],
)
def test_unsupported_fields_are_400s_naming_the_field(client, policy, extra, code):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model=policy.name, messages=MESSAGES, extra_body=extra)
    error = refused.value.body
    assert error["param"] == next(iter(extra))
    assert code is None or error["code"].startswith(code)


def test_neutral_values_of_unsupported_fields_are_accepted(client, policy):
    reply = client.chat.completions.create(
        model=policy.name,
        messages=MESSAGES,
        max_tokens=2,
        response_format={"type": "text"},
        presence_penalty=0,
        tools=[],
        user="someone",
    )
    assert reply.choices[0].message.content == _local(policy, max_new_tokens=2)[0]


def test_unknown_model_is_a_400(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert refused.value.body["code"] == "model_not_found"
    assert "gpt-4o" in refused.value.body["message"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/v1/nothing", 404),
        ("GET", "/", 404),
        ("DELETE", "/v1/models", 405),
        ("GET", "/v1/chat/completions", 405),
    ],
)
def test_404_and_405_are_openai_errors(server, method, path, status):
    reply = httpx.request(method, f"http://{server.host}:{server.port}{path}", timeout=10)
    assert reply.status_code == status
    assert set(reply.json()["error"]) == {"message", "type", "param", "code"}


def test_only_logprob_requests_add_a_logits_processor(policy):
    """A greedy request without log-probabilities must leave the logits unread, so `HFPolicy`
    may take the embedded model's argmax shortlist; its streamed text is still every row's."""
    from openvirl.policies.server_generation import TokenWatch

    tokenizer = policy.tokenizer
    assert (
        "logits_processor"
        not in TokenWatch(tokenizer, 1, end_ids=set(), pad_id=None, stop=()).generate_kwargs()
    )
    assert (
        "logits_processor"
        in TokenWatch(
            tokenizer, 1, end_ids=set(), pad_id=None, stop=(), top_logprobs=0
        ).generate_kwargs()
    )
    # n choices of one prompt in HFPolicy's sub-batches of 2, 2 and 1 rows: the stopping
    # criterion alone must move on to the next sub-batch's rows
    prompts = [{"messages": LOCAL}] * 5
    plain = TokenWatch(tokenizer, len(prompts), end_ids=set(), pad_id=None, stop=())
    batch_size, policy.batch_size = policy.batch_size, 2
    try:
        want = policy.generate(prompts, temperature=0.0)
        got = policy.generate(prompts, temperature=0.0, generate_kwargs=plain.generate_kwargs())
    finally:
        policy.batch_size = batch_size
    assert got == want and want[0]
    assert [row.text for row in plain.rows] == want
