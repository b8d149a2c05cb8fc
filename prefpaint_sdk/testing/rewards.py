"""Tiny random open reward models, built offline: a ``transformers`` CLIPModel with its tokenizer."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["save_tiny_clip_model", "tiny_clip_model"]


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
