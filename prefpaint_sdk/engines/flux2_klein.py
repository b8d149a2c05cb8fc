"""FLUX.2 klein inpainting (``Flux2KleinInpaintPipeline``): a latent-blend inpainter on FLUX.2 [klein].

The base model samples the whole latent and the outside of the mask is replaced, after every step, by the
re-noised original. Its own flow-matching scheduler is kept. Defaults are the pipeline's: 50 steps,
``guidance_scale`` 8.0 (classifier-free guidance against an empty prompt, which the pipeline builds itself:
it takes no negative prompt text), ``strength`` 0.8. A step-distilled klein (``is_distilled`` in its
``model_index.json``) ignores guidance, as diffusers does. The working size is the VAE's ``sample_size``
(1024 for the real model); sides are multiples of ``2 * vae factor`` (16). Sampling only: no RL rollout yet.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hub
from .base import PatchedLatentEngine

__all__ = ["Flux2KleinEngine"]


class Flux2KleinEngine(PatchedLatentEngine):
    family = "flux2-klein"
    pipeline_class_name = "Flux2KleinInpaintPipeline"
    default_steps = 50
    default_guidance = 8.0
    default_eta: ClassVar[float | None] = None
    default_strength: ClassVar[float] = 0.8
    has_negative_prompt = False
    trainable_module = "transformer"
    lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                                               "add_v_proj", "to_add_out")
    hub_models: ClassVar[dict[str, int]] = {hub.MODEL_ALIASES["flux2-klein"]: 1024}
    published_size_multiple: ClassVar[int] = 16

    def guidance_used(self, guidance_scale: float, prompt: str, negative_prompt: str) -> float:
        # Its unconditional pass is always the empty prompt; an empty prompt makes the two passes equal.
        return guidance_scale if prompt else 1.0

    def _call_kwargs(self, *, prompt: str, negative_prompt: str, n: int, guidance: float, eta) -> dict[str, Any]:
        return dict(prompt=[prompt] * n, guidance_scale=guidance)
