"""Tiny random open reward models, built offline: a ``transformers`` CLIPModel with its tokenizer, and an
HPSv2-style open_clip state dict with its config and tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TINY_HPS_CONFIG", "save_tiny_clip_model", "save_tiny_hps", "tiny_clip_model", "tiny_open_clip_state_dict"]


def tiny_clip_model(seed: int = 0):
    """A random ``CLIPModel`` (32 px, 2 layers a tower) and the byte-level tokenizer its vocabulary fits."""
    import torch
    from transformers import CLIPConfig, CLIPModel

    from .tokenizers import byte_level_clip_tokenizer

    tokenizer = byte_level_clip_tokenizer()
    torch.manual_seed(seed)
    # the text tower pools at the first eos token: its id must be the tokenizer's
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, max_position_embeddings=77, bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
                  patch_size=8)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    return model, tokenizer


def save_tiny_clip_model(path: str | os.PathLike, seed: int = 0) -> Path:
    """:func:`tiny_clip_model` saved with ``save_pretrained`` (safetensors, tokenizer beside it); returns the path."""
    path = Path(path)
    model, tokenizer = tiny_clip_model(seed)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


# a ViT CLIP in open_clip's layout: (width, layers, heads) a tower, patch 8 on 32 px, GELU as ViT-H-14
TINY_HPS_CONFIG = dict(vision=(32, 2, 4), text=(24, 2, 4), patch=8, image=32, context=77, embed=16)


def tiny_open_clip_state_dict(vocab_size: int, seed: int = 0) -> dict:
    """Random tensors under open_clip's CLIP key names and shapes (:data:`TINY_HPS_CONFIG`), a plain dict."""
    import math

    import torch

    g = torch.Generator().manual_seed(seed)
    c = TINY_HPS_CONFIG

    def r(*shape, scale=0.1, base=0.0):
        return (base + scale * torch.randn(*shape, generator=g)).float()

    def tower(prefix, width, layers):
        sd = {}
        for i in range(layers):
            b = f"{prefix}resblocks.{i}."
            sd.update({f"{b}ln_1.weight": r(width, base=1.0), f"{b}ln_1.bias": r(width),
                       f"{b}attn.in_proj_weight": r(3 * width, width), f"{b}attn.in_proj_bias": r(3 * width),
                       f"{b}attn.out_proj.weight": r(width, width), f"{b}attn.out_proj.bias": r(width),
                       f"{b}ln_2.weight": r(width, base=1.0), f"{b}ln_2.bias": r(width),
                       f"{b}mlp.c_fc.weight": r(4 * width, width), f"{b}mlp.c_fc.bias": r(4 * width),
                       f"{b}mlp.c_proj.weight": r(width, 4 * width), f"{b}mlp.c_proj.bias": r(width)})
        return sd

    vw, vl, _ = c["vision"]
    tw, tl, _ = c["text"]
    grid = c["image"] // c["patch"]
    sd = {"visual.conv1.weight": r(vw, 3, c["patch"], c["patch"]), "visual.class_embedding": r(vw),
          "visual.positional_embedding": r(grid * grid + 1, vw), "visual.ln_pre.weight": r(vw, base=1.0),
          "visual.ln_pre.bias": r(vw), "visual.ln_post.weight": r(vw, base=1.0), "visual.ln_post.bias": r(vw),
          "visual.proj": r(vw, c["embed"]), "token_embedding.weight": r(vocab_size, tw),
          "positional_embedding": r(c["context"], tw), "ln_final.weight": r(tw, base=1.0), "ln_final.bias": r(tw),
          "text_projection": r(tw, c["embed"]), "logit_scale": torch.tensor(math.log(1 / 0.07))}
    sd.update(tower("visual.transformer.", vw, vl))
    sd.update(tower("transformer.", tw, tl))
    return sd


def save_tiny_hps(path: str | os.PathLike, seed: int = 0, fmt: str = "pt") -> Path:
    """A folder as ``hpsv2=FOLDER`` reads it: the tiny open_clip state dict (``HPS_v2_compressed.pt``, wrapped in
    ``{"state_dict": ...}`` as HPSv2 publishes it, or ``model.safetensors`` for ``fmt="safetensors"``), its
    ``config.json`` (a CLIPConfig) and the byte-level CLIP tokenizer. Returns the folder."""
    import torch
    from transformers import CLIPConfig

    from .tokenizers import byte_level_clip_tokenizer

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tokenizer = byte_level_clip_tokenizer()
    tokenizer.save_pretrained(path)
    c = TINY_HPS_CONFIG
    sd = tiny_open_clip_state_dict(len(tokenizer), seed)
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path / "model.safetensors"))
    else:
        torch.save({"state_dict": sd, "epoch": 1}, path / "HPS_v2_compressed.pt")
    (vw, vl, vh), (tw, tl, th) = c["vision"], c["text"]
    CLIPConfig(projection_dim=c["embed"],
               vision_config=dict(hidden_size=vw, intermediate_size=4 * vw, num_hidden_layers=vl, num_attention_heads=vh,
                                  patch_size=c["patch"], image_size=c["image"], hidden_act="gelu"),
               text_config=dict(hidden_size=tw, intermediate_size=4 * tw, num_hidden_layers=tl, num_attention_heads=th,
                                max_position_embeddings=c["context"], vocab_size=len(tokenizer), hidden_act="gelu",
                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                pad_token_id=tokenizer.pad_token_id)).save_pretrained(path)
    return path
