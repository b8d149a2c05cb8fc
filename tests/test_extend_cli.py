"""``prefpaint extend`` end to end with the tiny model, the dry run, and exit codes for bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from prefpaint_cli.main import app
from scipy.ndimage import distance_transform_edt
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture()
def photo(tmp_path):
    img = np.random.default_rng(7).integers(0, 256, (40, 48, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(img).save(path)
    return path


def _run(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    # The tiny model's ops are microseconds; on a shared 2-core machine two torch threads contend with
    # other processes and make a call ~15x slower (measured 0.25 s vs 4 s).
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_extend_end_to_end_with_the_tiny_model_is_exact_and_deterministic(photo, tiny_pipeline_dir, tmp_path):
    common = ("--model", tiny_pipeline_dir, "--ratio", "1.25", "--seed", "5", "--steps", "2", "--device", "cpu",
              "--feather", "2", "--quiet")
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    r = _run("extend", photo, "-o", a, *common)
    assert r.exit_code == 0, r.output
    r = _run("extend", photo, "-o", b, *common)
    assert r.exit_code == 0, r.output
    img_a, img_b = Image.open(a), Image.open(b)
    assert img_a.size == (60, 50)
    # deterministic with a seed: same pixels, same per-step seeds
    assert img_a.tobytes() == img_b.tobytes()
    meta = json.loads(a.with_suffix(".json").read_text())
    meta_b = json.loads(b.with_suffix(".json").read_text())
    assert [s["seed"] for s in meta["steps"]] == [s["seed"] for s in meta_b["steps"]]
    assert meta["seed"] == 5 and meta["model_id"] == str(tiny_pipeline_dir) and meta["input"] == str(photo)
    assert meta["plan"]["canvas_size"] == [60, 50] and meta["plan"]["window"] == 64  # the tiny model's size
    # 48x40 -> 60x50 in 64 px windows: two ring layers, each one window that grows all four sides at
    # once (the strip plan needed 4 calls)
    assert meta["model_calls"] == meta["plan"]["num_steps"] == len(meta["steps"]) == 2
    assert all(s["new_extra"] == p["new_extra"] for s, p in zip(meta["steps"], meta["plan"]["steps"]))
    # the real inpainter keeps the original byte for byte outside the 2 px feather band
    out = np.asarray(img_a)
    x0, y0, x1, y1 = meta["plan"]["image_box"]
    original = np.asarray(Image.open(photo))
    inside = np.zeros(out.shape[:2], bool)
    inside[y0:y1, x0:x1] = True
    band = (distance_transform_edt(inside) < 3)[y0:y1, x0:x1]
    np.testing.assert_array_equal(out[y0:y1, x0:x1][~band], original[~band])
    assert not (out[y0:y1, x0:x1] == original).all()  # the band really was blended


def test_extend_seam_pass_candidates_and_overwrite(photo, tiny_pipeline_dir, tmp_path):
    out = tmp_path / "wide.png"
    args = ("extend", photo, "-o", out, "--model", tiny_pipeline_dir, "--ratio-x", "1.2", "--anchor", "left",
            "--steps", "4", "--seed", "1", "-n", "2", "--seam-pass", "--prefill", "blur", "--device", "cpu")
    r = _run(*args)
    assert r.exit_code == 0, r.output
    assert Image.open(out).size == (58, 40)
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["params"]["seam_pass"] is True and meta["params"]["prefill"] == "blur"
    assert all(s["seam_seed"] is not None for s in meta["steps"])
    assert meta["model_calls"] == 2 * meta["plan"]["num_steps"]
    assert meta["plan"]["image_box"] == [0, 0, 48, 40]
    assert "model calls" in r.output  # the report line
    # never overwrite without --overwrite; refused before any model is loaded
    r = _run("extend", photo, "-o", out, "--model", tmp_path / "no-model", "--ratio", "2")
    assert r.exit_code == 2 and "already exists; pass --overwrite" in r.output
    r = _run(*args, "--overwrite", "--no-seam-pass", "--quiet")
    assert r.exit_code == 0, r.output
    assert json.loads(out.with_suffix(".json").read_text())["params"]["seam_pass"] is False


def test_dry_run_prints_the_plan_and_loads_no_model(photo, tmp_path):
    # the default model's working size, known without its files (a published id of the sd engine)
    r = _run("extend", photo, "--dry-run", "--ratio", "2", "--offline")
    assert r.exit_code == 0, r.output
    assert "extend 48x40 -> 96x80" in r.output and "window 512" in r.output
    # a model whose configs cannot be read: no guessed size; --window plans without it
    r = _run("extend", photo, "--dry-run", "--ratio", "2", "--model", "nobody/no-such-model", "--offline")
    assert r.exit_code == 3 and "no-such-model" in r.output and "Traceback" not in r.output, r.output
    r = _run("extend", photo, "--dry-run", "--ratio", "2", "--model", tmp_path / "no-such-model", "--window", "512")
    assert r.exit_code == 0, r.output
    assert "extend 48x40 -> 96x80" in r.output and "window 512" in r.output
    assert "max new share" in r.output and "new share" in r.output
    assert not list(tmp_path.glob("*.json"))


def test_dry_run_uses_a_local_models_working_size(photo, tiny_pipeline_dir):
    r = _run("extend", photo, "--dry-run", "--ratio", "2", "--model", tiny_pipeline_dir)
    assert r.exit_code == 0, r.output
    assert "window 64" in r.output


def test_dry_run_never_imports_torch(photo):
    code = (
        "import sys\n"
        "from prefpaint_cli.main import app\n"
        f"try:\n    app(['extend', {str(photo)!r}, '--dry-run', '--ratio', '3', '-q'])\n"
        "except SystemExit as e:\n    assert e.code in (0, None), e.code\n"
        "heavy = [m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr


def test_missing_model_exit_code_3(photo, tmp_path):
    r = _run("extend", photo, "-o", tmp_path / "o.png", "--model", "nobody/no-such-model", "--offline", "--quiet")
    assert r.exit_code == 3, r.output


@pytest.mark.parametrize(
    "args, match",
    [
        (["--ratio", "0.5"], "ratio must be >= 1"),
        (["--ratio", "1"], "adds no pixels"),
        (["--left", "0", "--right", "0"], "zero on every side"),
        (["--top", "-4"], "top must be >= 0 pixels"),
        (["--ratio", "400"], "beyond max_size=16384"),
        (["--ratio", "3", "--max-size", "100"], "beyond max_size=100"),
        (["--ratio", "2", "--ratio-x", "3"], "conflicts with ratio_x=3"),
        (["--ratio", "2", "--left", "9"], "conflicts with left=9"),
        (["--anchor", "middle"], "anchor must be one of"),
        (["--step-frac", "0.9"], "--step-frac must lie in"),
        (["--window", "600", "--overlap", "600"], "overlap must be"),
    ],
)
def test_bad_sizes_exit_code_2_before_loading_a_model(photo, tmp_path, args, match):
    # --model names nothing: the error must come before any model load
    r = _run("extend", photo, "-o", tmp_path / "o.png", "--model", tmp_path / "no-model", *args)
    assert r.exit_code == 2, r.output
    assert match in r.output and "Traceback" not in r.output
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize(
    "args, match",
    [
        (["--prefill", "mirror"], "prefill must be one of"),
        (["--feather", "-1"], "feather must be a whole number >= 0"),
        (["--seam-pass", "--seam-strength", "1.5"], "--seam-strength must lie in (0, 1)"),
        (["--seam-pass", "--steps", "2"], "--steps 2 at --seam-strength 0.3 leaves the seam pass no denoising step"),
        (["-n", "0"], "--num-candidates must be ≥ 1, got 0"),
        (["--seed", "-3"], "--seed must be between 0 and 4294967295, got -3"),
        (["--strength", "0"], "strength must lie in (0, 1]"),
    ],
)
def test_bad_run_options_exit_code_2_before_loading_a_model(photo, tmp_path, args, match):
    r = _run("extend", photo, "-o", tmp_path / "o.png", "--model", tmp_path / "no-model", *args)
    assert r.exit_code == 2, r.output
    assert match in r.output


def test_bad_image_and_missing_output_exit_code_2(photo, tmp_path):
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG broken")
    cases = [
        (["extend", corrupt, "-o", tmp_path / "o.png"], "is not a readable image"),
        (["extend", tmp_path / "missing.png", "-o", tmp_path / "o.png"], "does not exist"),
        (["extend", photo], "no output file; pass --output OUT.png"),
        (["extend", photo, "-o", tmp_path], "is a folder"),
    ]
    for args, match in cases:
        r = _run(*args, "--model", tmp_path / "no-model")
        assert r.exit_code == 2, (args, r.output)
        assert match in r.output, (args, r.output)


def test_candidates_are_picked_by_reward_when_a_reward_model_is_given(photo, tiny_pipeline_dir, tmp_path):
    from prefpaint_sdk.testing import save_tiny_reward_model

    reward_dir = save_tiny_reward_model(tmp_path / "reward")
    out = tmp_path / "wide.png"
    r = _run("extend", photo, "-o", out, "--model", tiny_pipeline_dir, "--reward-model", reward_dir,
             "--ratio-x", "1.2", "--anchor", "left", "--steps", "2", "--seed", "3", "-n", "3", "--device", "cpu",
             "--quiet")
    assert r.exit_code == 0, r.output
    steps = json.loads(out.with_suffix(".json").read_text())["steps"]
    assert steps
    for s in steps:
        assert len(s["scores"]) == 3 and all(isinstance(v, float) for v in s["scores"])
        # picked by reward (the default "reward" selection)
        assert s["best_index"] == int(np.argmax(s["scores"]))
