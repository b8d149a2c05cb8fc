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
# Qwen-Image-Edit works at a 1024x1024 area whatever the size asked (~3 s a call on the tiny fixture): it joins the
# checks below in the slow tier; its equivalence with diffusers is in tests/test_engine_qwen_image_edit.py.
WITH_EDIT = [*BLEND, pytest.param("qwen-image-edit", marks=pytest.mark.slow)]
# (steps, guidance, strength) as each diffusers pipeline's __call__ has them
PIPELINE_DEFAULTS = {"qwen-image": (50, 4.0, 0.6), "flux2-klein": (50, 8.0, 0.8), "z-image": (50, 5.0, 1.0),
                     "qwen-image-edit": (50, 4.0, 0.6)}
RNG = np.random.default_rng(11)


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


@pytest.mark.parametrize("family", WITH_EDIT)
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


@pytest.mark.parametrize("family", WITH_EDIT)
def test_bf16_and_vae_tiling_load_and_inpaint(tiny_family_dir, family):
    """The memory options every engine has: bf16 weights and a tiled VAE (offload needs an accelerator)."""
    inp = Inpainter.from_pretrained(tiny_family_dir(family), device="cpu", dtype="bfloat16", vae_tiling=True)
    assert inp.dtype == torch.bfloat16
    img, hole = RNG.integers(0, 256, (70, 90, 3), dtype=np.uint8), _hole(70, 90, 10, 50, 20, 70)
    got = np.asarray(inp(img, hole, prompt="x", seed=0, steps=2, mask_blur=0).image)
    assert got.shape == img.shape and np.array_equal(got[~hole], img[~hole]) and not np.array_equal(got[hole], img[hole])


def test_download_knows_the_blend_family_aliases(monkeypatch):
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    import prefpaint_sdk.hub as hub

    asked = []
    monkeypatch.setattr(hub, "_snapshot", lambda model_id, **kw: asked.append(model_id) or hub.ResolvedModel(
        model_id=model_id, path=hub.Path("/x"), revision="abc", source="hub"))
    r = CliRunner().invoke(app, ["download", "qwen-image", "flux2-klein", "z-image"])
    assert r.exit_code == 0, r.output
    assert asked == ["Qwen/Qwen-Image", "black-forest-labs/FLUX.2-klein-4B", "Tongyi-MAI/Z-Image-Turbo"]


@pytest.mark.parametrize("family", WITH_EDIT)
def test_extend_and_serve_run_the_family_at_its_own_defaults(inpainters, tiny_family_dir, family, tmp_path):
    import json

    from _serve_helpers import make_image, png, square_hole
    from fastapi.testclient import TestClient
    from prefpaint_apps.serve import create_app
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    img = make_image(40, 52, seed=2)
    Image.fromarray(img).save(tmp_path / "photo.png")
    r = CliRunner().invoke(app, ["extend", str(tmp_path / "photo.png"), "-o", str(tmp_path / "wide.png"), "--model",
                                 str(tiny_family_dir(family)), "--ratio-x", "1.4", "--steps", "2", "--seed", "0",
                                 "--device", "cpu", "--dtype", "float32", "--offline", "--quiet"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "wide.json").read_text())
    assert meta["plan"]["window"] == model_info(tiny_family_dir(family)).resolution and meta["params"]["guidance_scale"] == PIPELINE_DEFAULTS[family][1]
    wide = np.asarray(Image.open(tmp_path / "wide.png"))
    assert wide.shape[:2] == (40, 73)

    inp = inpainters(family)
    hole = square_hole(40, 52)
    files = {"image": ("x.png", png(img), "image/png"), "mask": ("m.png", png((hole * 255).astype(np.uint8)), "image/png")}
    with TestClient(create_app(inp, default_steps=2)) as c:
        res = c.post("/v1/inpaint", files=files, data={"seed": "4", "prompt": "a cat"})
    assert res.status_code == 200, res.text
    j = res.json()
    assert j["model"]["family"] == family and j["params"]["guidance_scale"] == PIPELINE_DEFAULTS[family][1]
    assert j["params"]["strength"] == PIPELINE_DEFAULTS[family][2]


