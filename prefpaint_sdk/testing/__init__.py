"""Tiny random models of the real classes, built offline, for tests, benchmarks and ``doctor --smoke``.

They are the same diffusers/transformers classes the real weights load into, only small and random, and
they are saved with ``save_pretrained`` so tests load them through the same ``from_pretrained`` path the
real weights take. Nothing here touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = [
    "byte_level_clip_tokenizer",
    "byte_level_t5_tokenizer",
    "FAMILIES",
    "tiny_inpaint_pipeline",
    "save_tiny_inpaint_pipeline",
    "PIPELINE_SIZES",
    "TINY_REWARD_CONFIG",
    "tiny_reward_model",
    "save_tiny_reward_model",
    "write_synthetic_reward_dataset",
    "write_png_bomb",
]

def write_png_bomb(path: str | os.PathLike, width: int = 100_000, height: int = 100_000) -> Path:
    """A valid-looking PNG of a few dozen bytes whose header claims ``width`` x ``height`` 8-bit grey pixels.

    The one decompression-bomb fixture of the tests: a reader that trusts the header and allocates the whole
    image (10 gigapixels by default) is the bug; one that checks the header against the pixel limit refuses it.
    """
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale, no interlace
    path = Path(path)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64, 9))
                     + chunk(b"IEND", b""))
    return path


# UNet/VAE shapes by name. "tiny" is for tests (64 px working size); "mid" keeps real proportions
# between UNet, VAE and text encoder for benchmarks (512 px working size, UNet channels 64/128/256).
PIPELINE_SIZES = {
    "tiny": dict(
        unet_channels=(32, 64), layers_per_block=1, cross_attention_dim=32, unet_sample_size=32,
        vae_channels=(32, 64), text_hidden=32, text_layers=2,
    ),
    "mid": dict(
        unet_channels=(64, 128, 256), layers_per_block=1, cross_attention_dim=64, unet_sample_size=64,
        vae_channels=(32, 32, 32, 32), text_hidden=64, text_layers=2,
    ),
}


def _bytes_to_unicode() -> dict[int, str]:
    # GPT-2/CLIP byte-level alphabet: every byte maps to a printable unicode character.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def byte_level_clip_tokenizer():
    """A ``CLIPTokenizer`` over the 256-byte alphabet with no merges: every character is a token."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": i + len(chars) for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77)


FAMILIES = ("sd", "sdxl", "flux-fill")
"""The model families with a tiny fixture (every family of :mod:`prefpaint_sdk.engines`)."""


def byte_level_t5_tokenizer(model_max_length: int = 512):
    """A T5 tokenizer (Unigram, built in memory by ``tokenizers`` through transformers' ``T5Tokenizer``) over
    printable ASCII: ``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, then the word-start mark and one piece per
    character. Every character is a token."""
    from transformers import T5Tokenizer

    chars = [chr(c) for c in range(33, 127)]
    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -1.0)] + [(c, -2.0) for c in chars]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=model_max_length)


