"""One DDIM step that also returns its Gaussian mean and the log-probability of the step taken.

Written against diffusers 0.42.1, ``DDIMScheduler.step`` (schedulers/scheduling_ddim.py). The arithmetic
of the mean is copied operation for operation, so with the same noise the sample is bit-identical to the
scheduler's. What differs from ``DDIMScheduler.step``:

1. ``timestep`` may be a tensor with one timestep per sample (shape (B,)), so a batch can mix steps
   (training draws K random steps per trajectory); ``alphas_cumprod`` is gathered per sample.
2. It returns the step mean (``prev_sample`` before the noise is added), the standard deviation
   ``eta * sqrt(variance)`` and the log-probability of the step under N(mean, std^2).
3. ``prev_sample`` may be given: then nothing is sampled and the log-probability of that stored step
   is evaluated (the PPO ratio needs the new policy's log-prob of the old policy's step).
4. Only ``prediction_type`` "epsilon" and "v_prediction" and no thresholding (Stable Diffusion
   inpainting uses epsilon, ``clip_sample=False``); clip_sample is honoured. ``use_clipped_model_output``
   is not supported.
5. ``eta`` must be > 0 when a log-probability is asked for (eta = 0 is a deterministic step).

The noise is drawn exactly as diffusers draws it (``randn_tensor`` with the same generator or list of
generators), so a rollout consumes each generator in the pipeline's order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

__all__ = ["DDIMStepOutput", "ddim_step_with_logprob", "gaussian_logprob", "reduce_latent"]

_LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


@dataclass
class DDIMStepOutput:
    """Result of :func:`ddim_step_with_logprob`.

    Attributes:
        prev_sample: x_{t-1}, shape (B, C, H, W).
        mean: the Gaussian mean of x_{t-1} given x_t.
        std: its standard deviation, shape (B, 1, 1, 1).
        log_prob: log N(prev_sample; mean, std^2) reduced over latent elements, shape (B,).
    """

    prev_sample: torch.Tensor
    mean: torch.Tensor
    std: torch.Tensor
    log_prob: torch.Tensor


def reduce_latent(x: torch.Tensor, reduction: str, region: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce a per-element tensor (B, ...) to (B,) by "mean" (the release and DDPO) or "sum".

    ``region``: 0/1 weights broadcastable to ``x`` (the latent elements that count, e.g. the hole's); the
    mean is then over the region's elements only (a sample with an empty region gets 0)."""
    dims = tuple(range(1, x.ndim))
    if region is not None:
        w = region.to(x.dtype).expand_as(x)
        x = x * w
        if reduction == "mean":
            return x.sum(dim=dims) / w.sum(dim=dims).clamp(min=1.0)
    if reduction == "mean":
        return x.mean(dim=dims)
    if reduction == "sum":
        return x.sum(dim=dims)
    raise ValueError(f"log-prob reduction must be 'mean' or 'sum', got {reduction!r}")


def gaussian_logprob(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, reduction: str = "mean",
                     region: torch.Tensor | None = None) -> torch.Tensor:
    """log N(x; mean, std^2) per element, reduced (over ``region`` only, when given; see :func:`reduce_latent`):
    equals ``Normal(mean, std).log_prob(x)`` reduced the same way."""
    # Same formula as torch.distributions.Normal.log_prob, written out so it works on broadcast std.
    var = std**2
    elem = -((x.detach() - mean) ** 2) / (2 * var) - torch.log(std) - _LOG_SQRT_2PI
    return reduce_latent(elem, reduction, region)


def _per_sample(values: torch.Tensor, index: torch.Tensor, ndim: int) -> torch.Tensor:
    return values[index].view(-1, *([1] * (ndim - 1)))


