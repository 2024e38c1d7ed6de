"""Expert SFT data from any environment: the oracle plays, its turns become labelled token ids.

The paper's SFT data are "optimal single-turn prompt-response pairs" (spec §7.1): the first
prompt of a problem and the expert answer. Its ablation (App. C.1) trains on multi-turn
transcripts that contain wrong attempts and the verifier's messages. Both come from the same
place here: `OraclePolicy` (optionally with ``wrong_attempts=k``) plays episodes of any
openvirl environment through its generic interface (``reset``, ``step(text)``,
``messages()``, ``info["expert_answer"]``), and every (conversation, answer) pair it produced
is kept.

Train text equals evaluation text
---------------------------------
A conversation is rendered by `HFPolicy.render`, the function the ``hf`` policy uses at
evaluation and in PPO rollouts: the model's chat template, or `render_plain_prompt` for base
models such as the embedded Gemma-3-270M. The context before an answer is tokenized exactly as
`HFPolicy.encode` tokenizes a prompt (same special tokens), and the answer on its own, so the
training tokens of a single-turn pair are the tokens the model sees and should generate at
evaluation. Only assistant turns carry labels; every other token is ``-100``.

- Plain prompts end each trained answer with the tokenizer's EOS (what stops generation).
- Chat templates end it with whatever the template writes after an assistant turn (its
  end-of-turn token), which is labelled too, so the model learns to stop.
- In a multi-turn transcript, each later context segment is tokenized on its own and
  appended; at evaluation the whole conversation is tokenized at once, which can split a
  token differently at a turn boundary. Single-turn pairs have no such boundary.

Example
-------
>>> from openvirl.training.data import ExpertDataConfig, expert_examples
>>> examples = expert_examples(ExpertDataConfig(n_examples=4))      # oracle, GP-L train hands
>>> examples[0]["messages"][-1]["role"]
'assistant'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from openvirl.policies.base import Message, Policy, text_message

IGNORE_INDEX = -100
"""Label of tokens that carry no loss (prompt, feedback, padding), as PyTorch's cross-entropy."""


@dataclass
class ExpertDataConfig:
    """Which expert data to make.

    Episode ``i`` is ``env.reset(seed=episode_seed(seed, "train", i))``, the seed stream of
    `openvirl points dataset`'s train rows, so the SFT hands are that dataset's train hands.
    With ``split="train"`` in `env_kwargs` (the default) they never overlap the test hands.
    """

    env_id: str = field(
        default="openvirl/GeneralPoints-v0",
        metadata={"help": "Gymnasium id of the environment the oracle plays."},
    )
    env_kwargs: dict[str, Any] = field(
        default_factory=lambda: {"rule": "id", "split": "train"},
        metadata={"help": "Keyword arguments of `gym.make` (rule, split, target, visual ...)."},
    )
    n_examples: int = field(
        default=1000, metadata={"help": "Training examples to produce (pairs or transcripts)."}
    )
    seed: int = field(default=0, metadata={"help": "Seed of the episode stream."})
    multi_turn: bool = field(
        default=False,
        metadata={
            "help": "Make multi-turn transcripts (wrong attempts + feedback + the expert answer) "
            "instead of single-turn pairs; needs `wrong_attempts` >= 1 to differ."
        },
    )
    wrong_attempts: int = field(
        default=0,
        metadata={"help": "Wrong answers the oracle gives before the expert one (per problem)."},
    )
    train_on_wrong_attempts: bool = field(
        default=True,
        metadata={
            "help": "In transcripts, label the wrong answers too (the paper's sub-optimal "
            "trajectories); False labels only the final, correct answer."
        },
    )
    wrong_kind: str = field(
        default="formula",
        metadata={
            "help": "GeneralPoints wrong answers: 'formula' (right values, wrong result) or "
            "'numbers' (one number card misvalued; the verifier names the missing value)."
        },
    )
    revision_fraction: float = field(
        default=1.0,
        metadata={
            "help": "Share of problems that get the wrong attempts (with `multi_turn`); the "
            "rest are single-turn expert pairs, so first answers are trained as well."
        },
    )

    def validate(self) -> None:
        """Raise `ValueError` naming the bad option."""
        if self.n_examples < 1:
            raise ValueError(f"`n_examples` must be >= 1, got {self.n_examples}.")
        if self.wrong_attempts < 0:
            raise ValueError(f"`wrong_attempts` must be >= 0, got {self.wrong_attempts}.")
        from openvirl.policies.oracle import check_wrong_answer_options

        check_wrong_answer_options(self.wrong_kind, self.revision_fraction)
        if self.wrong_attempts and not self.multi_turn:
            raise ValueError(
                "`wrong_attempts` > 0 only makes sense with `multi_turn=True` (single-turn pairs "
                "keep only first attempts); set `multi_turn=True` or `wrong_attempts=0`."
            )


