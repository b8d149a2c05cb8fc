"""DDIM rollouts with per-step log-probabilities: moved to :mod:`prefpaint_sdk.engines.ddim_rollout`.

The rollout is part of the SD/SDXL engines now (an engine owns how its model samples); this module keeps
the old import path working for the aligner and for users' scripts.
"""

from __future__ import annotations

from ..engines.ddim_rollout import (
    Conditions,
    Rollout,
    cat_rollouts,
    decode_latents,
    encode_conditions,
    encode_prompts,
    make_scheduler,
    policy_step,
    predict_noise,
    rollout,
)

__all__ = ["Conditions", "Rollout", "encode_conditions", "encode_prompts", "rollout", "policy_step", "make_scheduler",
           "cat_rollouts", "decode_latents", "predict_noise"]
