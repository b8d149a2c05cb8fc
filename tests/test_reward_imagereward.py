"""``imagereward``: ImageReward.pt on transformers' BLIP towers, against a reference forward written here from
BLIP's ViT and med.py BERT (cross-attention to the image tokens) and ImageReward.score (first token, the MLP,
``(x - mean) / std``) on the raw state-dict tensors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prefpaint_sdk.errors import ConfigError, InvalidInputError, ModelNotFoundError, PickleRefusedError
from prefpaint_sdk.testing.rewards import TINY_IMAGEREWARD, save_tiny_imagereward


def _attend(q, k, v, heads, bias=None):
    b, n, d = q.shape
    q, k, v = (t.reshape(b, t.shape[1], heads, d // heads).transpose(1, 2) for t in (q, k, v))
    att = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if bias is not None:
        att = att + bias
    return (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)


def _lin(x, sd, p):
    return x @ sd[p + "weight"].T + sd[p + "bias"]


def _vit(sd, x):
    """BLIP's ViT (timm blocks, LayerNorm eps 1e-6): patches, cls, pos, pre-norm blocks, final norm."""
    v = "blip.visual_encoder."
    w, depth = TINY_IMAGEREWARD["vision"]
    x = F.conv2d(x, sd[v + "patch_embed.proj.weight"], sd[v + "patch_embed.proj.bias"], stride=TINY_IMAGEREWARD["patch"])
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([sd[v + "cls_token"].expand(x.shape[0], -1, -1), x], 1) + sd[v + "pos_embed"]
    for i in range(depth):
        p = f"{v}blocks.{i}."
        h = F.layer_norm(x, (w,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], eps=1e-6)
        q, k, vv = _lin(h, sd, p + "attn.qkv.").split(w, -1)
        x = x + _lin(_attend(q, k, vv, w // 64), sd, p + "attn.proj.")
        h = F.layer_norm(x, (w,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], eps=1e-6)
        x = x + _lin(F.gelu(_lin(h, sd, p + "mlp.fc1.")), sd, p + "mlp.fc2.")
    return F.layer_norm(x, (w,), sd[v + "norm.weight"], sd[v + "norm.bias"], eps=1e-6)


def _bert(sd, ids, mask, img):
    """med.py's BertModel in 'multimodal' mode: post-LN layers of self-attention, cross-attention, feed-forward."""
    t = "blip.text_encoder."
    w, layers, heads = TINY_IMAGEREWARD["text"]

    def ln(x, p):
        return F.layer_norm(x, (w,), sd[p + "LayerNorm.weight"], sd[p + "LayerNorm.bias"], eps=1e-12)

    x = sd[t + "embeddings.word_embeddings.weight"][ids] + sd[t + "embeddings.position_embeddings.weight"][:ids.shape[1]]
    x = ln(x, t + "embeddings.")
    bias = ((1.0 - mask[:, None, None, :].float()) * -10000.0)
    for i in range(layers):
        p = f"{t}encoder.layer.{i}."
        a = p + "attention."
        ctx = _attend(_lin(x, sd, a + "self.query."), _lin(x, sd, a + "self.key."), _lin(x, sd, a + "self.value."),
                      heads, bias)
        x = ln(_lin(ctx, sd, a + "output.dense.") + x, a + "output.")
        c = p + "crossattention."
        ctx = _attend(_lin(x, sd, c + "self.query."), _lin(img, sd, c + "self.key."), _lin(img, sd, c + "self.value."),
                      heads)
        x = ln(_lin(ctx, sd, c + "output.dense.") + x, c + "output.")
        h = F.gelu(_lin(x, sd, p + "intermediate.dense."))
        x = ln(_lin(h, sd, p + "output.dense.") + x, p + "output.")
    return x


def _reference(sd, pils, tokenizer, prompts):
    from PIL import Image

    size = TINY_IMAGEREWARD["image"]

    def pre(pil):  # ImageReward's _transform: Resize(224, bicubic), CenterCrop, ToTensor, CLIP mean/std
        w, h = pil.size
        nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
        a = np.asarray(pil.resize((nw, nh), Image.BICUBIC), dtype=np.float64) / 255
        top, left = int(round((nh - size) / 2)), int(round((nw - size) / 2))
        a = (a[top:top + size, left:left + size] - [0.48145466, 0.4578275, 0.40821073]) / [0.26862954, 0.26130258,
                                                                                          0.27577711]
        return torch.tensor(a.transpose(2, 0, 1), dtype=torch.float32)

    img = _vit(sd, torch.stack([pre(p) for p in pils]))
    tok = tokenizer(prompts, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
    x = _bert(sd, tok["input_ids"], tok["attention_mask"], img)[:, 0]
    for i in (0, 2, 4, 6, 7):  # Linear, Dropout, Linear, Dropout, Linear, Dropout, Linear, Linear: no activation
        x = _lin(x, sd, f"mlp.layers.{i}.")
    return (x.squeeze(-1) - 0.16717362830052426) / 1.0333394966054072


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_imagereward_equals_the_published_formula(tmp_path, fmt):
    from transformers import BertTokenizer

    from prefpaint_sdk.reward.base import to_pil
    from prefpaint_sdk.reward.imagereward import ImageRewardModel

    folder = save_tiny_imagereward(tmp_path / fmt, seed=4, fmt=fmt)
    images = torch.rand(3, 3, 41, 56, generator=torch.Generator().manual_seed(1))  # crop offset 5.5 -> 6
    prompts = ["a red barn", "", "two cats on a sofa, photo of them sitting there quietly in the warm afternoon light"]
    reward = ImageRewardModel.from_pretrained(folder, device="cpu", batch_size=2)
    got = reward(images, None, None, prompts=prompts)
    tok = BertTokenizer.from_pretrained(folder)  # BLIP's init_tokenizer
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    from safetensors.torch import load_file

    sd = load_file(folder / "model.safetensors") if fmt == "safetensors" else torch.load(folder / "ImageReward.pt",
                                                                                           weights_only=True)
    want = _reference(sd, to_pil(images), tok, prompts)
    assert got.bounds is None
    assert got.scores.tolist() == pytest.approx(want.tolist(), abs=1e-5)
    assert not torch.allclose(reward(images, None, None, prompts="zzz").scores, got.scores)
    with pytest.raises(ConfigError, match="against its prompt"):
        reward(images, None, None)


def test_imagereward_spec_and_refusals(tmp_path):
    import shutil

    from hostile.inputs import write_torch_pickle

    from prefpaint_sdk.reward.imagereward import ImageRewardModel
    from prefpaint_sdk.reward.specs import RewardSpec, load_reward, parse_spec, resolve_reward

    folder = save_tiny_imagereward(tmp_path / "ir", seed=4)
    assert parse_spec(f"imagereward={folder}") == RewardSpec("imagereward", str(folder))
    assert isinstance(load_reward(f"imagereward={folder}", device="cpu"), ImageRewardModel)
    with pytest.raises(ConfigError, match="imagereward=FOLDER"):
        parse_spec("imagereward")
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_reward(f"imagereward={tmp_path / 'nope'}")
    evil = tmp_path / "evil"
    shutil.copytree(folder, evil)
    write_torch_pickle(evil / "ImageReward.pt", tmp_path / "PWNED")
    with pytest.raises(PickleRefusedError, match="ImageReward.pt"):
        resolve_reward(f"imagereward={evil}")
    assert not (tmp_path / "PWNED").exists()
    (evil / "vocab.txt").unlink()
    shutil.copy(folder / "ImageReward.pt", evil)
    with pytest.raises(InvalidInputError, match="no vocab.txt"):
        resolve_reward(f"imagereward={evil}")
    shutil.copy(folder / "vocab.txt", evil)
    torch.save({"mlp.layers.0.weight": torch.zeros(2, 2)}, evil / "x.pt")
    with pytest.raises(InvalidInputError, match="not ImageReward's BLIP"):
        ImageRewardModel.from_pretrained(evil / "x.pt", device="cpu")


def test_score_cli_prints_the_imagereward_score(tmp_path):
    import json

    from PIL import Image
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    from prefpaint_sdk.reward.base import images_to_tensor
    from prefpaint_sdk.reward.imagereward import ImageRewardModel

    folder = save_tiny_imagereward(tmp_path / "ir", seed=4)
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(tmp_path / "img.png")
    m = np.zeros((40, 40), np.uint8)
    m[10:30, 10:30] = 255
    Image.fromarray(m, "L").save(tmp_path / "mask.png")
    r = CliRunner().invoke(app, ["score", str(tmp_path / "img.png"), str(tmp_path / "mask.png"), "--reward",
                                 f"imagereward={folder}", "--prompt", "a wall", "--json", "--quiet", "--device", "cpu",
                                 "--offline"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["rewards"]["imagereward"]
    want = ImageRewardModel.from_pretrained(folder, device="cpu")(images_to_tensor([Image.open(tmp_path / "img.png")]),
                                                                  None, None, prompts="a wall").scores
    assert got["score"] == pytest.approx(float(want[0]), abs=1e-5) and got["bound"] is None
