"""Tiny random models built offline, for tests that need a real transformers model.

Every builder writes a complete checkpoint (weights, config, tokenizer or processor) into a
folder and returns its path, so a test loads it with the same `from_pretrained` calls a user's
checkpoint goes through. Nothing is downloaded: the tokenizer is a byte-level BPE trained on a
few sentences in memory, and the models are drawn from their configs with a fixed seed.

Use them from any test (training tests included)::

    from tiny_models import tiny_causal_lm, tiny_llava

    path = tiny_causal_lm(tmp_path)                 # AutoModelForCausalLM + AutoTokenizer
    path = tiny_llava(tmp_path)                     # AutoModelForImageTextToText + AutoProcessor
    path = tiny_mllama(tmp_path)                    # the same, a Llama-3.2-Vision (Mllama)

Building one takes well under a second; for many tests, build once in a session fixture.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

# A chat template that accepts string content or lists of parts (images become the image
# token), like the templates of real chat and vision-language models.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|{{ message['role'] }}|>\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}"
    "{% if part['type'] == 'text' %}{{ part['text'] }}"
    "{% elif part['type'] == 'image' %}<image>{% endif %}"
    "{% endfor %}{% endif %}<|end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
"""The tiny models' chat template: `<|role|>` headers, `<|end|>` after each turn."""

SPECIAL_TOKENS = ["<pad>", "<s>", "</s>", "<unk>", "<|end|>", "<image>"]
"""Special tokens of the tiny tokenizer; `<image>` is the LLaVA image placeholder."""

_CORPUS = [
    "Cards: ['K', '3', '7', 'Q']. Use each number once to reach 24.",
    '{"cards": ["K", "3", "7", "Q"], "number": [10, 3, 7, 10], "formula": "7+10+10-3=24"}',
    "You failed this trial because your formula is incorrect.",
    "Turn left onto Broadway and walk 120 meters north.",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / ( ) =",
    "user assistant system <|user|> <|assistant|> <|system|>",
]


def tiny_tokenizer(
    *,
    vocab_size: int = 384,
    chat_template: str | None = CHAT_TEMPLATE,
    corpus: Sequence[str] | None = None,
):
    """A byte-level BPE fast tokenizer with BOS/EOS/PAD tokens and an optional chat template.

    Byte-level means any text round-trips through encode/decode, which the policies' decoding
    relies on; `vocab_size` is small (256 byte symbols plus a few merges) so the embedding
    matrices stay tiny. Pass `chat_template=None` for a tokenizer without one (the plain-prompt
    path). With the default six-sentence corpus text costs about 1.5 characters a token; a
    larger `vocab_size` trained on a `corpus` of real prompts (benchmarks) gets close to a
    production tokenizer's 4, so sequence lengths, and attention costs, look like a real run's.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE(unk_token=None))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_CORPUS if corpus is None else list(corpus), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<|end|>", "<image>"],
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    return tokenizer


def tiny_causal_lm(
    tmp_path: Path,
    *,
    name: str = "tiny-causal-lm",
    chat_template: str | None = CHAT_TEMPLATE,
    hidden_size: int = 32,
    num_layers: int = 2,
    seed: int = 0,
    vocab_size: int = 384,
    corpus: Sequence[str] | None = None,
) -> Path:
    """Write a tiny random Llama causal LM and its tokenizer to `tmp_path / name`.

    The weights are drawn with a wide initializer (std 0.2) so the logits are peaked: greedy
    decoding then has no near-ties, and batched and one-at-a-time runs agree exactly, as
    with a trained model. `<|end|>` is an extra end-of-turn id in the generation config, as
    chat models have. `vocab_size` and `corpus` go to `tiny_tokenizer`.

    Returns
    -------
    Path
        The checkpoint folder, loadable with `AutoModelForCausalLM` and `AutoTokenizer`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tiny_tokenizer(chat_template=chat_template, vocab_size=vocab_size, corpus=corpus)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<|end|>"),
    ]
    out = Path(tmp_path) / name
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_llava(
    tmp_path: Path,
    *,
    name: str = "tiny-llava",
    image_size: int = 16,
    patch_size: int = 8,
    seed: int = 0,
) -> Path:
    """Write a tiny random LLaVA (CLIP vision tower + Llama) and its processor to `tmp_path / name`.

    Each image becomes `(image_size / patch_size) ** 2` image tokens (4 by default) in the
    encoded input, so a test can count image tokens to check every image reached the model.

    Returns
    -------
    Path
        The checkpoint folder, loadable with `AutoModelForImageTextToText` and `AutoProcessor`.
    """
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = tiny_tokenizer()
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        image_token="<image>",
        chat_template=CHAT_TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=16,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<|end|>"),
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(tmp_path) / name
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


MLLAMA_IMAGE_TOKEN = "<|image|>"
"""Llama 3.2 Vision's image placeholder: one token per image, whatever its tile count."""


