"""RL alignment of inpainting diffusion models (PrefPaint / DDPO with trust weights).

* :mod:`.ddim_logprob` and :mod:`.rollouts`: DDIM rollouts with per-step log-probabilities that reproduce
  diffusers' ``StableDiffusionInpaintPipeline`` exactly;
* :mod:`.loss`: the clipped PPO loss, advantages, trust weights, KL and L1 regularisers;
* :mod:`.config`: :class:`AlignConfig` and its presets; :mod:`.data`: the (image, mask) data convention;
* :mod:`.trainer`: :class:`Aligner`, with accelerate, exact resume and exports (LoRA adapter, merged pipeline).
  The pieces it orchestrates: :mod:`.sampling` (data stream, rollouts, scoring), :mod:`.update` (the PPO
  update), :mod:`.evaluation` (held-out WinRate), :mod:`.tracking` (metric logs), :mod:`.seeding`,
  :mod:`.checkpoint` and :mod:`.policy` (LoRA / old policy / exports);
* guards against reward hacking: :mod:`.guards` (gold vs proxy reward, ``on_hacking``, best weights by gold),
  :mod:`.audit` (hole vs context bias audit), :mod:`.rewards` (any reward as the trainer's
  reward function; specs, ensembles and stacks live in :mod:`prefpaint_sdk.reward`).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Aligner": "trainer",
    "AlignResult": "trainer",
    "check_run_folder": "checkpoint",
    "AlignConfig": "config",
    "ALIGN_PRESETS": "config",
    "load_align_config": "config",
    "AlignDataset": "data",
    "rollout": "rollouts",
    "encode_conditions": "rollouts",
    "Rollout": "rollouts",
    "ddim_step_with_logprob": "ddim_logprob",
    "ppo_clip_loss": "loss",
    "compute_advantages": "loss",
    "trust_weights": "loss",
    "as_reward_fn": "rewards",
    "HackingMonitor": "guards",
    "audit_batch": "audit",
}
_ALIASES = {"ALIGN_PRESETS": "PRESETS", "load_align_config": "load_config"}

__all__ = [  # noqa: RUF022 - the keys of _EXPORTS, sorted (a test checks they agree)
    "ALIGN_PRESETS", "AlignConfig", "AlignDataset", "AlignResult", "Aligner", "HackingMonitor", "Rollout",
    "as_reward_fn", "audit_batch",
    "check_run_folder", "compute_advantages", "ddim_step_with_logprob", "encode_conditions", "load_align_config", "ppo_clip_loss", "rollout",
    "trust_weights",
]
assert sorted(__all__) == sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'prefpaint_sdk.align' has no attribute '{name}'")
    value = getattr(importlib.import_module(f".{module}", __name__), _ALIASES.get(name, name))
    globals()[name] = value
    return value
