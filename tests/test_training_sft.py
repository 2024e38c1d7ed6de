"""SFT through TRL on a tiny model: loss falls, weights move, labels mask prompts, resume."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from openvirl.training.checkpoint import latest_checkpoint  # noqa: E402
from openvirl.training.logging import read_metrics  # noqa: E402
from openvirl.training.sft import SFTRunConfig, train_sft  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


def _config(model_path, out, **overrides):
    options = dict(
        model=str(model_path),
        n_examples=24,
        max_steps=6,
        batch_size=4,
        learning_rate=1e-2,
        warmup_steps=0,
        save_steps=3,
        keep_last=None,
        output_dir=str(out),
    )
    options.update(overrides)
    return SFTRunConfig(**options)


def test_full_sft_lowers_loss_moves_weights_and_logs_flops(tmp_path, model_path):
    before = load_file(str(model_path / "model.safetensors"))
    result = train_sft(_config(model_path, tmp_path / "run", lora=False))
    losses = [h["losses/sft_loss"] for h in result.history if "losses/sft_loss" in h]
    assert len(losses) == 6 and losses[-1] < losses[0]
    after = load_file(str(result.final_dir / "model.safetensors"))
    assert any(not torch.equal(before[k], after[k]) for k in before)
    # FLOPs = 6 N tokens, logged with the metrics and stored in the checkpoint marker.
    assert result.flops == pytest.approx(6 * result.n_params * result.train_tokens)
    series = read_metrics(result.output_dir / "metrics.csv")
    assert series["charts/gflops"][-1][1] == pytest.approx(result.flops / 1e9)
    assert (latest_checkpoint(result.output_dir / "checkpoints") / "trainer_state.json").exists()


def test_lora_sft_trains_only_adapter_on_completion_tokens(tmp_path, model_path, monkeypatch):
    from trl import SFTTrainer

    from openvirl.training import sft as sft_module

    seen = {}
    base = sft_module._completion_trainer_class()

    class Spy(base):
        def compute_loss(self, model, inputs, *args, **kwargs):
            loss = super().compute_loss(model, inputs, *args, **kwargs)
            if "labels" not in seen:
                seen.update(labels=inputs["labels"].clone(), input_ids=inputs["input_ids"].clone())
                # The answer-only LM head gives TRL's own loss on the same batch.
                with torch.no_grad():
                    theirs = SFTTrainer.compute_loss(self, model, dict(inputs), *args, **kwargs)
                seen["losses"] = (float(loss), float(theirs))
            return loss

    monkeypatch.setattr(sft_module, "_completion_trainer_class", lambda: Spy)
    result = train_sft(_config(model_path, tmp_path / "lora", max_steps=2))
    mine, theirs = seen["losses"]
    assert mine == pytest.approx(theirs, rel=1e-5)
    labels, ids = seen["labels"], seen["input_ids"]
    assert (labels[:, :40] == -100).all()  # the prompt (far longer than 40 tokens) is masked
    trained = labels != -100
    assert trained.any() and torch.equal(labels[trained], ids[trained])
    adapter = load_file(str(result.final_dir / "adapter_model.safetensors"))
    assert adapter and all("lora" in k for k in adapter)


def test_resume_after_interruption_ends_where_an_uninterrupted_run_does(tmp_path, model_path):
    full = train_sft(_config(model_path, tmp_path / "full"))
    # The interrupted run stops after 3 steps (its checkpoint-3), then resumes to 6.
    train_sft(_config(model_path, tmp_path / "cut", max_steps=3))
    resumed = train_sft(_config(model_path, tmp_path / "cut", resume=True))
    assert resumed.steps == 6 and resumed.train_tokens == full.train_tokens
    a = load_file(str(full.final_dir / "adapter_model.safetensors"))
    b = load_file(str(resumed.final_dir / "adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)


def _vl_sft_first_batch(path, out, **options):
    """Two SFT steps of `path` on GP-VL card images; the result and the first collated batch
    (a spy around `vision_collator`, the collator the trainer really uses)."""
    import openvirl.training.data as data_module

    seen = {}
    original = data_module.vision_collator

    def spy(processor, pad_id):
        collate = original(processor, pad_id)

        def wrapped(rows):
            batch = collate(rows)
            seen.setdefault("batch", batch)
            return batch

        return wrapped

    data_module.vision_collator = spy
    try:
        result = train_sft(
            _config(
                path,
                out,
                max_steps=2,
                n_examples=8,
                max_length=None,
                env_kwargs={
                    "rule": "id",
                    "split": "train",
                    "visual": True,
                    "suits": "black",
                    "image_size": 256,
                },
                **options,
            )
        )
    finally:
        data_module.vision_collator = original
    return result, seen["batch"]


def test_vlm_sft_on_card_images_goes_through_the_processor(tmp_path):
    from tiny_models import tiny_llava

    path = tiny_llava(tmp_path / "models")
    result, batch = _vl_sft_first_batch(path, tmp_path / "vl")
    from transformers import AutoProcessor

    image_token = AutoProcessor.from_pretrained(path).tokenizer.convert_tokens_to_ids("<image>")
    per_row = (batch["input_ids"] == image_token).sum(-1)
    assert batch["pixel_values"].shape[0] == 4 and (per_row == 4).all()  # 4 patches per image
    assert (batch["labels"][batch["input_ids"] == image_token] == -100).all()
    assert result.steps == 2 and (result.final_dir / "adapter_model.safetensors").is_file()


def test_mllama_sft_step_on_card_images(tmp_path):
    """Llama 3.2 Vision (Mllama, the paper's model) on GP-VL: the collator hands the model each
    row's tiles and aspect ratios and the processor's per-token cross-attention mask (padded
    like the ids), the loss is finite and the adapter moves."""
    import math

    from transformers import AutoProcessor

    from tiny_models import MLLAMA_IMAGE_TOKEN, tiny_mllama

    path = tiny_mllama(tmp_path / "models")
    result, batch = _vl_sft_first_batch(path, tmp_path / "mllama", learning_rate=1e-2)
    image_token = AutoProcessor.from_pretrained(path).tokenizer.convert_tokens_to_ids(
        MLLAMA_IMAGE_TOKEN
    )
    rows, width = batch["input_ids"].shape
    assert batch["pixel_values"].shape[:3] == (rows, 1, 2)  # one image of up to 2 tiles a row
    assert batch["aspect_ratio_ids"].shape == (rows, 1)
    cross = batch["cross_attention_mask"]
    assert cross.shape == (rows, width, 1, 2)
    for r in range(rows):
        start = int((batch["input_ids"][r] == image_token).nonzero()[0])
        seen_image = cross[r, :, 0].any(-1)
        assert not seen_image[:start].any()  # text before the image does not see it
        assert torch.equal(seen_image[start:], batch["attention_mask"][r, start:].bool())
    losses = [h["losses/sft_loss"] for h in result.history if "losses/sft_loss" in h]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    adapter = load_file(str(result.final_dir / "adapter_model.safetensors"))
    assert any(("lora_B" in k) and v.abs().sum() > 0 for k, v in adapter.items())


def test_segments_with_schedule_steps_follow_one_schedule(tmp_path, model_path):
    """The study's SFT branch runs in segments (resume with a larger `max_steps`); with
    `schedule_steps` the cosine learning rate continues across them instead of restarting."""

    def rates(result):
        return [h["charts/learning_rate"] for h in result.history if "charts/learning_rate" in h]

    options = dict(lr_scheduler="cosine", save_steps=1, keep_last=1, schedule_steps=6)
    whole = train_sft(_config(model_path, tmp_path / "whole", **options))
    first = train_sft(_config(model_path, tmp_path / "cut", max_steps=3, **options))
    second = train_sft(_config(model_path, tmp_path / "cut", resume=True, **options))
    assert rates(first) + rates(second) == pytest.approx(rates(whole))
    restarted = train_sft(
        _config(
            model_path, tmp_path / "restart", max_steps=3, **{**options, "schedule_steps": None}
        )
    )
    assert rates(restarted) != pytest.approx(rates(whole)[:3])  # without it: a 3-step cosine


def _column_loss(model, inputs, targets):
    """The old path: logits at the union of answer columns (the reference for equality)."""
    import torch

    keep = (targets != -100).any(dim=0).nonzero().squeeze(-1)
    logits = model(**inputs, logits_to_keep=keep, use_cache=False).logits.float()
    kept = targets[:, keep]
    return torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), kept.reshape(-1), ignore_index=-100, reduction="sum"
    )


@pytest.mark.parametrize("arch", ["llama", "gemma3-softcap", "llama-lora"])
def test_answer_logits_equal_the_column_path_for_ragged_prompts(arch):
    """Rows whose answers sit in different columns (prompts of different lengths, right
    padding) give the same loss and gradients through the gathered answer positions as
    through the column union, which held ~8x more logits (20 GB on navigation batches)."""
    import torch
    from transformers import (
        Gemma3ForCausalLM,
        Gemma3TextConfig,
        LlamaConfig,
        LlamaForCausalLM,
    )

    from openvirl.training.sft import _answer_logits

    torch.manual_seed(0)
    if arch.startswith("gemma3"):
        config = Gemma3TextConfig(
            vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, head_dim=16,
            final_logit_softcapping=3.0, sliding_window=8,
        )  # fmt: skip
        model = Gemma3ForCausalLM(config)
    else:
        config = LlamaConfig(
            vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1,
        )  # fmt: skip
        model = LlamaForCausalLM(config)
    if arch.endswith("lora"):
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=4, target_modules="all-linear"))
    model.eval()
    lengths, answers = [5, 19, 11], [4, 6, 3]
    width = max(p + a for p, a in zip(lengths, answers, strict=True)) + 2
    ids = torch.zeros((3, width), dtype=torch.long)
    attention = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, (p, a) in enumerate(zip(lengths, answers, strict=True)):
        ids[row, : p + a] = torch.randint(1, 97, (p + a,))
        attention[row, : p + a] = 1
        labels[row, p : p + a] = ids[row, p : p + a]
    inputs = {"input_ids": ids, "attention_mask": attention}
    targets = labels[:, 1:]

    answer = _answer_logits(model, inputs, targets)
    assert answer is not None
    logits, kept = answer
    assert logits.shape[0] == sum(answers)  # one row of logits per answer token, no more
    gathered = torch.nn.functional.cross_entropy(logits, kept, reduction="sum")
    gathered.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    column = _column_loss(model, inputs, targets)
    column.backward()
    assert torch.allclose(gathered, column, rtol=1e-5, atol=1e-5)
    for name, p in model.named_parameters():
        if name in grads:
            assert torch.allclose(grads[name], p.grad, rtol=1e-4, atol=1e-6), name


def test_answer_logits_leave_vlm_batches_to_the_model_forward():
    from openvirl.training.sft import _answer_logits

    class Wrapped:  # e.g. DDP: no get_decoder, its own forward must run
        pass

    assert _answer_logits(Wrapped(), {"input_ids": None}, None) is None
    assert _answer_logits(object(), {"pixel_values": 1}, None) is None
