"""``prefpaint inpaint``/``doctor``/``download`` through the real CLI: outputs, exit codes, batch mode."""

import json
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()
RNG = np.random.default_rng(3)


@pytest.fixture()
def inputs(tmp_path):
    img = RNG.integers(0, 256, (48, 72, 3), dtype=np.uint8)
    mask = np.zeros((48, 72), np.uint8)
    mask[10:30, 20:50] = 255
    Image.fromarray(img).save(tmp_path / "photo.png")
    Image.fromarray(np.repeat(mask[..., None], 3, 2)).save(tmp_path / "mask.png")  # official 3-channel style
    return tmp_path


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


def test_inpaint_writes_image_and_sidecar(inputs, tiny_pipeline_dir):
    out = inputs / "out.png"
    r = _run("inpaint", inputs / "photo.png", inputs / "mask.png", "-o", out, "--model", tiny_pipeline_dir,
             "--steps", "2", "--seed", "4", "-n", "2", "--save-all", "--quiet")
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (72, 48)
    facts = json.loads(out.with_suffix(".json").read_text())
    assert facts["seeds"] == [4, 5] and facts["model_id"] == str(tiny_pipeline_dir) and facts["params"]["steps"] == 2
    assert (inputs / "out_cand1.png").exists()
    # The same command again must refuse to overwrite, before loading the model.
    r = _run("inpaint", inputs / "photo.png", inputs / "mask.png", "-o", out, "--model", "/nonexistent", "--quiet")
    assert r.exit_code == 2 and "already exists; pass --overwrite" in r.output
    r = _run("inpaint", inputs / "photo.png", inputs / "mask.png", "-o", out, "--model", tiny_pipeline_dir,
             "--steps", "1", "--overwrite", "--quiet")
    assert r.exit_code == 0, r.output


def test_bad_input_exit_code_2(inputs, tiny_pipeline_dir):
    (inputs / "corrupt.png").write_bytes(b"\x89PNG broken")
    Image.new("L", (30, 30)).save(inputs / "square_mask.png")
    (inputs / "masks").mkdir()
    cases = [
        (["inpaint", inputs / "missing.png", inputs / "mask.png"], "does not exist"),
        (["inpaint", inputs / "corrupt.png", inputs / "mask.png"], "not a readable image"),
        (["inpaint", inputs / "photo.png", inputs / "square_mask.png"], "pass --resize-mask"),
        (["inpaint", inputs / "photo.png", inputs / "masks"], "is a folder but image"),
    ]
    for args, match in cases:
        r = _run(*args, "--model", tiny_pipeline_dir, "--steps", "1", "-o", inputs / "x.png", "--quiet")
        assert r.exit_code == 2, (args, r.output)
        assert match in r.output and "Traceback" not in r.output
    r = _run("inpaint", inputs / "photo.png", inputs / "square_mask.png", "--resize-mask", "--model", tiny_pipeline_dir,
             "--steps", "1", "-o", inputs / "resized.png", "--quiet")
    assert r.exit_code == 0, r.output


def test_missing_model_offline_exit_code_3(inputs, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    r = _run("inpaint", inputs / "photo.png", inputs / "mask.png", "-o", inputs / "y.png", "--offline", "--quiet")
    assert r.exit_code == 3
    assert "kd5678/prefpaint-v1.0" in r.output and "prefpaint download" in r.output


def test_batch_mode_goes_on_past_a_corrupt_file(inputs, tiny_pipeline_dir):
    images, masks = inputs / "images", inputs / "masks"
    images.mkdir()
    masks.mkdir()
    for name in ("a", "b", "c"):
        Image.open(inputs / "photo.png").save(images / f"{name}.png")
        Image.open(inputs / "mask.png").save(masks / f"{name}.png")
    (images / "b.png").write_bytes(b"garbage")
    r = _run("inpaint", images, masks, "-o", inputs / "out", "--model", tiny_pipeline_dir, "--steps", "1", "--seed", "0")
    assert r.exit_code == 1
    assert "b.png" in r.output and "1 of 3 images failed" in r.output
    assert sorted(p.name for p in (inputs / "out").glob("*.png")) == ["a.png", "c.png"]
    # A folder of images with a single mask also works.
    r = _run("inpaint", images, inputs / "mask.png", "-o", inputs / "out2", "--model", tiny_pipeline_dir, "--steps", "1",
             "--quiet")
    assert r.exit_code == 1 and len(list((inputs / "out2").glob("*.png"))) == 2


def test_doctor_smoke():
    r = _run("doctor", "--smoke", "--family", "sd")
    assert r.exit_code == 0, r.output
    assert "smoke test passed" in r.output and "diffusers" in r.output and "'sdxl'" not in r.output
    r = _run("doctor", "--smoke", "--family", "nope")
    assert r.exit_code == 2 and "family must be one of" in r.output and "Traceback" not in r.output


def test_download_rejects_a_bad_id():
    r = _run("download", "not a repo")
    assert r.exit_code == 2 and "not a hub id" in r.output


def test_help_is_fast_and_imports_nothing_heavy():
    code = "import sys, prefpaint_cli.main; print(sorted(m for m in ('torch','diffusers','transformers','open3d') if m in sys.modules))"
    heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert heavy == "[]"
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "prefpaint_cli.main", "--help"], capture_output=True, check=True)
    assert time.perf_counter() - t0 < 2.0  # well under a second when the machine is idle; CI is shared
