"""Per-family behaviour through the CLI and the SDK, on the tiny fixtures (one saved folder per family per
session, ``tiny_family_dir``): every mask format, odd and large sizes with crop-to-mask at the family's
working size and size multiple, bad input refused before the model loads, and the real configs (on "meta").

``tests/test_engines.py`` holds the equivalence with each diffusers pipeline and the 333x517 crop; this file
adds what differs per family at the edges.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk import Inpainter
from prefpaint_sdk.engines import Engine, engine_class, engine_for_pipeline
from prefpaint_sdk.testing import FAMILIES, tiny_inpaint_pipeline

runner = CliRunner()
# Qwen-Image-Edit's pipeline always works at a 1024x1024 area (~3 s a call on the tiny fixture): slow tier here.
SLOW = {"qwen-image-edit"}
ALL = [pytest.param(f, marks=pytest.mark.slow) if f in SLOW else f for f in FAMILIES]
H, W = 45, 67
HOLE = (slice(8, 32), slice(16, 48))  # block-aligned, so a JPEG mask keeps its edges


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def _one_step(family) -> str:
    """The fewest steps that leave one denoising step at the family's default strength under the native
    scheduler, which a base model (the tiny fixtures) samples with (0.6 for Qwen-Image, 0.9999 for SDXL)."""
    import math

    return str(math.ceil(1 / engine_class(family).defaults_for("native")["strength"]))


def _hole(h=H, w=W, box=HOLE):
    m = np.zeros((h, w), bool)
    m[box] = True
    return m


def _mask_files(folder):
    """The same hole in every format the CLI reads: (stem -> writer)."""
    hole = _hole()
    u8 = hole.astype(np.uint8) * 255
    folder.mkdir()
    Image.fromarray(u8, "L").save(folder / "grey.png")
    Image.fromarray(np.dstack([u8] * 3), "RGB").save(folder / "rgb.png")  # the official 3-channel 0/255 masks
    Image.fromarray(np.dstack([u8] * 3 + [np.full_like(u8, 255)]), "RGBA").save(folder / "rgba.png")
    Image.fromarray(u8, "L").convert("1").save(folder / "onebit.png")
    Image.fromarray(hole.astype(np.uint16) * 65535).save(folder / "sixteen.png")
    Image.fromarray(hole.astype(np.float32), "F").save(folder / "float.tiff")
    Image.fromarray(u8, "L").convert("P").save(folder / "palette.png")
    Image.fromarray(u8, "L").save(folder / "jpeg.jpg", quality=95)
    return sorted(p.stem for p in folder.iterdir())


@pytest.mark.parametrize("family", ALL)
def test_every_mask_format_gives_the_same_inpainting(family, tiny_family_dir, tmp_path):
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    stems = _mask_files(tmp_path / "masks")
    (tmp_path / "images").mkdir()
    for stem in stems + ["inverted", "alpha"]:
        Image.fromarray(img).save(tmp_path / "images" / f"{stem}.png")
    common = ["--model", tiny_family_dir(family), "--seed", "1", "--steps", _one_step(family), "--device", "cpu", "--dtype",
              "float32", "--quiet", "--offline"]
    r = _run("inpaint", tmp_path / "images", tmp_path / "masks", "-o", tmp_path / "out", *common)
    assert r.exit_code == 0, r.output
    # black fills with --invert-mask; transparent fills with --mask-from-alpha
    u8 = _hole().astype(np.uint8) * 255
    one = tmp_path / "one"
    one.mkdir()
    Image.fromarray(255 - u8, "L").save(one / "inverted.png")
    Image.fromarray(np.dstack([np.zeros_like(u8)] * 3 + [255 - u8]), "RGBA").save(one / "alpha.png")
    for stem, flag in (("inverted", "--invert-mask"), ("alpha", "--mask-from-alpha")):
        r = _run("inpaint", tmp_path / "images" / f"{stem}.png", one / f"{stem}.png", "-o",
                 tmp_path / "out" / f"{stem}.png", flag, *common)
        assert r.exit_code == 0, r.output
    ref = np.asarray(Image.open(tmp_path / "out" / "grey.png"))
    assert not np.array_equal(ref[_hole()], img[_hole()])
    far = ~_hole(box=(slice(0, 32 + 9), slice(16 - 9, 48 + 9)))  # beyond the default 8 px seam
    assert np.array_equal(ref[far], img[far])
    for stem in stems + ["inverted", "alpha"]:
        got = np.asarray(Image.open(tmp_path / "out" / f"{stem}.png"))
        assert np.array_equal(got, ref), stem  # same hole, same seed: the same pixels, whatever the format
        params = json.loads((tmp_path / "out" / f"{stem}.json").read_text())["params"]
        assert params["family"] == family


@pytest.fixture(scope="module")
def spied(tiny_family_dir):
    """``spied(family)``: an Inpainter whose engine records the (width, height) each sample call gets."""
    cache = {}

    def get(family):
        if family not in cache:
            inp = Inpainter.from_pretrained(tiny_family_dir(family), device="cpu", dtype="float32")
            sizes = []
            sample = inp.engine.sample

            def recording(image, mask, **kw):
                sizes.append((kw["width"], kw["height"], image.size, mask.size))
                return sample(image, mask, **kw)

            inp.engine.sample = recording
            cache[family] = inp, sizes
        return cache[family]

    return get


@pytest.mark.parametrize("family", ALL)
@pytest.mark.parametrize("shape,box", [((517, 333), (slice(40, 90), slice(250, 320))),
                                       ((1500, 1000), (slice(700, 820), slice(100, 190)))])
def test_odd_and_large_sizes_crop_at_the_working_size_and_multiple(spied, family, shape, box):
    inp, sizes = spied(family)
    h, w = shape
    rng = np.random.default_rng(h)
    img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    hole = _hole(h, w, box)
    blur = 6
    out = inp(img, hole, seed=2, steps=2, mask_blur=blur, crop_margin=24)
    got = np.asarray(out.image)
    assert got.shape == img.shape
    # the model saw the context box at its working size: long side = resolution, both sides multiples of
    # the family's size multiple (8 for SD/SDXL; 2 x the VAE factor for FLUX: 4 for the 2x tiny VAE, 16 real)
    width, height, image_size, mask_size = sizes[-1]
    m = inp.engine.size_multiple
    assert m == (8 if family in ("sd", "sdxl") else 2 * inp.pipeline.vae_scale_factor)
    assert image_size == mask_size == (width, height) and width % m == 0 and height % m == 0
    x0, y0, x1, y1 = out.box
    assert max(width, height) == inp.resolution
    # cropped on every side longer than the working size (Qwen-Image-Edit's 1024 takes 333 and 517 whole)
    assert all(side < full or full <= inp.resolution for side, full in ((x1 - x0, w), (y1 - y0, h)))
    assert abs(width / height - (x1 - x0) / (y1 - y0)) < 2 * m / min(width, height)
    # byte-exact outside the hole grown by the feather band; changed inside
    band = _hole(h, w, (slice(box[0].start - blur - 1, box[0].stop + blur + 1),
                        slice(box[1].start - blur - 1, box[1].stop + blur + 1)))
    assert np.array_equal(got[~band], img[~band])
    assert not np.array_equal(got[hole], img[hole])


@pytest.mark.parametrize("family", ALL)
def test_bad_input_exits_2_before_the_model_loads(family, tiny_family_dir, tmp_path, monkeypatch):
    loads = []
    original = Engine.load.__func__
    monkeypatch.setattr(Engine, "load", classmethod(lambda cls, *a, **k: loads.append(cls) or original(cls, *a, **k)))
    img = tmp_path / "photo.png"
    Image.fromarray(np.zeros((H, W, 3), np.uint8)).save(img)
    Image.fromarray(_hole().astype(np.uint8) * 255).save(tmp_path / "mask.png")
    Image.fromarray(np.zeros((30, 30), np.uint8)).save(tmp_path / "small.png")
    base = ["inpaint", img, tmp_path / "mask.png", "-o", tmp_path / "o.png", "--model", tiny_family_dir(family),
            "--device", "cpu", "--quiet", "--offline"]
    cases = [(["--guidance", "nan"], "guidance"), (["--steps", "0"], "steps"), (["--mask-blur", "-3"], "mask"),
             (["--seed", str(2**40)], "seed")]
    for extra, word in cases:
        r = _run(*base, *extra)
        assert r.exit_code == 2 and word in r.output.lower() and "Traceback" not in r.output, (extra, r.output)
    r = _run(*["inpaint", img, tmp_path / "small.png"] + base[3:])
    assert r.exit_code == 2 and "30x30" in r.output and "Traceback" not in r.output, r.output
    r = _run(*["inpaint", tmp_path / "nowhere.png"] + base[2:])
    assert r.exit_code == 2 and "nowhere.png" in r.output, r.output
    assert loads == [] and not (tmp_path / "o.png").exists()
    if family == "flux-fill":  # a knob the family lacks
        r = _run(*base, "--negative-prompt", "blurry")
        assert r.exit_code == 2 and "takes no negative prompt" in r.output and not (tmp_path / "o.png").exists()
    r = _run(*base, "--steps", _one_step(family))  # the control: a good command does load the model, through the spy
    assert r.exit_code == 0 and [c.family for c in loads][-1:] == [family], r.output


@pytest.mark.parametrize("family,resolution,multiple,denoiser,in_channels", [
    ("sd", 512, 8, "unet", 9), ("sdxl", 1024, 8, "unet", 9), ("flux-fill", 1024, 16, "transformer", 384)])
def test_real_configs_on_meta(family, resolution, multiple, denoiser, in_channels):
    """The "real" fixture is the published architecture: built on "meta" (no memory), its engine reads the
    real working size and multiple, and the parameter counts are the published models' to 0.1%."""
    with torch.device("meta"):
        pipe = tiny_inpaint_pipeline(0, size="real", family=family)
    e = engine_for_pipeline(pipe)
    assert (e.resolution, e.size_multiple, e.trainable_module) == (resolution, multiple, denoiser)
    assert e.model.config.in_channels == in_channels and e.model.device.type == "meta"
    e.check_model(family)  # an inpainting model of its family
    counts = {n: sum(p.numel() for p in getattr(pipe, n).parameters()) / 1e6
              for n in ("unet", "transformer", "vae", "text_encoder", "text_encoder_2") if getattr(pipe, n, None)}
    # Published sizes (M parameters): SD 1.5 UNet 859.5 (inpainting: +5 input channels), CLIP ViT-L/14 text
    # 123.1, SD VAE 83.7; SDXL UNet 2567.5, OpenCLIP bigG text with projection 694.7; FLUX.1 transformer 11902
    # (Fill: 384 input channels), T5 v1.1 XXL encoder 4762, FLUX VAE (16 latent channels) 83.8.
    expected = {
        "sd": dict(unet=859.5, vae=83.7, text_encoder=123.1),
        "sdxl": dict(unet=2567.5, vae=83.7, text_encoder=123.1, text_encoder_2=694.7),
        "flux-fill": dict(transformer=11902.4, vae=83.8, text_encoder=123.1, text_encoder_2=4762.3),
    }[family]
    assert counts.keys() == expected.keys()
    for name, n in expected.items():
        assert abs(counts[name] - n) / n < 1e-3, (name, counts[name], n)
    if family == "sdxl":
        u = e.model.config
        assert (u.cross_attention_dim, tuple(u.transformer_layers_per_block), u.addition_time_embed_dim) == (2048, (1, 2, 10), 256)
    if family == "flux-fill":
        t = e.model.config
        assert (t.num_layers, t.num_single_layers, t.num_attention_heads * t.attention_head_dim) == (19, 38, 3072)
        assert pipe.vae.config.latent_channels == 16 and pipe.text_encoder_2.config.d_model == 4096
