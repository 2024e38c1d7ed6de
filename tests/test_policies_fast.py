"""The packed oneDNN generation path (`openvirl.policies.fast`) on tiny random models."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    # The LoRA layers multiplied by one packed W + s B A; their small A and B were not used.
    q_proj = packed.model.base_model.model.model.layers[0].self_attn.q_proj
    assert fast.packed_layers(q_proj) == 1
    assert fast.packed_layers(q_proj.lora_A["default"]) == 0


@needs_onednn
def test_merged_lora_follows_weight_updates_and_disabled_adapters(causal_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = get_peft_model(
        AutoModelForCausalLM.from_pretrained(causal_path),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"]),
    ).eval()
    layer = model.base_model.model.model.layers[0].mlp.down_proj
    fast.install(model, "fp32")
    torch.manual_seed(2)
    x = torch.randn(3, 5, layer.in_features)
    with torch.no_grad():
        layer.lora_B["default"].weight.normal_(0, 0.5)
        expected = layer(x)  # peft's own forward (no inference mode)
    with torch.inference_mode():
        got = layer(x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert fast.packed_layers(layer) == 1
    # An optimizer step changes B in place: the next inference repacks.
    with torch.no_grad():
        layer.lora_B["default"].weight.mul_(-2.0)
        expected = layer(x)
    with torch.inference_mode():
        torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)
        # Disabled adapters (PPO's reference model): the base layer alone.
        with model.disable_adapter():
            base = layer(x)
    torch.testing.assert_close(base, layer.base_layer(x.clone()), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(base, expected, atol=1e-3)
    # Dropout in effect (train mode): peft's forward, which applies it.
    layer.lora_dropout["default"] = torch.nn.Dropout(0.5).train()
    with torch.inference_mode():
        assert fast._merged_adapters(layer, x) == []
    # `reference` removes the merged forward too.
    fast.install(model, "reference")
    assert "forward" not in layer.__dict__ and fast.packed_layers(model) == 0


def test_precision_is_validated_with_a_clear_error(causal_path):
    with pytest.raises(
        ValueError, match="`precision` must be one of shortlist, fp32, bf16, reference"
    ):
        HFPolicy.from_pretrained(causal_path, precision="fp16")
    with pytest.raises(ValueError, match="`precision` must be one of"):
        make_policy(f"hf:{causal_path}?precision=int4")


def test_default_is_reference_for_models_other_than_the_embedded_one(causal_path):
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=4)
    assert policy.precision == "reference"
    assert not fast.is_embedded_model(policy.model)
    assert make_policy(f"hf:{causal_path}?precision=fp32").precision in ("fp32", "reference")


@needs_onednn
def test_embedded_model_defaults_to_shortlist_with_or_without_peft(tmp_path):
    import json

    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from openvirl.policies import embedded

    # A folder that looks prepared (named as the embedded model, with its marker).
    folder = tiny_causal_lm(tmp_path, name=embedded.EMBEDDED_MODEL_NAME)
    (folder / embedded.MARKER_FILE).write_text(json.dumps({"dtype": "float32"}))
    policy = HFPolicy.from_pretrained(folder, max_new_tokens=4)
    expected = "shortlist" if fast.available("shortlist") else "fp32"
    assert policy.precision == expected
    # A trainer's LoRA-wrapped model (PPO builds `HFPolicy(model, ...)` itself) is recognised.
    model = AutoModelForCausalLM.from_pretrained(folder)
    wrapped = get_peft_model(model, LoraConfig(r=2, target_modules=["q_proj"]))
    assert fast.is_embedded_model(wrapped)
    assert HFPolicy(wrapped, policy.processor).precision == expected
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


# ---------------------------------------------------------------- the output layer's shortlist
needs_bf16 = pytest.mark.skipif(not fast.available("shortlist"), reason="no oneDNN bf16 kernels")


def _output_layer(vocab: int = 1024, features: int = 96, seed: int = 0) -> torch.nn.Linear:
    """A bias-free output layer whose rows come in near-identical pairs (near-ties)."""
    generator = torch.Generator().manual_seed(seed)
    layer = torch.nn.Linear(features, vocab, bias=False)
    with torch.no_grad():
        half = torch.randn(vocab // 2, features, generator=generator) * 0.05
        twins = half + torch.randn(half.shape, generator=generator) * 1e-4
        layer.weight.copy_(torch.cat([half, twins]))
    fast.install(layer, "shortlist")
    assert fast.installed_precision(layer) == "shortlist"
    return layer


@needs_bf16
@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), scale=st.sampled_from([1e-3, 0.3, 1.0, 8.0, 200.0]))
def test_shortlist_bound_holds_and_its_argmax_is_the_float32_one(seed, scale):
    layer = _output_layer(seed=seed % 7)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(6, layer.in_features, generator=generator) * scale
    x[0] = layer.weight[3] / layer.weight[3].norm() * scale * 10  # a clear winner (row 3)
    x[1] = (layer.weight[5] + layer.weight[5 + 512]) * scale  # twins: a near-tie
    exact = torch.nn.functional.linear(x, layer.weight)
    with torch.inference_mode(), fast.argmax_only():
        got = layer(x)
        approx = torch.ops.mkldnn._linear_pointwise(
            x.to(torch.bfloat16), fast._packed_weight(layer, "bf16"), None, "none", [], ""
        ).float()
    norm = float(layer.weight.norm(dim=1).max())
    bound = fast.shortlist_bound(x, norm, approx.amax(-1), approx.amin(-1))
    assert ((approx - exact).abs() <= bound[:, None]).all()
    assert torch.equal(got.argmax(-1), exact.argmax(-1))
    # The winners are float32 values, not their bf16 approximations.
    rows = torch.arange(len(x))
    torch.testing.assert_close(got[rows, exact.argmax(-1)], exact.max(-1).values)


@needs_bf16
def test_shortlist_only_inside_argmax_only_and_falls_back_when_unsure(monkeypatch):
    layer = _output_layer()
    x = torch.randn(4, layer.in_features)
    exact = torch.nn.functional.linear(x, layer.weight)
    with torch.inference_mode():
        full = layer(x)  # no argmax_only: the float32 product everywhere
        with fast.argmax_only():
            short = layer(x)
            with fast.argmax_only(False):
                nested = layer(x)
    torch.testing.assert_close(full, exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(nested, exact, rtol=1e-5, atol=1e-5)
    assert (short - exact).abs().max() > 1e-4  # the tail really is bf16
    assert torch.equal(short.argmax(-1), exact.argmax(-1))
    # Too many candidates in a row: the whole product in float32 instead.
    monkeypatch.setattr(fast, "MAX_SHORTLIST", 0)
    with torch.inference_mode(), fast.argmax_only():
        torch.testing.assert_close(layer(x), exact, rtol=1e-5, atol=1e-5)
    monkeypatch.undo()
    # Non-finite input: no bound, the float32 product (NaN where the reference has NaN).
    x[1, 0] = float("nan")
    with torch.inference_mode(), fast.argmax_only():
        out = layer(x)
    assert torch.isnan(out[1]).all() and torch.isfinite(out[0]).all()
    # Training and gradients never see it.
    with fast.argmax_only():
        assert torch.equal(layer(x[:1].clone()), torch.nn.functional.linear(x[:1], layer.weight))


def _noise(rows: int, vocab: int, temperature: float, seed: int = 0) -> fast.GumbelNoise:
    generators = [torch.Generator().manual_seed(seed + i) for i in range(rows)]
    noise = fast.GumbelNoise(generators, temperature)
    noise.current(vocab)
    return noise


@needs_bf16
@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-3, 0.3, 1.0, 8.0, 200.0]),
    temperature=st.sampled_from([0.05, 0.2, 1.0, 3.0]),
)
def test_sampling_shortlist_draws_the_float32_gumbel_argmax(seed, scale, temperature):
    layer = _output_layer(seed=seed % 7)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(6, layer.in_features, generator=generator) * scale
    x[1] = (layer.weight[5] + layer.weight[5 + 512]) * scale  # twins: a near-tie
    exact = torch.nn.functional.linear(x, layer.weight)
    noise = _noise(len(x), layer.out_features, temperature, seed % 1000)
    with torch.inference_mode():
        full = layer(x)  # outside `sampling`: the packed float32 product
        with fast.sampling(noise):
            got = layer(x)
    # The token a sampler takes from these logits is the one float32 logits give.
    assert torch.equal(noise.scores(got).argmax(-1), noise.scores(exact).argmax(-1))
    winners = noise.scores(exact).argmax(-1)
    rows = torch.arange(len(x))
    torch.testing.assert_close(got[rows, winners], exact[rows, winners])
    # Noise for another number of rows (a prefill over several positions): float32 logits.
    with torch.inference_mode(), fast.sampling(_noise(3, layer.out_features, temperature)):
        assert torch.equal(layer(x), full)


def test_gumbel_noise_is_one_draw_per_step_and_row():
    noise = _noise(2, 50, 0.5, seed=4)
    first = noise.current(50)
    assert noise.current(50) is first  # the layer and the sampler read the same draw
    assert torch.isfinite(first).all()
    noise.advance()
    second = noise.current(50)
    assert not torch.equal(first, second)
    # A row's draws depend on its own generator only, not on its batch mates.
    alone = _noise(1, 50, 0.5, seed=5)
    torch.testing.assert_close(alone.current(50)[0], first[1])
    with pytest.raises(ValueError, match="temperature > 0"):
        fast.GumbelNoise([torch.Generator()], 0.0)


def test_gumbel_row_sampler_samples_the_tempered_softmax():
    from openvirl.policies.hf import GumbelRowSampler, RowSampler, row_sampler

    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, 0.5]])
    temperature, draws = 0.7, 4000
    counts = torch.zeros(5)
    sampler = GumbelRowSampler([123], temperature, torch.device("cpu"))
    for _ in range(draws):
        out = sampler(torch.zeros(1, 1, dtype=torch.long), logits.clone())
        assert (out == 0).sum() == 1 and torch.isinf(out).sum() == 4
        counts[out[0].argmax()] += 1
    expected = torch.softmax(logits[0] / temperature, -1) * draws
    # Pearson's chi-square with 4 degrees of freedom: 18.5 is its 0.999 quantile.
    assert float(((counts - expected) ** 2 / expected).sum()) < 18.5
    assert isinstance(row_sampler([1], torch.device("cpu"), 0.7), GumbelRowSampler)
    assert isinstance(row_sampler([1], torch.device("cpu"), 0.7, top_p=0.9), RowSampler)
    assert isinstance(row_sampler([1], torch.device("cpu"), 0.7, top_k=5), RowSampler)


@needs_bf16
def test_shortlist_serves_greedy_calls_and_plain_sampling(causal_path, monkeypatch):
    calls = []
    original = fast._shortlist_logits

    def counting(layer, rows, noise=None):
        calls.append(rows.shape[0])
        return original(layer, rows, noise)

    monkeypatch.setattr(fast, "_shortlist_logits", counting)
    reference = HFPolicy.from_pretrained(causal_path, max_new_tokens=16, precision="reference")
    short = HFPolicy.from_pretrained(causal_path, max_new_tokens=16, precision="shortlist")
    assert short.precision == "shortlist" and fast.packed_layers(short.model) == 0
    assert short.act(_requests()) == reference.act(_requests())
    assert calls  # greedy decoding went through the shortlist
    # Sampling seeded rows at a temperature (as evaluation and PPO sample) is a Gumbel argmax:
    # the shortlist serves it too, and draws what float32 and plain torch logits draw.
    calls.clear()
    seeded = [{**request, "seed": i} for i, request in enumerate(_requests())]
    packed = HFPolicy.from_pretrained(causal_path, max_new_tokens=16, precision="fp32")
    sampled = short.generate(seeded, temperature=1.3)
    assert calls
    assert sampled == packed.generate(seeded, temperature=1.3)
    assert sampled == reference.generate(seeded, temperature=1.3)
    assert sampled != short.generate(_requests(), temperature=0.0)  # it really sampled
    # Top-p truncates the distribution: no argmax form, float32 logits.
    calls.clear()
    truncated = short.generate(seeded, temperature=1.3, top_p=0.9)
    assert not calls
    assert truncated == packed.generate(seeded, temperature=1.3, top_p=0.9)
    # A caller's logits processor (the server's log-probabilities) also gets float32 logits.
    from transformers import LogitsProcessorList

    seen = []

    def watch(input_ids, scores):
        seen.append(scores.clone())
        return scores

    hooks = {"logits_processor": LogitsProcessorList([watch])}
    short.generate(_requests()[:1], generate_kwargs=hooks)
    assert seen and not calls


def test_stop_criterion_is_built_once_per_stop_list(causal_path):
    policy = HFPolicy.from_pretrained(causal_path, max_new_tokens=8, precision="reference")
    first = policy.stop_criterion(["\n\nUser:"])
    assert policy.stop_criterion(["\n\nUser:"]) is first
    assert policy.stop_criterion(["}"]) is not first
    policy.act(_requests()[:2])
    assert len(policy._stop_criteria) >= 1
    # Bounded, least recently used first out (a server's clients pick their own stop lists).
    from openvirl.policies import hf

    for i in range(hf.STOP_CRITERIA_KEPT + 3):
        policy.stop_criterion([f"stop{i}"])
    assert len(policy._stop_criteria) == hf.STOP_CRITERIA_KEPT
    assert ("stop0",) not in policy._stop_criteria


def test_embedded_model_shortlist_answers_equal_the_reference():
    """The real Gemma-3-270M, where prepared in the test cache: greedy answers identical."""
    from openvirl.policies import embedded

    if not embedded.is_prepared() or not fast.available("shortlist"):
        pytest.skip("embedded model not prepared in the test cache, or no bf16 kernels")
    policy = HFPolicy.from_pretrained("gemma-3-270m", max_new_tokens=12, precision="reference")
    requests = _requests()[:3]
    reference = policy.act(requests)
    short = HFPolicy(policy.model, policy.processor, max_new_tokens=12, precision="shortlist")
    assert short.act(requests) == reference
