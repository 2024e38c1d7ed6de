# docs: spec §5 (the paper's RL4VLM-derived PPO), with the fixes of spec §10 items 12-17
"""Multi-turn PPO with sequential revision and a value head, in one file read top to bottom.

The policy is a language (or vision-language) model answering an openvirl environment; each
env step is one whole answer (an action made of tokens). A wrong answer comes back as a user
turn ``You failed this trial because ...`` and the model revises it in the same conversation
until it is right or the attempts run out: "sequential revision" (spec §1, §5.2).

The loop is a row of named phases, like CleanRL's ``ppo.py``:

1. anneal the learning rate (cosine over updates, stepped once per update as the reference);
2. roll out ``episodes_per_update`` complete episodes, ``num_envs`` at a time, sampling every
   answer through the ``hf`` policy's own prompt rendering at ``temperature``;
3. score each (prompt, answer) once more without gradients: old log-probabilities at the
   same temperature, the value of the prompt, and (optionally) the reference model's
   log-probabilities for the KL penalty;
4. GAE (γ 0.9, λ 0.95) inside each episode, never across one;
5. ``update_epochs`` × shuffled minibatches with gradient accumulation and clipping: clipped
   policy loss, clipped value loss, optional entropy bonus and KL to the reference;
6. log under ``charts/`` and ``losses/``; checkpoint (model or adapter, value head,
   optimizer, scheduler, RNG, update, FLOPs).

How this differs from the reference (spec §10):

- **12** The answer span is found in the text (the last ``"formula"`` or ``"action"`` key),
  then mapped to tokens by incremental decoding with the model's own tokenizer: no hard-coded
  token ids. Every generated token is scored, the first one included.
- **13, 15** Every update plays complete episodes, so no return is ever bootstrapped: an
  episode's last step is terminal, GAE stops there, and nothing carries over an update
  boundary (no phantom turn, no stale feedback).
- **14** No discarded generation: the env ends the episode on the last verified attempt.
- **16** ``do_sample`` is passed explicitly, and answers are sampled from exactly the
  distribution that is scored (temperature only: no top-p or top-k truncation).
- **17** The value head has its own learning rate, entropy bonus and KL penalty are options,
  the gradient-norm clip is a plain option (default 1.0, the reference used 0.01), and the
  reference's "ratio > 10" fallback is off unless asked for.

The policy log-probability of an answer is, by default, the paper's weighting
``0.5·Σ log p(reasoning tokens) + Σ log p(answer tokens)`` (``thought_coef=0.5``); the
ratio and the KL use it per sequence, as the reference does. Dropout is disabled throughout
(the model stays in eval mode), so the first ratio of every update is exactly 1.

Run it::

    openvirl train ppo --config ppo-gp-l-quick.yaml [--resume] [key=value ...]
    accelerate launch -m openvirl.training.cli ppo --config ppo-gp-l-paper.yaml   # GPUs

Several processes (``accelerate launch``, DDP or DeepSpeed ZeRO-2) do the same work as one:

- the ``episodes_per_update`` episodes of an update are split between processes, and every
  answer is sampled with its own generator, seeded by (seed, episode, attempt), by the same
  per-row sampler evaluation uses (`hf.row_sampler`, a Gumbel argmax at the temperature), so
  an episode plays out the same whichever process plays it, in whatever batch;
- the episodes are then gathered, so every process holds the whole buffer: GAE, advantage
  normalization and the shuffles are global;
- an optimizer step takes ``grad_accum_steps`` minibatches of ``minibatch_size`` transitions
  in all; process ``r`` runs the step's minibatches ``r, r + W, ...`` and fills up to
  ``ceil(grad_accum_steps / W)`` with zero-weight copies of the shortest transition, so every
  process runs the same number of forward/backward passes and no collective can hang. The
  loss is a sum over the step's transitions divided by their number, whatever the split;
- old log-probabilities are scored in the first epoch's minibatches (same rows, same
  padding), so the first ratio is exactly 1, in bf16 too;
- token and FLOP counts are summed over processes (``accelerator.reduce``) and are the same
  for any number of processes.
"""

from __future__ import annotations

import math
import random
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - the train extra brings torch
    raise ImportError("PPO needs torch: `pip install 'openvirl[train]'`") from exc