@pytest.mark.parametrize("model,baseline,recon", [
    ("qwen-image", "z-image", "flux2-klein"),
    pytest.param("qwen-image-edit", "qwen-image", "qwen-image-edit", marks=pytest.mark.slow),
])
def test_eval_and_recon3d_run_blend_families(tiny_family_dir, tmp_path, model, baseline, recon):
    import json

    from _helpers_eval import write_data
    from _recon3d_fakes import scene
    from prefpaint_apps.recon3d.testing import write_scene
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    from prefpaint_sdk.testing import save_tiny_reward_model

    common = ["--device", "cpu", "--dtype", "float32", "--offline", "-q"]
    data = write_data(tmp_path / "data", n=2, size=32)
    out = tmp_path / "eval"
    r = CliRunner().invoke(app, ["eval", "--data", str(data), "--model", str(tiny_family_dir(model)),
                                 "--baseline", str(tiny_family_dir(baseline)), "--reward-model",
                                 str(save_tiny_reward_model(tmp_path / "rm")), "--samples", "2", "--steps", "2",
                                 "-o", str(out), *common])
    assert r.exit_code == 0, r.output
    assert len(json.loads((out / "results.json").read_text())["cases"]) == 2

    root = write_scene(scene(2, 96, 72).frames, tmp_path / "redwood", "redwood")
    rec = tmp_path / "rec"
    r = CliRunner().invoke(app, ["recon3d", str(root), "-o", str(rec), "--model", str(tiny_family_dir(recon)),
                                 "--views", "1", "--steps", "2", "--depth-model", "none", "--voxel-size", "0.1",
                                 "--depth-trunc", "9", "--seed", "3", *common])
    assert r.exit_code == 0, r.output
    holes = np.asarray(Image.open(rec / "views/000/holes.png")) > 0
    rgb, filled = (np.asarray(Image.open(rec / f"views/000/{n}.png").convert("RGB")) for n in ("rgb", "inpainted"))
    assert holes.any() and np.array_equal(filled[~holes], rgb[~holes]) and not np.array_equal(filled[holes], rgb[holes])


@pytest.mark.parametrize("family,resolution", [("qwen-image", 256), ("flux2-klein", 48), ("z-image", 48),
                                               pytest.param("qwen-image-edit", 1024, marks=pytest.mark.slow)])
def test_a_folder_saved_by_plain_diffusers_loads_and_inpaints(family, resolution, tmp_path):
    from _plain_diffusers_pipelines import save

    from prefpaint_sdk.engines import family_of_folder

    folder = save(family, str(tmp_path / family))
    assert family_of_folder(folder) == family and model_info(folder).resolution == resolution
    inp = Inpainter.from_pretrained(folder, device="cpu", dtype="float32", offline=True)
    assert inp.family == family and inp.resolution == resolution  # Qwen-Image: 128 x its 2x VAE, as the pipeline
    img, hole = RNG.integers(0, 256, (90, 61, 3), dtype=np.uint8), _hole(90, 61, 20, 50, 10, 40)
    got = np.asarray(inp(img, hole, seed=0, steps=2, mask_blur=0, prompt="x").image)
    assert got.shape == img.shape and np.array_equal(got[~hole], img[~hole]) and not np.array_equal(got[hole], img[hole])


def test_model_info_imports_no_torch(tiny_family_dir):
    import subprocess
    import sys

    folder = tiny_family_dir("qwen-image")
    code = ("import sys\nfrom prefpaint_sdk import model_info\n"
            f"i = model_info({str(folder)!r})\nassert (i.family, i.resolution) == ('qwen-image', 64), i\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\nassert not heavy, heavy\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("size", ["tiny", "mid", "real"])
def test_qwen_image_fixture_rope_sections_fit_the_head(size):
    """Qwen2.5-VL's multimodal RoPE splits each head's frequencies in three sections; they must sum to half the
    head size, or the text encoder fails on its first call (built on "meta": configs only)."""
    from prefpaint_sdk.testing import tiny_inpaint_pipeline

    with torch.device("meta"):
        pipe = tiny_inpaint_pipeline(0, size=size, family="qwen-image")
    text = pipe.text_encoder.config.text_config
    rope = getattr(text, "rope_parameters", None) or text.rope_scaling
    assert 2 * sum(rope["mrope_section"]) == text.hidden_size // text.num_attention_heads
