"""The Inpainter against diffusers itself, on the tiny random pipeline loaded via from_pretrained."""

import json
import logging

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk import InvalidInputError, OutputExistsError
from prefpaint_sdk.imaging.geometry import dilate_mask

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
        mask_image=Image.fromarray(mask.astype(np.uint8) * 255), num_inference_steps=steps,
        generator=torch.Generator().manual_seed(seed), output_type="np",  # diffusers' own defaults (a base model)
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
    # a batch of 2 against a batch of 1: float rounding may move a pixel by one level (as in the test above);
    # the drawn seed is random, so an exact comparison failed for about one seed in a few hundred
    d = np.abs(np.asarray(again.image).astype(int) - np.asarray(out.image).astype(int))
    assert d.max() <= 1


@pytest.mark.parametrize(
    "kwargs,param,match",
    [
        (dict(num_candidates=0), "num_candidates", "num_candidates must be ≥ 1, got 0"),
        (dict(num_candidates=2.5), "num_candidates", "num_candidates must be a whole number"),
        (dict(steps=0), "steps", "steps must be ≥ 1, got 0"),
        (dict(steps=1000), "steps", "steps must be ≤ 999 for this model's scheduler .1000 training timesteps., got 1000"),
        (dict(steps=5000), "steps", "steps must be ≤ 999"),
        (dict(guidance_scale=float("inf")), "guidance_scale", "guidance_scale must be a finite number, got inf"),
        (dict(guidance_scale=float("nan")), "guidance_scale", "guidance_scale must be a finite number, got nan"),
        (dict(guidance_scale=-1.0), "guidance_scale", "guidance_scale must be ≥ 0"),
        (dict(eta=2.0), "eta", "eta must be ≤ 1, got 2.0"),
        (dict(eta=float("nan")), "eta", "eta must be a finite number"),
        (dict(strength=0.0), "strength", r"strength must lie in \(0, 1\], got 0.0"),
        (dict(strength=float("inf")), "strength", "strength must be a finite number"),
        (dict(steps=2, strength=0.2), "steps", "leaves no denoising step; raise steps to at least 5"),
        (dict(mask_blur=-1), "mask_blur", "mask_blur must be ≥ 0, got -1"),
        (dict(mask_blur=float("nan")), "mask_blur", "mask_blur must be a finite number"),
        (dict(mask_dilate=-2), "mask_dilate", "mask_dilate must be ≥ 0, got -2"),
        (dict(seed=-3), "seed", "seed must be between 0 and 4294967295, got -3"),
        (dict(seed=2**32 - 1, num_candidates=2), "seed", r"seed \+ 1 for 2 derived seeds"),
        (dict(seed=1.5), "seed", "seed must be a whole number"),
        (dict(crop_margin=1.5), "crop_margin", "crop_margin must be a whole number, got 1.5"),
        (dict(prompt=3), "prompt", "prompt must be text, got int"),
    ],
)
def test_bad_parameters_are_refused_before_reading_inputs_or_sampling(tiny_inpainter, monkeypatch, tmp_path, kwargs,
                                                                      param, match):
    def no_sampling(*a, **k):
        raise AssertionError("sampling started")

    monkeypatch.setattr(tiny_inpainter, "_sample", no_sampling)
    missing = tmp_path / "missing.png"  # reading it would raise "does not exist": the numbers come first
    with pytest.raises(InvalidInputError, match=match) as info:
        tiny_inpainter(missing, missing, **kwargs)
    assert info.value.param == param and info.value.exit_code == 2


def test_step_limit_comes_from_the_real_ddim_schedule(tiny_inpainter):
    from diffusers import DDIMScheduler

    sched = tiny_inpainter.pipeline.scheduler
    assert isinstance(sched, DDIMScheduler) and sched.config.num_train_timesteps == 1000
    assert sched.config.steps_offset == 1 and sched.config.timestep_spacing == "leading"
    # 999 steps schedule timesteps 999..1; 1000 would schedule timestep 1000, past the 1000-entry table
    # (diffusers' own call then fails with an IndexError)
    assert tiny_inpainter.max_steps == 999
    assert tiny_inpainter.check_steps(999) == 999 and tiny_inpainter.check_steps(1) == 1
    with pytest.raises(InvalidInputError, match="steps must be ≤ 999"):
        tiny_inpainter.check_steps(1000)


def test_step_limit_is_read_from_a_model_folder_before_loading(tiny_pipeline_dir):
    from prefpaint_sdk.engines.sd import check_ddim_steps, ddim_max_steps

    config = json.loads((tiny_pipeline_dir / "scheduler" / "scheduler_config.json").read_text())
    assert ddim_max_steps(config) == 999 and check_ddim_steps(999, config) == 999
    with pytest.raises(InvalidInputError, match="steps must be ≤ 999") as info:
        check_ddim_steps(1000, config)
    assert info.value.param == "steps"
    # other schedules get their own limit: "trailing" spacing reaches 1000 steps, a 50-step table 49
    assert ddim_max_steps({**config, "timestep_spacing": "trailing"}) == 1000
    assert ddim_max_steps({**config, "num_train_timesteps": 50}) == 49


def test_memory_follows_the_image_bytes(tiny_inpainter):
    """A 3000x3000 full-mask call allocates no float copy of the image: numpy's peak stays below the
    image's own bytes (measured 0.67x; the old path 23x: float copies, a full-image EDT, a float alpha)."""
    import tracemalloc

    side = 3000
    img = Image.fromarray(np.broadcast_to(np.arange(side, dtype=np.uint8)[:, None, None], (side, side, 3)).copy())
    hole = Image.new("L", (side, side), 255)
    image_bytes = side * side * 3
    # a small call first: lazy imports (scipy.ndimage, diffusers modules) allocate objects that are not the call's
    tiny_inpainter(_image(40, 40), np.ones((40, 40), bool), seed=0, steps=1, mask_blur=8, mask_dilate=2)
    tracemalloc.start()
    try:
        out = tiny_inpainter(img, hole, seed=0, steps=1, mask_blur=8, mask_dilate=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert out.image.size == (side, side)
    assert peak < 1.0 * image_bytes, f"numpy peak {peak / 1e6:.0f} MB for a {image_bytes / 1e6:.0f} MB image"


def test_partial_mask_output_is_byte_identical_outside_the_band(tiny_inpainter):
    img, hole = _image(700, 900), _hole(700, 900, (300, 420, 100, 650))
    out = tiny_inpainter(img, hole, seed=4, steps=1, mask_dilate=3, mask_blur=6, crop_margin=40)
    a = np.asarray(out.image)
    band = dilate_mask(hole, 3 + 6 + 1)  # + 1: on the pixel grid a feathered corner reaches 9.49 px
    assert np.array_equal(a[~band], img[~band])
    assert not np.array_equal(a[hole], img[hole])
    x0, y0, x1, y1 = out.box
    assert (y0, y1) == (300 - 3 - 6 - 40, 420 + 3 + 6 + 40) or y1 - y0 == x1 - x0


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
    with pytest.raises(OutputExistsError, match="already exists; pass overwrite=True"):
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
