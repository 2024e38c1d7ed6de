"""GRPO through TRL with env-backed rewards; the multi-turn rollout hook; reward functions."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from openvirl.envs.points import REWARDS, Outcome  # noqa: E402
from openvirl.training.data import prompt_format  # noqa: E402
from openvirl.training.grpo import (  # noqa: E402
    GRPORunConfig,
    make_env_reward,
    make_revision_rollout,
    points_reward,
    prompt_dataset,
    train_grpo,
)
from openvirl.training.logging import read_metrics  # noqa: E402
from tiny_models import tiny_causal_lm  # noqa: E402

ENV = {"rule": "id", "split": "train", "max_attempts": 2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


def test_points_reward_is_the_verifiers_reward():
    completions = [
        '{"cards": ["3", "3", "8", "8"], "number": [3, 3, 8, 8], "formula": "8/(3-8/3)=24"}',
        '{"formula": "3+3+8+8=24"}',
        "I do not know",
        [{"role": "assistant", "content": '{"formula": "8*3*(8/8)=24"}'}],
    ]
    cards = [["3", "3", "8", "8"]] * 3 + [["8", "3", "8", "8"]]
    rewards = points_reward(completions, cards=cards, target=[24] * 4)
    assert rewards == [
        REWARDS[Outcome.CORRECT],
        REWARDS[Outcome.WRONG_VALUE],
        REWARDS[Outcome.NO_ANSWER],
        REWARDS[Outcome.CORRECT],
    ]


def test_env_reward_replays_the_episode_and_matches_points_reward(model_path):
    from transformers import AutoTokenizer

    fmt = prompt_format(AutoTokenizer.from_pretrained(model_path))
    dataset = prompt_dataset("openvirl/GeneralPoints-v0", ENV, 4, 0, fmt)
    assert set(dataset.column_names) >= {"prompt", "reset_seed", "cards", "numbers", "target"}
    import gymnasium as gym

    env = gym.make("openvirl/GeneralPoints-v0", **ENV)
    answers = []
    for seed in dataset["reset_seed"]:
        _, info = env.reset(seed=seed)
        answers.append(info["expert_answer"])
    answers[1] = "no formula here"
    env_reward = make_env_reward("openvirl/GeneralPoints-v0", ENV)
    by_env = env_reward(answers, reset_seed=dataset["reset_seed"])
    by_rule = points_reward(answers, numbers=dataset["numbers"], target=dataset["target"])
    assert by_env == by_rule and by_env[0] == 5.0 and by_env[1] < 0


def test_grpo_trains_two_steps_with_env_rewards_and_logs_flops(tmp_path, model_path):
    result = train_grpo(
        GRPORunConfig(
            model=str(model_path),
            output_dir=str(tmp_path / "run"),
            env_kwargs=ENV,
            n_prompts=8,
            max_steps=2,
            num_generations=2,
            batch_size=4,
            max_completion_length=10,
            learning_rate=1e-3,
            reward="env",
        )
    )
    assert result.steps == 2
    series = read_metrics(result.output_dir / "metrics.csv")
    assert [s for s, _ in series["charts/gflops"]] == [1, 2]
    rewards = [v for _, v in series["charts/rewards/env_reward/mean"]]
    assert all(math.isfinite(r) and -4 <= r <= 5 for r in rewards)
    assert result.flops > 0 and (result.final_dir / "adapter_model.safetensors").is_file()


class _FakeTrainer:
    """What `rollout_func` reads from TRL's trainer: the accelerator and the model."""

    def __init__(self, model):
        self.model = model

        class Accelerator:
            @staticmethod
            def unwrap_model(m):
                return m

        self.accelerator = Accelerator()


def test_revision_rollout_masks_feedback_and_returns_episode_returns(model_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    fmt = prompt_format(tokenizer)
    dataset = prompt_dataset("openvirl/GeneralPoints-v0", ENV, 2, 0, fmt)
    seeds = {
        __import__("json").dumps(p, sort_keys=True): s
        for p, s in zip(dataset["prompt"], dataset["reset_seed"], strict=True)
    }
    config = GRPORunConfig(env_kwargs=ENV, max_completion_length=6, num_generations=2, batch_size=2)
    rollout = make_revision_rollout(config, fmt, seeds)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    output = rollout(list(dataset["prompt"]), _FakeTrainer(model))
    for completion, mask, logps, ret in zip(
        output["completion_ids"],
        output["env_mask"],
        output["logprobs"],
        output["episode_return"],
        strict=True,
    ):
        assert len(completion) == len(mask) == len(logps)
        # Two attempts of the model (mask 1) around one feedback turn (mask 0).
        runs = [m for i, m in enumerate(mask) if i == 0 or mask[i - 1] != m]
        assert runs == [1, 0, 1]
        feedback = tokenizer.decode([t for t, m in zip(completion, mask, strict=True) if not m])
        assert "You failed this trial because" in feedback
        assert all(lp <= 0 for lp, m in zip(logps, mask, strict=True) if m)
        assert ret <= -2  # two wrong attempts of a random model


def test_kl_reference_is_the_init_adapter_not_the_base_model(tmp_path, model_path):
    """With LoRA, an Init adapter and beta > 0, TRL scores the reference with a frozen copy of
    the Init adapter (``ref``): after training it still equals the Init, so the KL pulls
    toward the Init policy, not toward the bare base model."""
    from safetensors.torch import load_file
    from transformers import TrainerCallback

    from tiny_models import tiny_lora_adapter

    adapter = tiny_lora_adapter(model_path, tmp_path / "init")
    seen: dict[str, dict] = {}

    class Grab(TrainerCallback):
        def on_train_end(self, args, state, control, model=None, **kw):
            for name, parameter in model.named_parameters():
                for which in ("ref", "default"):
                    if f".{which}." in name:
                        seen.setdefault(which, {})[name.replace(f".{which}.", ".")] = (
                            parameter.detach().clone()
                        )

    train_grpo(
        GRPORunConfig(
            model=str(model_path),
            init_adapter=str(adapter),
            output_dir=str(tmp_path / "run"),
            env_kwargs=ENV,
            n_prompts=4,
            max_steps=1,
            num_generations=2,
            batch_size=2,
            max_completion_length=4,
            learning_rate=1e-2,
            beta=0.1,
            reward="points",
        ),
        callbacks=[Grab()],
    )
    init = load_file(str(adapter / "adapter_model.safetensors"))
    assert init.keys() == seen["ref"].keys()
    for key, value in init.items():
        assert torch.equal(seen["ref"][key], value), key
    # ... and it is not the bare base model (whose LoRA B would be zero)
    assert any(v.abs().sum() > 0 for k, v in seen["ref"].items() if "lora_B" in k)
    assert seen["default"].keys() == init.keys()  # the trained adapter is a separate one
