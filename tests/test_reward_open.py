"""The open and built-in rewards against reference computations written here: CLIP (PickScore / CLIPScore)
from its published formula, and the inpainting constraints ``outside-change`` and ``seam`` by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prefpaint_sdk.errors import ConfigError
from prefpaint_sdk.reward.constraints import OUTSIDE_BAND, outside_change, seam


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from prefpaint_sdk.testing.rewards import save_tiny_clip_model

    return save_tiny_clip_model(tmp_path_factory.mktemp("clip") / "tiny-clip", seed=3)


def _reference(folder, pils, prompts):
    """PickScore's published scoring: logit_scale.exp() * (normalised text embeds . normalised image embeds),
    with transformers' own CLIPImageProcessor and the tokenizer, through the towers and projections by hand."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(folder).eval()
    size = model.config.vision_config.image_size
    proc = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    tok = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        pix = proc(images=pils, return_tensors="pt")["pixel_values"]
        img = model.visual_projection(model.vision_model(pixel_values=pix).pooler_output)
        t = tok(prompts, padding=True, return_tensors="pt")
        txt = model.text_projection(model.text_model(input_ids=t["input_ids"], attention_mask=t["attention_mask"]).pooler_output)
        img = img / img.norm(dim=-1, keepdim=True)
        txt = txt / txt.norm(dim=-1, keepdim=True)
        return (model.logit_scale.exp() * (img * txt).sum(-1)).tolist()


def test_clip_reward_equals_the_published_formula(clip_dir):
    from prefpaint_sdk.reward.base import to_pil
    from prefpaint_sdk.reward.clip import ClipReward

    g = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 40, 52, generator=g)  # not square: resize + centre crop
    masks = torch.zeros(3, 40, 52, dtype=torch.bool)
    prompts = ["a red barn", "", "two cats on a sofa, photo"]
    reward = ClipReward.from_pretrained(clip_dir, device="cpu", batch_size=2)  # two passes: batching is exact too
    got = reward(images, masks, images, prompts=prompts)
    assert got.bounds is None
    assert got.scores.tolist() == pytest.approx(_reference(clip_dir, to_pil(images), prompts), abs=1e-4)
    # the score depends on the prompt: another prompt, another score
    other = reward(images, masks, images, prompts=["zzz"] * 3).scores
    assert not torch.allclose(other, got.scores)
    with pytest.raises(ConfigError, match="pass prompt="):
        reward(images, masks, images)


def test_clip_folder_with_a_processor_config_uses_it(clip_dir, tmp_path):
    import shutil

    from transformers import CLIPImageProcessor

    from prefpaint_sdk.reward.base import to_pil
    from prefpaint_sdk.reward.clip import ClipReward

    folder = tmp_path / "with-proc"
    shutil.copytree(clip_dir, folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    images = torch.rand(2, 3, 36, 36, generator=torch.Generator().manual_seed(2))
    got = ClipReward.from_pretrained(folder, device="cpu")(images, None, None, prompts="a dog").scores
    assert got.tolist() == pytest.approx(_reference(clip_dir, to_pil(images), ["a dog"] * 2), abs=1e-4)


# ------------------------------------------------------------------------------------------------
# outside-change


def _hole(h=40, w=40, box=(16, 24, 16, 24)):
    m = torch.zeros(1, h, w, dtype=torch.bool)
    m[:, box[0]:box[1], box[2]:box[3]] = True
    return m


def test_outside_change_exact_and_blind_inside_the_band():
    from scipy.ndimage import distance_transform_edt

    hole = _hole()
    original = torch.full((1, 3, 40, 40), 0.25)
    d = distance_transform_edt(~hole[0].numpy())
    far = d >= OUTSIDE_BAND + 1  # where the compositing feather's alpha is exactly 0
    # a change inside the hole and inside the feather band is not counted
    near = original.clone()
    near[:, :, 14:26, 14:26] = 0.9
    assert outside_change(near, hole, original).item() == 0.0
    # a change of 0.3 in one channel of two far pixels: - (0.3 / 3) * 2 / (far pixels)
    changed = original.clone()
    changed[0, 1, 0, 0] += 0.3
    changed[0, 1, 39, 39] -= 0.3
    assert far[0, 0] and far[39, 39]
    want = -(0.3 / 3) * 2 / far.sum()
    assert outside_change(changed, hole, original).item() == pytest.approx(want, rel=1e-5)
    # band 0: everything outside the hole counts
    ring = original.clone()
    ring[:, :, 15, 16] = 1.0  # next to the hole
    assert outside_change(ring, hole, original, band=0).item() == pytest.approx(-0.75 / (1600 - 64), rel=1e-5)
    # no region beyond the band: NaN (dropped)
    assert math.isnan(outside_change(original[:, :, :16, :16], _hole(16, 16, (4, 12, 4, 12)), original[:, :, :16, :16]))


# ------------------------------------------------------------------------------------------------
# seam


def _row(values, hole_from):
    """A 1-pixel-high grey row (all channels equal) with the hole from column ``hole_from`` on."""
    x = torch.tensor(values, dtype=torch.float32).view(1, 1, 1, -1).repeat(1, 3, 1, 1)
    m = torch.zeros(1, 1, len(values), dtype=torch.bool)
    m[..., hole_from:] = True
    return x, m


@pytest.mark.parametrize("values, want", [
    ([0, 0, 0, 1, 1, 1], -1.0),              # a colour step at the boundary, no change of slope: 1 + 0
    ([0, .1, .2, .3, .4, .5], -0.1),          # a smooth ramp: the step is the ramp's own, slope unchanged
    ([0, 0, 0, 0, 1, 2], -1.0),               # no step, but the slope bends from 0 to 1
    ([.5] * 6, 0.0),                          # nothing to see
])
def test_seam_exact_on_a_row(values, want):
    x, m = _row(values, 3)
    assert seam(x, m).item() == pytest.approx(want, abs=1e-6)


def test_seam_2d_counts_both_directions_and_ranks_a_pasted_patch_lower():
    img = torch.linspace(0, 1, 32).view(1, 1, 1, 32).repeat(1, 3, 32, 1)  # a horizontal ramp
    hole = _hole(32, 32, (8, 24, 8, 24))
    smooth = seam(img, hole).item()
    # the smooth ramp: vertical pairs see no change, horizontal ones the ramp's step 1/31, slopes unchanged
    n_h, n_v = 2 * 16, 2 * 16
    assert smooth == pytest.approx(-(n_h * (1 / 31)) / (n_h + n_v), abs=1e-6)
    patched = img.clone()
    patched[:, :, 8:24, 8:24] = 0.9
    assert seam(patched, hole).item() < smooth - 0.1
    empty = torch.zeros(1, 32, 32, dtype=torch.bool)
    assert math.isnan(seam(img, empty).item()) and math.isnan(seam(img, ~empty).item())


def test_constraints_follow_the_input_dtype_and_batch():
    x = torch.from_numpy(np.random.default_rng(0).random((3, 3, 40, 40))).float()
    hole = _hole().repeat(3, 1, 1)
    per = torch.cat([seam(x[i:i + 1], hole[i:i + 1]) for i in range(3)])
    assert torch.allclose(seam(x, hole), per) and seam(x.double(), hole).dtype == torch.float64
    assert outside_change(x, hole, x).abs().tolist() == [0.0, 0.0, 0.0]
