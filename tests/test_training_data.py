"""Expert SFT data: oracle episodes, single-turn pairs, transcripts, labels match evaluation."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

from openvirl.envs.points import check, parse_answer
from openvirl.policies.base import text_message
from openvirl.training.data import (
    IGNORE_INDEX,
    ExpertDataConfig,
    expert_examples,
    prompt_format,
    tokenize_conversation,
    tokenized_dataset,
)
from tiny_models import tiny_causal_lm


@pytest.fixture(scope="module")
def tokenizers(tmp_path_factory):
    from transformers import AutoTokenizer

    root = tmp_path_factory.mktemp("models")
    paths = {
        "chat": tiny_causal_lm(root),
        "plain": tiny_causal_lm(root, name="plain", chat_template=None),
    }
    return {kind: AutoTokenizer.from_pretrained(path) for kind, path in paths.items()} | {
        f"{kind}-path": path for kind, path in paths.items()
    }


def test_single_turn_pairs_are_correct_expert_answers_and_deterministic():
    config = ExpertDataConfig(n_examples=12, seed=3)
    examples = expert_examples(config)
    assert len(examples) == 12
    assert examples == expert_examples(ExpertDataConfig(n_examples=12, seed=3))
    for example in examples:
        user, answer = example["messages"]
        assert user["role"] == "user" and answer["role"] == "assistant"
        text = answer["content"][0]["text"]
        parsed = parse_answer(text)
        cards = user["content"][0]["text"].split("Cards: ")[1].split("\n")[0]
        assert parsed.formula and cards.count("'") == 8
        numbers = [int(n) for n in parsed.numbers]
        assert check(parsed.formula, numbers, 24).outcome.value == "correct"


def test_transcripts_hold_wrong_attempts_and_feedback():
    config = ExpertDataConfig(n_examples=3, multi_turn=True, wrong_attempts=2)
    examples = expert_examples(config)
    roles = [m["role"] for m in examples[0]["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user", "assistant"]
    assert examples[0]["messages"][2]["content"][0]["text"].startswith("You failed this trial")
    with pytest.raises(ValueError, match="multi_turn"):
        ExpertDataConfig(wrong_attempts=1).validate()


def _text(message):
    return message["content"][0]["text"]


def test_numbers_revisions_name_the_missing_value_and_never_a_face_value():
    """The 'numbers' wrong attempt misvalues one number card; the verifier's feedback names the
    missing value, and the revision is the expert answer. No transcript says what a face card
    is worth beyond the training rule, so the rule-OOD split stays out of distribution."""
    kwargs = {"rule": "id", "split": "train", "n_cards": 3, "target": 12, "ranks": [1, 13]}
    config = ExpertDataConfig(
        env_kwargs=kwargs,
        n_examples=40,
        multi_turn=True,
        wrong_attempts=1,
        train_on_wrong_attempts=False,
        wrong_kind="numbers",
        revision_fraction=0.5,
        seed=5,
    )
    examples = expert_examples(config)
    assert examples == expert_examples(config)
    revised = [e for e in examples if len(e["messages"]) == 4]
    single = [e for e in examples if len(e["messages"]) == 2]
    assert len(revised) + len(single) == 40 and 8 <= len(revised) <= 32
    for example in revised:
        assert example["train_turns"] == "last"
        _, wrong, feedback, right = example["messages"]
        wrong_numbers = [int(n) for n in parse_answer(_text(wrong)).numbers]
        right_numbers = [int(n) for n in parse_answer(_text(right)).numbers]
        pairs = enumerate(zip(wrong_numbers, right_numbers, strict=True))
        changed = [i for i, (a, b) in pairs if a != b]
        assert len(changed) == 1
        cards = parse_answer(_text(wrong)).cards
        assert cards[changed[0]] not in ("J", "Q", "K")
        assert wrong_numbers[changed[0]] <= 10
        text = _text(feedback)
        assert text.startswith("You failed this trial")
        assert f"didn't use numbers: [{right_numbers[changed[0]]}" in text
        assert check(parse_answer(_text(right)).formula, right_numbers, 12).outcome.value == (
            "correct"
        )


def test_revision_options_are_validated():
    with pytest.raises(ValueError, match="wrong_kind"):
        ExpertDataConfig(multi_turn=True, wrong_attempts=1, wrong_kind="letters").validate()
    with pytest.raises(ValueError, match="revision_fraction"):
        ExpertDataConfig(multi_turn=True, wrong_attempts=1, revision_fraction=1.5).validate()
    from openvirl.training.sft import SFTRunConfig

    with pytest.raises(ValueError, match="wrong_kind"):  # at construction: before any model
        SFTRunConfig(model="unused", wrong_kind="letters")
    none = ExpertDataConfig(n_examples=5, multi_turn=True, wrong_attempts=1, revision_fraction=0)
    assert all(len(e["messages"]) == 2 for e in expert_examples(none))


@pytest.mark.parametrize("kind", ["chat", "plain"])
def test_prompt_tokens_equal_the_hf_policy_encoding_and_are_masked(tokenizers, kind):
    fmt = prompt_format(tokenizers[kind])
    example = expert_examples(ExpertDataConfig(n_examples=1))[0]
    row = tokenize_conversation(example["messages"], fmt)
    from openvirl.policies.hf import HFPolicy

    policy = HFPolicy.from_pretrained(tokenizers[f"{kind}-path"])
    encoded = policy.encode([{"messages": example["messages"][:1]}])["input_ids"][0].tolist()
    n = len(encoded)
    assert row["input_ids"][:n] == encoded  # the exact tokens the policy sees at evaluation
    assert all(label == IGNORE_INDEX for label in row["labels"][:n])
    trained = [t for t, label in zip(row["input_ids"], row["labels"], strict=True) if label != -100]
    assert trained == row["input_ids"][n:]
    decoded = fmt.tokenizer.decode(trained, skip_special_tokens=True)
    assert decoded.strip() == example["messages"][1]["content"][0]["text"]
    if kind == "plain":
        assert trained[-1] == fmt.tokenizer.eos_token_id  # what stops generation
    else:
        assert "<|end|>" in fmt.tokenizer.decode(trained)


def test_multi_turn_labels_cover_assistant_turns_only(tokenizers):
    fmt = prompt_format(tokenizers["plain"])
    messages = [
        text_message("user", "Cards: 1 2 3 4"),
        text_message("assistant", "WRONG"),
        text_message("user", "You failed this trial because no."),
        text_message("assistant", "RIGHT"),
    ]
    tok = fmt.tokenizer
    all_turns = tokenize_conversation(messages, fmt, train_turns="all")
    last = tokenize_conversation(messages, fmt, train_turns="last")
    assert all_turns["input_ids"] == last["input_ids"]

    def trained(row):
        ids = [
            t if label != -100 else None
            for t, label in zip(row["input_ids"], row["labels"], strict=True)
        ]
        return tok.decode([t for t in ids if t is not None])

    assert trained(all_turns) == "WRONGRIGHT</s>"
    assert trained(last) == "RIGHT</s>"
    assert "You failed" in tok.decode(all_turns["input_ids"])
    with pytest.raises(ValueError, match="assistant"):
        tokenize_conversation(messages[:3], fmt)


def test_tokenized_dataset_columns(tokenizers):
    fmt = prompt_format(tokenizers["chat"])
    dataset = tokenized_dataset(expert_examples(ExpertDataConfig(n_examples=4)), fmt)
    assert dataset.column_names == ["input_ids", "labels"] and len(dataset) == 4


def test_points_hands_deal_fewer_cards_within_the_split():
    from openvirl.envs.points import check
    from openvirl.training.data import make_env_factory

    make = make_env_factory(
        "openvirl/GeneralPoints-v0",
        {"rule": "ood", "split": "test", "target": 12, "n_cards": 3, "ranks": [1, 13]},
    )
    env = make()
    for seed in range(20):
        _, info = env.reset(seed=seed)
        assert len(info["cards"]) == 3 and info["split"] == "test"
        assert any(c in ("J", "Q", "K") for c in info["cards"])  # the OOD rule's face card
        formula = info["expert_answer"].split('"formula": "')[1].split("=")[0]
        assert check(formula, info["numbers"], 12).outcome.value == "correct"
    first = env.reset(seed=7)[1]["cards"]
    assert env.reset(seed=7)[1]["cards"] == first  # a function of the seed only
    assert "three playing cards" in env.unwrapped.messages()[0]["content"][0]["text"]
    examples = expert_examples(
        ExpertDataConfig(n_examples=3, env_kwargs={"split": "train", "target": 12, "n_cards": 3})
    )
    assert all(len(e["messages"]) == 2 for e in examples)
