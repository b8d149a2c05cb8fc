"""Alignment of inpainting diffusion models to a reward or to preferences, with trust weights.

* :mod:`.algorithms`: one module per algorithm (PPO, GRPO, ...) over one shared loop; :mod:`.algorithms.base`
  is the seam (what an algorithm is, and what the loop gives it);
* :mod:`.trainer`: :class:`Aligner`, the shared loop, with accelerate, exact resume and exports (LoRA
  adapter, merged pipeline); :meth:`Aligner.from_pretrained` is the one entry point (:mod:`.resolve`
  resolves the run and checks it before any model loads). The pieces it orchestrates: :mod:`.loop` (what
  an algorithm calls: sampling, scoring, trust, the optimizer step and grad-spike guard), :mod:`.sampling`
  (data stream, rollouts, scoring), :mod:`.evaluation` (held-out WinRate), :mod:`.tracking` (metric logs),
  :mod:`.seeding`, :mod:`.checkpoint` and :mod:`.policy` (LoRA / old policy / exports);
* :mod:`.loss`: the clipped PPO loss, advantages, trust weights, KL and L1 regularisers;
* :mod:`.config`: :class:`AlignConfig` (the shared settings) and its presets; :mod:`.data`: the (image, mask)
  data convention; the sampler maths is :mod:`prefpaint_sdk.samplers`;
* guards against reward hacking: :mod:`.guards` (gold vs proxy reward, ``on_hacking``, best weights by gold),
  :mod:`.audit` (hole vs context bias audit), :mod:`.rewards` / :mod:`.reward_specs` (weighted ensembles).
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
    "ppo_clip_loss": "loss",
    "compute_advantages": "loss",
    "trust_weights": "loss",
    "brightness_in_mask": "rewards",
    "as_reward_fn": "rewards",
    "RewardEnsemble": "rewards",
    "HackingMonitor": "guards",
    "audit_batch": "audit",
}
_ALIASES = {"ALIGN_PRESETS": "PRESETS", "load_align_config": "load_config"}

__all__ = [  # noqa: RUF022 - the keys of _EXPORTS, sorted (a test checks they agree)
    "ALIGN_PRESETS", "AlignConfig", "AlignDataset", "AlignResult", "Aligner", "HackingMonitor", "RewardEnsemble",
    "as_reward_fn", "audit_batch", "brightness_in_mask",
    "check_run_folder", "compute_advantages", "load_align_config", "ppo_clip_loss",
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
