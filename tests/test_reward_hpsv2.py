"""``hpsv2``: open_clip's checkpoint on transformers' CLIPModel, against a reference forward written here from
open_clip's architecture and HPSv2's score (normalised features, ``image_features @ text_features.T``, the
diagonal, no logit scale) on the raw state-dict tensors."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from prefpaint_sdk.errors import (
    ConfigError,
    CorruptFileError,
    InvalidInputError,
    ModelNotFoundError,
    PickleRefusedError,
)
from prefpaint_sdk.testing.rewards import TINY_HPS_CONFIG, save_tiny_hps


@pytest.fixture(scope="module")
def hps_pt(tmp_path_factory):
    return save_tiny_hps(tmp_path_factory.mktemp("hps") / "pt", seed=5)


def _block(x, sd, p, heads, causal):
    """open_clip's ResidualAttentionBlock: x + attn(ln_1(x)); x + mlp(ln_2(x)), nn.MultiheadAttention maths."""
    b, n, d = x.shape
    h = F.layer_norm(x, (d,), sd[p + "ln_1.weight"], sd[p + "ln_1.bias"], eps=1e-5)
    q, k, v = (h @ sd[p + "attn.in_proj_weight"].T + sd[p + "attn.in_proj_bias"]).split(d, dim=-1)
    q, k, v = (t.view(b, n, heads, d // heads).transpose(1, 2) for t in (q, k, v))
    att = q @ k.transpose(-1, -2) / math.sqrt(d // heads)
    if causal:
        att = att + torch.full((n, n), float("-inf")).triu(1)
    o = (att.softmax(-1) @ v).transpose(1, 2).reshape(b, n, d)
    x = x + o @ sd[p + "attn.out_proj.weight"].T + sd[p + "attn.out_proj.bias"]
    h = F.layer_norm(x, (d,), sd[p + "ln_2.weight"], sd[p + "ln_2.bias"], eps=1e-5)
    h = F.gelu(h @ sd[p + "mlp.c_fc.weight"].T + sd[p + "mlp.c_fc.bias"])
    return x + h @ sd[p + "mlp.c_proj.weight"].T + sd[p + "mlp.c_proj.bias"]


def _preprocess(pil, size):
    """open_clip's eval transform by hand: short side to ``size`` (bicubic), torchvision's centre crop, mean/std."""
    from PIL import Image

    w, h = pil.size
    nw, nh = (size, int(size * h / w)) if w <= h else (int(size * w / h), size)
    a = np.asarray(pil.resize((nw, nh), Image.BICUBIC), dtype=np.float64) / 255
    top, left = int(round((nh - size) / 2)), int(round((nw - size) / 2))
    a = a[top:top + size, left:left + size]
    a = (a - [0.48145466, 0.4578275, 0.40821073]) / [0.26862954, 0.26130258, 0.27577711]
    return torch.tensor(a.transpose(2, 0, 1), dtype=torch.float32)


def _reference(sd, pils, ids):
    c = TINY_HPS_CONFIG
    (vw, vl, vh), (tw, tl, th) = c["vision"], c["text"]
    x = torch.stack([_preprocess(p, c["image"]) for p in pils])
    x = F.conv2d(x, sd["visual.conv1.weight"], stride=c["patch"]).flatten(2).transpose(1, 2)
    x = torch.cat([sd["visual.class_embedding"].expand(x.shape[0], 1, vw), x], 1) + sd["visual.positional_embedding"]
    x = F.layer_norm(x, (vw,), sd["visual.ln_pre.weight"], sd["visual.ln_pre.bias"])
    for i in range(vl):
        x = _block(x, sd, f"visual.transformer.resblocks.{i}.", vh, causal=False)
    x = F.layer_norm(x, (vw,), sd["visual.ln_post.weight"], sd["visual.ln_post.bias"])
    img = x[:, 0] @ sd["visual.proj"]
    t = sd["token_embedding.weight"][ids] + sd["positional_embedding"]
    for i in range(tl):
        t = _block(t, sd, f"transformer.resblocks.{i}.", th, causal=True)
    t = F.layer_norm(t, (tw,), sd["ln_final.weight"], sd["ln_final.bias"])
    txt = t[torch.arange(ids.shape[0]), ids.argmax(-1)] @ sd["text_projection"]
    img, txt = F.normalize(img, dim=-1), F.normalize(txt, dim=-1)
    return torch.diagonal(img @ txt.T)


def _ids(tokenizer, prompts):
    """open_clip's tokenize: start, BPE tokens, end, zero padding to 77."""
    out = torch.zeros(len(prompts), 77, dtype=torch.long)
    for i, p in enumerate(prompts):
        toks = tokenizer(p)["input_ids"]  # already start ... end
        out[i, :len(toks)] = torch.tensor(toks)
    return out


@pytest.mark.parametrize("fmt", ["pt", "safetensors"])
def test_hpsv2_equals_the_published_formula(tmp_path, fmt):
    from transformers import AutoTokenizer

    from prefpaint_sdk.reward.base import to_pil
    from prefpaint_sdk.reward.hpsv2 import HpsReward

    folder = save_tiny_hps(tmp_path / fmt, seed=5, fmt=fmt)
    g = torch.Generator().manual_seed(1)
    # 41x56 resizes to 32x43: the crop offset 5.5 rounds to 6 as torchvision's CenterCrop does (floor would say 5)
    images = torch.rand(3, 3, 41, 56, generator=g)
    prompts = ["a red barn", "", "two cats on a sofa, photo"]
    reward = HpsReward.from_pretrained(folder, device="cpu", batch_size=2)  # two passes: batching is exact too
    got = reward(images, torch.zeros(3, 41, 56, dtype=torch.bool), images, prompts=prompts)
    from safetensors.torch import load_file

    tok = AutoTokenizer.from_pretrained(folder)
    sd = (load_file(folder / "model.safetensors") if fmt == "safetensors"
          else torch.load(folder / "HPS_v2_compressed.pt", weights_only=True)["state_dict"])
    want = _reference(sd, to_pil(images), _ids(tok, prompts))
    assert got.bounds is None
    assert got.scores.tolist() == pytest.approx(want.tolist(), abs=1e-5)
    assert all(-1 <= s <= 1 for s in got.scores.tolist())  # a cosine: no logit scale multiplies
    assert not torch.allclose(reward(images, None, None, prompts="zzz").scores, got.scores)
    with pytest.raises(ConfigError, match="against its prompt"):
        reward(images, None, None)


def test_hpsv2_spec_loads_through_the_stack(hps_pt):
    from prefpaint_sdk.reward.hpsv2 import HpsReward
    from prefpaint_sdk.reward.specs import RewardSpec, load_reward, load_stack, parse_spec

    assert parse_spec(f"hpsv2={hps_pt}") == RewardSpec("hpsv2", str(hps_pt))
    assert isinstance(load_reward(f"hpsv2={hps_pt / 'HPS_v2_compressed.pt'}", device="cpu"), HpsReward)  # a file too
    stack = load_stack([f"hpsv2={hps_pt}", "brightness"], device="cpu")
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    direct = HpsReward.from_pretrained(hps_pt, device="cpu")(images, None, None, prompts="a dog").scores
    out = stack(images, torch.ones(2, 32, 32, dtype=torch.bool), images, prompts=["a dog"] * 2)
    assert out.rewards["hpsv2"].scores.tolist() == pytest.approx(direct.tolist(), abs=1e-6)


def test_hpsv2_needs_a_source():
    from prefpaint_sdk.reward.specs import parse_spec

    with pytest.raises(ConfigError, match="hpsv2=FOLDER"):
        parse_spec("hpsv2")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_hpsv2_refuses_bad_sources_before_loading(tmp_path, hps_pt):
    import shutil

    from prefpaint_sdk.reward.specs import resolve_reward

    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_reward(f"hpsv2={tmp_path / 'nope'}")
    evil = tmp_path / "evil"
    shutil.copytree(hps_pt, evil)
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": _Evil()}, evil / "HPS_v2_compressed.pt")
    with pytest.raises(PickleRefusedError, match="print"):
        resolve_reward(f"hpsv2={evil}")
    (evil / "HPS_v2_compressed.pt").write_bytes(pickle.dumps({"state_dict": _Evil()}, protocol=2))  # not a zip
    with pytest.raises(PickleRefusedError, match="print"):
        resolve_reward(f"hpsv2={evil}")
    (evil / "HPS_v2_compressed.pt").write_bytes(b"garbage, not a checkpoint")
    with pytest.raises(CorruptFileError, match="not a torch or safetensors"):
        resolve_reward(f"hpsv2={evil}")
    notok = tmp_path / "notok"
    notok.mkdir()
    shutil.copy(hps_pt / "HPS_v2_compressed.pt", notok)
    with pytest.raises(InvalidInputError, match="no tokenizer"):
        resolve_reward(f"hpsv2={notok}")


def test_hpsv2_refuses_a_state_dict_of_another_model(tmp_path, hps_pt):
    import shutil

    from prefpaint_sdk.reward.hpsv2 import HpsReward

    other = tmp_path / "other"
    shutil.copytree(hps_pt, other)
    torch.save({"state_dict": {"fc.weight": torch.zeros(2, 2)}}, other / "HPS_v2_compressed.pt")
    with pytest.raises(InvalidInputError, match="not an open_clip ViT CLIP state dict"):
        HpsReward.from_pretrained(other, device="cpu")
    (other / "config.json").unlink()  # the default ViT-H-14 config: the tiny tensors do not fit it
    shutil.copy(hps_pt / "HPS_v2_compressed.pt", other)
    with pytest.raises(InvalidInputError, match="does not fit the config \\(ViT-H-14\\)"):
        HpsReward.from_pretrained(other, device="cpu")


# ------------------------------------------------------------------------------------------------
# the spec through the commands


def _files(d):
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / "img.png")
    m = np.zeros((40, 40), np.uint8)
    m[10:30, 10:30] = 255
    Image.fromarray(m, "L").save(d / "mask.png")
    return d / "img.png", d / "mask.png"


def test_score_cli_prints_the_hpsv2_score(hps_pt, tmp_path):
    import json

    from PIL import Image
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    from prefpaint_sdk.reward.base import images_to_tensor
    from prefpaint_sdk.reward.hpsv2 import HpsReward

    img, mask = _files(tmp_path)
    r = CliRunner().invoke(app, ["score", str(img), str(mask), "--reward", f"hpsv2={hps_pt}", "--reward", "seam",
                                 "--prompt", "a wall", "--json", "--quiet", "--device", "cpu", "--offline"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)["rewards"]["hpsv2"]
    want = HpsReward.from_pretrained(hps_pt, device="cpu")(images_to_tensor([Image.open(img)]), None, None,
                                                          prompts="a wall").scores
    assert got["score"] == pytest.approx(float(want[0]), abs=1e-5) and got["bound"] is None
    no_prompt = CliRunner().invoke(app, ["score", str(img), str(mask), "--reward", f"hpsv2={hps_pt}", "--device", "cpu",
                                         "--offline"])
    assert no_prompt.exit_code == 2 and "hpsv2" in no_prompt.output


def test_best_of_n_picks_by_hpsv2(tiny_pipeline_dir, hps_pt):
    from PIL import Image

    from prefpaint_sdk import Inpainter
    from prefpaint_sdk.reward.base import images_to_tensor
    from prefpaint_sdk.reward.hpsv2 import HpsReward

    image = Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:48, 16:48] = 255
    inp = Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", reward=f"hpsv2={hps_pt}", offline=True)
    res = inp(image, mask, prompt="a red barn", num_candidates=3, seed=0, steps=1, crop_margin=-1)
    want = HpsReward.from_pretrained(hps_pt, device="cpu")(images_to_tensor(res.candidates), None, None,
                                                          prompts="a red barn").scores
    np.testing.assert_allclose(res.rewards["hpsv2"]["scores"], want.numpy(), atol=1e-5)
    assert res.best_index == int(want.argmax())


@pytest.mark.slow  # a training run
def test_train_align_takes_hpsv2(tiny_pipeline_dir, hps_pt, tmp_path):
    import json

    from _helpers_align import make_data
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    data = make_data(tmp_path / "data", n=4, size=64, with_masks=True)
    out = tmp_path / "run"
    args = ["train", "align", "--data", str(data), "--out", str(out), "--model", str(tiny_pipeline_dir), "--preset",
            "cpu-smoke", "--iterations", "1", "--finetune", "lora", "--set", "eval_every=0", "--set", "log_with=none",
            "--set", "prompt=a red barn", "--no-export", "--offline", "--quiet", "--reward", f"hpsv2={hps_pt}",
            "--reward", "seam"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    train = [x for x in rows if "reward/hpsv2/mean" in x]
    assert train and all(-1.0 <= x["reward/hpsv2/mean"] <= 1.0 for x in train)
