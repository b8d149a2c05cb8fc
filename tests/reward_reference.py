"""An independent plain-torch reference of the official PrefPaint reward, for the converter's equivalence test.

It runs OpenAI CLIP's visual tower directly on an OpenAI-layout state dict (``conv1``, ``class_embedding``,
``positional_embedding``, ``ln_pre``, ``transformer.resblocks.N.{ln_1, attn.in_proj_*, attn.out_proj, ln_2,
mlp.c_fc, mlp.c_proj}``, ``ln_post``, ``proj``; QuickGELU), then the paper's head from the official keys
(a post-norm ``TransformerEncoderLayer`` with ReLU feed-forward, ``mlp.layers.0/2``, ``mlp.last_layer``).
It shares no code with ``prefpaint_sdk`` or transformers' CLIP: it is written from OpenAI's ``model.py``
equations, with hand-written multi-head attention. (open_clip would be the natural reference, but it needs
torchvision, which cannot be installed beside torch 2.13 here.)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def make_official_state_dict(seed=0, width=128, layers=2, patch=8, grid=4, proj=16, mlp_hidden=32, embed=16,
                             prefix="module."):
    """A random state dict in the official ``prefpaintReward.pt`` layout (text tower and duplicates included)."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.05):
        return torch.randn(*shape, generator=g) * scale

    def ln(n):
        return 1 + r(n, scale=0.1), r(n, scale=0.1)

    sd = {}
    v = "clip_model.visual."
    sd[v + "conv1.weight"] = r(width, 3, patch, patch)
    sd[v + "class_embedding"] = r(width, scale=0.5)
    sd[v + "positional_embedding"] = r(grid * grid + 1, width, scale=0.5)
    sd[v + "ln_pre.weight"], sd[v + "ln_pre.bias"] = ln(width)
    for i in range(layers):
        b = f"{v}transformer.resblocks.{i}."
        sd[b + "ln_1.weight"], sd[b + "ln_1.bias"] = ln(width)
        sd[b + "attn.in_proj_weight"] = r(3 * width, width, scale=0.2)
        sd[b + "attn.in_proj_bias"] = r(3 * width)
        sd[b + "attn.out_proj.weight"] = r(width, width, scale=0.1)
        sd[b + "attn.out_proj.bias"] = r(width)
        sd[b + "ln_2.weight"], sd[b + "ln_2.bias"] = ln(width)
        sd[b + "mlp.c_fc.weight"] = r(4 * width, width, scale=0.1)
        sd[b + "mlp.c_fc.bias"] = r(4 * width)
        sd[b + "mlp.c_proj.weight"] = r(width, 4 * width, scale=0.05)
        sd[b + "mlp.c_proj.bias"] = r(width)
    sd[v + "ln_post.weight"], sd[v + "ln_post.bias"] = ln(width)
    sd[v + "proj"] = r(width, proj, scale=0.1)
    # text tower and logit scale: present in the release, unused by the reward
    sd["clip_model.token_embedding.weight"] = r(50, 32)
    sd["clip_model.transformer.resblocks.0.attn.in_proj_weight"] = r(96, 32)
    sd["clip_model.text_projection"] = r(32, proj)
    sd["clip_model.logit_scale"] = torch.tensor(4.6)
    d = 2 * proj
    for head in ("vit_block.transformer_encoder.layers.0.", "vit_block.encoder_layer."):
        sd[head + "self_attn.in_proj_weight"] = r(3 * d, d, scale=0.2)
        sd[head + "self_attn.in_proj_bias"] = r(3 * d)
        sd[head + "self_attn.out_proj.weight"] = r(d, d, scale=0.2)
        sd[head + "self_attn.out_proj.bias"] = r(d)
        sd[head + "linear1.weight"] = r(d, d, scale=0.2)
        sd[head + "linear1.bias"] = r(d)
        sd[head + "linear2.weight"] = r(d, d, scale=0.2)
        sd[head + "linear2.bias"] = r(d)
        sd[head + "norm1.weight"], sd[head + "norm1.bias"] = ln(d)
        sd[head + "norm2.weight"], sd[head + "norm2.bias"] = ln(d)
    sd["mlp.layers.0.weight"], sd["mlp.layers.0.bias"] = r(mlp_hidden, d, scale=0.2), r(mlp_hidden)
    sd["mlp.layers.2.weight"], sd["mlp.layers.2.bias"] = r(embed, mlp_hidden, scale=0.2), r(embed)
    sd["mlp.last_layer.weight"] = r(1, embed, scale=0.3)
    return {prefix + k: t for k, t in sd.items()}


