"""Defaults as diffusers has them (issue 21, section 4): ``--scheduler native|ddim|auto`` and SDXL's zeroed
negative embeddings when no negative prompt is given (``force_zeros_for_empty_prompt``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk import Inpainter, InvalidInputError

RNG = np.random.default_rng(21)


def _hole(h, w):
    m = np.zeros((h, w), bool)
    m[10:44, 14:50] = True
    return m


def _diffusers(folder, img, hole, **kw):
    """A plain diffusers user: the folder's own pipeline class and scheduler, no negative prompt."""
    from diffusers import DiffusionPipeline

    pipe = DiffusionPipeline.from_pretrained(folder, torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    with torch.inference_mode():
        out = pipe(image=Image.fromarray(img), mask_image=Image.fromarray(hole.astype(np.uint8) * 255),
                   height=img.shape[0], width=img.shape[1], generator=torch.Generator().manual_seed(5),
                   output_type="np", **kw).images[0]
    return np.round(out * 255).astype(np.uint8)


def test_sdxl_without_a_negative_prompt_uses_zeroed_negative_embeddings(tiny_family_dir):
    inp = Inpainter.from_pretrained(tiny_family_dir("sdxl"), device="cpu", dtype="float32")
    assert inp.pipeline.config.force_zeros_for_empty_prompt
    img, hole = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), _hole(64, 64)
    kw = dict(seed=5, steps=3, crop_margin=-1, mask_blur=0)
    # an empty prompt no longer skips guidance: the zeroed negative differs from the encoded empty prompt
    out = inp(img, hole, prompt="", **kw)
    assert out.params["guidance_scale_effective"] == 7.5  # a base model: native, the pipeline's 7.5
    zeros = np.asarray(inp(img, hole, prompt="a cat", **kw).image)
    encoded_empty = np.asarray(inp(img, hole, prompt="a cat", negative_prompt=" ", **kw).image)
    assert not np.array_equal(zeros[hole], encoded_empty[hole])


@pytest.mark.parametrize("family,native,ddim_eta", [("sdxl", "EulerDiscreteScheduler", 1.0)])
def test_native_keeps_the_shipped_scheduler_and_equals_diffusers(tiny_family_dir, family, native, ddim_eta):
    folder = tiny_family_dir(family)
    inp = Inpainter.from_pretrained(folder, device="cpu", dtype="float32", scheduler="native")
    assert type(inp.pipeline.scheduler).__name__ == native
    # the pipeline's own defaults (not the model card's 30 / 8.0): what pipe(prompt, image, mask) does
    assert inp.defaults == dict(steps=50, guidance_scale=7.5, eta=None, strength=0.9999)
    img, hole = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), _hole(64, 64)
    got = np.asarray(inp(img, hole, prompt="a cat", seed=5, steps=3, crop_margin=-1, mask_blur=0).image)
    ref = _diffusers(folder, img, hole, prompt="a cat", num_inference_steps=3)
    assert np.array_equal(got[hole], ref[hole]) and np.array_equal(got[~hole], img[~hole])
    with pytest.raises(InvalidInputError, match="no eta"):
        inp(img, hole, eta=0.5, steps=2)
    ddim = Inpainter.from_pretrained(folder, device="cpu", dtype="float32", scheduler="ddim")
    assert type(ddim.pipeline.scheduler).__name__ == "DDIMScheduler" and ddim.defaults["eta"] == ddim_eta
    auto = Inpainter.from_pretrained(folder, device="cpu", dtype="float32")  # a base model: native
    assert type(auto.pipeline.scheduler).__name__ == native and auto.defaults == inp.defaults


def test_the_scheduler_is_checked_before_any_load(tiny_family_dir, tmp_path):
    with pytest.raises(InvalidInputError, match="scheduler must be one of auto, native, ddim"):
        Inpainter.from_pretrained(tiny_family_dir("sd"), device="cpu", scheduler="euler")
    with pytest.raises(InvalidInputError, match="own scheduler only"):
        Inpainter.from_pretrained(tiny_family_dir("flux-fill"), device="cpu", dtype="float32", scheduler="ddim")
    img = tmp_path / "i.png"
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(img)
    Image.fromarray(np.full((40, 40), 255, np.uint8)).save(tmp_path / "m.png")
    r = CliRunner().invoke(app, ["inpaint", str(img), str(tmp_path / "m.png"), "-o", str(tmp_path / "o.png"),
                                 "--model", str(tiny_family_dir("sd")), "--scheduler", "euler", "--offline", "-q"])
    assert r.exit_code == 2 and "scheduler must be one of" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o.png").exists()
