"""Adapters so other trainers can use openvirl's environments: TRL, verl and verifiers.

Each adapter speaks its library's documented interface and nothing else of openvirl leaks
into it; the library itself is imported only when present (none is needed to import this
module). The tests drive the real libraries: TRL's ``GRPOTrainer.train``, verifiers'
``MultiTurnEnv.evaluate`` (0.3) and verl's agent-loop classes where they are installed.

- `TRLEnvironment` for TRL's ``GRPOTrainer(environment_factory=...)``: ``reset(**row)``
  starts the row's task (``reset_seed``) or the next one of the factory's stream, and
  returns the prompt when the row shows none; the answer channel is the one tool
  ``submit_answer(answer)`` (its Google-style docstring becomes the tool schema), and every
  prompt says so; ``get_reward()`` is the episode's return, with unused attempts scored as
  the env's worst answer. `trl_dataset` writes prompt rows. Needs a model whose chat
  template supports tool calling (TRL checks); for plain base models use
  `openvirl.training.grpo` (``multi_turn=True``), which needs no tools.
- `OpenvirlAgentLoop` for verl's agent loop (``verl.experimental.agent_loop``): registered
  as ``openvirl_revision``; each sample plays one episode with sequential revision against
  verl's LLM server manager, returning prompt ids, response ids with a mask that is 1 on the
  model's tokens and 0 on feedback tokens, log-probs when the server gives them, and the
  episode's return as ``reward_score``; responses stop at ``rollout.response_length`` and a
  prompt longer than ``rollout.prompt_length`` is refused. Checked against verl 0.9.1.
- `make_verifiers_env` for verifiers 0.3: a ``vf.MultiTurnEnv`` whose environment response
  is the env's next user turn (the verifier's feedback), a stop condition at the episode's
  end (so a correct answer ends the rollout at once), and a rubric whose reward is the
  episode's return. verifiers 0.4 and later: `openvirl.training.verifiers_env`, found by
  the library as the taskset id ``openvirl-verifiers``.

Example (TRL)
-------------
>>> from openvirl.training.adapters import trl_dataset, trl_environment_factory
>>> factory = trl_environment_factory("openvirl/GeneralPoints-v0", {"split": "train"},
...                                   num_generations=8)
>>> trainer = GRPOTrainer(model=..., environment_factory=factory,  # doctest: +SKIP
...                       args=GRPOConfig(num_generations=8, max_steps=100, ...))
>>> # or with a dataset: train_dataset=trl_dataset("openvirl/GeneralPoints-v0", n=1000)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from uuid import uuid4

from openvirl.training.data import make_env_factory

DEFAULT_ENV = "openvirl/GeneralPoints-v0"


def _reset_seed(row: dict[str, Any], fallback: int) -> int:
    info = row.get("info") or row.get("extra_info") or {}
    if isinstance(info, str):
        import json

        info = json.loads(info)
    for source in (row, info):
        if source.get("reset_seed") is not None:
            return int(source["reset_seed"])
    return fallback


# ---------------------------------------------------------------------------- TRL

TOOL_INSTRUCTION = (
    "\n\n[How to answer]\n"
    "Call the `submit_answer` tool with that JSON object as its `answer` argument. Only answers "
    "submitted with the tool are checked and rewarded; a reply without a tool call counts as "
    "no answer. The tool replies with the verdict; after a wrong answer, call it again with a "
    "revised answer."
)
"""Appended to every prompt the TRL adapter shows: the answer channel it rewards."""


def _unanswered_penalty(info: dict[str, Any]) -> float:
    """What the attempts a rollout left unused at its current position are worth.

    Each scores the env's worst single-answer reward, and the position's attempts then run
    out (the env's ``attempts_exhausted``): stopping is never worth more than answering
    wrong, so a policy cannot learn to stay silent.
    """
    if info.get("task") == "navigation":
        from openvirl.envs.navigation.actions import REWARDS, Outcome
    else:
        from openvirl.envs.points.verifier import REWARDS, Outcome  # type: ignore[assignment]
    exhausted = REWARDS[Outcome.ATTEMPTS_EXHAUSTED]
    worst = min(r for o, r in REWARDS.items() if o is not Outcome.ATTEMPTS_EXHAUSTED)
    unused = max(int(info.get("max_attempts", 1)) - int(info.get("attempt", 0)), 0)
    return unused * worst + exhausted


def _row_has_prompt(row: dict[str, Any]) -> bool:
    """Whether a dataset row already shows its task (TRL's placeholder rows are empty)."""
    prompt = row.get("prompt")
    if not prompt:
        return False
    if isinstance(prompt, str):
        return bool(prompt.strip())
    content = prompt[-1].get("content") if isinstance(prompt[-1], dict) else None
    if isinstance(content, list):
        return any(str(p.get("text", "")).strip() for p in content if isinstance(p, dict))
    return bool(str(content or "").strip())


class _SeedStream:
    """Reset seeds for rows that bring none, shared by every env of one factory.

    TRL resets the envs of a generation batch in batch order, and its sampler puts the
    ``num_generations`` rollouts of one prompt next to each other, so consecutive draws in
    blocks of ``group_size`` give each GRPO group one task and different groups different
    tasks. The process rank (``RANK``, set by ``accelerate``/``torchrun``) keeps processes apart.
    """

    def __init__(self, seed: int, group_size: int):
        import os

        self.seed, self.group_size = int(seed), max(int(group_size), 1)
        self.rank = int(os.environ.get("RANK", "0") or 0)
        self.draws = 0

    def next(self) -> int:
        from openvirl.envs.points.dataset import episode_seed

        index = self.draws // self.group_size
        self.draws += 1
        return episode_seed(self.seed + 7919 * self.rank, "train", index)


class TRLEnvironment:
    """An openvirl env as a TRL ``environment_factory`` environment (tool calling).

    TRL makes one instance per concurrent rollout and reuses it, calls
    ``reset(**dataset_row)`` before generation, exposes every public method except
    ``reset`` and ``get_reward`` as a tool, and calls ``get_reward()`` once the rollout is
    over. The answer channel is the ``submit_answer`` tool, and every prompt says so
    (`TOOL_INSTRUCTION`); feedback on a wrong answer comes back as the tool's reply, so
    rollouts revise as in the paper's sequential revision.

    The task: a row's ``reset_seed`` (as `trl_dataset` writes) picks it, and a row with
    both a seed and a prompt (which then shows the task) gets ``None`` back from ``reset``.
    Any other row (TRL's empty placeholder rows when no ``train_dataset`` is given, or a
    row without ``reset_seed``) gets the env's prompt, which TRL appends to the row's last
    user message, for a task drawn from the factory's stream (`_SeedStream`).

    The reward is the episode's return, with the attempts a rollout left unused scored as
    the env's worst answer (`_unanswered_penalty`), so silence never beats a wrong answer.
    Text variants only: TRL tool replies carry text.
    """

    def __init__(
        self,
        env_id: str = DEFAULT_ENV,
        env_kwargs: dict[str, Any] | None = None,
        *,
        seeds: _SeedStream | None = None,
    ):
        env_kwargs = dict(env_kwargs or {"split": "train"})
        if env_kwargs.get("visual"):
            raise ValueError(
                "the TRL adapter serves text variants (visual=False); train vision-language "
                "models with `openvirl train grpo`"
            )
        self._make = make_env_factory(env_id, env_kwargs)
        self._seeds = seeds or _SeedStream(0, 1)
        self._env: Any = None
        self._info: dict[str, Any] = {}
        self._return = 0.0
        self._done = True

    def reset(self, **row: Any) -> str | None:
        """Start the episode of `row`; return its prompt when the row shows none."""
        if self._env is None:
            self._env = self._make()
        seed = _reset_seed(row, -1)
        obs, self._info = self._env.reset(seed=self._seeds.next() if seed < 0 else seed)
        self._return = 0.0
        self._done = False
        if seed >= 0 and _row_has_prompt(row):
            return None  # the row was written for this task (`trl_dataset`) and shows it
        return str(obs["prompt"]) + TOOL_INSTRUCTION

    def submit_answer(self, answer: str) -> str:
        """Submit an answer to the task and get the verifier's verdict.

        Args:
            answer: The complete answer: the JSON object the task asks for.

        Returns:
            The verdict: "Correct." when the answer solves the task (with the next step, if
            the task goes on), otherwise why it failed.
        """
        if self._env is None or self._done:
            return "The episode is over; no more answers are checked."
        obs, reward, terminated, truncated, info = self._env.step(str(answer))
        self._return += float(reward)
        self._done = bool(terminated or truncated)
        self._info = info
        if info.get("outcome") == "correct":
            if self._done:
                return "Correct."
            return "Correct. The task goes on:\n" + str(obs["prompt"]) + TOOL_INSTRUCTION
        message = f"You failed this trial because {info.get('feedback', '')}"
        return message + (" No attempts are left." if self._done else "")

    def get_reward(self) -> float:
        """The episode's return; attempts left unused count as the env's worst answers."""
        if self._env is None:
            return 0.0
        if self._done:
            return self._return
        return self._return + _unanswered_penalty(self._info)


class TRLEnvironmentFactory:
    """The zero-argument factory TRL's ``environment_factory`` expects (picklable).

    Envs it makes share one `_SeedStream`, so without a dataset (or with rows that carry no
    ``reset_seed``) each GRPO group of ``num_generations`` rollouts gets its own task.
    """

    def __init__(
        self,
        env_id: str = DEFAULT_ENV,
        env_kwargs: dict[str, Any] | None = None,
        *,
        num_generations: int = 1,
        seed: int = 0,
    ):
        self.env_id = env_id
        self.env_kwargs = dict(env_kwargs or {"split": "train"})
        self.seeds = _SeedStream(seed, num_generations)

    def __call__(self) -> TRLEnvironment:
        return TRLEnvironment(self.env_id, self.env_kwargs, seeds=self.seeds)


def trl_environment_factory(
    env_id: str = DEFAULT_ENV,
    env_kwargs: dict[str, Any] | None = None,
    *,
    num_generations: int = 1,
    seed: int = 0,
) -> TRLEnvironmentFactory:
    """The factory for ``GRPOTrainer(environment_factory=...)``.

    Pass the trainer's ``num_generations`` so that, without a dataset, the rollouts of one
    group share a task (GRPO compares them) and groups differ; with `trl_dataset` rows the
    row decides the task.
    """
    return TRLEnvironmentFactory(env_id, env_kwargs, num_generations=num_generations, seed=seed)


def trl_dataset(
    env_id: str = DEFAULT_ENV,
    env_kwargs: dict[str, Any] | None = None,
    *,
    n: int = 256,
    seed: int = 0,
) -> Any:
    """A TRL prompt dataset: one row per task, its prompt (with `TOOL_INSTRUCTION`) shown.

    Rows are ``{"prompt": [{"role": "user", "content": ...}], "reset_seed": int}``; TRL
    passes each row to `TRLEnvironment.reset`, which replays the same task.
    """
    from datasets import Dataset

    from openvirl.envs.points.dataset import episode_seed

    env_kwargs = dict(env_kwargs or {"split": "train"})
    env = make_env_factory(env_id, env_kwargs)()
    rows = []
    for index in range(int(n)):
        reset_seed = episode_seed(seed, "train", index)
        obs, _ = env.reset(seed=reset_seed)
        content = str(obs["prompt"]) + TOOL_INSTRUCTION
        rows.append({"prompt": [{"role": "user", "content": content}], "reset_seed": reset_seed})
    env.close()
    return Dataset.from_list(rows)


# ---------------------------------------------------------------------------- token transcript


class EpisodeTranscript:
    """A sequential-revision episode recorded as tokens: prompt, answers, feedback, mask.

    The first prompt and every feedback turn are rendered by the ``hf`` policy's renderer
    (`openvirl.training.data.prompt_format`), so token-level trainers (verl) see the same
    text as openvirl's evaluation. ``response_mask`` is 1 on answer tokens, 0 on feedback.
    """

    def __init__(self, env: Any, fmt: Any, *, seed: int):
        self.env = env
        self.fmt = fmt
        env.reset(seed=int(seed))
        self.text = fmt.render(env.unwrapped.messages())
        self.prompt_ids = self._tokenize(self.text, special=fmt.add_special_tokens)
        self.response_ids: list[int] = []
        self.response_mask: list[int] = []
        self.response_logprobs: list[float] = []
        self.has_logprobs = True  # False once an answer comes without log-probs
        self.rewards: list[float] = []
        self.total_reward = 0.0
        self.done = False
        self.success = False
        self.turns = 1  # the first user turn

    def _tokenize(self, text: str, *, special: bool = False) -> list[int]:
        return list(self.fmt.tokenizer(text, add_special_tokens=special)["input_ids"])

    @property
    def context_ids(self) -> list[int]:
        """What the model continues: the prompt, then everything answered and fed back."""
        return self.prompt_ids + self.response_ids

    def add_answer(self, token_ids: Sequence[int], logprobs: Sequence[float] | None = None) -> str:
        """Record the model's answer tokens, step the env, append the feedback turn's tokens.

        Returns
        -------
        str
            The decoded answer that was verified.
        """
        ids = list(token_ids)
        answer = self.fmt.tokenizer.decode(ids, skip_special_tokens=True)
        _, reward, terminated, truncated, info = self.env.step(answer)
        self.rewards.append(float(reward))
        self.total_reward += float(reward)
        self.done = bool(terminated or truncated)
        self.success = info.get("episode_outcome") == "correct" or bool(info.get("success"))
        self.response_ids += ids
        self.response_mask += [1] * len(ids)
        self.has_logprobs = self.has_logprobs and logprobs is not None
        self.response_logprobs += list(logprobs) if logprobs is not None else [0.0] * len(ids)
        self.turns += 1
        if not self.done:
            text = self.fmt.render(self.env.unwrapped.messages())
            before = self.text + answer
            suffix = text[len(before) :] if text.startswith(before) else text
            feedback = self._tokenize(suffix)
            self.response_ids += feedback
            self.response_mask += [0] * len(feedback)
            self.response_logprobs += [0.0] * len(feedback)
            self.text = text
            self.turns += 1
        return answer


# ---------------------------------------------------------------------------- verl

try:  # pragma: no cover - exercised only where verl is installed
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopBase as _VerlAgentLoopBase,
    )
    from verl.experimental.agent_loop.agent_loop import (
        AgentLoopOutput as _VerlAgentLoopOutput,
    )
    from verl.experimental.agent_loop.agent_loop import register as _verl_register

    HAVE_VERL = True
except ImportError:
    HAVE_VERL = False

    class _VerlAgentLoopBase:  # type: ignore[no-redef]
        """Stand-in with verl 0.9's constructor, so the adapter can be driven without verl."""

        def __init__(self, trainer_config: Any, server_manager: Any, tokenizer: Any,
                     processor: Any = None, dataset_cls: Any = None, data_config: Any = None,
                     hf_model_type: str | None = None, **kwargs: Any):  # fmt: skip
            self.config = getattr(trainer_config, "config", trainer_config)
            rollout = getattr(getattr(self.config, "actor_rollout_ref", None), "rollout", None)
            self.rollout_config = rollout
            self.server_manager = server_manager
            self.tokenizer = tokenizer
            self.processor = processor

    class _VerlAgentLoopOutput(dict):  # type: ignore[no-redef]
        """Stand-in for verl's pydantic `AgentLoopOutput` (same fields, attribute access)."""

        def __init__(self, **fields: Any):
            super().__init__(**fields)
            self.__dict__.update(fields)

    def _verl_register(name: str) -> Callable[[type], type]:  # type: ignore[misc]
        return lambda cls: cls


@_verl_register("openvirl_revision")
class OpenvirlAgentLoop(_VerlAgentLoopBase):
    """verl agent loop: one openvirl episode with sequential revision per sample.

    Dataset rows choose it with ``agent_name: openvirl_revision`` and give, in
    ``extra_info`` (or top level), ``reset_seed`` and optionally ``env_id`` /
    ``env_kwargs`` (defaults: GeneralPoints, train split). The chat template of the
    tokenizer renders prompts when it has one, plain role-labelled text otherwise.
    """

    max_turns = 64
    """Guard on answers per episode (environments end episodes themselves)."""

    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        import time

        from openvirl.training.data import prompt_format

        info = kwargs.get("extra_info") or {}
        env_id = info.get("env_id", kwargs.get("env_id", DEFAULT_ENV))
        env_kwargs = info.get("env_kwargs", kwargs.get("env_kwargs", {"split": "train"}))
        rollout = getattr(self, "rollout_config", None)
        prompt_length = getattr(rollout, "prompt_length", None)
        response_length = getattr(rollout, "response_length", None)
        env = make_env_factory(env_id, dict(env_kwargs))()
        fmt = prompt_format(self.processor or self.tokenizer)
        transcript = EpisodeTranscript(env, fmt, seed=_reset_seed(kwargs, 0))
        if prompt_length is not None and len(transcript.prompt_ids) > int(prompt_length):
            env.close()
            raise ValueError(
                f"the episode's prompt has {len(transcript.prompt_ids)} tokens, more than "
                f"rollout.prompt_length={prompt_length}; raise data.max_prompt_length"
            )
        request_id = uuid4().hex
        started = time.perf_counter()
        try:
            for _ in range(self.max_turns):
                output = await self.server_manager.generate(
                    request_id=request_id,
                    prompt_ids=transcript.context_ids,
                    sampling_params=sampling_params,
                )
                token_ids = getattr(output, "token_ids", output)
                logprobs = getattr(output, "log_probs", None)
                transcript.add_answer(token_ids, logprobs)
                full = response_length is not None and (
                    len(transcript.response_ids) >= int(response_length)
                )
                if transcript.done or full:  # verl pads responses to response_length
                    break
        finally:
            env.close()
        limit = len(transcript.response_ids) if response_length is None else int(response_length)
        return _VerlAgentLoopOutput(
            prompt_ids=transcript.prompt_ids,
            response_ids=transcript.response_ids[:limit],
            response_mask=transcript.response_mask[:limit],
            response_logprobs=(
                transcript.response_logprobs[:limit] if transcript.has_logprobs else None
            ),
            reward_score=transcript.total_reward,
            num_turns=transcript.turns,
            metrics={"generate_sequences": time.perf_counter() - started},
            extra_fields={
                "success": transcript.success,
                "turn_scores": transcript.rewards,  # verl's tool agent loop keys, same shape
                "tool_rewards": [],
            },
        )


# ---------------------------------------------------------------------------- verifiers


def make_verifiers_env(
    env_id: str = DEFAULT_ENV,
    env_kwargs: dict[str, Any] | None = None,
    *,
    n_examples: int = 256,
    seed: int = 0,
    verifiers_module: Any = None,
) -> Any:
    """A verifiers 0.3 ``MultiTurnEnv`` playing openvirl episodes with sequential revision.

    verifiers 0.4 moved to tasksets and harnesses (``verifiers.v1``); there, use the
    ``openvirl-verifiers`` taskset id (`openvirl.training.verifiers_env`). This function
    raises a clear error when it finds 0.4.

    The dataset has one row per episode (``prompt`` messages, ``info.reset_seed``); the
    environment's response to each answer is the verifier's feedback turn; a ``@vf.stop``
    condition ends the rollout with the episode; the rubric's reward is the episode return.

    Parameters
    ----------
    env_id, env_kwargs
        The openvirl environment (default GeneralPoints, train split).
    n_examples, seed
        Episodes in the dataset and their seed stream (`episode_seed(seed, "train", i)`).
    verifiers_module
        The ``verifiers`` module (imported when None); tests pass a stand-in.

    Raises
    ------
    ImportError
        If verifiers is not installed (``pip install verifiers``).
    """
    if verifiers_module is None:
        try:
            import verifiers as verifiers_module
        except ImportError as exc:
            raise ImportError(
                "the verifiers adapter needs the `verifiers` package: `pip install verifiers`"
            ) from exc
    vf = verifiers_module
    try:
        multi_turn_env = vf.MultiTurnEnv  # 0.3 loads it lazily, and says which extra it lacks
    except AttributeError as exc:
        raise ImportError(
            f"verifiers {getattr(vf, '__version__', '?')} has no MultiTurnEnv ({exc}); from "
            "0.4 on use the taskset id `openvirl-verifiers` (openvirl.training.verifiers_env)"
        ) from exc
    from datasets import Dataset

    from openvirl.envs.points.dataset import episode_seed
    from openvirl.policies.base import message_text

    env_kwargs = dict(env_kwargs or {"split": "train"})
    make = make_env_factory(env_id, env_kwargs)
    probe = make()
    rows = []
    for index in range(n_examples):
        reset_seed = episode_seed(seed, "train", index)
        probe.reset(seed=reset_seed)
        messages = [
            {"role": m["role"], "content": message_text(m)} for m in probe.unwrapped.messages()
        ]
        rows.append({"prompt": messages, "info": {"reset_seed": reset_seed}})
    probe.close()

    def _verify_pending(state: dict[str, Any], messages: Sequence[Any] | None = None) -> None:
        """Step the env with every assistant answer not verified yet (order-independent).

        Answers come from `messages` (what ``env_response`` receives) or else from the
        rollout's ``trajectory``, which grows with every model call. Never from
        ``state["completion"]``: the library fills that only at cleanup, so a stop check
        reading it would miss the answer that solved the task and ask the model again.
        """
        env = state["openvirl_env"]
        if messages is None:
            messages = [m for step in state.get("trajectory") or [] for m in step["completion"]]
        answers = [m for m in messages if _role(m) == "assistant"]
        for message in answers[state["openvirl_verified"] :]:
            if state["openvirl_done"]:
                break
            _, reward, terminated, truncated, info = env.step(_content(message))
            state["openvirl_return"] += float(reward)
            state["openvirl_done"] = bool(terminated or truncated)
            state["openvirl_feedback"] = info.get("feedback", "")
            state["openvirl_next"] = _content(env.unwrapped.messages()[-1])
            state["openvirl_verified"] += 1

    class OpenvirlRevisionEnv(multi_turn_env):
        """Sequential revision on an openvirl env: feedback after each wrong answer."""

        async def setup_state(self, state: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
            env = make()
            info = state.get("info") or {}
            if isinstance(info, str):
                import json

                info = json.loads(info)
            env.reset(seed=int(info.get("reset_seed", 0)))
            state.update(
                openvirl_env=env,
                openvirl_return=0.0,
                openvirl_done=False,
                openvirl_verified=0,
                openvirl_feedback="",
                openvirl_next="",
            )
            return state

        @vf.stop
        async def episode_over(self, state: dict[str, Any], **kwargs: Any) -> bool:
            _verify_pending(state)
            return bool(state["openvirl_done"])

        async def env_response(
            self, messages: list[Any], state: dict[str, Any], **kwargs: Any
        ) -> list[dict[str, str]]:
            _verify_pending(state, messages)
            # The env's own next user turn: the verifier's feedback, or in navigation the
            # next position after a correct move.
            return [{"role": "user", "content": state["openvirl_next"]}]

    async def episode_return(state: dict[str, Any], **kwargs: Any) -> float:
        _verify_pending(state)
        return float(state["openvirl_return"])

    rubric = vf.Rubric(funcs=[episode_return])
    return OpenvirlRevisionEnv(dataset=Dataset.from_list(rows), rubric=rubric)


def _role(message: Any) -> str:
    return message.get("role", "") if isinstance(message, dict) else getattr(message, "role", "")


def _content(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else message.content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return str(content or "")


__all__ = [
    "HAVE_VERL",
    "TOOL_INSTRUCTION",
    "EpisodeTranscript",
    "OpenvirlAgentLoop",
    "TRLEnvironment",
    "TRLEnvironmentFactory",
    "make_verifiers_env",
    "trl_dataset",
    "trl_environment_factory",
]
