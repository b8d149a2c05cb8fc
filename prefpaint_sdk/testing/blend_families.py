"""Random pipelines of the latent-blend families: Qwen-Image, FLUX.2 klein and Z-Image (real classes, tiny shapes).

Each builder reads the keys of its shape in :data:`.shapes.PIPELINE_SIZES` (a missing key takes the tiny value
given here) and seeds every component in a fixed order, so a tiny fixture is the same from one run to the next.
The text encoders are Qwen models; their tokenizer is :func:`.tokenizers.byte_level_qwen_tokenizer` (259 tokens),
except at ``size="real"``, where the published vocabulary size keeps the embedding tables' parameter counts.
"""

from __future__ import annotations

from .tokenizers import byte_level_qwen_tokenizer

__all__ = ["qwen_image_pipeline", "qwen_image_edit_pipeline", "flux2_klein_pipeline", "z_image_pipeline"]

_VOCAB = 262  # the byte-level Qwen tokenizer's 259 tokens, and room for the vision ids Qwen2.5-VL's config names
_PAD, _EOS = 256, 258  # <|endoftext|>, <|im_end|> in that tokenizer


def _qwen3(seed: int, cfg: dict, *, causal: bool):
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM, Qwen3Model

    torch.manual_seed(seed)
    config = Qwen3Config(
        hidden_size=cfg.get("text_hidden", 16), intermediate_size=cfg.get("text_intermediate", 32),
        num_hidden_layers=cfg.get("text_layers", 2), num_attention_heads=cfg.get("text_heads", 2),
        num_key_value_heads=cfg.get("text_kv_heads", 2), head_dim=cfg.get("text_head_dim", 8),
        vocab_size=cfg.get("vocab_size", _VOCAB), max_position_embeddings=cfg.get("text_positions", 1024),
        tie_word_embeddings=cfg.get("tie_word_embeddings", True), rope_theta=1000000.0,
        bos_token_id=_PAD, eos_token_id=_EOS, pad_token_id=_PAD,
    )
    return (Qwen3ForCausalLM if causal else Qwen3Model)(config)