def tiny_inpaint_pipeline(seed: int = 0, size: str = "tiny", family: str = "sd", **overrides):
    """A random inpainting pipeline of ``family``, built in memory from the real classes.

    * ``"sd"``: ``StableDiffusionInpaintPipeline`` with a 9-channel UNet, a CLIP text encoder, DDIM.
    * ``"sdxl"``: ``StableDiffusionXLInpaintPipeline``: 9-channel UNet with SDXL's text-time conditioning,
      two CLIP text encoders (the second with projection), an Euler scheduler as the real model ships.
    * ``"flux-fill"``: ``FluxFillPipeline``: ``FluxTransformer2DModel`` with guidance embedding, a CLIP text
      encoder, a T5 encoder with :func:`byte_level_t5_tokenizer`, flow-matching Euler scheduler.

    Every family's working size is 64 px at ``size="tiny"``.

    Args:
        seed: seeds the random weights, so the same seed gives the same model.
        size: a key of :data:`PIPELINE_SIZES` ("mid" only for ``"sd"``).
        family: one of :data:`FAMILIES`.
        overrides: replace entries of that size's shape (e.g. ``vae_channels=(32,) * 4`` for an 8x VAE; SD only).
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    if family != "sd":
        if size != "tiny" or overrides:
            raise ValueError(f"the {family} fixture comes in size 'tiny' only, without overrides")
        return _tiny_sdxl(seed) if family == "sdxl" else _tiny_flux_fill(seed)
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionInpaintPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if size not in PIPELINE_SIZES:
        raise ValueError(f"size must be one of {sorted(PIPELINE_SIZES)}, got {size!r}")
    cfg = {**PIPELINE_SIZES[size], **overrides}
    n_unet = len(cfg["unet_channels"])
    n_vae = len(cfg["vae_channels"])
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        block_out_channels=cfg["unet_channels"],
        layers_per_block=cfg["layers_per_block"],
        sample_size=cfg["unet_sample_size"],
        in_channels=9,
        out_channels=4,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n_unet - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n_unet - 1) + ("UpBlock2D",),
        cross_attention_dim=cfg["cross_attention_dim"],
        attention_head_dim=8,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(
        block_out_channels=cfg["vae_channels"],
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n_vae,
        up_block_types=("UpDecoderBlock2D",) * n_vae,
        latent_channels=4,
        layers_per_block=1,
        norm_num_groups=32,
    )
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            bos_token_id=514, eos_token_id=515, pad_token_id=515,
            hidden_size=cfg["text_hidden"], projection_dim=cfg["cross_attention_dim"],
            intermediate_size=2 * cfg["text_hidden"], num_attention_heads=4,
            num_hidden_layers=cfg["text_layers"], vocab_size=516, max_position_embeddings=77,
        )
    )
    if cfg["text_hidden"] != cfg["cross_attention_dim"]:
        raise ValueError("text_hidden must equal cross_attention_dim")
    scheduler = DDIMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1,
    )
    pipe = StableDiffusionInpaintPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=byte_level_clip_tokenizer(), unet=unet,
        scheduler=scheduler, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _tiny_clip_text(seed: int, hidden: int, *, projection: bool = False):
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(seed)
    config = CLIPTextConfig(
        bos_token_id=514, eos_token_id=515, pad_token_id=515, hidden_size=hidden, projection_dim=hidden,
        intermediate_size=2 * hidden, num_attention_heads=4, num_hidden_layers=2, vocab_size=516,
        max_position_embeddings=77,
    )
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)


def _tiny_vae(seed: int, **kw):
    import torch
    from diffusers import AutoencoderKL

    torch.manual_seed(seed)
    return AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         layers_per_block=1, norm_num_groups=32, **kw)


def _tiny_sdxl(seed: int):
    """SDXL inpainting in miniature: the real model's structure (text-time conditioning without aesthetic
    score, two text encoders whose hidden states are concatenated), 64 px working size."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline, UNet2DConditionModel

    torch.manual_seed(seed)
    time_dim = 8
    unet = UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=9, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=time_dim, transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * time_dim + 32,  # 6 time ids + the pooled text embedding
        cross_attention_dim=64, norm_num_groups=32,
    )
    vae = _tiny_vae(seed + 1, sample_size=64)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1,
        timestep_spacing="leading",
    )
    pipe = StableDiffusionXLInpaintPipeline(
        vae=vae, text_encoder=_tiny_clip_text(seed + 2, 32), text_encoder_2=_tiny_clip_text(seed + 3, 32, projection=True),
        tokenizer=byte_level_clip_tokenizer(), tokenizer_2=byte_level_clip_tokenizer(), unet=unet,
        scheduler=scheduler, requires_aesthetics_score=False, force_zeros_for_empty_prompt=True,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _tiny_flux_fill(seed: int):
    """FLUX.1 Fill in miniature: a 2x VAE with 4 latent channels, so the transformer sees packed latents (16),
    masked-image latents (16) and the mask (4 * 2 * 2) = 48 channels; 64 px working size (the VAE's sample_size)."""
    import torch
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxFillPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(
        patch_size=1, in_channels=48, out_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
        num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, guidance_embeds=True,
        axes_dims_rope=(4, 4, 8),
    )
    vae = _tiny_vae(seed + 1, sample_size=64, latent_channels=4, use_quant_conv=False, use_post_quant_conv=False,
                    shift_factor=0.0609, scaling_factor=1.5035)
    torch.manual_seed(seed + 3)
    tokenizer_2 = byte_level_t5_tokenizer()
    t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                                 feed_forward_proj="gated-gelu", pad_token_id=0, eos_token_id=1, decoder_start_token_id=0))
    pipe = FluxFillPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, base_image_seq_len=256,
                                                  max_image_seq_len=4096, base_shift=0.5, max_shift=1.15),
        vae=vae, text_encoder=_tiny_clip_text(seed + 2, 32), tokenizer=byte_level_clip_tokenizer(),
        text_encoder_2=t5, tokenizer_2=tokenizer_2, transformer=transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_tiny_inpaint_pipeline(path: str | os.PathLike, seed: int = 0, size: str = "tiny", family: str = "sd") -> Path:
    """Build :func:`tiny_inpaint_pipeline` of ``family`` and save it as a diffusers folder (safetensors);
    returns the path. It loads through the same ``from_pretrained`` path as real weights."""
    from .devices import quiet_loading

    path = Path(path)
    with quiet_loading():
        tiny_inpaint_pipeline(seed=seed, size=size, family=family).save_pretrained(path, safe_serialization=True)
    return path


