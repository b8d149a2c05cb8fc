"""Qwen-Image inpainting (``QwenImageInpaintPipeline``): a latent-blend inpainter on the Qwen-Image base model.

The base model samples the whole latent; after every step the outside of the mask is replaced by the
re-noised original (diffusers' blend), so only the inside is the model's. Its own flow-matching scheduler
(dynamic shift) is kept. Defaults are the pipeline's: 50 steps, ``true_cfg_scale`` 4.0, ``strength`` 0.6.

``guidance_scale`` here is Qwen's *true* CFG (a second pass on the negative prompt): as in diffusers, it
applies only when a negative prompt is given; without one the pipeline runs a single pass (what a diffusers
user gets from ``pipe(prompt=..., image=..., mask_image=...)``). The working size is the pipeline's default
(``128 * vae factor``: 1024 for the real model; no published config file holds it) unless the VAE config pins a
``sample_size``; sides are multiples of
``2 * vae factor`` (16), since latents are packed in 2x2 patches.

Alignment (:mod:`.blend_engine`): GRPO/PPO on flow SDE rollouts whose log-probabilities count the hole's latent
elements only, and NFT; this module gives the shared rollout its model calls (the ``blend_*`` methods), written
against ``QwenImageInpaintPipeline.__call__`` of diffusers 0.42.1: the VAE's ``latents_mean``/``latents_std``
normalisation, the generator order (the image's VAE sample, the noise, the masked image's VAE sample, which the
pipeline draws though its transformer never reads it), the nearest-neighbour mask per latent element, the
transformer's ``img_shapes``, and true CFG with its norm rescale.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hub
from .base import PatchedLatentEngine, vae_factor
from .blend_engine import BlendAlignable

__all__ = ["QwenImageEngine"]

DEFAULT_SAMPLE_SIZE = 128
"""``QwenImageInpaintPipeline.default_sample_size``: the latent side of its default output size."""


class QwenImageEngine(BlendAlignable, PatchedLatentEngine):
    family = "qwen-image"
    pipeline_class_name = "QwenImageInpaintPipeline"
    default_steps = 50
    default_guidance = 4.0
    default_eta: ClassVar[float | None] = None
    default_strength: ClassVar[float] = 0.6
    guidance_kind: ClassVar[str] = "true-cfg"
    trainable_module = "transformer"
    lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                                               "add_v_proj", "to_add_out")
    hub_models: ClassVar[dict[str, int]] = {hub.MODEL_ALIASES["qwen-image"]: 1024}
    published_size_multiple: ClassVar[int] = 16

    @classmethod
    def read_resolution(cls, configs) -> int:
        """The VAE config's ``sample_size`` where a folder pins one (the tiny fixtures do), else the pipeline's
        default size, ``128 * vae factor`` (1024 for the real model)."""
        pinned = configs.value("vae", "sample_size")
        return int(pinned) if pinned else DEFAULT_SAMPLE_SIZE * vae_factor(configs)

    def guidance_used(self, guidance_scale: float, prompt: str, negative_prompt: str) -> float:
        # True CFG runs only with a negative prompt (diffusers' rule); a prompt equal to it cannot change the result.
        return guidance_scale if negative_prompt and negative_prompt != prompt else 1.0

    def _call_kwargs(self, *, prompt: str, negative_prompt: str, n: int, guidance: float, eta) -> dict[str, Any]:
        kw: dict[str, Any] = dict(prompt=[prompt] * n, true_cfg_scale=guidance)
        if guidance > 1:
            kw["negative_prompt"] = [negative_prompt] * n
        return kw

    # --- alignment: the model calls of the shared blend rollout (.blend_rollout) ---------------------------
    def encode_prompts(self, prompt, negative_prompt, n, guidance_scale, device, size=None):
        """``encode_prompt`` as the pipeline calls it; the negative only where true CFG runs (:meth:`guidance_used`)."""
        from .blend_rollout import BlendText

        def enc(text):
            embeds, mask = self.pipeline.encode_prompt(prompt=[text] * n, device=device)
            return BlendText(embeds, mask)

        neg = enc(negative_prompt) if self.guidance_used(guidance_scale, prompt, negative_prompt) > 1 else None
        return enc(prompt), neg

    def _latent_hw(self, height: int, width: int) -> tuple[int, int]:
        f = int(self.pipeline.vae_scale_factor)
        return 2 * (int(height) // (f * 2)), 2 * (int(width) // (f * 2))

    def _normalise(self, z):
        vae = self.pipeline.vae
        mean = torch_tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(z.device, z.dtype)
        inv_std = 1.0 / torch_tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(z.device, z.dtype)
        return (z - mean) * inv_std

    def blend_conditions(self, images, masks, height, width, device, dtype):
        import torch

        from .blend_rollout import BlendConditions

        pipe = self.pipeline
        init = pipe.image_processor.preprocess(images, height=height, width=width).to(dtype=torch.float32)
        mask_pixels = pipe.mask_processor.preprocess(masks, height=height, width=width)
        masked = (init * (mask_pixels < 0.5)).unsqueeze(2).to(device=device, dtype=dtype)
        h, w = self._latent_hw(height, width)
        c = int(pipe.transformer.config.in_channels) // 4
        g = init.shape[0]
        m = torch.nn.functional.interpolate(mask_pixels, size=(h, w)).to(device=device, dtype=dtype)
        m = pipe._pack_latents(m.repeat(1, c, 1, 1), g, c, h, w)
        img = init.unsqueeze(2).to(device=device, dtype=dtype)
        dists = [pipe.vae.encode(img[i:i + 1]).latent_dist for i in range(g)]
        masked_dists = [pipe.vae.encode(masked[i:i + 1]).latent_dist for i in range(g)]
        return BlendConditions(init_image=init, mask_pixels=mask_pixels, mask=m, image_dists=dists,
                               masked_dists=masked_dists)

    def blend_mu(self, image_seq_len, num_steps):
        from diffusers.pipelines.qwenimage.pipeline_qwenimage_inpaint import calculate_shift

        cfg = self.pipeline.scheduler.config
        return calculate_shift(image_seq_len, cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096),
                               cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15))

    def blend_start(self, conditions, groups, gens, device, dtype):
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipeline
        b = len(groups)
        height, width = conditions.init_image.shape[-2:]
        h, w = self._latent_hw(height, width)
        c = int(pipe.transformer.config.in_channels) // 4
        # prepare_latents: the image's VAE sample per generator, then the noise; prepare_mask_latents then
        # draws the masked image's VAE sample (unused by the transformer, but it moves the generators)
        z = torch.cat([conditions.image_dists[g].sample(gens[i]) for i, g in enumerate(groups)])
        z = self._normalise(z).to(device=device, dtype=dtype).transpose(1, 2)
        noise = randn_tensor((b, 1, c, h, w), generator=gens, device=device, dtype=dtype)
        for i, g in enumerate(groups):
            conditions.masked_dists[g].sample(gens[i])
        context = {"img_shapes": (1, h // 2, w // 2)}
        return pipe._pack_latents(z, b, c, h, w), pipe._pack_latents(noise, b, c, h, w), context

    def blend_encode(self, images):
        import torch

        pipe = self.pipeline
        img = images.unsqueeze(2)
        z = torch.cat([pipe.vae.encode(img[i:i + 1]).latent_dist.mean for i in range(len(img))])
        z = self._normalise(z).transpose(1, 2)
        h, w = self._latent_hw(*images.shape[-2:])
        c = int(pipe.transformer.config.in_channels) // 4
        return pipe._pack_latents(z, len(img), c, h, w)

    def blend_velocity(self, model, latents, timestep, text, context, *, neg=None, guidance=1.0):
        import torch

        shapes = [[context["img_shapes"]]] * latents.shape[0]

        def call(t):
            return model(hidden_states=latents, timestep=timestep / 1000, guidance=None,
                         encoder_hidden_states_mask=t.extra, encoder_hidden_states=t.hidden, img_shapes=shapes,
                         attention_kwargs={}, return_dict=False)[0]

        pred = call(text)
        if neg is not None and guidance > 1:  # the pipeline's true CFG, rescaled to the conditional norm
            neg_pred = call(neg)
            comb = neg_pred + guidance * (pred - neg_pred)
            pred = comb * (torch.norm(pred, dim=-1, keepdim=True) / torch.norm(comb, dim=-1, keepdim=True))
        return pred

    def blend_decode(self, latents, height, width):
        pipe = self.pipeline
        vae = pipe.vae
        z = pipe._unpack_latents(latents, height, width, pipe.vae_scale_factor).to(vae.dtype)
        mean = torch_tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(z.device, z.dtype)
        inv_std = 1.0 / torch_tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(z.device, z.dtype)
        image = vae.decode(z / inv_std + mean, return_dict=False)[0][:, :, 0]
        return pipe.image_processor.postprocess(image, output_type="pt").float()


def torch_tensor(values):
    import torch

    return torch.tensor(values)
