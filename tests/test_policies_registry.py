"""Policy specs: parsing, typed options, helpful errors, and building every kind."""

from __future__ import annotations

import json
import shutil

import pytest

from openvirl.policies.base import Policy
from openvirl.policies.registry import POLICY_KINDS, make_policy, parse_policy_spec


def test_hf_spec_with_options():
    spec = parse_policy_spec("hf:gemma-3-270m?temperature=0.2&max_new_tokens=64&merge_adapter=true")
    assert spec.kind == "hf" and spec.target == "gemma-3-270m"
    assert spec.options == {"temperature": 0.2, "max_new_tokens": 64, "merge_adapter": True}


def test_openai_spec_splits_url_model_and_options():
    spec = parse_policy_spec("openai:http://127.0.0.1:8000/v1#org/model:q4?concurrency=4")
    assert spec.kind == "openai"
    assert spec.target == "http://127.0.0.1:8000/v1#org/model:q4"
    assert spec.options == {"concurrency": 4}


def test_option_values_are_decoded_and_typed():
    spec = parse_policy_spec("hf:x?stop=%7D&stop=%5D&name=123&device=none&seed=-3&chat_template=no")
    assert spec.options == {
        "stop": ["}", "]"],  # repeated keys make a list; percent-escapes are decoded
        "name": "123",  # text options stay text
        "device": "none",
        "seed": -3,
        "chat_template": False,
    }
    assert parse_policy_spec("oracle").options == {}
    assert parse_policy_spec("  Random?seed=4 ").options == {"seed": 4}


def test_unknown_kind_suggests_the_closest_and_lists_all():
    with pytest.raises(ValueError) as error:
        parse_policy_spec("hff:some/model")
    message = str(error.value)
    assert "Did you mean `hf`?" in message
    for kind in POLICY_KINDS:
        assert kind in message
    with pytest.raises(ValueError, match="Did you mean `oracle`"):
        make_policy("orcle")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ("hf", "needs a target"),
        ("openai:", "needs a target"),
        ("oracle:x", "takes no target"),
        ("random?seed", "malformed option"),
    ],
)
def test_malformed_specs(spec, fragment):
    with pytest.raises(ValueError, match=fragment):
        parse_policy_spec(spec)


def test_unknown_options_are_named_with_a_suggestion():
    with pytest.raises(ValueError, match="Did you mean `wrong_attempts`"):
        make_policy("oracle?wrong_attempt=1")
    with pytest.raises(ValueError, match="Did you mean `concurrency`"):
        make_policy("openai:http://127.0.0.1:9/v1#m?concurency=2")


def test_builds_the_simple_kinds_with_overrides():
    oracle = make_policy("oracle?wrong_attempts=1", seed=5)
    assert isinstance(oracle, Policy) and oracle.name == "oracle"
    assert oracle.wrong_attempts == 1 and oracle.seed == 5
    assert make_policy("oracle?wrong_attempts=1", wrong_attempts=2).wrong_attempts == 2
    assert make_policy("random?seed=3").name == "random"
    human = make_policy("human?multiline=false")
    assert human.name == "human" and human.multiline is False


def test_builds_an_openai_policy_without_contacting_it():
    policy = make_policy("openai:http://127.0.0.1:9#tiny?max_retries=0&temperature=0.5")
    assert policy.completions_url == "http://127.0.0.1:9/v1/chat/completions"
    assert policy.model == "tiny" and policy.max_retries == 0 and policy.temperature == 0.5
    assert make_policy("openai:https://api.example.com/v1").model is None  # asked at first use


def test_builds_hf_policies_and_resolves_the_embedded_name(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from openvirl.policies import embedded
    from tiny_models import tiny_causal_lm

    path = tiny_causal_lm(tmp_path)
    policy = make_policy(f"hf:{path}?max_new_tokens=3&temperature=0&stop=%7D", batch_size=2)
    assert policy.options["max_new_tokens"] == 3 and policy.options["stop"] == "}"
    assert policy.batch_size == 2 and policy.uses_chat_template

    # A prepared embedded folder in the cache is what `hf:gemma-3-270m` loads.
    monkeypatch.setenv("OPENVIRL_CACHE", str(tmp_path / "cache"))
    folder = embedded.embedded_model_dir()
    shutil.rmtree(folder)
    shutil.copytree(path, folder)
    (folder / embedded.MARKER_FILE).write_text(json.dumps({"dtype": "float32"}))
    gemma = make_policy("hf:gemma-3-270m?max_new_tokens=2")
    assert gemma.name == "gemma-3-270m"
    assert not gemma.uses_chat_template  # the base model is prompted plainly
    assert len(gemma.act([{"messages": [{"role": "user", "content": []}]}])) == 1


def test_make_policy_is_exported_by_the_package_and_act_takes_bare_conversations():
    from openvirl.policies import make_policy as exported

    assert exported is make_policy
    oracle = exported("oracle")
    request = {"messages": [{"role": "user", "content": "Reach 24."}], "info": {}}
    request["info"]["expert_answer"] = "42"
    assert oracle.act([request]) == ["42"]  # string content is accepted


def test_act_rejects_what_is_not_a_batch_of_requests_with_one_line():
    oracle = make_policy("oracle")
    with pytest.raises(ValueError, match="takes a batch"):
        oracle.act({"messages": []})
    with pytest.raises(ValueError, match="role"):
        oracle.act([[{"text": "no role"}]])
