"""Tiny random models of the real classes, built offline, for tests, benchmarks and ``doctor --smoke``.

They are the same diffusers/transformers classes the real weights load into, only small and random, and
they are saved with ``save_pretrained`` so tests load them through the same ``from_pretrained`` path the
real weights take. Nothing here touches the network.
"""

from __future__ import annotations

import os
from pathlib import Path

from .pipelines import FAMILIES, save_tiny_inpaint_pipeline, tiny_inpaint_pipeline
from .shapes import PIPELINE_SIZES, fixture_shape
from .tokenizers import byte_level_clip_tokenizer, byte_level_t5_tokenizer

__all__ = [
    "fixture_shape",
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

    from ..reward import RewardModel, fit_trust

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
