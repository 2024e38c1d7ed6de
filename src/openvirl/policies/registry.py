"""Build any policy from a one-line spec (what `--policy` takes on the command line).

Spec syntax
-----------
::

    oracle[?wrong_attempts=1&seed=0]          the env's expert answer (privileged `info`)
    random[?seed=0]                           random well-formed answers
    human[?multiline=false]                   a person at the terminal
    hf:<path-or-name>[?key=value&...]         a transformers model (`HFPolicy`)
    openai:<base_url>[#<model>][?key=value&...]   an OpenAI-compatible server (`OpenAIPolicy`)

- ``hf:gemma-3-270m`` is the embedded Gemma-3-270M base model, prepared on first use; any
  other name is a local folder or a Hugging Face Hub id (``hf:Qwen/Qwen2.5-0.5B-Instruct``).
- Options follow the first ``?`` as ``key=value`` pairs joined by ``&``. Values are
  percent-decoded (``stop=%7D`` is ``}``) and read as bool (true/false), none, int or float
  where they look like one, else as text; a repeated key gives a list (``stop=a&stop=b``).
- hf options: everything `HFPolicy.from_pretrained` takes, e.g. ``temperature``, ``top_p``,
  ``top_k``, ``max_new_tokens``, ``seed``, ``stop``, ``batch_size``, ``adapter`` (a LoRA
  folder), ``merge_adapter``, ``dtype``, ``device``, ``kind``, ``chat_template``, ``name``,
  ``precision`` (CPU generation: ``shortlist``, ``fp32``, ``bf16`` or ``reference``; see
  `policies.fast`).
- openai: the base URL up to ``#`` (``/v1`` is added to a bare host), then the model id; with no
  ``#model`` the server's first listed model is used. Options: ``temperature``, ``top_p``,
  ``max_new_tokens``, ``seed``, ``stop``, ``concurrency``, ``max_retries``, ``backoff_s``,
  ``backoff_max_s``, ``timeout_s``, ``api_key`` (default ``$OPENAI_API_KEY``), ``name``.

Examples::

    make_policy("hf:gemma-3-270m?temperature=0.2&max_new_tokens=64")
    make_policy("hf:runs/sft/checkpoint?adapter=runs/sft/lora&merge_adapter=true")
    make_policy("openai:http://127.0.0.1:8000/v1#gemma-3-270m?concurrency=16")
    make_policy("oracle", wrong_attempts=2)            # keyword overrides beat the spec's
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from openvirl.policies.base import Policy

POLICY_KINDS: tuple[str, ...] = ("oracle", "random", "human", "hf", "openai")
"""Every kind a spec can name, in the order help texts list them."""

_NEEDS_TARGET = {"hf": "hf:<path-or-name>", "openai": "openai:<base_url>#<model>"}
_TEXT_OPTIONS = {"name", "adapter", "device", "dtype", "kind", "model", "api_key", "stop"}
"""Options kept as text even when they look like numbers (a model named `123`, stop `0`)."""


@dataclass(frozen=True)
class PolicySpec:
    """A parsed spec: the kind, its target (path, name or URL) and its options."""

    kind: str
    target: str = ""
    options: dict[str, Any] = field(default_factory=dict)


def parse_policy_spec(spec: str) -> PolicySpec:
    """Split a spec into kind, target and typed options (see the module docstring).

    Raises
    ------
    ValueError
        For an unknown kind (with the closest valid one), a missing or unexpected target,
        or a malformed option.
    """
    head, _, query = spec.strip().partition("?")
    kind, colon, target = head.partition(":")
    kind = kind.strip().lower()
    if kind not in POLICY_KINDS:
        close = difflib.get_close_matches(kind, POLICY_KINDS, n=1, cutoff=0.4)
        hint = f" Did you mean `{close[0]}`?" if close else ""
        raise ValueError(
            f"unknown policy kind {kind!r} in spec {spec!r}.{hint} Valid kinds: "
            f"{', '.join(POLICY_KINDS)} (e.g. 'oracle', 'hf:gemma-3-270m?temperature=0.2', "
            "'openai:http://127.0.0.1:8000/v1#my-model')."
        )
    if kind in _NEEDS_TARGET and not target:
        raise ValueError(
            f"the `{kind}` policy needs a target: {_NEEDS_TARGET[kind]} (got {spec!r})."
        )
    if kind not in _NEEDS_TARGET and colon:
        raise ValueError(
            f"the `{kind}` policy takes no target after ':'; pass options as "
            f"`{kind}?key=value` (got {spec!r})."
        )
    return PolicySpec(kind=kind, target=target, options=_parse_options(query, spec))


def make_policy(spec: str, **overrides: Any) -> Policy:
    """Build the policy a spec names; keyword `overrides` replace the spec's options.

    Heavy backends (torch, transformers, httpx) are imported only for the kind asked for.

    Example
    -------
    >>> policy = make_policy("oracle?wrong_attempts=1")
    >>> policy.name
    'oracle'
    """
    parsed = parse_policy_spec(spec)
    options = {**parsed.options, **overrides}
    if parsed.kind == "oracle":
        from openvirl.policies.oracle import OraclePolicy

        return _build(OraclePolicy, spec, **options)
    if parsed.kind == "random":
        from openvirl.policies.random import RandomPolicy

        return _build(RandomPolicy, spec, **options)
    if parsed.kind == "human":
        from openvirl.policies.human import HumanPolicy

        return _build(HumanPolicy, spec, **options)
    if parsed.kind == "hf":
        from openvirl.policies.hf import HFPolicy

        functions = [HFPolicy.from_pretrained, HFPolicy.__init__]
        skip = {"model", "processor", "path_or_name"}
        _check_options(spec, options, functions, skip=skip)
        return HFPolicy.from_pretrained(parsed.target, **options)
    from openvirl.policies.openai_http import OpenAIPolicy

    base_url, _, model = parsed.target.partition("#")
    options.setdefault("model", model or None)
    return _build(OpenAIPolicy, spec, base_url, **options)


def _build(cls: type, spec: str, *args: Any, **options: Any) -> Any:
    _check_options(spec, options, [cls.__init__], skip={"base_url"})
    return cls(*args, **options)


def _check_options(
    spec: str, options: dict[str, Any], functions: list[Callable[..., Any]], skip: set[str]
) -> None:
    """Reject option names none of `functions` accepts, suggesting the closest valid one."""
    valid: list[str] = []
    for function in functions:
        for parameter in inspect.signature(function).parameters.values():
            if (
                parameter.name != "self"
                and parameter.kind not in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL)
                and parameter.name not in skip
                and parameter.name not in valid
            ):
                valid.append(parameter.name)
    for key in options:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" Did you mean `{close[0]}`?" if close else ""
            raise ValueError(
                f"unknown option {key!r} in policy spec {spec!r}.{hint} "
                f"Valid options: {', '.join(valid) or 'none'}."
            )


def _parse_options(query: str, spec: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in filter(None, query.split("&")):
        key, equals, raw = pair.partition("=")
        key = unquote(key.strip())
        if not key or not equals:
            raise ValueError(f"malformed option {pair!r} in policy spec {spec!r}; use key=value.")
        value = unquote(raw) if key in _TEXT_OPTIONS else _parse_value(unquote(raw))
        if key in options:
            previous = options[key]
            options[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            options[key] = value
    return options


def _parse_value(text: str) -> Any:
    """Read an option value as bool, None, int or float when it looks like one."""
    lowered = text.strip().lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return text
