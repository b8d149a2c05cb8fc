"""``prefpaint eval --reward ...`` and ``evaluate(reward_model=[specs])``: a reward stack judges, each reward in its
own column (JSON, text summary, HTML), the WinRate from the weighted raw sum, recomputed here by hand."""

import json

import numpy as np
import pytest
from _helpers_eval import write_data
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk import Inpainter, load_image, load_mask
from prefpaint_sdk.evaluation import evaluate
from prefpaint_sdk.reward.constraints import brightness_in_mask
from prefpaint_sdk.reward.framing import reward_views


@pytest.fixture(scope="module")
def models(tiny_pipeline_dir, tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline, save_tiny_reward_model

    tmp = tmp_path_factory.mktemp("eval-stack")
    return dict(a=tiny_pipeline_dir, b=save_tiny_inpaint_pipeline(tmp / "b", seed=1), r=save_tiny_reward_model(tmp / "r"))


def test_a_stack_judges_and_reports_every_reward(models, tmp_path):
    a = Inpainter.from_pretrained(models["a"], device="cpu", dtype="float32")
    b = Inpainter.from_pretrained(models["b"], device="cpu", dtype="float32")
    data = write_data(tmp_path / "data", n=2, size=40, masks=False)
    rep = evaluate(a, b, [f"prefpaint={models['r']}", "brightness", "seam"], data, samples=(1, 2),
                   out_dir=tmp_path / "out", steps=2, masks="strokes", reward_weights="1,2,0.5", device="cpu")
    assert rep.reward_labels() == ["prefpaint", "brightness", "seam"] and not rep.failures
    assert rep.config["reward_model"].startswith("stack[prefpaint=")
    for c in rep.cases:
        per = c["model"]["rewards"]
        want = [1 * p + 2 * br + 0.5 * s for p, br, s in zip(per["prefpaint"], per["brightness"], per["seam"])]
        np.testing.assert_allclose(c["model"]["scores"], want, atol=1e-9)
        base = c["baseline"]["rewards"]
        assert c["baseline"]["score"] == pytest.approx(base["prefpaint"] + 2 * base["brightness"] + 0.5 * base["seam"])
        # brightness recomputed from the saved images, framed as every scoring path frames them
        img, hole = load_image(rep.out_dir / c["files"]["input"]), load_mask(rep.out_dir / c["files"]["mask"])
        views, _ = reward_views([load_image(rep.out_dir / f) for f in c["model"]["files"]], img, hole, c["box"])
        import torch

        t = torch.stack([torch.from_numpy(np.asarray(v, np.float32) / 255).permute(2, 0, 1) for v in views])
        holes = torch.from_numpy(hole)[None].expand(len(views), -1, -1)
        np.testing.assert_allclose(per["brightness"], brightness_in_mask(t, holes).numpy(), atol=1e-6)
    row = rep.rows()[1]
    picks = [rep.pick(c, 2) for c in rep.cases]
    assert row["rewards"]["seam"] == pytest.approx(np.mean([c["model"]["rewards"]["seam"][i] for c, i in zip(rep.cases, picks)]))
    assert set(rep.baseline_row()["rewards"]) == {"prefpaint", "brightness", "seam"}
    text = rep.summary()
    assert all(lab in text.splitlines()[1] for lab in ("prefpaint", "brightness", "seam"))
    assert "<th>seam</th>" in (rep.out_dir / "report.html").read_text()
    saved = json.loads((rep.out_dir / "results.json").read_text())
    assert saved["summary"][1]["rewards"] == pytest.approx(row["rewards"])


def test_cli_eval_takes_the_stack(models, tmp_path):
    data = write_data(tmp_path / "data", n=2, size=32)
    out = tmp_path / "out"
    args = ["eval", "--data", str(data), "--model", str(models["a"]), "--baseline", str(models["b"]),
            "--reward-model", str(models["r"]), "--reward", "seam", "--reward-weights", "1,0.5", "--samples", "1",
            "--steps", "1", "-o", str(out), "--device", "cpu", "--dtype", "float32", "--offline", "-q"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "prefpaint" in r.output and "seam" in r.output
    results = json.loads((out / "results.json").read_text())
    assert set(results["summary"][0]["rewards"]) == {"prefpaint", "seam"}
    # other weights are another judge: the cached run is refused, not silently mixed
    i = args.index("1,0.5")
    r = CliRunner().invoke(app, args[:i] + ["1,2"] + args[i + 1:])
    assert r.exit_code == 2 and "--overwrite" in r.output and "Traceback" not in r.output, r.output
