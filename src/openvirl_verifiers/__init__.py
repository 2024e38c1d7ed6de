"""The verifiers (0.4+) plugin of openvirl: ``vf eval openvirl-verifiers``.

verifiers finds tasksets, environments and harnesses by importing a top-level module named
after the id and taking the one subclass of each it exports in ``__all__``; the classes live
in `openvirl.training.verifiers_env`.
"""

from openvirl.training.verifiers_env import OpenvirlChatHarness, OpenvirlEnv, OpenvirlTaskset

__all__ = ["OpenvirlChatHarness", "OpenvirlEnv", "OpenvirlTaskset"]
