"""Supervised fine-tuning on expert data, thin over TRL's `SFTTrainer`.

What openvirl adds around TRL:

- the data: `openvirl.training.data` plays the oracle in any environment and tokenizes each
  (conversation, answer) exactly as the ``hf`` policy renders it at evaluation; only answer
  tokens carry labels (prompt and feedback tokens are ``-100``);
- LoRA (peft) or full fine-tuning, from a base model or from an earlier adapter (the study's
  "more SFT" branch continues from the Init checkpoint);
- compute: training tokens are counted (``include_num_input_tokens_seen="non_padding"``) and
  6N·tokens (+ the Init's FLOPs) is logged and stored in every checkpoint's marker;
- checkpoints: HF Trainer's own (model, optimizer, scheduler, RNG and data position), marked
  complete only after they are fully written, so ``resume=True`` after ``kill -9`` continues
  from the last complete one;
- logs: ``metrics.csv`` always, TensorBoard/wandb (offline) on request.

Example
-------
>>> from openvirl.training.sft import SFTRunConfig, train_sft
>>> result = train_sft(SFTRunConfig(model="gemma-3-270m", max_steps=25,
...                                 output_dir="runs/sft-gp-l"))        # doctest: +SKIP
>>> result.final_dir                                                   # doctest: +SKIP
PosixPath('runs/sft-gp-l/final')

Multi-GPU: ``accelerate launch --config_file <configs>/accelerate/multi_gpu.yaml -m
openvirl.training.cli sft --config sft-gp-l-paper.yaml`` (DeepSpeed via ``deepspeed=``, whose
``"auto"`` batch, accumulation and clipping values HF fills from this config). `batch_size` is
the global batch, so the data order, the steps and the token count (gathered over processes by
HF Trainer) do not depend on the number of processes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# ---------------------------------------------------------------------------- config


@dataclass
class SFTRunConfig:
    """Every option of an SFT run (`openvirl train sft`), grouped like TRL's `SFTConfig`.

    Parameters that control the model: `model`, `chat_template`, `dtype`, `lora`, `lora_r`,
    `lora_alpha`, `lora_dropout`, `lora_target_modules`, `init_adapter`.
    Parameters that control the data: `env_id`, `env_kwargs`, `n_examples`, `data_seed`,
    `multi_turn`, `wrong_attempts`, `train_on_wrong_attempts`, `wrong_kind`,
    `revision_fraction`, `max_length`.
    Parameters that control the training: `learning_rate`, `batch_size`,
    `gradient_accumulation_steps`, `max_steps`, `num_epochs`, `warmup_steps`,
    `lr_scheduler`, `weight_decay`, `adam_beta1`, `adam_beta2`, `adam_epsilon`,
    `max_grad_norm`, `gradient_checkpointing`, `seed`, `deepspeed`.
    Parameters that control compute, logging and checkpoints: `flops_offset`, `output_dir`,
    `save_steps`, `keep_last`, `logging_steps`, `tensorboard`, `wandb`, `resume`.
    """

    # Parameters that control the model
    model: str = field(
        default="gemma-3-270m",
        metadata={
            "help": "Model to train: a local folder, a Hub id, or `gemma-3-270m` (the embedded "
            "base model). For a full-FT continuation, the earlier run's `model/` folder."
        },
    )
    chat_template: bool | None = field(
        default=None,
        metadata={
            "help": "Render prompts with the model's chat template (True), plain role-labelled "
            "text (False), or whichever the hf policy would use (None; must match evaluation)."
        },
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "Weights dtype: auto (fp32 on CPU, bf16 on CUDA), float32, bfloat16."},
    )
    lora: bool = field(
        default=True, metadata={"help": "Train a LoRA adapter (peft); False trains every weight."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout inside LoRA layers."})
    lora_target_modules: str | list[str] = field(
        default="all-linear",
        metadata={"help": "Modules LoRA adapts: 'all-linear' or a list of module names."},
    )
    init_adapter: str | None = field(
        default=None,
        metadata={
            "help": "Continue training this LoRA adapter folder (e.g. the Init checkpoint's "
            "`model/`) instead of a fresh one; needs `lora=True`."
        },
    )
    # Parameters that control the data
    env_id: str = field(
        default="openvirl/GeneralPoints-v0",
        metadata={"help": "Environment the oracle plays to make the expert data."},
    )
    env_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"rule": "id", "split": "train"},
        metadata={"help": "Keyword arguments of `gym.make` (keep split=train: test stays out)."},
    )
    n_examples: int = field(default=2000, metadata={"help": "Expert examples to generate."})
    data_seed: int = field(
        default=0,
        metadata={
            "help": "Seed of the expert episodes; continue a run on fresh hands with another one."
        },
    )
    multi_turn: bool = field(
        default=False,
        metadata={"help": "Train on multi-turn transcripts with wrong attempts (paper App. C.1)."},
    )
    wrong_attempts: int = field(
        default=0, metadata={"help": "Wrong attempts per transcript (with `multi_turn`)."}
    )
    train_on_wrong_attempts: bool = field(
        default=True, metadata={"help": "Label the wrong answers of transcripts too."}
    )
    wrong_kind: str = field(
        default="formula",
        metadata={"help": "GeneralPoints wrong attempts: 'formula' or 'numbers' (see oracle)."},
    )
    revision_fraction: float = field(
        default=1.0,
        metadata={"help": "Share of problems with wrong attempts (the rest: single-turn pairs)."},
    )
    max_length: int | None = field(
        default=1024, metadata={"help": "Truncate examples to this many tokens (None: never)."}
    )
    # Parameters that control the training
    learning_rate: float = field(
        default=2e-4,
        metadata={"help": "Peak learning rate (LoRA on CPU: 2e-4; the paper's full FT: 1e-6)."},
    )
    batch_size: int = field(
        default=8,
        metadata={
            "help": "Examples per optimizer step in all (the global batch): each of N processes "
            "takes batch_size / (N * gradient_accumulation_steps) per micro-batch, so a step, "
            "an epoch and the token count are the same on one process or eight."
        },
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "Micro-batches per optimizer step on each process."}
    )
    max_steps: int = field(
        default=100, metadata={"help": "Optimizer steps; -1 runs `num_epochs` epochs instead."}
    )
    num_epochs: float = field(
        default=1.0, metadata={"help": "Epochs over the expert data when `max_steps` is -1."}
    )
    warmup_steps: int = field(default=5, metadata={"help": "Linear warm-up steps."})
    lr_scheduler: str = field(
        default="constant_with_warmup",
        metadata={"help": "transformers scheduler name: constant_with_warmup, cosine, linear ..."},
    )
    schedule_steps: int | None = field(
        default=None,
        metadata={
            "help": "Length of the learning-rate schedule in optimizer steps (None: the run's "
            "own steps). A run continued in segments (the study's SFT branch, each segment a "
            "larger `max_steps` with `resume`) sets the last segment's steps, so the segments "
            "follow one schedule instead of restarting it."
        },
    )
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.999, metadata={"help": "AdamW beta2 (paper: 0.98)."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon (paper: 1e-7)."})
    max_grad_norm: float = field(default=1.0, metadata={"help": "Gradient clipping norm."})
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations (less memory, ~30% slower)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of initialization and data order."})
    deepspeed: str | None = field(
        default=None,
        metadata={"help": "DeepSpeed JSON config (e.g. configs/deepspeed/zero3.json) for GPUs."},
    )
    # Parameters that control compute, logging and checkpoints
    flops_offset: float = field(
        default=0.0,
        metadata={"help": "FLOPs spent before this run (the Init's), added to the FLOP axis."},
    )
    output_dir: str = field(
        default="runs/sft", metadata={"help": "Run folder: checkpoints, final model, logs."}
    )
    save_steps: int = field(default=50, metadata={"help": "Save a checkpoint every N steps."})
    keep_last: int | None = field(
        default=3, metadata={"help": "Checkpoints to keep (None keeps all)."}
    )
    logging_steps: int = field(default=1, metadata={"help": "Log every N steps."})
    tensorboard: bool = field(default=False, metadata={"help": "Also log to TensorBoard."})
    wandb: bool = field(default=False, metadata={"help": "Also log to wandb (offline mode)."})
    resume: bool = field(
        default=False,
        metadata={"help": "Continue from the latest complete checkpoint in `output_dir`."},
    )

    def __post_init__(self) -> None:
        if self.init_adapter is not None and not self.lora:
            raise ValueError(
                "`init_adapter` continues a LoRA adapter; set `lora=True`, or for full "
                "fine-tuning pass the earlier run's model folder as `model`."
            )
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(f"`max_steps` must be -1 or >= 1, got {self.max_steps}.")
        if self.batch_size < 1 or self.gradient_accumulation_steps < 1:
            raise ValueError(
                f"`batch_size` ({self.batch_size}) and `gradient_accumulation_steps` "
                f"({self.gradient_accumulation_steps}) must be >= 1."
            )
        if self.schedule_steps is not None and self.schedule_steps < 1:
            raise ValueError(f"`schedule_steps` must be >= 1, got {self.schedule_steps}.")
        if self.save_steps < 1:
            raise ValueError(f"`save_steps` must be >= 1, got {self.save_steps}.")
        if self.multi_turn and self.wrong_attempts < 1:
            raise ValueError(
                "`multi_turn=True` needs `wrong_attempts` >= 1 (otherwise transcripts are "
                "single-turn pairs); set e.g. `wrong_attempts=2`."
            )
        from openvirl.policies.oracle import check_wrong_answer_options

        check_wrong_answer_options(self.wrong_kind, self.revision_fraction)


@dataclass
class SFTResult:
    """What `train_sft` returns."""

    output_dir: Path
    final_dir: Path
    """The trained model (adapter or full weights + tokenizer), loadable by `HFPolicy`."""
    steps: int
    train_tokens: int
    flops: float
    n_params: int
    history: list[dict[str, float]]
    """Logged rows (loss, learning rate, GFLOPs) of this session."""


# ---------------------------------------------------------------------------- plumbing
def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


_LOG_NAMES = {
    "loss": "losses/sft_loss",
    "learning_rate": "charts/learning_rate",
    "grad_norm": "losses/grad_norm",
    "train_loss": "losses/train_loss_mean",
}
"""HF Trainer log keys and the CleanRL-style names they get in metrics.csv."""


def _completion_trainer_class() -> type:
    """TRL's SFTTrainer with a loss that projects only answer positions through the LM head.

    TRL 1.x computes the loss with a tiled "fused" LM head that also derives entropy and token
    accuracy for its logs; on CPU that roughly doubled the step time of Gemma-3-270M (262k
    vocabulary). Here the model is asked for logits only at the positions whose next token
    carries a label (``logits_to_keep`` as an index tensor, which transformers supports for
    every causal LM and VLM), and the loss is their summed cross-entropy over the labelled
    tokens, normalized exactly as TRL does (by ``num_items_in_batch`` across accumulation).
    """
    import torch
    from trl import SFTTrainer

    class CompletionLossSFTTrainer(SFTTrainer):
        schedule_steps: int | None = None
        """Length of the LR schedule when it is not the run's own `max_steps`."""

        def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
            return super().create_scheduler(self.schedule_steps or num_training_steps, optimizer)

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            labels = inputs["labels"]
            targets = labels[:, 1:]
            model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
            answer = None if return_outputs else _answer_logits(model, model_inputs, targets)
            if answer is not None:
                outputs = None
                logits, kept = answer
            else:
                keep = (targets != -100).any(dim=0).nonzero().squeeze(-1)
                outputs = model(**model_inputs, logits_to_keep=keep, use_cache=False)
                logits, kept = outputs.logits.float(), targets[:, keep]
            loss = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]),
                kept.reshape(-1),
                ignore_index=-100,
                reduction="sum",
            )
            count = (kept != -100).sum() if num_items_in_batch is None else num_items_in_batch
            loss = loss / torch.as_tensor(count, device=loss.device).clamp(min=1)
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes
            return (loss, outputs) if return_outputs else loss

    return CompletionLossSFTTrainer