def qwen_image_pipeline(seed: int, cfg: dict):
    """``QwenImageInpaintPipeline``: ``QwenImageTransformer2DModel`` (2x2 patches of ``z_dim`` latents), the
    Qwen-Image VAE (``AutoencoderKLQwenImage``), a Qwen2.5-VL text encoder, flow-matching Euler with Qwen-Image's
    dynamic shift. Tiny: a 2x VAE of width 8 with 4 latent channels, working size pinned to 64 px."""
    import torch
    from diffusers import (
        AutoencoderKLQwenImage,
        FlowMatchEulerDiscreteScheduler,
        QwenImageInpaintPipeline,
        QwenImageTransformer2DModel,
    )
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    z = cfg.get("z_dim", 4)
    text_hidden = cfg.get("text_hidden", 16)
    torch.manual_seed(seed)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=z * 4, out_channels=z, num_layers=cfg.get("num_layers", 2),
        attention_head_dim=cfg.get("attention_head_dim", 16), num_attention_heads=cfg.get("num_attention_heads", 2),
        joint_attention_dim=text_hidden, guidance_embeds=False,
        axes_dims_rope=tuple(cfg.get("axes_dims_rope", (8, 4, 4))),
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLQwenImage(
        base_dim=cfg.get("vae_base_dim", 8), z_dim=z, dim_mult=list(cfg.get("vae_dim_mult", (1, 1))),
        num_res_blocks=cfg.get("vae_res_blocks", 1), temperal_downsample=list(cfg.get("vae_temporal", (False,))),
        latents_mean=list(cfg.get("latents_mean", [0.0] * z)), latents_std=list(cfg.get("latents_std", [1.0] * z)),
    )
    if cfg.get("sample_size"):
        # The pipeline's default size (128 latents) is 256 px on a 2x VAE, too slow for tests: the fixture pins
        # its working size in the VAE config, where the engine looks first.
        vae.register_to_config(sample_size=cfg["sample_size"])
    vocab = cfg.get("vocab_size", _VOCAB)
    torch.manual_seed(seed + 2)
    config = Qwen2_5_VLConfig(
        text_config=dict(
            hidden_size=text_hidden, intermediate_size=cfg.get("text_intermediate", 32),
            num_hidden_layers=cfg.get("text_layers", 2), num_attention_heads=cfg.get("text_heads", 2),
            num_key_value_heads=cfg.get("text_kv_heads", 2), vocab_size=vocab, rope_theta=1000000.0,
            max_position_embeddings=cfg.get("text_positions", 1024), bos_token_id=_PAD, eos_token_id=_EOS,
            rope_scaling=dict(mrope_section=list(cfg.get("mrope_section", (1, 1, 2))), rope_type="default",
                              type="default"),
        ),
        vision_config=dict(depth=cfg.get("vision_depth", 1), hidden_size=cfg.get("vision_hidden", 16),
                           intermediate_size=cfg.get("vision_intermediate", 16),
                           num_heads=cfg.get("vision_heads", 2), out_hidden_size=text_hidden),
        hidden_size=text_hidden, vocab_size=vocab, tie_word_embeddings=cfg.get("tie_word_embeddings", True),
        vision_start_token_id=vocab - 3, vision_end_token_id=vocab - 2,
        vision_token_id=vocab - 1, image_token_id=vocab - 1, video_token_id=vocab - 1,
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(config)
    with torch.device("cpu"):
        scheduler = FlowMatchEulerDiscreteScheduler(
            shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9, base_image_seq_len=256,
            max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential")
    return QwenImageInpaintPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                    tokenizer=byte_level_qwen_tokenizer(), transformer=transformer)


def qwen_image_edit_pipeline(seed: int, cfg: dict):
    """``QwenImageEditInpaintPipeline``: Qwen-Image's transformer, VAE and Qwen2.5-VL text encoder (the same
    builders and seeds as :func:`qwen_image_pipeline`), with a ``Qwen2VLProcessor`` whose image processor sees
    at most 56x56 pixels (a few vision tokens) and whose tokenizer knows the vision tokens. The processor is the
    engine's image-only one: transformers' video processors need torchvision."""
    from diffusers import QwenImageEditInpaintPipeline
    from transformers import Qwen2VLImageProcessorPil

    from ..engines.qwen_image_edit import ImageOnlyQwen2VLProcessor

    base = qwen_image_pipeline(seed, cfg)
    tokenizer = byte_level_qwen_tokenizer(vision=True)
    image_processor = Qwen2VLImageProcessorPil(min_pixels=cfg.get("vl_min_pixels", 28 * 28),
                                               max_pixels=cfg.get("vl_max_pixels", 56 * 56))
    processor = ImageOnlyQwen2VLProcessor(image_processor=image_processor, tokenizer=tokenizer, video_processor=None)
    return QwenImageEditInpaintPipeline(scheduler=base.scheduler, vae=base.vae, text_encoder=base.text_encoder,
                                        tokenizer=tokenizer, processor=processor, transformer=base.transformer)


def flux2_klein_pipeline(seed: int, cfg: dict):
    """``Flux2KleinInpaintPipeline``: ``Flux2Transformer2DModel`` on 2x2-patchified latents, the FLUX.2 VAE
    (``AutoencoderKLFlux2``), a Qwen3 causal LM whose hidden states 9, 18 and 27 are the text features (so the
    text encoder has 27 layers even when tiny, and the joint width is 3 x its hidden size)."""
    import torch
    from diffusers import (
        AutoencoderKLFlux2,
        FlowMatchEulerDiscreteScheduler,
        Flux2KleinInpaintPipeline,
        Flux2Transformer2DModel,
    )

    latent = cfg.get("latent_channels", 4)
    channels = tuple(cfg.get("vae_channels", (32, 64)))
    text = {"text_layers": 27, **cfg}
    torch.manual_seed(seed)
    transformer = Flux2Transformer2DModel(
        patch_size=1, in_channels=latent * 4, num_layers=cfg.get("num_layers", 1),
        num_single_layers=cfg.get("num_single_layers", 1), attention_head_dim=cfg.get("attention_head_dim", 16),
        num_attention_heads=cfg.get("num_attention_heads", 2), joint_attention_dim=3 * text.get("text_hidden", 16),
        timestep_guidance_channels=256, mlp_ratio=3.0, axes_dims_rope=tuple(cfg.get("axes_dims_rope", (4, 4, 4, 4))),
        guidance_embeds=False,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKLFlux2(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels), block_out_channels=channels,
        layers_per_block=cfg.get("vae_layers", 1), latent_channels=latent, norm_num_groups=32,
        sample_size=cfg.get("sample_size", 64), use_quant_conv=True, use_post_quant_conv=True,
    )
    text_encoder = _qwen3(seed + 2, text, causal=True)
    with torch.device("cpu"):
        scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_image_seq_len=256,
                                                    max_image_seq_len=4096, base_shift=0.5, max_shift=1.15)
    return Flux2KleinInpaintPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                     tokenizer=byte_level_qwen_tokenizer(), transformer=transformer,
                                     is_distilled=cfg.get("is_distilled", False))


