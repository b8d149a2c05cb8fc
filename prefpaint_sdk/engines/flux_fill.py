"""FLUX.1 Fill (``FluxFillPipeline``: ``FluxTransformer2DModel``, CLIP + T5 text encoders), flow matching.

Its own ``FlowMatchEulerDiscreteScheduler`` is kept. ``guidance_scale`` is FLUX's distilled guidance (an
input of the transformer, about 30 for Fill), not classifier-free guidance: there is no negative prompt
and no ``eta``, and guidance is never skipped. The working size is the VAE's ``sample_size`` (1024 for the
real model); both sides must be multiples of ``2 * vae_scale_factor`` (16), since latents are packed in 2x2
patches.

Alignment: the flow-matching SDE rollout of :mod:`.flow_rollout` (Flow-GRPO's SDE on a window of ``k``
consecutive steps, ODE elsewhere; tested equal to the pipeline with noise level 0), trained with GRPO by default.
"""

from __future__ import annotations

from typing import ClassVar

from .. import hub
from ..errors import InvalidInputError
from .base import PatchedLatentEngine

__all__ = ["FluxFillEngine"]


class FluxFillEngine(PatchedLatentEngine):
    family = "flux-fill"
    pipeline_class_name = "FluxFillPipeline"
    default_steps = 50
    default_guidance = 30.0
    default_eta: ClassVar[float | None] = None
    has_negative_prompt = False
    guidance_kind: ClassVar[str] = "distilled"
    hub_models: ClassVar[dict[str, int]] = {hub.FLUX_FILL_MODEL: 1024}
    published_size_multiple: ClassVar[int] = 16
    trainable_module = "transformer"
    alignable: ClassVar[bool] = True
    default_algo: ClassVar[str] = "grpo"
    sampler_kind: ClassVar[str] = "flow"
    lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                                               "add_v_proj", "to_add_out")
    training_presets: ClassVar[dict[str, dict[str, dict]]] = {
        # The cpu-smoke preset on the tiny fixture. GRPO's gradient from 16 samples is mostly noise there (its
        # cosine with the exact reward gradient is 0.1-0.3), so the reward rises only as iterations add up: 12
        # iterations of the preset's own values gave 0.9x, 0.8x, -0.6x seed noise (3 seeds). Two flow steps,
        # both stochastic and trained, halve an iteration's cost and share each advantage between 2 steps
        # instead of 4; 100 of them raised the held-out reward beyond seed noise for every seed tried, 60 not
        # by 3x on average (benchmarks/RESULTS.md, "cpu-smoke for FLUX Fill"). 4 samples per held-out pair make
        # the held-out mean less noisy.
        "cpu-smoke": {"common": dict(num_steps=2, iterations=100, eval_every=20, save_every=20, eval_samples=4),
                      **{algo: dict(timesteps_per_traj=2) for algo in ("ppo", "grpo", "nft")}},
        # FLUX.1 Fill on one 80 GB GPU, LoRA (Flow-GRPO-Fast style: an SDE window of 2 of 28 steps, GRPO, G = 8).
        # Memory: the 12B transformer in bf16 = 24 GB of frozen weights; T5-XXL (4.7B) + CLIP-L + VAE in bf16
        # ~ 10 GB (prompts are encoded once and cached); LoRA rank 32 on the attention projections of the 19
        # double + 38 single blocks ~ 52M params: fp32 weights + grads + AdamW moments + old-policy copy ~ 1 GB.
        # Activations at 512 px (1024 image + 512 text tokens) with gradient checkpointing: ~0.5 GB of block
        # inputs per sample + one block's recompute; train_batch_size 2 (plus a no-grad reference pass for the
        # KL) stays well under 40 GB. Rollouts run without grad in batches of 8. Total ~ 45-60 GB.
        # Batch: 4 groups x 8 samples = 32 trajectories per GPU per iteration, 2 trained steps each = 64
        # (sample, step) pairs; 2 x 16 accumulated = one optimizer step per iteration.
        "flux-fill-lora-80gb": {
            "common": dict(finetune="lora", lora_rank=32, lora_alpha=32.0, learning_rate=1e-4, mixed_precision="bf16",
                           gradient_checkpointing=True, resolution=512, guidance_scale=30.0, num_steps=28,
                           sde_noise=0.7, sde_window=2, sde_window_start=-1, algo="grpo", prompts_per_iter=4,
                           samples_per_prompt=8, rollout_batch_size=8, train_batch_size=2, grad_accum_steps=16,
                           iterations=1000, eval_every=50, save_every=50),
            "ppo": dict(timesteps_per_traj=2, resync_every=1, clip_range=1e-4, kl_coef=0.04),
            "grpo": dict(timesteps_per_traj=2, resync_every=1, clip_range=1e-4, kl_coef=0.04, adv_std="group"),
        },
    }

    def check_model(self, model_id: str) -> None:
        # Fill's transformer sees packed latents (C*4) + masked-image latents (C*4) + mask (64 per latent patch).
        cfg = self.pipeline.transformer.config
        c = int(self.pipeline.vae.config.latent_channels)
        expected = c * 4 * 2 + 4 * int(self.pipeline.vae_scale_factor) ** 2
        if int(cfg.in_channels) != expected:
            raise InvalidInputError(
                f"model '{model_id}' has a transformer with {cfg.in_channels} input channels; a FLUX Fill model has "
                f"{expected} (packed latents, masked-image latents and mask). Use a Fill checkpoint"
            )

    def guidance_used(self, guidance_scale: float, prompt: str, negative_prompt: str) -> float:
        return guidance_scale  # distilled guidance: an input of the model, not a second pass

    def passes_per_step(self, guidance_used: float) -> int:
        return 1

    def predicted_x0(self, scheduler, out, model_output, sample):
        # Flow matching: x_t = (1 - sigma) x0 + sigma noise and the model predicts noise - x0, so
        # x0 = x_t - sigma v, with the sigma of the step just taken (the scheduler has moved one past it).
        sigma = scheduler.sigmas[scheduler.step_index - 1]
        return sample - sigma.to(sample.device, sample.dtype) * model_output

    def decode_preview(self, latents, height: int, width: int) -> list:
        from .flow_rollout import decode_latents

        pipe = self.pipeline
        images = decode_latents(pipe, latents.to(pipe.vae.dtype), height, width)
        return pipe.image_processor.postprocess(images * 2 - 1, output_type="pil")

    # --- alignment (see .flow_rollout) --------------------------------------------------------------
    def encode_conditions(self, images, masks, height: int, width: int, device=None, dtype=None):
        from .flow_rollout import encode_conditions

        return encode_conditions(self.pipeline, images, masks, height, width, device=device, dtype=dtype)

    def encode_prompts(self, prompt, negative_prompt, n, guidance_scale, device, size=None):
        """FLUX's text conditioning (no negative prompt: the second value is always ``None``)."""
        from .flow_rollout import encode_prompts

        return encode_prompts(self.pipeline, prompt, n, device), None

    def rollout(self, conditions, groups, generators, *, model=None, sde_noise=0.7, window=None, eta=None,
                negative_embeds=None, **kwargs):
        """Flow trajectories: SDE steps (noise level ``sde_noise``) on the ``window`` steps, stored with their
        log-probabilities; ODE steps elsewhere. See :func:`.flow_rollout.rollout` (DDIM's ``eta`` does not apply)."""
        from .flow_rollout import rollout

        return rollout(self.pipeline, conditions, groups, generators, model=model, noise_level=sde_noise,
                       window=window, **kwargs)

    def cat_rollouts(self, chunks):
        from .flow_rollout import cat_rollouts

        return cat_rollouts(chunks)

    def train_steps(self, num_steps: int, window_size: int, window_start: int) -> list[int]:
        from .flow_rollout import window_steps

        return window_steps(num_steps, window_size, window_start)

    def policy_step(self, model, rollout, b, tidx, *, context=None, guidance_scale=30.0, eta=None, sde_noise=0.7,
                    reduction="mean"):
        from .flow_rollout import policy_step

        return policy_step(model, rollout, b, tidx, noise_level=sde_noise, reduction=reduction)

