"""The latent-blend families (Qwen-Image, FLUX.2 klein, Z-Image) against diffusers' own pipelines.

With cropping off, the pixels inside the mask equal the diffusers pipeline called with its own defaults
(guidance, strength, no negative prompt, its shipped scheduler) for the same generator; pixels outside come
back byte for byte. Every mask format, 333x517 and 1000x1500 run through ``tests/test_engines_behaviour.py``,
which covers every family of ``prefpaint_sdk.testing.FAMILIES``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk import Inpainter, model_info
from prefpaint_sdk.engines import engine_class, engine_for_pipeline

BLEND = ["qwen-image", "flux2-klein", "z-image"]
# (steps, guidance, strength) as each diffusers pipeline's __call__ has them
PIPELINE_DEFAULTS = {"qwen-image": (50, 4.0, 0.6), "flux2-klein": (50, 8.0, 0.8), "z-image": (50, 5.0, 1.0)}
RNG = np.random.default_rng(11)


@pytest.fixture(scope="module")
def inpainters(tiny_family_dir):
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = Inpainter.from_pretrained(tiny_family_dir(family), device="cpu", dtype="float32")
        return cache[family]

    return get


def _hole(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.mark.parametrize("family", BLEND)
def test_defaults_are_the_pipelines_own(family):
    import inspect

    cls = engine_class(family)
    sig = inspect.signature(cls.pipeline_class().__call__).parameters
    guidance = sig["true_cfg_scale" if family == "qwen-image" else "guidance_scale"].default
    assert (sig["num_inference_steps"].default, guidance, sig["strength"].default) == PIPELINE_DEFAULTS[family]
    steps, guidance, strength = PIPELINE_DEFAULTS[family]
    assert cls.default_values() == dict(steps=steps, guidance_scale=guidance, eta=None, strength=strength)


@pytest.mark.parametrize("family", BLEND)
def test_equals_the_diffusers_pipeline_called_with_its_defaults(inpainters, family):
    inp = inpainters(family)
    assert inp.family == family and inp.resolution == 64
    img, hole = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), _hole(64, 64, 10, 40, 20, 52)
    # what a diffusers user writes: no guidance, strength or negative prompt given
    with torch.inference_mode():
        ref = inp.pipeline(prompt="a cat", image=Image.fromarray(img),
                           mask_image=Image.fromarray(hole.astype(np.uint8) * 255), height=64, width=64,
                           num_inference_steps=4, generator=torch.Generator().manual_seed(7), output_type="np").images[0]
    ref = np.round(ref * 255).astype(np.uint8)
    out = inp(img, hole, prompt="a cat", seed=7, steps=4, crop_margin=-1, mask_blur=0)
    got = np.asarray(out.image)
    assert np.array_equal(got[hole], ref[hole])
    assert np.array_equal(got[~hole], img[~hole])
    assert not np.array_equal(got[hole], img[hole])
    steps, guidance, strength = PIPELINE_DEFAULTS[family]
    assert (out.params["guidance_scale"], out.params["strength"], out.params["family"]) == (guidance, strength, family)


def test_a_negative_prompt_turns_true_cfg_on_for_qwen_image(inpainters):
    """Qwen's true CFG runs only with a negative prompt, as in diffusers: then the result differs."""
    inp = inpainters("qwen-image")
    img, hole = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), _hole(64, 64, 8, 56, 8, 56)
    plain = inp(img, hole, prompt="a cat", seed=1, steps=2, crop_margin=-1)
    neg = inp(img, hole, prompt="a cat", negative_prompt="blurry", seed=1, steps=2, crop_margin=-1)
    assert (plain.params["guidance_scale_effective"], neg.params["guidance_scale_effective"]) == (1.0, 4.0)
    assert not np.array_equal(np.asarray(plain.image), np.asarray(neg.image))


@pytest.mark.parametrize("family", BLEND)
def test_candidate_k_equals_a_lone_call(inpainters, family):
    inp = inpainters(family)
    img, hole = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), _hole(64, 64, 12, 50, 6, 40)
    both = inp(img, hole, prompt="a dog", seed=3, steps=2, num_candidates=2, crop_margin=-1)
    alone = inp(img, hole, prompt="a dog", seed=4, steps=2, crop_margin=-1)
    d = np.abs(np.asarray(alone.image).astype(int) - np.asarray(both.candidates[1]).astype(int))
    assert both.seeds == [3, 4] and d.max() <= 1


@pytest.mark.parametrize("family", BLEND)
def test_model_info_and_engine_facts(inpainters, tiny_family_dir, family):
    inp = inpainters(family)
    info = model_info(tiny_family_dir(family))
    assert (info.family, info.resolution, info.size_multiple) == (family, inp.resolution, inp.engine.size_multiple)
    assert info.defaults == inp.defaults and info.size_multiple == 2 * inp.pipeline.vae_scale_factor
    assert engine_for_pipeline(inp.pipeline).family == family
    assert inp.engine.model is inp.pipeline.transformer and inp.engine.lora_targets
    alias = {"qwen-image": "qwen-image", "flux2-klein": "flux2-klein", "z-image": "z-image"}[family]
    published = model_info(alias, offline=True)  # not cached: the engine's list of published ids answers
    assert (published.family, published.resolution, published.size_multiple) == (family, 1024, 16)


@pytest.mark.parametrize("family,in_channels,expected", [
    # Published sizes (M parameters): Qwen-Image MMDiT 20430.4, its VAE 126.9, Qwen2.5-VL-7B 8292.2; FLUX.2 klein
    # 4B transformer 3875.5 and VAE 84.0, Qwen3-4B 4022.5; Z-Image-Turbo DiT 6154.9, FLUX.1 VAE 83.8, Qwen3-4B.
    ("qwen-image", 64, dict(transformer=20430.4, vae=126.9, text_encoder=8292.2)),
    ("flux2-klein", 128, dict(transformer=3875.5, vae=84.0, text_encoder=4022.5)),
    ("z-image", 16, dict(transformer=6154.9, vae=83.8, text_encoder=4022.5)),
])
def test_real_configs_on_meta(family, in_channels, expected):
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    with torch.device("meta"):
        pipe = tiny_inpaint_pipeline(0, size="real", family=family)
    e = engine_for_pipeline(pipe)
    assert (e.family, e.resolution, e.size_multiple, e.trainable_module) == (family, 1024, 16, "transformer")
    assert e.model.config.in_channels == in_channels and e.model.device.type == "meta"
    for name, n in expected.items():
        got = sum(p.numel() for p in getattr(pipe, name).parameters()) / 1e6
        assert abs(got - n) / n < 1e-3, (name, got, n)


@pytest.mark.parametrize("family", BLEND)
def test_bf16_and_vae_tiling_load_and_inpaint(tiny_family_dir, family):
    """The memory options every engine has: bf16 weights and a tiled VAE (offload needs an accelerator)."""
    inp = Inpainter.from_pretrained(tiny_family_dir(family), device="cpu", dtype="bfloat16", vae_tiling=True)
    assert inp.dtype == torch.bfloat16
    img, hole = RNG.integers(0, 256, (70, 90, 3), dtype=np.uint8), _hole(70, 90, 10, 50, 20, 70)
    got = np.asarray(inp(img, hole, prompt="x", seed=0, steps=2, mask_blur=0).image)
    assert got.shape == img.shape and np.array_equal(got[~hole], img[~hole]) and not np.array_equal(got[hole], img[hole])
