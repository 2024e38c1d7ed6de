"""`OpenvirlAgentLoop` against the real verl classes, where verl imports (it needs ray, hydra,
omegaconf and tensordict; GPU is not needed for these checks).

The loop is built exactly as verl's ``AgentLoopWorker`` builds agent loops (``hydra``
instantiation of the registry entry, with verl's wrappers and dataset class), runs against a
server manager with ``LLMServerClient.generate``'s signature that returns verl's real
``TokenOutput``, and must return verl's real ``AgentLoopOutput`` whose ``as_dict`` gives the
tensors the trainer consumes. Not checked here: ray workers, the vLLM/SGLang servers, and
the worker's padding and reward post-processing (they need GPUs and a cluster).
"""

from __future__ import annotations

import asyncio

import gymnasium as gym
import pytest

agent_loop = pytest.importorskip("verl.experimental.agent_loop.agent_loop")

import openvirl  # noqa: E402, F401
from openvirl.training import adapters  # noqa: E402
from tiny_models import tiny_tokenizer  # noqa: E402

ENV = {"rule": "id", "split": "train", "max_attempts": 3}
WRONG = '{"cards": ["A"], "number": [1], "formula": "1+1=24"}'


class _ServerManager:
    """``LLMServerClient.generate``'s signature, answering scripted texts as TokenOutput."""

    def __init__(self, tokenizer, answers, logprobs=True):
        self.tokenizer, self.answers, self.logprobs, self.calls = (
            tokenizer,
            list(answers),
            logprobs,
            0,
        )

    async def generate(
        self,
        request_id,
        *,
        prompt_ids,
        sampling_params,
        image_data=None,
        video_data=None,
        audio_data=None,
        mm_processor_kwargs=None,
        **kwargs,
    ):
        from verl.workers.rollout.replica import TokenOutput

        self.calls += 1
        ids = self.tokenizer(self.answers.pop(0), add_special_tokens=False)["input_ids"]
        ids = [*ids, self.tokenizer.eos_token_id]
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids) if self.logprobs else None)


def _loop(server, tokenizer, response_length=2048):
    import hydra
    from omegaconf import OmegaConf
    from verl.utils.dataset.rl_dataset import RLHFDataset

    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {"prompt_length": 2048, "response_length": response_length}
            },
            "data": {},
        }
    )
    return hydra.utils.instantiate(
        config=agent_loop._agent_loop_registry["openvirl_revision"],
        trainer_config=agent_loop.DictConfigWrap(config=config),
        server_manager=server,
        tokenizer=tokenizer,
        processor=None,
        hf_model_type=None,
        dataset_cls=RLHFDataset,
        data_config=agent_loop.DictConfigWrap(config.data),
        tools=agent_loop.ToolListWrap([]),
    )


def _expert(seed):
    env = gym.make("openvirl/GeneralPoints-v0", **ENV)
    return env.reset(seed=seed)[1]["expert_answer"]


def _kwargs(seed):
    extra = {"reset_seed": seed, "env_id": "openvirl/GeneralPoints-v0", "env_kwargs": ENV}
    return {"extra_info": extra, "raw_prompt": [], "index": 0, "priority": 0}


def test_registered_and_built_like_verls_worker():
    assert adapters.HAVE_VERL
    assert issubclass(adapters.OpenvirlAgentLoop, agent_loop.AgentLoopBase)
    target = agent_loop._agent_loop_registry["openvirl_revision"]["_target_"]
    assert target == "openvirl.training.adapters.OpenvirlAgentLoop"


def test_episode_output_is_verls_agent_loop_output():
    tokenizer = tiny_tokenizer()
    server = _ServerManager(tokenizer, [WRONG, _expert(11)])
    loop = _loop(server, tokenizer)
    output = asyncio.run(loop.run({"temperature": 1.0}, **_kwargs(11)))
    assert isinstance(output, agent_loop.AgentLoopOutput)
    assert server.calls == 2 and output.reward_score == pytest.approx(-2.0 + 5.0)
    assert output.extra_fields["success"] is True
    tensors = output.as_dict()  # what the worker hands the trainer
    assert tensors["responses"].shape == tensors["response_mask"].shape
    assert tensors["rollout_log_probs"].shape == tensors["responses"].shape
    assert tensors["rm_scores"][-1] == pytest.approx(3.0)
    mask = tensors["response_mask"].tolist()
    assert [m for i, m in enumerate(mask) if i == 0 or mask[i - 1] != m] == [1, 0, 1]


def test_response_length_caps_the_episode_and_missing_logprobs_stay_missing():
    tokenizer = tiny_tokenizer()
    server = _ServerManager(tokenizer, [WRONG] * 3, logprobs=False)
    loop = _loop(server, tokenizer, response_length=40)
    output = asyncio.run(loop.run({"temperature": 1.0}, **_kwargs(5)))
    assert server.calls == 1 and len(output.response_ids) == 40 == len(output.response_mask)
    assert output.response_logprobs is None