def ddim_step_with_logprob(
    scheduler,
    model_output: torch.Tensor,
    timestep: int | torch.Tensor,
    sample: torch.Tensor,
    eta: float = 1.0,
    prev_sample: torch.Tensor | None = None,
    generator=None,
    reduction: str = "mean",
    region: torch.Tensor | None = None,
) -> DDIMStepOutput:
    """A DDIM step x_t -> x_{t-1} with its mean and log-probability (see the module header for the diff).

    Args:
        scheduler: a ``DDIMScheduler`` after ``set_timesteps``.
        model_output: the UNet's prediction at ``timestep``, shape (B, C, H, W).
        timestep: an int, or a (B,) tensor of per-sample timesteps.
        sample: x_t.
        eta: DDIM noise scale, > 0 (1.0 as PrefPaint samples).
        prev_sample: a given x_{t-1} to evaluate; ``None`` samples one with ``generator``.
        generator: a ``torch.Generator`` or a list of one per sample, consumed as diffusers does.
        reduction: "mean" or "sum" over latent elements for the log-probability.
        region: 0/1 weights broadcastable to ``sample``: the log-probability counts these elements only
            (``logprob_region="mask"``); ``None``: all of them.

    Returns:
        A :class:`DDIMStepOutput`.

    Raises:
        ValueError: ``eta <= 0``, no ``set_timesteps`` yet, or an unsupported scheduler setting.
    """
    from diffusers.utils.torch_utils import randn_tensor

    if scheduler.num_inference_steps is None:
        raise ValueError("the scheduler has no timesteps; call scheduler.set_timesteps(n) first")
    if eta <= 0:
        raise ValueError(f"a log-probability needs a stochastic step, eta > 0; got eta={eta}")
    cfg = scheduler.config
    if cfg.thresholding:
        raise ValueError("dynamic thresholding is not supported by the log-prob DDIM step")
    b = sample.shape[0]
    device = sample.device
    t = torch.as_tensor(timestep, device="cpu").long().reshape(-1)
    if t.numel() == 1:
        t = t.expand(b)
    prev_t = t - cfg.num_train_timesteps // scheduler.num_inference_steps

    acp = scheduler.alphas_cumprod.to("cpu")
    final = torch.as_tensor(scheduler.final_alpha_cumprod, dtype=acp.dtype)
    acp_prev_all = torch.where(prev_t >= 0, acp[prev_t.clamp(min=0)], final)
    alpha_prod_t = _per_sample(acp, t, sample.ndim).to(device)
    alpha_prod_t_prev = acp_prev_all.view(-1, *([1] * (sample.ndim - 1))).to(device)
    beta_prod_t = 1 - alpha_prod_t

    if cfg.prediction_type == "epsilon":
        pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        pred_epsilon = model_output
    elif cfg.prediction_type == "v_prediction":
        pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
    else:
        raise ValueError(f"prediction_type '{cfg.prediction_type}' is not supported; use epsilon or v_prediction")
    if cfg.clip_sample:
        pred_original_sample = pred_original_sample.clamp(-cfg.clip_sample_range, cfg.clip_sample_range)

    # diffusers' _get_variance, per sample.
    beta_prod_t_prev = 1 - alpha_prod_t_prev
    variance = (beta_prod_t_prev / beta_prod_t) * (1 - alpha_prod_t / alpha_prod_t_prev)
    std_dev_t = eta * variance ** (0.5)

    pred_sample_direction = (1 - alpha_prod_t_prev - std_dev_t**2) ** (0.5) * pred_epsilon
    mean = alpha_prod_t_prev ** (0.5) * pred_original_sample + pred_sample_direction

    if prev_sample is None:
        variance_noise = randn_tensor(model_output.shape, generator=generator, device=model_output.device,
                                      dtype=model_output.dtype)
        prev_sample = mean + std_dev_t * variance_noise
    std = std_dev_t.to(mean.dtype)
    log_prob = gaussian_logprob(prev_sample, mean, std, reduction, region)
    return DDIMStepOutput(prev_sample=prev_sample, mean=mean, std=std, log_prob=log_prob)
