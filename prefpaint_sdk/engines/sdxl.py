"""SDXL inpainting (``StableDiffusionXLInpaintPipeline``: two CLIP text encoders, 9-channel UNet), with DDIM.

Sampled like SD (DDIM, the model's own noise schedule) so the same ``eta`` and the same DDIM log-prob step
apply; defaults follow the model card of ``diffusers/stable-diffusion-xl-1.0-inpainting-0.1`` (guidance 8).
The working size is ``unet.sample_size * vae_scale_factor`` (1024 for the real model).

The real model ships an Euler scheduler; the DDIM built from its config takes
:data:`~.sd.LATENT_DDIM_DEFAULTS` for the keys it lacks (no clamp of the predicted x0, a stochastic last step).

Rollout: :meth:`rollout` is the SD DDIM rollout, with SDXL's pooled text embedding and time ids passed as
``added_cond_kwargs`` (tested equal to the pipeline's output), so the Aligner trains SDXL's UNet as SD's.
"""

from __future__ import annotations

from typing import ClassVar

from .sd import SDInpaintEngine

__all__ = ["SDXLInpaintEngine"]


class SDXLInpaintEngine(SDInpaintEngine):
    family = "sdxl"
    pipeline_class_name = "StableDiffusionXLInpaintPipeline"
    default_steps = 30
    default_guidance = 8.0
    default_eta: ClassVar[float | None] = 1.0
    load_kwargs: ClassVar[dict] = {}
    alignable: ClassVar[bool] = True

    def rebuild_pipeline(self, trained, **components):
        pipe = self.pipeline
        return type(pipe)(**{**pipe.components, **components, "unet": trained},
                          requires_aesthetics_score=pipe.config.requires_aesthetics_score,
                          force_zeros_for_empty_prompt=pipe.config.force_zeros_for_empty_prompt)

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
