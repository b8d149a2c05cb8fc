"""FLUX.2 klein inpainting (``Flux2KleinInpaintPipeline``): a latent-blend inpainter on FLUX.2 [klein].

The base model samples the whole latent and the outside of the mask is replaced, after every step, by the
re-noised original. Its own flow-matching scheduler is kept. Defaults are the pipeline's: 50 steps,
``guidance_scale`` 8.0 (classifier-free guidance against an empty prompt, which the pipeline builds itself:
it takes no negative prompt text), ``strength`` 0.8. A step-distilled klein (``is_distilled`` in its
``model_index.json``) ignores guidance, as diffusers does. The working size is the VAE's ``sample_size``
(1024 for the real model); sides are multiples of ``2 * vae factor`` (16).

Alignment (:mod:`.blend_engine`): GRPO/PPO on flow SDE rollouts whose log-probabilities count the hole's tokens
only, and NFT; this module gives the shared rollout its model calls (the ``blend_*`` methods), written against
``Flux2KleinInpaintPipeline.__call__`` of diffusers 0.42.1: the VAE's mode (no generator draw), patchified and
batch-norm normalised; the image's own latents as the reference tokens after the noisy ones (ids from ``t = 10``);
the mask bilinear per token (fractional at the edge: a token counts when its weight is above 0);
``compute_empirical_mu``; CFG against the empty prompt unless the model is step-distilled.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .. import hub
from .base import PatchedLatentEngine
from .blend_engine import BlendAlignable

__all__ = ["Flux2KleinEngine"]


class Flux2KleinEngine(BlendAlignable, PatchedLatentEngine):
    family = "flux2-klein"
    pipeline_class_name = "Flux2KleinInpaintPipeline"
    default_steps = 50
    default_guidance = 8.0
    default_eta: ClassVar[float | None] = None
    default_strength: ClassVar[float] = 0.8
    has_negative_prompt = False
    trainable_module = "transformer"
    lora_targets: ClassVar[tuple[str, ...]] = ("to_q", "to_k", "to_v", "to_out.0", "add_q_proj", "add_k_proj",
                                               "add_v_proj", "to_add_out", "to_qkv_mlp_proj")
    hub_models: ClassVar[dict[str, int]] = {hub.MODEL_ALIASES["flux2-klein"]: 1024}
    published_size_multiple: ClassVar[int] = 16

    def lora_modules(self, model) -> list[str]:
        # A single-stream block's output projection is a Linear named ``attn.to_out``; a double-stream block's
        # ``attn.to_out`` is a ModuleList (peft cannot wrap it), so no suffix names only the former: list them
        # by index, as diffusers' train_dreambooth_lora_flux2_klein.py does. Without them the LoRA adapted only
        # the inputs of the single blocks (20 of klein 4B's 25 blocks), never their outputs.
        n = int(model.config.get("num_single_layers", 0))
        return [*self.lora_targets, *(f"single_transformer_blocks.{i}.attn.to_out" for i in range(n))]

    def guidance_used(self, guidance_scale: float, prompt: str, negative_prompt: str) -> float:
        # Its unconditional pass is always the empty prompt; an empty prompt makes the two passes equal.
        return guidance_scale if prompt else 1.0

    def _call_kwargs(self, *, prompt: str, negative_prompt: str, n: int, guidance: float, eta) -> dict[str, Any]:
        return dict(prompt=[prompt] * n, guidance_scale=guidance)

    def rebuild_pipeline(self, trained, **components):
        # is_distilled is a config value of the pipeline, not a component: pass it on, or a distilled klein
        # would export as a guided one
        pipe = self.pipeline
        return type(pipe)(**{**pipe.components, **components, self.trainable_module: trained},
                          is_distilled=bool(pipe.config.is_distilled))

    # --- alignment: the model calls of the shared blend rollout (.blend_rollout) ---------------------------
    def encode_prompts(self, prompt, negative_prompt, n, guidance_scale, device, size=None):
        """``encode_prompt`` as the pipeline calls it; the empty prompt as the negative where CFG runs."""
        from .blend_rollout import BlendText

        def enc(text):
            embeds, ids = self.pipeline.encode_prompt(prompt=[text] * n, device=device)
            return BlendText(embeds, ids)

        guided = self.guidance_used(guidance_scale, prompt, negative_prompt) > 1 and not self.pipeline.config.is_distilled
        return enc(prompt), enc("") if guided else None

    def _encode(self, images):
        import torch
        from diffusers.pipelines.flux2.pipeline_flux2_klein_inpaint import retrieve_latents

        pipe = self.pipeline
        z = torch.cat([retrieve_latents(pipe.vae.encode(images[i:i + 1]), sample_mode="argmax")
                       for i in range(len(images))])
        z = pipe._patchify_latents(z)
        bn = pipe.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(z.device, z.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + pipe.vae.config.batch_norm_eps).to(z.device, z.dtype)
        return (z - mean) / std

    def blend_conditions(self, images, masks, height, width, device, dtype):
        import torch

        from .blend_rollout import BlendConditions

        pipe = self.pipeline
        init = pipe.image_processor.preprocess(images, height, width).to(dtype=torch.float32)
        mask_pixels = pipe.mask_processor.preprocess(masks, height=height, width=width)
        f2 = int(pipe.vae_scale_factor) * 2
        m = torch.nn.functional.interpolate(mask_pixels, size=(int(height) // f2, int(width) // f2), mode="bilinear")
        m = pipe._pack_latents(m.to(device=device, dtype=dtype))
        latents = self._encode(init.to(device=device, dtype=dtype))
        return BlendConditions(init_image=init, mask_pixels=mask_pixels, mask=m,
                               image_dists=[latents[i:i + 1] for i in range(len(latents))])

    def blend_mu(self, image_seq_len, num_steps):
        from diffusers.pipelines.flux2.pipeline_flux2_klein_inpaint import compute_empirical_mu

        return compute_empirical_mu(image_seq_len=image_seq_len, num_steps=num_steps)

    def blend_start(self, conditions, groups, gens, device, dtype):
        import torch
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipeline
        z = torch.cat([conditions.image_dists[g] for g in groups]).to(device=device, dtype=dtype)
        noise = randn_tensor(tuple(z.shape), generator=gens, device=device, dtype=dtype)  # the only draw
        ids = pipe._prepare_latent_ids(z).to(device)
        ref_ids = pipe._prepare_image_ids([z], len(groups)).to(device)
        packed = pipe._pack_latents(z)
        context = {"cond": packed, "img_ids": torch.cat([ids, ref_ids], dim=1), "latent_ids": ids}
        return packed, pipe._pack_latents(noise), context

    def blend_encode(self, images):
        return self.pipeline._pack_latents(self._encode(images))

    def blend_velocity(self, model, latents, timestep, text, context, *, neg=None, guidance=1.0):
        import torch

        n = latents.size(1)
        dtype = getattr(model, "module", model).dtype
        x = torch.cat([latents, context["cond"]], dim=1).to(dtype)

        def call(t):
            return model(hidden_states=x, timestep=timestep / 1000, guidance=None, encoder_hidden_states=t.hidden,
                         txt_ids=t.extra, img_ids=context["img_ids"], joint_attention_kwargs=None,
                         return_dict=False)[0][:, :n]

        pred = call(text)
        if neg is not None and guidance > 1:
            neg_pred = call(neg)
            pred = neg_pred + guidance * (pred - neg_pred)
        return pred

    def blend_decode(self, latents, height, width):
        import torch

        pipe = self.pipeline
        f2 = int(pipe.vae_scale_factor) * 2
        b = latents.shape[0]
        grid = torch.zeros((b, latents.shape[-1], int(height) // f2, int(width) // f2), device=latents.device)
        z = pipe._unpack_latents_with_ids(latents, pipe._prepare_latent_ids(grid).to(latents.device))
        bn = pipe.vae.bn
        mean = bn.running_mean.view(1, -1, 1, 1).to(z.device, z.dtype)
        std = torch.sqrt(bn.running_var.view(1, -1, 1, 1) + pipe.vae.config.batch_norm_eps).to(z.device, z.dtype)
        z = pipe._unpatchify_latents(z * std + mean)
        image = pipe.vae.decode(z.to(pipe.vae.dtype), return_dict=False)[0]
        return pipe.image_processor.postprocess(image, output_type="pt").float()