def _answer_logits(model: Any, inputs: dict[str, Any], targets: Any) -> tuple[Any, Any] | None:
    """Float logits of exactly the labelled positions, and their labels; None when unsupported.

    `logits_to_keep` keeps whole columns, the union over the batch of every row's answer
    columns. Right-padded rows whose prompts differ in length (navigation prompts run from 300
    to 700 tokens) put their answers in different columns, so the union held ~8x more rows of
    262k-entry logits than the answers have tokens: 20 GB and a killed process for a batch of 8
    routes on a 24 GB machine. Here the decoder's final (normed) hidden states are gathered at
    the labelled positions and only those go through the LM head (with Gemma's final logit
    soft-capping, as the model's own forward applies it).

    Only for a text model called directly (a peft wrapper included): a VLM needs its image
    inputs spliced by its own forward, and a DDP or DeepSpeed wrapper must run its own forward
    for gradient synchronisation; those keep the column path.
    """
    import torch

    if "pixel_values" in inputs or not hasattr(model, "get_decoder"):
        return None
    decoder = model.get_decoder()
    head = model.get_output_embeddings()
    if decoder is None or head is None or decoder is model:
        return None
    mask = targets != -100
    hidden = decoder(**inputs, use_cache=False).last_hidden_state[:, :-1]
    logits = head(hidden[mask]).float()
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else None
    cap = getattr(config or model.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return logits, targets[mask]


def _checkpointing_option(args_class: type, enabled: bool) -> dict[str, bool]:
    """Activation checkpointing under its current name (transformers 5 renamed it)."""
    import dataclasses

    names = {f.name for f in dataclasses.fields(args_class)}
    key = (
        "activation_checkpointing"
        if "activation_checkpointing" in names
        else "gradient_checkpointing"
    )
    return {key: enabled}


def _make_callback(config: SFTRunConfig, n_params: int, logger: Any, history: list) -> Any:
    from transformers import TrainerCallback

    from openvirl.training.checkpoint import mark_complete
    from openvirl.training.compute import FlopCounter

    def counter(state: Any) -> FlopCounter:
        flops = FlopCounter(n_params=n_params, offset_flops=config.flops_offset)
        flops.add_train(int(getattr(state, "num_input_tokens_seen", 0) or 0))
        return flops

    class OpenvirlCallback(TrainerCallback):
        """Log to `RunLogger` with FLOPs; mark checkpoints complete once HF has written them."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if not logs or not state.is_world_process_zero or logger is None:
                return
            summary = "train_loss" in logs and "loss" not in logs  # the end-of-training row
            row = {} if summary else {"charts/gflops": counter(state).gflops}
            for key, name in _LOG_NAMES.items():
                if isinstance(logs.get(key), (int, float)):
                    row[name] = float(logs[key])
            logger.log(state.global_step, row)
            history.append({"step": state.global_step, **row})

        def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not state.is_world_process_zero:
                return
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if folder.is_dir():
                mark_complete(folder, state.global_step, {"flops": counter(state).to_dict()})

    return OpenvirlCallback()


# ---------------------------------------------------------------------------- the run
def per_device_batch_size(config: SFTRunConfig, world: int) -> int:
    """Examples per process per micro-batch: the global `batch_size` split evenly.

    Raises
    ------
    ValueError
        If `batch_size` is not a multiple of ``world * gradient_accumulation_steps``.
    """
    split = world * config.gradient_accumulation_steps
    if config.batch_size % split:
        fixed = split * max(1, config.batch_size // split)
        raise ValueError(
            f"`batch_size` ({config.batch_size}, the global batch) must be a multiple of "
            f"processes x gradient_accumulation_steps ({world} x "
            f"{config.gradient_accumulation_steps}); e.g. batch_size={fixed}."
        )
    return config.batch_size // split


def train_sft(config: SFTRunConfig, callbacks: Sequence[Any] = ()) -> SFTResult:
    """Generate expert data, fine-tune with TRL's SFTTrainer, save the final model.

    `callbacks` are extra `transformers.TrainerCallback` objects (they run on every process).

    Raises
    ------
    ValueError
        For inconsistent options (see `SFTRunConfig.__post_init__`).
    """
    import torch
    from transformers import PrinterCallback
    from trl import SFTConfig

    from openvirl.training.checkpoint import latest_checkpoint, mark_complete, write_json_atomic
    from openvirl.training.compute import FlopCounter, count_parameters
    from openvirl.training.config import (
        launch_world_size,
        resolve_shipped,
    )
    from openvirl.training.data import (
        ExpertDataConfig,
        count_tokens,
        expert_examples,
        prompt_format,
        tokenized_dataset,
        vision_collator,
    )
    from openvirl.training.logging import main_process_logger
    from openvirl.training.models import apply_lora, load_model

    out = Path(config.output_dir)
    ckpt_root = out / "checkpoints"
    resume_from = latest_checkpoint(ckpt_root) if config.resume else None
    _seed_everything(config.seed)

    # Model and prompt format (the hf policy's, so train and evaluation text agree)
    model, processor, chat_default = load_model(config.model, dtype=config.dtype)
    chat_template = config.chat_template if config.chat_template is not None else chat_default
    fmt = prompt_format(processor, chat_template=chat_template)
    if config.lora:
        model = apply_lora(
            model,
            r=config.lora_r,
            alpha=config.lora_alpha,
            dropout=config.lora_dropout,
            target_modules=config.lora_target_modules,
            init_adapter=config.init_adapter,
        )
    if config.gradient_checkpointing and config.lora:
        model.enable_input_require_grads()
    params = count_parameters(model)

    # Expert data, tokenized like evaluation prompts
    data_config = ExpertDataConfig(
        env_id=config.env_id,
        env_kwargs=dict(config.env_kwargs),
        n_examples=config.n_examples,
        seed=config.data_seed,
        multi_turn=config.multi_turn,
        wrong_attempts=config.wrong_attempts,
        train_on_wrong_attempts=config.train_on_wrong_attempts,
        wrong_kind=config.wrong_kind,
        revision_fraction=config.revision_fraction,
    )
    examples = expert_examples(data_config)
    dataset = tokenized_dataset(examples, fmt, max_length=config.max_length)
    vision = "images" in dataset.column_names
    if len(dataset) == 0:
        raise ValueError(
            f"no expert example keeps an answer token within `max_length`={config.max_length}; "
            "raise `max_length` (prompts of this tokenizer are longer)."
        )

    # TRL trainer; `batch_size` is the global batch, split over processes and accumulation
    per_device = per_device_batch_size(config, launch_world_size())
    use_cuda = torch.cuda.is_available()
    bf16 = use_cuda and next(model.parameters()).dtype == torch.bfloat16
    args = SFTConfig(
        output_dir=str(ckpt_root),
        learning_rate=config.learning_rate,
        per_device_train_batch_size=per_device,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_steps=config.max_steps,
        num_train_epochs=config.num_epochs,
        warmup_steps=config.warmup_steps,
        lr_scheduler_type=config.lr_scheduler,
        weight_decay=config.weight_decay,
        adam_beta1=config.adam_beta1,
        adam_beta2=config.adam_beta2,
        adam_epsilon=config.adam_epsilon,
        max_grad_norm=config.max_grad_norm,
        seed=config.seed,
        data_seed=config.seed,
        bf16=bf16,
        deepspeed=resolve_shipped(config.deepspeed),
        max_length=config.max_length,
        completion_only_loss=True,
        include_num_input_tokens_seen="non_padding",
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.keep_last,
        logging_steps=config.logging_steps,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
        use_cpu=not use_cuda,
        # Image rows are batched by `vision_collator`; TRL must leave them as they are.
        remove_unused_columns=not vision,
        dataset_kwargs={"skip_prepare_dataset": True} if vision else None,
        **_checkpointing_option(SFTConfig, config.gradient_checkpointing),
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
    trainer = _completion_trainer_class()(
        model=model,
        args=args,
        train_dataset=dataset,
        processing_class=processor if fmt.is_vlm else fmt.tokenizer,
        data_collator=vision_collator(processor, fmt.tokenizer.pad_token_id) if vision else None,
        callbacks=[_make_callback(config, params.total, logger, history)],
    )
    trainer.remove_callback(PrinterCallback)  # metrics go to metrics.csv, not stdout
    trainer.schedule_steps = config.schedule_steps
    for callback in callbacks:
        trainer.add_callback(callback)

    # ALGO LOGIC: supervised fine-tuning (TRL)
    output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)

    # PLUMBING: final model, FLOPs, summary
    state = trainer.state
    flops = FlopCounter(
        n_params=params.total, n_trainable=params.trainable, offset_flops=config.flops_offset
    )
    flops.add_train(int(state.num_input_tokens_seen or 0))
    final = out / "final"
    trainer.save_model(str(final))
    if not config.lora:
        fmt.tokenizer.save_pretrained(str(final))
    result = SFTResult(
        output_dir=out,
        final_dir=final,
        steps=state.global_step,
        train_tokens=flops.train_tokens,
        flops=flops.flops,
        n_params=params.total,
        history=history,
    )
    if not is_main:
        return result
    mark_complete(final, state.global_step, {"flops": flops.to_dict()})
    summary = {
        "steps": state.global_step,
        "train_tokens": flops.train_tokens,
        "dataset_tokens": count_tokens(dataset),
        "examples": len(dataset),
        "flops": flops.to_dict(),
        "params": {"total": params.total, "trainable": params.trainable},
        "model": config.model,
        "chat_template": fmt.uses_chat_template,
        "lora": config.lora,
        "final_dir": str(final),
        "train_runtime_s": float(output.metrics.get("train_runtime", float("nan"))),
    }
    write_json_atomic(out / "summary.json", summary)
    if logger is not None:
        logger.close()
    (out / "history.jsonl").write_text("".join(json.dumps(h) + "\n" for h in history), "utf-8")
    return result


__all__ = ["SFTResult", "SFTRunConfig", "per_device_batch_size", "train_sft"]
