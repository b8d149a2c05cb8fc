"""GRPO (Flow-GRPO style): PPO's clipped loss with group-relative advantages.

Each (image, mask) is a group of ``samples_per_prompt`` samples; a sample's advantage is its reward minus
its group's mean, divided by the group's std (``adv_std="group"``) or the whole gathered batch's
(``"global"``), clipped to ±``adv_clip`` (:func:`~prefpaint_sdk.align.loss.grpo_advantages`). A group whose
rewards are all equal has no signal: its samples add nothing to the loss, and ``zero_std_ratio`` logs
their share. Everything else (rollouts, the clipped loss, KL to the starting model, trust weights) is
:mod:`.ppo`'s. It replaces the old ``adv_mode="group"`` of PPO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import Arg, ConfigError
from ...settings import setting
from ..loss import grpo_advantages
from .ppo import PPO, PPOConfig

__all__ = ["ALGORITHM", "GRPO", "GRPOConfig"]


@dataclass
class GRPOConfig(PPOConfig):
    """GRPO's settings: PPO's, and how the group advantages are scaled."""

    adv_std: str = setting("group", "divide by the std of each group ('group') or of the whole gathered batch ('global')")

    def validate(self, shared, sampler: str | None) -> None:
        super().validate(shared, sampler)
        if self.adv_std not in ("group", "global"):
            raise ConfigError(Arg("adv_std"), f" must be 'group' or 'global', got '{self.adv_std}'")
        if shared.samples_per_prompt < 2:
            raise ConfigError(f"algo='grpo' with samples_per_prompt={shared.samples_per_prompt} gives zero advantages "
                              "(one sample per group); use samples_per_prompt >= 2")


class GRPO(PPO):
    """PPO with group-relative advantages (see the module docstring)."""

    name = "grpo"
    summary = "Flow-GRPO: PPO's clipped loss with advantages relative to each (image, mask) group"
    config_cls = GRPOConfig
    presets = {k: dict(v) for k, v in PPO.presets.items()}

    def advantages(self, rewards: torch.Tensor, groups: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        ga = grpo_advantages(rewards, groups, self.config.adv_std, self.config.adv_clip)
        return ga.advantages, ga.valid, {"zero_std_ratio": ga.zero_std_ratio}


ALGORITHM = GRPO