@dataclass
class PPOConfig:
    """Every option of a PPO run; each field is documented in the docstring under it."""

    exp_name: str = "ppo"
    """name of this experiment (run folders default to runs/<exp_name>)"""
    seed: int = 42
    """seed of initialization, sampling, minibatch order and the episode stream"""
    output_dir: str = "runs/ppo"
    """run folder: metrics.csv, config.yaml, checkpoints/, final/"""
    tensorboard: bool = False
    """also log to TensorBoard (needs the tensorboard package)"""
    wandb: bool = False
    """also log to wandb in offline mode (needs the wandb package)"""
    save_every: int = 1
    """save a checkpoint every N updates (and always after the last one)"""
    keep_last: int | None = 2
    """checkpoints to keep (None keeps all)"""
    resume: bool = False
    """continue from the latest complete checkpoint in output_dir"""

    # Model arguments
    model: str = "gemma-3-270m"
    """model to train: local folder, Hub id, or gemma-3-270m (the embedded base model)"""
    init_adapter: str | None = None
    """LoRA adapter to start from (e.g. the SFT Init checkpoint's model/ folder)"""
    chat_template: bool | None = None
    """render prompts with the chat template (True), plain text (False) or as the hf policy would"""
    dtype: str = "auto"
    """weights dtype: auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16"""
    lora: bool = True
    """train a LoRA adapter (peft); False trains every weight (the paper's setting)"""
    lora_r: int = 16
    """LoRA rank"""
    lora_alpha: int = 32
    """LoRA scaling alpha"""
    lora_target_modules: str | list[str] = "all-linear"
    """modules LoRA adapts"""
    value_head_sizes: list[int] = field(default_factory=lambda: [1024, 512])
    """hidden sizes of the value MLP (paper: hidden→1024→ReLU→512→ReLU→1)"""
    value_shares_trunk: bool = False
    """let value-loss gradients flow into the model (paper: yes); False trains the head alone on
    detached features, so a fresh head's large errors cannot move the policy"""

    # Environment arguments
    env_id: str = "openvirl/GeneralPoints-v0"
    """gymnasium id of the environment"""
    env_kwargs: dict[str, Any] = field(default_factory=lambda: {"rule": "id", "split": "train"})
    """keyword arguments of gym.make (keep split=train so evaluation hands stay unseen)"""

    # Algorithm specific arguments
    num_updates: int = 20
    """PPO updates (rollout + optimization rounds); the paper ran 20 (GP) or 15 (V-IRL)"""
    episodes_per_update: int = 16
    """complete episodes played per update, in all (split across processes, not per process)"""
    num_envs: int = 8
    """episodes in flight at once (the generation batch size)"""
    max_new_tokens: int = 128
    """longest answer in tokens (paper: 512)"""
    temperature: float = 0.2
    """sampling temperature, also used to score log-probabilities (paper: 0.2)"""
    precision: str | None = None
    """CPU precision of the rollouts (`hf` policy's `precision`; None: the model's default,
    the exact ``shortlist`` for the embedded model; ``bf16`` is faster, see the README)"""
    learning_rate: float = 1e-5
    """learning rate of the model (paper, full FT: 1e-6)"""
    value_learning_rate: float | None = None
    """learning rate of the value head; None uses learning_rate (the paper's shared LR)"""
    lr_schedule: str = "cosine"
    """'cosine' (annealed once per update, as the reference) or 'constant'"""
    lr_max_updates: int | None = None
    """T_max of the cosine schedule in updates; None means num_updates (paper GP: 100)"""
    min_lr_ratio: float = 0.0
    """floor of the cosine schedule as a fraction of the peak"""
    adam_eps: float = 1e-7
    """Adam epsilon (paper: 1e-7)"""
    gamma: float = 0.9
    """discount factor (paper: 0.9)"""
    gae_lambda: float = 0.95
    """lambda of generalized advantage estimation (paper: 0.95)"""
    update_epochs: int = 4
    """epochs over each update's buffer (paper: 4)"""
    minibatch_size: int = 4
    """transitions per forward pass, on each process (paper: 1)"""
    grad_accum_steps: int = 4
    """minibatches per optimizer step in all, summed over processes (paper: 128 per GPU x 8 GPUs
    = 1024); each process runs ceil(grad_accum_steps / num_processes) of them per step"""
    norm_adv: bool = True
    """normalize advantages over the update's buffer"""
    clip_coef: float = 0.1
    """surrogate clipping coefficient, also used for the value (paper: 0.1)"""
    clip_vloss: bool = False
    """clip the value loss to ±clip_coef around the old values (paper: True). Off by default:
    returns here span about -6..+5 while clip_coef is 0.1-0.2, so the clipped loss has no
    gradient once the value leaves that narrow band and the critic barely learns, and a
    wrong first attempt followed by a correct retry then gets a positive advantage from an
    unlearnt baseline. Unclipped (the
    chosen fix, rather than normalised returns) keeps the value head on the reward's own scale,
    so GAE needs no de-normalisation; `max_grad_norm` still bounds each step. The paper presets
    set it True."""
    vf_coef: float = 0.5
    """coefficient of the value loss (paper: 0.5)"""
    ent_coef: float = 0.0
    """coefficient of the entropy bonus (paper: none)"""
    kl_coef: float = 0.0
    """coefficient of the KL penalty to the frozen reference model (paper: none)"""
    max_grad_norm: float = 1.0
    """gradient clipping norm (paper: 0.01, see spec §10 item 17)"""
    target_kl: float | None = None
    """stop the update's epochs early once the approximate KL exceeds this"""
    ratio_guard: float | None = None
    """reference quirk: if any ratio exceeds this, use only the clipped term (paper: 10)"""
    thought_coef: float | None = 0.5
    """weight of reasoning tokens in the answer log-prob (paper: 0.5); None weights all 1"""
    answer_key: str | None = "auto"
    """JSON key that starts the answer span; auto: formula (points) or action (navigation)"""
    reward_scale: float = 1.0
    """multiply env rewards by this before GAE"""
    flops_offset: float = 0.0
    """FLOPs spent before this run (the SFT Init's), added to the logged FLOP axis"""

    # to be filled in runtime
    minibatches_per_epoch: int = 0
    """filled in runtime: optimizer steps x grad_accum_steps of the last epoch (episodes have
    varying lengths, so the buffer does)"""

    def __post_init__(self) -> None:
        if self.precision is not None:
            from openvirl.policies.fast import check_precision

            check_precision(self.precision)
        if self.temperature <= 0:
            raise ValueError(
                f"`temperature` must be > 0 for PPO (got {self.temperature}): greedy decoding "
                "has no probability ratio to clip; the paper samples at 0.2."
            )
        if self.num_envs < 1 or self.episodes_per_update < 1 or self.num_updates < 1:
            raise ValueError(
                "`num_envs`, `episodes_per_update` and `num_updates` must be >= 1 (got "
                f"{self.num_envs}, {self.episodes_per_update}, {self.num_updates})."
            )
        if self.minibatch_size < 1 or self.grad_accum_steps < 1 or self.update_epochs < 1:
            raise ValueError(
                "`minibatch_size`, `grad_accum_steps` and `update_epochs` must be >= 1."
            )
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(
                f"`lr_schedule` must be 'cosine' or 'constant', got {self.lr_schedule!r}."
            )
        if self.init_adapter is not None and not self.lora:
            raise ValueError(
                "`init_adapter` needs `lora=True`; for full FT pass the folder as `model`."
            )
        if not 0 <= self.gamma <= 1 or not 0 <= self.gae_lambda <= 1:
            raise ValueError("`gamma` and `gae_lambda` must lie in [0, 1].")


@dataclass
class PPOResult:
    """What `train_ppo` returns."""

    output_dir: Path
    final_dir: Path
    """The trained model (adapter or full weights), loadable by `HFPolicy`; value head beside."""
    updates: int
    flops: float
    n_params: int
    history: list[dict[str, float]]
    """One row of metrics per update of this session."""
    agent: Any = None
    """The trained policy and value head (`Agent`, unwrapped), on every process."""


def make_env(env_id: str, env_kwargs: dict[str, Any]) -> Callable[[], Any]:
    """Thunk that builds one environment (CleanRL's `make_env`); `env_kwargs` go to `gym.make`
    (GeneralPoints' difficulty knobs ``n_cards``, ``ranks`` and ``split_by`` included)."""
    from openvirl.training.data import make_env_factory

    return make_env_factory(env_id, env_kwargs)


class ValueHead(nn.Module):
    """V(s) from the last prompt token's final hidden state: an MLP as in the paper (§5.1)."""

    def __init__(self, hidden_size: int, sizes: Sequence[int] = (1024, 512)):
        super().__init__()
        layers: list[nn.Module] = []
        width = hidden_size
        for size in sizes:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.mlp = nn.Sequential(*layers)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.mlp(hidden.float()).squeeze(-1)


# ---------------------------------------------------------------------------- ALGO LOGIC helpers
def value_loss(new_values: Any, old_values: Any, returns: Any, clip_coef: float, clip: bool) -> Any:
    """Per-transition value loss, ``0.5 (V - R)^2``, optionally clipped as in CleanRL.

    Clipped (`clip`, the paper's setting) it is ``0.5 max((V - R)^2, (V_clip - R)^2)`` with
    ``V_clip = V_old + clamp(V - V_old, ±clip_coef)``: once the new value leaves that band
    (0.1-0.2 wide, against returns spanning about 11) the gradient is zero, so per update the
    critic gets about one optimizer step's worth of movement however many epochs and
    minibatches follow. Hence the default: off.
    """
    import torch

    unclipped = (new_values - returns) ** 2
    if not clip:
        return 0.5 * unclipped
    clipped_values = old_values + torch.clamp(new_values - old_values, -clip_coef, clip_coef)
    return 0.5 * torch.max(unclipped, (clipped_values - returns) ** 2)


