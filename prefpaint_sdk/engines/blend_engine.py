"""Alignment for the latent-blend families: the :class:`~.base.Engine` methods the Aligner calls, once for all.

A latent-blend family (``qwen-image``, ``flux2-klein``) puts :class:`BlendAlignable` before its engine base and
writes only its model calls (the ``blend_*`` methods of :class:`BlendFamily`); the rollout,
its log-probabilities over the hole, the policy step and forward-process training are
:mod:`.blend_rollout`'s. Rollouts and training run at the family's default ``strength`` (what its pipeline
and ``prefpaint inpaint`` use), so the model is trained on the noise levels it samples at.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from ..errors import ConfigError

if TYPE_CHECKING:  # annotations only: this module stays torch-free, so model_info imports no torch
    from torch import Tensor

    from .blend_rollout import BlendConditions, BlendText

__all__ = ["BlendAlignable", "BlendFamily"]


class BlendFamily:
    """What a latent-blend family's engine gives the shared rollout (methods named ``blend_*``)."""

    def blend_conditions(self, images, masks, height: int, width: int, device, dtype) -> BlendConditions:
        """The per-(image, mask) inputs as the pipeline preprocesses them: the images, the binarised pixel
        masks, the blend mask in the packed latent layout, and what each group's latents are drawn from."""
        raise NotImplementedError

    def blend_mu(self, image_seq_len: int, num_steps: int) -> float:
        """The schedule's shift ``mu``, as the pipeline computes it."""
        raise NotImplementedError

    def blend_start(self, conditions: BlendConditions, groups: list[int], gens: list, device, dtype):
        """``(image_latents, noise, context)`` for B samples, drawing from ``gens`` in the pipeline's order."""
        raise NotImplementedError

    def blend_encode(self, images: Tensor) -> Tensor:
        """Clean images (B, 3, H, W) in [-1, 1] as packed latents, the VAE's mean (DPO's rated images)."""
        raise NotImplementedError

    def blend_velocity(self, model, latents, timestep, text: BlendText, context: dict, *, neg: BlendText | None = None,
                       guidance: float = 1.0) -> Tensor:
        """The velocity of ``model`` at packed ``latents`` and (B,) ``timestep``s, called as the pipeline calls
        its transformer, with the family's guidance against ``neg`` when given and ``guidance`` > 1."""
        raise NotImplementedError

    def blend_decode(self, latents, height: int, width: int) -> Tensor:
        """Packed latents decoded as the pipeline decodes them: images (B, 3, H, W) in [0, 1], float32."""
        raise NotImplementedError


class BlendAlignable(BlendFamily):
    """Mixin: GRPO/PPO on SDE rollouts (log-probabilities over the hole) and NFT/DPO on the forward process."""

    alignable: ClassVar[bool] = True
    default_algo: ClassVar[str] = "grpo"
    sampler_kind: ClassVar[str] = "flow"
    # Outside the mask the step's sample is replaced by the re-noised original: it is not the policy's action,
    # so its log-probability would only add noise to the ratio. "full" is refused (see Engine.logprob_regions).
    logprob_regions: ClassVar[tuple[str, ...]] = ("mask",)

    def _mask_pil(self, masks):
        from .ddim_rollout import _mask_pil

        return [_mask_pil(m) for m in masks]

    def encode_conditions(self, images, masks, height: int, width: int, device=None, dtype=None):
        pipe = self.pipeline
        return self.blend_conditions(images, self._mask_pil(masks), height, width, device or pipe.vae.device,
                                     dtype or pipe.vae.dtype)

    def rollout(self, conditions, groups, generators, *, model=None, sde_noise=0.7, window=None, eta=None,
                logprob_region="mask", **kwargs):
        """SDE steps (noise level ``sde_noise``) on the ``window`` steps with log-probabilities over the hole,
        Euler steps elsewhere, the original blended in after every step (:func:`.blend_rollout.rollout`)."""
        from .blend_rollout import rollout

        self.check_logprob_region(logprob_region)
        if kwargs.get("prompt_embeds") is None:
            n = len(groups)
            kwargs["prompt_embeds"], kwargs["negative_embeds"] = self.encode_prompts(
                "", "", n, kwargs.get("guidance_scale", 1.0), self.pipeline.vae.device)
        return rollout(self, conditions, groups, generators, strength=self.default_strength, model=model,
                       noise_level=sde_noise, window=window, **kwargs)

    def cat_rollouts(self, chunks):
        from .blend_rollout import cat_rollouts

        return cat_rollouts(chunks)

    def train_steps(self, num_steps: int, window_size: int, window_start: int) -> list[int]:
        from .blend_rollout import train_steps

        return train_steps(num_steps, self.default_strength, window_size, window_start)

    def policy_step(self, model, rollout, b, tidx, *, context=None, guidance_scale=1.0, eta=None, sde_noise=0.7,
                    reduction="mean"):
        from .blend_rollout import policy_step

        return policy_step(self, model, rollout, b, tidx, noise_level=sde_noise, reduction=reduction)

    def clean_batch(self, conditions, groups, images, text, *, num_steps: int, ring: int | None = 16,
                    guidance_scale: float = 1.0, latents=None):
        from .blend_rollout import clean_batch

        return clean_batch(self, conditions, groups, images, text, num_steps=num_steps,
                           strength=self.default_strength, ring=ring, latents=latents)

    def forward_predict(self, model, batch, b, tidx, noise):
        from .blend_rollout import forward_predict

        return forward_predict(self, model, batch, b, tidx, noise)

    @classmethod
    def check_logprob_region(cls, region: str) -> str:
        if region == "full":
            raise ConfigError(f"logprob_region='full' does not apply to the {cls.family} family: it blends the "
                              "original back outside the mask after every step, so only the hole's latents are the "
                              "model's action; use logprob_region='mask' (or 'auto')")
        return super().check_logprob_region(region)
