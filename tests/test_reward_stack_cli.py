"""``prefpaint score --reward ...``: one score per reward, each equal to the SDK's, one image or a folder."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk.reward.normalize import combine

runner = CliRunner()


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_reward_model
    from prefpaint_sdk.testing.rewards import save_tiny_clip_model

    root = tmp_path_factory.mktemp("stack-models")
    return save_tiny_reward_model(root / "rm"), save_tiny_clip_model(root / "clip")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (48, 48, 3), dtype=np.uint8)
    hole = np.zeros((48, 48), bool)
    hole[16:32, 16:32] = True
    inpainted = original.copy()
    inpainted[hole] = 200
    inpainted[0:4, 0:4] = 0  # a change far outside the hole: outside-change must see it
    Image.fromarray(original).save(tmp_path / "orig.png")
    Image.fromarray(inpainted).save(tmp_path / "inp.png")
    Image.fromarray(np.where(hole, 255, 0).astype(np.uint8)).save(tmp_path / "mask.png")
    return tmp_path, original, inpainted, hole


def _t(a):
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)[None]


def test_score_prints_one_score_per_reward_each_equal_to_the_sdks(models, files):
    from prefpaint_sdk.imaging import masked_image
    from prefpaint_sdk.reward import RewardModel
    from prefpaint_sdk.reward.clip import ClipReward
    from prefpaint_sdk.reward.constraints import outside_change, seam

    rm, clip = models
    d, original, inpainted, hole = files
    args = ["score", str(d / "inp.png"), str(d / "mask.png"), "--reward", f"prefpaint={rm}", "--reward", f"clip={clip}",
            "--reward", "seam", "--reward", "outside-change", "--original", str(d / "orig.png"), "--prompt", "a wall",
            "--json", "--quiet", "--device", "cpu", "--offline"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["image"] == str(d / "inp.png") and list(out["rewards"]) == ["prefpaint", "clip", "seam", "outside-change"]
    rec = out["rewards"]
    h = torch.from_numpy(hole)[None]
    masked = _t(np.asarray(masked_image(Image.fromarray(original), hole)))
    want_pp = RewardModel.from_pretrained(rm, device="cpu").score(Image.fromarray(inpainted),
                                                                  masked_images=masked_image(Image.fromarray(original), hole))
    assert rec["prefpaint"]["score"] == pytest.approx(float(want_pp.scores[0]), abs=1e-5)
    assert rec["prefpaint"]["bound"] == pytest.approx(float(want_pp.bounds[0]), abs=1e-5)
    want_clip = ClipReward.from_pretrained(clip, device="cpu")(_t(inpainted), h, masked, prompts=["a wall"]).scores
    assert rec["clip"]["score"] == pytest.approx(float(want_clip[0]), abs=1e-5) and rec["clip"]["bound"] is None
    assert rec["seam"]["score"] == pytest.approx(float(seam(_t(inpainted), h)[0]), abs=1e-6)
    oc = float(outside_change(_t(inpainted), h, masked)[0])
    assert oc < 0 and rec["outside-change"]["score"] == pytest.approx(oc, abs=1e-6)
    # --masked-image (its outside is the original) gives the same scores as --original
    Image.fromarray(np.asarray(masked_image(Image.fromarray(original), hole))).save(d / "masked.png")
    args2 = [a if a != "--original" else "--masked-image" for a in args]
    args2[args2.index("--masked-image") + 1] = str(d / "masked.png")
    r2 = runner.invoke(app, args2)
    assert r2.exit_code == 0, r2.output
    rec2 = json.loads(r2.stdout)["rewards"]
    assert {k: v["score"] for k, v in rec2.items()} == pytest.approx({k: v["score"] for k, v in rec.items()}, abs=1e-6)


def test_text_report_and_refusals(files):
    d, *_ = files
    base = ["score", str(d / "inp.png"), str(d / "mask.png")]
    r = runner.invoke(app, [*base, "--reward", "seam", "--reward", "brightness"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith(f"{d / 'inp.png'}: seam -") and ", brightness 0." in r.stdout
    r = runner.invoke(app, [*base, "--reward", "seam", "--original", str(d / "orig.png"), "--masked-image", str(d / "orig.png")],
                      env={"COLUMNS": "2000"})
    assert r.exit_code == 2 and "give one of --original and --masked-image" in r.stderr
    r = runner.invoke(app, [*base, "--original", str(d / "orig.png"), "--reward-model", "nobody/missing", "--offline"],
                      env={"COLUMNS": "2000"})
    assert r.exit_code == 2 and "--original is for a reward stack" in r.stderr
    Image.new("L", (48, 48), 255).save(d / "full.png")  # a hole that fills the image has no seam: n/a, JSON null
    r = runner.invoke(app, ["score", str(d / "inp.png"), str(d / "full.png"), "--reward", "seam", "--reward", "brightness"])
    assert r.exit_code == 0 and "seam n/a, brightness 0." in r.stdout
    r = runner.invoke(app, ["score", str(d / "inp.png"), str(d / "full.png"), "--reward", "seam", "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["rewards"]["seam"] == {"score": None, "bound": None, "trust": None}
    Image.new("RGB", (10, 10)).save(d / "small.png")
    r = runner.invoke(app, [*base, "--reward", "outside-change", "--original", str(d / "small.png")], env={"COLUMNS": "2000"})
    assert r.exit_code == 2 and "original is 10x10 but image is 48x48" in r.stderr


def test_folder_mode_writes_a_column_per_reward_and_the_advantage(files):
    d, original, *_ = files
    (d / "imgs").mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        a = original.copy()
        a[16:32, 16:32] = rng.integers(0, 256, 3, dtype=np.uint8)
        Image.fromarray(a).save(d / "imgs" / f"x{i}.png")
    (d / "imgs" / "broken.png").write_text("not an image\n")  # paired, then reported
    r = runner.invoke(app, ["score", str(d / "imgs"), str(d / "mask.png"), "--reward", "seam", "--reward", "brightness",
                            "--reward-weights", "1,0.5", "--reward-norm", "sum", "-q"], env={"COLUMNS": "2000"})
    rows = list(csv.DictReader(open(d / "imgs_scores.csv")))
    assert r.exit_code == 1 and "1 of 5 images failed" in r.stderr  # the broken one is reported, the rest scored
    assert [k for k in rows[0]] == ["image", "mask", "seam", "brightness", "advantage"] and len(rows) == 4
    s = torch.tensor([[float(row["seam"]) for row in rows], [float(row["brightness"]) for row in rows]])
    assert [float(row["advantage"]) for row in rows] == pytest.approx(combine(s, (1.0, 0.5), None, "sum").tolist())
