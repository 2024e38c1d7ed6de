"""Loading a model to train: the embedded name, dtype and device defaults, LoRA or full weights.

One place for what SFT, PPO and GRPO share, so the three load a model the way `HFPolicy` does
(``gemma-3-270m`` means the embedded model; fp32 on CPU, bf16 on CUDA) and wrap it in a peft
LoRA adapter or leave every weight trainable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def resolve_model(name: str) -> tuple[str, bool | None]:
    """The local folder or Hub id of `name`, and the chat-template default for it.

    The embedded model's names (``gemma-3-270m``, ``embedded``) prepare it on first use and
    default to plain prompts (it is a base model without a template).
    """
    from openvirl.policies import embedded

    if embedded.is_embedded_name(name):
        return str(embedded.prepare_embedded_model()), embedded.EMBEDDED_CHAT_TEMPLATE
    return name, None


def load_model(
    name: str,
    *,
    dtype: str = "auto",
    device: str = "auto",
    kind: str = "auto",
) -> tuple[Any, Any, bool | None]:
    """Load a model and its tokenizer (causal LM) or processor (VLM).

    Returns
    -------
    tuple
        ``(model, processor, chat_template_default)``; the model is on `device` in train mode.
    """
    from transformers import (
        AutoConfig,
        AutoModelForCausalLM,
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
    )

    from openvirl.policies.hf import _resolve_dtype, auto_device, is_vision_config

    source, chat_default = resolve_model(name)
    device = auto_device() if device in (None, "auto") else device
    torch_dtype = _resolve_dtype(dtype, device)
    if kind == "auto":
        kind = "vlm" if is_vision_config(AutoConfig.from_pretrained(source)) else "causal"
    if kind == "vlm":
        model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype)
        processor = AutoProcessor.from_pretrained(source)
    else:
        model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
        processor = AutoTokenizer.from_pretrained(source)
    tokenizer = getattr(processor, "tokenizer", processor)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device)
    model.train()
    return model, processor, chat_default


def apply_lora(
    model: Any,
    *,
    r: int = 16,
    alpha: int = 32,
    dropout: float = 0.05,
    target_modules: str | list[str] = "all-linear",
    init_adapter: str | Path | None = None,
) -> Any:
    """Wrap `model` in a trainable LoRA adapter (a fresh one, or `init_adapter` to continue).

    ``target_modules="all-linear"`` adapts every linear layer but the output head, as the
    CPU study did (3.8M trainable parameters on Gemma-3-270M at r=16).
    """
    try:
        from peft import LoraConfig, PeftModel, get_peft_model
    except ImportError as exc:  # pragma: no cover - peft is in the train extra
        raise ImportError("LoRA needs peft: `pip install 'openvirl[train]'`") from exc
    if init_adapter is not None:
        return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)
    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def load_init_weights(model: Any, folder: str | Path) -> None:
    """Load full fine-tuned weights from a checkpoint's ``model/`` folder (full-FT branches)."""
    from openvirl.training.checkpoint import load_model_weights

    load_model_weights(model, Path(folder))


__all__ = ["apply_lora", "load_init_weights", "load_model", "resolve_model"]
