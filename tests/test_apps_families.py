"""The apps on every family, end to end through the CLI on the tiny fixtures: ``recon3d`` on SDXL and FLUX Fill,
and ``eval`` comparing models of different families (FLUX Fill best-of-3 against SD). ``extend`` on SDXL and
FLUX Fill is in ``tests/test_cli_engines.py``; the SD runs are in the apps' own tests."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _helpers_eval import write_data
from _recon3d_fakes import scene
from PIL import Image
from prefpaint_apps.recon3d.testing import write_scene
from prefpaint_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def redwood(tmp_path_factory):
    return write_scene(scene(2, 96, 72).frames, tmp_path_factory.mktemp("scenes") / "redwood", "redwood")


# a base model samples natively: SDXL's pipeline defaults are guidance 7.5 and strength 0.9999 (so 2 steps)
@pytest.mark.parametrize("family,guidance,steps", [("sdxl", 7.5, "2"), ("flux-fill", 30.0, "1")])
def test_recon3d_runs_on_the_family(redwood, tiny_family_dir, tmp_path, family, guidance, steps):
    out = tmp_path / "out"
    r = runner.invoke(app, ["recon3d", str(redwood), "-o", str(out), "--model", str(tiny_family_dir(family)),
                            "--views", "1", "--steps", steps, "--depth-model", "none", "--voxel-size", "0.1",
                            "--depth-trunc", "9", "--device", "cpu", "--dtype", "float32", "--seed", "3", "--offline",
                            "--quiet"])
    assert r.exit_code == 0, r.output
    holes = np.asarray(Image.open(out / "views/000/holes.png")) > 0
    rgb, filled = (np.asarray(Image.open(out / f"views/000/{n}.png").convert("RGB")) for n in ("rgb", "inpainted"))
    assert holes.any() and rgb.shape == filled.shape
    assert np.array_equal(filled[~holes], rgb[~holes])  # only the disoccluded holes are painted
    assert not np.array_equal(filled[holes], rgb[holes])
    m = json.loads((out / "metrics.json").read_text())
    assert m["inpainting"]["model"] == str(tiny_family_dir(family)) and m["views"][0]["seeds"] == [3]
    assert (out / "mesh.ply").is_file()
    params = json.dumps(m["inpainting"])
    assert str(guidance) in params, params  # the family's own default guidance was used


def test_eval_compares_flux_fill_best_of_3_with_sd(tiny_family_dir, tmp_path):
    from prefpaint_sdk.testing import save_tiny_reward_model

    data = write_data(tmp_path / "data", n=2, size=32)
    out = tmp_path / "out"
    r = runner.invoke(app, ["eval", "--data", str(data), "--model", str(tiny_family_dir("flux-fill")), "--baseline",
                            str(tiny_family_dir("sd")), "--reward-model", str(save_tiny_reward_model(tmp_path / "rm")),
                            "--samples", "3", "--steps", "1", "-o", str(out), "--device", "cpu", "--dtype", "float32",
                            "--offline", "-q"])
    assert r.exit_code == 0, r.output
    results = json.loads((out / "results.json").read_text())
    assert [row["S"] for row in results["summary"]] == [3] and len(results["cases"]) == 2
    cfg = results["config"]
    assert cfg["model"].startswith(str(tiny_family_dir("flux-fill")) + "#")
    assert cfg["baseline"].startswith(str(tiny_family_dir("sd")) + "#")
    wins = 0
    for case in results["cases"]:
        model, base = case["model"], case["baseline"]
        assert len(model["seeds"]) == len(model["scores"]) == len(model["files"]) == 3  # best-of-3 from FLUX Fill
        wins += max(model["scores"]) > base["score"]
        a = np.asarray(Image.open(out / model["files"][0]))
        b = np.asarray(Image.open(out / base["file"]))
        assert a.shape == b.shape and not np.array_equal(a, b)  # same seed, other family: other pixels
    assert results["summary"][0]["wins"] == wins
