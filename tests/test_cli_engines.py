"""``prefpaint inpaint --model <any family>``, the memory flags, ``doctor --smoke`` and ``download`` aliases."""

import json

import numpy as np
import pytest
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture()
def inputs(tmp_path):
    rng = np.random.default_rng(8)
    Image.fromarray(rng.integers(0, 256, (45, 67, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    mask = np.zeros((45, 67), np.uint8)
    mask[10:30, 20:50] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("family,steps,guidance,eta", [("flux-fill", 50, 30.0, None), ("sdxl", 50, 7.5, None)])
def test_inpaint_any_family_with_its_defaults(inputs, tiny_family_dir, family, steps, guidance, eta):
    out = inputs / f"{family}.png"
    r = _run("inpaint", inputs / "photo.png", inputs / "mask.png", "-o", out, "--model", tiny_family_dir(family),
             "--seed", "1", "--quiet", "--vae-tiling", "--offload", "none")
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (67, 45)
    params = json.loads(out.with_suffix(".json").read_text())["params"]
    assert (params["family"], params["steps"], params["guidance_scale"], params["eta"]) == (family, steps, guidance, eta)


def test_flags_the_family_lacks_or_bad_offload_exit_2_in_one_line(inputs, tiny_family_dir):
    base = ["inpaint", inputs / "photo.png", inputs / "mask.png", "-o", inputs / "o.png", "--quiet"]
    r = _run(*base, "--model", "/nonexistent", "--offload", "disk")
    assert r.exit_code == 2 and "offload must be one of none, model, sequential" in r.output
    assert "Traceback" not in r.output and not (inputs / "o.png").exists()
    r = _run(*base, "--model", tiny_family_dir("flux-fill"), "--negative-prompt", "blurry", "--steps", "1")
    assert r.exit_code == 2 and "takes no negative prompt" in r.output and "Traceback" not in r.output
    r = _run(*base, "--model", tiny_family_dir("sdxl"), "--device", "cpu", "--offload", "model")
    assert r.exit_code == 2 and "moves models between CPU and an accelerator" in r.output


@pytest.mark.slow  # Qwen-Image-Edit's pipeline works at a 1024x1024 area: ~11 CPU-s for all 7 families here
def test_doctor_smoke_runs_every_family():
    r = _run("doctor", "--smoke")
    assert r.exit_code == 0, r.output
    for family in ("sd", "sdxl", "flux-fill", "qwen-image", "flux2-klein", "z-image", "qwen-image-edit"):
        assert f"'{family}': 'ok" in r.output.replace("\n", "")


def test_download_knows_the_family_aliases(monkeypatch):
    import prefpaint_sdk.hub as hub

    asked = []
    monkeypatch.setattr(hub, "_snapshot", lambda model_id, **kw: asked.append(model_id) or hub.ResolvedModel(
        model_id=model_id, path=hub.Path("/x"), revision="abc", source="hub"))
    r = _run("download", "flux-fill", "sdxl-inpaint")
    assert r.exit_code == 0, r.output
    assert asked == ["black-forest-labs/FLUX.1-Fill-dev", "diffusers/stable-diffusion-xl-1.0-inpainting-0.1"]


@pytest.mark.parametrize("family,guidance,eta", [("flux-fill", 30.0, None), ("sdxl", 7.5, None)])
def test_extend_runs_the_family_at_its_own_guidance_and_window(inputs, tiny_family_dir, family, guidance, eta):
    out = inputs / "wide.png"
    r = _run("extend", inputs / "photo.png", "-o", out, "--model", tiny_family_dir(family), "--ratio-x", "1.5",
             "--steps", "2", "--seed", "0", "--quiet")
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (100, 45)
    params = json.loads(out.with_suffix(".json").read_text())["params"]
    assert (params["guidance_scale"], params["eta"], params["window"]) == (guidance, eta, 64)
    # the original's pixels are kept byte for byte away from the seam
    a, b = np.asarray(Image.open(inputs / "photo.png")), np.asarray(Image.open(out))
    x0 = (100 - 67) // 2
    assert np.array_equal(b[:, x0 + 8:x0 + 67 - 8], a[:, 8:67 - 8])
