"""Qwen-Image inpainting (``QwenImageInpaintPipeline``): a latent-blend inpainter on the Qwen-Image base model.

The base model samples the whole latent; after every step the outside of the mask is replaced by the
re-noised original (diffusers' blend), so only the inside is the model's. Its own flow-matching scheduler
(dynamic shift) is kept. Defaults are the pipeline's: 50 steps, ``true_cfg_scale`` 4.0, ``strength`` 0.6.

``guidance_scale`` here is Qwen's *true* CFG (a second pass on the negative prompt): as in diffusers, it
applies only when a negative prompt is given; without one the pipeline runs a single pass (what a diffusers
user gets from ``pipe(prompt=..., image=..., mask_image=...)``). The working size is the pipeline's default
(``128 * vae factor``: 1024 for the real model; no published config file holds it) unless the VAE config pins a
``sample_size``; sides are multiples of
``2 * vae factor`` (16), since latents are packed in 2x2 patches. Sampling only: no RL rollout yet.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hub
from .base import PatchedLatentEngine, vae_factor

__all__ = ["QwenImageEngine"]

DEFAULT_SAMPLE_SIZE = 128
"""``QwenImageInpaintPipeline.default_sample_size``: the latent side of its default output size."""


class QwenImageEngine(PatchedLatentEngine):
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
