"""SDXL inpainting (``StableDiffusionXLInpaintPipeline``: two CLIP text encoders, 9-channel UNet), with DDIM.

Sampled like SD (DDIM, the model's own noise schedule) so the same ``eta`` and the same DDIM log-prob step
apply; defaults follow the model card of ``diffusers/stable-diffusion-xl-1.0-inpainting-0.1`` (guidance 8).
The working size is ``unet.sample_size * vae_scale_factor`` (1024 for the real model).

The real model ships an Euler scheduler; the DDIM built from its config takes
:data:`~.sd.LATENT_DDIM_DEFAULTS` for the keys it lacks (no clamp of the predicted x0, a stochastic last step).

Without a negative prompt the negative embeddings are zeros, as diffusers' SDXL pipeline makes them
(``force_zeros_for_empty_prompt``, set in the real model's ``model_index.json``), in sampling and rollouts alike.

Rollout: :meth:`rollout` is the SD DDIM rollout, with SDXL's pooled text embedding and time ids passed as
``added_cond_kwargs`` (tested equal to the pipeline's output), so the Aligner trains SDXL's UNet as SD's.
"""

from __future__ import annotations

from typing import ClassVar

from .. import hub
from .sd import SDInpaintEngine

__all__ = ["SDXLInpaintEngine"]


class SDXLInpaintEngine(SDInpaintEngine):
    family = "sdxl"
    pipeline_class_name = "StableDiffusionXLInpaintPipeline"
    default_steps = 30
    default_guidance = 8.0
    default_eta: ClassVar[float | None] = 1.0
    load_kwargs: ClassVar[dict] = {}
    hub_models: ClassVar[dict[str, int]] = {hub.SDXL_INPAINT_MODEL: 1024}
    ddim_models: ClassVar[tuple[str, ...]] = ()  # no published SDXL model is DDIM-aligned: auto is native
    native_defaults: ClassVar[dict] = dict(steps=50, guidance_scale=7.5, strength=0.9999)  # the pipeline's own
    alignable: ClassVar[bool] = True

    def rebuild_pipeline(self, trained, **components):
        pipe = self.pipeline
        return type(pipe)(**{**pipe.components, **components, "unet": trained},
                          requires_aesthetics_score=pipe.config.requires_aesthetics_score,
                          force_zeros_for_empty_prompt=pipe.config.force_zeros_for_empty_prompt)

    def guidance_used(self, guidance_scale: float, prompt: str, negative_prompt: str) -> float:
        # With no negative prompt the real model's pipeline zeroes the negative embeddings
        # (force_zeros_for_empty_prompt): the two passes then differ even for an empty prompt.
        if not negative_prompt and self.pipeline.config.get("force_zeros_for_empty_prompt", False):
            return guidance_scale
        return super().guidance_used(guidance_scale, prompt, negative_prompt)

    def sample(self, image, mask, **kwargs):
        # The pipeline moves its VAE to float32 before every encode when ``force_upcast`` is set (the real
        # model's VAE); diffusers then logs a casting warning per call, even when the VAE is float32 already.
        import logging

        modeling = logging.getLogger("diffusers.models.modeling_utils")
        level = modeling.level
        modeling.setLevel(logging.ERROR)
        try:
            return super().sample(image, mask, **kwargs)
        finally:
            modeling.setLevel(level)
