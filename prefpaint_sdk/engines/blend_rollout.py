"""Flow-matching SDE rollouts with log-probabilities over the hole, for the latent-blend inpainters.

One implementation for every latent-blend family (``qwen-image``: ``QwenImageInpaintPipeline``; ``flux2-klein``:
``Flux2KleinInpaintPipeline``), written against diffusers 0.42.1. A family supplies only its model calls, as
methods of its engine (:class:`~.blend_engine.BlendFamily`): encoding the images and masks, the schedule's shift, drawing the
starting latents in its pipeline's generator order, the velocity (with its own guidance), and decoding.

The loop is the pipelines' ``__call__`` loop, operation for operation:

* the schedule: ``linspace(1, 1/n, n)`` sigmas with the family's ``mu``, then ``get_timesteps(strength)``
  (the first ``int(n - n * strength)`` steps dropped); the start ``x = sigma_0 * noise + (1 - sigma_0) * z``
  (``FlowMatchEulerDiscreteScheduler.scale_noise``) with ``z`` the image's latents;
* each step: the velocity, then the step, then the **blend**
  ``x = (1 - m) * (sigma_next * noise + (1 - sigma_next) * z) + m * x_step`` (``z`` itself after the last
  step), ``m`` the mask in the family's latent layout (Qwen-Image: nearest per latent element; klein:
  bilinear per token, so it can be fractional at the edge).

What differs from the pipelines:

1. Steps inside the **window** are Flow-GRPO's SDE step (:func:`prefpaint_sdk.samplers.flow_sde.flow_sde_step`);
   the rest are the scheduler's Euler step (so with noise level 0 the rollout is the pipeline's output).
2. The log-probability of a stochastic step counts the latent elements with ``m > 0`` only
   (``logprob_region="mask"``): outside them the step's sample is thrown away by the blend, so it is not the
   policy's action. The stored ``next_latents`` are the step's sample **before** the blend (the action); the
   stored ``latents`` are the state the model saw (after the previous blend).
3. The step's noise is drawn from the samples' generators after the pipeline's own draws.

There is no ``logprob_region="full"`` here (see :class:`~.blend_engine.BlendAlignable`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ..samplers.flow_sde import FlowStepOutput, FlowTrace, flow_sde_step
from .flow_rollout import window_steps

__all__ = ["BlendConditions", "BlendRollout", "BlendText", "cat_rollouts", "clean_batch", "forward_predict",
           "policy_step", "rollout", "start_index", "train_steps"]


@dataclass
class BlendText:
    """A family's text conditioning for B samples: ``hidden`` (B, L, D) and one more per-sample tensor or
    ``None`` (Qwen-Image: the attention mask; klein: the text ids)."""

    hidden: torch.Tensor
    extra: torch.Tensor | None = None

    @property
    def dtype(self):
        return self.hidden.dtype

    def __len__(self) -> int:
        return self.hidden.shape[0]

    def __getitem__(self, idx):
        return BlendText(self.hidden[idx], None if self.extra is None else self.extra[idx])

    def to(self, *args, **kwargs):
        return BlendText(self.hidden.to(*args, **kwargs), None if self.extra is None else self.extra.to(*args, **kwargs))

    @staticmethod
    def cat(items: list["BlendText"]) -> "BlendText":
        extra = None if items[0].extra is None else torch.cat([t.extra for t in items])
        return BlendText(torch.cat([t.hidden for t in items]), extra)


@dataclass
class BlendConditions:
    """Per-group inputs, computed once per (image, mask).

    Attributes:
        init_image: (G, 3, H, W) in [-1, 1], float32. mask_pixels: (G, 1, H, W) binarised, 1 = fill.
        mask: (G, L, D or 1) the blend mask in the family's packed latent layout.
        image_dists / masked_dists: per group, what the family draws the image's (and the masked image's)
            latents from (a VAE ``latent_dist``, or the latents themselves where the pipeline takes the mode).
    """

    init_image: torch.Tensor
    mask_pixels: torch.Tensor
    mask: torch.Tensor
    image_dists: list
    masked_dists: list | None = None

    def __len__(self) -> int:
        return self.init_image.shape[0]


@dataclass
class BlendRollout:
    """B trajectories; the ``steps`` (window) were stochastic and are stored.

    Attributes:
        sigmas: (T + 1,) the sigmas of the steps run (after ``strength``; last 0). timesteps: (T,).
        steps: (k,) indices (into ``timesteps``) of the stored steps.
        latents: (B, k, L, D) the state before each stored step; next_latents: the step's sample before the
            blend (the action); means: its mean. log_probs: (B, k), over ``region``.
        region: (B, L, D or 1) 1 where the blend keeps the step's sample (``m > 0``).
        prompt_embeds / negative_embeds: :class:`BlendText` (negative ``None`` without guidance).
        context: the family's per-sample model inputs (tensors indexed by sample, others shared).
        guidance: the guidance scale sampled with. images: (B, 3, H, W) in [0, 1]. groups: (B,).
        final_latents: (B, L, D) the sampled clean latents (NFT trains on them).
    """

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    steps: torch.Tensor
    latents: torch.Tensor
    next_latents: torch.Tensor
    means: torch.Tensor
    log_probs: torch.Tensor
    region: torch.Tensor
    prompt_embeds: BlendText
    negative_embeds: BlendText | None
    context: dict[str, Any]
    guidance: float
    images: torch.Tensor | None
    groups: torch.Tensor
    final_latents: torch.Tensor | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return self.latents.shape[0]


def _index(context: dict, b) -> dict:
    return {k: v[b] if isinstance(v, torch.Tensor) else v for k, v in context.items()}


def start_index(num_steps: int, strength: float) -> int:
    """The pipelines' ``get_timesteps``: how many of the ``num_steps`` steps ``strength`` skips."""
    init = min(num_steps * strength, num_steps)
    return int(max(num_steps - init, 0))


