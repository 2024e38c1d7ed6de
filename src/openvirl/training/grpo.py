"""GRPO through TRL's `GRPOTrainer`, with rewards that come from openvirl's environments.

What openvirl adds around TRL:

- the dataset: one row per training episode (``reset_seed`` replays it), whose ``prompt`` is
  the environment's first turn rendered exactly as the ``hf`` policy renders it (plain text
  for base models, chat messages for models with a template);
- rewards as plain TRL batch functions: `points_reward` (GeneralPoints, the verifier's reward
  for each completion, no env needed) and `make_env_reward` (any env: replay the episode,
  step it with the completion, return the env's reward);
- multi-turn sequential revision (``multi_turn=True``) through TRL's ``rollout_func`` hook:
  each completion is a whole episode, the model's attempts interleaved with the verifier's
  feedback turns, and the feedback tokens are masked out of the loss with ``env_mask``.
  TRL's other multi-turn hook, ``environment_factory``, exposes an env as *tools* and needs a
  tool-calling chat template; `openvirl.training.adapters.TRLPointsEnvironment` plugs our envs
  into it for models that have one;
- compute and logs as the other trainers: FLOPs (6N per trained token, 2N per generated or
  scored one) in ``metrics.csv`` and every checkpoint's marker.

Example
-------
>>> from openvirl.training.grpo import GRPORunConfig, train_grpo
>>> train_grpo(GRPORunConfig(model="gemma-3-270m", init_adapter="runs/sft/final",
...                          max_steps=10, output_dir="runs/grpo"))      # doctest: +SKIP

On GPUs, ``use_vllm=True`` generates with vLLM (TRL's colocate or server mode).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------- rewards


def points_reward(
    completions: Sequence[Any],
    cards: Sequence[Sequence[str]] | None = None,
    target: Sequence[int] | None = None,
    numbers: Sequence[Sequence[int]] | None = None,
    rule: Sequence[str] | None = None,
    **kwargs: Any,
) -> list[float]:
    """GeneralPoints reward of each completion: the verifier's reward for its formula.

    Parameters are TRL's: `completions` (strings, or chat messages whose last content is the
    text) and dataset columns, one value per completion. `numbers` (the card values) is
    used when present; otherwise `cards` and `rule` give them. An answer without a formula
    gets the env's ``no_answer`` reward. Nothing is evaluated with `eval`.

    Example
    -------
    >>> points_reward(['{"formula": "8/(3-8/3)=24"}'], cards=[["3", "3", "8", "8"]], target=[24])
    [5.0]
    """
    from openvirl.envs.points import REWARDS, Outcome, check, parse_answer
    from openvirl.envs.points.cards import card_value, normalize_card_label

    rewards = []
    for i, completion in enumerate(completions):
        text = completion_text(completion)
        goal = int(target[i]) if target is not None else 24
        if numbers is not None:
            values = [int(n) for n in numbers[i]]
        else:
            if cards is None:
                raise ValueError("`points_reward` needs a `numbers` or a `cards` column.")
            face_rule = rule[i] if rule is not None else "id"
            values = [card_value(_rank(normalize_card_label(c)), face_rule) for c in cards[i]]
        parsed = parse_answer(text)
        if parsed.formula is None:
            rewards.append(float(REWARDS[Outcome.NO_ANSWER]))
            continue
        rewards.append(float(check(parsed.formula, values, goal).reward))
    return rewards


def _rank(label: str | None) -> int:
    from openvirl.envs.points.cards import RANK_LABELS

    for rank, text in RANK_LABELS.items():
        if text == label:
            return int(rank)
    raise ValueError(f"unknown card label {label!r}")


def completion_text(completion: Any) -> str:
    """The text of a TRL completion (a string, or a list of chat messages)."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        content = completion[-1].get("content", "")
        if isinstance(content, list):
            return "".join(p.get("text", "") for p in content if p.get("type") == "text")
        return str(content)
    return str(completion)


