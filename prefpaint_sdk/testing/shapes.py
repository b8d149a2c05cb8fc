"""The shapes of the random fixtures: per size name, per family.

* ``"tiny"``: tests (64 px working size for every family).
* ``"mid"``: benchmarks; the real model's structure and proportions between its parts (block layout, text
  widths, 8x VAE, latent channels), scaled down so one call at the working size (512 px) takes about a second
  on a CPU.
* ``"real"``: the published configs of the real models, random weights; benchmarks only (gigabytes):

  - ``sd``: ``runwayml/stable-diffusion-inpainting`` (SD 1.5 inpainting): ``unet/config.json``,
    ``vae/config.json``, ``text_encoder/config.json`` (CLIP ViT-L/14 text);
  - ``sdxl``: ``diffusers/stable-diffusion-xl-1.0-inpainting-0.1``: the UNet, the VAE, ``text_encoder``
    (CLIP ViT-L/14) and ``text_encoder_2`` (OpenCLIP ViT-bigG/14, with projection);
  - ``flux-fill``: ``black-forest-labs/FLUX.1-Fill-dev``: ``transformer/config.json``, the VAE (16 latent
    channels), CLIP ViT-L/14 and T5 v1.1 XXL encoders;
  - ``qwen-image``: ``Qwen/Qwen-Image``: the 60-layer MMDiT, the Qwen-Image VAE, Qwen2.5-VL-7B;
  - ``qwen-image-edit``: ``Qwen/Qwen-Image-Edit``: the same three parts (the text encoder also reads the image);
  - ``flux2-klein``: ``black-forest-labs/FLUX.2-klein-4B``: 5 double + 20 single blocks, the FLUX.2 VAE
    (32 latent channels), Qwen3-4B;
  - ``z-image``: ``Tongyi-MAI/Z-Image-Turbo``: the 30-layer single-stream DiT, the FLUX.1 VAE, Qwen3-4B.

  The tokenizers stay the byte-level ones of :mod:`.tokenizers` (no vocabulary files offline); the text
  encoders keep the real vocabulary sizes, so their embedding tables have the real parameter counts.

Each family's builder in :mod:`.pipelines` reads the keys it knows; a key missing from a shape takes the
default given there (which is what "tiny" has always been, so the tiny fixtures stay bit-identical).
"""

from __future__ import annotations

__all__ = ["PIPELINE_SIZES", "fixture_shape"]

# CLIP ViT-L/14's text tower: SD 1.5's encoder, SDXL's first, FLUX's CLIP.
_CLIP_L = dict(hidden=768, layers=12, heads=12, intermediate=3072, vocab=49408, act="quick_gelu")
# SD 1.5 / SDXL / FLUX VAE: 4 levels (8x), 2 resnets per level.
_VAE_8X = dict(channels=(128, 256, 512, 512), layers=2)

# Qwen3-4B (FLUX.2 klein 4B's and Z-Image's text encoder) and Qwen2.5-VL-7B (Qwen-Image's), from their configs.
_QWEN3_4B = dict(text_hidden=2560, text_intermediate=9728, text_layers=36, text_heads=32, text_kv_heads=8,
                 text_head_dim=128, vocab_size=151936, text_positions=40960)
_QWEN25_VL_7B = dict(text_hidden=3584, text_intermediate=18944, text_layers=28, text_heads=28, text_kv_heads=4,
                     vocab_size=152064, tie_word_embeddings=False, vision_depth=32, vision_hidden=1280,
                     vision_intermediate=3420, vision_heads=16, mrope_section=(16, 24, 24), text_positions=128000)