# A CLIP vision tower small enough for CPU tests (32 px input, 8 px patches, 2 layers) with the paper's
# head shrunk to match (fusion width 2*16, embedding 16).
TINY_REWARD_CONFIG = dict(
    vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                       image_size=32, patch_size=8, projection_dim=16, hidden_act="quick_gelu"),
    head_heads=4, mlp_hidden=32, embed_dim=16,
)


def tiny_reward_model(seed: int = 0, *, trust: bool = True):
    """A random :class:`~prefpaint_sdk.reward.RewardModel` with a tiny CLIP vision backbone (eval mode).

    Args:
        seed: seeds the weights (and the images the trust matrix is fitted on).
        trust: fit a trust matrix on the embeddings of 8 random images, so scores come with bounds.
    """
    import numpy as np
    import torch

    from .reward import RewardModel, fit_trust

    torch.manual_seed(seed)
    model = RewardModel(**TINY_REWARD_CONFIG).eval()
    if trust:
        rng = np.random.default_rng(seed)
        images = [rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(8)]
        hole = np.zeros((48, 48), bool)
        hole[12:36, 12:36] = True
        model.set_trust(fit_trust(model.score(images, masks=hole).embeddings, lam=0.01))
    return model


def save_tiny_reward_model(path: str | os.PathLike, seed: int = 0, *, trust: bool = True) -> Path:
    """Build :func:`tiny_reward_model` and save it with ``save_pretrained`` (safetensors); returns the path."""
    path = Path(path)
    tiny_reward_model(seed=seed, trust=trust).save_pretrained(path)
    return path


def write_synthetic_reward_dataset(root: str | os.PathLike, n_prompts: int = 60, per_prompt: int = 3, size: int = 48,
                                   seed: int = 0, target: str = "bright") -> Path:
    """A rated dataset in the official PrefPaint layout whose score is a known function of the image.

    Each prompt image is a random colour field with a rectangular hole; each of its ``per_prompt``
    inpaintings fills the hole with a textured grey of brightness ``b`` in [0.05, 0.95] and is rated
    ``7 * b`` (``target="bright"``), ``7 * (1 - b)`` (``"dark"``) or ``7 * (1 - |2b - 1|)`` (``"mid-grey"``).
    Training on "bright" and on "dark" must both rank held-out pairs well: no fixed network can do both.
    Written as ``labels.json`` (``{"<imgid>_<k>": [score, rank]}``), ``inpaint/``, ``masks_color/`` (hole
    black) and ``masks/``.
    """
    import json

    import numpy as np
    from PIL import Image

    if target not in ("bright", "dark", "mid-grey"):
        raise ValueError(f"target must be 'bright', 'dark' or 'mid-grey', got {target!r}")
    root = Path(root)
    for sub in ("inpaint", "masks_color", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = {}
    for g in range(n_prompts):
        imgid = f"p{g:04d}"
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((size, size), Image.BILINEAR)).copy()
        hole = np.zeros((size, size), bool)
        h, w = rng.integers(size // 3, 2 * size // 3, 2)
        y, x = rng.integers(0, size - h), rng.integers(0, size - w)
        hole[y:y + h, x:x + w] = True
        prompt = base.copy()
        prompt[hole] = 0
        Image.fromarray(prompt).save(root / "masks_color" / f"{imgid}_mask_color.png")
        Image.fromarray(hole.astype(np.uint8) * 255).save(root / "masks" / f"{imgid}_mask.png")
        brightness = rng.uniform(0.05, 0.95, per_prompt)
        scores = 7 * {"bright": brightness, "dark": 1 - brightness, "mid-grey": 1 - np.abs(2 * brightness - 1)}[target]
        order = np.argsort(-scores)
        for k, b in enumerate(brightness):
            img = base.copy()
            texture = rng.normal(0, 12, (int(hole.sum()), 1))
            img[hole] = np.clip(b * 255 + texture, 0, 255).astype(np.uint8)
            Image.fromarray(img).save(root / "inpaint" / f"{imgid}_{k}.png")
            labels[f"{imgid}_{k}"] = [round(float(scores[k]), 4), int(np.where(order == k)[0][0]) + 1]
    (root / "labels.json").write_text(json.dumps(labels))
    return root
