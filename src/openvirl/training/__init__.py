"""Training: expert SFT data, TRL SFT, multi-turn PPO with a value head, TRL GRPO, the study.

Importing this package is light: torch, transformers, TRL and peft load only inside the
modules that need them. Entry points::

    from openvirl.training.sft import SFTRunConfig, train_sft        # TRL SFTTrainer
    from openvirl.training.ppo import PPOConfig, train_ppo           # CleanRL-style PPO
    from openvirl.training.grpo import GRPORunConfig, train_grpo     # TRL GRPOTrainer
    from openvirl.training.study import run_study                    # `openvirl study`

and on the command line ``openvirl train sft|ppo|grpo --config FILE`` and
``openvirl study --task gp-l --preset quick``.
"""

from __future__ import annotations

__all__: list[str] = []