PIPELINE_SIZES: dict[str, dict[str, dict]] = {
    "tiny": {
        "sd": dict(
            unet_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, unet_sample_size=32,
            vae_channels=(32, 64), text_hidden=32, text_layers=2,
        ),
        "sdxl": dict(),
        "flux-fill": dict(),
        "qwen-image": dict(sample_size=64),
        # The edit pipeline always works at a 1024x1024 area, where the VAE's full-size convolutions are the whole
        # cost of a call: a 16x VAE of width 2 with no resnet in the encoder's levels (one in the decoder's).
        "qwen-image-edit": dict(vae_base_dim=2, vae_res_blocks=0, vae_dim_mult=(1, 1, 1, 1, 1),
                                vae_temporal=(False, True, True, True)),
        "flux2-klein": dict(),
        "z-image": dict(),
    },
    "mid": {
        # The latent-blend families at real proportions, narrow: Qwen-Image's 16-channel 8x video VAE and
        # 2x2-packed MMDiT; FLUX.2 klein's 32-channel VAE and 1:4 double:single blocks; Z-Image's single stream.
        "qwen-image": dict(z_dim=16, vae_base_dim=16, vae_dim_mult=(1, 2, 4, 4), vae_temporal=(False, True, True),
                           num_layers=4, attention_head_dim=32, num_attention_heads=4, axes_dims_rope=(8, 12, 12),
                           text_hidden=64, text_layers=2, mrope_section=(4, 6, 6), sample_size=512),
        "qwen-image-edit": dict(z_dim=16, vae_base_dim=16, vae_dim_mult=(1, 2, 4, 4), vae_temporal=(False, True, True),
                                num_layers=4, attention_head_dim=32, num_attention_heads=4, axes_dims_rope=(8, 12, 12),
                                text_hidden=64, text_layers=2, mrope_section=(4, 6, 6)),
        "flux2-klein": dict(latent_channels=32, vae_channels=(32, 32, 32, 32), sample_size=512, num_layers=1,
                            num_single_layers=4, attention_head_dim=32, num_attention_heads=4,
                            axes_dims_rope=(8, 8, 8, 8), text_hidden=32),
        "z-image": dict(vae_channels=(32, 32, 32, 32), sample_size=512, dim=128, num_layers=4, num_heads=4,
                        axes_dims=(8, 12, 12), text_hidden=64),
        "sd": dict(
            unet_channels=(64, 128, 256), layers_per_block=1, cross_attention_dim=64, unet_sample_size=64,
            vae_channels=(32, 32, 32, 32), text_hidden=64, text_layers=2,
        ),
        # SDXL's layout at 1/5 of its width: no attention at the top level, deeper transformers further down
        # (real: 1, 2, 10), head size 64 as the real (5, 10, 20) heads have; two encoders concatenated.
        "sdxl": dict(
            unet_channels=(64, 128, 256), layers_per_block=1, attention_heads=(1, 2, 4), transformer_layers=(1, 1, 2),
            text_hidden=(64, 64), text_layers=2, time_embed_dim=32, unet_sample_size=64,
            vae_channels=(32, 32, 32, 32),
        ),
        # FLUX Fill's layout: 16 latent channels, 8x VAE (so 384 transformer input channels), double:single
        # blocks 1:2 (real: 19:38), 2x2 packing; width 128 (real 3072), head size 32 (real 128).
        "flux-fill": dict(
            vae_channels=(32, 32, 32, 32), latent_channels=16, sample_size=512, num_layers=2, num_single_layers=4,
            attention_head_dim=32, num_attention_heads=4, axes_dims_rope=(8, 12, 12), text_hidden=64, t5_d_model=64,
        ),
    },
    "real": {
        "sd": dict(
            unet_channels=(320, 640, 1280, 1280), layers_per_block=2, cross_attention_dim=768, unet_sample_size=64,
            attention_head_dim=8, attention_at_top=True,
            vae_channels=_VAE_8X["channels"], vae_layers=_VAE_8X["layers"], vae_sample_size=512,
            text_hidden=_CLIP_L["hidden"], text_layers=_CLIP_L["layers"], text_heads=_CLIP_L["heads"],
            text_intermediate=_CLIP_L["intermediate"], vocab_size=_CLIP_L["vocab"], text_act=_CLIP_L["act"],
        ),
        "sdxl": dict(
            unet_channels=(320, 640, 1280), layers_per_block=2, attention_heads=(5, 10, 20),
            transformer_layers=(1, 2, 10), time_embed_dim=256, unet_sample_size=128,
            text_hidden=(768, 1280), text_layers=(12, 32), text_heads=(12, 20), text_intermediate=(3072, 5120),
            text_act=("quick_gelu", "gelu"), vocab_size=49408,
            vae_channels=_VAE_8X["channels"], vae_layers=_VAE_8X["layers"], vae_sample_size=1024,
            vae_scaling_factor=0.13025, vae_force_upcast=True,
        ),
        "flux-fill": dict(
            vae_channels=_VAE_8X["channels"], vae_layers=_VAE_8X["layers"], latent_channels=16, sample_size=1024,
            num_layers=19, num_single_layers=38, attention_head_dim=128, num_attention_heads=24,
            axes_dims_rope=(16, 56, 56), text_hidden=_CLIP_L["hidden"], text_layers=_CLIP_L["layers"],
            text_heads=_CLIP_L["heads"], text_intermediate=_CLIP_L["intermediate"], vocab_size=_CLIP_L["vocab"],
            text_act=_CLIP_L["act"], vae_shift_factor=0.1159, vae_scaling_factor=0.3611, vae_force_upcast=True,
            t5_d_model=4096, t5_d_kv=64, t5_d_ff=10240, t5_layers=24, t5_heads=64, t5_vocab=32128,
        ),
        "qwen-image": dict(
            z_dim=16, vae_base_dim=96, vae_dim_mult=(1, 2, 4, 4), vae_res_blocks=2, vae_temporal=(False, True, True),
            num_layers=60, attention_head_dim=128, num_attention_heads=24, axes_dims_rope=(16, 56, 56),
            **_QWEN25_VL_7B,
        ),
        # Qwen/Qwen-Image-Edit: Qwen-Image's MMDiT, VAE and Qwen2.5-VL-7B (its vision tower reads the image).
        "qwen-image-edit": dict(
            z_dim=16, vae_base_dim=96, vae_dim_mult=(1, 2, 4, 4), vae_res_blocks=2, vae_temporal=(False, True, True),
            num_layers=60, attention_head_dim=128, num_attention_heads=24, axes_dims_rope=(16, 56, 56),
            **_QWEN25_VL_7B,
        ),
        "flux2-klein": dict(
            latent_channels=32, vae_channels=_VAE_8X["channels"], vae_layers=_VAE_8X["layers"], sample_size=1024,
            num_layers=5, num_single_layers=20, attention_head_dim=128, num_attention_heads=24,
            axes_dims_rope=(32, 32, 32, 32), is_distilled=True, **_QWEN3_4B,
        ),
        "z-image": dict(
            vae_channels=_VAE_8X["channels"], vae_layers=_VAE_8X["layers"], sample_size=1024, latent_channels=16,
            dim=3840, num_layers=30, refiner_layers=2, num_heads=30, axes_dims=(32, 48, 48),
            axes_lens=(1536, 512, 512), **_QWEN3_4B,
        ),
    },
}
"""size name -> family -> shape keys (see the module docstring)."""


def fixture_shape(size: str, family: str, overrides: dict | None = None) -> dict:
    """The shape of ``family`` at ``size``, with ``overrides`` applied (keys of that family's shape)."""
    if size not in PIPELINE_SIZES:
        raise ValueError(f"size must be one of {', '.join(PIPELINE_SIZES)}, got {size!r}")
    return {**PIPELINE_SIZES[size][family], **(overrides or {})}