def _layer_norm(x, w, b, eps=1e-5):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * w + b


def _attention(x, w_in, b_in, w_out, b_out, heads):
    n, t, d = x.shape
    q, k, v = (x @ w_in.T + b_in).split(d, dim=-1)
    hd = d // heads

    def split(a):
        return a.reshape(n, t, heads, hd).transpose(1, 2)

    att = (split(q) @ split(k).transpose(-1, -2)) / math.sqrt(hd)
    out = torch.softmax(att, dim=-1) @ split(v)
    return out.transpose(1, 2).reshape(n, t, d) @ w_out.T + b_out


def reference_encode_image(sd, pixels, heads):
    """OpenAI CLIP ``VisionTransformer.forward`` on an OpenAI-layout state dict (prefix ``clip_model.visual.``)."""
    v = {k.split("clip_model.visual.", 1)[1]: t.double() for k, t in sd.items() if "clip_model.visual." in k}
    x = pixels.double()
    w = v["conv1.weight"]
    x = F.conv2d(x, w, stride=w.shape[-1])  # (N, width, g, g), no bias
    x = x.flatten(2).transpose(1, 2)  # (N, g*g, width)
    cls = v["class_embedding"].expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + v["positional_embedding"]
    x = _layer_norm(x, v["ln_pre.weight"], v["ln_pre.bias"])
    i = 0
    while f"transformer.resblocks.{i}.ln_1.weight" in v:
        b = f"transformer.resblocks.{i}."
        h = _layer_norm(x, v[b + "ln_1.weight"], v[b + "ln_1.bias"])
        x = x + _attention(h, v[b + "attn.in_proj_weight"], v[b + "attn.in_proj_bias"],
                           v[b + "attn.out_proj.weight"], v[b + "attn.out_proj.bias"], heads)
        h = _layer_norm(x, v[b + "ln_2.weight"], v[b + "ln_2.bias"])
        h = h @ v[b + "mlp.c_fc.weight"].T + v[b + "mlp.c_fc.bias"]
        h = h * torch.sigmoid(1.702 * h)  # QuickGELU
        x = x + h @ v[b + "mlp.c_proj.weight"].T + v[b + "mlp.c_proj.bias"]
        i += 1
    x = _layer_norm(x[:, 0, :], v["ln_post.weight"], v["ln_post.bias"])
    return x @ v["proj"]


def reference_score(sd, pixels, masked_pixels, vision_heads, head_heads=16):
    """Official reward: (scores (N,), z (N, D)) in float64, from the official state dict."""
    sd = {(k.removeprefix("module.")): t for k, t in sd.items()}
    e = torch.cat([reference_encode_image(sd, pixels, vision_heads),
                   reference_encode_image(sd, masked_pixels, vision_heads)], dim=-1).unsqueeze(1)
    p = "vit_block.transformer_encoder.layers.0."
    h = {k[len(p):]: t.double() for k, t in sd.items() if k.startswith(p)}
    # nn.TransformerEncoderLayer, post-norm, ReLU, eval mode (no dropout)
    a = _attention(e, h["self_attn.in_proj_weight"], h["self_attn.in_proj_bias"],
                   h["self_attn.out_proj.weight"], h["self_attn.out_proj.bias"], head_heads)
    x = _layer_norm(e + a, h["norm1.weight"], h["norm1.bias"])
    ff = torch.relu(x @ h["linear1.weight"].T + h["linear1.bias"]) @ h["linear2.weight"].T + h["linear2.bias"]
    x = _layer_norm(x + ff, h["norm2.weight"], h["norm2.bias"]).squeeze(1)
    x = x @ sd["mlp.layers.0.weight"].double().T + sd["mlp.layers.0.bias"].double()
    z = x @ sd["mlp.layers.2.weight"].double().T + sd["mlp.layers.2.bias"].double()
    return (z @ sd["mlp.last_layer.weight"].double().T).squeeze(-1), z
