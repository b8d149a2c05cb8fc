"""``prefpaint generate-dataset``: the paper's recipe in the official layout, resumable, readable by train reward."""

from __future__ import annotations

import json

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from prefpaint_sdk import run_generate_dataset
from prefpaint_sdk.reward import read_reward_data
from prefpaint_sdk.testing import write_png_bomb

runner = CliRunner()


def _images(root, n=2):
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(root / f"photo {i}.png")
    return root


def test_generate_rate_import_gives_the_layout_train_reward_reads(tmp_path, tiny_inpainter):
    from prefpaint_apps.rate import import_ratings, scan_dataset, write_rating_page

    images = _images(tmp_path / "imgs")
    write_png_bomb(images / "bomb.png")
    data = tmp_path / "data"
    s = run_generate_dataset(images, data, per_image=2, masks=["warp", "outpaint-strip"], steps=2,
                             inpainter=tiny_inpainter)
    assert (s.total, s.done, s.failed) == (6, 4, 2)  # the bomb's two prompts fail alone
    names = sorted(p.name for p in (data / "inpaint").iterdir())
    assert names == sorted(f"photo_{i}-{k}_{c}.png" for i in range(2) for k in ("warp", "outpaint-strip")
                           for c in range(2))
    rows = {r["id"]: r for r in map(json.loads, (data / "results.jsonl").read_text().splitlines())}
    r = rows["photo_0-warp"]
    assert r["seeds"] == [r["seeds"][0], r["seeds"][0] + 1] and r["drawn"] == "warp" and 0 < r["hole_fraction"] < 1
    assert rows["bomb-warp"]["status"] == "error" and "pixels" in rows["bomb-warp"]["error"]
    mask = np.array(Image.open(data / "masks" / "photo_0-warp_mask.png"))
    color = np.array(Image.open(data / "masks_color" / "photo_0-warp_mask_color.png"))
    assert mask.shape == (40, 56) and (color[mask > 127] == 0).all()

    # the same command again finds everything done (and the same masks: they follow the seed and the name)
    stamps = {p: p.stat().st_mtime_ns for p in (data / "inpaint").iterdir()}
    again = run_generate_dataset(images, data, per_image=2, masks=["warp", "outpaint-strip"], steps=2,
                                 inpainter=tiny_inpainter)
    assert again.skipped == 4 and {p: p.stat().st_mtime_ns for p in stamps} == stamps

    write_rating_page(data)
    ds = scan_dataset(data)
    assert [len(p.candidates) for p in ds.prompts] == [2, 2, 2, 2]
    f = tmp_path / "r.json"
    f.write_text(json.dumps({"format": "prefpaint-ratings", "rater": "r", "ratings": {
        k: {"structure": i % 8, "texture": 3, "overall": (2 * i) % 8} for i, k in enumerate(ds.keys)}}))
    import_ratings(data, [f])
    got = read_reward_data(data)
    assert len(got.samples) == 8 and len(got.groups) == 4


def test_cli_generate_dataset(tmp_path, tiny_pipeline_dir):
    from prefpaint_cli.main import app

    images = _images(tmp_path / "imgs", 1)
    argv = ["generate-dataset", images, "-o", tmp_path / "data", "--per-image", "2", "--masks", "outpaint-square",
            "--model", tiny_pipeline_dir, "--steps", "2", "--device", "cpu", "--dtype", "float32", "--offline"]
    r = runner.invoke(app, [str(a) for a in argv], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    assert "1 items on 1 process: 1 done" in r.stderr and "prefpaint rate" in r.stderr
    assert sorted(p.name for p in (tmp_path / "data" / "inpaint").iterdir()) == [
        "photo_0-outpaint-square_0.png", "photo_0-outpaint-square_1.png"]