def tiny_mllama(
    tmp_path: Path,
    *,
    name: str = "tiny-mllama",
    tile_size: int = 16,
    patch_size: int = 8,
    max_image_tiles: int = 2,
    seed: int = 0,
) -> Path:
    """Write a tiny random Llama-3.2-Vision (Mllama) and its processor to `tmp_path / name`.

    Unlike LLaVA, Mllama keeps one ``<|image|>`` token per image and reads the image through
    cross-attention layers, so the processor returns per-row ``pixel_values`` of shape
    ``(rows, max_images, max_image_tiles, C, tile, tile)``, ``aspect_ratio_ids`` /
    ``aspect_ratio_mask`` and a per-token ``cross_attention_mask``
    ``(rows, seq, max_images, max_image_tiles)``: the inputs the paper's model trains on.
    An image is split into up to `max_image_tiles` tiles of `tile_size` pixels.

    Returns
    -------
    Path
        The checkpoint folder, loadable with `AutoModelForImageTextToText` and `AutoProcessor`.
    """
    import torch
    from transformers import (
        MllamaConfig,
        MllamaForConditionalGeneration,
        MllamaImageProcessorPil,
        MllamaProcessor,
        MllamaTextConfig,
        MllamaVisionConfig,
    )
    from transformers.models.mllama.image_processing_pil_mllama import (
        get_all_supported_aspect_ratios,
    )

    template = CHAT_TEMPLATE.replace("<image>", MLLAMA_IMAGE_TOKEN)
    tokenizer = tiny_tokenizer(chat_template=template)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|end|>", "<image>", MLLAMA_IMAGE_TOKEN]}
    )
    # the PIL image processor: the default one needs torchvision, not installed here
    image_processor = MllamaImageProcessorPil(
        size={"height": tile_size, "width": tile_size}, max_image_tiles=max_image_tiles
    )
    processor = MllamaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=template
    )
    hidden, layers = 16, [0, 1]
    vision = MllamaVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_global_layers=1,
        attention_heads=2,
        image_size=tile_size,
        patch_size=patch_size,
        max_num_tiles=max_image_tiles,
        intermediate_layers_indices=layers,
        vision_output_dim=hidden * (len(layers) + 1),
        supported_aspect_ratios=[list(r) for r in get_all_supported_aspect_ratios(max_image_tiles)],
    )
    text = MllamaTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,  # self-attention, cross-attention, self-attention: as in the
        num_attention_heads=4,  # real model, later tokens read the cross-attended states
        num_key_value_heads=2,
        cross_attention_layers=[1],
        max_position_embeddings=1024,
        initializer_range=0.2,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config = MllamaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids(MLLAMA_IMAGE_TOKEN),
    )
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config).eval()
    with torch.no_grad():  # Mllama starts its gates at 0, which would hide images and tiles
        for key, parameter in model.named_parameters():
            if key.endswith("gate"):
                parameter.fill_(1.0)
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<|end|>"),
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    out = Path(tmp_path) / name
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_tool_causal_lm(tmp_path: Path, *, name: str = "tiny-tool-lm", seed: int = 0) -> Path:
    """Write a tiny random Llama whose tokenizer has TRL's copy of the Qwen3 chat template.

    That template renders tool calls and tool replies and TRL knows how to parse its tool
    calls (`trl.chat_template_utils.add_response_schema`), so TRL's ``GRPOTrainer`` accepts
    it with ``tools`` or ``environment_factory``. ``<|im_start|>``, ``<|im_end|>`` (the
    end-of-turn and EOS token) and the tool/think tags are special tokens.

    Returns
    -------
    Path
        The checkpoint folder, loadable with `AutoModelForCausalLM` and `AutoTokenizer`.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    from trl.chat_template_utils import qwen3_chat_template

    tokenizer = tiny_tokenizer(chat_template=qwen3_chat_template)
    tags = ["<|im_start|>", "<|im_end|>", "<tool_call>", "</tool_call>", "<think>", "</think>"]
    tokenizer.add_special_tokens({"additional_special_tokens": tags})
    tokenizer.eos_token = "<|im_end|>"
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        initializer_range=0.2,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config).eval()
    out = Path(tmp_path) / name
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def tiny_lora_adapter(
    model_path: Path, out: Path, *, r: int = 4, seed: int = 1, scale: float = 0.5
) -> Path:
    """Write a LoRA adapter for the model at `model_path` whose B matrices are not zero.

    A fresh adapter equals its base model (B starts at 0); this one does not, so a test can
    tell "base + this adapter" (an Init policy) apart from the bare base model.
    """
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(model_path)
    model = get_peft_model(
        base,
        LoraConfig(r=r, lora_alpha=2 * r, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * scale)
    model.save_pretrained(out)
    return Path(out)


def three_shapes() -> tuple[Any, Any, Any]:
    """A wide, a square and a tall image: Mllama tiles them differently (1-2 tiles)."""
    from PIL import Image

    return tuple(
        Image.new("RGB", size, colour)
        for size, colour in [((64, 32), "red"), ((16, 16), "green"), ((20, 50), "blue")]
    )


def image_turn(*pictures: Any, text: str = "Cards?") -> dict[str, Any]:
    """A user turn holding `pictures`, then `text`."""
    content = [{"type": "image", "image": p} for p in pictures]
    return {"role": "user", "content": [*content, {"type": "text", "text": text}]}
