"""The DDIM step with log-probability: moved to :mod:`prefpaint_sdk.engines.ddim_logprob` (old path kept)."""

from __future__ import annotations

from ..engines.ddim_logprob import DDIMStepOutput, ddim_step_with_logprob, gaussian_logprob, reduce_latent

__all__ = ["DDIMStepOutput", "ddim_step_with_logprob", "gaussian_logprob", "reduce_latent"]