# ---------------------------------------------------------------------------- playing
@dataclass
class ExpertStep:
    """One answer of the oracle: the conversation it answered and what it said."""

    messages: list[Message]
    answer: str
    reward: float
    outcome: str
    episode: int


def make_env_factory(env_id: str, env_kwargs: dict[str, Any]) -> Callable[[], Any]:
    """A thunk that builds the environment (registering openvirl's envs first)."""
    kwargs = dict(env_kwargs)

    def make() -> Any:
        import gymnasium as gym

        import openvirl  # noqa: F401  (registers the environments)

        return gym.make(env_id, disable_env_checker=True, **kwargs)

    return make


def play_expert(
    make_env: Callable[[], Any],
    seeds: Sequence[int],
    *,
    policy: Policy | None = None,
    max_steps: int = 1_000,
) -> list[ExpertStep]:
    """Play one episode per seed with the oracle and record every (conversation, answer).

    The conversation is ``env.unwrapped.messages()`` right before the step, exactly what a
    model would have been asked, so any environment with that method works (GeneralPoints
    and navigation alike).

    Parameters
    ----------
    make_env
        Builds the environment (called once).
    seeds
        One `reset` seed per episode.
    policy
        Defaults to ``OraclePolicy()``; pass ``OraclePolicy(wrong_attempts=k)`` for
        transcripts with wrong attempts.
    max_steps
        Guard against an episode that never ends.
    """
    from openvirl.policies.oracle import OraclePolicy

    policy = policy or OraclePolicy()
    env = make_env()
    steps: list[ExpertStep] = []
    try:
        for episode, seed in enumerate(seeds):
            _, info = env.reset(seed=int(seed))
            for _ in range(max_steps):
                messages = env.unwrapped.messages()
                answer = policy.act([{"messages": messages, "info": info}])[0]
                _, reward, terminated, truncated, info = env.step(answer)
                steps.append(
                    ExpertStep(
                        messages=messages,
                        answer=answer,
                        reward=float(reward),
                        outcome=str(info.get("outcome", "")),
                        episode=episode,
                    )
                )
                if terminated or truncated:
                    break
    finally:
        env.close()
    return steps


def _is_continuation(previous: ExpertStep, step: ExpertStep) -> bool:
    """Whether `step` revises `previous` (its conversation extends the previous one)."""
    if previous.episode != step.episode:
        return False
    n = len(previous.messages)
    return len(step.messages) > n + 1 and step.messages[:n] == previous.messages


def steps_to_examples(
    steps: Sequence[ExpertStep], *, multi_turn: bool, train_on_wrong_attempts: bool = True
) -> list[dict[str, Any]]:
    """Turn recorded oracle steps into SFT examples.

    Single-turn: every step whose conversation is a fresh problem (one user turn) and whose
    answer was correct becomes ``prompt -> answer``. Multi-turn: every problem (a run of steps
    whose conversations extend each other) becomes its whole transcript ending with the last
    answer. Each example is ``{"messages": [...], "train_turns": "all" | "last"}``.
    """
    examples: list[dict[str, Any]] = []
    if not multi_turn:
        for step in steps:
            fresh = len(step.messages) == 1 and step.messages[0]["role"] == "user"
            if fresh and step.outcome == "correct":
                conversation = [*step.messages, text_message("assistant", step.answer)]
                examples.append({"messages": conversation, "train_turns": "last"})
        return examples
    run: list[ExpertStep] = []
    for step in [*steps, None]:
        if step is not None and run and _is_continuation(run[-1], step):
            run.append(step)
            continue
        if run and run[-1].outcome == "correct":
            last = run[-1]
            conversation = [*last.messages, text_message("assistant", last.answer)]
            turns = "all" if train_on_wrong_attempts else "last"
            examples.append({"messages": conversation, "train_turns": turns})
        run = [step] if step is not None else []
    return examples