def train_steps(num_steps: int, strength: float, size: int, start: int) -> list[int]:
    """The stored steps: a window of ``size`` steps (0 = all) among the steps ``strength`` leaves."""
    return window_steps(num_steps - start_index(num_steps, strength), size, start)


def make_schedule(engine, num_steps: int, strength: float, height: int, width: int, device):
    """``(timesteps, sigmas)`` of the steps run: the pipeline's schedule after ``get_timesteps``."""
    pipe = engine.pipeline
    sched = type(pipe.scheduler).from_config(pipe.scheduler.config)
    if sched.config.get("stochastic_sampling", False):
        raise ValueError("the blend rollout needs a deterministic flow-matching scheduler (stochastic_sampling=False)")
    f = int(pipe.vae_scale_factor)
    seq_len = (int(height) // f // 2) * (int(width) // f // 2)
    sigmas = np.linspace(1.0, 1 / num_steps, num_steps)
    mu = engine.blend_mu(seq_len, num_steps)
    if sched.config.get("use_flow_sigmas", False):  # as the pipelines: their own sigmas, not the linspace
        sched.set_timesteps(num_steps, device=device, mu=mu)
    else:
        sched.set_timesteps(sigmas=sigmas, device=device, mu=mu)
    s = start_index(num_steps, strength)
    return sched.timesteps[s:], sched.sigmas[s:]


def _velocity(engine, model, latents, t, text, neg, context, guidance):
    return engine.blend_velocity(model, latents, t, text, context, neg=neg, guidance=guidance)


@torch.no_grad()
def rollout(engine, conditions: BlendConditions, groups, generators, *, num_steps: int, strength: float,
            guidance_scale: float = 1.0, prompt_embeds: BlendText, negative_embeds: BlendText | None = None,
            model=None, noise_level: float = 0.7, window: list[int] | None = None, reduction: str = "mean",
            decode: bool = True, step_callback=None) -> BlendRollout:
    """Sample B trajectories; the ``window`` steps are SDE steps with log-probabilities over the hole.

    Args:
        engine: the family's engine (a :class:`~.blend_engine.BlendFamily`). conditions: its ``encode_conditions``.
        groups: B group indices. generators: B generators. strength: the pipeline's ``strength``.
        prompt_embeds / negative_embeds: from the engine's ``encode_prompts`` for B samples.
        model: the transformer (default the pipeline's). noise_level: the SDE's ``a``; 0 = every step ODE.
        window: indices of the stochastic steps among the steps run (default all).
    """
    pipe = engine.pipeline
    transformer = model if model is not None else pipe.transformer
    groups = torch.as_tensor(groups, dtype=torch.long)
    b = len(groups)
    if len(generators) != b:
        raise ValueError(f"rollout needs one generator per sample: {len(generators)} generators for {b} samples")
    device = pipe.vae.device
    dtype = prompt_embeds.dtype
    height, width = conditions.init_image.shape[-2:]
    timesteps, sigmas = make_schedule(engine, num_steps, strength, height, width, device)
    n = len(timesteps)
    window = set(window_steps(n, 0, 0) if window is None else window) if noise_level > 0 else set()
    gens = list(generators)
    image_latents, noise, context = engine.blend_start(conditions, groups.tolist(), gens, device, dtype)
    mask = conditions.mask[groups].to(device=device, dtype=dtype)
    region = (mask > 0).to(torch.float32)
    s0 = sigmas[0].to(device=device, dtype=dtype)
    latents = s0 * noise + (1.0 - s0) * image_latents  # scale_noise at the first step
    guidance = float(guidance_scale)
    sigma_max = float(sigmas[1]) if len(sigmas) > 1 else 0.0

    trace = FlowTrace()
    for i, t in enumerate(timesteps):
        v = _velocity(engine, transformer, latents, t.expand(b).to(latents.dtype), prompt_embeds, negative_embeds,
                      context, guidance)
        # the step's sample before the blend: what a stored step keeps as the policy's action
        stepped = trace.step(v, sigmas, i, latents, i in window, noise_level, sigma_max, generator=gens,
                             reduction=reduction, region=region)
        proper = image_latents
        if i < n - 1:
            sn = sigmas[i + 1].to(device=device, dtype=image_latents.dtype)
            proper = sn * noise + (1.0 - sn) * image_latents
        latents = (1 - mask) * proper + mask * stepped
        if step_callback is not None:
            step_callback(i + 1, n)

    images = engine.blend_decode(latents, height, width) if decode else None
    return BlendRollout(
        sigmas=sigmas.detach().clone(), timesteps=timesteps.detach().clone(),
        **trace.stacked(b, latents.shape[1:], device), region=region, prompt_embeds=prompt_embeds, negative_embeds=negative_embeds, context=context, guidance=guidance,
        images=images, groups=groups, final_latents=latents,
    )


def policy_step(engine, model, ro: BlendRollout, b: torch.Tensor, tidx: torch.Tensor, *, noise_level: float,
                reduction: str = "mean") -> FlowStepOutput:
    """Re-evaluate stored steps under ``model`` (with grad): trajectories ``b`` at stored steps ``tidx``; the
    log-probability of the stored action over the stored region, as the rollout computed it."""
    dev = ro.latents.device
    b, tidx = b.to(dev), tidx.to(dev)
    step = ro.steps.to(dev)[tidx]
    x = ro.latents[b, tidx]
    dtype = ro.prompt_embeds.dtype
    t = ro.timesteps.to(dev)[step].to(dtype)
    sig = ro.sigmas.to(dev)
    neg = None if ro.negative_embeds is None else ro.negative_embeds[b]
    v = _velocity(engine, model, x.to(dtype), t, ro.prompt_embeds[b], neg, _index(ro.context, b), ro.guidance)
    sigma_max = float(sig[1]) if len(sig) > 1 else 0.0
    return flow_sde_step(v, sig[step], sig[step + 1], x, noise_level, sigma_max, prev_sample=ro.next_latents[b, tidx],
                         reduction=reduction, region=ro.region[b])


def cat_rollouts(chunks: list[BlendRollout]) -> BlendRollout:
    """Concatenate rollouts of the same schedule and window along the sample axis."""
    if len(chunks) == 1:
        return chunks[0]

    def cat(name):
        return torch.cat([getattr(c, name) for c in chunks])

    c0 = chunks[0]
    context = {k: torch.cat([c.context[k] for c in chunks]) if isinstance(v, torch.Tensor) else v
               for k, v in c0.context.items()}
    neg = None if c0.negative_embeds is None else BlendText.cat([c.negative_embeds for c in chunks])
    return BlendRollout(sigmas=c0.sigmas, timesteps=c0.timesteps, steps=c0.steps, latents=cat("latents"),
                        next_latents=cat("next_latents"), means=cat("means"), log_probs=cat("log_probs"),
                        region=cat("region"), prompt_embeds=BlendText.cat([c.prompt_embeds for c in chunks]),
                        negative_embeds=neg, context=context, guidance=c0.guidance,
                        images=None if c0.images is None else cat("images"), groups=cat("groups"),
                        final_latents=cat("final_latents"))


# --- training on the forward process (DiffusionNFT, Diffusion-DPO) ----------------------------------
@torch.no_grad()
def clean_batch(engine, conditions: BlendConditions, groups, images, text: BlendText, *, num_steps: int,
                strength: float, ring: int | None = 16, latents=None):
    """A :class:`~.forward_training.CleanBatch` ("flow") of B clean samples. The loss counts the blend
    mask's latent elements (what the model owns; ``ring`` ``None``: the whole latent): the ring around the
    hole that fill families train is the blended original here, never the model's."""
    from .forward_training import CleanBatch

    groups = torch.as_tensor(groups, dtype=torch.long)
    pipe = engine.pipeline
    dev, dtype = pipe.vae.device, text.dtype
    if latents is None:
        latents = engine.blend_encode((images.to(dev, pipe.vae.dtype) * 2 - 1))
    x0 = latents.to(dev).float()
    height, width = conditions.init_image.shape[-2:]
    gens = [torch.Generator().manual_seed(0) for _ in groups]  # the context only; its draws are unused
    _, _, context = engine.blend_start(conditions, groups.tolist(), gens, dev, dtype)
    mask = conditions.mask[groups].to(dev)
    loss_mask = None if ring is None else (mask > 0).float()
    timesteps, sigmas = make_schedule(engine, num_steps, strength, height, width, dev)
    return CleanBatch("flow", x0, dict(text=text, context=context), loss_mask, timesteps.detach().clone(),
                      sigmas[:-1].detach().float().clone())


def forward_predict(engine, model, batch, b: torch.Tensor, tidx: torch.Tensor, noise: torch.Tensor):
    """Rectified flow's forward noising and the unguided velocity: ``x_t = (1 - s) x0 + s eps``, target
    ``eps - x0``, ``x0_hat = x_t - s v``."""
    from .forward_training import Denoised

    dev = batch.x0.device
    b, tidx = b.to(dev), tidx.to(dev)
    x0 = batch.x0[b]
    noise = noise.to(dev, x0.dtype)
    level = batch.levels.to(dev)[tidx].reshape((-1,) + (1,) * (x0.ndim - 1))
    xt = (1 - level) * x0 + level * noise
    text = batch.inputs["text"][b]
    t = batch.timesteps.to(dev)[tidx].to(text.dtype)
    pred = _velocity(engine, model, xt.to(text.dtype), t, text, None, _index(batch.inputs["context"], b), 1.0).float()
    return Denoised(pred, noise - x0, xt - level * pred)
