"""openvirl environments for the verifiers library, version 0.4 and later (``verifiers.v1``).

verifiers 0.4 replaced ``MultiTurnEnv`` with tasksets, environments and harnesses that are
found by id: ``vf eval openvirl-verifiers`` (or ``--env.taskset.id openvirl-verifiers``)
imports the top-level module `openvirl_verifiers`, which exports the three classes below.

- `OpenvirlTaskset` yields one task per episode: the env's first prompt, and in ``info``
  the env id, its options and the ``reset_seed`` that replays it.
- `OpenvirlEnv.run` plays the episode with sequential revision as the library's own
  TextArena env does: it takes the model's reply with ``interaction.turn()``, verifies it
  with the openvirl env, and answers with the env's next user message (the verifier's
  feedback, or the next position in navigation) until the env ends the episode; a correct
  answer ends it at once. Every reply is verified, so model calls equal verified attempts.
  The reward (``episode_return``) is the env's return, recorded on the trace with
  ``success`` and ``attempts`` metrics.
- `OpenvirlChatHarness` is the default harness: a plain chat loop that runs in-process and
  sends every model call through the rollout's interception endpoint, as verifiers'
  harness contract allows. The library's own ``null`` harness would do the same job, but
  it launches a PEP 723 script through ``uv``, which needs the network the first time.

verifiers 0.3 (``vf.MultiTurnEnv``) is served by `openvirl.training.adapters.make_verifiers_env`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import verifiers.v1 as vf
from pydantic import Field

from openvirl.training.data import make_env_factory

DEFAULT_ENV = "openvirl/GeneralPoints-v0"


def _text(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if p.get("type") == "text")
    return str(content or "")


# ---------------------------------------------------------------------------- taskset


class OpenvirlTasksetConfig(vf.TasksetConfig):
    """Which openvirl environment, with which options, and how many episodes."""

    env: str = DEFAULT_ENV
    """The gymnasium id of the openvirl environment (GeneralPoints or Navigation)."""
    env_kwargs: dict[str, Any] = Field(default_factory=lambda: {"split": "train"})
    """Options for ``gym.make`` (text variants: ``visual`` must stay false)."""
    n_tasks: int = Field(256, ge=1)
    """Episodes in the taskset."""
    seed: int = 0
    """Seed stream of the episodes (`openvirl.envs.points.dataset.episode_seed`)."""


class OpenvirlData(vf.TaskData):
    info: dict[str, Any]
    """``env``, ``env_kwargs`` and ``reset_seed``: what replays the episode."""


class OpenvirlTask(vf.Task[OpenvirlData, vf.State, vf.TaskConfig]):
    """One openvirl episode."""


class OpenvirlTaskset(vf.Taskset[OpenvirlTask, OpenvirlTasksetConfig]):
    """Episodes of an openvirl environment, each prompt the env's first user message."""

    def load(self) -> Iterator[OpenvirlTask]:
        from openvirl.envs.points.dataset import episode_seed

        cfg = self.config
        if cfg.env_kwargs.get("visual"):
            raise ValueError("the verifiers taskset serves text variants (visual=False)")
        env = make_env_factory(cfg.env, dict(cfg.env_kwargs))()
        try:
            for index in range(cfg.n_tasks):
                reset_seed = episode_seed(cfg.seed, "train", index)
                obs, _ = env.reset(seed=reset_seed)
                yield OpenvirlTask(
                    OpenvirlData(
                        name=f"{cfg.env}#{index}",
                        prompt=str(obs["prompt"]),
                        info={
                            "env": cfg.env,
                            "env_kwargs": dict(cfg.env_kwargs),
                            "reset_seed": reset_seed,
                        },
                    ),
                    cfg.task,
                )
        finally:
            env.close()


# ---------------------------------------------------------------------------- env


class OpenvirlEnvConfig(vf.EnvConfig):
    player: vf.AgentConfig = vf.AgentConfig(runtime=vf.SubprocessConfig())
    """The model under training or evaluation. Its runtime is a local subprocess one (the
    chat harness runs in-process and executes nothing), so no sandbox or tunnel is needed."""


class OpenvirlEnv(vf.Env[OpenvirlEnvConfig]):
    """Sequential revision: verify each reply, feed back the env's next message."""

    async def run(self, task: Any, agents: Any) -> None:
        info = task.data.info
        env = make_env_factory(info["env"], dict(info["env_kwargs"]))()
        env.reset(seed=int(info["reset_seed"]))
        total, attempts, success = 0.0, 0, False
        try:
            async with agents.player.interaction(task) as interaction:
                segment = await interaction.turn()  # the task's prompt opens the exchange
                while not segment.terminated:
                    _, reward, terminated, truncated, step_info = env.step(segment.last_reply)
                    total += float(reward)
                    attempts += 1
                    if terminated or truncated:
                        success = step_info.get("episode_outcome") == "correct" or bool(
                            step_info.get("success")
                        )
                        break
                    last = env.unwrapped.messages()[-1]
                    segment = await interaction.turn(_text(last["content"]))
        finally:
            env.close()
        trace = interaction.trace
        trace.record_reward("episode_return", total, 1.0)
        trace.record_metric("attempts", float(attempts))
        trace.record_metric("success", float(success))


# ---------------------------------------------------------------------------- harness


class OpenvirlChatHarnessConfig(vf.HarnessConfig):
    request_timeout_s: float = Field(600.0, gt=0)
    """Seconds one model call may take."""


class OpenvirlChatHarness(vf.Harness[OpenvirlChatHarnessConfig]):
    """One chat completion per segment, in-process, through the interception endpoint."""

    APPENDS_SYSTEM_PROMPT = True
    SUPPORTS_RESUME = True  # each segment replays the conversation (a stateless chat)
    EXECUTES_CODE = False
    NEEDS_CONTAINER = False

    async def launch(
        self,
        ctx: Any,
        trace: Any,
        runtime: Any,
        endpoint: str,
        secret: str,
        mcp_urls: dict[str, str],
        data: Any,
        tool_interception_url: str | None = None,
    ) -> Any:
        import httpx
        from verifiers.v1.clients.base import join_url
        from verifiers.v1.dialects.chat import message_to_wire

        system, prompt = self.resolve_prompt(data)
        messages: list[Any] = [{"role": "system", "content": system}] if system else []
        if isinstance(prompt, str):
            messages.append({"role": "user", "content": prompt})
        elif prompt:
            messages += [message_to_wire(m) for m in prompt]
        body = {"model": ctx.model, "messages": messages}
        async with httpx.AsyncClient(timeout=self.config.request_timeout_s) as client:
            reply = await client.post(
                join_url(endpoint, "/chat/completions"),
                headers={"Authorization": f"Bearer {secret}"},
                json=body,
            )
        if reply.is_success:
            return vf.ProgramResult(exit_code=0, stdout=reply.text, stderr="")
        return vf.ProgramResult(
            exit_code=1,
            stdout="",
            stderr=f"model call failed ({reply.status_code}): " + json.dumps(reply.text)[:2000],
        )


__all__ = [
    "OpenvirlChatHarness",
    "OpenvirlChatHarnessConfig",
    "OpenvirlEnv",
    "OpenvirlEnvConfig",
    "OpenvirlTask",
    "OpenvirlTaskset",
    "OpenvirlTasksetConfig",
]