def expert_examples(config: ExpertDataConfig) -> list[dict[str, Any]]:
    """Play oracle episodes until `config.n_examples` examples exist; return them in order.

    Episodes are played in chunks; a chunk's episodes depend only on their index, so a
    larger `n_examples` extends a smaller one's list.
    """
    from openvirl.envs.points.dataset import episode_seed
    from openvirl.policies.oracle import OraclePolicy

    config.validate()
    make_env = make_env_factory(config.env_id, config.env_kwargs)
    policy = OraclePolicy(
        wrong_attempts=config.wrong_attempts,
        seed=config.seed,
        wrong_kind=config.wrong_kind,
        revision_fraction=config.revision_fraction,
    )
    examples: list[dict[str, Any]] = []
    next_episode = 0
    while len(examples) < config.n_examples:
        chunk = max(8, config.n_examples - len(examples))
        seeds = [episode_seed(config.seed, "train", next_episode + i) for i in range(chunk)]
        steps = play_expert(make_env, seeds, policy=policy)
        for step in steps:
            step.episode += next_episode
        examples += steps_to_examples(
            steps,
            multi_turn=config.multi_turn,
            train_on_wrong_attempts=config.train_on_wrong_attempts,
        )
        next_episode += chunk
        if next_episode > 100 * config.n_examples + 1000:
            raise RuntimeError(
                f"{config.env_id} gave only {len(examples)} expert examples in {next_episode} "
                "episodes; does the oracle solve it?"
            )
    return examples[: config.n_examples]


# ---------------------------------------------------------------------------- formatting
def prompt_format(processor: Any, *, chat_template: bool | None = None, name: str = "sft") -> Any:
    """An `HFPolicy` without a model: its `render` and tokenizer settings, for formatting data.

    The same object a policy uses at evaluation, so the rendered text cannot drift from it.
    `chat_template` as in `HFPolicy` (None: the processor's template when it has one).
    """
    from openvirl.policies.hf import HFPolicy

    return HFPolicy(None, processor, name=name, chat_template=chat_template)


def _tokenize(fmt: Any, text: str, images: list[Any], *, add_special_tokens: bool) -> list[int]:
    """Token ids of `text`; a VLM's processor expands each image token to its patch count."""
    if fmt.is_vlm:
        kwargs: dict[str, Any] = {"images": images} if images else {}
        batch = fmt.processor(text=[text], add_special_tokens=add_special_tokens, **kwargs)
        return [int(t) for t in batch["input_ids"][0]]
    return list(fmt.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])


def tokenize_conversation(
    messages: Sequence[Message],
    fmt: Any,
    *,
    train_turns: str = "last",
    max_length: int | None = None,
) -> dict[str, list[int]]:
    """Token ids and labels of a conversation that ends with an assistant turn.

    Parameters
    ----------
    messages
        The conversation; its last message is the assistant's answer.
    fmt
        A `prompt_format` (or a real `HFPolicy`): renders and tokenizes like evaluation does.
    train_turns
        ``"last"``: only the final answer carries labels; ``"all"``: every assistant turn.
    max_length
        Keep at most this many tokens (from the start); None keeps all.

    Returns
    -------
    dict
        ``input_ids`` and ``labels`` (same length; ``-100`` outside trained answers); for a
        VLM with images, also ``images`` (in conversation order; `vision_collator` turns them
        into pixel tensors).

    Raises
    ------
    ValueError
        If the conversation does not end with an assistant turn, or the renderer is not
        prefix-preserving (a chat template that rewrites earlier turns).
    """
    if train_turns not in ("last", "all"):
        raise ValueError(f"`train_turns` must be 'last' or 'all', got {train_turns!r}.")
    if not messages or messages[-1]["role"] != "assistant":
        raise ValueError("the conversation must end with an assistant turn (the answer).")
    assistant = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    trained = set(assistant if train_turns == "all" else assistant[-1:])
    input_ids: list[int] = []
    labels: list[int] = []
    all_images: list[Any] = []
    consumed = ""
    for i in assistant:
        prefix = fmt.render(messages[:i], add_generation_prompt=True)
        upto = fmt.render(messages[: i + 1], add_generation_prompt=False)
        if not prefix.startswith(consumed) or not upto.startswith(prefix):
            raise ValueError(
                "the prompt renderer is not prefix-preserving (rendering a longer conversation "
                "changed the text of an earlier part); use plain prompts (chat_template=False)."
            )
        images = [
            part["image"]
            for m in messages[:i]
            for part in m["content"]
            if part.get("type") == "image"
        ]
        seen_images = consumed.count(getattr(fmt.processor, "image_token", "\0") or "\0")
        context = _tokenize(
            fmt,
            prefix[len(consumed) :],
            images[seen_images:],
            add_special_tokens=not consumed and fmt.add_special_tokens,
        )
        if fmt.is_vlm:
            all_images += images[seen_images:]
        answer = _tokenize(fmt, upto[len(prefix) :], [], add_special_tokens=False)
        if not fmt.uses_chat_template and i == assistant[-1]:
            answer.append(int(fmt.tokenizer.eos_token_id))
        input_ids += context + answer
        labels += [IGNORE_INDEX] * len(context)
        labels += answer if i in trained else [IGNORE_INDEX] * len(answer)
        consumed = upto
    if max_length is not None:
        input_ids, labels = input_ids[:max_length], labels[:max_length]
    row: dict[str, Any] = {"input_ids": input_ids, "labels": labels}
    if all_images:
        row["images"] = [_rgb(image) for image in all_images]
    return row