def make_env_reward(env_id: str, env_kwargs: dict[str, Any]) -> Callable[..., list[float]]:
    """A TRL reward function backed by any openvirl env: replay, step once, return its reward.

    Each completion's row must carry ``reset_seed`` (the dataset built by
    `prompt_dataset` has it); the env is reset with that seed and stepped with the completion,
    so the reward is exactly the environment's, navigation included.
    """
    from openvirl.training.data import make_env_factory

    make = make_env_factory(env_id, env_kwargs)
    holder: dict[str, Any] = {}

    def env_reward(
        completions: Sequence[Any], reset_seed: Sequence[int], **kwargs: Any
    ) -> list[float]:
        env = holder.setdefault("env", make())
        rewards = []
        for completion, seed in zip(completions, reset_seed, strict=True):
            env.reset(seed=int(seed))
            _, reward, *_ = env.step(completion_text(completion))
            rewards.append(float(reward))
        return rewards

    env_reward.__name__ = "env_reward"
    return env_reward


def episode_reward(
    completions: Sequence[Any], episode_return: Sequence[float], **kw: Any
) -> list[float]:
    """Reward of a multi-turn rollout: the episode's return, computed while it was played."""
    return [float(r) for r in episode_return]


# ---------------------------------------------------------------------------- config


@dataclass
class GRPORunConfig:
    """Every option of a GRPO run (`openvirl train grpo`), grouped like TRL's `GRPOConfig`.

    Parameters that control the model: `model`, `chat_template`, `dtype`, `lora`, `lora_r`,
    `lora_alpha`, `lora_target_modules`, `init_adapter`.
    Parameters that control the data and rewards: `env_id`, `env_kwargs`, `n_prompts`,
    `data_seed`, `reward`, `multi_turn`.
    Parameters that control generation: `num_generations`, `max_completion_length`,
    `temperature`, `use_vllm`, `vllm_mode`.
    Parameters that control the training: `learning_rate`, `batch_size`,
    `gradient_accumulation_steps`, `max_steps`, `beta`, `epsilon`, `num_iterations`,
    `loss_type`, `max_grad_norm`, `seed`, `deepspeed`.
    Parameters that control compute, logging and checkpoints: `flops_offset`, `output_dir`,
    `save_steps`, `keep_last`, `tensorboard`, `wandb`, `resume`.
    """

    # Parameters that control the model
    model: str = field(
        default="gemma-3-270m",
        metadata={"help": "Model: a local folder, a Hub id, or `gemma-3-270m` (embedded)."},
    )
    chat_template: bool | None = field(
        default=None,
        metadata={
            "help": "Chat template (True), plain prompts (False), or as the hf policy (None)."
        },
    )
    dtype: str = field(default="auto", metadata={"help": "auto, float32 or bfloat16."})
    lora: bool = field(default=True, metadata={"help": "Train a LoRA adapter; False: all weights."})
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha."})
    lora_target_modules: str | list[str] = field(
        default="all-linear", metadata={"help": "Modules LoRA adapts."}
    )
    init_adapter: str | None = field(
        default=None, metadata={"help": "Start from this LoRA adapter (e.g. the SFT Init)."}
    )
    # Parameters that control the data and rewards
    env_id: str = field(
        default="openvirl/GeneralPoints-v0", metadata={"help": "Environment of the prompts."}
    )
    env_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"rule": "id", "split": "train"},
        metadata={"help": "Keyword arguments of `gym.make` (keep split=train)."},
    )
    n_prompts: int = field(
        default=512, metadata={"help": "Training prompts (episodes) in the dataset."}
    )
    data_seed: int = field(default=0, metadata={"help": "Seed of the episode stream."})
    reward: str = field(
        default="auto",
        metadata={
            "help": "'points' (GeneralPoints verifier on each completion), 'env' (replay the "
            "env and step it once), or 'auto' (points for GeneralPoints, else env). Ignored "
            "with `multi_turn` (the episode's return is the reward)."
        },
    )
    multi_turn: bool = field(
        default=False,
        metadata={
            "help": "Sequential revision: a completion is a whole episode of attempts and "
            "feedback turns (TRL `rollout_func`, feedback masked with `env_mask`)."
        },
    )
    # Parameters that control generation
    num_generations: int = field(
        default=4, metadata={"help": "Completions per prompt (the group)."}
    )
    max_completion_length: int = field(
        default=96, metadata={"help": "Longest completion in tokens (per attempt with multi_turn)."}
    )
    temperature: float = field(default=1.0, metadata={"help": "Sampling temperature."})
    generation_kwargs: dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "Extra generation options for TRL (e.g. {min_new_tokens: 8})."},
    )
    use_vllm: bool = field(default=False, metadata={"help": "Generate with vLLM (GPU, TRL)."})
    vllm_mode: str = field(default="colocate", metadata={"help": "vLLM mode: colocate or server."})
    # Parameters that control the training
    learning_rate: float = field(default=1e-5, metadata={"help": "Learning rate."})
    batch_size: int = field(
        default=8,
        metadata={
            "help": "Completions per optimizer step in all (the global batch), a multiple of "
            "`num_generations`; each of N processes takes batch_size / (N * "
            "gradient_accumulation_steps) per micro-batch, so the run is the same on any N."
        },
    )
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Accumulated steps."})
    max_steps: int = field(default=20, metadata={"help": "Optimizer steps."})
    beta: float = field(default=0.0, metadata={"help": "KL coefficient to the reference model."})
    epsilon: float = field(default=0.2, metadata={"help": "Clipping epsilon."})
    num_iterations: int = field(default=1, metadata={"help": "Optimization passes per batch (μ)."})
    loss_type: str = field(
        default="dapo", metadata={"help": "TRL loss: grpo, dapo, dr_grpo, bnpo."}
    )
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    seed: int = field(default=0, metadata={"help": "Seed."})
    deepspeed: str | None = field(default=None, metadata={"help": "DeepSpeed JSON config."})
    # Parameters that control compute, logging and checkpoints
    flops_offset: float = field(default=0.0, metadata={"help": "FLOPs spent before this run."})
    output_dir: str = field(default="runs/grpo", metadata={"help": "Run folder."})
    save_steps: int = field(default=50, metadata={"help": "Checkpoint every N steps."})
    keep_last: int | None = field(default=2, metadata={"help": "Checkpoints to keep."})
    tensorboard: bool = field(default=False, metadata={"help": "Also log to TensorBoard."})
    wandb: bool = field(default=False, metadata={"help": "Also log to wandb (offline)."})
    resume: bool = field(default=False, metadata={"help": "Continue from the latest checkpoint."})

    def __post_init__(self) -> None:
        if self.batch_size % self.num_generations:
            raise ValueError(
                f"`batch_size` ({self.batch_size}) must be a multiple of `num_generations` "
                f"({self.num_generations}) so every group is complete; e.g. batch_size="
                f"{self.num_generations * max(1, self.batch_size // self.num_generations)}."
            )
        if self.num_generations < 2:
            raise ValueError("`num_generations` must be >= 2 (GRPO compares a group of answers).")
        if self.reward not in ("auto", "points", "env"):
            raise ValueError(f"`reward` must be auto, points or env; got {self.reward!r}.")
        if self.temperature <= 0:
            raise ValueError("`temperature` must be > 0: GRPO samples its groups.")
        if self.init_adapter is not None and not self.lora:
            raise ValueError("`init_adapter` needs `lora=True`.")


