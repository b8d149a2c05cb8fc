"""Z-Image inpainting (``ZImageInpaintPipeline``): a latent-blend inpainter on Z-Image (base or Turbo).

The base model samples the whole latent and the outside of the mask is replaced, after every step, by the
re-noised original. Its own flow-matching scheduler is kept. Defaults are the pipeline's: 50 steps,
``guidance_scale`` 5.0 (classifier-free guidance, on whenever it is above 0; the negative prompt defaults to
empty), ``strength`` 1.0. (Z-Image-Turbo's card uses 8-9 steps and guidance 0: pass them.) The working size
is the VAE's ``sample_size`` (1024 for the real model); sides are multiples of ``2 * vae factor`` (16).
Sampling only: no RL rollout yet.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hub
from .base import PatchedLatentEngine

__all__ = ["ZImageEngine"]


class ZImageEngine(PatchedLatentEngine):
    family = "z-image"
    pipeline_class_name = "ZImageInpaintPipeline"
    default_steps = 50
    default_guidance = 5.0
    default_eta: ClassVar[float | None] = None
    default_strength: ClassVar[float] = 1.0
    trainable_module = "transformer"
    lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0")
    hub_models: ClassVar[dict[str, int]] = {hub.MODEL_ALIASES["z-image"]: 1024}
    published_size_multiple: ClassVar[int] = 16

    def guidance_used(self, guidance_scale: float, prompt: str, negative_prompt: str) -> float:
        # Z-Image's "no guidance" is 0 (CFG runs whenever guidance > 0); equal prompts make both passes equal.
        return guidance_scale if prompt != negative_prompt else 0.0

    def _call_kwargs(self, *, prompt: str, negative_prompt: str, n: int, guidance: float, eta) -> dict[str, Any]:
        kw: dict[str, Any] = dict(prompt=[prompt] * n, guidance_scale=guidance)
        if guidance > 0:
            kw["negative_prompt"] = [negative_prompt] * n
        return kw
