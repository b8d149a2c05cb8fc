"""Random inpainting pipelines of every family, built in memory from the real diffusers/transformers classes.

The shapes come from :data:`.shapes.PIPELINE_SIZES`; every default below is the ``"tiny"`` value, and the
seeding order per component is fixed, so a tiny fixture is bit-identical from one version to the next.
"""

from __future__ import annotations

import os
from pathlib import Path

from .shapes import PIPELINE_SIZES, fixture_shape
from .tokenizers import byte_level_clip_tokenizer, byte_level_t5_tokenizer

__all__ = ["FAMILIES", "BUILDERS", "tiny_inpaint_pipeline", "save_tiny_inpaint_pipeline"]

FAMILIES = ("sd", "sdxl", "flux-fill", "qwen-image", "flux2-klein", "z-image", "qwen-image-edit")
"""The model families with a fixture (every family of :mod:`prefpaint_sdk.engines`)."""


def tiny_inpaint_pipeline(seed: int = 0, size: str = "tiny", family: str = "sd", **overrides):
    """A random inpainting pipeline of ``family``, built in memory from the real classes.

    * ``"sd"``: ``StableDiffusionInpaintPipeline`` with a 9-channel UNet, a CLIP text encoder, DDIM.
    * ``"sdxl"``: ``StableDiffusionXLInpaintPipeline``: 9-channel UNet with SDXL's text-time conditioning,
      two CLIP text encoders (the second with projection), an Euler scheduler as the real model ships.
    * ``"flux-fill"``: ``FluxFillPipeline``: ``FluxTransformer2DModel`` with guidance embedding, a CLIP text
      encoder, a T5 encoder with :func:`byte_level_t5_tokenizer`, flow-matching Euler scheduler.
    * ``"qwen-image"``, ``"flux2-klein"``, ``"z-image"``, ``"qwen-image-edit"``: the latent-blend pipelines of
      :mod:`.blend_families`.

    Working sizes: 64 px at ``size="tiny"``, 512 px at ``"mid"``, the real model's at ``"real"`` (512 for SD,
    1024 for SDXL and FLUX Fill). ``"real"`` is gigabytes of random weights: benchmarks only; build it under
    ``with torch.device("meta"):`` to read its configs and parameter counts without allocating.

    Args:
        seed: seeds the random weights, so the same seed gives the same model.
        size: a key of :data:`PIPELINE_SIZES` ("tiny", "mid", "real").
        family: one of :data:`FAMILIES`.
        overrides: replace keys of that family's shape (e.g. ``vae_channels=(32,) * 4`` for an 8x VAE).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    shape = fixture_shape(size, family, overrides) if family in PIPELINE_SIZES[size] else dict(overrides)
    pipe = BUILDERS[family](seed, shape)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_inpaint_pipeline(path: str | os.PathLike, seed: int = 0, size: str = "tiny", family: str = "sd") -> Path:
    """Build :func:`tiny_inpaint_pipeline` of ``family`` and save it as a diffusers folder (safetensors);
    returns the path. It loads through the same ``from_pretrained`` path as real weights."""
    from ..devices import quiet_loading

    path = Path(path)
    with quiet_loading():
        tiny_inpaint_pipeline(seed=seed, size=size, family=family).save_pretrained(path, safe_serialization=True)
    return path


# --- components ---------------------------------------------------------------------------------------------

def _clip_text(seed: int, hidden: int, *, projection: bool = False, layers: int = 2, heads: int = 4,
               intermediate: int | None = None, vocab: int = 516, act: str | None = None, projection_dim=None):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    extra = {} if act is None else dict(hidden_act=act)
    config = CLIPTextConfig(
        bos_token_id=514, eos_token_id=515, pad_token_id=515, hidden_size=hidden,
        projection_dim=projection_dim or hidden, intermediate_size=intermediate or 2 * hidden,
        num_attention_heads=heads, num_hidden_layers=layers, vocab_size=vocab, max_position_embeddings=77, **extra,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _vae(seed: int, shape: dict, *, sample_size: int, **kw):
    import torch
    from diffusers import AutoencoderKL

    channels = tuple(shape.get("vae_channels", (32, 64)))
    for key, name in (("vae_scaling_factor", "scaling_factor"), ("vae_shift_factor", "shift_factor"),
                      ("vae_force_upcast", "force_upcast")):
        if key in shape:
            kw[name] = shape[key]
    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=channels, in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * len(channels),
                         up_block_types=("UpDecoderBlock2D",) * len(channels),
                         layers_per_block=shape.get("vae_layers", 1), norm_num_groups=32,
                         sample_size=shape.get("vae_sample_size", sample_size), **kw)


def _per_encoder(value, i: int):
    return value[i] if isinstance(value, (list, tuple)) else value


# --- families -----------------------------------------------------------------------------------------------

def _sd(seed: int, cfg: dict):
    import torch
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel

    if cfg["text_hidden"] != cfg["cross_attention_dim"]:
        raise ValueError("text_hidden must equal cross_attention_dim")
    n = len(cfg["unet_channels"])
    # The real SD UNet attends at its top n-1 levels; the tiny/mid ones at the lower n-1 (cheaper, same classes).
    if cfg.get("attention_at_top"):
        down = ("CrossAttnDownBlock2D",) * (n - 1) + ("DownBlock2D",)
        up = ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (n - 1)
    else:
        down = ("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1)
        up = ("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=cfg["unet_channels"], layers_per_block=cfg["layers_per_block"],
        sample_size=cfg["unet_sample_size"], in_channels=9, out_channels=4, down_block_types=down,
        up_block_types=up, cross_attention_dim=cfg["cross_attention_dim"],
        attention_head_dim=cfg.get("attention_head_dim", 8), norm_num_groups=32,
    )
    vae = _vae(seed + 1, cfg, sample_size=32, latent_channels=4)
    text_encoder = _clip_text(seed + 2, cfg["text_hidden"], layers=cfg["text_layers"],
                              heads=cfg.get("text_heads", 4), intermediate=cfg.get("text_intermediate"),
                              vocab=cfg.get("vocab_size", 516), act=cfg.get("text_act"),
                              projection_dim=cfg["cross_attention_dim"])
    with torch.device("cpu"):  # schedulers hold real tables, even when the models are built on "meta"
        scheduler = DDIMScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
            set_alpha_to_one=False, steps_offset=1,
        )
    return StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=byte_level_clip_tokenizer(), unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )


def _sdxl(seed: int, cfg: dict):
    """SDXL inpainting: text-time conditioning without aesthetic score, two text encoders whose hidden states
    are concatenated (the cross-attention width is their sum), the second's pooled output in the time embedding."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel

    channels = tuple(cfg.get("unet_channels", (32, 64)))
    hidden = tuple(cfg.get("text_hidden", (32, 32)))
    time_dim = cfg.get("time_embed_dim", 8)
    n = len(channels)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=channels, layers_per_block=cfg.get("layers_per_block", 1),
        sample_size=cfg.get("unet_sample_size", 32), in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        # diffusers' UNet reads ``attention_head_dim`` as the number of heads (as SDXL's config.json does)
        attention_head_dim=tuple(cfg.get("attention_heads", (2, 4))), use_linear_projection=True,
        addition_embed_type="text_time", addition_time_embed_dim=time_dim,
        transformer_layers_per_block=tuple(cfg.get("transformer_layers", (1, 2))),
        projection_class_embeddings_input_dim=6 * time_dim + hidden[1],  # 6 time ids + the pooled text embedding
        cross_attention_dim=sum(hidden), norm_num_groups=32,
    )
    vae = _vae(seed + 1, cfg, sample_size=64)
    encoders = [
        _clip_text(seed + 2 + i, hidden[i], projection=i == 1, layers=_per_encoder(cfg.get("text_layers", 2), i),
                   heads=_per_encoder(cfg.get("text_heads", 4), i),
                   intermediate=_per_encoder(cfg.get("text_intermediate"), i), vocab=cfg.get("vocab_size", 516),
                   act=_per_encoder(cfg.get("text_act"), i))
        for i in range(2)
    ]
    with torch.device("cpu"):
        scheduler = EulerDiscreteScheduler(
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
            timestep_spacing="leading",
        )
    return StableDiffusionXLInpaintPipeline(
        vae=vae, text_encoder=encoders[0], text_encoder_2=encoders[1], tokenizer=byte_level_clip_tokenizer(),
        tokenizer_2=byte_level_clip_tokenizer(), unet=unet, scheduler=scheduler, requires_aesthetics_score=False,
        force_zeros_for_empty_prompt=True,
    )


