"""TRL's real GRPOTrainer loop with the `environment_factory` adapter (CPU, tiny model).

Only generation is scripted (`_ScriptedGRPO` answers through the tool: the expert's answer, a
wrong one, or no tool call at all); everything else is TRL's: the env pool and ``reset``
calls, the tool-calling loop, ``get_reward`` as a reward source, advantages, loss, optimizer.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("trl")

import torch
from datasets import Dataset

from openvirl.training.adapters import (
    TOOL_INSTRUCTION,
    TRLEnvironment,
    trl_dataset,
    trl_environment_factory,
)
from tiny_models import tiny_tool_causal_lm

KINDS = ("correct", "wrong", "silent")  # one of each in every GRPO group
POINTS = ("openvirl/GeneralPoints-v0", {"split": "train", "max_attempts": 2})
NAVIGATION = ("openvirl/Navigation-v0", {"split": "train", "max_attempts": 1})
WRONG = {
    "openvirl/GeneralPoints-v0": '{"cards": ["A"], "number": [1], "formula": "1+1=24"}',
    "openvirl/Navigation-v0": '{"current observation": "x", "current instruction": "x", '
    '"action": "stop()"}',
}


def _tool_call(answer: str) -> str:
    call = {"name": "submit_answer", "arguments": {"answer": answer}}
    return f"<tool_call>\n{json.dumps(call)}\n</tool_call><|im_end|>"


def _scripted_trainer(model_path, env_id, env_kwargs, tmp_path, dataset=None):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    class _ScriptedGRPO(GRPOTrainer):
        """GRPOTrainer with scripted completions; records what each rollout saw and got."""

        def _generate_single_turn(self, prompt_ids, images, multimodal_fields, *args, **kw):
            tok = self.processing_class
            texts = [tok.decode(ids) for ids in prompt_ids]
            completions = []
            for i, text in enumerate(texts):
                if "<tool_response>" in text:  # the verdict came back: end the rollout
                    completions.append("Done.<|im_end|>")
                    continue
                self.seen_prompts.append(text)
                kind = KINDS[i % len(KINDS)]
                env = self.environments[i]
                if kind == "correct":
                    completions.append(_tool_call(env._info["expert_answer"]))
                elif kind == "wrong":
                    completions.append(_tool_call(WRONG[env_id]))
                else:
                    completions.append("I give up.<|im_end|>")
            ids = [tok(c, add_special_tokens=False)["input_ids"] for c in completions]
            return ids, None

        def _generate_and_score_completions(self, inputs):
            output = super()._generate_and_score_completions(inputs)
            for i, env in enumerate(self.environments):
                self.rollouts.append((KINDS[i % len(KINDS)], env.get_reward()))
            return output

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.float32)
    args = GRPOConfig(
        output_dir=str(tmp_path / "out"),
        per_device_train_batch_size=3,
        num_generations=3,
        max_completion_length=1024,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        save_strategy="no",
        seed=0,
    )
    trainer = _ScriptedGRPO(
        model=model,
        args=args,
        processing_class=tokenizer,
        train_dataset=dataset,
        environment_factory=trl_environment_factory(env_id, env_kwargs, num_generations=3),
    )
    trainer.seen_prompts, trainer.rollouts = [], []
    return trainer


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_tool_causal_lm(tmp_path_factory.mktemp("tool-lm"))


@pytest.mark.parametrize("task", [POINTS, NAVIGATION], ids=["points", "navigation"])
@pytest.mark.parametrize("with_dataset", [False, True], ids=["no-dataset", "dataset"])
def test_grpo_trainer_learns_from_the_environment(
    model_path, tmp_path, monkeypatch, task, with_dataset
):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    env_id, env_kwargs = task
    dataset = trl_dataset(env_id, env_kwargs, n=4, seed=1) if with_dataset else None
    trainer = _scripted_trainer(model_path, env_id, env_kwargs, tmp_path, dataset)
    trainer.train()

    # Every prompt shows its task and the answer channel; groups differ, rollouts of a group agree.
    prompts = trainer.seen_prompts
    assert len(prompts) == 2 * 3  # two steps, one group of three each
    marker = "Cards:" if "Points" in env_id else "A_1:"
    assert all(marker in p and TOOL_INSTRUCTION.strip() in p for p in prompts)
    groups = [prompts[i : i + 3] for i in range(0, len(prompts), 3)]
    assert all(len(set(g)) == 1 for g in groups)
    assert len({g[0] for g in groups}) == len(groups)

    # The rewarded channel is the one the prompt asks for, and silence scores lowest.
    by_kind = {k: [r for kind, r in trainer.rollouts if kind == k] for k in KINDS}
    assert min(by_kind["correct"]) > max(by_kind["wrong"]) > max(by_kind["silent"])
    if "Points" in env_id:
        assert set(by_kind["correct"]) == {5.0}
        assert set(by_kind["wrong"]) == {-2.0 + -3.0 + -1.0}  # one wrong, one unused attempt
        assert set(by_kind["silent"]) == {2 * -3.0 + -1.0}

    # A learning signal: TRL logged the env's rewards, a non-zero loss and a gradient.
    logs = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logs) == 2
    assert all(h["rewards/TRLEnvironment/std"] > 0 for h in logs)
    assert any(h["loss"] != 0.0 for h in logs) and all(h["grad_norm"] > 0 for h in logs)


def test_rows_with_their_own_prompt_keep_it_and_replay_the_seed():
    env = TRLEnvironment(*POINTS)
    row = trl_dataset(*POINTS, n=1, seed=4)[0]
    assert env.reset(**row) is None  # TRL keeps the row's prompt, which shows the hand
    shown = row["prompt"][0]["content"]
    assert all(card in shown for card in env._info["cards"]) and shown.endswith(TOOL_INSTRUCTION)
    assert env.submit_answer(env._info["expert_answer"]) == "Correct."
    assert env.get_reward() == 5.0
    assert env.submit_answer("again").startswith("The episode is over")
    # An empty placeholder row gets the env's prompt and a task from the stream.
    prompt = env.reset(prompt=[{"role": "user", "content": ""}])
    assert "Cards:" in prompt and prompt.endswith(TOOL_INSTRUCTION)
    # So does a row of some other dataset: its prompt does not show our task.
    prompt = env.reset(prompt=[{"role": "user", "content": "Play the 24 game."}])
    assert "Cards:" in prompt and prompt.endswith(TOOL_INSTRUCTION)


def test_visual_variants_are_refused_with_a_reason():
    with pytest.raises(ValueError, match="text variants"):
        TRLEnvironment("openvirl/GeneralPoints-v0", {"visual": True})


def test_dataset_is_a_datasets_dataset():
    ds = trl_dataset(*POINTS, n=3, seed=0)
    assert isinstance(ds, Dataset) and len(ds) == 3 and len(set(ds["reset_seed"])) == 3
