"""The alignment data is checked from file headers before any model loads: bad files are skipped, not fatal."""

import numpy as np
import pytest
from PIL import Image

from prefpaint_sdk import AlignConfig, Aligner, DataError, InvalidInputError
from prefpaint_sdk.align.data import AlignDataset
from prefpaint_sdk.testing import write_png_bomb


def _data(root, n=3):
    (root / "images").mkdir(parents=True)
    for i in range(n):
        Image.fromarray(np.full((40, 48, 3), 30 * i, np.uint8)).save(root / "images" / f"{i:02d}.png")
    return root


def test_a_bomb_and_a_mismatched_mask_are_skipped_and_the_rest_used(tmp_path, caplog):
    root = _data(tmp_path / "d")
    write_png_bomb(root / "images" / "bomb.png")
    (root / "masks").mkdir()
    Image.new("L", (10, 10), 255).save(root / "masks" / "01.png")  # 10x10 mask for a 48x40 image
    ds = AlignDataset(root, None, max_bad_fraction=0.5)  # 2 of 4 skipped: within a raised limit (issue 19)
    assert [name for _, _, name in ds.entries] == ["00", "02"]
    assert ds.sizes[root / "images" / "00.png"] == (48, 40)
    text = caplog.text
    assert "bomb.png" in text and "over the limit" in text and "01.png" in text and "is 10x10" in text
    ds.resolution = 32
    item = ds.get(0)
    assert item.image.size == (32, 32) and item.mask.shape == (32, 32)


def test_no_usable_image_is_one_error(tmp_path):
    root = tmp_path / "d"
    (root / "images").mkdir(parents=True)
    for i in range(3):
        write_png_bomb(root / "images" / f"b{i}.png")
    with pytest.raises(DataError, match=r"none of the 3 images can be used \(first: image '.*b0.png' is 100000x100000"):
        AlignDataset(root, 64)


def test_steps_beyond_the_scheduler_are_refused_before_the_weights_load(tmp_path, tiny_pipeline_dir, monkeypatch):
    import diffusers

    def no_load(*a, **k):  # reaching the weights would be the bug
        raise AssertionError("the pipeline was loaded")

    monkeypatch.setattr(diffusers.StableDiffusionInpaintPipeline, "from_pretrained", no_load)
    cfg = AlignConfig().replace(num_steps=1000)
    with pytest.raises(InvalidInputError, match=r"steps must be ≤ 999 for this model's scheduler \(1000 training timesteps\), got 1000"):
        Aligner.from_pretrained(tiny_pipeline_dir, "brightness", cfg, _data(tmp_path / "d"), tmp_path / "run")