def _rgb(image: Any) -> Any:
    return image if getattr(image, "mode", "RGB") == "RGB" else image.convert("RGB")


def tokenized_dataset(
    examples: Sequence[dict[str, Any]], fmt: Any, *, max_length: int | None = None
) -> Any:
    """A `datasets.Dataset` of ``input_ids``/``labels`` (and ``images`` for image tasks on a
    VLM, batched by `vision_collator`), ready for SFTTrainer.

    Examples left without any labelled token by `max_length` are dropped.
    """
    from datasets import Dataset

    rows = [
        tokenize_conversation(
            e["messages"], fmt, train_turns=e.get("train_turns", "last"), max_length=max_length
        )
        for e in examples
    ]
    rows = [r for r in rows if any(label != IGNORE_INDEX for label in r["labels"])]
    return Dataset.from_list(rows)


def vision_collator(processor: Any, pad_id: int) -> Any:
    """Batch image rows: right-pad ids and labels; pixel tensors from the image processor.

    The ids already hold each image's expanded image tokens (the processor's own count), so
    the images only need the image processor, in conversation order. This fits models that
    splice image features at image tokens (LLaVA, Qwen2-VL, Gemma 3). Models that read
    images through cross-attention (Llama 3.2 Vision, whose processor returns a
    ``cross_attention_mask``) get each row's images as one group, ``(rows, images, tiles,
    ...)``, and the processor's text-dependent per-token mask, built from the ids with the
    processor's own helpers and zero over the right padding, like the ids.
    """

    if "cross_attention_mask" in getattr(processor, "model_input_names", ()):
        return _cross_attention_collator(processor, pad_id)

    def collate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = _right_padded(rows, pad_id)
        images = [_rgb(image) for r in rows for image in r.get("images") or []]
        if images:
            pixels = processor.image_processor(images=images, return_tensors="pt")
            batch.update(dict(pixels.items()))
        return batch

    return collate


def _right_padded(rows: Sequence[dict[str, Any]], pad_id: int) -> dict[str, Any]:
    """``input_ids``, ``labels`` and ``attention_mask`` of `rows`, right-padded to the longest."""
    import torch

    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r["input_ids"])
        ids[i, :n] = torch.tensor(r["input_ids"])
        labels[i, :n] = torch.tensor(r["labels"])
        mask[i, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _cross_attention_collator(processor: Any, pad_id: int) -> Any:
    """`vision_collator` for Mllama-style processors (see there)."""
    import torch
    from transformers.models.mllama.processing_mllama import (
        convert_sparse_cross_attention_mask_to_dense,
        get_cross_attention_token_mask,
    )

    image_token_id = processor.image_token_id
    max_tiles = processor.image_processor.max_image_tiles

    def collate(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
        batch = _right_padded(rows, pad_id)
        groups = [[_rgb(image) for image in r.get("images") or []] for r in rows]
        if not any(groups):
            return batch
        if not all(groups):
            raise ValueError(
                "a cross-attention VLM batch mixes rows with and without images; "
                "batch image and text-only examples separately"
            )
        pixels = dict(processor.image_processor(images=groups, return_tensors="pt").items())
        num_tiles = pixels.pop("num_tiles")
        token_masks = [get_cross_attention_token_mask(r["input_ids"], image_token_id) for r in rows]
        for r, (token_mask, group) in enumerate(zip(token_masks, groups, strict=True)):
            if len(token_mask) != len(group):
                raise ValueError(
                    f"row {r} holds {len(token_mask)} image tokens for {len(group)} images"
                )
        dense = convert_sparse_cross_attention_mask_to_dense(
            token_masks,
            num_tiles=num_tiles,
            max_num_tiles=max_tiles,
            length=batch["input_ids"].shape[1],
        )
        cross = torch.from_numpy(dense) * batch["attention_mask"][:, :, None, None]
        batch.update(pixels)
        batch["cross_attention_mask"] = cross
        return batch

    return collate


def count_tokens(dataset: Any) -> int:
    """Tokens in a tokenized dataset (what one epoch of SFT pushes through the model)."""
    return int(sum(len(ids) for ids in dataset["input_ids"]))


__all__ = [
    "IGNORE_INDEX",
    "ExpertDataConfig",
    "ExpertStep",
    "count_tokens",
    "expert_examples",
    "make_env_factory",
    "play_expert",
    "prompt_format",
    "steps_to_examples",
    "tokenize_conversation",
    "tokenized_dataset",
    "vision_collator",
]
