"""The flow-matching SDE step with log-probability (Flow-GRPO), for any velocity-predicting family.

Written against diffusers 0.42.1, ``FlowMatchEulerDiscreteScheduler.step``
(schedulers/scheduling_flow_match_euler_discrete.py), which computes the Euler ODE step
``x + (sigma_next - sigma) * v`` in float32 and casts back. What differs:

1. It is Flow-GRPO's SDE step: with noise level ``a``, ``std_dev_t = a * sqrt(sigma / (1 - sigma))`` (at
   sigma = 1 the denominator uses the second sigma of the schedule, as Flow-GRPO does),
   ``dt = sigma_next - sigma``,
   ``mean = x * (1 + std_dev_t^2 / (2 sigma) * dt) + v * (1 + std_dev_t^2 (1 - sigma) / (2 sigma)) * dt``,
   ``std = std_dev_t * sqrt(-dt)``, ``x_next = mean + std * eps``, computed in float32, with the exact Gaussian
   log-probability of ``x_next`` (reduced "mean" or "sum" over latent elements, as the DDIM step). With
   ``a = 0`` the mean is the Euler step.
2. It may take per-sample sigmas (training re-evaluates stored steps of different indices at once) and a
   given ``x_next`` whose log-probability is evaluated instead of sampling one.

Families own their rollouts (``engines/flow_rollout.py`` for FLUX Fill, ``engines/blend_rollout.py`` for the
latent-blend families); this module is only the maths.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .ddim import gaussian_logprob

__all__ = ["FlowStepOutput", "FlowTrace", "flow_sde_step"]


@dataclass
class FlowStepOutput:
    """One SDE step: ``prev_sample`` (x_next), its Gaussian ``mean`` and ``std`` ((B, 1, 1)), ``log_prob`` (B,)."""

    prev_sample: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    log_prob: torch.Tensor



def flow_sde_step(model_output: torch.Tensor, sigma, sigma_next, sample: torch.Tensor, noise_level: float,
                  sigma_max: float, prev_sample: torch.Tensor | None = None, generator=None,
                  reduction: str = "mean", region: torch.Tensor | None = None) -> FlowStepOutput:
    """One Flow-GRPO SDE step x -> x_next with its mean, std and log-probability (see the module header).

    Args:
        model_output: the velocity v, (B, L, C). sample: x, same shape.
        sigma / sigma_next: floats or (B,) per-sample sigmas of the step. sigma_max: the schedule's second
            sigma, used in place of sigma = 1 in ``1 - sigma``.
        noise_level: ``a`` > 0.
        prev_sample: a given x_next to evaluate; ``None`` samples one with ``generator`` (one per sample).
        region: 0/1 weights broadcastable to ``sample``: the log-probability counts these elements only (the
            hole's latent tokens); ``None``: all of them.
    """
    from diffusers.utils.torch_utils import randn_tensor

    if not noise_level > 0:
        raise ValueError(f"a log-probability needs a stochastic step, noise level > 0; got {noise_level}")
    v = model_output.float()
    x = sample.float()
    shape = (-1,) + (1,) * (x.ndim - 1)
    sigma = torch.as_tensor(sigma, dtype=torch.float32, device=x.device).reshape(shape)
    sigma_next = torch.as_tensor(sigma_next, dtype=torch.float32, device=x.device).reshape(shape)
    dt = sigma_next - sigma
    denom = 1 - torch.where(sigma == 1, torch.full_like(sigma, sigma_max), sigma)
    std_dev_t = torch.sqrt(sigma / denom) * noise_level
    mean = x * (1 + std_dev_t**2 / (2 * sigma) * dt) + v * (1 + std_dev_t**2 * (1 - sigma) / (2 * sigma)) * dt
    std = std_dev_t * torch.sqrt(-dt)
    if prev_sample is None:
        eps = randn_tensor(v.shape, generator=generator, device=v.device, dtype=v.dtype)
        prev_sample = mean + std * eps
    prev_sample = prev_sample.float()
    log_prob = gaussian_logprob(prev_sample, mean, std, reduction, region)
    return FlowStepOutput(prev_sample=prev_sample, mean=mean, std=std, log_prob=log_prob)


class FlowTrace:
    """The stored steps of one flow rollout, in the order they ran: a family's rollout calls :meth:`step` at every
    step and hands :meth:`stacked` to its rollout record. Inside the window a step is the SDE step above, kept
    with its log-probability; outside it is the scheduler's Euler step (``FlowMatchEulerDiscreteScheduler.step``,
    operation for operation), not kept."""

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.latents: list[torch.Tensor] = []
        self.next_latents: list[torch.Tensor] = []
        self.means: list[torch.Tensor] = []
        self.log_probs: list[torch.Tensor] = []

    def step(self, v: torch.Tensor, sigmas: torch.Tensor, i: int, latents: torch.Tensor, stochastic: bool,
             noise_level: float, sigma_max: float, *, generator=None, reduction: str = "mean",
             region: torch.Tensor | None = None) -> torch.Tensor:
        """Step ``i`` from ``latents`` with velocity ``v``; returns the next latents in ``v``'s dtype."""
        if not stochastic:
            return (latents.to(torch.float32) + (sigmas[i + 1] - sigmas[i]) * v).to(v.dtype)
        out = flow_sde_step(v, sigmas[i], sigmas[i + 1], latents, noise_level, sigma_max, generator=generator,
                            reduction=reduction, region=region)
        self.steps.append(i)
        self.latents.append(latents.float())
        self.next_latents.append(out.prev_sample)
        self.means.append(out.mean)
        self.log_probs.append(out.log_prob)
        return out.prev_sample.to(v.dtype)

    def stacked(self, b: int, latent_shape, device) -> dict[str, torch.Tensor]:
        """The stored steps as (B, k, ...) tensors (k = 0 when none was stochastic), by rollout-record field."""
        empty = torch.zeros((b, 0, *latent_shape), device=device)
        stack = (lambda xs: torch.stack(xs, 1)) if self.steps else (lambda xs: empty)
        return dict(steps=torch.tensor(self.steps, dtype=torch.long), latents=stack(self.latents),
                    next_latents=stack(self.next_latents), means=stack(self.means),
                    log_probs=torch.stack(self.log_probs, 1) if self.steps else torch.zeros((b, 0), device=device))
