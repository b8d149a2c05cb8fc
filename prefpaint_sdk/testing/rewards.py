"""Tiny random open reward models, built offline: a ``transformers`` CLIPModel with its tokenizer, and an
HPSv2-style open_clip state dict with its config and tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TINY_HPS_CONFIG", "TINY_IMAGEREWARD", "save_tiny_clip_model", "save_tiny_hps", "save_tiny_imagereward",
           "tiny_clip_model", "tiny_open_clip_state_dict"]


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


# ImageReward's layout, tiny: a ViT (width 128 -> 2 heads of 64, 2 blocks, patch 16 on 32 px) and a BERT with
# cross-attention (width 32, 2 layers, 2 heads), the MLP head as published but from the tiny width
TINY_IMAGEREWARD = dict(vision=(128, 2), patch=16, image=32, text=(32, 2, 2), head=(1024, 128, 64, 16, 1))


def _bert_vocab() -> list[str]:
    chars = [chr(c) for c in range(33, 127) if not chr(c).isupper()]
    return ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *[f"##{c}" for c in chars]]


def save_tiny_imagereward(path: str | os.PathLike, seed: int = 0, fmt: str = "pt") -> Path:
    """A folder as ``imagereward=FOLDER`` reads it: random tensors under ImageReward.pt's names and tiny shapes
    (``ImageReward.pt`` as a plain dict, or ``model.safetensors``), ``med_config.json`` and a character
    ``vocab.txt`` (every character is a WordPiece). Returns the folder."""
    import json

    import torch

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = _bert_vocab()
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    c = TINY_IMAGEREWARD
    vw, vl = c["vision"]
    tw, tl, th = c["text"]
    vocab_size = len(vocab) + 2  # BLIP adds [DEC] and [ENC]
    med = dict(architectures=["BertModel"], hidden_size=tw, num_hidden_layers=tl, num_attention_heads=th,
               intermediate_size=4 * tw, vocab_size=vocab_size, max_position_embeddings=40, layer_norm_eps=1e-12,
               hidden_act="gelu", pad_token_id=0, encoder_width=vw, add_cross_attention=True, type_vocab_size=2)
    (path / "med_config.json").write_text(json.dumps(med, indent=1))
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.1, base=0.0):
        return (base + scale * torch.randn(*shape, generator=g)).float()

    v, t = "blip.visual_encoder.", "blip.text_encoder."
    grid = c["image"] // c["patch"]
    sd = {f"{v}cls_token": r(1, 1, vw), f"{v}pos_embed": r(1, grid * grid + 1, vw),
          f"{v}patch_embed.proj.weight": r(vw, 3, c["patch"], c["patch"], scale=0.02), f"{v}patch_embed.proj.bias": r(vw),
          f"{v}norm.weight": r(vw, base=1.0), f"{v}norm.bias": r(vw)}
    for i in range(vl):
        b = f"{v}blocks.{i}."
        sd.update({f"{b}norm1.weight": r(vw, base=1.0), f"{b}norm1.bias": r(vw), f"{b}attn.qkv.weight": r(3 * vw, vw),
                   f"{b}attn.qkv.bias": r(3 * vw), f"{b}attn.proj.weight": r(vw, vw), f"{b}attn.proj.bias": r(vw),
                   f"{b}norm2.weight": r(vw, base=1.0), f"{b}norm2.bias": r(vw), f"{b}mlp.fc1.weight": r(4 * vw, vw),
                   f"{b}mlp.fc1.bias": r(4 * vw), f"{b}mlp.fc2.weight": r(vw, 4 * vw), f"{b}mlp.fc2.bias": r(vw)})
    sd.update({f"{t}embeddings.word_embeddings.weight": r(vocab_size, tw),
               f"{t}embeddings.position_embeddings.weight": r(40, tw), f"{t}embeddings.LayerNorm.weight": r(tw, base=1.0),
               f"{t}embeddings.LayerNorm.bias": r(tw), f"{t}embeddings.position_ids": torch.arange(40)[None]})

    def attn(prefix, kv_width):
        return {f"{prefix}self.query.weight": r(tw, tw), f"{prefix}self.query.bias": r(tw),
                f"{prefix}self.key.weight": r(tw, kv_width), f"{prefix}self.key.bias": r(tw),
                f"{prefix}self.value.weight": r(tw, kv_width), f"{prefix}self.value.bias": r(tw),
                f"{prefix}output.dense.weight": r(tw, tw), f"{prefix}output.dense.bias": r(tw),
                f"{prefix}output.LayerNorm.weight": r(tw, base=1.0), f"{prefix}output.LayerNorm.bias": r(tw)}

    for i in range(tl):
        b = f"{t}encoder.layer.{i}."
        sd.update({**attn(f"{b}attention.", tw), **attn(f"{b}crossattention.", vw),
                   f"{b}intermediate.dense.weight": r(4 * tw, tw), f"{b}intermediate.dense.bias": r(4 * tw),
                   f"{b}output.dense.weight": r(tw, 4 * tw), f"{b}output.dense.bias": r(tw),
                   f"{b}output.LayerNorm.weight": r(tw, base=1.0), f"{b}output.LayerNorm.bias": r(tw)})
    widths = (tw, *c["head"])
    for layer, (a, b) in zip((0, 2, 4, 6, 7), zip(widths, widths[1:])):
        sd[f"mlp.layers.{layer}.weight"], sd[f"mlp.layers.{layer}.bias"] = r(b, a, scale=0.05), r(b)  # scores of order 1
    if fmt == "safetensors":
        from safetensors.torch import save_file

        save_file(sd, str(path / "model.safetensors"))
    else:
        torch.save(sd, path / "ImageReward.pt")
    return path
