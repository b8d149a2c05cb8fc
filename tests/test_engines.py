"""Every model family behind one Inpainter: SD, SDXL and FLUX Fill against diffusers' own pipelines.

Each family's tiny fixture is loaded through ``Inpainter.from_pretrained`` like real weights; the proof per
family is that, with cropping off, the pixels inside the mask equal the diffusers pipeline's own output for
the same generator, and that pixels outside the mask come back byte for byte.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk import Inpainter, InvalidInputError
from prefpaint_sdk.engines import (
    FAMILIES,
    engine_class,
    engine_for_pipeline,
    family_of_folder,
)

RNG = np.random.default_rng(5)
FAMS = ["sd", "sdxl", "flux-fill"]
# scheduler="auto" on a base model is native: the pipeline's own defaults (the tiny SD ships DDIM, so eta 0)
DEFAULTS = {"sd": (50, 7.5, 0.0), "sdxl": (50, 7.5, None), "flux-fill": (50, 30.0, None)}


def _hole(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def _pipeline_output(inp, img, hole, seed, prompt, steps):
    """The diffusers pipeline called directly, as a user of diffusers writes it: its own defaults under the
    native scheduler (no guidance, strength or eta given); no negative prompt, so SDXL zeroes its negative
    embeddings. Under DDIM, the family's knobs."""
    e = inp.engine
    kw = dict(prompt=prompt, image=Image.fromarray(img), mask_image=Image.fromarray(hole.astype(np.uint8) * 255),
              height=img.shape[0], width=img.shape[1], num_inference_steps=steps,
              generator=torch.Generator().manual_seed(seed), output_type="np")
    if e.scheduler_mode == "ddim":
        kw.update(guidance_scale=e.default_guidance, strength=1.0, eta=e.default_eta)
    with torch.inference_mode():
        return inp.pipeline(**kw).images[0]


@pytest.mark.parametrize("family", FAMS)
def test_equals_the_diffusers_pipeline_inside_the_mask(inpainters, family):
    inp = inpainters(family)
    assert inp.family == family and inp.resolution == 64
    img, hole = RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8), _hole(64, 64, 10, 40, 20, 52)
    ref = np.round(_pipeline_output(inp, img, hole, 7, "a cat", steps=3) * 255).astype(np.uint8)
    out = inp(img, hole, prompt="a cat", seed=7, steps=3, crop_margin=-1, mask_blur=0)
    got = np.asarray(out.image)
    assert np.array_equal(got[hole], ref[hole])
    assert np.array_equal(got[~hole], img[~hole])
    steps, guidance, eta = DEFAULTS[family]
    assert (out.params["guidance_scale"], out.params["eta"], out.params["family"]) == (guidance, eta, family)
    assert out.to_dict()["params"]["family"] == family


@pytest.mark.parametrize("family", FAMS)
def test_odd_size_crop_candidates_and_untouched_pixels(inpainters, family):
    inp = inpainters(family)
    img, hole = RNG.integers(0, 256, (517, 333, 3), dtype=np.uint8), _hole(517, 333, 300, 340, 100, 171)
    out = inp(img, hole, seed=3, steps=2, num_candidates=2, mask_blur=4, crop_margin=16)
    assert out.image.size == (333, 517) and out.seeds == [3, 4]
    far = np.ones_like(hole)
    far[300 - 5:340 + 5, 100 - 5:171 + 5] = False
    for cand in out.candidates:
        assert np.array_equal(np.asarray(cand)[far], img[far])
    # the model saw a box around the hole, at a size its pipeline accepts
    x0, y0, x1, y1 = out.box
    assert (x1 - x0) < 333 and (y1 - y0) < 517
    alone = inp(img, hole, seed=4, steps=2, mask_blur=4, crop_margin=16)
    d = np.abs(np.asarray(alone.image).astype(int) - np.asarray(out.candidates[1]).astype(int))
    assert d.max() <= 2  # batch-of-2 vs batch-of-1 float noise only


@pytest.mark.parametrize("family", FAMS)
def test_a_folder_saved_by_plain_diffusers_loads_and_inpaints(family, tmp_path):
    from _plain_diffusers_pipelines import save

    folder = save(family, str(tmp_path / family))
    assert family_of_folder(folder) == family
    inp = Inpainter.from_pretrained(folder, device="cpu", dtype="float32", offline=True)
    assert inp.family == family and inp.resolution == 48
    img, hole = RNG.integers(0, 256, (90, 61, 3), dtype=np.uint8), _hole(90, 61, 20, 50, 10, 40)
    out = inp(img, hole, seed=0, steps=2, mask_blur=0, prompt="x")
    got = np.asarray(out.image)
    assert got.shape == img.shape and np.array_equal(got[~hole], img[~hole]) and not np.array_equal(got[hole], img[hole])


def test_engine_facts_per_family(inpainters):
    for family in FAMS:
        e = inpainters(family).engine
        cls = engine_class(family)
        assert type(e) is cls and e.family == family and FAMILIES[family]
        steps, guidance, eta = DEFAULTS[family]
        assert (e.default_steps, e.default_guidance, e.default_eta) == (steps, guidance, eta)  # auto: native here
        assert e.trainable_module == ("transformer" if family == "flux-fill" else "unet")
        assert e.model is getattr(e.pipeline, e.trainable_module) and e.lora_targets
        # the working size comes from the model's config; FLUX packs 2x2 latent patches
        assert e.size_multiple == (2 * e.pipeline.vae_scale_factor if family == "flux-fill" else 8)
        assert engine_for_pipeline(e.pipeline).family == family


