"""Transformers policies: causal LMs and image-text-to-text VLMs answering chat requests.

One class, `HFPolicy`, wraps a model and its tokenizer (causal LM) or processor (VLM). It renders
each conversation to a prompt, left-pads the batch, generates, and decodes only the new tokens.
Trainers reuse its pieces so that training text and evaluation text are byte-identical:
`render` (the prompt string), `encode` (the tensors the model sees) and `generate`.

Prompt rendering
----------------
With a chat template (the model's, when it has one) the conversation goes through
`apply_chat_template(..., add_generation_prompt=True)` and is tokenized without adding special
tokens again (the template writes them, as in the reference, spec §4.3). Without one (base
models such as the embedded Gemma-3-270M) `render_plain_prompt` writes role-labelled turns::

    User:
    <prompt>

    Assistant:
    <earlier answer>

    User:
    You failed this trial because ...

    Assistant:

and the tokenizer adds its usual special tokens (BOS); generation then stops by default where
the model starts a new user turn (`PLAIN_STOP`). A VLM's images stay in place in both
forms (the processor's image token in the plain form), and every image of every turn goes to
the processor in order.

Sampling
--------
`temperature=0` is greedy decoding; any other value samples with the given `temperature`,
`top_p` and `top_k`. `do_sample` is always passed explicitly, so a checkpoint's default
sampling never applies silently (the reference's evaluation bug, spec §10.16).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

try:
    import torch
    import transformers  # noqa: F401  (checked here so the error names the extra)
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the `hf` policy needs torch and transformers; install them with "
        "`pip install 'openvirl[train]'`"
    ) from exc

from openvirl.policies.base import Message, Request, Usage, message_images, message_text

PLAIN_ROLE_LABELS: dict[str, str] = {"system": "System", "user": "User", "assistant": "Assistant"}
"""Labels of the plain prompt's turns; unknown roles are capitalized."""

PLAIN_TURN_SEPARATOR = "\n\n"
"""What separates two turns of a plain prompt."""

PLAIN_STOP = ("\n\nUser:",)
"""Default stop strings with plain prompts: a base model that goes on to write the next user
turn has finished its answer (a chat template's end-of-turn token does this job otherwise)."""

GENERATION_DEFAULTS: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": 0,
    "max_new_tokens": 256,
    "seed": 0,
    "stop": None,
}
"""Generation options of `HFPolicy` (per-call overrides go to `generate`)."""


def render_plain_prompt(
    messages: Sequence[Message],
    *,
    add_generation_prompt: bool = True,
    image_token: str | None = None,
) -> str:
    """Render a conversation as role-labelled plain text, for models without a chat template.

    Each turn is ``"<Label>:\\n<text>"``, turns are separated by a blank line, and with
    `add_generation_prompt` the text ends with the assistant cue ``"Assistant:\\n"``: the
    answer then starts at the beginning of a line, which tokenizes the same way whether it is
    generated or appended by a trainer (``prompt + answer + eos``).

    Parameters
    ----------
    messages
        The conversation, content as lists of parts.
    add_generation_prompt
        End with the assistant cue (for generation); leave it off to render a finished
        conversation.
    image_token
        What to write for each image part (a VLM processor's image token); images are
        dropped when it is None (text-only models).

    Returns
    -------
    str
        The prompt text.
    """
    turns = []
    for message in messages:
        role = message["role"]
        label = PLAIN_ROLE_LABELS.get(role, role.capitalize())
        body = []
        for part in message["content"]:
            if part.get("type") == "text":
                body.append(part.get("text", ""))
            elif part.get("type") == "image" and image_token is not None:
                body.append(image_token)
        turns.append(f"{label}:\n{''.join(body)}")
    if add_generation_prompt:
        turns.append(f"{PLAIN_ROLE_LABELS['assistant']}:\n")
    return PLAIN_TURN_SEPARATOR.join(turns)


