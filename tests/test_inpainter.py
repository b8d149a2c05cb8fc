"""The Inpainter against diffusers itself, on the tiny random pipeline loaded via from_pretrained."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk import InvalidInputError, OutputExistsError, dilate_mask

RNG = np.random.default_rng(1)


def _image(h, w):
    return RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _hole(h, w, box):
    m = np.zeros((h, w), bool)
    y0, y1, x0, x1 = box
    m[y0:y1, x0:x1] = True
    return m


def _diffusers(pipe, img, mask, seed, prompt, negative_prompt, steps=4):
    return pipe(
        prompt=prompt, negative_prompt=negative_prompt, image=Image.fromarray(img),
        mask_image=Image.fromarray(mask.astype(np.uint8) * 255), num_inference_steps=steps, guidance_scale=7.5,
        eta=1.0, generator=torch.Generator().manual_seed(seed), output_type="np",
    ).images[0]


def test_equals_diffusers_inside_the_mask(tiny_inpainter):
    img, hole = _image(64, 64), _hole(64, 64, (10, 40, 20, 50))
    ref = np.round(_diffusers(tiny_inpainter.pipeline, img, hole, 7, "a cat", "") * 255).astype(np.uint8)
    out = tiny_inpainter(img, hole, prompt="a cat", seed=7, steps=4, crop_margin=-1, mask_blur=0)
    assert np.array_equal(np.asarray(out.image)[hole], ref[hole])
    assert np.array_equal(np.asarray(out.image)[~hole], img[~hole])


def test_equal_prompts_skip_guidance_without_changing_the_result(tiny_inpainter):
    # Empty prompt and negative prompt: CFG's two branches coincide, so we skip one. The result must
    # still match diffusers' guided call (up to the batch-of-2 vs batch-of-1 float noise).
    img, hole = _image(64, 64), _hole(64, 64, (5, 60, 5, 30))
    ref = _diffusers(tiny_inpainter.pipeline, img, hole, 3, "", "")
    out = tiny_inpainter(img, hole, seed=3, steps=4, crop_margin=-1, mask_blur=0)
    assert out.params["guidance_scale_effective"] == 1.0
    diff = np.abs(np.asarray(out.image).astype(float) / 255 - ref)[hole]
    assert diff.max() <= 1.5 / 255


def test_candidate_k_equals_a_single_call_with_seed_plus_k(tiny_inpainter):
    img, hole = _image(80, 70), _hole(80, 70, (20, 60, 10, 50))
    batch = tiny_inpainter(img, hole, seed=11, num_candidates=3, steps=3)
    assert batch.seeds == [11, 12, 13]
    for k in range(3):
        alone = tiny_inpainter(img, hole, seed=11 + k, steps=3)
        d = np.abs(np.asarray(alone.image).astype(int) - np.asarray(batch.candidates[k]).astype(int))
        assert d.max() <= 1
    assert not np.array_equal(np.asarray(batch.candidates[0]), np.asarray(batch.candidates[1]))


@pytest.mark.parametrize("h,w,box", [(333, 517, (100, 200, 50, 150)), (97, 61, (0, 97, 0, 20)), (64, 64, (0, 64, 0, 64))])
def test_odd_sizes_exact_output_and_untouched_pixels(tiny_inpainter, h, w, box):
    img, hole = _image(h, w), _hole(h, w, box)
    out = tiny_inpainter(img, hole, seed=0, steps=2, mask_blur=5, mask_dilate=2)
    a = np.asarray(out.image)
    assert a.shape == img.shape
    band = dilate_mask(hole, 2 + 5 + 1)
    assert np.array_equal(a[~band], img[~band])
    assert not np.array_equal(a[hole], img[hole])


def test_large_image_crops_to_the_mask(tiny_inpainter):
    img, hole = _image(1000, 1500), _hole(1000, 1500, (400, 460, 700, 790))
    out = tiny_inpainter(img, hole, seed=0, steps=2, crop_margin=32)
    x0, y0, x1, y1 = out.box
    assert x1 - x0 == y1 - y0 == 154 + 16  # square: 90 px hole + 8 px blur band each side + 2*32 margin
    assert np.array_equal(np.asarray(out.image)[~dilate_mask(hole, 9)], img[~dilate_mask(hole, 9)])


def test_mask_formats_fill_the_same_region(tiny_inpainter):
    img, hole = _image(64, 64), _hole(64, 64, (8, 30, 8, 40))
    white = hole.astype(np.uint8) * 255
    masks = {
        "L": Image.fromarray(white),
        "RGB": Image.fromarray(np.repeat(white[..., None], 3, 2)),
        "RGBA": Image.fromarray(np.dstack([np.repeat(white[..., None], 3, 2), np.full_like(white, 255)])),
        "1": Image.fromarray(white).convert("1"),
    }
    outs = {k: np.asarray(tiny_inpainter(img, m, seed=5, steps=2).image) for k, m in masks.items()}
    inv = tiny_inpainter(img, Image.fromarray(255 - white), seed=5, steps=2, invert_mask=True)
    outs["inverted"] = np.asarray(inv.image)
    for k, a in outs.items():
        assert np.array_equal(a, outs["L"]), k


def test_empty_mask_returns_input_and_full_mask_works(tiny_inpainter, caplog):
    img = _image(50, 40)
    with caplog.at_level(logging.WARNING, logger="prefpaint_sdk"):
        out = tiny_inpainter(img, np.zeros((50, 40), bool), seed=1)
    assert "mask is empty" in caplog.text and np.array_equal(np.asarray(out.image), img)
    full = tiny_inpainter(img, np.ones((50, 40), bool), seed=1, steps=2)
    assert full.image.size == (40, 50)


def test_seed_is_drawn_and_reported(tiny_inpainter):
    img, hole = _image(64, 64), _hole(64, 64, (0, 20, 0, 20))
    out = tiny_inpainter(img, hole, steps=2, num_candidates=2)
    assert out.seeds == [out.seed, out.seed + 1] and out.params["seed"] == out.seed
    again = tiny_inpainter(img, hole, steps=2, seed=out.seed)
    assert np.array_equal(np.asarray(again.image), np.asarray(out.image))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(num_candidates=0), "num_candidates must be"),
        (dict(steps=0), "steps must be"),
        (dict(eta=2.0), "eta must lie"),
        (dict(strength=0.0), "strength must lie"),
        (dict(mask_blur=-1), "mask_blur must be"),
        (dict(seed=-3), "seed must be"),
    ],
)
def test_bad_parameters(tiny_inpainter, kwargs, match):
    with pytest.raises(InvalidInputError, match=match):
        tiny_inpainter(_image(8, 8), np.ones((8, 8), bool), **kwargs)


def test_mismatched_mask(tiny_inpainter):
    with pytest.raises(InvalidInputError, match="mask is 30x20 but image is 64x64"):
        tiny_inpainter(_image(64, 64), np.ones((20, 30), bool))


def test_save_writes_image_and_sidecar_atomically(tiny_inpainter, tmp_path):
    out = tiny_inpainter(_image(64, 64), _hole(64, 64, (0, 20, 0, 20)), seed=2, steps=2, num_candidates=2)
    written = out.save(tmp_path / "o.png", save_all=True)
    facts = json.loads((tmp_path / "o.json").read_text())
    assert facts["seeds"] == [2, 3] and facts["model_id"] == tiny_inpainter.model_id and "timings" in facts
    assert {p.split("/")[-1] for p in written} == {"o.png", "o.json", "o_cand0.png", "o_cand1.png"}
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        out.save(tmp_path / "o.png")
    out.save(tmp_path / "o.png", overwrite=True)


def test_not_an_inpainting_model():
    from diffusers import UNet2DConditionModel

    from prefpaint_sdk import Inpainter
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    pipe = tiny_inpaint_pipeline()
    pipe.unet = UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=8, in_channels=4,
                                     out_channels=4, down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                     up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=32)
    with pytest.raises(InvalidInputError, match="4-channel UNet"):
        Inpainter(pipe)