def test_sdxl_ddim_from_an_euler_config_is_a_latent_ddim():
    """The SDXL engine samples with DDIM built from the shipped Euler config. Keys that config lacks take
    Stable Diffusion's latent-model values, not DDIM's pixel-space defaults: ``clip_sample=True`` would clamp
    every predicted x0 to [-1, 1] (latents are not bounded so; the tiny SDXL fixture did not learn under RL
    with it) and ``set_alpha_to_one=True`` would make the last step deterministic. A config that says
    otherwise is kept."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler

    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    pipe = tiny_inpaint_pipeline(0, family="sdxl")
    assert isinstance(pipe.scheduler, EulerDiscreteScheduler) and "clip_sample" not in pipe.scheduler.config
    sched = engine_for_pipeline(pipe, training=True).pipeline.scheduler
    assert isinstance(sched, DDIMScheduler)
    assert (sched.config.clip_sample, sched.config.set_alpha_to_one) == (False, False)
    # the predicted x0 is not clamped: a step from a large latent keeps it large
    sched.set_timesteps(4)
    x = torch.full((1, 4, 2, 2), 3.0)
    x0 = sched.step(torch.zeros_like(x), sched.timesteps[0], x, eta=0.0).pred_original_sample
    assert float(x0.min()) > 1.5
    pipe = tiny_inpaint_pipeline(0, family="sdxl")
    # as a shipped scheduler_config.json with both keys: Euler keeps keys it does not use in its config
    pipe.scheduler = EulerDiscreteScheduler.from_config({**pipe.scheduler.config, "clip_sample": True,
                                                         "set_alpha_to_one": True})
    sched = engine_for_pipeline(pipe, training=True).pipeline.scheduler
    assert (sched.config.clip_sample, sched.config.set_alpha_to_one) == (True, True)


def test_flux_refuses_knobs_it_lacks_and_is_alignable(inpainters):
    inp = inpainters("flux-fill")
    img, hole = np.zeros((32, 32, 3), np.uint8), _hole(32, 32, 4, 20, 4, 20)
    with pytest.raises(InvalidInputError, match="flux-fill family takes no negative prompt"):
        inp(img, hole, negative_prompt="blurry", steps=1)
    with pytest.raises(InvalidInputError, match="flux-fill family's sampler has no eta"):
        inp(img, hole, eta=0.5, steps=1)
    # FLUX aligns through the flow-matching SDE rollout (tests/test_engine_rollout_flux.py), by GRPO by default
    engine = inpainters("flux-fill").engine
    assert engine.alignable and engine.default_algo == "grpo" and engine.sampler_kind == "flow"
    assert inpainters("sd").engine.alignable and inpainters("sdxl").engine.alignable


def test_family_comes_from_model_index(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusion3Pipeline"}))
    with pytest.raises(InvalidInputError, match="StableDiffusion3Pipeline pipeline, which is no inpainting family"):
        Inpainter.from_pretrained(tmp_path, device="cpu")
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "FluxFillPipeline"}))
    assert family_of_folder(tmp_path) == "flux-fill"
    with pytest.raises(InvalidInputError, match="no model_index.json"):
        family_of_folder(tmp_path / "nowhere")


def test_offload_options_are_checked_before_loading(tiny_pipeline_dir):
    with pytest.raises(InvalidInputError, match="offload must be one of none, model, sequential, got 'all'"):
        Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", offload="all")
    with pytest.raises(InvalidInputError, match="offload 'model' moves models between CPU and an accelerator"):
        Inpainter.from_pretrained(tiny_pipeline_dir, device="cpu", offload="model")


def test_vae_tiling_is_switched_on(tiny_family_dir):
    inp = Inpainter.from_pretrained(tiny_family_dir("flux-fill"), device="cpu", dtype="float32", vae_tiling=True)
    assert inp.pipeline.vae.use_tiling


def test_hub_aliases():
    from prefpaint_sdk.hub import MODEL_ALIASES

    assert MODEL_ALIASES["flux-fill"] == "black-forest-labs/FLUX.1-Fill-dev"
    assert MODEL_ALIASES["sdxl-inpaint"] == "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"


def test_only_engines_name_a_diffusers_pipeline_class():
    """The design's rule: engines/ is the only place that names a diffusers pipeline (testing/pipelines.py builds fixtures)."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    allowed = {root / "prefpaint_sdk" / "testing" / "pipelines.py", root / "prefpaint_sdk" / "testing" / "blend_families.py"}
    offenders = []
    for folder in ("prefpaint_sdk", "apps", "cli"):
        for path in (root / folder).rglob("*.py"):
            if path in allowed or (root / "prefpaint_sdk" / "engines") in path.parents:
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("diffusers"):
                    offenders += [f"{path.relative_to(root)}: {a.name}" for a in node.names if a.name.endswith("Pipeline")]
                elif isinstance(node, ast.Attribute) and node.attr.endswith("Pipeline") and \
                        isinstance(node.value, ast.Name) and node.value.id == "diffusers":
                    offenders.append(f"{path.relative_to(root)}: diffusers.{node.attr}")
    assert not offenders


def test_model_info_knows_every_family_from_its_config_files(tiny_family_dir, inpainters):
    """model_info (torch-free, no load) says what the loaded engine says: working size, multiple, defaults."""
    from prefpaint_sdk import model_info

    for family in FAMS:
        info = model_info(tiny_family_dir(family))
        loaded = inpainters(family)
        assert (info.family, info.resolution, info.defaults) == (family, loaded.resolution, loaded.defaults)
        assert info.size_multiple == loaded.engine.size_multiple
    # published ids, offline and uncached: the family engine that lists them answers
    assert model_info("flux-fill", offline=True).resolution == model_info("sdxl-inpaint", offline=True).resolution == 1024
    assert model_info("kd5678/prefpaint-v1.0", offline=True).resolution == 512
