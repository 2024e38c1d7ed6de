"""HFPolicy on tiny random models: batching, padding, seeding, prompts, LoRA, images."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from openvirl.policies.base import Policy, text_message  # noqa: E402
from openvirl.policies.hf import HFPolicy, render_plain_prompt, truncate_at_stop  # noqa: E402
from tiny_models import tiny_causal_lm, tiny_llava  # noqa: E402

PROMPTS = [
    "Cards: ['K', '3', '7', 'Q']. Reach 24.",
    "Turn left",
    "The quick brown fox jumps over the lazy dog and walks 120 meters north.",
    "0123",
    "You failed this trial because your formula is incorrect.",
]


def _requests(prompts=PROMPTS):
    return [{"messages": [text_message("user", p)], "info": {}} for p in prompts]


@pytest.fixture(scope="module")
def causal_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def plain_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"), name="plain", chat_template=None)


@pytest.fixture(scope="module")
def llava_path(tmp_path_factory):
    return tiny_llava(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def policy(causal_path):
    return HFPolicy.from_pretrained(causal_path, max_new_tokens=12, batch_size=8)


def test_is_a_policy_and_loads_on_cpu_fp32(policy):
    assert isinstance(policy, Policy)
    assert policy.name == "tiny-causal-lm"
    assert policy.device.type == "cpu" and policy.model.dtype == torch.float32
    assert policy.uses_chat_template and not policy.is_vlm


def test_greedy_batch_equals_one_at_a_time_with_left_padding(policy):
    batch = policy.encode(_requests())
    mask = batch["attention_mask"]
    # Left padding: the shorter prompts start with zeros and all rows end with real tokens.
    assert (mask[:, -1] == 1).all()
    assert (mask[:, 0] == 0).any()
    assert (batch["input_ids"][mask == 0] == policy.tokenizer.pad_token_id).all()

    together = policy.act(_requests())
    alone = [policy.act(_requests([p]))[0] for p in PROMPTS]
    assert together == alone
    assert any(answer for answer in together)  # the tiny model does produce text


def test_temperature_zero_is_greedy_and_ignores_seed(policy):
    first = policy.generate(_requests(), temperature=0, seed=1)
    second = policy.generate(_requests(), temperature=0, seed=2)
    assert first == second
    # Greedy decoding is the argmax continuation: check the first token against a forward pass.
    batch = policy.encode(_requests()[:1])
    with torch.no_grad():
        logits = policy.model(**batch).logits[0, -1]
    top = policy.tokenizer.decode([int(logits.argmax())], skip_special_tokens=True)
    assert first[0].startswith(top)


def test_sampling_is_reproducible_with_a_seed_and_varies_without(causal_path):
    options = {"temperature": 1.5, "max_new_tokens": 12}
    a = HFPolicy.from_pretrained(causal_path, seed=7, **options)
    b = HFPolicy.from_pretrained(causal_path, seed=7, **options)
    first_a, first_b = a.act(_requests()), b.act(_requests())
    assert first_a == first_b  # same seed, same call number
    assert a.act(_requests()) != first_a  # the next call draws anew (seed + 1)
    assert a.generate(_requests(), seed=123) == b.generate(_requests(), seed=123)
    state = torch.get_rng_state()
    a.act(_requests())
    assert torch.equal(state, torch.get_rng_state())  # the global RNG is left alone


def test_batch_size_splits_requests(causal_path, policy):
    small = HFPolicy.from_pretrained(causal_path, max_new_tokens=12, batch_size=2)
    assert small.act(_requests()) == policy.act(_requests())
    assert small.last_usage.requests == len(PROMPTS)


def test_usage_counts_prompt_and_completion_tokens(causal_path):
    fresh = HFPolicy.from_pretrained(causal_path, max_new_tokens=5)
    answers = fresh.act(_requests())
    batch = fresh.encode(_requests())
    usage = fresh.last_usage
    assert usage.prompt_tokens == int(batch["attention_mask"].sum())
    assert 0 < usage.completion_tokens <= 5 * len(PROMPTS)
    assert usage.calls == 1 and usage.requests == len(answers)
    fresh.act(_requests()[:2])
    assert fresh.total_usage.calls == 2
    assert fresh.total_usage.prompt_tokens == usage.prompt_tokens + fresh.last_usage.prompt_tokens


def test_chat_template_and_plain_prompt_paths(policy, plain_path):
    messages = [
        text_message("user", "Reach 24."),
        text_message("assistant", "1+2=3"),
        text_message("user", "You failed this trial because it is wrong."),
    ]
    templated = policy.render(messages)
    assert templated.startswith("<|user|>\nReach 24.<|end|>\n")
    assert templated.endswith("<|assistant|>\n")
    assert not policy.add_special_tokens  # the template writes its own markers

    plain = HFPolicy.from_pretrained(plain_path, max_new_tokens=4)
    assert not plain.uses_chat_template and plain.add_special_tokens
    expected = (
        "User:\nReach 24.\n\nAssistant:\n1+2=3\n\n"
        "User:\nYou failed this trial because it is wrong.\n\nAssistant:\n"
    )
    assert plain.render(messages) == expected == render_plain_prompt(messages)
    ids = plain.encode([{"messages": messages}])["input_ids"][0].tolist()
    assert ids == plain.tokenizer(expected).input_ids
    assert len(plain.act([{"messages": messages}])) == 1

    forced_plain = HFPolicy(policy.model, policy.tokenizer, chat_template=False)
    assert forced_plain.render(messages) == expected
    with pytest.raises(ValueError, match="no chat template"):
        HFPolicy(plain.model, plain.tokenizer, chat_template=True)


def test_stop_strings_cut_the_answer(policy):
    free = policy.act(_requests())
    target = next(a for a in free if len(a) > 3)
    stop = target[2:4]
    index = free.index(target)
    cut = policy.generate(_requests(), stop=[stop])[index]
    assert cut == target[: target.find(stop)]
    assert truncate_at_stop("abc}def}", ["}"]) == "abc"
    assert truncate_at_stop("abc", None) == "abc"


def test_invalid_options_are_named(policy):
    with pytest.raises(ValueError, match="temperature"):
        policy.generate(_requests(), temperature=-1)
    with pytest.raises(ValueError, match="unknown generation option"):
        policy.generate(_requests(), beams=3)


def test_lora_adapter_changes_outputs_and_merges(causal_path, policy, tmp_path):
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(causal_path)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"
    )
    peft_model = get_peft_model(base, config)
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_" in name:
                parameter.normal_(0, 1.0)
    peft_model.save_pretrained(tmp_path / "adapter")

    plain = policy.act(_requests())
    adapted = HFPolicy.from_pretrained(causal_path, adapter=tmp_path / "adapter", max_new_tokens=12)
    merged = HFPolicy.from_pretrained(
        causal_path, adapter=tmp_path / "adapter", merge_adapter=True, max_new_tokens=12
    )
    assert adapted.name == "tiny-causal-lm+adapter"
    assert isinstance(adapted.model, PeftModel)
    assert type(merged.model).__name__ == "LlamaForCausalLM"
    with_adapter = adapted.act(_requests())
    assert with_adapter != plain
    assert adapted._can_split_prefill(64)  # peft forwards the cache: unpadded prefill applies
    assert with_adapter == _padded_generate(adapted, _requests(), 12)
    assert merged.act(_requests()) == with_adapter


def test_vlm_gets_every_image_of_a_multi_turn_conversation(llava_path):
    policy = HFPolicy.from_pretrained(llava_path, max_new_tokens=4)
    assert policy.is_vlm and policy.uses_chat_template
    red = Image.new("RGB", (24, 16), (255, 0, 0))
    blue = Image.new("RGBA", (16, 16), (0, 0, 255, 255))
    two_images = [
        text_message("user", "What cards?", image=red),
        text_message("assistant", "K and 3"),
        text_message("user", "And now?", image=blue),
    ]
    one_image = [text_message("user", "Only one", image=red)]
    no_image = [text_message("user", "Just text")]
    requests = [{"messages": m} for m in (two_images, one_image, no_image)]

    batch = policy.encode(requests)
    image_token = policy.model.config.image_token_index
    per_image = (16 // 8) ** 2  # patches per image in tiny_llava
    counts = (batch["input_ids"] == image_token).sum(dim=1).tolist()
    assert counts == [2 * per_image, per_image, 0]
    assert batch["pixel_values"].shape[0] == 3  # every image of every turn, in order
    # The first image of the conversation is red, the second blue, the third red again.
    channel_means = batch["pixel_values"].mean(dim=(2, 3))
    assert channel_means[0].argmax() == 0 and channel_means[1].argmax() == 2
    assert torch.equal(batch["pixel_values"][0], batch["pixel_values"][2])

    answers = policy.act(requests)
    assert len(answers) == 3
    # Images reach generation: a different image changes the greedy answer's logits.
    swapped = [{"messages": [text_message("user", "Only one", image=blue)]}]
    with torch.no_grad():
        logits_red = policy.model(**policy.encode(requests[1:2])).logits[0, -1]
        logits_blue = policy.model(**policy.encode(swapped)).logits[0, -1]
    assert not torch.allclose(logits_red, logits_blue)


def test_vlm_plain_prompt_writes_the_image_token(llava_path):
    policy = HFPolicy.from_pretrained(llava_path, chat_template=False, max_new_tokens=2)
    messages = [text_message("user", "Look", image=Image.new("RGB", (16, 16)))]
    assert policy.render(messages) == "User:\n<image>Look\n\nAssistant:\n"
    batch = policy.encode([{"messages": messages}])
    assert int((batch["input_ids"] == policy.model.config.image_token_index).sum()) == 4


def test_text_model_warns_and_drops_images(causal_path):
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=2)
    request = {"messages": [text_message("user", "Look", image=Image.new("RGB", (8, 8)))]}
    with pytest.warns(UserWarning, match="images in the requests are dropped"):
        assert len(policy.act([request])) == 1


def test_generation_restores_a_training_model_mode(causal_path):
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=3)
    policy.model.train()
    policy.act(_requests()[:1])
    assert policy.model.training
    policy.model.eval()


def test_plain_prompts_stop_at_the_next_user_turn_by_default(policy, plain_path):
    plain = HFPolicy.from_pretrained(plain_path, max_new_tokens=2)
    seen = []
    for target in (plain, policy):
        original = target.model.generate

        def spy(*args, _original=original, **kwargs):
            # The policy passes its cached `StopStringCriteria` (built once per stop list).
            from transformers import StopStringCriteria

            criteria = kwargs.get("stopping_criteria") or []
            strings = [list(c.stop_strings) for c in criteria if isinstance(c, StopStringCriteria)]
            seen.append(strings[0] if strings else None)
            return _original(*args, **kwargs)

        target.model.generate = spy
        try:
            target.act(_requests()[:1])
            target.generate(_requests()[:1], stop=[])
        finally:
            del target.model.generate
    assert seen == [["\n\nUser:"], None, None, None]


# ------------------------------------------------------------ batched-generation speed-ups
def _padded_generate(policy, requests, max_new_tokens, stop=None):
    """Answers of plain `model.generate` on the left-padded batch (no per-row prefill, no prefix
    cache, no length sorting): what every speed-up must reproduce exactly."""
    batch = policy.encode(requests)
    with torch.inference_mode():
        output = policy.model.generate(
            **batch,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=policy.tokenizer.pad_token_id,
        )
    ends = policy._end_token_ids()
    answers = []
    for row in output[:, batch["input_ids"].shape[1] :].tolist():
        length = next((i + 1 for i, t in enumerate(row) if t in ends), len(row))
        row = row[:length]
        if policy.tokenizer.pad_token_id in row:
            row = row[: row.index(policy.tokenizer.pad_token_id)]
        text = policy.tokenizer.decode(row, skip_special_tokens=True)
        answers.append(truncate_at_stop(text, stop))
    return answers


def _next_turn(requests, answers, feedback="You failed this trial because it is wrong."):
    """Each conversation continued by its answer and a feedback turn, as the environments do."""
    return [
        {
            "messages": [
                *request["messages"],
                text_message("assistant", answer),
                text_message("user", feedback),
            ]
        }
        for request, answer in zip(requests, answers, strict=True)
    ]


def test_unpadded_prefill_and_prefix_cache_equal_padded_generate(causal_path):
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=10, batch_size=8)
    assert policy._can_split_prefill(10**6)  # a full-attention Llama: per-row prefill applies
    requests = _requests()
    for _turn in range(3):
        answers = policy.act(requests)
        assert answers == _padded_generate(policy, requests, 10)
        requests = _next_turn(requests, answers)
    # Turns 2 and 3 reuse the states of the turns before: at least each earlier prompt.
    first = policy.encode(_requests())["attention_mask"].sum(dim=1)
    assert policy.prefix_cache.reused_tokens >= 2 * int((first - 1).sum())
    # The next turn of a conversation supersedes its previous entry: one entry each.
    assert len(policy.prefix_cache) == len(PROMPTS)


def test_decoding_past_the_caches_room_grows_it(causal_path, monkeypatch):
    from openvirl.policies import hf

    monkeypatch.setattr(hf, "GROWTH_STEP", 3)  # room for 3 tokens, then 3 more at a time
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=11)
    assert policy.act(_requests()) == _padded_generate(policy, _requests(), 11)


def test_prefix_cache_off_gives_the_same_answers(causal_path):
    cached = HFPolicy.from_pretrained(causal_path, max_new_tokens=10)
    uncached = HFPolicy.from_pretrained(causal_path, max_new_tokens=10, prefix_cache_mb=0)
    requests = _requests()
    for _turn in range(2):
        answers = cached.act(requests)
        assert uncached.act(requests) == answers
        requests = _next_turn(requests, answers)
    assert uncached.prefix_cache.reused_tokens == 0 and len(uncached.prefix_cache) == 0
    assert cached.prefix_cache.reused_tokens > 0
    with pytest.raises(ValueError, match="prefix_cache_mb"):
        HFPolicy(cached.model, cached.tokenizer, prefix_cache_mb=-1)


def test_prefix_cache_is_dropped_when_the_weights_change(causal_path):
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=8)
    policy.act(_requests())
    reused = policy.prefix_cache.reused_tokens
    policy.act(_requests())
    assert policy.prefix_cache.reused_tokens > reused  # same prompts: reused
    with torch.no_grad():
        policy.model.model.embed_tokens.weight.mul_(1.5)  # an optimizer step, in place
    reused = policy.prefix_cache.reused_tokens
    answers = policy.act(_requests())
    assert policy.prefix_cache.reused_tokens == reused  # stale states were not used
    assert answers == _padded_generate(policy, _requests(), 8)
    policy.clear_prefix_cache()
    assert len(policy.prefix_cache) == 0


def test_length_sorting_keeps_request_order_and_greedy_answers(causal_path, policy):
    small = HFPolicy.from_pretrained(causal_path, max_new_tokens=12, batch_size=2)
    widths = []
    original = small.model.generate

    def spy(*args, **kwargs):
        widths.append((kwargs["attention_mask"] == 0).sum().item())
        return original(*args, **kwargs)

    small.model.generate = spy
    try:
        assert (
            small.act(_requests())
            == policy.act(_requests())
            == _padded_generate(policy, _requests(), 12)
        )
    finally:
        del small.model.generate
    # Grouped by length, the sub-batches carry less padding than in request order.
    lengths = [len(policy.encode(_requests([p]))["input_ids"][0]) for p in PROMPTS]
    in_order = sum(max(pair) - min(pair) for pair in (lengths[0:2], lengths[2:4]) if len(pair) == 2)
    assert len(widths) == 3 and sum(widths) < in_order
    assert small._chunks([5, 1, 4, 2, 3]) == [[1, 3], [4, 2], [0]]
    assert policy._chunks([5, 1, 4]) == [[0, 1, 2]]  # one call: no reordering


def test_generation_stops_once_every_row_hit_a_stop_string(policy):
    free = policy.generate(_requests(), max_new_tokens=40)
    # One stop string from early in each answer (ASCII, so it survives byte-level decoding).
    stops = []
    for answer in free:
        start = next(i for i in range(len(answer) - 1) if answer[i : i + 2].isascii())
        stops.append(answer[start : start + 2])
    steps = []
    original = policy.model.generate

    def spy(*args, **kwargs):
        output = original(*args, **kwargs)
        steps.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    policy.model.generate = spy
    try:
        stopped = policy.generate(_requests(), max_new_tokens=40, stop=stops)
    finally:
        del policy.model.generate
    # Same text as running to max_new_tokens and cutting at the first stop string ...
    assert stopped == [truncate_at_stop(answer, stops) for answer in free]
    # ... but the batch ended as soon as every row had written one.
    assert steps[0] < 40


def _sliding_window_model(kind: str, window: int):
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig, MistralConfig, MistralForCausalLM

    from tiny_models import tiny_tokenizer

    tokenizer = tiny_tokenizer()
    common = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        sliding_window=window,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    if kind == "mistral":  # every layer slides
        return MistralForCausalLM(MistralConfig(**common)).eval(), tokenizer
    # Gemma-3 interleaves sliding and full layers (the embedded model's architecture)
    config = Gemma3TextConfig(
        **common, head_dim=8, layer_types=["sliding_attention", "full_attention"]
    )
    return Gemma3ForCausalLM(config).eval(), tokenizer


@pytest.mark.parametrize("kind", ["mistral", "gemma3"])
@pytest.mark.parametrize("window", [8, 256])
def test_sliding_window_models_split_prefill_only_while_the_window_holds_everything(kind, window):
    model, tokenizer = _sliding_window_model(kind, window)
    policy = HFPolicy(model, tokenizer, max_new_tokens=6)
    requests = _requests()
    width = int(policy.encode(requests)["attention_mask"].sum(dim=1).max())
    fits = width + 6 <= window
    assert width > 8 and policy._can_split_prefill(width + 6) == fits
    for _turn in range(2):  # the second turn reuses the first's states when they were kept
        answers = policy.act(requests)
        assert answers == _padded_generate(policy, requests, 6)
        requests = _next_turn(requests, answers)
    assert (len(policy.prefix_cache) > 0) == fits
    assert (policy.prefix_cache.reused_tokens > 0) == fits


def test_prefix_cache_matching_and_eviction():
    from openvirl.policies.hf import PrefixCache, _PrefixEntry, common_prefix_length

    def entry(tokens, nbytes=10):
        return _PrefixEntry(np.asarray(tokens), len(tokens), [], nbytes)

    assert common_prefix_length(np.array([1, 2, 3]), np.array([1, 2, 4, 5])) == 2
    assert common_prefix_length(np.array([1, 2]), np.array([1, 2, 4])) == 2
    assert common_prefix_length(np.array([7]), np.array([1])) == 0
    cache = PrefixCache(max_bytes=30, max_entries=3)
    for tokens in ([1, 2, 3], [1, 2, 9, 9], [5, 6]):
        cache.add(entry(tokens))
    key, shared = cache.match(np.array([1, 2, 9, 8]))
    assert shared == 3 and cache.entries[key].tokens.tolist() == [1, 2, 9, 9]
    cache.add(entry([7]))  # over budget: the least recently used ([1, 2, 3]) goes
    assert [e.tokens.tolist() for e in cache.entries.values()] == [[5, 6], [1, 2, 9, 9], [7]]
    assert cache.nbytes == 30
    cache.add(entry([8], nbytes=31))  # larger than the whole budget: not kept
    assert len(cache) == 3
    cache.discard(key)
    assert cache.match(np.array([1, 2]))[1] == 0 and cache.nbytes == 20


def test_growing_layer_writes_in_place_grows_and_falls_back():
    from openvirl.policies import hf

    room = torch.zeros(2, 1, 4, 2), torch.zeros(2, 1, 4, 2)
    layer = hf._growing_layer_class()(*room, 2)
    assert layer.get_seq_length() == 2
    keys, _ = layer.update(torch.ones(2, 1, 1, 2), torch.ones(2, 1, 1, 2))
    assert keys.shape[-2] == 3 and keys.data_ptr() == room[0].data_ptr()  # no copy
    keys, values = layer.update(torch.full((2, 1, 2, 2), 2.0), torch.full((2, 1, 2, 2), 2.0))
    assert keys.shape[-2] == 5 and keys.data_ptr() != room[0].data_ptr()  # out of room: grown
    assert layer._room[0].shape[-2] == 5 + hf.GROWTH_STEP
    assert keys[0, 0, :, 0].tolist() == [0, 0, 1, 2, 2] == values[1, 0, :, 0].tolist()
    grown = layer._room[0].data_ptr()
    assert layer.update(torch.ones(2, 1, 1, 2), torch.ones(2, 1, 1, 2))[0].data_ptr() == grown
    layer.batch_select_indices(torch.tensor([1]))  # states replaced: plain concatenation
    keys, _ = layer.update(torch.full((1, 1, 1, 2), 3.0), torch.full((1, 1, 1, 2), 3.0))
    assert keys[0, 0, :, 0].tolist() == [0, 0, 1, 2, 2, 1, 3]


def test_act_accepts_bare_conversations_as_the_readme_shows(policy):
    bare = [[{"role": "user", "content": PROMPTS[0]}], [text_message("user", PROMPTS[1])]]
    assert policy.act(bare) == policy.act(_requests(PROMPTS[:2]))


def test_mllama_sub_batches_never_mix_image_counts(tmp_path, monkeypatch):
    """Mllama pads every row to the batch's most images, and its tokens before a row's first
    image attend to the padding slots too: evaluation must generate each image count apart,
    as PPO does, so an answer does not depend on the other rows of its batch."""
    from tiny_models import image_turn as turn
    from tiny_models import three_shapes, tiny_mllama

    policy = HFPolicy.from_pretrained(tiny_mllama(tmp_path / "models"), max_new_tokens=5)
    wide, square, tall = three_shapes()

    two = {"messages": [turn(wide), text_message("assistant", "x"), turn(square)]}
    one = {"messages": [turn(tall)]}
    requests = [one, two, {"messages": [turn(square)]}, two]
    alone = [policy.act([r])[0] for r in requests]

    calls = []
    generate = policy.model.generate

    def spy(**kwargs):
        calls.append((kwargs["aspect_ratio_ids"] > 0).sum(-1).tolist())
        return generate(**kwargs)

    monkeypatch.setattr(policy.model, "generate", spy)
    assert policy.act(requests) == alone
    assert sorted(len(c) for c in calls) == [2, 2]
    assert all(len(set(counts)) == 1 for counts in calls)  # one image count per call
