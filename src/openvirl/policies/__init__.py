"""Policies: a batch of chat conversations in, a batch of answer texts out.

``from openvirl.policies import make_policy`` builds any policy from a one-line spec
(``oracle``, ``random``, ``human``, ``hf:PATH``, ``openai:URL#model``); see
`openvirl.policies.registry`. Heavy backends load only when their kind is asked for.
"""

from openvirl.policies.base import (
    Message,
    Policy,
    PolicyError,
    Request,
    as_request,
    as_requests,
    text_message,
)
from openvirl.policies.registry import POLICY_KINDS, make_policy, parse_policy_spec

__all__ = [
    "POLICY_KINDS",
    "Message",
    "Policy",
    "PolicyError",
    "Request",
    "as_request",
    "as_requests",
    "make_policy",
    "parse_policy_spec",
    "text_message",
]
