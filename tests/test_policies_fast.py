"""The packed oneDNN generation path (`openvirl.policies.fast`) on tiny random models."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from openvirl.policies import fast  # noqa: E402
from openvirl.policies.base import text_message  # noqa: E402
from openvirl.policies.hf import HFPolicy  # noqa: E402
from openvirl.policies.registry import make_policy  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402

PROMPTS = [
    "Cards: ['K', '3', '7', 'Q']. Reach 24.",
    "Turn left",
    "The quick brown fox jumps over the lazy dog and walks 120 meters north.",
    "0123",
    "You failed this trial because your formula is incorrect.",
]

needs_onednn = pytest.mark.skipif(not fast.available("fp32"), reason="no oneDNN linear kernels")


@pytest.fixture(autouse=True)
def pack_every_layer(monkeypatch):
    """Tiny models' layers are all below the packing threshold: pack them anyway here."""
    monkeypatch.setattr(fast, "MIN_PACKED_WEIGHTS", 0)


def _requests():
    return [{"messages": [text_message("user", p)], "info": {}} for p in PROMPTS]


@pytest.fixture(scope="module")
def causal_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


@needs_onednn
def test_fp32_fast_path_gives_the_reference_greedy_answers(causal_path):
    reference = HFPolicy.from_pretrained(causal_path, max_new_tokens=16, precision="reference")
    packed = HFPolicy.from_pretrained(causal_path, max_new_tokens=16, precision="fp32")
    assert reference.precision == "reference" and packed.precision == "fp32"
    assert fast.packed_layers(packed.model) == 0
    answers = packed.act(_requests())
    assert fast.packed_layers(packed.model) > 0  # every projection and the output layer
    assert fast.packed_layers(reference.model) == 0
    assert answers == reference.act(_requests())
    assert "precision=fp32" in repr(packed)


@needs_onednn
def test_packed_linear_matches_torch_and_leaves_training_alone(causal_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(causal_path)
    assert fast.install(model, "fp32") == "fp32"
    layer = model.model.layers[0].self_attn.q_proj
    x = torch.randn(3, 5, layer.in_features)
    expected = torch.nn.functional.linear(x, layer.weight)
    with torch.inference_mode():
        got = layer(x)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    # Outside inference mode the module's own forward runs: exact, and differentiable.
    y = layer(x.requires_grad_())
    assert torch.equal(y, expected)
    y.sum().backward()
    assert layer.weight.grad is not None
    # An in-place weight change (an optimizer step) is picked up: the packed copy is rebuilt.
    with torch.no_grad():
        layer.weight.mul_(-2.0)
    with torch.inference_mode():
        after = layer(x.detach())
    torch.testing.assert_close(after, -2.0 * expected, rtol=1e-5, atol=1e-5)
    # A trainer's deep copy (PPO's frozen reference) works and multiplies the same way.
    import copy

    twin = copy.deepcopy(model)
    with torch.inference_mode():
        torch.testing.assert_close(twin.model.layers[0].self_attn.q_proj(x.detach()), after)
    assert fast.packed_layers(twin) > 0 and "forward" in twin.lm_head.__dict__
    # Back to the reference: no instance forward left behind.
    assert fast.install(model, "reference") == "reference"
    assert "forward" not in layer.__dict__
    assert fast.installed_precision(model) == "reference"


@pytest.mark.skipif(not fast.available("bf16"), reason="no oneDNN bf16 kernels on this CPU")
def test_bf16_path_stays_close_to_float32(causal_path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(causal_path).eval()
    ids = torch.tensor([[1, 5, 9, 14, 30, 2, 7]])
    with torch.inference_mode():
        expected = model(input_ids=ids).logits
        fast.install(model, "bf16")
        got = model(input_ids=ids).logits
    assert got.dtype == torch.float32
    assert not torch.equal(got, expected)  # really computed in bf16
    # bf16 keeps 8 significant bits: logits agree to a few percent of their spread.
    assert (got - expected).abs().max() < 0.05 * expected.abs().max()
    assert (got.argmax(-1) == expected.argmax(-1)).float().mean() >= 0.8


@needs_onednn
def test_lora_adapter_generates_the_same_through_the_fast_path(causal_path, tmp_path):
    from peft import LoraConfig, get_peft_model
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

    options = {"adapter": tmp_path / "adapter", "max_new_tokens": 12}
    reference = HFPolicy.from_pretrained(causal_path, precision="reference", **options)
    packed = HFPolicy.from_pretrained(causal_path, precision="fp32", **options)
    plain = HFPolicy.from_pretrained(causal_path, max_new_tokens=12, precision="reference")
    answers = packed.act(_requests())
    assert answers == reference.act(_requests())
    assert answers != plain.act(_requests())  # the adapter is really applied
    lora_a = packed.model.base_model.model.model.layers[0].self_attn.q_proj.lora_A["default"]
    assert fast.packed_layers(lora_a) == 1


def test_precision_is_validated_with_a_clear_error(causal_path):
    with pytest.raises(ValueError, match="`precision` must be one of fp32, bf16, reference"):
        HFPolicy.from_pretrained(causal_path, precision="fp16")
    with pytest.raises(ValueError, match="`precision` must be one of"):
        make_policy(f"hf:{causal_path}?precision=int4")


def test_default_is_reference_for_models_other_than_the_embedded_one(causal_path):
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=4)
    assert policy.precision == "reference"
    assert not fast.is_embedded_model(policy.model)
    assert make_policy(f"hf:{causal_path}?precision=fp32").precision in ("fp32", "reference")


@needs_onednn
def test_embedded_model_defaults_to_fp32_with_or_without_peft(tmp_path):
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from openvirl.policies import embedded

    # A folder that looks prepared (named as the embedded model, with its marker).
    folder = tiny_causal_lm(tmp_path, name=embedded.EMBEDDED_MODEL_NAME)
    (folder / embedded.MARKER_FILE).write_text(json.dumps({"dtype": "float32"}))
    policy = HFPolicy.from_pretrained(folder, max_new_tokens=4)
    assert policy.precision == "fp32"
    # A trainer's LoRA-wrapped model (PPO builds `HFPolicy(model, ...)` itself) is recognised.
    model = AutoModelForCausalLM.from_pretrained(folder)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert fast.is_embedded_model(wrapped)
    assert HFPolicy(wrapped, policy.processor).precision == "fp32"
    assert HFPolicy(wrapped, policy.processor, precision="reference").precision == "reference"


@needs_onednn
def test_small_layers_keep_torch_forward_by_default(causal_path, monkeypatch):
    monkeypatch.setattr(fast, "MIN_PACKED_WEIGHTS", 2**19)
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=4, precision="fp32")
    policy.act(_requests()[:2])
    assert fast.packed_layers(policy.model) == 0  # every tiny layer is under the threshold
    # A single row (batch-1 decoding) also keeps torch's matrix-vector product.
    monkeypatch.setattr(fast, "MIN_PACKED_WEIGHTS", 0)
    layer = policy.model.lm_head
    x = torch.randn(1, 1, layer.in_features)
    with torch.inference_mode():
        assert torch.equal(layer(x), torch.nn.functional.linear(x, layer.weight))
    assert fast.packed_layers(policy.model) == 0
