"""Sampler maths that no model family owns: one stochastic step with its Gaussian log-probability.

* :mod:`.ddim`: the DDIM step with log-probability (``ddim_step_with_logprob``), and the Gaussian
  log-density and latent reduction every step shares;
* :mod:`.flow_sde`: the flow-matching SDE step of Flow-GRPO (``flow_sde_step``).

The families' rollouts (``engines/ddim_rollout.py``, ``engines/flow_rollout.py``) call these; so may any
algorithm. They import only torch and diffusers.
"""
