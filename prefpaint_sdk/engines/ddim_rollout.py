"""DDIM rollouts with per-step log-probabilities for the SD inpainting engine (``StableDiffusionInpaintPipeline``).

The rollout uses the pipeline's own parts (``encode_prompt``, ``image_processor``/``mask_processor``,
the VAE, the UNet and a ``DDIMScheduler`` built from the pipeline's scheduler config) and draws every
random number from the same generators in the same order as the pipeline called with a list of
per-sample generators: the initial noise, then the VAE ``latent_dist.sample`` of the masked image, then
one variance-noise draw per DDIM step. So sample i of a rollout equals the pipeline's output for
``generator[i]`` bit for bit (tested), while storing what RL needs: x_t, x_{t-1}, the step mean and the
log-probability of every step.

Samples that share an (image, mask) form a group; the group's masked image goes through the VAE encoder
once, and each sample then draws its own ``latent_dist.sample`` from that one encoding.

Only ``strength=1`` (inpaint from pure noise, as PrefPaint samples) and 9-channel inpainting UNets are
covered. SDXL inpainting runs through the same code: its text conditioning is a :class:`TextConditioning`
(the two encoders' hidden states, the pooled embedding and the size/crop time ids, as
``StableDiffusionXLInpaintPipeline.__call__`` builds them in diffusers 0.42.1), passed to the UNet as
``added_cond_kwargs``; SD's is a plain tensor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ..samplers.ddim import DDIMStepOutput, ddim_step_with_logprob
from .batched import BatchedText

__all__ = ["Conditions", "Rollout", "TextConditioning", "encode_conditions", "encode_prompts", "rollout", "policy_step",
           "make_scheduler"]


@dataclass
class TextConditioning(BatchedText):
    """SDXL's text conditioning for B samples: behaves like the (B, L, D) embeddings tensor where the rollout
    and the update index, concatenate or move it, and carries the UNet's ``added_cond_kwargs``.

    Attributes:
        hidden: (B, L, D) the two text encoders' penultimate hidden states, concatenated.
        pooled: (B, P) the second encoder's pooled (projected) embedding (``text_embeds``).
        time_ids: (B, 6) original size, crop top-left and target size (``time_ids``).
    """

    hidden: torch.Tensor
    pooled: torch.Tensor
    time_ids: torch.Tensor


def cat_text(parts: list):
    """``torch.cat`` for embeddings tensors or :class:`TextConditioning` alike."""
    if isinstance(parts[0], TextConditioning):
        return TextConditioning(torch.cat([p.hidden for p in parts]), torch.cat([p.pooled for p in parts]),
                                torch.cat([p.time_ids for p in parts]))
    return torch.cat(parts)


@dataclass
class Conditions:
    """The per-group inputs of a rollout, computed once per (image, mask).

    Attributes:
        init_image: the images in [-1, 1], (G, 3, H, W) float32 (the pipeline's ``init_image``).
        mask_pixels: the binarised masks at pixel size, (G, 1, H, W), 1 = fill.
        mask_latents: the masks at latent size, (G, 1, h, w), as the UNet's 5th input channel.
        latent_dists: one VAE ``latent_dist`` per group, each encoded from the group's masked image.
    """

    init_image: torch.Tensor
    mask_pixels: torch.Tensor
    mask_latents: torch.Tensor
    latent_dists: list = field(default_factory=list)

    def __len__(self) -> int:
        return self.init_image.shape[0]


@dataclass
class Rollout:
    """Trajectories of B samples over T DDIM steps (tensors on the rollout device, no grad).

    Attributes:
        timesteps: (T,) the scheduler's timesteps, in sampling order.
        latents: (B, T, 4, h, w) x_t before each step.
        next_latents: (B, T, 4, h, w) x_{t-1} after each step.
        means: (B, T, 4, h, w) the Gaussian mean of each step.
        log_probs: (B, T) log-probability of each step (reduced as ``reduction``).
        mask_latents / masked_image_latents: (B, 1|4, h, w) the UNet's conditioning channels.
        prompt_embeds: (B, L, D), or a :class:`TextConditioning` (SDXL); negative_embeds likewise, or ``None``
            without guidance.
        images: (B, 3, H, W) decoded images in [0, 1] (the pipeline's ``output_type="pt"``).
        groups: (B,) the group index of each sample.
        final_latents: (B, 4, h, w) the sampled clean latents (what ``images`` decode; NFT trains on them).
        region: (B, 1, h, w) the latent cells the log-probabilities count (``logprob_region="mask"``: the
            cells any hole pixel lies in), or ``None``: every element (``"full"``, the default).
    """

    timesteps: torch.Tensor
    latents: torch.Tensor
    next_latents: torch.Tensor
    means: torch.Tensor
    log_probs: torch.Tensor
    mask_latents: torch.Tensor
    masked_image_latents: torch.Tensor
    prompt_embeds: torch.Tensor | TextConditioning
    negative_embeds: torch.Tensor | TextConditioning | None
    images: torch.Tensor
    groups: torch.Tensor
    final_latents: torch.Tensor | None = None
    region: torch.Tensor | None = None

    def __len__(self) -> int:
        return self.latents.shape[0]


def logprob_region_mask(mask_pixels: torch.Tensor, latent_hw: tuple[int, int], region: str):
    """The latent cells a log-probability counts: ``None`` for ``"full"``; for ``"mask"`` (B, 1, h, w) 0/1, the
    cells any hole pixel of ``mask_pixels`` (B, 1, H, W) lies in (the pasted-back result depends on them only)."""
    if region == "full":
        return None
    if region != "mask":
        raise ValueError(f"logprob_region must be 'full' or 'mask', got {region!r}")
    from .forward_training import latent_loss_mask

    return latent_loss_mask(mask_pixels.float(), latent_hw, ring=0)


def make_scheduler(pipe, num_steps: int, device):
    """A fresh ``DDIMScheduler`` from the pipeline's scheduler config, with ``num_steps`` timesteps."""
    from diffusers import DDIMScheduler

    sched = DDIMScheduler.from_config(pipe.scheduler.config)
    sched.set_timesteps(num_steps, device=device)
    return sched


@torch.no_grad()
def encode_conditions(pipe, images, masks, height: int, width: int, device=None, dtype=None) -> Conditions:
    """Preprocess G (image, mask) pairs as the pipeline does and VAE-encode each masked image once.

    Args:
        pipe: the ``StableDiffusionInpaintPipeline`` whose image/mask processors and VAE are used.
        images: G PIL images (or anything ``image_processor.preprocess`` takes).
        masks: G masks: PIL "L" images or bool arrays (True = fill).
        height / width: working size in pixels (multiples of 8).
        device / dtype: where the VAE runs (default: the VAE's).
    """
    device = device or pipe.vae.device
    dtype = dtype or pipe.vae.dtype
    masks = [_mask_pil(m) for m in masks]
    init_image = pipe.image_processor.preprocess(images, height=height, width=width).to(dtype=torch.float32)
    mask_pixels = pipe.mask_processor.preprocess(masks, height=height, width=width)
    masked = init_image * (mask_pixels < 0.5)
    f = pipe.vae_scale_factor
    mask_latents = torch.nn.functional.interpolate(mask_pixels, size=(height // f, width // f))
    mask_latents = mask_latents.to(device=device, dtype=dtype)
    masked = masked.to(device=device, dtype=dtype)
    # One encoder pass per group, batch 1 as the pipeline encodes, so the moments are identical to its own.
    dists = [pipe.vae.encode(masked[i:i + 1]).latent_dist for i in range(masked.shape[0])]
    return Conditions(init_image=init_image, mask_pixels=mask_pixels, mask_latents=mask_latents, latent_dists=dists)


def _mask_pil(m):
    from PIL import Image

    if isinstance(m, np.ndarray):
        return Image.fromarray(m.astype(np.uint8) * 255, "L")
    return m


@torch.no_grad()
def encode_prompts(pipe, prompt: str, negative_prompt: str, n: int, guidance_scale: float, device,
                   size: tuple[int, int] | None = None):
    """Prompt (and negative prompt when guidance is on) embeddings for ``n`` samples, as the pipeline makes them.

    For SDXL (a pipeline with ``text_encoder_2``) each is a :class:`TextConditioning` whose time ids describe
    an image of ``size`` = (height, width) px (default: the UNet's working size), as the pipeline's defaults.
    """
    do_cfg = guidance_scale > 1.0
    # An empty negative prompt is passed as none, as the sampling call does (SDXL: zeroed negative embeddings).
    negatives = [negative_prompt] * n if do_cfg and negative_prompt else None
    if getattr(pipe, "text_encoder_2", None) is None:
        pos, neg = pipe.encode_prompt([prompt] * n, device, 1, do_cfg, negatives)
        return pos, (neg if do_cfg else None)
    pos, neg, pooled, neg_pooled = pipe.encode_prompt(prompt=[prompt] * n, device=device, num_images_per_prompt=1,
                                                      do_classifier_free_guidance=do_cfg, negative_prompt=negatives)
    if size is None:
        side = int(pipe.unet.config.sample_size) * int(pipe.vae_scale_factor)
        size = (side, side)
    size = tuple(int(s) for s in size)
    time_ids, neg_time_ids = pipe._get_add_time_ids(
        size, (0, 0), size, 6.0, 2.5, size, (0, 0), size, dtype=pos.dtype,
        text_encoder_projection_dim=int(pipe.text_encoder_2.config.projection_dim))
    pos = TextConditioning(pos, pooled, time_ids.repeat(n, 1).to(device))
    neg = TextConditioning(neg, neg_pooled, neg_time_ids.repeat(n, 1).to(device)) if do_cfg else None
    return pos, neg


def _unet_input(scheduler, latents, t, mask_latents, masked_latents, do_cfg: bool):
    x = torch.cat([latents] * 2) if do_cfg else latents
    x = scheduler.scale_model_input(x, t)
    m = torch.cat([mask_latents] * 2) if do_cfg else mask_latents
    ml = torch.cat([masked_latents] * 2) if do_cfg else masked_latents
    return torch.cat([x, m, ml], dim=1)


def predict_noise(unet, scheduler, latents, t, mask_latents, masked_latents, prompt_embeds, negative_embeds,
                  guidance_scale: float) -> torch.Tensor:
    """The (guided) noise prediction of ``unet`` at timestep(s) ``t``, as the pipeline computes it."""
    do_cfg = negative_embeds is not None and guidance_scale > 1.0
    x = _unet_input(scheduler, latents, t, mask_latents, masked_latents, do_cfg)
    embeds = cat_text([negative_embeds, prompt_embeds]) if do_cfg else prompt_embeds
    tt = torch.cat([t] * 2) if (do_cfg and torch.is_tensor(t) and t.ndim == 1) else t
    if isinstance(embeds, TextConditioning):  # SDXL: pooled text and time ids as added conditioning
        added = {"text_embeds": embeds.pooled, "time_ids": embeds.time_ids}
        noise = unet(x, tt, encoder_hidden_states=embeds.hidden, added_cond_kwargs=added, return_dict=False)[0]
    else:
        noise = unet(x, tt, encoder_hidden_states=embeds, return_dict=False)[0]
    if do_cfg:
        uncond, cond = noise.chunk(2)
        noise = uncond + guidance_scale * (cond - uncond)
    return noise


@torch.no_grad()
def rollout(pipe, conditions: Conditions, groups, generators, *, num_steps: int = 50, eta: float = 1.0,
            guidance_scale: float = 1.0, prompt_embeds=None, negative_embeds=None, unet=None,
            reduction: str = "mean", decode: bool = True, step_callback=None, logprob_region: str = "full") -> Rollout:
    """Sample B trajectories with DDIM and record every step's latents, mean and log-probability.

    Args:
        pipe: the inpainting pipeline (its VAE, scheduler config and processors are used).
        conditions: from :func:`encode_conditions`.
        groups: B group indices into ``conditions`` (samples of one group share the image and mask).
        generators: B ``torch.Generator``s, one per sample; consumed in the pipeline's order.
        num_steps: DDIM steps. eta: DDIM noise (> 0). guidance_scale: CFG scale (needs negative_embeds).
        prompt_embeds / negative_embeds: from :func:`encode_prompts` for B samples (default: empty prompt).
        unet: the policy to sample with (default ``pipe.unet``; pass the old policy in training).
        reduction: "mean" or "sum" log-prob reduction over latent elements.
        decode: decode the final latents to images.
        step_callback: called as ``step_callback(i, T)`` after every step.
        logprob_region: "full" (every latent element) or "mask" (the hole's cells, :func:`logprob_region_mask`).

    Returns:
        A :class:`Rollout`.
    """
    from diffusers.utils.torch_utils import randn_tensor

    unet = unet if unet is not None else pipe.unet
    groups = torch.as_tensor(groups, dtype=torch.long)
    b = len(groups)
    if len(generators) != b:
        raise ValueError(f"rollout needs one generator per sample: {len(generators)} generators for {b} samples")
    device = pipe.vae.device
    if prompt_embeds is None:
        size = tuple(conditions.init_image.shape[-2:])
        prompt_embeds, negative_embeds = encode_prompts(pipe, "", "", b, guidance_scale, device, size=size)
    dtype = prompt_embeds.dtype
    scheduler = make_scheduler(pipe, num_steps, device)
    f = pipe.vae_scale_factor
    h, w = conditions.init_image.shape[-2] // f, conditions.init_image.shape[-1] // f
    c = pipe.vae.config.latent_channels
    gens = list(generators)

    # Generator order: 1) initial noise for every sample, 2) the VAE sample of its masked image, 3) steps.
    latents = randn_tensor((b, c, h, w), generator=gens, device=device, dtype=dtype) * scheduler.init_noise_sigma
    sf = pipe.vae.config.scaling_factor
    masked_latents = torch.cat(
        [conditions.latent_dists[int(g)].sample(gens[i]) for i, g in enumerate(groups.tolist())], dim=0
    )
    masked_latents = (sf * masked_latents).to(device=device, dtype=dtype)
    mask_latents = conditions.mask_latents[groups].to(device=device, dtype=dtype)
    region = logprob_region_mask(conditions.mask_pixels[groups], (h, w), logprob_region)
    region = None if region is None else region.to(device)

    xs, xs_next, means, logps = [], [], [], []
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        noise = predict_noise(unet, scheduler, latents, t, mask_latents, masked_latents, prompt_embeds,
                              negative_embeds, guidance_scale)
        out: DDIMStepOutput = ddim_step_with_logprob(scheduler, noise, t, latents, eta=eta, generator=gens,
                                                     reduction=reduction, region=region)
        xs.append(latents)
        xs_next.append(out.prev_sample)
        means.append(out.mean)
        logps.append(out.log_prob)
        latents = out.prev_sample
        if step_callback is not None:
            step_callback(i + 1, len(timesteps))

    images = decode_latents(pipe, latents) if decode else None
    return Rollout(
        timesteps=timesteps.detach().clone(), latents=torch.stack(xs, 1), next_latents=torch.stack(xs_next, 1),
        means=torch.stack(means, 1), log_probs=torch.stack(logps, 1), mask_latents=mask_latents,
        masked_image_latents=masked_latents, prompt_embeds=prompt_embeds, negative_embeds=negative_embeds,
        images=images, groups=groups, final_latents=latents, region=region,
    )


@torch.no_grad()
def decode_latents(pipe, latents: torch.Tensor) -> torch.Tensor:
    """Decode latents to images in [0, 1], (B, 3, H, W) float32, as the pipeline's ``output_type="pt"``."""
    image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    return pipe.image_processor.postprocess(image, output_type="pt", do_denormalize=[True] * image.shape[0]).float()


def policy_step(unet, scheduler, latents, timesteps, next_latents, mask_latents, masked_latents, prompt_embeds,
                negative_embeds=None, *, guidance_scale: float = 1.0, eta: float = 1.0,
                reduction: str = "mean", region: torch.Tensor | None = None) -> DDIMStepOutput:
    """Re-evaluate stored steps under ``unet`` (with grad): the log-prob of x_{t-1} given x_t, per sample.

    ``timesteps`` is a (B,) tensor so each sample may sit at a different step.
    """
    t = timesteps.to(latents.device)
    noise = predict_noise(unet, scheduler, latents, t, mask_latents, masked_latents, prompt_embeds,
                          negative_embeds, guidance_scale)
    return ddim_step_with_logprob(scheduler, noise.float(), timesteps, latents.float(), eta=eta,
                                  prev_sample=next_latents.float(), reduction=reduction, region=region)


def cat_rollouts(chunks: list[Rollout]) -> Rollout:
    """Concatenate rollouts of the same steps along the sample axis (group ids index the same conditions)."""
    if len(chunks) == 1:
        return chunks[0]
    offset_groups = torch.cat([c.groups for c in chunks])

    def cat(name):
        return torch.cat([getattr(c, name) for c in chunks])

    return Rollout(
        timesteps=chunks[0].timesteps, latents=cat("latents"), next_latents=cat("next_latents"), means=cat("means"),
        log_probs=cat("log_probs"), mask_latents=cat("mask_latents"), masked_image_latents=cat("masked_image_latents"),
        prompt_embeds=cat_text([c.prompt_embeds for c in chunks]),
        negative_embeds=None if chunks[0].negative_embeds is None else cat_text([c.negative_embeds for c in chunks]),
        images=cat("images"), groups=offset_groups, final_latents=cat("final_latents"),
        region=None if chunks[0].region is None else cat("region"),
    )
