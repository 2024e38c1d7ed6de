"""HFPolicy on tiny random models: batching, padding, seeding, prompts, LoRA, images."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

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
            seen.append(kwargs.get("stop_strings"))
            return _original(*args, **kwargs)

        target.model.generate = spy
        try:
            target.act(_requests()[:1])
            target.generate(_requests()[:1], stop=[])
        finally:
            del target.model.generate
    assert seen == [["\n\nUser:"], None, None, None]
