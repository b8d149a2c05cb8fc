"""Training on the forward process (DiffusionNFT, Diffusion-DPO): noise clean samples, predict, and say what
the prediction implies.

Both algorithms need, per family, only this: clean latents ``x0`` of given images, the model's inputs for
them (mask, masked-image latents, text), a noisy ``x_t`` at a time of the family's own inference schedule,
the model's prediction there with grad, its training target, and the clean sample the prediction implies
(``x0_hat``, an affine map of the prediction). Two parameterisations:

* **"eps"** (SD, SDXL; diffusers' ``DDPMScheduler.add_noise`` forward process, ``abar`` = ``alphas_cumprod[t]``):
  ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps``. With ``prediction_type="epsilon"`` the target is ``eps`` and
  ``x0_hat = (x_t - sqrt(1 - abar) pred) / sqrt(abar)``; with ``"v_prediction"`` the target is
  ``sqrt(abar) eps - sqrt(1 - abar) x0`` and ``x0_hat = sqrt(abar) x_t - sqrt(1 - abar) pred``.
* **"flow"** (FLUX Fill; rectified flow as ``FlowMatchEulerDiscreteScheduler.scale_noise``):
  ``x_t = (1 - s) x0 + s eps``, target ``eps - x0``, ``x0_hat = x_t - s pred``.

The times are those the sampler visits with ``num_steps`` steps (DDIM timesteps; the shifted flow sigmas),
so training sees the noise levels sampling uses. Guidance is not applied (no classifier-free pass); FLUX's
distilled guidance is an input of its transformer and is passed as sampling passes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

__all__ = ["CleanBatch", "Denoised", "clean_batch", "forward_predict", "latent_loss_mask"]


def latent_loss_mask(mask: torch.Tensor, latent_hw: tuple[int, int], ring: int | None = 16) -> torch.Tensor | None:
    """The loss weight (B, 1, h, w) in {0, 1} of pixel masks (B, 1, H, W) (white = hole, >= 0.5).

    The hole is dilated by ``ring`` pixels (a square window), then a latent cell counts when any pixel of
    it does (max-pooling down to ``latent_hw``). ``ring=None`` returns ``None``: no mask, the full image.

    Raises:
        ValueError: a negative ring, or a mask that is not (B, 1, H, W).
    """
    if ring is None:
        return None
    if ring < 0:
        raise ValueError(f"ring must be >= 0 pixels (or None for the full image), got {ring}")
    if mask.ndim != 4 or mask.shape[1] != 1:
        raise ValueError(f"mask must be (B, 1, H, W), got {tuple(mask.shape)}")
    m = (mask >= 0.5).float()
    if ring:
        m = torch.nn.functional.max_pool2d(m, 2 * ring + 1, stride=1, padding=ring)
    return torch.nn.functional.adaptive_max_pool2d(m, latent_hw)


@dataclass
class CleanBatch:
    """B clean samples and everything the model needs to denoise them (on the device, no grad).

    Attributes:
        kind: "eps" or "flow". x0: (B, ...) clean latents in the model's layout (packed for FLUX).
        inputs: the family's per-sample model inputs (mask and masked-image latents, text, ...).
        loss_mask: weight broadcastable to ``x0`` (hole plus ring), or ``None`` for the full image.
        timesteps: (S,) the model's timestep values of the schedule; levels: (S,) ``abar`` ("eps") or
            sigma ("flow") at each.
    """

    kind: str
    x0: torch.Tensor
    inputs: dict[str, Any]
    loss_mask: torch.Tensor | None
    timesteps: torch.Tensor
    levels: torch.Tensor
    prediction_type: str = "epsilon"

    def __len__(self) -> int:
        return self.x0.shape[0]


@dataclass
class Denoised:
    """The prediction at ``x_t`` (with grad), its target, and the implied clean sample (with grad)."""

    pred: torch.Tensor
    target: torch.Tensor
    x0_hat: torch.Tensor


def _index(value, b):
    return value[b] if value is not None else None


@torch.no_grad()
def clean_batch(pipe, kind: str, conditions, groups, images: torch.Tensor, text, *, num_steps: int,
                ring: int | None = 16, guidance_scale: float = 1.0, latents: torch.Tensor | None = None) -> CleanBatch:
    """Encode B clean images (in [0, 1], (B, 3, H, W), the hole filled, the rest the input) for training.

    ``latents``: the clean latents themselves, in the model's layout (a rollout's ``final_latents``: what the
    sampler made), used instead of encoding ``images``. Through the VAE, ``encode(decode(z))`` is not ``z``,
    so a sample's own latents are the exact target; rated images (DPO) have only their pixels.

    Args:
        pipe: the family's pipeline (its VAE and scheduler). kind: "eps" or "flow".
        conditions: the family's ``encode_conditions`` of the G (image, mask) groups. groups: (B,) group indices.
        text: the prompt conditioning of B samples (the family's ``encode_prompts`` first value).
        num_steps: the sampler's steps; training draws its times from that schedule.
        ring: the loss mask's ring in pixels around the hole (``None``: the full image).
        guidance_scale: FLUX's distilled guidance (unused for "eps": no classifier-free pass).
    """
    groups = torch.as_tensor(groups, dtype=torch.long)
    vae = pipe.vae
    dev, dtype = vae.device, vae.dtype
    if latents is None:
        pixels = (images.to(dev, dtype) * 2 - 1)
        moments = torch.cat([vae.encode(pixels[i:i + 1]).latent_dist.mean for i in range(len(pixels))])
    masks = conditions.mask_pixels[groups].float()
    if kind == "eps":
        from .ddim_rollout import make_scheduler

        sf = vae.config.scaling_factor
        x0 = (moments * sf).float() if latents is None else latents.to(dev).float()
        masked = torch.cat([conditions.latent_dists[int(g)].mean for g in groups.tolist()]) * sf
        inputs = dict(mask_latents=conditions.mask_latents[groups].to(dev, dtype), masked_latents=masked.to(dtype),
                      text=text)
        sched = make_scheduler(pipe, num_steps, dev)
        ts = sched.timesteps.detach().clone()
        levels = sched.alphas_cumprod.to(dev)[ts.long()].float()
        lm = latent_loss_mask(masks, tuple(x0.shape[-2:]), ring)
        return CleanBatch(kind, x0, inputs, None if lm is None else lm.to(dev), ts, levels,
                          str(sched.config.get("prediction_type", "epsilon")))
    if kind != "flow":
        raise ValueError(f"kind must be 'eps' or 'flow', got {kind!r}")
    from .flow_rollout import _guidance, make_scheduler

    b = len(groups)
    height, width = images.shape[-2:]
    f = int(pipe.vae_scale_factor)
    h, w = 2 * (int(height) // (f * 2)), 2 * (int(width) // (f * 2))
    c = int(vae.config.latent_channels)
    shift, scale = vae.config.shift_factor, vae.config.scaling_factor
    x0 = (pipe._pack_latents(((moments - shift) * scale).float(), b, c, h, w) if latents is None
          else latents.to(dev).float())
    masked = torch.cat([conditions.masked_dists[int(g)].mean for g in groups.tolist()])
    masked = pipe._pack_latents(((masked - shift) * scale).to(dtype), b, c, h, w)
    cond = torch.cat((masked, conditions.packed_mask[groups].to(dev, dtype)), dim=-1)
    inputs = dict(cond_latents=cond, text=text, latent_ids=pipe._prepare_latent_image_ids(b, h // 2, w // 2, dev, dtype),
                  guidance=_guidance(pipe.transformer, guidance_scale, b, dev))
    sched = make_scheduler(pipe, num_steps, height, width, dev)
    lm = latent_loss_mask(masks, (h, w), ring)
    if lm is not None:  # packed as the latents are: 2x2 patches, every channel
        lm = pipe._pack_latents(lm.to(dev).expand(b, c, h, w).contiguous(), b, c, h, w)
    return CleanBatch(kind, x0, inputs, lm, sched.timesteps.detach().clone(), sched.sigmas[:-1].detach().float().clone())


def forward_predict(model, batch: CleanBatch, b: torch.Tensor, tidx: torch.Tensor, noise: torch.Tensor) -> Denoised:
    """Noise samples ``b`` at schedule indices ``tidx`` (one per sample) with ``noise`` and predict (with grad).

    ``model`` is the trained module (or the old or reference weights swapped in); the inputs of the batch
    carry no grad.
    """
    dev = batch.x0.device
    b, tidx = b.to(dev), tidx.to(dev)
    x0 = batch.x0[b]
    noise = noise.to(dev, x0.dtype)
    shape = (-1,) + (1,) * (x0.ndim - 1)
    level = batch.levels.to(dev)[tidx].reshape(shape)
    t = batch.timesteps.to(dev)[tidx]
    inp = batch.inputs
    if batch.kind == "eps":
        from .ddim_rollout import TextConditioning

        a, s = level.sqrt(), (1 - level).sqrt()
        xt = a * x0 + s * noise
        dtype = inp["masked_latents"].dtype
        x = torch.cat([xt.to(dtype), inp["mask_latents"][b], inp["masked_latents"][b]], dim=1)
        text = inp["text"][b]
        if isinstance(text, TextConditioning):
            added = {"text_embeds": text.pooled, "time_ids": text.time_ids}
            pred = model(x, t, encoder_hidden_states=text.hidden, added_cond_kwargs=added, return_dict=False)[0]
        else:
            pred = model(x, t, encoder_hidden_states=text, return_dict=False)[0]
        pred = pred.float()
        if batch.prediction_type == "v_prediction":
            return Denoised(pred, a * noise - s * x0, a * xt - s * pred)
        return Denoised(pred, noise, (xt - s * pred) / a)
    from .flow_rollout import predict_velocity

    xt = (1 - level) * x0 + level * noise
    dtype = inp["cond_latents"].dtype
    guidance = _index(inp["guidance"], b)
    pred = predict_velocity(model, xt.to(dtype), inp["cond_latents"][b], t.to(dtype), guidance, inp["text"][b],
                            inp["latent_ids"]).float()
    return Denoised(pred, noise - x0, xt - level * pred)
