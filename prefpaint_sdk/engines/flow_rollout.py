"""Flow-matching SDE rollouts with per-step log-probabilities for FLUX.1 Fill (``FluxFillPipeline``).

Written against diffusers 0.42.1: ``FluxFillPipeline.__call__`` (pipelines/flux/pipeline_flux_fill.py) and
``FlowMatchEulerDiscreteScheduler.step`` (schedulers/scheduling_flow_match_euler_discrete.py).

The inputs are built as ``FluxFillPipeline.__call__`` builds them: CLIP pooled + T5 prompt embeddings and
zero text ids (``encode_prompt``), the packed 2x2 latents and latent image ids, the masked-image latents
(``(z - shift_factor) * scaling_factor``) packed and concatenated with the packed pixel mask, the sigmas
``linspace(1, 1/n, n)`` shifted by ``mu = calculate_shift(image_seq_len)``, the guidance embedding and the
timestep ``t / 1000``. Random numbers come from one generator per sample in the pipeline's order: the VAE
``latent_dist.sample`` of the init image (its value is multiplied by 1 - sigma_0 = 0 at strength 1, but the
draw moves the generator), the initial noise, the VAE sample of the masked image, then one noise draw per
stochastic step. Samples of one (image, mask) group share one encoder pass of each image (batch 1, as the
pipeline encodes the init image), and draw their own latent samples from it.

What differs from ``FlowMatchEulerDiscreteScheduler.step`` (which computes ``x + (sigma_next - sigma) * v`` in
float32 and casts back):

1. Steps inside the **window** (``window`` consecutive step indices) are Flow-GRPO's SDE step with its exact
   Gaussian log-probability, :func:`prefpaint_sdk.samplers.flow_sde.flow_sde_step` (the maths, per-sample
   sigmas, and a given ``x_next`` evaluated instead of sampled are described there).
2. Steps outside the window are the scheduler's ODE step, operation for operation (so with ``a = 0`` or an
   empty window the rollout is the pipeline's output).

Only ``strength = 1`` (inpaint from pure noise) is covered; ``stochastic_sampling`` schedulers are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..samplers.flow_sde import FlowStepOutput, FlowTrace, flow_sde_step
from .batched import BatchedText
from .ddim_rollout import _mask_pil, logprob_region_mask

__all__ = ["FlowConditions", "FlowRollout", "FluxText", "cat_rollouts", "encode_conditions",
           "encode_prompts", "make_scheduler", "policy_step", "rollout", "window_steps"]


@dataclass
class FluxText(BatchedText):
    """FLUX's text conditioning for B samples: T5 hidden states (B, L, D), the CLIP pooled embedding (B, P),
    and the (L, 3) zero text ids shared by all samples. Indexes, concatenates and moves like a tensor."""

    hidden: torch.Tensor
    pooled: torch.Tensor
    text_ids: torch.Tensor

    shared = ("text_ids",)


@dataclass
class FlowConditions:
    """Per-group inputs, computed once per (image, mask).

    Attributes:
        init_image: (G, 3, H, W) images in [-1, 1], float32. mask_pixels: (G, 1, H, W) binarised, 1 = fill.
        packed_mask: (G, L, 4 f^2) the pixel mask packed as the transformer's last input channels.
        image_dists / masked_dists: one VAE ``latent_dist`` per group, of the image and of the masked image.
    """

    init_image: torch.Tensor
    mask_pixels: torch.Tensor
    packed_mask: torch.Tensor
    image_dists: list
    masked_dists: list

    def __len__(self) -> int:
        return self.init_image.shape[0]


@dataclass
class FlowRollout:
    """B trajectories over T flow steps, of which the ``steps`` (window) were stochastic and are stored.

    Attributes:
        sigmas: (T + 1,) the schedule's sigmas (last 0). timesteps: (T,) the scheduler's timesteps.
        steps: (k,) the schedule indices of the stored (window) steps.
        latents / next_latents / means: (B, k, L, C) packed x before and after each stored step, its mean.
        log_probs: (B, k). cond_latents: (B, L, C') packed masked-image latents and mask.
        prompt_embeds: a :class:`FluxText`. negative_embeds: always ``None`` (FLUX has no negative prompt).
        latent_ids: (L, 3). guidance: the distilled guidance. images: (B, 3, H, W) in [0, 1]. groups: (B,).
    """

    sigmas: torch.Tensor
    timesteps: torch.Tensor
    steps: torch.Tensor
    latents: torch.Tensor
    next_latents: torch.Tensor
    means: torch.Tensor
    log_probs: torch.Tensor
    cond_latents: torch.Tensor
    prompt_embeds: FluxText
    latent_ids: torch.Tensor
    guidance: float
    images: torch.Tensor | None
    groups: torch.Tensor
    negative_embeds: None = None
    final_latents: torch.Tensor | None = None  # (B, L, C) the sampled clean latents, packed (NFT trains on them)
    region: torch.Tensor | None = None  # (B, L, C) 0/1: what the log-probs count (logprob_region="mask"); None: all

    def __len__(self) -> int:
        return self.latents.shape[0]


def window_steps(num_steps: int, size: int, start: int) -> list[int]:
    """The schedule indices of a window of ``size`` consecutive stochastic steps from ``start`` (0 = all)."""
    if size <= 0 or size >= num_steps:
        return list(range(num_steps))
    start = max(0, min(int(start), num_steps - size))
    return list(range(start, start + size))


def make_scheduler(pipe, num_steps: int, height: int, width: int, device):
    """A fresh copy of the pipeline's ``FlowMatchEulerDiscreteScheduler`` with the pipeline's sigmas and ``mu``."""
    from diffusers.pipelines.flux.pipeline_flux_fill import calculate_shift

    sched = type(pipe.scheduler).from_config(pipe.scheduler.config)
    if sched.config.get("stochastic_sampling", False):
        raise ValueError("the FLUX rollout needs a deterministic flow-matching scheduler (stochastic_sampling=False)")
    sigmas = np.linspace(1.0, 1 / num_steps, num_steps)
    f = int(pipe.vae_scale_factor)
    seq_len = (int(height) // f // 2) * (int(width) // f // 2)
    cfg = sched.config
    mu = calculate_shift(seq_len, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                         cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))
    sched.set_timesteps(sigmas=sigmas, device=device, mu=mu)
    sched.set_begin_index(0)
    return sched


@torch.no_grad()
def encode_conditions(pipe, images, masks, height: int, width: int, device=None, dtype=None) -> FlowConditions:
    """Preprocess G (image, mask) pairs as ``FluxFillPipeline`` does; VAE-encode each image and masked image once."""
    device = device or pipe.vae.device
    dtype = dtype or pipe.vae.dtype
    masks = [_mask_pil(m) for m in masks]
    init_image = pipe.image_processor.preprocess(images, height=height, width=width).to(dtype=torch.float32)
    mask_pixels = pipe.mask_processor.preprocess(masks, height=height, width=width)
    masked = (init_image * (1 - mask_pixels)).to(device=device, dtype=dtype)
    g = init_image.shape[0]
    f = int(pipe.vae_scale_factor)
    h, w = 2 * (int(height) // (f * 2)), 2 * (int(width) // (f * 2))
    # prepare_mask_latents: (G, 1, H, W) -> (G, f*f, h, w) -> packed (G, L, 4 f^2)
    m = mask_pixels[:, 0].view(g, h, f, w, f).permute(0, 2, 4, 1, 3).reshape(g, f * f, h, w)
    packed_mask = pipe._pack_latents(m, g, f * f, h, w).to(device=device, dtype=dtype)
    img = init_image.to(device=device, dtype=dtype)
    image_dists = [pipe.vae.encode(img[i:i + 1]).latent_dist for i in range(g)]
    masked_dists = [pipe.vae.encode(masked[i:i + 1]).latent_dist for i in range(g)]
    return FlowConditions(init_image=init_image, mask_pixels=mask_pixels, packed_mask=packed_mask,
                          image_dists=image_dists, masked_dists=masked_dists)


@torch.no_grad()
def encode_prompts(pipe, prompt: str, n: int, device, max_sequence_length: int = 512) -> FluxText:
    """The pipeline's ``encode_prompt`` for ``n`` copies of ``prompt`` (T5 for ``prompt_2`` too, as its default)."""
    hidden, pooled, text_ids = pipe.encode_prompt(prompt=[prompt] * n, prompt_2=None, device=device,
                                                  num_images_per_prompt=1, max_sequence_length=max_sequence_length)
    return FluxText(hidden, pooled, text_ids)


def predict_velocity(transformer, latents, cond_latents, timestep, guidance, text: FluxText, latent_ids):
    """The transformer's velocity, called as ``FluxFillPipeline.__call__`` calls it; ``timestep`` is (B,)."""
    return transformer(hidden_states=torch.cat((latents, cond_latents), dim=2), timestep=timestep / 1000,
                       guidance=guidance, pooled_projections=text.pooled, encoder_hidden_states=text.hidden,
                       txt_ids=text.text_ids, img_ids=latent_ids, return_dict=False)[0]


def _guidance(transformer, value: float, b: int, device):
    # Training calls this with the DDP-wrapped transformer (multi-process), whose config is on ``.module``.
    config = getattr(transformer, "module", transformer).config
    if not config.guidance_embeds:
        return None
    return torch.full([1], value, device=device, dtype=torch.float32).expand(b)


@torch.no_grad()
def rollout(pipe, conditions: FlowConditions, groups, generators, *, num_steps: int = 50,
            guidance_scale: float = 30.0, prompt_embeds: FluxText | None = None, model=None, noise_level: float = 0.7,
            window: list[int] | None = None, reduction: str = "mean", decode: bool = True,
            step_callback=None, logprob_region: str = "full") -> FlowRollout:
    """Sample B trajectories; the ``window`` steps are SDE steps with log-probabilities, the rest ODE steps.

    Args:
        pipe: the ``FluxFillPipeline`` (its VAE, scheduler config, processors; its transformer by default).
        conditions: from :func:`encode_conditions`. groups: B group indices. generators: B generators.
        num_steps: flow steps. guidance_scale: FLUX's distilled guidance.
        prompt_embeds: a :class:`FluxText` for B samples (default: the empty prompt).
        model: the transformer to sample with (default ``pipe.transformer``).
        noise_level: the SDE noise level ``a``; 0 makes every step an ODE step and stores none.
        window: schedule indices of the stochastic steps (default: all, see :func:`window_steps`).
        reduction: "mean" or "sum" over latent elements. decode: decode the final latents.
        logprob_region: "full" (every latent element) or "mask" (the latent cells any hole pixel lies in,
            packed as the latents).
    """
    from diffusers.utils.torch_utils import randn_tensor

    transformer = model if model is not None else pipe.transformer
    groups = torch.as_tensor(groups, dtype=torch.long)
    b = len(groups)
    if len(generators) != b:
        raise ValueError(f"rollout needs one generator per sample: {len(generators)} generators for {b} samples")
    device = pipe.vae.device
    if prompt_embeds is None:
        prompt_embeds = encode_prompts(pipe, "", b, device)
    dtype = prompt_embeds.dtype
    height, width = conditions.init_image.shape[-2:]
    sched = make_scheduler(pipe, num_steps, height, width, device)
    timesteps, sigmas = sched.timesteps, sched.sigmas
    window = set(window_steps(num_steps, 0, 0) if window is None else window) if noise_level > 0 else set()
    f = int(pipe.vae_scale_factor)
    h, w = 2 * (int(height) // (f * 2)), 2 * (int(width) // (f * 2))
    c = int(pipe.vae.config.latent_channels)
    shift, scale = pipe.vae.config.shift_factor, pipe.vae.config.scaling_factor
    gens = list(generators)
    gl = groups.tolist()

    # Generator order: 1) the init image's VAE sample, 2) the initial noise, 3) the masked image's VAE sample.
    image_latents = torch.cat([conditions.image_dists[g].sample(gens[i]) for i, g in enumerate(gl)])
    image_latents = ((image_latents - shift) * scale).to(device=device, dtype=dtype)
    noise = randn_tensor((b, c, h, w), generator=gens, device=device, dtype=dtype)
    latents = sched.scale_noise(image_latents, timesteps[:1].repeat(b), noise)
    latents = pipe._pack_latents(latents, b, c, h, w)
    latent_ids = pipe._prepare_latent_image_ids(b, h // 2, w // 2, device, dtype)
    masked = torch.cat([conditions.masked_dists[g].sample(gens[i]) for i, g in enumerate(gl)])
    masked = ((masked - shift) * scale).to(device=device, dtype=dtype)
    cond_latents = torch.cat((pipe._pack_latents(masked, b, c, h, w),
                              conditions.packed_mask[groups].to(device=device, dtype=dtype)), dim=-1)
    guidance = _guidance(transformer, guidance_scale, b, device)
    sigma_max = float(sigmas[1]) if len(sigmas) > 1 else 0.0
    region = logprob_region_mask(conditions.mask_pixels[groups], (h, w), logprob_region)
    if region is not None:  # packed as the latents are: 2x2 patches, every channel
        region = pipe._pack_latents(region.to(device).expand(b, c, h, w).contiguous(), b, c, h, w)

    trace = FlowTrace()
    for i, t in enumerate(timesteps):
        v = predict_velocity(transformer, latents, cond_latents, t.expand(b).to(latents.dtype), guidance,
                             prompt_embeds, latent_ids)
        latents = trace.step(v, sigmas, i, latents, i in window, noise_level, sigma_max, generator=gens,
                             reduction=reduction, region=region)
        if step_callback is not None:
            step_callback(i + 1, len(timesteps))

    images = decode_latents(pipe, latents, height, width) if decode else None
    return FlowRollout(
        sigmas=sigmas.detach().clone(), timesteps=timesteps.detach().clone(), **trace.stacked(b, latents.shape[1:], device),
        cond_latents=cond_latents, prompt_embeds=prompt_embeds, latent_ids=latent_ids, guidance=float(guidance_scale),
        images=images, groups=groups, final_latents=latents, region=region,
    )


@torch.no_grad()
def decode_latents(pipe, latents: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Unpack and decode as the pipeline does; images in [0, 1], (B, 3, H, W) float32 (``output_type="pt"``)."""
    lat = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor)
    lat = (lat / pipe.vae.config.scaling_factor) + pipe.vae.config.shift_factor
    image = pipe.vae.decode(lat, return_dict=False)[0]
    return pipe.image_processor.postprocess(image, output_type="pt").float()


def policy_step(transformer, ro: FlowRollout, b: torch.Tensor, tidx: torch.Tensor, *, noise_level: float,
                reduction: str = "mean") -> FlowStepOutput:
    """Re-evaluate stored steps under ``transformer`` (with grad): trajectories ``b`` at stored steps ``tidx``
    (indices into ``ro.steps``, one per trajectory). Returns the log-prob of the stored x_next."""
    dev = ro.latents.device
    b, tidx = b.to(dev), tidx.to(dev)
    step = ro.steps.to(dev)[tidx]
    x = ro.latents[b, tidx]
    dtype = ro.prompt_embeds.dtype
    t = ro.timesteps.to(dev)[step].to(dtype)
    sig = ro.sigmas.to(dev)
    guidance = _guidance(transformer, ro.guidance, len(b), dev)
    v = predict_velocity(transformer, x.to(dtype), ro.cond_latents[b], t, guidance, ro.prompt_embeds[b], ro.latent_ids)
    sigma_max = float(sig[1]) if len(sig) > 1 else 0.0
    return flow_sde_step(v, sig[step], sig[step + 1], x, noise_level, sigma_max, prev_sample=ro.next_latents[b, tidx],
                         reduction=reduction, region=None if ro.region is None else ro.region[b])


def cat_rollouts(chunks: list[FlowRollout]) -> FlowRollout:
    """Concatenate rollouts of the same schedule and window along the sample axis."""
    if len(chunks) == 1:
        return chunks[0]

    def cat(name):
        return torch.cat([getattr(c, name) for c in chunks])

    text = FluxText(torch.cat([c.prompt_embeds.hidden for c in chunks]),
                    torch.cat([c.prompt_embeds.pooled for c in chunks]), chunks[0].prompt_embeds.text_ids)
    c0 = chunks[0]
    return FlowRollout(sigmas=c0.sigmas, timesteps=c0.timesteps, steps=c0.steps, latents=cat("latents"),
                       next_latents=cat("next_latents"), means=cat("means"), log_probs=cat("log_probs"),
                       cond_latents=cat("cond_latents"), prompt_embeds=text, latent_ids=c0.latent_ids,
                       guidance=c0.guidance, images=None if c0.images is None else cat("images"), groups=cat("groups"),
                       final_latents=cat("final_latents"), region=None if c0.region is None else cat("region"))