@dataclass
class GRPOResult:
    """What `train_grpo` returns."""

    output_dir: Path
    final_dir: Path
    steps: int
    flops: float
    n_params: int
    history: list[dict[str, float]]


# ---------------------------------------------------------------------------- data


def prompt_dataset(env_id: str, env_kwargs: dict[str, Any], n: int, seed: int, fmt: Any) -> Any:
    """One row per training episode: its rendered first prompt, ``reset_seed`` and task fields.

    ``prompt`` is a string rendered by `fmt` (plain prompts) or a one-message conversation
    (chat template: TRL applies the same template the ``hf`` policy does).
    """
    from datasets import Dataset

    from openvirl.envs.points.dataset import episode_seed
    from openvirl.policies.base import message_text
    from openvirl.training.data import make_env_factory

    env = make_env_factory(env_id, env_kwargs)()
    rows = []
    for index in range(n):
        reset_seed = episode_seed(seed, "train", index)
        _, info = env.reset(seed=reset_seed)
        messages = env.unwrapped.messages()
        if fmt.uses_chat_template:
            prompt: Any = [{"role": m["role"], "content": message_text(m)} for m in messages]
        else:
            prompt = fmt.render(messages)
        row = {"prompt": prompt, "reset_seed": reset_seed}
        for key in ("cards", "numbers", "target", "rule"):
            if key in info:
                row[key] = info[key]
        rows.append(row)
    env.close()
    return Dataset.from_list(rows)