def compute_gae(
    rewards: Sequence[float],
    values: Sequence[float],
    dones: Sequence[bool],
    gamma: float,
    lam: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Generalized advantage estimation over a time-ordered buffer of whole episodes.

    ``dones[t]`` says the episode ended with step ``t``; the recursion then restarts, so no
    value is bootstrapped across an episode boundary (spec §10 item 13). The buffer must end
    with a done step (every update plays complete episodes): the value after it is 0.

    Returns
    -------
    tuple of numpy arrays
        ``(advantages, returns)`` with ``returns = advantages + values``.
    """
    rewards = np.asarray(rewards, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    dones = np.asarray(dones, dtype=bool)
    if len(dones) and not dones[-1]:
        raise ValueError("the buffer must end with a finished episode (dones[-1] is False).")
    advantages = np.zeros_like(rewards)
    lastgaelam = 0.0
    for t in reversed(range(len(rewards))):
        nextnonterminal = 0.0 if dones[t] else 1.0
        nextvalue = values[t + 1] if t + 1 < len(rewards) else 0.0
        delta = rewards[t] + gamma * nextvalue * nextnonterminal - values[t]
        lastgaelam = delta + gamma * lam * nextnonterminal * lastgaelam
        advantages[t] = lastgaelam
    return advantages, advantages + values


def locate_answer_start(completion_ids: Sequence[int], tokenizer: Any, key: str) -> int | None:
    """Index of the first token of the answer span: the one holding the last ``"<key>"``.

    The answer (``"formula": "..."`` or ``"action": "..."`` through the end) is found in the
    decoded text, then mapped to a token by decoding growing prefixes: token ``i`` covers the
    characters ``len(decode(ids[:i])) .. len(decode(ids[:i+1]))``. This works for any
    tokenizer, however it splits the key (no hard-coded ids, spec §10 item 12).

    Returns
    -------
    int or None
        None when the key is not in the completion (then every token counts as answer).
    """
    ids = list(completion_ids)
    text = tokenizer.decode(ids, skip_special_tokens=False)
    position = text.rfind(f'"{key}"')
    if position < 0:
        return None
    low, high = 0, len(ids) - 1
    # Prefix lengths grow with i, so a binary search finds the token covering `position`.
    while low < high:
        mid = (low + high) // 2
        if len(tokenizer.decode(ids[: mid + 1], skip_special_tokens=False)) > position:
            high = mid
        else:
            low = mid + 1
    return low


def token_weights(length: int, answer_start: int | None, thought_coef: float | None) -> list[float]:
    """Per-token weights of the answer log-prob: `thought_coef` before the answer span, 1 in it."""
    if thought_coef is None or answer_start is None:
        return [1.0] * length
    return [thought_coef if i < answer_start else 1.0 for i in range(length)]


@dataclass
class Transition:
    """One env step: the prompt the model saw, what it sampled, and what came back."""

    prompt_ids: list[int]
    completion_ids: list[int]
    weights: list[float]
    extras: dict[str, torch.Tensor]
    reward: float
    done: bool
    success: bool
    outcome: str
    episode: int
    logprob: float = 0.0
    value: float = 0.0
    ref_token_logprobs: list[float] | None = None
    advantage: float = 0.0
    ret: float = 0.0


def collate(transitions: Sequence[Transition], pad_id: int, device: Any) -> dict[str, torch.Tensor]:
    """Batch transitions as [left-padded prompt | right-padded completion].

    Every prompt then ends at column ``P - 1`` (where the value is read) and every completion
    starts at column ``P``, so one ``logits_to_keep = C + 1`` covers all answer tokens.
    """
    P = max(len(t.prompt_ids) for t in transitions)
    C = max(len(t.completion_ids) for t in transitions)
    n = len(transitions)
    input_ids = torch.full((n, P + C), pad_id, dtype=torch.long)
    attention = torch.zeros((n, P + C), dtype=torch.long)
    weights = torch.zeros((n, C), dtype=torch.float32)
    completion = torch.full((n, C), pad_id, dtype=torch.long)
    for i, t in enumerate(transitions):
        p, c = len(t.prompt_ids), len(t.completion_ids)
        input_ids[i, P - p : P] = torch.tensor(t.prompt_ids)
        input_ids[i, P : P + c] = torch.tensor(t.completion_ids)
        attention[i, P - p : P + c] = 1
        completion[i, :c] = torch.tensor(t.completion_ids)
        weights[i, :c] = torch.tensor(t.weights)
    position_ids = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)
    batch = {
        "input_ids": input_ids.to(device),
        "attention_mask": attention.to(device),
        "position_ids": position_ids.to(device),
        "completion_ids": completion.to(device),
        "weights": weights.to(device),
        "mask": (weights > 0).float().to(device),
        "prompt_length": torch.tensor(P),
    }
    for key in transitions[0].extras:
        parts = [t.extras[key] for t in transitions]
        if key in CROSS_ATTENTION_EXTRAS:
            batch[key] = _collate_cross_attention(transitions, parts, P, C).to(device)
        elif key in ROW_IMAGE_EXTRAS and "cross_attention_mask" in transitions[0].extras:
            batch[key] = torch.cat(_pad_images(parts, dim=1)).to(device)
        elif key in SEQUENCE_EXTRAS:
            # per-token extras (token_type_ids ...) follow the prompt's left padding; the
            # completion columns are text (zero)
            aligned = torch.zeros((n, P + C), dtype=parts[0].dtype)
            for i, (t, part) in enumerate(zip(transitions, parts, strict=True)):
                aligned[i, P - len(t.prompt_ids) : P] = part
            batch[key] = aligned.to(device)
        else:
            batch[key] = torch.cat(parts).to(device)
    return batch


def _pad_images(parts: Sequence[torch.Tensor], dim: int) -> list[torch.Tensor]:
    """Zero-pad each part's image dimension `dim` to the largest, as the Mllama processor does
    for a batch whose rows hold different image counts (a zero cross-attention mask hides
    the padding images from every token)."""
    most = max(part.shape[dim] for part in parts)
    out = []
    for part in parts:
        shape = list(part.shape)
        shape[dim] = most - part.shape[dim]
        out.append(torch.cat([part, part.new_zeros(shape)], dim=dim))
    return out


def _collate_cross_attention(
    transitions: Sequence[Transition], parts: Sequence[torch.Tensor], prompt: int, completion: int
) -> torch.Tensor:
    """The per-token cross-attention mask of [left-padded prompt | right-padded completion].

    Each part is a prompt's own ``(prompt tokens, images, tiles)`` mask. Padding columns get
    zeros (the processor's value for tokens before the first image), and every completion
    column repeats the last prompt token's row, which is what Mllama's generation appends
    for each new token (``_update_model_kwargs_for_generation``): so a completion token is
    scored with the same image view it was sampled with.
    """
    parts = _pad_images(parts, dim=1)
    out = parts[0].new_zeros((len(parts), prompt + completion, *parts[0].shape[1:]))
    for i, (t, part) in enumerate(zip(transitions, parts, strict=True)):
        out[i, prompt - len(t.prompt_ids) : prompt] = part
        out[i, prompt:] = part[-1]
    return out


SEQUENCE_EXTRAS = ("token_type_ids", "mm_token_type_ids")
"""Processor outputs with one value per prompt token (stored unpadded, re-padded by `collate`)."""

CROSS_ATTENTION_EXTRAS = ("cross_attention_mask",)
"""Per-token image masks ``(rows, seq, images, tiles)`` of cross-attention VLMs (Llama 3.2
Vision): stored per prompt token and image, re-padded and extended over the completion by
`collate`."""

ROW_IMAGE_EXTRAS = ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask")
"""Processor outputs laid out ``(rows, images, ...)`` when the processor also returns a
`CROSS_ATTENTION_EXTRAS` mask (Mllama): cut to each row's own images, zero-padded back to the
widest row of a minibatch by `collate`."""

PATCH_EXTRAS = ("pixel_values", "pixel_values_videos")
"""Processor outputs that hold image patches flattened across images when the processor also
returns ``image_grid_thw`` (Qwen-VL style): split by each image's patch count."""


def split_extras(
    batch: Any, image_counts: Sequence[int], prompt_masks: Sequence[Any]
) -> list[dict[str, torch.Tensor]]:
    """Each row's own model inputs beyond ``input_ids``/``attention_mask``, on the CPU.

    A VLM processor concatenates the images of every conversation of a batch along the first
    dimension (``pixel_values`` is ``(images, C, H, W)`` for LLaVA), so slicing row ``r`` with
    ``v[r:r+1]`` hands a transition someone else's image as soon as one prompt holds several
    images (or none). Here a per-image tensor is split by `image_counts` (the images of each
    row's conversation, in order), a Qwen-style flattened patch tensor by the patches of each
    row's images (``image_grid_thw``), a per-token tensor (`SEQUENCE_EXTRAS`) is kept without
    its padding (`prompt_masks`, re-padded by `collate`), and a per-row tensor is sliced.
    Mllama's ``(rows, images, ...)`` tensors (`ROW_IMAGE_EXTRAS`) and its per-token
    cross-attention mask keep each row's own images and, for the mask, prompt tokens.
    `collate` concatenates the pieces back in row order, which is the order the model pairs
    image tokens with images.

    Raises
    ------
    ValueError
        A tensor whose first dimension matches neither the rows nor the images.
    """
    rows = len(image_counts)
    total = int(sum(image_counts))
    ends = np.cumsum([0, *image_counts]).tolist()
    patch_ends = None
    grid = batch.get("image_grid_thw") if hasattr(batch, "get") else None
    if isinstance(grid, torch.Tensor) and grid.shape[0] == total:
        patches = grid.prod(-1).tolist()
        patch_ends = [int(sum(patches[: ends[r]])) for r in range(rows + 1)]
    cross = batch.get("cross_attention_mask") if hasattr(batch, "get") else None
    per_row_images = isinstance(cross, torch.Tensor) and cross.shape[0] == rows
    out: list[dict[str, torch.Tensor]] = [{} for _ in range(rows)]
    for key, value in batch.items():
        if key in ("input_ids", "attention_mask") or not isinstance(value, torch.Tensor):
            continue
        value = value.detach().cpu()
        for r in range(rows):
            if key in CROSS_ATTENTION_EXTRAS and value.dim() == 4 and value.shape[0] == rows:
                piece = value[r][prompt_masks[r].bool().cpu()][:, : image_counts[r]]
            elif per_row_images and key in ROW_IMAGE_EXTRAS and value.shape[0] == rows:
                piece = value[r : r + 1, : image_counts[r]]
            elif key in SEQUENCE_EXTRAS and value.dim() >= 2 and value.shape[0] == rows:
                piece = value[r][prompt_masks[r].bool().cpu()]
            elif patch_ends is not None and key in PATCH_EXTRAS:
                piece = value[patch_ends[r] : patch_ends[r + 1]]
            elif total != rows and value.dim() > 0 and value.shape[0] == total:
                piece = value[ends[r] : ends[r + 1]]
            elif value.dim() > 0 and value.shape[0] == rows:
                # one image per row (or a per-row tensor): either reading gives this slice
                piece = value[r : r + 1]
            else:
                raise ValueError(
                    f"cannot assign the processor output `{key}` of shape {tuple(value.shape)} "
                    f"to {rows} rows holding {total} images"
                )
            out[r][key] = piece
    return out


class Agent(nn.Module):
    """The policy (the language model) and its value head, one module for one optimizer.

    One module also means one `accelerator.prepare` call, which DeepSpeed requires.
    """

    def __init__(self, model: Any, value_head: ValueHead, *, value_shares_trunk: bool = False):
        super().__init__()
        self.model = model
        self.value_head = value_head
        self.value_shares_trunk = value_shares_trunk

    def forward(
        self,
        batch: dict[str, torch.Tensor],
        temperature: float,
        *,
        with_value: bool = True,
        with_entropy: bool = False,
    ) -> dict[str, torch.Tensor]:
        """One pass: per-token log-probs of the completion at `temperature`, and V(prompt).

        Logits are computed only at completion positions (``logits_to_keep``), which matters
        for 262k-token vocabularies. The value reads the final hidden state at the last
        prompt token (column ``P - 1``), i.e. V(state) before the answer.
        """
        return score(
            self.model,
            self.value_head if with_value else None,
            batch,
            temperature,
            with_entropy=with_entropy,
            detach_value=not self.value_shares_trunk,
        )


def image_count_groups(batch: Any) -> list[tuple[int, list[int]]] | None:
    """Rows of a cross-attention VLM batch (Mllama) grouped by their image count, in order.

    Mllama's text tokens before a prompt's first image have no image to attend to; their
    cross-attention then spreads uniformly over every image slot of the row, the batch's
    zero-padding slots included, and later tokens read those states through self-attention.
    A row's log-probs would thus depend on how many images the other rows of its batch hold.
    Running each image count separately, without padding slots, makes generation and
    scoring (`score`) see the same inputs whatever the batch. None for other batches.
    """
    if not hasattr(batch, "get") or "cross_attention_mask" not in batch:
        return None
    ids = batch.get("aspect_ratio_ids")  # 0 marks a padding slot, real images count from 1
    if not isinstance(ids, torch.Tensor):
        return None
    groups: dict[int, list[int]] = {}
    for row, count in enumerate((ids > 0).sum(-1).tolist()):
        groups.setdefault(int(count), []).append(row)
    return sorted(groups.items())


def select_rows(batch: Any, rows: Sequence[int], images: int) -> dict[str, Any]:
    """Model inputs of `rows` of `batch`, with Mllama's image slots cut to the first `images`
    (no image inputs at all for rows without images)."""
    n = batch["input_ids"].shape[0]
    index = torch.tensor(list(rows), device=batch["input_ids"].device)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != n:
            out[key] = value
        elif key in ROW_IMAGE_EXTRAS or key in CROSS_ATTENTION_EXTRAS:
            if images:
                value = value[index]
                out[key] = value[:, :images] if key in ROW_IMAGE_EXTRAS else value[:, :, :images]
        else:
            out[key] = value[index]
    return out


def generate_by_image_count(
    model: Any,
    batch: Any,
    seeds: Sequence[int],
    kwargs_for: Callable[[Sequence[int]], dict[str, Any]],
    pad_id: int,
) -> torch.Tensor:
    """`model.generate` on `batch`, one call per image count for Mllama (`image_count_groups`).

    `kwargs_for(seeds)` gives the generate arguments for the rows with these sampling seeds.
    Returns ``(rows, prompt + new tokens)`` ids, rows in `batch` order, right-padded with
    `pad_id` where a group stopped earlier than the longest.
    """
    from openvirl.policies import fast

    def generate(inputs: Any, row_seeds: Sequence[int]) -> torch.Tensor:
        kwargs = kwargs_for(row_seeds)
        # A Gumbel sampler lets the embedded model's output layer take its shortlist.
        with fast.sampling(fast.noise_of(kwargs)):
            return model.generate(**inputs, **kwargs)

    groups = image_count_groups(batch)
    width = batch["aspect_ratio_ids"].shape[1] if groups else 0
    if groups is None or (len(groups) == 1 and groups[0][0] == width):
        return generate(batch, seeds)
    outputs = [
        (rows, generate(select_rows(batch, rows, count), [seeds[r] for r in rows]))
        for count, rows in groups
    ]
    length = max(out.shape[1] for _, out in outputs)
    generated = outputs[0][1].new_full((len(seeds), length), pad_id)
    for rows, out in outputs:
        generated[torch.tensor(rows, device=out.device), : out.shape[1]] = out
    return generated


def _forward_by_image_count(model: Any, inputs: dict[str, Any], **kwargs: Any) -> Any:
    """``model(**inputs)``, split by image count for Mllama (see `image_count_groups`);
    returns ``(logits, last hidden states or None)`` in row order."""
    groups = image_count_groups(inputs)
    width = inputs["aspect_ratio_ids"].shape[1] if groups else 0
    if groups is None or (len(groups) == 1 and groups[0][0] == width):
        output = model(**inputs, **kwargs)
        hidden = output.hidden_states[-1] if kwargs.get("output_hidden_states") else None
        return output.logits, hidden
    logits, hidden, order = [], [], []
    for count, rows in groups:
        output = model(**select_rows(inputs, rows, count), **kwargs)
        logits.append(output.logits)
        if kwargs.get("output_hidden_states"):
            hidden.append(output.hidden_states[-1])
        order.extend(rows)
    inverse = torch.argsort(torch.tensor(order, device=logits[0].device))
    return torch.cat(logits)[inverse], (torch.cat(hidden)[inverse] if hidden else None)


def score(
    model: Any,
    value_head: ValueHead | None,
    batch: dict[str, torch.Tensor],
    temperature: float,
    *,
    with_entropy: bool = False,
    detach_value: bool = False,
) -> dict[str, torch.Tensor]:
    """Per-token completion log-probs at `temperature` (and values, entropy) of a model.

    With `detach_value` the value head reads the hidden state without gradient into the model.
    """
    P = int(batch["prompt_length"])
    C = batch["completion_ids"].shape[1]
    inputs = {k: v for k, v in batch.items() if k not in _NOT_MODEL_INPUTS}
    all_logits, last_hidden = _forward_by_image_count(
        model,
        inputs,
        output_hidden_states=value_head is not None,
        logits_to_keep=C + 1,
        use_cache=False,
    )
    logits = all_logits[:, :C].float() / temperature
    logprobs = torch.log_softmax(logits, dim=-1)
    token_logprobs = logprobs.gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)
    result = {"token_logprobs": token_logprobs * batch["mask"]}
    if value_head is not None:
        hidden = last_hidden[:, P - 1]
        result["values"] = value_head(hidden.detach() if detach_value else hidden)
    if with_entropy:
        entropy = -(logprobs.exp() * logprobs).sum(-1)
        result["entropy"] = (entropy * batch["mask"]).sum(-1) / batch["mask"].sum(-1).clamp(min=1)
    return result


_NOT_MODEL_INPUTS = {"completion_ids", "weights", "mask", "prompt_length"}


def _cosine_factor(update: int, config: PPOConfig) -> float:
    if config.lr_schedule == "constant":
        return 1.0
    horizon = config.lr_max_updates or config.num_updates
    progress = min(update, horizon) / horizon
    return config.min_lr_ratio + (1 - config.min_lr_ratio) * 0.5 * (
        1 + math.cos(math.pi * progress)
    )


def sampling_seed(seed: int, episode: int, attempt: int) -> int:
    """Seed of one answer's sampling generator: a function of the episode, not of the process."""
    return int(np.random.SeedSequence([seed, episode, attempt]).generate_state(1)[0])


def local_grad_accum_steps(config: PPOConfig, world: int) -> int:
    """Minibatches each of `world` processes runs per optimizer step (the rest are padding)."""
    return math.ceil(config.grad_accum_steps / world)


def epoch_order(n: int, seed: int, update: int, epoch: int) -> list[int]:
    """The shuffled order of an update's buffer in one epoch (the same on every process)."""
    order = np.arange(n)
    np.random.default_rng([seed, update, epoch]).shuffle(order)
    return order.tolist()


def plan_epoch(
    order: Sequence[int], config: PPOConfig, world: int, rank: int
) -> list[tuple[int, list[list[int] | None]]]:
    """This process's share of one epoch: per optimizer step, its minibatches.

    The epoch's `order` (a permutation of the global buffer, the same on every process) is cut
    into optimizer steps of ``minibatch_size * grad_accum_steps`` transitions and each step
    into minibatches of ``minibatch_size``; process `rank` takes minibatches ``rank, rank +
    world, ...`` and pads with None (a zero-weight dummy) to `local_grad_accum_steps`, so all
    processes run the same number of passes.

    Returns
    -------
    list of (int, list)
        ``(transitions in the step over all processes, [minibatch indices or None, ...])``.
    """
    per_step = config.minibatch_size * config.grad_accum_steps
    slots = local_grad_accum_steps(config, world)
    plan = []
    for start in range(0, len(order), per_step):
        step = list(order[start : start + per_step])
        minibatches = [
            step[i : i + config.minibatch_size] for i in range(0, len(step), config.minibatch_size)
        ]
        mine: list[list[int] | None] = list(minibatches[rank::world])
        mine += [None] * (slots - len(mine))
        plan.append((len(step), mine))
    return plan


def deepspeed_settings(config: PPOConfig, world: int) -> dict[str, Any]:
    """The DeepSpeed config values a PPO run implies (batch, accumulation and clipping)."""
    accum = local_grad_accum_steps(config, world)
    return {
        "train_micro_batch_size_per_gpu": config.minibatch_size,
        "gradient_accumulation_steps": accum,
        "train_batch_size": config.minibatch_size * accum * world,
        "gradient_clipping": config.max_grad_norm,
    }


def fill_deepspeed_config(ds_config: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Fill a DeepSpeed config's ``"auto"`` (or missing) batch and accumulation values from
    the run config; a number that disagrees with the run config is an error, not a silent
    override, so DeepSpeed and the loop always agree on what one optimizer step is.

    Raises
    ------
    ValueError
        If the DeepSpeed config sets one of `settings` to another value.
    """
    filled = dict(ds_config)
    for key, value in settings.items():
        given = filled.get(key, "auto")
        if given == "auto":
            filled[key] = value
        elif float(given) != float(value):
            raise ValueError(
                f"DeepSpeed config sets {key}={given} but the PPO config implies {value}; set it "
                '"auto" so it follows minibatch_size, grad_accum_steps and max_grad_norm.'
            )
    return filled


def _policy_adapter(model: Any) -> dict[str, Any]:
    """`save_pretrained` options that save the trained adapter only, not the frozen reference."""
    names = [n for n in getattr(model, "peft_config", {}) if n != REFERENCE_ADAPTER]
    return {"selected_adapters": names} if names else {}


REFERENCE_ADAPTER = "reference"
"""Name of the frozen copy of the Init adapter that scores the KL reference under LoRA."""


@contextmanager
def reference_policy(model: Any) -> Iterator[None]:
    """Run `model` as the KL reference: the frozen Init adapter when one was loaded (base +
    Init), else the base model with adapters disabled (a fresh adapter starts from the base)."""
    if REFERENCE_ADAPTER in getattr(model, "peft_config", {}):
        active = model.active_adapter
        model.set_adapter(REFERENCE_ADAPTER)
        try:
            yield
        finally:
            model.set_adapter(active)
    else:
        with model.disable_adapter():
            yield


# ---------------------------------------------------------------------------- the run
def train_ppo(config: PPOConfig) -> PPOResult:
    """Train with multi-turn PPO as configured; return where the results are.

    See the module docstring for the phases; every metric goes to ``metrics.csv``.
    """
    from accelerate import Accelerator
    from accelerate.utils import gather_object
    from transformers import LogitsProcessorList, StoppingCriteriaList

    from openvirl.envs.points.dataset import episode_seed
    from openvirl.policies.hf import (
        PLAIN_STOP,
        HFPolicy,
        _request_images,
        row_sampler,
        truncate_at_stop,
    )
    from openvirl.training.checkpoint import (
        latest_checkpoint,
        load_checkpoint,
        mark_complete,
        save_checkpoint,
        write_json_atomic,
    )
    from openvirl.training.compute import FlopCounter, count_parameters
    from openvirl.training.logging import main_process_logger
    from openvirl.training.models import apply_lora, load_model

    out = Path(config.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator()
    rank, world = accelerator.process_index, accelerator.num_processes
    accum = local_grad_accum_steps(config, world)
    accelerator.gradient_accumulation_steps = accum
    is_main = accelerator.is_main_process
    plugin = accelerator.state.deepspeed_plugin
    if plugin is not None:  # batch and accumulation come from this config, never disagree
        plugin.deepspeed_config.update(
            fill_deepspeed_config(plugin.deepspeed_config, deepspeed_settings(config, world))
        )
    # Under DeepSpeed ZeRO the prepared optimizer holds this rank's partition of Adam's state
    # in DeepSpeed's own format, which torch's AdamW cannot load on resume; checkpoints then
    # leave it out and a resumed run restarts Adam's moments (weights, value head, schedule,
    # RNG and FLOPs still resume). Plain and DDP runs save and restore it in full.
    saves_optimizer = plugin is None

    # TRY NOT TO MODIFY: seeding (answers are sampled with per-episode generators)
    random.seed(config.seed + rank)
    np.random.seed(config.seed + rank)
    torch.manual_seed(config.seed)

    # PLUMBING: model, value head, reference, optimizer
    model, processor, chat_default = load_model(config.model, dtype=config.dtype)
    if config.lora:
        model = apply_lora(
            model,
            r=config.lora_r,
            alpha=config.lora_alpha,
            dropout=0.0,
            target_modules=config.lora_target_modules,
            init_adapter=config.init_adapter,
        )
    model.to(accelerator.device)
    device = accelerator.device
    params = count_parameters(model)  # before the reference adapter: N is the policy's
    chat_template = config.chat_template if config.chat_template is not None else chat_default
    policy = HFPolicy(
        model,
        processor,
        name=config.exp_name,
        chat_template=chat_template,
        precision=config.precision,
    )
    tokenizer = policy.tokenizer
    text_config = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    value_head = ValueHead(text_config.hidden_size, config.value_head_sizes).to(device)
    reference = None
    if config.kl_coef > 0 and not config.lora:
        import copy

        reference = copy.deepcopy(model).eval().requires_grad_(False)
    elif config.kl_coef > 0 and config.init_adapter is not None:
        # The KL reference is the Init policy (base + Init adapter), not the bare base model.
        model.load_adapter(config.init_adapter, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
    agent = Agent(model, value_head, value_shares_trunk=config.value_shares_trunk)
    policy_params = [p for p in model.parameters() if p.requires_grad]
    value_lr = config.value_learning_rate or config.learning_rate
    optimizer = torch.optim.Adam(
        [
            {"params": policy_params, "lr": config.learning_rate},
            {"params": list(value_head.parameters()), "lr": value_lr},
        ],
        eps=config.adam_eps,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda u: _cosine_factor(u, config))
    flops = FlopCounter(
        n_params=params.total, n_trainable=params.trainable, offset_flops=config.flops_offset
    )

    # PLUMBING: resume (every process loads the same checkpoint; only the main one logs)
    start_update = 0
    checkpoints = out / "checkpoints"
    resume_from = latest_checkpoint(checkpoints) if config.resume else None
    logger = main_process_logger(out, config, main=is_main)
    if resume_from is not None:
        restores_optimizer = saves_optimizer and (resume_from / "optimizer.pt").is_file()
        if not restores_optimizer and is_main:
            warnings.warn(
                f"resuming from {resume_from} without optimizer state (none saved under "
                "DeepSpeed ZeRO, or not restorable there): Adam's moments start afresh.",
                stacklevel=2,
            )
        state = load_checkpoint(
            resume_from,
            model=model,
            optimizer=optimizer if restores_optimizer else None,
            scheduler=scheduler,
            modules={"value_head": value_head},
        )
        start_update = int(state["update"])
        flops = FlopCounter.from_dict(state["flops"])
        if logger is not None:
            logger.truncate(start_update)
    # PLUMBING: accelerate (DDP or DeepSpeed ZeRO-2 when launched on several GPUs)
    agent, optimizer = accelerator.prepare(agent, optimizer)
    agent.eval()  # no dropout anywhere: ratios are exactly 1 before the first step
    unwrapped = accelerator.unwrap_model(agent)
    policy.model = unwrapped.model

    envs = [make_env(config.env_id, dict(config.env_kwargs))() for _ in range(config.num_envs)]
    stop = None if policy.uses_chat_template else list(PLAIN_STOP)
    end_ids = policy._end_token_ids()
    pad_id = tokenizer.pad_token_id
    history: list[dict[str, float]] = []

    for update in range(start_update + 1, config.num_updates + 1):
        t_update = time.perf_counter()
        # ALGO LOGIC: anneal the learning rate (LambdaLR holds the factor of `update - 1`)
        lr_now = optimizer.param_groups[0]["lr"]
        local_inference_tokens = local_train_tokens = 0

        # ALGO LOGIC: rollout of complete episodes, num_envs at a time; this process plays
        # every `world`-th episode of the update's global range
        first_episode = (update - 1) * config.episodes_per_update
        queue = list(range(first_episode + rank, first_episode + config.episodes_per_update, world))
        queue.reverse()
        per_episode: dict[int, list[Transition]] = {}
        slots: list[dict[str, Any]] = []
        for env in envs:
            if queue:
                episode = queue.pop()
                _, info = env.reset(seed=episode_seed(config.seed, "train", episode))
                slots.append({"env": env, "info": info, "episode": episode})
        answer_key = config.answer_key
        while slots:
            requests = [
                {"messages": s["env"].unwrapped.messages(), "info": s["info"]} for s in slots
            ]
            batch = policy.encode(requests)
            seeds = [
                sampling_seed(config.seed, s["episode"], len(per_episode.get(s["episode"], [])))
                for s in slots
            ]

            def generate_kwargs(row_seeds: Sequence[int]) -> dict[str, Any]:
                """Sampling at `temperature` (per-answer generators, so the draw does not
                depend on the batch or the process); no top-p or top-k (spec §10 item 16)."""
                sampler = row_sampler(row_seeds, device, config.temperature)
                kwargs: dict[str, Any] = {
                    "max_new_tokens": config.max_new_tokens,
                    "do_sample": False,
                    "logits_processor": LogitsProcessorList([sampler]),
                    "pad_token_id": pad_id,
                    "num_beams": 1,
                }
                if stop:
                    # The policy's cached criterion: `stop_strings=` would rebuild it each call.
                    kwargs["stopping_criteria"] = StoppingCriteriaList(
                        [policy.stop_criterion(stop)]
                    )
                return kwargs

            with torch.inference_mode():
                generated = generate_by_image_count(
                    unwrapped.model, batch, seeds, generate_kwargs, pad_id
                )
            P = batch["input_ids"].shape[1]
            local_inference_tokens += int(batch["attention_mask"].sum())
            row_extras = split_extras(
                batch,
                [len(_request_images(r)) for r in requests],
                list(batch["attention_mask"]),
            )
            still = []
            for row, slot in enumerate(slots):
                ids = generated[row, P:].tolist()
                length = len(ids)
                for i, token in enumerate(ids):
                    if token in end_ids:
                        length = i + 1
                        break
                    if token == pad_id:
                        length = i
                        break
                completion = ids[: max(length, 1)]
                local_inference_tokens += len(completion)
                text = truncate_at_stop(
                    tokenizer.decode(completion, skip_special_tokens=True), stop
                )
                env = slot["env"]
                _, reward, terminated, truncated, info = env.step(text)
                if answer_key == "auto":
                    task = info.get("task")
                    key = {"points": "formula", "navigation": "action"}.get(str(task))
                else:
                    key = answer_key
                start = locate_answer_start(completion, tokenizer, key) if key else None
                prompt_mask = batch["attention_mask"][row].bool()
                extras = row_extras[row]
                done = bool(terminated or truncated)
                success = bool(info.get("success", info.get("episode_outcome") == "correct"))
                per_episode.setdefault(slot["episode"], []).append(
                    Transition(
                        prompt_ids=batch["input_ids"][row][prompt_mask].tolist(),
                        completion_ids=completion,
                        weights=token_weights(len(completion), start, config.thought_coef),
                        extras=extras,
                        reward=float(reward) * config.reward_scale,
                        done=done,
                        success=done and success,
                        outcome=str(info.get("outcome", "")),
                        episode=slot["episode"],
                    )
                )
                if done:
                    if queue:
                        episode = queue.pop()
                        _, info = env.reset(seed=episode_seed(config.seed, "train", episode))
                        still.append({"env": env, "info": info, "episode": episode})
                else:
                    still.append({**slot, "info": info})
            slots = still
        # Every process gets every episode: the buffer, GAE and shuffles are global.
        for episode, steps in gather_object(list(per_episode.items())):
            per_episode[episode] = steps
        buffer = [t for e in sorted(per_episode) for t in per_episode[e]]
        shortest = min(buffer, key=lambda t: len(t.prompt_ids) + len(t.completion_ids))
        rollout_s = time.perf_counter() - t_update

        # ALGO LOGIC: old log-probs, values and reference log-probs, without gradients, in the
        # first epoch's minibatches (same rows, same padding: the first ratio is exactly 1)
        first_order = epoch_order(len(buffer), config.seed, update, 0)
        first_plan = plan_epoch(first_order, config, world, rank)
        scored_rows: list[tuple[int, float, float, list[float] | None]] = []
        with torch.no_grad():
            for _, step_minibatches in first_plan:
                for inds in step_minibatches:
                    if inds is None:
                        continue
                    chunk = [buffer[i] for i in inds]
                    mb = collate(chunk, pad_id, device)
                    scored = unwrapped(mb, config.temperature)
                    logprob = (scored["token_logprobs"] * mb["weights"]).sum(-1)
                    tokens = int(mb["attention_mask"].sum())
                    local_inference_tokens += tokens
                    ref_tok = None
                    if config.kl_coef > 0:
                        if reference is not None:
                            ref_tok = score(reference, None, mb, config.temperature)
                        else:
                            with reference_policy(unwrapped.model):
                                ref_tok = unwrapped(mb, config.temperature, with_value=False)
                        ref_tok = ref_tok["token_logprobs"]
                        local_inference_tokens += tokens
                    for j, i in enumerate(inds):
                        ref = None
                        if ref_tok is not None:
                            ref = ref_tok[j, : len(buffer[i].completion_ids)].tolist()
                        scored_rows.append((i, float(logprob[j]), float(scored["values"][j]), ref))
        for i, logprob_i, value_i, ref in gather_object(scored_rows):
            buffer[i].logprob, buffer[i].value = logprob_i, value_i
            buffer[i].ref_token_logprobs = ref

        # ALGO LOGIC: advantages (GAE inside each episode, no bootstrap)
        advantages, returns = compute_gae(
            [t.reward for t in buffer],
            [t.value for t in buffer],
            [t.done for t in buffer],
            config.gamma,
            config.gae_lambda,
        )
        if config.norm_adv and len(buffer) > 1:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-5)
        for t, adv, ret in zip(buffer, advantages, returns, strict=True):
            t.advantage, t.ret = float(adv), float(ret)

        # ALGO LOGIC: optimize policy and value, epochs × shuffled minibatches; one optimizer
        # step per `grad_accum_steps` minibatches in all (`accelerator.accumulate` syncs and
        # steps after this process's `accum` of them, padding included)
        t_opt = time.perf_counter()
        stats: dict[str, list[float]] = {
            k: [] for k in ("pg", "v", "ent", "kl", "approx_kl", "old_kl", "clipfrac")
        }
        grad_norms: list[float] = []
        stop_early = False
        for epoch in range(config.update_epochs):
            plan = first_plan
            if epoch > 0:
                order = epoch_order(len(buffer), config.seed, update, epoch)
                plan = plan_epoch(order, config, world, rank)
            config.minibatches_per_epoch = len(plan) * config.grad_accum_steps
            epoch_kl = [0.0, 0.0]  # sum and count of this process's approx_kl
            for step_size, step_minibatches in plan:
                for inds in step_minibatches:
                    # A padding slot is a zero-weight copy of the shortest transition.
                    chunk = [shortest] if inds is None else [buffer[i] for i in inds]
                    real = float(inds is not None)
                    sample_weight = torch.full((len(chunk),), real, device=device)
                    with accelerator.accumulate(agent):
                        mb = collate(chunk, pad_id, device)
                        new = agent(mb, config.temperature, with_entropy=True)
                        new_logprob = (new["token_logprobs"] * mb["weights"]).sum(-1)
                        old_logprob = torch.tensor([t.logprob for t in chunk], device=device)
                        mb_adv = torch.tensor([t.advantage for t in chunk], device=device)
                        mb_ret = torch.tensor([t.ret for t in chunk], device=device)
                        old_values = torch.tensor([t.value for t in chunk], device=device)
                        logratio = new_logprob - old_logprob
                        ratio = logratio.exp()

                        # Policy loss (per transition)
                        pg_loss1 = -mb_adv * ratio
                        pg_loss2 = -mb_adv * torch.clamp(
                            ratio, 1 - config.clip_coef, 1 + config.clip_coef
                        )
                        guard = config.ratio_guard
                        if guard is not None and bool((ratio * sample_weight > guard).any()):
                            pg_loss = pg_loss2
                        else:
                            pg_loss = torch.max(pg_loss1, pg_loss2)

                        # Value loss (per transition)
                        v_loss = value_loss(
                            new["values"], old_values, mb_ret, config.clip_coef, config.clip_vloss
                        )

                        # Entropy bonus and KL penalty (k3 per token, mean over tokens)
                        entropy = new["entropy"]
                        kl_loss = torch.zeros_like(pg_loss)
                        if config.kl_coef > 0:
                            ref = torch.zeros_like(new["token_logprobs"])
                            for j, t in enumerate(chunk):
                                ref[j, : len(t.completion_ids)] = torch.tensor(t.ref_token_logprobs)
                            delta = (ref - new["token_logprobs"]) * mb["mask"]
                            k3 = (delta.exp() - delta - 1) * mb["mask"]
                            kl_loss = k3.sum(-1) / mb["mask"].sum(-1).clamp(min=1)

                        per_sample = (
                            pg_loss
                            - config.ent_coef * entropy
                            + config.vf_coef * v_loss
                            + config.kl_coef * kl_loss
                        )
                        # Sum over the step's transitions / their number: DDP averages over
                        # `world` processes and accelerate (or DeepSpeed) divides by `accum`.
                        loss = (per_sample * sample_weight).sum() * (world * accum / step_size)
                        accelerator.backward(loss)
                        if accelerator.sync_gradients:
                            norm = accelerator.clip_grad_norm_(
                                agent.parameters(), config.max_grad_norm
                            )
                            if norm is None and hasattr(agent, "get_global_grad_norm"):
                                norm = agent.get_global_grad_norm()  # DeepSpeed clips itself
                            if norm is not None:
                                grad_norms.append(float(norm))
                        optimizer.step()
                        optimizer.zero_grad(set_to_none=True)

                    if inds is None:
                        continue
                    local_train_tokens += int(mb["attention_mask"].sum())
                    with torch.no_grad():
                        approx_kl = (ratio - 1) - logratio
                        epoch_kl[0] += float(approx_kl.sum())
                        epoch_kl[1] += len(chunk)
                        stats["old_kl"].append(float((-logratio).mean()))
                        stats["approx_kl"].append(float(approx_kl.mean()))
                        stats["clipfrac"].append(
                            float(((ratio - 1.0).abs() > config.clip_coef).float().mean())
                        )
                        stats["pg"].append(float(pg_loss.mean()))
                        stats["v"].append(float(v_loss.mean()))
                        stats["ent"].append(float(entropy.mean()))
                        stats["kl"].append(float(kl_loss.mean()))
            if config.target_kl is not None:
                # Decided on the global mean, so every process stops at the same epoch.
                kl_sum, kl_count = accelerator.reduce(
                    torch.tensor(epoch_kl, dtype=torch.float64, device=device), "sum"
                ).tolist()
                if kl_sum / max(kl_count, 1.0) > config.target_kl:
                    stop_early = True
                    break
        # Counts of every process, summed: the same whatever the number of processes.
        counts = accelerator.reduce(
            torch.tensor([local_train_tokens, local_inference_tokens], device=device), "sum"
        ).tolist()
        train_tokens = int(counts[0])
        flops.add_train(train_tokens)
        flops.add_inference(int(counts[1]))
        stats = {k: [v for part in gather_object([stats[k]]) for v in part] for k in stats}
        scheduler.step()
        optimize_s = time.perf_counter() - t_opt

        # TRY NOT TO MODIFY: record rewards and losses for plotting purposes
        values_np = np.array([t.value for t in buffer])
        returns_np = np.array([t.ret for t in buffer])
        var_y = np.var(returns_np)
        explained_var = np.nan if var_y == 0 else 1 - np.var(returns_np - values_np) / var_y
        episodes = [per_episode[e] for e in sorted(per_episode)]
        update_s = time.perf_counter() - t_update
        row = {
            "charts/learning_rate": lr_now,
            "charts/episodic_return": float(np.mean([sum(t.reward for t in e) for e in episodes])),
            "charts/success_rate": float(np.mean([e[-1].success for e in episodes])),
            "charts/episode_length": float(np.mean([len(e) for e in episodes])),
            "charts/first_attempt_success": float(
                np.mean([e[0].outcome == "correct" for e in episodes])
            ),
            "charts/answer_tokens": float(np.mean([len(t.completion_ids) for t in buffer])),
            "charts/rollout_s": rollout_s,
            "charts/optimize_s": optimize_s,
            "charts/train_tokens_per_s": train_tokens / max(optimize_s, 1e-9),
            "charts/SPS": len(buffer) / max(update_s, 1e-9),
            **flops.metrics(),
            "losses/policy_loss": float(np.mean(stats["pg"])),
            "losses/value_loss": float(np.mean(stats["v"])),
            "losses/entropy": float(np.mean(stats["ent"])),
            "losses/kl_ref": float(np.mean(stats["kl"])),
            "losses/old_approx_kl": float(np.mean(stats["old_kl"])),
            "losses/approx_kl": float(np.mean(stats["approx_kl"])),
            "losses/clipfrac": float(np.mean(stats["clipfrac"])),
            "losses/explained_variance": float(explained_var),
            "losses/grad_norm": float(np.mean(grad_norms)) if grad_norms else float("nan"),
            "losses/early_stop": float(stop_early),
        }
        if logger is not None:
            logger.log(update, row)
        history.append({"update": update, **row})

        # PLUMBING: checkpoint (model or adapter, value head, optimizer, scheduler, RNG, FLOPs)
        accelerator.wait_for_everyone()
        if is_main and (update % config.save_every == 0 or update == config.num_updates):
            save_checkpoint(
                checkpoints,
                update,
                model=model,
                processor=processor,
                optimizer=optimizer if saves_optimizer else None,
                scheduler=scheduler,
                modules={"value_head": value_head},
                adapters=_policy_adapter(model).get("selected_adapters"),
                state={
                    "update": update,
                    "episodes_done": update * config.episodes_per_update,
                    "flops": flops.to_dict(),
                    "optimizer_saved": saves_optimizer,
                },
                keep_last=config.keep_last,
            )

    for env in envs:
        env.close()
    final = out / "final"
    if not is_main:
        return PPOResult(
            out, final, config.num_updates, flops.flops, params.total, history, unwrapped
        )
    model.save_pretrained(final, **_policy_adapter(model))
    if not config.lora:
        processor.save_pretrained(final)
    torch.save(value_head.state_dict(), final / "value_head.pt")
    mark_complete(final, config.num_updates, {"flops": flops.to_dict()})
    write_json_atomic(
        out / "summary.json",
        {
            "updates": config.num_updates,
            "flops": flops.to_dict(),
            "params": {"total": params.total, "trainable": params.trainable},
            "final_dir": str(final),
            "chat_template": policy.uses_chat_template,
        },
    )
    if logger is not None:
        logger.close()
    return PPOResult(
        output_dir=out,
        final_dir=final,
        updates=config.num_updates,
        flops=flops.flops,
        n_params=params.total,
        history=history,
        agent=unwrapped,
    )


if __name__ == "__main__":
    import sys

    from openvirl.training.config import load_config

    arguments = sys.argv[1:]
    path = arguments.pop(0) if arguments and "=" not in arguments[0] else None
    train_ppo(load_config(PPOConfig, path, arguments))