def _flux_fill(seed: int, cfg: dict):
    """FLUX.1 Fill: the transformer sees packed latents (C * 4), packed masked-image latents (C * 4) and the
    mask, one channel per pixel of a 2x2 latent patch (4 * f * f for a VAE of factor f). Tiny: a 2x VAE with
    4 latent channels (48 input channels); real: 8x with 16 (384)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    latent = cfg.get("latent_channels", 4)
    factor = 2 ** (len(cfg.get("vae_channels", (32, 64))) - 1)
    text_hidden = cfg.get("text_hidden", 32)
    t5_width = cfg.get("t5_d_model", 32)
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=latent * 8 + 4 * factor ** 2, out_channels=latent * 4,
        num_layers=cfg.get("num_layers", 1), num_single_layers=cfg.get("num_single_layers", 1),
        attention_head_dim=cfg.get("attention_head_dim", 16), num_attention_heads=cfg.get("num_attention_heads", 2),
        joint_attention_dim=t5_width, pooled_projection_dim=text_hidden, guidance_embeds=True,
        axes_dims_rope=tuple(cfg.get("axes_dims_rope", (4, 4, 8))),
    )
    vae_cfg = {"vae_shift_factor": 0.0609, "vae_scaling_factor": 1.5035, **cfg}
    vae = _vae(seed + 1, vae_cfg, sample_size=cfg.get("sample_size", 64), latent_channels=latent,
               use_quant_conv=False, use_post_quant_conv=False)
    torch.manual_seed(seed + 3)
    tokenizer_2 = byte_level_t5_tokenizer()
    t5 = T5EncoderModel(T5Config(
        vocab_size=cfg.get("t5_vocab", len(tokenizer_2)), d_model=t5_width, d_kv=cfg.get("t5_d_kv", 8),
        d_ff=cfg.get("t5_d_ff", 64), num_layers=cfg.get("t5_layers", 2), num_heads=cfg.get("t5_heads", 4),
        feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    text_encoder = _clip_text(seed + 2, text_hidden, layers=cfg.get("text_layers", 2), heads=cfg.get("text_heads", 4),
                              intermediate=cfg.get("text_intermediate"), vocab=cfg.get("vocab_size", 516),
                              act=cfg.get("text_act"))
    with torch.device("cpu"):
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_image_seq_len=256,
                                                    max_image_seq_len=4096, base_shift=0.5, max_shift=1.15)
    return FluxFillPipeline(
        scheduler=scheduler,
        vae=vae, text_encoder=text_encoder, tokenizer=byte_level_clip_tokenizer(),
        text_encoder_2=t5, tokenizer_2=tokenizer_2, transformer=transformer,
    )


def _blend(name: str):
    def build(seed: int, cfg: dict):
        from . import blend_families

        return getattr(blend_families, name)(seed, cfg)

    return build


BUILDERS = {"sd": _sd, "sdxl": _sdxl, "flux-fill": _flux_fill, "qwen-image": _blend("qwen_image_pipeline"),
            "flux2-klein": _blend("flux2_klein_pipeline"), "z-image": _blend("z_image_pipeline"),
            "qwen-image-edit": _blend("qwen_image_edit_pipeline")}
"""Family -> ``builder(seed, shape)`` of its random pipeline; a new family adds its fixture here."""