# ---------------------------------------------------------------------------- multi-turn


def make_revision_rollout(
    config: GRPORunConfig, fmt: Any, seeds_by_prompt: dict[str, int]
) -> Callable:
    """A TRL ``rollout_func`` that plays whole episodes with sequential revision.

    For each prompt the env is replayed from its ``reset_seed``; the model answers, the
    verifier's feedback turn is appended (tokens rendered by the ``hf`` policy's renderer),
    and the model answers again until the episode ends. The completion is every token after
    the first prompt; ``env_mask`` is 1 on the model's tokens and 0 on feedback tokens, so
    only the model's own tokens carry loss. ``episode_return`` goes to `episode_reward`.
    """
    import torch

    from openvirl.training.data import make_env_factory

    make = make_env_factory(config.env_id, dict(config.env_kwargs))
    tokenizer = fmt.tokenizer

    def key_of(prompt: Any) -> str:
        return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)

    def rollout(prompts: list[Any], trainer: Any) -> dict[str, Any]:
        model = trainer.accelerator.unwrap_model(trainer.model)
        device = next(model.parameters()).device
        end_ids = set([*_as_list(model.generation_config.eos_token_id), tokenizer.eos_token_id])
        episodes = []
        for prompt in prompts:
            env = make()
            env.reset(seed=seeds_by_prompt[key_of(prompt)])
            text = fmt.render(env.unwrapped.messages())
            ids = tokenizer(text, add_special_tokens=fmt.add_special_tokens)["input_ids"]
            episodes.append(
                {
                    "env": env,
                    "text": text,
                    "prompt_ids": list(ids),
                    "ids": list(ids),
                    "mask": [],
                    "logprobs": [],
                    "return": 0.0,
                    "done": False,
                }
            )
        was_training = model.training
        model.eval()
        try:
            while live := [e for e in episodes if not e["done"]]:
                width = max(len(e["ids"]) for e in live)
                pad = tokenizer.pad_token_id
                input_ids = torch.tensor([[pad] * (width - len(e["ids"])) + e["ids"] for e in live])
                attention = torch.tensor(
                    [[0] * (width - len(e["ids"])) + [1] * len(e["ids"]) for e in live]
                )
                with torch.no_grad():
                    out = model.generate(
                        input_ids=input_ids.to(device),
                        attention_mask=attention.to(device),
                        do_sample=True,
                        temperature=config.temperature,
                        top_p=1.0,
                        top_k=0,
                        max_new_tokens=config.max_completion_length,
                        pad_token_id=pad,
                        output_logits=True,
                        return_dict_in_generate=True,
                    )
                logits = torch.stack(out.logits, 1).float() / config.temperature
                logps = torch.log_softmax(logits, -1)
                for row, episode in enumerate(live):
                    new = out.sequences[row, width:].tolist()
                    length = len(new)
                    for i, token in enumerate(new):
                        if token in end_ids:
                            length = i + 1
                            break
                    new = new[:length]
                    token_logps = logps[row, torch.arange(length), torch.tensor(new)].tolist()
                    answer = tokenizer.decode(new, skip_special_tokens=True)
                    env = episode["env"]
                    _, reward, terminated, truncated, _ = env.step(answer)
                    episode["return"] += float(reward)
                    episode["ids"] += new
                    episode["mask"] += [1] * len(new)
                    episode["logprobs"] += token_logps
                    if terminated or truncated:
                        episode["done"] = True
                        env.close()
                        continue
                    # The feedback turn, rendered as the hf policy would render the whole
                    # conversation; its tokens are context, masked out of the loss.
                    text = fmt.render(env.unwrapped.messages())
                    rendered_so_far = episode["text"] + answer
                    suffix = (
                        text[len(rendered_so_far) :] if text.startswith(rendered_so_far) else text
                    )
                    feedback = tokenizer(suffix, add_special_tokens=False)["input_ids"]
                    episode["text"] = text
                    episode["ids"] += feedback
                    episode["mask"] += [0] * len(feedback)
                    episode["logprobs"] += [0.0] * len(feedback)
        finally:
            model.train(was_training)
        return {
            "prompt_ids": [e["prompt_ids"] for e in episodes],
            "completion_ids": [e["ids"][len(e["prompt_ids"]) :] for e in episodes],
            "logprobs": [e["logprobs"] for e in episodes],
            "env_mask": [e["mask"] for e in episodes],
            "episode_return": [e["return"] for e in episodes],
        }

    return rollout


