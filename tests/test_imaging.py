"""Contract tests for prefpaint_sdk.imaging: every input kind, every mask format, exact compositing."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from prefpaint_sdk import InvalidInputError, load_image, load_mask
from prefpaint_sdk.imaging import composite, context_box, dilate_mask, masked_image, working_size
from prefpaint_sdk.testing import write_png_bomb
from prefpaint_sdk.utils import feather_alpha, fit_mask_to_image

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (37, 53, 3), dtype=np.uint8)
HOLE = np.zeros((37, 53), bool)
HOLE[10:25, 12:40] = True


def test_image_sources_agree(tmp_path):
    path = tmp_path / "a.png"
    Image.fromarray(RGB).save(path)
    as_tensor = torch.from_numpy(RGB).permute(2, 0, 1).float() / 255
    variants = [str(path), path, Image.fromarray(RGB), RGB, RGB.astype(np.float32) / 255, as_tensor, as_tensor[None]]
    for v in variants:
        out = np.asarray(load_image(v))
        assert out.shape == RGB.shape and out.dtype == np.uint8
        assert np.abs(out.astype(int) - RGB).max() <= 1, type(v)


def test_grey_and_rgba_images_become_rgb():
    grey = load_image(RGB[..., 0])
    assert grey.mode == "RGB" and np.array_equal(np.asarray(grey)[..., 1], RGB[..., 0])
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 255, np.uint8)])
    assert np.array_equal(np.asarray(load_image(rgba)), RGB)


def _mask_variants(tmp_path):
    white = HOLE.astype(np.uint8) * 255
    rgb = np.repeat(white[..., None], 3, axis=2)  # the official example's 3-channel 0/255 mask
    rgba = np.dstack([rgb, np.full(HOLE.shape, 255, np.uint8)])
    one_bit = Image.fromarray(white).convert("1")
    p = tmp_path / "m1.png"
    one_bit.save(p)
    return {
        "L": Image.fromarray(white, "L"),
        "RGB": Image.fromarray(rgb, "RGB"),
        "RGBA": Image.fromarray(rgba, "RGBA"),
        "1-bit file": p,
        "bool": HOLE,
        "float": HOLE.astype(np.float32),
        "grey 60%": np.where(HOLE, 153, 40).astype(np.uint8),  # >= 50% of the range counts as white
    }


def test_mask_formats_give_the_same_region(tmp_path):
    for name, m in _mask_variants(tmp_path).items():
        assert np.array_equal(load_mask(m), HOLE), name
    inverted = Image.fromarray((~HOLE).astype(np.uint8) * 255)
    assert np.array_equal(load_mask(inverted, invert=True), HOLE)
    alpha = np.dstack([RGB, np.where(HOLE, 0, 255).astype(np.uint8)])  # holes erased to transparency
    assert np.array_equal(load_mask(alpha, from_alpha=True), HOLE)


def test_bad_sources(tmp_path):
    with pytest.raises(InvalidInputError, match="does not exist"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"not an image at all")
    with pytest.raises(InvalidInputError, match="not a readable image"):
        load_image(tmp_path / "bad.png")
    with pytest.raises(InvalidInputError, match="is a folder"):
        load_image(tmp_path)
    with pytest.raises(InvalidInputError, match="empty"):
        load_image(np.zeros((0, 5, 3), np.uint8))
    with pytest.raises(InvalidInputError, match=r"must lie in \[0, 1\]"):
        load_image(RGB.astype(np.float32))
    with pytest.raises(InvalidInputError, match="unsupported mode 'HSV'"):
        load_image(Image.new("HSV", (4, 4)))
    with pytest.raises(InvalidInputError, match="expected HxW"):
        load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(InvalidInputError, match="not supported"):
        load_image(12)
    with pytest.raises(InvalidInputError, match="no alpha channel"):
        load_mask(HOLE, from_alpha=True)


def test_mask_size_rules(caplog):
    small = HOLE[::1, ::1]
    assert fit_mask_to_image(small, (53, 37)) is small
    with pytest.raises(InvalidInputError, match=r"mask is 53x37 but image is 60x60; pass resize_mask=True"):
        fit_mask_to_image(HOLE, (60, 60))
    assert fit_mask_to_image(HOLE, (60, 60), resize=True).shape == (60, 60)
    big = np.kron(HOLE, np.ones((2, 2), bool))  # same aspect ratio: resized with a warning
    with caplog.at_level(logging.WARNING, logger="prefpaint_sdk"):
        assert np.array_equal(fit_mask_to_image(big, (53, 37)), HOLE)
    assert "resizing the mask" in caplog.text


def test_feather_and_composite_keep_far_pixels_exact():
    alpha = feather_alpha(HOLE, 4)
    assert alpha[HOLE].min() == 1.0
    band = dilate_mask(HOLE, 5)
    assert (alpha[~band] == 0).all() and (alpha[band & ~HOLE] > 0).any()
    gen = Image.fromarray(255 - RGB)
    out = np.asarray(composite(Image.fromarray(RGB), gen, alpha))
    assert np.array_equal(out[~band], RGB[~band])
    assert np.array_equal(out[HOLE], 255 - RGB[HOLE])
    with pytest.raises(InvalidInputError, match="equal sizes"):
        composite(Image.fromarray(RGB), gen.resize((10, 10)), alpha)


def test_context_box_and_working_size():
    mask = np.zeros((2000, 3000), bool)
    mask[900:1100, 2800:2990] = True
    box = context_box(mask, margin=64, min_side=512)
    assert (box.width, box.height) == (512, 512)
    assert 0 <= box.x0 and box.x1 <= 3000 and box.x0 <= 2800 and box.x1 >= 2990  # shifted inside, not shrunk
    narrow = np.zeros((333, 517), bool)
    narrow[100:200, 50:400] = True
    box = context_box(narrow, margin=128, min_side=512)
    assert box.height == 333 and box.width == 517
    assert working_size(517, 333, 512) == (512, 328)
    assert working_size(64, 64, 64) == (64, 64)


def test_masked_image_blanks_the_hole():
    out = np.asarray(masked_image(Image.fromarray(RGB), HOLE))
    assert (out[HOLE] == 0).all() and np.array_equal(out[~HOLE], RGB[~HOLE])


# --------------------------------------------------------------------------------------------------
# The pixel limit


@pytest.fixture
def limit_restored(monkeypatch):
    from prefpaint_sdk import imaging

    monkeypatch.delenv(imaging.MAX_PIXELS_ENV, raising=False)
    imaging.set_max_pixels(None)
    yield imaging
    monkeypatch.delenv(imaging.MAX_PIXELS_ENV, raising=False)
    imaging.set_max_pixels(None)


def test_bomb_header_is_refused_without_decoding(tmp_path, limit_restored):
    import time
    import tracemalloc

    from prefpaint_sdk import ImageTooLargeError
    from prefpaint_sdk.imaging import check_image_file

    bomb = tmp_path / "bomb.png"
    write_png_bomb(bomb, 100_000, 100_000)
    assert bomb.stat().st_size < 100
    for load in (check_image_file, load_image, load_mask):
        tracemalloc.start()
        t0 = time.perf_counter()
        with pytest.raises(ImageTooLargeError) as info:
            load(bomb)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert elapsed < 0.5 and peak < 5_000_000, (load.__name__, elapsed, peak)
        msg = str(info.value)
        assert str(bomb) in msg and "is 100000x100000 (10,000,000,000 pixels), over the limit" in msg and "200,000,000" in msg and "max_pixels" in msg
        assert info.value.exit_code == 2 and info.value.param == "max_pixels"


def test_valid_144_megapixel_header_passes_by_default(tmp_path, limit_restored):
    from prefpaint_sdk.imaging import DEFAULT_MAX_PIXELS, check_image_file

    big = tmp_path / "big.png"
    write_png_bomb(big, 12_000, 12_000)
    assert check_image_file(big) == (12_000, 12_000)
    assert DEFAULT_MAX_PIXELS >= 12_000 * 12_000
    # Pillow's own bomb limit follows ours, so Pillow never refuses first with its own message
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def test_limit_is_configurable_by_call_setter_and_env(tmp_path, limit_restored, monkeypatch):
    from prefpaint_sdk import ConfigError, ImageTooLargeError
    from prefpaint_sdk.imaging import check_image_file, get_max_pixels, set_max_pixels

    path = tmp_path / "a.png"
    Image.fromarray(RGB).save(path)  # 53x37 = 1961 pixels
    assert load_image(path, max_pixels=1961).size == (53, 37)
    with pytest.raises(ImageTooLargeError, match=r"'.*a\.png' is 53x37 \(1,961 pixels\), over the limit of 1,960"):
        load_image(path, max_pixels=1960)

    assert set_max_pixels(1000) == 1000 and get_max_pixels() == 1000 and Image.MAX_IMAGE_PIXELS == 1000
    with pytest.raises(ImageTooLargeError, match="limit of 1,000 pixels"):
        check_image_file(path)
    assert check_image_file(path, max_pixels=5000) == (53, 37)  # a larger per-call limit wins
    set_max_pixels(None)

    monkeypatch.setenv("PREFPAINT_MAX_PIXELS", "1_500")
    assert get_max_pixels() == 1500
    with pytest.raises(ImageTooLargeError, match="limit of 1,500 pixels"):
        load_mask(path)
    monkeypatch.setenv("PREFPAINT_MAX_PIXELS", "lots")
    with pytest.raises(ConfigError, match="PREFPAINT_MAX_PIXELS must be a whole number"):
        get_max_pixels()
    for bad in (0, -5, 1.5, float("nan"), "x", True):
        with pytest.raises(ConfigError, match="max_pixels"):
            set_max_pixels(bad)


def test_limit_holds_for_arrays_tensors_and_pil_images_before_conversion(limit_restored):
    from prefpaint_sdk import ImageTooLargeError

    big = np.zeros((40, 60), np.float64)  # a float array would be copied several times by conversion
    for src, name in [
        (big, "ndarray of shape (40, 60)"),
        (np.zeros((40, 60, 3), np.uint8), "ndarray of shape (40, 60, 3)"),
        (torch.zeros(1, 3, 40, 60), "Tensor of shape (1, 3, 40, 60)"),
        (Image.new("RGB", (60, 40)), "PIL image"),
    ]:
        with pytest.raises(ImageTooLargeError, match=re_escape(name) + r" is 60x40 \(2,400 pixels\)"):
            load_image(src, max_pixels=2399)
        with pytest.raises(ImageTooLargeError, match="mask"):
            load_mask(src, max_pixels=2399)
        assert load_image(src, max_pixels=2400).size == (60, 40)


def re_escape(text: str) -> str:
    import re

    return re.escape(text)


def test_truncated_and_corrupt_files_name_the_file(tmp_path):
    import io

    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, "PNG")
    data = buf.getvalue()
    cut = tmp_path / "cut.png"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InvalidInputError, match=r"image '.*cut\.png' is not a readable image"):
        load_image(cut)
    jpg = tmp_path / "cut.jpg"
    buf = io.BytesIO()
    Image.fromarray(RGB).save(buf, "JPEG")
    jpg.write_bytes(buf.getvalue()[:200])
    with pytest.raises(InvalidInputError, match=r"mask '.*cut\.jpg' is not a readable image"):
        load_mask(jpg)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="empty.png' is not a readable image"):
        load_image(empty)


def test_sixteen_bit_images_convert_with_integer_maths():
    a = np.array([[0, 256, 257, 65535, 12345]], np.uint16)
    im = Image.fromarray(a.astype(np.int32), "I")
    assert im.mode == "I"
    out = np.asarray(load_image(im))[..., 0]
    assert out.tolist() == [[0, 0, 1, 255, 48]]  # floor(v / 257)


def test_float_arrays_convert_in_stripes_exactly(monkeypatch):
    from prefpaint_sdk import imaging

    monkeypatch.setattr(imaging.geometry, "_STRIPE_BYTES", 1000)  # many stripes
    a = np.random.default_rng(3).random((57, 41, 3)).astype(np.float32)
    expected = np.round(np.clip(a, 0, 1) * 255).astype(np.uint8)
    assert np.array_equal(np.asarray(load_image(a)), expected)
    a[50, 3, 1] = 1.5  # out of range in a late stripe: the message reports the whole array's range
    with pytest.raises(InvalidInputError, match=r"must lie in \[0, 1\], got \[[0-9.e-]+, 1.5\]"):
        load_image(a)
    a[50, 3, 1] = np.nan
    with pytest.raises(InvalidInputError, match="NaN or infinite"):
        load_image(a)


def test_generated_masks_respect_the_pixel_limit(limit_restored):
    from prefpaint_sdk import ImageTooLargeError
    from prefpaint_sdk.masks import generate_mask

    with pytest.raises(ImageTooLargeError, match=r"mask to generate is 100000x100000 \(10,000,000,000 pixels\)"):
        generate_mask("stroke", (100_000, 100_000), seed=0)
    assert generate_mask("stroke", (64, 48), seed=0).shape == (48, 64)


def test_striped_geometry_equals_whole_image_maths(monkeypatch):
    """Dilation, feathering and compositing in row stripes give exactly the whole-image results."""
    from scipy.ndimage import distance_transform_edt

    from prefpaint_sdk import imaging
    from prefpaint_sdk.imaging import Box, composite_box, feather_bbox

    monkeypatch.setattr(imaging.geometry, "_STRIPE_BYTES", 3000)  # a few rows per stripe
    rng = np.random.default_rng(7)
    for trial in range(40):
        h, w = (int(v) for v in rng.integers(5, 70, 2))
        mask = rng.random((h, w)) < (0.02 if trial % 3 else 0.4)
        if trial % 5 == 0:
            mask[:] = True
        band, px = float(rng.choice([0, 1, 2.5, 6])), int(rng.choice([0, 1, 4]))
        d = distance_transform_edt(~mask) if mask.any() else np.full((h, w), np.inf)
        assert np.array_equal(dilate_mask(mask, px), d <= px if px and mask.any() else mask)
        ref_alpha = np.clip(1.0 - d.astype(np.float32) / (band + 1.0), 0.0, 1.0) if band else mask.astype(np.float32)
        alpha = feather_alpha(mask, band)
        assert np.array_equal(alpha, ref_alpha), trial
        bb = feather_bbox(mask, band)
        ys, xs = np.nonzero(alpha > 0)
        assert bb is None if not len(xs) else bb.as_tuple() == (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        x0, y0 = int(rng.integers(0, w // 2)), int(rng.integers(0, h // 2))
        for box in (Box(0, 0, w, h), Box(x0, y0, w, h)):
            gen = rng.integers(0, 256, (box.height, box.width, 3), dtype=np.uint8)
            a = ref_alpha[box.y0:box.y1, box.x0:box.x1, None]
            blended = np.clip(np.round(img[box.y0:box.y1, box.x0:box.x1] * (1 - a) + gen * a), 0, 255).astype(np.uint8)
            expected = img.copy()
            expected[box.y0:box.y1, box.x0:box.x1] = np.where(a == 0, img[box.y0:box.y1, box.x0:box.x1], blended)
            out = composite_box(Image.fromarray(img), Image.fromarray(gen), box, mask, band)
            assert np.array_equal(np.asarray(out), expected), (trial, box)
            pasted = composite_box(Image.fromarray(img), Image.fromarray(gen), box, None)
            assert np.array_equal(np.asarray(pasted)[box.y0:box.y1, box.x0:box.x1], gen)