def auto_device() -> str:
    """The device a policy uses unless told: CUDA when available, else CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def auto_dtype(device: str) -> torch.dtype:
    """bfloat16 on CUDA (fast, no overflow), float32 on CPU (bf16 matmuls are slow there)."""
    return torch.bfloat16 if str(device).startswith("cuda") else torch.float32


def _resolve_dtype(dtype: str | torch.dtype | None, device: str) -> torch.dtype:
    if dtype is None or dtype == "auto":
        return auto_dtype(device)
    if isinstance(dtype, torch.dtype):
        return dtype
    named = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
        "float16": torch.float16,
        "fp16": torch.float16,
    }
    if dtype not in named:
        raise ValueError(f"`dtype` must be one of auto, {', '.join(named)}; got {dtype!r}.")
    return named[dtype]


def is_vision_config(config: Any) -> bool:
    """Whether a model config describes an image-text-to-text model (it has a vision tower)."""
    return getattr(config, "vision_config", None) is not None


def truncate_at_stop(text: str, stop: Sequence[str] | None) -> str:
    """Cut `text` before the earliest stop string (OpenAI semantics: the stop is not kept)."""
    if not stop:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


class HFPolicy:
    """A transformers model that answers chat requests (causal LM or image-text-to-text VLM).

    Example
    -------
    >>> policy = HFPolicy.from_pretrained("path/to/model", temperature=0, max_new_tokens=64)
    >>> policy.act([{"messages": [text_message("user", "Cards: 3 3 8 8. Reach 24.")]}])
    ['8/(3-8/3)=24']

    Parameters
    ----------
    model
        A loaded `PreTrainedModel` (or a peft model). Generation runs in eval mode and restores
        the model's previous mode, so a trainer can wrap the model it is training.
    processor
        Its tokenizer (causal LM) or processor (VLM, with `.tokenizer` and an image processor).
    name
        What the policy calls itself in reports and in the server's `/v1/models`.
    temperature
        0 for greedy decoding; above 0 samples.
    top_p, top_k
        Nucleus and top-k filtering when sampling (1.0 and 0 disable them).
    max_new_tokens
        Cap on generated tokens per answer.
    seed
        Base seed: call number `k` of this policy samples with seed `seed + k`, so a fresh
        policy replays the same sequence of calls identically, and repeated calls differ.
        A `seed` passed to `generate` is used as given. The global torch RNG is untouched.
    stop
        Strings that end an answer; the answer is cut before the first one (as OpenAI does).
        None means `PLAIN_STOP` with plain prompts and nothing with a chat template; ``[]``
        disables stop strings.
    batch_size
        Requests per `model.generate` call; larger lists are split.
    chat_template
        None: use the model's chat template when it has one, else the plain prompt. True:
        require a template. False: always the plain prompt (`render_plain_prompt`).
    """

    def __init__(
        self,
        model: Any,
        processor: Any,
        *,
        name: str | None = None,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        max_new_tokens: int = 256,
        seed: int = 0,
        stop: Sequence[str] | str | None = None,
        batch_size: int = 8,
        chat_template: bool | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        self.model = model
        self.processor = processor
        inner = getattr(processor, "tokenizer", None)
        self.tokenizer = inner if inner is not None else processor
        self.is_vlm = self.tokenizer is not processor
        self.name = name or str(getattr(model, "name_or_path", "") or type(model).__name__)
        self.batch_size = batch_size
        self.options: dict[str, Any] = dict(GENERATION_DEFAULTS)
        self.options.update(
            temperature=temperature,
            top_p=top_p,
            top_k=top_k,
            max_new_tokens=max_new_tokens,
            seed=seed,
            stop=stop,
        )
        self._check_options(self.options)
        has_template = bool(getattr(processor, "chat_template", None)) or bool(
            getattr(self.tokenizer, "chat_template", None)
        )
        if chat_template and not has_template:
            raise ValueError(
                f"`chat_template=True` but {self.name} has no chat template; pass "
                "`chat_template=False` (or leave it None) to use the plain prompt."
            )
        self.uses_chat_template = has_template if chat_template is None else chat_template
        # Left padding keeps every prompt's last token next to the first generated one.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.last_usage = Usage()
        self.total_usage = Usage()
        self._calls = 0
        self._warned_images = False

    # ------------------------------------------------------------------ loading
    @classmethod
    def from_pretrained(
        cls,
        path_or_name: str | Path,
        *,
        adapter: str | Path | None = None,
        merge_adapter: bool = False,
        dtype: str | torch.dtype | None = None,
        device: str | None = None,
        kind: str = "auto",
        name: str | None = None,
        chat_template: bool | None = None,
        **options: Any,
    ) -> HFPolicy:
        """Load a model (and optionally a LoRA adapter) and wrap it.

        Parameters
        ----------
        path_or_name
            A local checkpoint folder, a Hub id (downloaded by transformers), or the embedded
            model's name ``gemma-3-270m`` (prepared on first use, see `openvirl.policies.embedded`).
        adapter
            A peft adapter folder to apply on top of the model.
        merge_adapter
            Merge the adapter into the weights (faster generation, no longer trainable).
        dtype
            ``auto`` (bf16 on CUDA, fp32 on CPU), ``float32``, ``bfloat16`` or ``float16``.
        device
            ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:1`` ...
        kind
            ``auto`` (a VLM when the config has a vision tower), ``causal`` or ``vlm``.
        name
            The policy's name; defaults to the folder name or Hub id.
        chat_template
            See the class; the embedded base model defaults to False (plain prompts).
        **options
            Generation options of the class (temperature, top_p, top_k, max_new_tokens, seed,
            stop, batch_size).
        """
        from transformers import (
            AutoConfig,
            AutoModelForCausalLM,
            AutoModelForImageTextToText,
            AutoProcessor,
            AutoTokenizer,
        )

        from openvirl.policies import embedded

        source = str(path_or_name)
        if embedded.is_embedded_name(source):
            source = str(embedded.prepare_embedded_model())
            name = name or embedded.EMBEDDED_MODEL_NAME
            if chat_template is None:
                chat_template = embedded.EMBEDDED_CHAT_TEMPLATE
        device = auto_device() if device in (None, "auto") else device
        torch_dtype = _resolve_dtype(dtype, device)
        if kind not in ("auto", "causal", "vlm"):
            raise ValueError(f"`kind` must be auto, causal or vlm; got {kind!r}.")
        if kind == "auto":
            kind = "vlm" if is_vision_config(AutoConfig.from_pretrained(source)) else "causal"
        if kind == "vlm":
            model = AutoModelForImageTextToText.from_pretrained(source, dtype=torch_dtype)
            processor = AutoProcessor.from_pretrained(source)
        else:
            model = AutoModelForCausalLM.from_pretrained(source, dtype=torch_dtype)
            processor = AutoTokenizer.from_pretrained(source)
        if adapter is not None:
            try:
                from peft import PeftModel
            except ImportError as exc:  # pragma: no cover
                raise ImportError(
                    "LoRA adapters need peft; install it with `pip install 'openvirl[train]'`"
                ) from exc
            model = PeftModel.from_pretrained(model, str(adapter))
            if merge_adapter:
                model = model.merge_and_unload()
        model.to(device)
        if name is None:
            path = Path(source)
            name = path.name if path.exists() else source
            if adapter is not None:
                name = f"{name}+{Path(str(adapter)).name}"
        return cls(model, processor, name=name, chat_template=chat_template, **options)

    # ------------------------------------------------------------------ prompts
    @property
    def device(self) -> torch.device:
        """Where the model's weights (and so the encoded inputs) live."""
        return next(self.model.parameters()).device

    @property
    def add_special_tokens(self) -> bool:
        """Whether tokenizing a rendered prompt adds special tokens (plain prompts: yes).

        A chat template writes BOS itself, so adding it again would double it.
        """
        return not self.uses_chat_template

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        """The exact prompt text the model sees for a conversation (trainers reuse this)."""
        if not self.uses_chat_template:
            image_token = getattr(self.processor, "image_token", None) if self.is_vlm else None
            return render_plain_prompt(
                messages, add_generation_prompt=add_generation_prompt, image_token=image_token
            )
        if self.is_vlm:
            # Image parts stay as placeholders; the pixels go to the processor separately.
            conversation = [
                {
                    "role": m["role"],
                    "content": [
                        {"type": "image"}
                        if p.get("type") == "image"
                        else {"type": "text", "text": p.get("text", "")}
                        for p in m["content"]
                    ],
                }
                for m in messages
            ]
            return self.processor.apply_chat_template(
                conversation, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        # Text-only templates (Llama, Qwen ...) expect string content.
        conversation = [{"role": m["role"], "content": message_text(m)} for m in messages]
        return self.tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def encode(self, requests: Sequence[Request]) -> Any:
        """The left-padded batch the model sees for `requests`, on the model's device.

        Returns the tokenizer's or processor's `BatchEncoding`: ``input_ids`` and
        ``attention_mask``, plus ``pixel_values`` (and whatever else the processor makes) when
        a VLM's conversations hold images, in conversation order, every turn included.
        """
        texts = [self.render(request["messages"]) for request in requests]
        images = [
            [image for message in request["messages"] for image in message_images(message)]
            for request in requests
        ]
        if self.is_vlm:
            kwargs: dict[str, Any] = {}
            if any(images):
                kwargs["images"] = [[_rgb(image) for image in group] for group in images]
            batch = self.processor(
                text=texts,
                padding=True,
                return_tensors="pt",
                add_special_tokens=self.add_special_tokens,
                **kwargs,
            )
        else:
            if any(images) and not self._warned_images:
                warnings.warn(
                    f"{self.name} is a text-only model: the images in the requests are dropped.",
                    stacklevel=2,
                )
                self._warned_images = True
            batch = self.tokenizer(
                texts,
                padding=True,
                return_tensors="pt",
                add_special_tokens=self.add_special_tokens,
            )
        dtype = self.model.dtype
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                is_float = torch.is_floating_point(value)
                batch[key] = (
                    value.to(self.device, dtype=dtype) if is_float else value.to(self.device)
                )
        return batch

    # ------------------------------------------------------------------ generation
    def act(self, requests: Sequence[Request]) -> list[str]:
        """Answer each request with the policy's generation options."""
        return self.generate(requests)

    def generate(self, requests: Sequence[Request], **overrides: Any) -> list[str]:
        """Generate one answer per request, in order.

        Parameters
        ----------
        requests
            The conversations (their `info` is ignored).
        **overrides
            Per-call generation options (temperature, top_p, top_k, max_new_tokens, seed,
            stop); None values keep the policy's own.

        Returns
        -------
        list[str]
            The decoded new text of each request, special tokens removed, cut at stop strings.
            `last_usage` then holds this call's prompt and completion token counts.
        """
        unknown = set(overrides) - set(GENERATION_DEFAULTS)
        if unknown:
            raise ValueError(
                f"unknown generation option(s) {sorted(unknown)}; "
                f"valid: {', '.join(GENERATION_DEFAULTS)}."
            )
        options = dict(self.options)
        options.update({k: v for k, v in overrides.items() if v is not None})
        self._check_options(options)
        stop = [options["stop"]] if isinstance(options["stop"], str) else options["stop"]
        if stop is None and not self.uses_chat_template:
            stop = list(PLAIN_STOP)
        stop = [text for text in stop or [] if text]
        # An explicit per-call seed is used as given; otherwise call k uses seed + k.
        explicit_seed = overrides.get("seed")
        if explicit_seed is not None:
            seed = int(explicit_seed)
        else:
            seed = int(options["seed"]) + self._calls
        self._calls += 1
        usage = Usage(calls=1)
        answers: list[str] = []
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        # A trainer's model may be in train mode (dropout): generate in eval mode, then restore.
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=devices), torch.inference_mode():
                torch.manual_seed(seed)
                for start in range(0, len(requests), self.batch_size):
                    chunk = requests[start : start + self.batch_size]
                    answers.extend(self._generate_batch(chunk, options, stop, usage))
        finally:
            self.model.train(was_training)
        self.last_usage = usage
        self.total_usage.add(usage)
        return answers

    def _generate_batch(
        self,
        requests: Sequence[Request],
        options: dict[str, Any],
        stop: list[str] | None,
        usage: Usage,
    ) -> list[str]:
        batch = self.encode(requests)
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(options["max_new_tokens"]),
            "pad_token_id": self.tokenizer.pad_token_id,
            "num_beams": 1,
        }
        if float(options["temperature"]) > 0:
            kwargs.update(
                do_sample=True,
                temperature=float(options["temperature"]),
                top_p=float(options["top_p"]),
                top_k=int(options["top_k"]),
            )
        else:
            kwargs["do_sample"] = False
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        output = self.model.generate(**batch, **kwargs)
        prompt_length = batch["input_ids"].shape[1]
        new_tokens = output[:, prompt_length:].tolist()
        end_ids = self._end_token_ids()
        pad_id = self.tokenizer.pad_token_id
        answers = []
        for row in new_tokens:
            length = len(row)
            for i, token in enumerate(row):
                if token in end_ids:
                    length = i + 1
                    break
                if token == pad_id:
                    length = i
                    break
            usage.completion_tokens += length
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            answers.append(truncate_at_stop(text, stop))
        usage.prompt_tokens += int(batch["attention_mask"].sum())
        usage.requests += len(requests)
        return answers

    def _end_token_ids(self) -> set[int]:
        """Token ids that end an answer: the generation config's EOS ids and the tokenizer's."""
        ids = getattr(self.model.generation_config, "eos_token_id", None)
        ends = set(ids if isinstance(ids, list) else [] if ids is None else [ids])
        if self.tokenizer.eos_token_id is not None:
            ends.add(self.tokenizer.eos_token_id)
        return ends

    @staticmethod
    def _check_options(options: dict[str, Any]) -> None:
        if float(options["temperature"]) < 0:
            raise ValueError(f"`temperature` must be >= 0, got {options['temperature']}.")
        if not 0 < float(options["top_p"]) <= 1:
            raise ValueError(f"`top_p` must be in (0, 1], got {options['top_p']}.")
        if int(options["max_new_tokens"]) < 1:
            raise ValueError(f"`max_new_tokens` must be >= 1, got {options['max_new_tokens']}.")

    def __repr__(self) -> str:
        prompt = "chat template" if self.uses_chat_template else "plain prompt"
        return (
            f"HFPolicy({self.name!r}, {'vlm' if self.is_vlm else 'causal'}, {prompt}, "
            f"device={self.device}, dtype={self.model.dtype}, options={self.options})"
        )


def _rgb(image: Any) -> Any:
    """Images as RGB, since image processors expect 3 channels (RGBA renders, L masks)."""
    mode = getattr(image, "mode", "RGB")
    return image if mode == "RGB" else image.convert("RGB")


__all__ = [
    "GENERATION_DEFAULTS",
    "PLAIN_ROLE_LABELS",
    "PLAIN_STOP",
    "HFPolicy",
    "auto_device",
    "auto_dtype",
    "is_vision_config",
    "render_plain_prompt",
    "truncate_at_stop",
]
