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
the model starts a new user turn (`PLAIN_STOP`). A base model given only its task tends to
continue the prompt rather than answer it, so `examples` (solved example turns, e.g.
`openvirl.evaluation.tasks.few_shot_messages`) can go before every conversation: `render`
puts them first, in either form, so what the model sees is always `render`'s text. Evaluation
uses them for the embedded base model by default (``--few-shot``); SFT and PPO never do, so a
fine-tuned model is trained and evaluated on the same zero-shot text. A VLM's images stay
in place in both forms (the processor's image token in the plain form), and every image of
every turn goes to the processor in order.

Sampling
--------
`temperature=0` is greedy decoding; any other value samples with the given `temperature`,
`top_p` and `top_k`. `do_sample` is always passed explicitly, so a checkpoint's default
sampling never applies silently (the reference's evaluation bug, spec §10.16).

When every request of a call carries a `seed` (evaluation gives each answer one, derived
from its episode's seed and attempt), each row samples from its own generator seeded with
that seed and the policy's `seed` (`RowSampler`), so an answer depends neither on the rows
batched with it nor on how many calls came before: a resumed evaluation equals an
uninterrupted one (up to floating-point differences of the batch's padding).

Batched generation
------------------
Evaluation sends one request per episode in flight, and a multi-turn episode resends its whole
conversation (prompt, earlier answers, feedback) at every attempt. Four things keep that fast.
None changes what is computed, only how: answers are those of plain left-padded
`model.generate` up to floating-point rounding (greedy answers are identical in the tests).

- *Unpadded prefill.* For text-only models whose cache is a plain full-attention
  `DynamicCache` (Llama, Qwen, Mistral ...), each prompt is prefilled on its own (prompts of
  equal length together), and only the decoding steps run as one left-padded batch. Batched
  prefill over left-padded prompts goes through SDPA's masked path, which on a CPU costs two
  to three times the unpadded causal kernel; decoding steps are what batching amortizes.
- *Prefix cache.* The keys and values of every prompt and answer are kept (up to
  ``prefix_cache_mb``) and a new prompt reuses those of its longest common token prefix with
  any of them, so attempt k+1 prefills only the feedback and the re-tokenized edge of answer
  k, and a new episode only what follows the shared instructions. Kept states are dropped
  when the weights change (a trainer's step, an adapter switch), checked at every call.
- *In-place decoding.* Those models decode into a cache with room for the answers, where
  transformers' `DynamicCache` copies every key and value at every step (`_growing_layer_class`).
- *Length sorting.* When a call holds more requests than ``batch_size``, they are grouped by
  prompt length so each sub-batch carries little padding; answers come back in request order.

Generation of a batch ends as soon as every row has produced an end-of-turn token or a stop
string (transformers' `StopStringCriteria`), not at ``max_new_tokens``. Models outside the
prefill conditions (VLMs, sliding-window or hybrid caches such as Gemma 3's) use plain
`model.generate` on the padded batch.
"""

from __future__ import annotations

import inspect
import warnings
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    import transformers
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "the `hf` policy needs torch and transformers; install them with "
        "`pip install 'openvirl[train]'`"
    ) from exc

from openvirl.policies import fast
from openvirl.policies.base import (
    Message,
    Request,
    Usage,
    as_message,
    as_requests,
    message_images,
    message_text,
    mix_seed,
)

PLAIN_ROLE_LABELS: dict[str, str] = {"system": "System", "user": "User", "assistant": "Assistant"}
"""Labels of the plain prompt's turns; unknown roles are capitalized."""

PLAIN_TURN_SEPARATOR = "\n\n"
"""What separates two turns of a plain prompt."""

PLAIN_STOP = ("\n\nUser:",)
"""Default stop strings with plain prompts: a base model that goes on to write the next user
turn has finished its answer (a chat template's end-of-turn token does this job otherwise)."""

STOP_CRITERIA_KEPT = 8
"""Stop lists whose `StopStringCriteria` a policy keeps (least recently used dropped first)."""

GENERATION_DEFAULTS: dict[str, Any] = {
    "temperature": 0.0,
    "top_p": 1.0,
    "top_k": 0,
    "max_new_tokens": 256,
    "seed": 0,
    "stop": None,
}
"""Generation options of `HFPolicy` (per-call overrides go to `generate`)."""


def _looks_like_path(source: str) -> bool:
    """Whether `source` names a local folder rather than a Hub id (``name`` or ``org/name``)."""
    return (
        source.startswith(("/", ".", "~"))
        or "\\" in source
        or source.count("/") >= 2
        or Path(source).is_absolute()
    )


def _check_local_source(source: str, what: str) -> None:
    """Fail with a plain message for a local path that is not a folder, instead of the Hub's
    "Repo id must be in the form ..." that transformers gives for any string it cannot find.

    Raises
    ------
    FileNotFoundError
        A path-like `source` that does not exist.
    NotADirectoryError
        A `source` that is a file.
    """
    path = Path(source).expanduser()
    if path.is_file():
        raise NotADirectoryError(f"{what} path {source} is a file; pass the {what}'s folder.")
    if _looks_like_path(source) and not path.exists():
        raise FileNotFoundError(
            f"{what} folder {source} does not exist (a local path; a Hub id looks like org/name)."
        )


class RowSampler(transformers.LogitsProcessor):
    """Samples each row's next token from that row's own seeded generator.

    `generate` samples a whole batch from one RNG stream, so a row's tokens depend on its
    batch mates. This processor applies the sampling warpers (temperature, top-k, top-p) and
    draws each row with its own `torch.Generator`, then returns scores that leave only the
    drawn token, which `generate` (run greedy) picks. A row makes exactly one draw per step,
    so its answer depends only on its seed and its logits: evaluation uses it for resumable
    sampling, PPO for rollouts that are the same on one process or eight.
    """

    def __init__(self, seeds: Sequence[int], warpers: Any, device: torch.device) -> None:
        self.generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.warpers = warpers

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores = self.warpers(input_ids, scores)
        probs = torch.softmax(scores.float(), dim=-1)
        chosen = torch.cat(
            [
                torch.multinomial(probs[i], 1, generator=generator)
                for i, generator in enumerate(self.generators)
            ]
        )
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen[:, None], 0.0)


class GumbelRowSampler(transformers.LogitsProcessor):
    """Temperature sampling row by row, as the argmax of ``logits / T + Gumbel noise``.

    The same distribution as `RowSampler` with only a temperature warper (the Gumbel-max
    trick), but the draw is an argmax: inside `fast.sampling(sampler.gumbel_noise)` the
    embedded model's ``shortlist`` output layer then needs exact float32 logits only for the
    tokens that can win (`openvirl.policies.fast`), so sampling costs what greedy decoding
    does. Each row's generator makes one vocabulary-sized draw per step, whichever path
    computed the logits, so a row's tokens depend only on its seed and its logits.
    """

    def __init__(self, seeds: Sequence[int], temperature: float, device: torch.device) -> None:
        generators = [torch.Generator(device=device).manual_seed(s) for s in seeds]
        self.gumbel_noise = fast.GumbelNoise(generators, temperature)

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        chosen = self.gumbel_noise.scores(scores).argmax(dim=-1)
        self.gumbel_noise.advance()
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(1, chosen[:, None], 0.0)


def row_sampler(
    seeds: Sequence[int],
    device: torch.device,
    temperature: float,
    top_k: int | None = None,
    top_p: float = 1.0,
) -> transformers.LogitsProcessor:
    """The per-row sampler for these settings: `GumbelRowSampler` for temperature alone,
    `RowSampler` with warpers when top-k or top-p truncates the distribution."""
    from transformers import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    if not top_k and top_p >= 1.0:
        return GumbelRowSampler(seeds, temperature, device)
    warpers = LogitsProcessorList()
    if temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(temperature))
    if top_k:
        warpers.append(TopKLogitsWarper(top_k=top_k))
    if top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p=top_p))
    return RowSampler(seeds, warpers, device)


def _reads_logits(kwargs: Mapping[str, Any]) -> bool:
    """Whether `model.generate` arguments use more of the logits than each row's argmax:
    sampling, a caller's logits processor (the server's log-probabilities) or returned scores."""
    return bool(
        kwargs.get("do_sample")
        or kwargs.get("logits_processor")
        or kwargs.get("output_scores")
        or kwargs.get("output_logits")
    )


def _row_sampling_kwargs(
    kwargs: dict[str, Any], seeds: Sequence[int], device: torch.device
) -> dict[str, Any]:
    """`generate` arguments that sample row by row (`row_sampler`) instead of `do_sample`."""
    out = {k: v for k, v in kwargs.items() if k not in ("temperature", "top_p", "top_k")}
    sampler = row_sampler(
        seeds, device, float(kwargs["temperature"]), kwargs["top_k"], float(kwargs["top_p"])
    )
    out["do_sample"] = False
    out["logits_processor"] = transformers.LogitsProcessorList([sampler])
    return out


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


def common_prefix_length(a: np.ndarray, b: np.ndarray) -> int:
    """How many leading token ids two sequences share (vectorized: called per request and entry)."""
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if differ.size else n


@dataclass
class _PrefixEntry:
    """The keys and values of one token sequence, one ``(keys, values)`` pair per layer."""

    tokens: np.ndarray
    """The token ids whose states are kept (a prompt and as much of its answer as was fed)."""
    prompt_length: int
    """How many of `tokens` were the prompt: reusing all of them means the conversation went on."""
    layers: list[tuple[torch.Tensor, torch.Tensor]]
    """Per layer, keys and values shaped ``[kv_heads, len(tokens), head_dim]``."""
    nbytes: int


class PrefixCache:
    """Key/value states of recent prompts and answers, for reuse by later prompts.

    A transformer's keys and values at position i depend only on the tokens up to i, so a
    prompt that starts with the same tokens as a kept sequence can skip computing those
    positions. Entries are evicted least recently used first, beyond `max_bytes` or
    `max_entries`; the entry cap bounds the cost of `match`, which compares a prompt with every
    entry.

    Parameters
    ----------
    max_bytes
        Memory the kept states may use (on the model's device).
    max_entries
        Most sequences kept.
    """

    def __init__(self, max_bytes: int, max_entries: int = 64):
        self.max_bytes = int(max_bytes)
        self.max_entries = int(max_entries)
        self.entries: OrderedDict[int, _PrefixEntry] = OrderedDict()
        self.nbytes = 0
        self.reused_tokens = 0
        """Prompt tokens whose states came from the cache (cumulative)."""
        self.computed_tokens = 0
        """Prompt tokens prefilled by the model (cumulative)."""
        self._next_key = 0

    def __len__(self) -> int:
        return len(self.entries)

    def clear(self) -> None:
        """Drop every entry (the counters stay)."""
        self.entries.clear()
        self.nbytes = 0

    def match(self, tokens: np.ndarray) -> tuple[int | None, int]:
        """The entry sharing the longest token prefix with `tokens`, and that prefix's length."""
        best_key, best = None, 0
        for key, entry in self.entries.items():
            shared = common_prefix_length(tokens, entry.tokens)
            if shared > best:
                best_key, best = key, shared
        if best_key is not None:
            self.entries.move_to_end(best_key)
        return best_key, best

    def add(self, entry: _PrefixEntry) -> None:
        """Keep `entry` (when it fits at all), evicting the least recently used ones."""
        if entry.nbytes > self.max_bytes or self.max_entries < 1:
            return
        self.entries[self._next_key] = entry
        self._next_key += 1
        self.nbytes += entry.nbytes
        while self.nbytes > self.max_bytes or len(self.entries) > self.max_entries:
            _, old = self.entries.popitem(last=False)
            self.nbytes -= old.nbytes

    def discard(self, key: int) -> None:
        """Drop one entry (superseded by a longer one of the same conversation)."""
        entry = self.entries.pop(key, None)
        if entry is not None:
            self.nbytes -= entry.nbytes


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
        A `seed` passed to `generate` is used as given. Requests that carry their own `seed`
        sample row by row from that seed mixed with this one (see Sampling above). The global
        torch RNG is untouched.
    stop
        Strings that end an answer; the answer is cut before the first one (as OpenAI does).
        None means `PLAIN_STOP` with plain prompts and nothing with a chat template; ``[]``
        disables stop strings.
    batch_size
        Requests per `model.generate` call; larger lists are split, grouped by prompt length.
    chat_template
        None: use the model's chat template when it has one, else the plain prompt. True:
        require a template. False: always the plain prompt (`render_plain_prompt`).
    examples
        Solved example turns (user prompt, assistant answer, ...) that `render` puts before
        every conversation: a few-shot prefix for base models. None or ``[]``: none. Set
        `examples` on a built policy to change them (the prefix cache keeps up).
    prefix_cache_mb
        Memory for the keys and values of earlier prompts and answers, reused by prompts that
        start with the same tokens (a multi-turn conversation's next attempt, or shared
        instructions); 0 disables it. Used only where unpadded prefill applies (see the module
        docstring). Call `clear_prefix_cache` after changing the model in a way its weights do
        not show (e.g. a peft adapter toggled in place).
    precision
        How linear layers multiply during CPU generation (`openvirl.policies.fast`):
        ``shortlist`` (as ``fp32``, but greedy calls compute the output layer in bf16 and
        recompute in float32 the tokens that can be the maximum: same answers, faster),
        ``fp32`` (oneDNN with packed float32 weights, same precision), ``bf16`` (packed
        bfloat16 weights, faster, answers may differ) or ``reference`` (plain torch). None:
        ``shortlist`` for the embedded model, ``reference`` for others. Training is never
        affected.
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
        prefix_cache_mb: float = 1024,
        examples: Sequence[Message] | None = None,
        precision: str | None = None,
    ):
        if batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
        if prefix_cache_mb < 0:
            raise ValueError(f"`prefix_cache_mb` must be >= 0, got {prefix_cache_mb}.")
        self.model = model
        self.processor = processor
        self.examples = examples
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
        self._stop_criteria: OrderedDict[tuple[str, ...], Any] = OrderedDict()
        self._warned_images = False
        # Room for a few rounds of `batch_size` conversations; `match` scans every entry.
        self.prefix_cache = PrefixCache(
            int(prefix_cache_mb * 2**20), max_entries=max(32, 3 * batch_size)
        )
        self._prefix_weights: Any = None
        self._split_prefill: bool | None = None  # decided on first use (see `_can_split_prefill`)
        self._sliding_window: int | None = None  # the smallest sliding window, if any
        self._cache_kwarg = "past_key_values"
        self.precision = fast.install_default(model, precision) if model is not None else None
        """The `precision` in effect (``reference`` where the kernels are missing)."""

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
            stop, batch_size, prefix_cache_mb).
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
        _check_local_source(source, "model")
        if adapter is not None:
            _check_local_source(str(adapter), "adapter")
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

    @property
    def examples(self) -> list[Message]:
        """The few-shot turns `render` puts before every conversation ([] for none)."""
        return self._examples

    @examples.setter
    def examples(self, value: Sequence[Message] | None) -> None:
        if value is None:
            self._examples: list[Message] = []
            return
        if isinstance(value, (str, bytes, int, float)) or not isinstance(value, Sequence):
            raise ValueError(
                "`examples` must be a list of chat messages (solved example turns), got "
                f"{type(value).__name__}; `openvirl eval --few-shot N` builds them for a task."
            )
        self._examples = [as_message(m) for m in value]

    def render(self, messages: Sequence[Message], *, add_generation_prompt: bool = True) -> str:
        """The exact prompt text the model sees for a conversation (trainers reuse this).

        The policy's `examples`, if any, come first.
        """
        if self._examples:
            messages = [*self._examples, *messages]
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
        return self._encode_texts(texts, [_request_images(request) for request in requests])

    def _encode_texts(self, texts: list[str], images: list[list[Any]]) -> Any:
        """`encode` after rendering: one padded batch through the tokenizer or processor."""
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
            self._warn_dropped_images(images)
            batch = self.tokenizer(
                texts,
                padding=True,
                return_tensors="pt",
                add_special_tokens=self.add_special_tokens,
            )
        dtype = self.model.dtype
        device = self.device
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                is_float = torch.is_floating_point(value)
                batch[key] = value.to(device, dtype=dtype) if is_float else value.to(device)
        return batch

    def _warn_dropped_images(self, images: list[list[Any]]) -> None:
        if any(images) and not self._warned_images:
            warnings.warn(
                f"{self.name} is a text-only model: the images in the requests are dropped.",
                stacklevel=4,
            )
            self._warned_images = True

    # ------------------------------------------------------------------ generation
    def act(self, requests: Sequence[Request]) -> list[str]:
        """Answer each request with the policy's generation options."""
        return self.generate(requests)

    def generate(
        self,
        requests: Sequence[Request],
        *,
        generate_kwargs: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> list[str]:
        """Generate one answer per request, in order.

        Parameters
        ----------
        requests
            The conversations (their `info` is ignored). A request with a ``"prompt"`` string
            instead of messages is fed as raw text, without the chat template and with the
            tokenizer's special tokens (what a legacy completions API does).
        generate_kwargs
            Extra `model.generate` arguments for this call, e.g. a ``stopping_criteria`` that
            cancels decoding or a ``logits_processor`` that watches each step (the model
            server's hooks for streaming, log-probabilities and client disconnects).
        **overrides
            Per-call generation options (temperature, top_p, top_k, max_new_tokens, seed,
            stop); None values keep the policy's own.

        Returns
        -------
        list[str]
            The decoded new text of each request, special tokens removed, cut at stop strings.
            `last_usage` then holds this call's prompt and completion token counts.
        """
        requests = as_requests(requests)
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
        # Requests that each carry a seed sample from it, row by row (see the module docstring).
        row_seeds = [request.get("seed") for request in requests]
        per_row = float(options["temperature"]) > 0 and all(s is not None for s in row_seeds)
        base_seed = int(explicit_seed) if explicit_seed is not None else int(options["seed"])
        usage = Usage(calls=1)
        own, extra = self._generation_kwargs(options, stop), dict(generate_kwargs or {})
        kwargs = {**own, **extra}
        # The stop-string criterion and a caller's criteria (the server's hooks) both apply.
        criteria = [*own.get("stopping_criteria", []), *extra.get("stopping_criteria", [])]
        if criteria:
            kwargs["stopping_criteria"] = transformers.StoppingCriteriaList(criteria)
        end_ids = self._end_token_ids()
        answers: list[str] = [""] * len(requests)
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        # A trainer's model may be in train mode (dropout): generate in eval mode, then restore.
        was_training = self.model.training
        self.model.eval()
        try:
            # Greedy calls whose logits nothing else reads may take the output layer's exact
            # argmax shortlist (``precision=shortlist``, `openvirl.policies.fast`).
            argmax_only = float(options["temperature"]) == 0 and not _reads_logits(kwargs)
            with (
                torch.random.fork_rng(devices=devices),
                torch.inference_mode(),
                fast.argmax_only(argmax_only),
            ):
                torch.manual_seed(seed)
                prompts = self._prepare(requests)
                image_counts = [len(p.images) for p in prompts] if self._cross_attention else None
                for chunk in self._chunks([prompt.length for prompt in prompts], image_counts):
                    chunk_kwargs = kwargs
                    if per_row:
                        seeds = [mix_seed(base_seed, int(row_seeds[i])) for i in chunk]
                        chunk_kwargs = _row_sampling_kwargs(kwargs, seeds, self.device)
                    texts = self._generate_batch(
                        [prompts[i] for i in chunk], chunk_kwargs, stop, end_ids, usage
                    )
                    for i, text in zip(chunk, texts, strict=True):
                        answers[i] = text
        finally:
            self.model.train(was_training)
        self.last_usage = usage
        self.total_usage.add(usage)
        return answers

    def clear_prefix_cache(self) -> None:
        """Forget the kept keys and values (they are also dropped when the weights change)."""
        self.prefix_cache.clear()

    def _generation_kwargs(self, options: dict[str, Any], stop: list[str]) -> dict[str, Any]:
        """`model.generate` arguments for one call (sampling always explicit, spec §10.16)."""
        kwargs: dict[str, Any] = {
            "max_new_tokens": int(options["max_new_tokens"]),
            "pad_token_id": self.tokenizer.pad_token_id,
            "num_beams": 1,
            "use_cache": True,
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
            # Rows that reach a stop string finish like rows that reach EOS, and the batch ends
            # when every row has finished, instead of running to `max_new_tokens`.
            kwargs["stopping_criteria"] = [self.stop_criterion(stop)]
        return kwargs

    def stop_criterion(self, stop: Sequence[str]) -> Any:
        """transformers' `StopStringCriteria` for `stop`, built once per policy and stop list.

        What `generate(stop_strings=...)` builds at every call: building it reads and sorts the
        whole vocabulary (about half a second for Gemma's 262k tokens, a tenth of a 32-token
        batch-8 answer on two cores). It holds no state between calls.
        """
        from transformers import StopStringCriteria

        key = tuple(stop)
        criterion = self._stop_criteria.get(key)
        if criterion is None:
            criterion = StopStringCriteria(self.tokenizer, list(stop))
            # Bounded: a server's clients choose their own stop lists.
            while len(self._stop_criteria) >= STOP_CRITERIA_KEPT:
                self._stop_criteria.popitem(last=False)
            self._stop_criteria[key] = criterion
        else:
            self._stop_criteria.move_to_end(key)
        return criterion

    def _prepare(self, requests: Sequence[Request]) -> list[_Prompt]:
        """Render every request once and, for text-only models, tokenize them in one call."""
        raw = [isinstance(request.get("prompt"), str) for request in requests]
        texts = [
            str(request.get("prompt")) if is_raw else self.render(request["messages"])
            for request, is_raw in zip(requests, raw, strict=True)
        ]
        images = [
            [] if is_raw else _request_images(r) for r, is_raw in zip(requests, raw, strict=True)
        ]
        if self.is_vlm:
            # Text length stands in for token length when grouping (images expand later).
            return [
                _Prompt(text, group, None, len(text))
                for text, group in zip(texts, images, strict=True)
            ]
        self._warn_dropped_images(images)
        ids = self.tokenizer(
            texts, add_special_tokens=self.add_special_tokens, return_attention_mask=False
        )["input_ids"]
        if any(raw) and not self.add_special_tokens:  # raw prompts get BOS like plain ones
            for i in (i for i, is_raw in enumerate(raw) if is_raw):
                ids[i] = self.tokenizer(texts[i], return_attention_mask=False)["input_ids"]
        return [
            _Prompt(text, [], np.asarray(row, dtype=np.int64), len(row))
            for text, row in zip(texts, ids, strict=True)
        ]

    @property
    def _cross_attention(self) -> bool:
        """Whether the model reads images through cross-attention (Llama 3.2 Vision / Mllama),
        whose processor pads every row to the batch's most images."""
        names = getattr(self.processor, "model_input_names", ()) or ()
        return self.is_vlm and "cross_attention_mask" in names

    def _chunks(self, lengths: list[int], image_counts: list[int] | None = None) -> list[list[int]]:
        """Request indices per `model.generate` call: in order when one call takes them all,
        else sorted by prompt length so that each call pads its prompts little.

        With `image_counts` (cross-attention VLMs) a call never mixes rows with different
        numbers of images: Mllama's tokens before a row's first image attend uniformly over
        every image slot, the zero-padding slots included, so a row's answer would depend on
        its batch-mates (`openvirl.training.ppo.image_count_groups`). PPO groups its rollouts
        the same way, so evaluation and training see the same inputs.
        """
        if image_counts is not None and len(set(image_counts)) > 1:
            groups: dict[int, list[int]] = {}
            for i, count in enumerate(image_counts):
                groups.setdefault(count, []).append(i)
            chunks = []
            for _, members in sorted(groups.items()):
                for chunk in self._chunks([lengths[i] for i in members]):
                    chunks.append([members[j] for j in chunk])
            return chunks
        order = list(range(len(lengths)))
        if len(order) > self.batch_size:
            order.sort(key=lengths.__getitem__)
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def _generate_batch(
        self,
        prompts: list[_Prompt],
        kwargs: dict[str, Any],
        stop: list[str],
        end_ids: set[int],
        usage: Usage,
    ) -> list[str]:
        """Answer one sub-batch: split prefill and prefix cache where they apply, else plain
        `generate` on the padded batch; decode only the new tokens, up to the end token."""
        cache = None
        sources: list[tuple[int | None, int]] = []
        if self.is_vlm:
            batch = self._encode_texts([p.text for p in prompts], [p.images for p in prompts])
            width = batch["input_ids"].shape[1]
            with fast.sampling(fast.noise_of(kwargs)):
                output = self.model.generate(**batch, **kwargs)
        else:
            rows = [prompt.ids for prompt in prompts if prompt.ids is not None]
            width = max(len(row) for row in rows)
            input_ids, attention_mask = self._left_pad(rows, width)
            if width > 1 and self._can_split_prefill(width + int(kwargs["max_new_tokens"])):
                # Room for typical answers up front; longer ones grow it (see the layer).
                room = min(int(kwargs["max_new_tokens"]), GROWTH_STEP)
                cache, sources = self._prefill(rows, width, width - 1 + room)
                kwargs = {**kwargs, self._cache_kwarg: cache}
            with fast.sampling(fast.noise_of(kwargs)):
                output = self.model.generate(
                    input_ids=input_ids, attention_mask=attention_mask, **kwargs
                )
        new_tokens = output[:, width:].tolist()
        pad_id = self.tokenizer.pad_token_id
        answers, lengths = [], []
        for row in new_tokens:
            length = len(row)
            for i, token in enumerate(row):
                if token in end_ids:
                    length = i + 1
                    break
                if token == pad_id:
                    length = i
                    break
            lengths.append(length)
            text = self.tokenizer.decode(row[:length], skip_special_tokens=True)
            answers.append(truncate_at_stop(text, stop))
        if cache is not None:
            self._remember(rows, new_tokens, lengths, cache, width, sources)
        usage.completion_tokens += sum(lengths)
        if self.is_vlm:  # image tokens included, as the model sees them
            usage.prompt_tokens += int(batch["attention_mask"].sum())
        else:
            usage.prompt_tokens += sum(prompt.length for prompt in prompts)
        usage.requests += len(prompts)
        return answers

    def _left_pad(self, rows: list[np.ndarray], width: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Token rows as one left-padded batch (what the tokenizer's `padding=True` makes)."""
        ids = np.full((len(rows), width), self.tokenizer.pad_token_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = row
            mask[i, width - len(row) :] = 1
        device = self.device
        return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)

    # ------------------------------------------------------------------ prefill and prefix cache
    def _can_split_prefill(self, positions: int) -> bool:
        """Whether prompts can be prefilled one by one into a cache `generate` continues.

        That needs a text-only decoder whose cache is transformers' `DynamicCache` of
        full-attention layers, and a forward taking the cache and `logits_to_keep`. Chunked or
        recurrent layers keep states that cannot be re-aligned row by row. Sliding-window
        layers (Gemma-3 interleaves them) qualify while the whole sequence, `positions` long,
        fits in the window: no key is ever out of it, so they attend exactly like full
        layers and a full layer can hold their states. The model check is made once per
        policy; anything else generates from the padded batch.
        """
        if self._split_prefill is None:
            self._split_prefill = self._check_split_prefill()
        window = self._sliding_window
        return self._split_prefill and (window is None or positions <= window)

    def _check_split_prefill(self) -> bool:
        """`_can_split_prefill`, uncached; also picks the cache keyword this transformers uses."""
        config = getattr(self.model, "config", None)
        if self.is_vlm or config is None or getattr(config, "is_encoder_decoder", False):
            return False
        try:
            from transformers import DynamicCache
            from transformers.cache_utils import DynamicLayer, DynamicSlidingWindowLayer

            layers = DynamicCache(config=config).layers
        except Exception:  # an older transformers or an exotic config: no split prefill
            return False
        kinds = {type(layer) for layer in layers}
        if not layers or not kinds <= {DynamicLayer, DynamicSlidingWindowLayer}:
            return False
        windows = [layer.sliding_window for layer in layers if type(layer) is not DynamicLayer]
        self._sliding_window = min(windows) if windows else None
        base = self.model.get_base_model() if hasattr(self.model, "get_base_model") else self.model
        try:
            parameters = inspect.signature(type(base).forward).parameters
        except (TypeError, ValueError):
            return False
        if "logits_to_keep" not in parameters:
            return False
        for name in ("cache", "past_key_values"):  # transformers >= 5.2x calls it `cache`
            if name in parameters:
                self._cache_kwarg = name
                return True
        return False

    def _prefix_cache_enabled(self) -> bool:
        """Whether to use the prefix cache this call; drops it when the weights changed.

        The weights' storage and in-place version counters change with an optimizer step,
        `load_state_dict`, merging an adapter or moving the model, so a trainer that evaluates
        with the model it trains never reuses stale states.
        """
        if self.prefix_cache.max_bytes <= 0:
            return False
        adapter = getattr(self.model, "active_adapter", None)
        # `_version` is torch's counter of in-place writes, the one autograd checks.
        weights = (
            None if callable(adapter) else repr(adapter),
            tuple((p.data_ptr(), p._version) for p in self.model.parameters()),
        )
        if weights != self._prefix_weights:
            self.prefix_cache.clear()
            self._prefix_weights = weights
        return True

    def _prefill(
        self, rows: list[np.ndarray], width: int, capacity: int
    ) -> tuple[Any, list[tuple[int | None, int]]]:
        """A left-padded `DynamicCache` holding every prompt but its last token.

        Each prompt starts from the prefix cache's longest match and computes the rest without
        padding (prompts with the same matched and total lengths in one forward), so attention
        takes SDPA's causal kernel rather than the masked one. `generate` then feeds the last
        prompt tokens as one batch; its layers have room for `capacity` positions, so decoding
        writes in place (see `_growing_layer_class`). Returns the cache and, per row, the entry
        it reused and how many tokens.
        """
        from transformers import DynamicCache

        use_cache = self._prefix_cache_enabled()
        sources: list[tuple[int | None, int]] = []
        groups: dict[tuple[int, int], list[int]] = {}
        for i, row in enumerate(rows):
            key, reused = self.prefix_cache.match(row) if use_cache else (None, 0)
            reused = min(reused, len(row) - 1)
            sources.append((key if reused > 0 else None, reused))
            groups.setdefault((reused, len(row)), []).append(i)
        device = self.device
        merged: list[tuple[torch.Tensor, torch.Tensor]] = []
        for (reused, length), members in groups.items():
            self.prefix_cache.reused_tokens += reused * len(members)
            self.prefix_cache.computed_tokens += (length - reused) * len(members)
            if length == 1:
                continue  # nothing before the last token
            part = DynamicCache()
            if reused:
                keys_of = [sources[i][0] for i in members]
                entries = [self.prefix_cache.entries[k] for k in keys_of if k is not None]
                for layer in range(len(entries[0].layers)):
                    part.update(
                        torch.stack([e.layers[layer][0][:, :reused] for e in entries]),
                        torch.stack([e.layers[layer][1][:, :reused] for e in entries]),
                        layer,
                    )
            if length - 1 > reused:
                ids = np.stack([rows[i][reused : length - 1] for i in members])
                self.model(
                    input_ids=torch.from_numpy(ids).to(device),
                    use_cache=True,
                    logits_to_keep=1,
                    **{self._cache_kwarg: part},
                )
            index = torch.tensor(members)
            for layer, (keys, values) in enumerate(_cache_layers(part)):
                index = index.to(keys.device)  # layers may sit on several devices
                if len(merged) <= layer:
                    size = (len(rows), keys.shape[1], capacity)
                    merged.append(
                        (
                            keys.new_zeros((*size, keys.shape[3])),
                            values.new_zeros((*size, values.shape[3])),
                        )
                    )
                merged[layer][0][index, :, width - length : width - 1] = keys
                merged[layer][1][index, :, width - length : width - 1] = values
        cache = DynamicCache()
        layer_class = _growing_layer_class()
        cache.layers.extend(layer_class(keys, values, width - 1) for keys, values in merged)
        return cache, sources

    def _remember(
        self,
        rows: list[np.ndarray],
        new_tokens: list[list[int]],
        lengths: list[int],
        cache: Any,
        width: int,
        sources: list[tuple[int | None, int]],
    ) -> None:
        """Keep each row's prompt and answer states in the prefix cache.

        The cache `generate` extended holds every position but the last generated token's. A
        row whose prompt covered all of its source entry's prompt is that conversation's next
        turn: the new entry supersedes the old one, which is dropped.
        """
        if self.prefix_cache.max_bytes <= 0:
            return
        layers = _cache_layers(cache)
        steps = len(new_tokens[0]) if new_tokens else 0
        if not layers or steps == 0 or layers[0][0].shape[2] != width + steps - 1:
            return  # not the cache this call filled (another transformers' `generate`)
        for i, row in enumerate(rows):
            fed = min(lengths[i], steps - 1)
            tokens = np.concatenate([row, np.asarray(new_tokens[i][:fed], dtype=np.int64)])
            start = width - len(row)
            kept = [
                (
                    keys[i, :, start : start + len(tokens)].clone(),
                    values[i, :, start : start + len(tokens)].clone(),
                )
                for keys, values in layers
            ]
            nbytes = sum(k.nbytes + v.nbytes for k, v in kept)
            key, reused = sources[i]
            source = self.prefix_cache.entries.get(key) if key is not None else None
            if source is not None and reused >= source.prompt_length:
                self.prefix_cache.discard(key)  # type: ignore[arg-type]
            self.prefix_cache.add(_PrefixEntry(tokens, len(row), kept, nbytes))

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
        shots = f", {len(self._examples) // 2} few-shot examples" if self._examples else ""
        return (
            f"HFPolicy({self.name!r}, {'vlm' if self.is_vlm else 'causal'}, {prompt}{shots}, "
            f"device={self.device}, dtype={self.model.dtype}, precision={self.precision}, "
            f"options={self.options})"
        )


def _rgb(image: Any) -> Any:
    """Images as RGB, since image processors expect 3 channels (RGBA renders, L masks)."""
    mode = getattr(image, "mode", "RGB")
    return image if mode == "RGB" else image.convert("RGB")


@dataclass
class _Prompt:
    """One request, rendered once per call (and tokenized once, for text-only models)."""

    text: str
    images: list[Any]
    ids: np.ndarray | None
    """Token ids (text-only models); a VLM's processor tokenizes with the images instead."""
    length: int
    """Tokens (or, for a VLM, characters): what `HFPolicy._chunks` sorts by."""


def _request_images(request: Request) -> list[Any]:
    """Every image of a conversation, in turn order."""
    return [image for message in request["messages"] for image in message_images(message)]


_GROWING_LAYER: type | None = None

GROWTH_STEP = 256
"""Positions a decoding cache gains when it runs out of room (one copy per this many steps)."""


def _growing_layer_class() -> type:
    """A `DynamicLayer` that decodes into spare room instead of concatenating at every step.

    transformers' `DynamicLayer.update` concatenates the whole cache with each new token, which
    copies every key and value at every step: O(batch x length) memory traffic per token, a
    large part of a CPU decoding step over long batched conversations. This layer starts from
    buffers with spare room and writes each step in place, growing the room by `GROWTH_STEP`
    positions when it runs out (one copy per that many steps). It keeps `keys` and `values` as
    views of the filled part, so the rest of `DynamicLayer` (lengths, masks, `crop`) works
    unchanged, and falls back to concatenation if the states were replaced (e.g. by
    `batch_select_indices`). Built on first use, so importing this module does not need a
    transformers with `DynamicLayer`.
    """
    global _GROWING_LAYER
    if _GROWING_LAYER is None:
        from transformers.cache_utils import DynamicLayer

        class GrowingLayer(DynamicLayer):
            _layer_type = None  # never registered as transformers' layer for any layer type

            def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
                super().__init__()
                self.lazy_initialization(keys, values)
                self._room = (keys, values)
                self.keys, self.values = keys[:, :, :length], values[:, :, :length]

            def update(
                self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kw: Any
            ) -> tuple[torch.Tensor, torch.Tensor]:
                keys, values = self._room
                start = self.keys.shape[-2]
                stop = start + key_states.shape[-2]
                if self.keys.data_ptr() != keys.data_ptr() or self.keys.shape[0] != keys.shape[0]:
                    return super().update(key_states, value_states, *args, **kw)
                if stop > keys.shape[-2]:
                    size = (*keys.shape[:2], stop + GROWTH_STEP)
                    keys = keys.new_zeros((*size, keys.shape[3]))
                    values = values.new_zeros((*size, values.shape[3]))
                    keys[:, :, :start], values[:, :, :start] = self.keys, self.values
                    self._room = (keys, values)
                keys[:, :, start:stop] = key_states
                values[:, :, start:stop] = value_states
                self.keys, self.values = keys[:, :, :stop], values[:, :, :stop]
                return self.keys, self.values

        _GROWING_LAYER = GrowingLayer
    return _GROWING_LAYER


def _cache_layers(cache: Any) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A `DynamicCache`'s per-layer ``(keys, values)``, shaped ``[batch, heads, tokens, dim]``."""
    return [(layer.keys, layer.values) for layer in cache.layers]


__all__ = [
    "GENERATION_DEFAULTS",
    "PLAIN_ROLE_LABELS",
    "PLAIN_STOP",
    "HFPolicy",
    "PrefixCache",
    "auto_device",
    "auto_dtype",
    "common_prefix_length",
    "is_vision_config",
    "render_plain_prompt",
    "truncate_at_stop",
]