def _as_list(value: Any) -> list[int]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [int(value)]


# ---------------------------------------------------------------------------- the run


def _check_init_reference(trainer: Any) -> None:
    """With LoRA and ``beta > 0`` the KL reference must be the Init policy (base + the adapter
    the run starts from), not the bare base model. TRL keeps a frozen copy of the starting
    adapter, named ``ref``, when it is given a peft model; fail loudly if it did not."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    if "ref" not in getattr(model, "peft_config", {}):
        raise RuntimeError(
            "TRL did not keep a frozen `ref` copy of the starting adapter, so its KL reference "
            "would be the base model instead of the Init; upgrade peft (>= 0.20) and trl."
        )


def train_grpo(config: GRPORunConfig, callbacks: Sequence[Any] = ()) -> GRPOResult:
    """Build the prompt dataset and rewards, train with TRL's GRPOTrainer, save the model.

    `callbacks` are extra `transformers.TrainerCallback` objects (they run on every process).
    With LoRA and ``beta > 0`` the KL reference is the starting adapter (the Init), kept frozen
    by TRL as the ``ref`` adapter.
    """
    import numpy as np
    import torch
    from transformers import PrinterCallback
    from trl import GRPOConfig, GRPOTrainer

    from openvirl.training.checkpoint import latest_checkpoint, mark_complete, write_json_atomic
    from openvirl.training.compute import FlopCounter, count_parameters
    from openvirl.training.config import resolve_shipped
    from openvirl.training.data import prompt_format
    from openvirl.training.logging import main_process_logger
    from openvirl.training.models import apply_lora, load_model
    from openvirl.training.sft import _checkpointing_option

    out = Path(config.output_dir)
    ckpt_root = out / "checkpoints"
    resume_from = latest_checkpoint(ckpt_root) if config.resume else None
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)

    model, processor, chat_default = load_model(config.model, dtype=config.dtype)
    chat_template = config.chat_template if config.chat_template is not None else chat_default
    fmt = prompt_format(processor, chat_template=chat_template)
    if config.lora:
        model = apply_lora(
            model,
            r=config.lora_r,
            alpha=config.lora_alpha,
            dropout=0.0,
            target_modules=config.lora_target_modules,
            init_adapter=config.init_adapter,
        )
    params = count_parameters(model)
    dataset = prompt_dataset(
        config.env_id, dict(config.env_kwargs), config.n_prompts, config.data_seed, fmt
    )
    is_points = config.env_id.endswith("GeneralPoints-v0")
    rollout_func = None
    if config.multi_turn:
        seeds = {
            (p if isinstance(p, str) else json.dumps(p, sort_keys=True)): int(s)
            for p, s in zip(dataset["prompt"], dataset["reset_seed"], strict=True)
        }
        rollout_func = make_revision_rollout(config, fmt, seeds)
        reward_funcs: list[Callable] = [episode_reward]
    elif config.reward == "points" or (config.reward == "auto" and is_points):
        reward_funcs = [points_reward]
    else:
        reward_funcs = [make_env_reward(config.env_id, dict(config.env_kwargs))]

    from openvirl.training.config import launch_world_size

    split = launch_world_size() * config.gradient_accumulation_steps
    if config.batch_size % split:
        raise ValueError(
            f"`batch_size` ({config.batch_size}, the global batch) must be a multiple of "
            f"processes x gradient_accumulation_steps ({split})."
        )
    use_cuda = torch.cuda.is_available()
    args = GRPOConfig(
        output_dir=str(ckpt_root),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size // split,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_steps=config.max_steps,
        num_generations=config.num_generations,
        max_completion_length=config.max_completion_length,
        temperature=config.temperature,
        top_p=1.0,
        top_k=0,
        generation_kwargs=dict(config.generation_kwargs) or None,
        beta=config.beta,
        epsilon=config.epsilon,
        num_iterations=config.num_iterations,
        loss_type=config.loss_type,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        use_vllm=config.use_vllm,
        vllm_mode=config.vllm_mode,
        deepspeed=resolve_shipped(config.deepspeed),
        bf16=use_cuda and next(model.parameters()).dtype == torch.bfloat16,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.keep_last,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=not use_cuda,
        **_checkpointing_option(GRPOConfig, False),
    )
    # Only the main process writes the run folder's logs, config and summary.
    is_main = args.process_index == 0
    logger = main_process_logger(
        out,
        config,
        main=is_main,
        resume_step=None if resume_from is None else int(resume_from.name.split("-")[-1]),
    )
    history: list[dict[str, float]] = []

    def flops_of(state: Any) -> FlopCounter:
        # TRL counts prompt + completion tokens of every generated group (non-padding).
        seen = int(getattr(state, "num_input_tokens_seen", 0) or 0)
        flops = FlopCounter(params.total, params.trainable, offset_flops=config.flops_offset)
        flops.add_inference(seen * (2 if config.beta > 0 else 1))  # generation (+ reference)
        flops.add_train(seen * config.num_iterations)
        return flops

    from transformers import TrainerCallback

    class OpenvirlCallback(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or not state.is_world_process_zero or logger is None:
                return
            summary = "train_loss" in logs and "loss" not in logs  # the end-of-training row
            row = {} if summary else {"charts/gflops": flops_of(state).gflops}
            for key, value in logs.items():
                if isinstance(value, (int, float)) and key not in ("epoch", "step"):
                    name = key if "/" in key else f"charts/{key}"
                    name = name.replace("rewards/", "charts/rewards/")
                    row["losses/" + key if key in ("loss", "grad_norm", "kl") else name] = float(
                        value
                    )
            logger.log(state.global_step, row)
            history.append({"step": state.global_step, **row})

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                mark_complete(folder, state.global_step, {"flops": flops_of(state).to_dict()})

    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=args,
        train_dataset=dataset,
        processing_class=fmt.tokenizer,
        callbacks=[OpenvirlCallback()],
        rollout_func=rollout_func,
    )
    trainer.remove_callback(PrinterCallback)
    for callback in callbacks:
        trainer.add_callback(callback)
    if config.beta > 0 and config.lora:
        _check_init_reference(trainer)

    # ALGO LOGIC: group-relative policy optimization (TRL)
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    flops = flops_of(trainer.state)
    final = out / "final"
    trainer.save_model(str(final))
    if not config.lora:
        fmt.tokenizer.save_pretrained(str(final))
    result = GRPOResult(
        output_dir=out,
        final_dir=final,
        steps=trainer.state.global_step,
        flops=flops.flops,
        n_params=params.total,
        history=history,
    )
    if not is_main:
        return result
    mark_complete(final, trainer.state.global_step, {"flops": flops.to_dict()})
    write_json_atomic(
        out / "summary.json",
        {
            "steps": trainer.state.global_step,
            "flops": flops.to_dict(),
            "params": {"total": params.total, "trainable": params.trainable},
            "final_dir": str(final),
            "multi_turn": config.multi_turn,
            "chat_template": fmt.uses_chat_template,
        },
    )
    if logger is not None:
        logger.close()
    return result


__all__ = [
    "GRPOResult",
    "GRPORunConfig",
    "completion_text",
    "episode_reward",
    "make_env_reward",
    "make_revision_rollout",
    "points_reward",
    "prompt_dataset",
    "train_grpo",
]
