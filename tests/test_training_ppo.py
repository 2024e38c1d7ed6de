"""Multi-turn PPO: GAE, answer spans, value head, scoring = sampling, updates, resume, kill -9."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")

from safetensors.torch import load_file  # noqa: E402

from openvirl.policies.base import text_message  # noqa: E402
from openvirl.policies.hf import HFPolicy  # noqa: E402
from openvirl.training.checkpoint import latest_checkpoint  # noqa: E402
from openvirl.training.logging import read_metrics  # noqa: E402
from openvirl.training.ppo import (  # noqa: E402
    PPOConfig,
    Transition,
    ValueHead,
    collate,
    compute_gae,
    locate_answer_start,
    score,
    token_weights,
    train_ppo,
)
from tiny_models import tiny_causal_lm  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny_causal_lm(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def policy(model_path):
    return HFPolicy.from_pretrained(model_path)


def _config(model_path, out, **overrides):
    options = dict(
        model=str(model_path),
        output_dir=str(out),
        env_kwargs={"rule": "id", "split": "train", "max_attempts": 2},
        num_updates=2,
        episodes_per_update=4,
        num_envs=4,
        max_new_tokens=12,
        temperature=1.0,
        learning_rate=1e-3,
        update_epochs=2,
        minibatch_size=2,
        grad_accum_steps=2,
        keep_last=None,
    )
    options.update(overrides)
    return PPOConfig(**options)


def test_gae_matches_hand_computation_and_stops_at_episode_ends():
    rewards, values = [-1.0, 5.0, -1.0, -1.0], [0.5, 1.0, 0.2, 0.3]
    dones = [False, True, False, True]  # two episodes of two steps each
    advantages, returns = compute_gae(rewards, values, dones, gamma=0.9, lam=0.95)
    a3 = -1 - 0.3
    a2 = (-1 + 0.9 * 0.3 - 0.2) + 0.9 * 0.95 * a3
    a1 = 5 - 1.0  # terminal: nothing bootstrapped from the next episode's 0.2
    a0 = (-1 + 0.9 * 1.0 - 0.5) + 0.9 * 0.95 * a1
    np.testing.assert_allclose(advantages, [a0, a1, a2, a3])
    np.testing.assert_allclose(returns, advantages + np.array(values))
    with pytest.raises(ValueError, match="finished episode"):
        compute_gae([1.0], [0.0], [False], 0.9, 0.95)


def test_answer_span_is_found_by_text_on_a_real_tokenizer(policy):
    tokenizer = policy.tokenizer
    text = '{"cards": ["K", "3"], "number": [10, 3], "formula": "10*3-6=24"}'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = locate_answer_start(ids, tokenizer, "formula")
    assert tokenizer.decode(ids[start:]).lstrip().startswith('"formula"')
    assert '"formula"' not in tokenizer.decode(ids[:start])
    assert locate_answer_start(ids, tokenizer, "action") is None
    weights = token_weights(len(ids), start, 0.5)
    assert weights[:start] == [0.5] * start and weights[start:] == [1.0] * (len(ids) - start)
    assert token_weights(3, None, 0.5) == [1.0, 1.0, 1.0]


@pytest.mark.slow
def test_answer_span_on_the_embedded_gemma_tokenizer():
    from openvirl.policies import embedded

    if not embedded.is_prepared():
        pytest.skip("embedded Gemma-3-270M not prepared on this machine")
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(embedded.embedded_model_dir())
    text = '{"cards": ["Q", "2"], "number": [10, 2], "formula": "10+2=12"}'
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    start = locate_answer_start(ids, tokenizer, "formula")
    assert tokenizer.decode(ids[start:]).lstrip().startswith('"formula"')


def _transitions(policy, prompts, completions):
    out = []
    for i, (prompt, completion) in enumerate(zip(prompts, completions, strict=True)):
        batch = policy.encode([{"messages": [text_message("user", prompt)]}])
        ids = policy.tokenizer(completion, add_special_tokens=False)["input_ids"]
        out.append(
            Transition(
                prompt_ids=batch["input_ids"][0].tolist(),
                completion_ids=ids,
                weights=[1.0] * len(ids),
                extras={},
                reward=0.0,
                done=True,
                success=False,
                outcome="",
                episode=i,
            )
        )
    return out


def test_value_head_reads_the_last_prompt_token(policy):
    head = ValueHead(32, [16])
    prompts = ["Cards: 1 2 3 4", "Cards: 1 2 3 4", "The quick brown fox"]
    transitions = _transitions(policy, prompts, ["{1+2", "ab", "lazy dog jumps"])
    batch = collate(transitions, policy.tokenizer.pad_token_id, "cpu")
    with torch.no_grad():
        values = score(policy.model, head, batch, 1.0)["values"]
        # The same prompt gives the same value whatever the answer (V(state), not Q).
        assert torch.allclose(values[0], values[1], atol=1e-6)
        alone = policy.model(
            torch.tensor([transitions[2].prompt_ids]), output_hidden_states=True
        ).hidden_states[-1][0, -1]
        assert torch.allclose(values[2], head(alone), atol=1e-5)


def test_scoring_equals_the_sampling_distribution(policy):
    """Old log-probs come from the distribution the answer was sampled from (same T)."""
    requests = [{"messages": [text_message("user", p)]} for p in ["Cards: 1 2", "The quick fox"]]
    batch = policy.encode(requests)
    torch.manual_seed(0)
    out = policy.model.generate(
        **batch,
        do_sample=True,
        temperature=0.7,
        top_k=0,
        top_p=1.0,
        max_new_tokens=6,
        output_logits=True,
        return_dict_in_generate=True,
        pad_token_id=policy.tokenizer.pad_token_id,
    )
    P = batch["input_ids"].shape[1]
    sampled = torch.stack([torch.log_softmax(x.float() / 0.7, -1) for x in out.logits], 1)
    sampled = sampled.gather(-1, out.sequences[:, P:].unsqueeze(-1)).squeeze(-1)
    transitions = []
    for row in range(2):
        ids = out.sequences[row, P:].tolist()
        mask = batch["attention_mask"][row].bool()
        transitions.append(
            Transition(
                batch["input_ids"][row][mask].tolist(),
                ids,
                [1.0] * len(ids),
                {},
                0.0,
                True,
                False,
                "",
                row,
            )
        )
    with torch.no_grad():
        scored = score(policy.model, None, collate(transitions, 0, "cpu"), 0.7)
    torch.testing.assert_close(scored["token_logprobs"], sampled, atol=1e-4, rtol=1e-4)


def test_one_update_moves_weights_logs_finite_losses_with_kl_and_entropy(tmp_path, model_path):
    result = train_ppo(
        _config(
            model_path,
            tmp_path / "run",
            num_updates=1,
            kl_coef=0.1,
            ent_coef=0.01,
            value_learning_rate=1e-2,
        )
    )
    row = result.history[0]
    for name in (
        "losses/policy_loss",
        "losses/value_loss",
        "losses/entropy",
        "losses/kl_ref",
        "losses/approx_kl",
        "losses/clipfrac",
        "losses/grad_norm",
    ):
        assert np.isfinite(row[name]), name
    assert row["losses/entropy"] > 0
    assert row["charts/episode_length"] == 2.0  # wrong first answers got a revision turn
    adapter = load_file(str(result.final_dir / "adapter_model.safetensors"))
    assert any(v.abs().sum() > 0 for k, v in adapter.items() if "lora_B" in k)  # B starts at 0
    assert result.flops > 0 and row["charts/gflops"] == pytest.approx(result.flops / 1e9)
    series = read_metrics(result.output_dir / "metrics.csv")
    assert series["losses/value_loss"][0][0] == 1


def _final_weights(result):
    weights = load_file(str(result.final_dir / "adapter_model.safetensors"))
    weights.update({f"v.{k}": v for k, v in torch.load(result.final_dir / "value_head.pt").items()})
    return weights


def test_resume_reproduces_an_uninterrupted_run(tmp_path, model_path):
    full = train_ppo(_config(model_path, tmp_path / "full", lr_max_updates=2))
    train_ppo(_config(model_path, tmp_path / "cut", num_updates=1, lr_max_updates=2))
    resumed = train_ppo(_config(model_path, tmp_path / "cut", resume=True, lr_max_updates=2))
    a, b = _final_weights(full), _final_weights(resumed)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert resumed.flops == full.flops
    assert [h["losses/value_loss"] for h in resumed.history] == [
        full.history[1]["losses/value_loss"]
    ]
    # A checkpoint without optimizer state (what a DeepSpeed ZeRO run writes: its optimizer
    # is partitioned in DeepSpeed's format) resumes with a warning and fresh Adam moments.
    step = latest_checkpoint(tmp_path / "cut" / "checkpoints")
    assert step.name == "step-00000002"
    assert json.loads((step / "state.json").read_text())["optimizer_saved"] is True
    shutil.rmtree(step)  # back to the cut at update 1 (the tests keep every checkpoint)
    (step.parent / "step-00000001" / "optimizer.pt").unlink()
    with pytest.warns(UserWarning, match="without optimizer state"):
        bare = train_ppo(_config(model_path, tmp_path / "cut", resume=True, lr_max_updates=2))
    assert bare.updates == 2 and bare.flops == full.flops
    assert len(bare.history) == 1 and np.isfinite(bare.history[0]["losses/value_loss"])


@pytest.mark.slow
def test_kill_9_then_resume_from_the_command_line(tmp_path, model_path):
    out = tmp_path / "killed"
    args = [
        sys.executable,
        "-m",
        "openvirl.cli",
        "train",
        "ppo",
        "--out",
        str(out),
        f"model={model_path}",
        "num_updates=4",
        "episodes_per_update=8",
        "num_envs=4",
        "max_new_tokens=16",
        "temperature=1.0",
        "learning_rate=1e-3",
        "keep_last=null",
        "env_kwargs={rule: id, split: train, max_attempts: 2}",
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while latest_checkpoint(out / "checkpoints") is None and time.time() < deadline:
        assert process.poll() is None, process.stderr.read().decode()[-2000:]
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "final").exists(), "the run finished before it could be killed"
    killed_at = latest_checkpoint(out / "checkpoints").name
    subprocess.run([*args, "--resume"], env=env, check=True, capture_output=True)
    reference = train_ppo(
        _config(
            model_path,
            tmp_path / "reference",
            num_updates=4,
            episodes_per_update=8,
            max_new_tokens=16,
            update_epochs=4,
            minibatch_size=4,
            grad_accum_steps=4,
        )
    )
    a = load_file(str(out / "final" / "adapter_model.safetensors"))
    b = load_file(str(reference.final_dir / "adapter_model.safetensors"))
    assert killed_at != "step-00000004"
    for key in a:
        assert torch.equal(a[key], b[key]), key
    steps = [s for s, _ in read_metrics(out / "metrics.csv")["losses/value_loss"]]
    assert steps == [1, 2, 3, 4]  # replayed updates replaced, not duplicated


@pytest.mark.parametrize(
    "kind", ["causal", "vlm", "vlm-2-attempts", "nav-vlm", "mllama-2-attempts"]
)
def test_first_ratio_is_exactly_one_text_and_images(tmp_path, model_path, kind):
    """Before the first optimizer step the new log-probs equal the old ones (no dropout, same
    temperature), for a causal LM on GP-L and a LLaVA on GP-VL card images (one attempt, and
    two: a wrong answer re-sends the conversation) and on V-IRL-VL street-view grids, and for
    a Llama-3.2-Vision (Mllama, the paper's model: tiles, cross-attention mask) on GP-VL with
    a retry: every transition scores with its own images."""
    env = {"rule": "id", "split": "train", "max_attempts": 1}
    env_id = "openvirl/GeneralPoints-v0"
    path = model_path
    if kind.startswith("mllama"):
        from tiny_models import tiny_mllama

        path = tiny_mllama(tmp_path / "models")
        env.update(visual=True, suits="black", image_size=256)
    if kind.startswith("vlm") or kind == "nav-vlm":
        from tiny_models import tiny_llava

        path = tiny_llava(tmp_path / "models")
        env.update(visual=True, suits="black", image_size=256)
    if kind.endswith("2-attempts"):
        env["max_attempts"] = 2
    if kind == "nav-vlm":
        env_id = "openvirl/Navigation-v0"
        env = {"preset": "train", "visual": True, "image_size": 64, "max_attempts": 2}
    result = train_ppo(
        _config(
            path,
            tmp_path / kind,
            env_id=env_id,
            num_updates=1,
            episodes_per_update=2,
            num_envs=2,
            minibatch_size=2 * env["max_attempts"],  # one minibatch: one step, after the ratios
            grad_accum_steps=1,
            update_epochs=1,
            env_kwargs=env,
        )
    )
    row = result.history[0]
    assert row["losses/old_approx_kl"] == 0.0 and row["losses/clipfrac"] == 0.0
    assert np.isfinite(row["losses/value_loss"])
    if kind in ("vlm-2-attempts", "nav-vlm", "mllama-2-attempts"):  # all answers are wrong:
        assert row["charts/episode_length"] == 2.0, row  # the retry re-sent the conversation


def test_each_transition_carries_its_own_images(tmp_path):
    """A batch whose prompts hold 2 and 1 images: `split_extras` hands each row exactly its
    images' pixels (a per-row slice would give row 0 one image and row 1 the second image of
    row 0), and `collate` puts them back in the order the model pairs image tokens with."""
    from PIL import Image

    from openvirl.training.ppo import split_extras
    from tiny_models import tiny_llava

    vlm = HFPolicy.from_pretrained(tiny_llava(tmp_path / "models"))
    images = [Image.new("RGB", (16, 16), color) for color in ("red", "green", "blue")]

    def turn(*pictures):
        content = [{"type": "image", "image": p} for p in pictures]
        return {"role": "user", "content": [*content, {"type": "text", "text": "Cards?"}]}

    requests = [
        {"messages": [turn(images[0]), text_message("assistant", "x"), turn(images[1])]},
        {"messages": [turn(images[2])]},
    ]
    batch = vlm.encode(requests)
    assert batch["pixel_values"].shape[0] == 3
    rows = split_extras(batch, [2, 1], list(batch["attention_mask"]))
    assert [r["pixel_values"].shape[0] for r in rows] == [2, 1]
    assert torch.equal(rows[0]["pixel_values"], batch["pixel_values"][:2].cpu())
    assert torch.equal(rows[1]["pixel_values"], batch["pixel_values"][2:].cpu())
    image_token = vlm.model.config.image_token_index
    transitions = []
    for row, extras in enumerate(rows):
        prompt = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        n_images = prompt.count(image_token) // 4  # 4 image tokens per image (tiny_llava)
        assert n_images == extras["pixel_values"].shape[0]
        transitions.append(Transition(prompt, [100], [1.0], extras, 0.0, True, False, "", row))
    collated = collate(transitions, vlm.tokenizer.pad_token_id, "cpu")
    assert torch.equal(collated["pixel_values"], batch["pixel_values"].cpu())
    with torch.no_grad():  # the model accepts the collated batch (image tokens == images)
        vlm.model(
            input_ids=collated["input_ids"],
            attention_mask=collated["attention_mask"],
            pixel_values=collated["pixel_values"],
        )
    with pytest.raises(ValueError, match="cannot assign"):
        split_extras({"pixel_values": torch.zeros(5, 3)}, [2, 1], [None, None])


def test_mllama_scoring_matches_generation(tmp_path):
    """Llama 3.2 Vision: rows with 2 and 1 images (of different tile counts) and different
    prompt lengths are generated in one batch, split into transitions and collated into a
    fresh [left-padded prompt | completion] batch of another width; scoring it gives the
    log-probs of generating each row on its own (within 1e-4). That needs each row's own
    tiles, aspect ratios and cross-attention mask, re-padded, the mask extended over the
    completion as generation extends it, and no zero-padding image slots (tokens before the
    first image attend to every slot): rollouts and scoring run each image count apart."""
    from openvirl.training.ppo import generate_by_image_count, split_extras
    from tiny_models import image_turn as turn
    from tiny_models import three_shapes, tiny_mllama

    vlm = HFPolicy.from_pretrained(tiny_mllama(tmp_path / "models"))
    wide, square, tall = three_shapes()

    requests = [
        {"messages": [turn(wide), text_message("assistant", "x"), turn(square)]},
        {"messages": [turn(tall)]},
    ]
    options = dict(max_new_tokens=6, min_new_tokens=6, do_sample=False)
    options.update(pad_token_id=vlm.tokenizer.pad_token_id)

    def alone(request):
        single = vlm.encode([request])
        with torch.no_grad():
            out = vlm.model.generate(
                **single, **options, output_logits=True, return_dict_in_generate=True
            )
        tokens = out.sequences[0, single["input_ids"].shape[1] :]
        logits = torch.stack([step[0].float() for step in out.logits])
        return tokens, torch.log_softmax(logits, -1).gather(-1, tokens[:, None])[:, 0]

    expected = [alone(r) for r in requests]
    batch = vlm.encode(requests)
    assert batch["cross_attention_mask"].shape[:3] == (2, batch["input_ids"].shape[1], 2)
    with torch.no_grad():
        plain = vlm.model.generate(
            **batch, **options, output_logits=True, return_dict_in_generate=True
        )
        generated = generate_by_image_count(
            vlm.model, batch, [0, 1], lambda seeds: options, vlm.tokenizer.pad_token_id
        )
    # plain batched generation gives row 1 a zero-padding image slot, and that shifts it
    padded = torch.log_softmax(plain.logits[0][1].float(), -1)[expected[1][0][0]]
    assert abs(float(padded) - float(expected[1][1][0])) > 1e-4
    P0 = batch["input_ids"].shape[1]
    completions = generated[:, P0:]
    for row in range(2):
        assert completions[row].tolist() == expected[row][0].tolist()

    rows = split_extras(batch, [2, 1], list(batch["attention_mask"]))
    assert rows[1]["pixel_values"].shape[1] == 1  # row 1's padding image is dropped
    assert rows[1]["cross_attention_mask"].shape == (int(batch["attention_mask"][1].sum()), 1, 2)
    transitions = []
    for row, extras in enumerate(rows):
        prompt = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
        completion = completions[row].tolist()
        transitions.append(
            Transition(prompt, completion, [1.0] * 6, extras, 0.0, True, False, "", row)
        )
    # reversed, and padded to another width: nothing may depend on the rollout batch
    collated = collate(transitions[::-1], vlm.tokenizer.pad_token_id, "cpu")
    P = int(collated["prompt_length"])
    assert collated["cross_attention_mask"].shape == (2, P + 6, 2, 2)
    assert torch.equal(collated["cross_attention_mask"][0, P:, 0], torch.tensor([[1, 1]] * 6))
    assert collated["pixel_values"].shape[:2] == (2, 2)
    with torch.no_grad():
        scored = score(vlm.model, ValueHead(32, [8]), collated, 1.0)
    assert scored["values"].shape == (2,)
    for row in range(2):
        got = scored["token_logprobs"][1 - row]
        assert torch.allclose(got, expected[row][1], atol=1e-4), (row, got, expected[row][1])
    # a mask that is not extended over the completion scores differently (the check bites)
    cut = dict(collated)
    cut["cross_attention_mask"] = collated["cross_attention_mask"].clone()
    cut["cross_attention_mask"][:, P:] = 0
    with torch.no_grad():
        wrong = score(vlm.model, None, cut, 1.0)["token_logprobs"]
    assert not torch.allclose(wrong[1], expected[0][1], atol=1e-4)


def test_value_loss_reaches_the_model_only_when_it_shares_the_trunk(policy):
    from openvirl.training.ppo import Agent

    transitions = _transitions(policy, ["Cards: 1 2 3 4"], ["{1+2"])
    batch = collate(transitions, policy.tokenizer.pad_token_id, "cpu")
    for shares in (False, True):
        agent = Agent(policy.model, ValueHead(32, [8]), value_shares_trunk=shares)
        policy.model.zero_grad(set_to_none=True)
        agent(batch, 1.0)["values"].sum().backward()
        model_grads = [p.grad for p in policy.model.parameters() if p.grad is not None]
        assert bool(model_grads) == shares
        assert agent.value_head.mlp[0].weight.grad is not None
    policy.model.zero_grad(set_to_none=True)


def test_first_epoch_ratio_is_one_in_bf16_and_the_kl_reference_is_the_init(tmp_path, model_path):
    """bf16, minibatches of 3 with different lengths: old log-probs are scored in the first
    epoch's minibatches (same padding), so every first-epoch ratio is exactly 1 (lr 0 keeps the
    weights still); the KL reference is base + Init adapter, so its KL is exactly 0 too."""
    from tiny_models import tiny_lora_adapter

    adapter = tiny_lora_adapter(model_path, tmp_path / "init")
    result = train_ppo(
        _config(
            model_path,
            tmp_path / "bf16",
            dtype="bfloat16",
            init_adapter=str(adapter),
            kl_coef=0.1,
            learning_rate=0.0,
            num_updates=1,
            episodes_per_update=6,
            num_envs=6,
            update_epochs=1,
            minibatch_size=3,
            grad_accum_steps=2,
        )
    )
    row = result.history[0]
    assert row["losses/old_approx_kl"] == 0.0 and row["losses/approx_kl"] == 0.0
    assert row["losses/clipfrac"] == 0.0
    assert row["losses/kl_ref"] == 0.0  # against the bare base model it would not be
    saved = load_file(str(result.final_dir / "adapter_model.safetensors"))
    assert not (result.final_dir / "reference").exists()  # the frozen copy is not saved
    init = load_file(str(adapter / "adapter_model.safetensors"))
    assert saved.keys() == init.keys()


def test_optimizer_steps_per_update_follow_the_accumulation_arithmetic(tmp_path, model_path):
    """One optimizer step per `grad_accum_steps` minibatches: epochs x ceil(buffer / (minibatch
    x accumulation)) steps, the last one short, counted on the real torch optimizer."""
    import math

    from torch.optim.optimizer import register_optimizer_step_post_hook

    steps = []
    handle = register_optimizer_step_post_hook(lambda *args: steps.append(1))
    try:
        result = train_ppo(
            _config(
                model_path,
                tmp_path / "accum",
                num_updates=1,
                update_epochs=2,
                minibatch_size=2,
                grad_accum_steps=3,
            )
        )
    finally:
        handle.remove()
    buffer = round(result.history[0]["charts/episode_length"] * 4)
    assert buffer > 4  # some episodes took a revision turn
    assert len(steps) == 2 * math.ceil(buffer / (2 * 3))


@pytest.mark.parametrize("world", [1, 2, 3, 8])
@pytest.mark.parametrize(("n", "minibatch", "accum"), [(1, 1, 1), (7, 2, 3), (20, 1, 8), (9, 4, 2)])
def test_epoch_plan_covers_the_buffer_once_with_equal_passes_per_process(
    n, minibatch, accum, world
):
    from openvirl.training.ppo import epoch_order, local_grad_accum_steps, plan_epoch

    config = _config("unused", "unused", minibatch_size=minibatch, grad_accum_steps=accum)
    order = epoch_order(n, 0, 1, 0)
    plans = [plan_epoch(order, config, world, rank) for rank in range(world)]
    slots = local_grad_accum_steps(config, world)
    seen = []
    for plan in plans:
        assert len(plan) == len(plans[0]) == -(-n // (minibatch * accum))  # same steps
        for (size, minibatches), (size0, _) in zip(plan, plans[0], strict=True):
            assert len(minibatches) == slots and size == size0  # same passes per step
            seen += [i for mb in minibatches if mb is not None for i in mb]
    assert sorted(seen) == list(range(n))


def test_deepspeed_config_takes_accumulation_and_batch_from_the_run_config():
    """DeepSpeed is not installed here (it needs CUDA), so its config is checked instead: the
    shipped PPO config leaves batch, accumulation and clipping "auto", and the values filled in
    match what the loop does; a number that disagrees is an error."""
    import json

    from openvirl.training.config import CONFIGS_DIR, load_config
    from openvirl.training.ppo import (
        PPOConfig,
        deepspeed_settings,
        fill_deepspeed_config,
        local_grad_accum_steps,
    )

    paper = load_config(PPOConfig, "ppo-gp-l-paper.yaml")
    shipped = json.loads((CONFIGS_DIR / "deepspeed" / "zero2-ppo.json").read_text())
    filled = fill_deepspeed_config(shipped, deepspeed_settings(paper, 8))
    assert filled["gradient_accumulation_steps"] == 128 == local_grad_accum_steps(paper, 8)
    assert filled["train_micro_batch_size_per_gpu"] == paper.minibatch_size == 1
    assert filled["train_batch_size"] == 1024 == paper.minibatch_size * paper.grad_accum_steps
    assert filled["gradient_clipping"] == paper.max_grad_norm
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        fill_deepspeed_config(
            {**shipped, "gradient_accumulation_steps": 1}, deepspeed_settings(paper, 8)
        )
    accelerate_yaml = (CONFIGS_DIR / "accelerate" / "deepspeed_zero2.yaml").read_text()
    assert "gradient_accumulation_steps" not in accelerate_yaml  # nothing to disagree with
    for name in ("zero2.json", "zero3.json"):  # SFT/GRPO: HF Trainer fills "auto" from its args
        sft = json.loads((CONFIGS_DIR / "deepspeed" / name).read_text())
        for key in (
            "gradient_accumulation_steps",
            "train_micro_batch_size_per_gpu",
            "train_batch_size",
            "gradient_clipping",
        ):
            assert sft[key] == "auto", (name, key)


def test_default_critic_learns_and_the_paper_keeps_value_clipping():
    """Unclipped by default: a critic starting at 0 reaches a return of 5; clipped (the
    paper's setting, which the paper presets keep) its gradient vanishes once it leaves the
    ±clip_coef band, so it gets about one step per update."""
    from openvirl.training.config import load_config
    from openvirl.training.ppo import PPOConfig, value_loss

    assert PPOConfig(output_dir="x").clip_vloss is False
    assert load_config(PPOConfig, "ppo-gp-l-paper.yaml").clip_vloss is True

    def fit(clip: bool) -> float:
        v = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([v], lr=0.05)
        for _update in range(5):  # 5 updates, the old value refreshed at each
            old = v.detach().clone()
            for _ in range(20):
                opt.zero_grad()
                value_loss(v, old, torch.tensor([5.0]), 0.1, clip).sum().backward()
                opt.step()
        return float(v)

    assert abs(fit(False) - 5.0) < 0.1
    assert fit(True) < 1.5  # one effective step per update: 5 * (1 - 0.95**5) = 1.13
