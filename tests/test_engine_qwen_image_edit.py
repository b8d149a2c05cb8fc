"""Qwen-Image-Edit inpainting (``QwenImageEditInpaintPipeline``) against diffusers' own pipeline.

The pipeline always works at a 1024x1024 area, so every call here costs a few seconds on the tiny fixture: the
sampling tests are in the slow tier, as are the family's runs of the shared per-family checks
(tests/test_engines_behaviour.py, tests/test_engines_blend.py). transformers' video processor needs torchvision,
which does not import beside the pinned CPU torch: the fixture and the engine's loader use the image-only
processor (``ImageOnlyQwen2VLProcessor``), the same tokenizer and image-processor settings without a video
processor.
"""

from __future__ import annotations

import inspect
import json

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk import Inpainter, model_info
from prefpaint_sdk.engines import engine_class, engine_for_pipeline, family_of_folder

FAMILY = "qwen-image-edit"
RNG = np.random.default_rng(5)


def _hole(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_defaults_are_the_pipelines_own_and_the_family_is_known_before_loading(tiny_family_dir):
    cls = engine_class(FAMILY)
    sig = inspect.signature(cls.pipeline_class().__call__).parameters
    assert cls.default_values() == dict(steps=sig["num_inference_steps"].default, guidance_scale=sig["true_cfg_scale"].default,
                                        eta=None, strength=sig["strength"].default) == dict(steps=50, guidance_scale=4.0,
                                                                                           eta=None, strength=0.6)
    folder = tiny_family_dir(FAMILY)
    # a folder saved from the fixture reads as the published layout: plain diffusers code names the same classes
    index = json.loads((folder / "model_index.json").read_text())
    assert index["processor"] == ["transformers", "Qwen2VLProcessor"] and family_of_folder(folder) == FAMILY
    info = model_info(folder)
    assert (info.family, info.resolution, info.guidance, info.alignable) == (FAMILY, 1024, "true-cfg", False)
    published = model_info("qwen-image-edit", offline=True)  # the alias, answered from the engine's list
    assert (published.model, published.family, published.resolution, published.size_multiple) == (
        "Qwen/Qwen-Image-Edit", FAMILY, 1024, 16)


def test_train_align_refuses_the_family_in_one_line_before_loading(tiny_family_dir, tmp_path):
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    (tmp_path / "data" / "images").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(tmp_path / "data" / "images" / f"{i}.png")
    r = CliRunner().invoke(app, ["train", "align", "--model", str(tiny_family_dir(FAMILY)), "--data",
                                 str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--reward", "brightness",
                                 "--device", "cpu", "--offline"])
    assert r.exit_code == 2 and "qwen-image-edit family cannot be aligned" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


def test_the_published_edit_pipeline_class_loads_as_this_family(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "QwenImageEditPipeline"}))
    assert family_of_folder(tmp_path) == FAMILY


def test_real_configs_on_meta():
    """Qwen-Image-Edit is Qwen-Image's 20.4B MMDiT, its VAE and Qwen2.5-VL-7B (vision tower included)."""
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    with torch.device("meta"):
        pipe = tiny_inpaint_pipeline(0, size="real", family=FAMILY)
    e = engine_for_pipeline(pipe)
    assert (e.family, e.resolution, e.size_multiple, e.trainable_module) == (FAMILY, 1024, 16, "transformer")
    for name, n in dict(transformer=20430.4, vae=126.9, text_encoder=8292.2).items():
        got = sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6
        assert abs(got - n) / n < 1e-3, (name, got, n)


@pytest.mark.slow
def test_equals_the_diffusers_pipeline_called_with_its_defaults(tiny_family_dir):
    inp = Inpainter.from_pretrained(tiny_family_dir(FAMILY), device="cpu", dtype="float32")
    assert type(inp.pipeline.processor).__name__ == "Qwen2VLProcessor" and inp.pipeline.processor.video_processor is None
    # 1024x1024: the pipeline's own working area, so neither side resizes and the pixels compare exactly
    img, hole = RNG.integers(0, 256, (1024, 1024, 3), dtype=np.uint8), _hole(1024, 1024, 300, 700, 200, 640)
    with torch.inference_mode():  # what a diffusers user writes: the instruction, the image and the mask
        ref = inp.pipeline(prompt="make it red", image=Image.fromarray(img),
                           mask_image=Image.fromarray(hole.astype(np.uint8) * 255), num_inference_steps=4,
                           generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    ref = np.round(ref * 255).astype(np.uint8)
    out = inp(img, hole, prompt="make it red", seed=7, steps=4, crop_margin=-1, mask_blur=0)
    got = np.asarray(out.image)
    assert np.array_equal(got[hole], ref[hole])
    assert np.array_equal(got[~hole], img[~hole]) and not np.array_equal(got[hole], img[hole])
    assert (out.params["family"], out.params["guidance_scale"], out.params["strength"]) == (FAMILY, 4.0, 0.6)


@pytest.mark.slow
def test_cli_inpaints_an_odd_size(tiny_family_dir, tmp_path):
    """`prefpaint inpaint --model <folder>` on a 333x517 image: the result has the input's size and is byte-exact
    outside the feather band."""
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    h, w = 333, 517
    img, hole = RNG.integers(0, 256, (h, w, 3), dtype=np.uint8), _hole(h, w, 100, 200, 150, 330)
    Image.fromarray(img).save(tmp_path / "photo.png")
    Image.fromarray(hole.astype(np.uint8) * 255).save(tmp_path / "mask.png")
    common = ["--model", str(tiny_family_dir(FAMILY)), "--device", "cpu", "--dtype", "float32", "--offline", "--quiet"]
    r = CliRunner().invoke(app, ["inpaint", str(tmp_path / "photo.png"), str(tmp_path / "mask.png"), "-o",
                                 str(tmp_path / "out.png"), "--prompt", "make it a window", "--steps", "2",
                                 "--seed", "3", "--mask-blur", "4", *common])
    assert r.exit_code == 0, r.output
    got = np.asarray(Image.open(tmp_path / "out.png"))
    band = _hole(h, w, 100 - 5, 200 + 5, 150 - 5, 330 + 5)
    assert got.shape == img.shape and np.array_equal(got[~band], img[~band]) and not np.array_equal(got[hole], img[hole])
    assert json.loads((tmp_path / "out.json").read_text())["params"]["family"] == FAMILY