def z_image_pipeline(seed: int, cfg: dict):
    """``ZImageInpaintPipeline``: ``ZImageTransformer2DModel`` (single stream, 2x2 patches), the FLUX.1 VAE
    (``AutoencoderKL``, 16 latent channels), a Qwen3 text model whose second-to-last hidden state conditions."""
    import torch
    from diffusers import (
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        ZImageInpaintPipeline,
        ZImageTransformer2DModel,
    )

    channels = tuple(cfg.get("vae_channels", (32, 64)))
    torch.manual_seed(seed)
    transformer = ZImageTransformer2DModel(
        all_patch_size=(2,), all_f_patch_size=(1,), in_channels=cfg.get("latent_channels", 16),
        dim=cfg.get("dim", 32), n_layers=cfg.get("num_layers", 2), n_refiner_layers=cfg.get("refiner_layers", 1),
        n_heads=cfg.get("num_heads", 2), n_kv_heads=cfg.get("num_heads", 2), norm_eps=1e-5, qk_norm=True,
        cap_feat_dim=cfg.get("text_hidden", 16), rope_theta=256.0, t_scale=1000.0,
        axes_dims=list(cfg.get("axes_dims", (8, 4, 4))), axes_lens=list(cfg.get("axes_lens", (1024, 512, 512))),
    )
    with torch.no_grad():  # the pad tokens start as torch.empty: give them seeded values
        transformer.x_pad_token.copy_(torch.randn_like(transformer.x_pad_token))
        transformer.cap_pad_token.copy_(torch.randn_like(transformer.cap_pad_token))
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * len(channels),
        up_block_types=("UpDecoderBlock2D",) * len(channels), block_out_channels=channels,
        layers_per_block=cfg.get("vae_layers", 1), latent_channels=cfg.get("latent_channels", 16), norm_num_groups=32,
        sample_size=cfg.get("sample_size", 64), scaling_factor=0.3611, shift_factor=0.1159,
        use_quant_conv=False, use_post_quant_conv=False,
    )
    text_encoder = _qwen3(seed + 2, cfg, causal=False)
    with torch.device("cpu"):
        scheduler = FlowMatchEulerDiscreteScheduler(shift=cfg.get("shift", 3.0), use_dynamic_shifting=False)
    return ZImageInpaintPipeline(scheduler=scheduler, vae=vae, text_encoder=text_encoder,
                                 tokenizer=byte_level_qwen_tokenizer(), transformer=transformer)
