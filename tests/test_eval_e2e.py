"""End to end on the real tiny models: SDK evaluate and the `prefpaint eval` command with resume (the example runs in test_examples)."""

import json

import numpy as np
import pytest
from _helpers_eval import write_data
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk import Inpainter, RewardModel, load_image, load_mask
from prefpaint_sdk.evaluation import evaluate
from prefpaint_sdk.reward.framing import reward_views


@pytest.fixture(scope="module")
def models(tiny_pipeline_dir, tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline, save_tiny_reward_model

    tmp = tmp_path_factory.mktemp("eval-models")
    return dict(a=tiny_pipeline_dir, b=save_tiny_inpaint_pipeline(tmp / "b", seed=1), r=save_tiny_reward_model(tmp / "r"))


@pytest.fixture(scope="module")
def loaded(models):
    load = lambda p: Inpainter.from_pretrained(p, device="cpu", dtype="float32")  # noqa: E731
    return load(models["a"]), load(models["b"]), RewardModel.from_pretrained(models["r"], device="cpu")


def test_evaluate_with_real_tiny_models(loaded, tmp_path):
    a, b, rm = loaded
    data = write_data(tmp_path / "data", n=2, size=40, masks=False)
    rep = evaluate(a, b, rm, data, samples=(1, 2), out_dir=tmp_path / "out", steps=2, masks="strokes")
    assert len(rep.cases) == 2 and not rep.failures
    for c in rep.cases:
        img = load_image(rep.out_dir / c["files"]["input"])
        hole = load_mask(rep.out_dir / c["files"]["mask"])
        files = [rep.out_dir / f for f in c["model"]["files"]] + [rep.out_dir / c["baseline"]["file"]]
        # The recorded rewards are those of the saved images, framed by the one reward framing (the model's
        # context box, here the whole 40 px image) against the input's masked image.
        assert c["box"] == [0, 0, 40, 40]
        views, masked = reward_views([load_image(f) for f in files], img, hole, c["box"], rm.mask_fill)
        again = rm.score(views, masked_images=[masked] * len(views))
        assert np.allclose(again.scores.numpy(), c["model"]["scores"] + [c["baseline"]["score"]], atol=1e-5)
        assert np.allclose(again.bounds.numpy(), c["model"]["bounds"] + [c["baseline"]["bound"]], atol=1e-5)
        # Sample k is reproducible alone from its recorded seed (up to 1 grey level of batch-size float noise).
        alone = a(img, hole, num_candidates=1, seed=c["model"]["seeds"][1], steps=2).image
        diff = np.abs(np.asarray(alone, int) - np.asarray(load_image(files[1]), int))
        assert diff.max() <= 1
        assert c["has_ground_truth"] and c["model"]["psnr"][0] > 0
    row = rep.rows()[1]
    assert row["mean_bound"] > 0 and row["psnr"] is not None
    # WinRate at S = 2 by hand from the recorded rewards: a win 1, a tie 1/2, a loss 0.
    diffs = [max(c["model"]["scores"][:2]) - c["baseline"]["score"] for c in rep.cases]
    assert row["win_rate"] == np.mean([1.0 if d > 0 else (0.5 if d == 0 else 0.0) for d in diffs])


def test_identical_real_models_tie_at_s1(loaded, tmp_path):
    a, _, rm = loaded
    data = write_data(tmp_path / "data", n=3, size=32, masks=False)
    rep = evaluate(a, a, rm, data, samples=(1,), out_dir=tmp_path / "out", steps=2, masks="outpaint", write_report=False)
    diffs = [rep.score_diff(c, 1) for c in rep.cases]
    # Common seeds: the same model gives the same sample up to batch-size float noise, so the rewards agree.
    assert max(abs(d) for d in diffs) < 1e-3
    assert rep.with_stats(tie_tolerance=1e-3).rows()[0]["win_rate"] == 0.5


def test_cli_eval_resumes_and_refuses_other_settings(models, tmp_path):
    data = write_data(tmp_path / "data", n=2, size=32)
    out = tmp_path / "out"
    args = ["eval", "--data", str(data), "--model", str(models["a"]), "--baseline", str(models["b"]),
            "--reward-model", str(models["r"]), "--samples", "1", "--samples", "2", "--steps", "1",
            "-o", str(out), "--device", "cpu", "--dtype", "float32", "--offline", "-q"]
    runner = CliRunner()
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "WinRate" in r.output
    results = json.loads((out / "results.json").read_text())
    assert [row["S"] for row in results["summary"]] == [1, 2] and len(results["cases"]) == 2
    stamps = {p: p.stat().st_mtime_ns for p in (out / "cache").glob("*.json")} | \
             {p: p.stat().st_mtime_ns for p in (out / "images").rglob("model_*.png")}
    r = runner.invoke(app, args)  # the same command again: resumed from the cache, nothing recomputed
    assert r.exit_code == 0, r.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "results.json").read_text())["summary"] == results["summary"]
    # Statistics settings are not part of the cache: a re-run with another interval recomputes no sample.
    r = runner.invoke(app, args + ["--ci", "bootstrap", "--embed-images"])
    assert r.exit_code == 0, r.output
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads((out / "results.json").read_text())["stats"]["ci"] == "bootstrap"
    assert 'src="data:image/jpeg;base64,' in (out / "report.html").read_text()
    r = runner.invoke(app, args[:-1] + ["--seed", "5", "-q"])
    assert r.exit_code == 2 and "other settings" in r.output and "seed" in r.output
    r = runner.invoke(app, args[:2] + [str(tmp_path / "nothing")] + args[3:])
    assert r.exit_code == 2 and "does not exist" in r.output
