"""Running an extension with a fake inpainter: sizes, original pixels, feather band, seeds, sidecar, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _extend_fakes import FILL, SEAM_FILL, FakeInpainter
from PIL import Image
from prefpaint_apps.outpaint import derive_seed, extend
from scipy.ndimage import distance_transform_edt

from prefpaint_sdk import InvalidInputError, OutputExistsError, PrefPaintError


def _photo(w: int, h: int, seed: int = 0) -> np.ndarray:
    # values 0..199 only: never magenta or pure green, the fakes' fill colours
    return np.random.default_rng(seed).integers(0, 200, (h, w, 3), dtype=np.uint8)


def _split_original(result, original: np.ndarray, feather: int):
    """(original region of the output, mask of original pixels inside the feather band)."""
    out = np.asarray(result.image)
    b = result.plan.image_box
    W, H = result.plan.canvas_size
    is_orig = np.zeros((H, W), bool)
    is_orig[b.y0:b.y1, b.x0:b.x1] = True
    # distance of each original pixel to the nearest new pixel; the band is where the SDK feather is > 0
    dist = distance_transform_edt(is_orig)[b.y0:b.y1, b.x0:b.x1]
    band = dist < feather + 1
    return out[b.y0:b.y1, b.x0:b.x1], band


@pytest.mark.parametrize(
    "size, kwargs",
    [
        ((40, 30), dict(ratio=2.0)),
        ((37, 23), dict(ratio=2.5)),  # odd sizes
        ((50, 20), dict(ratio_x=3.0)),
        ((20, 50), dict(ratio_y=1.7, anchor="top")),
        ((33, 33), dict(left=5, right=40, top=0, bottom=9)),
    ],
)
def test_exact_size_and_original_pixels_kept_outside_the_feather_band(size, kwargs):
    original = _photo(*size)
    fake = FakeInpainter(resolution=64)
    result = extend(fake, original, feather=3, seed=0, **kwargs)
    assert result.image.size == result.plan.canvas_size
    assert result.image.mode == "RGB"
    kept, band = _split_original(result, original, feather=3)
    # byte for byte outside the band
    np.testing.assert_array_equal(kept[~band], original[~band])
    # the seam is really feathered: band pixels moved towards the fill colour, none outside it did
    changed = (kept != original).any(-1)
    assert changed[band].any() and not changed[~band].any()
    # every new pixel was generated (the fake fills magenta; nothing left black from the blank canvas)
    out = np.asarray(result.image)
    b = result.plan.image_box
    new = np.ones(out.shape[:2], bool)
    new[b.y0:b.y1, b.x0:b.x1] = False
    assert (out[new] == FILL).all()
    assert len(fake.calls) == result.plan.num_steps == len(result.steps)


def test_feather_zero_changes_no_original_pixel():
    original = _photo(30, 30)
    result = extend(FakeInpainter(64), original, ratio=2, feather=0, seed=1)
    kept, _ = _split_original(result, original, feather=0)
    np.testing.assert_array_equal(kept, original)


@pytest.mark.parametrize("feather", [1, 4, 9])
def test_feather_band_width_is_bounded(feather):
    original = _photo(48, 48)
    result = extend(FakeInpainter(64), original, ratio_x=2, feather=feather, seed=2)
    kept, _ = _split_original(result, original, feather)
    changed_cols = np.flatnonzero((kept != original).any(-1).any(0))
    # extension is left and right only: changed columns hug the two edges, at most `feather` deep
    assert changed_cols.size == 2 * feather
    assert set(changed_cols) == set(range(feather)) | set(range(48 - feather, 48))
    # and no row changed that would mean a top/bottom seam
    result_rows = (kept != original).any(-1).any(1)
    assert result_rows.all()  # every row touches the left/right seam


def test_each_call_sees_its_window_with_real_context_and_the_right_mask():
    original = _photo(40, 32)
    fake = FakeInpainter(64)
    result = extend(fake, original, ratio=2, seed=5, feather=2, steps=7, prompt="sky", num_candidates=2)
    b = result.plan.image_box
    for call, step in zip(fake.calls, result.plan.steps):
        win, new = step.window, step.new
        assert call["size"] == (win.width, win.height)
        expected = np.zeros((win.height, win.width), bool)
        for new in step.parts:  # a box, or the boxes of a corner step's L-shape
            expected[new.y0 - win.y0:new.y1 - win.y0, new.x0 - win.x0:new.x1 - win.x0] = True
        np.testing.assert_array_equal(call["mask"], expected)
        assert call["crop_margin"] < 0  # the window already is the model's view: no second crop
        assert call["mask_blur"] == 2 and call["steps"] == 7 and call["prompt"] == "sky"
        assert call["num_candidates"] == 2 and call["strength"] == 1.0
        # where the window overlaps the original, the model sees the original pixels
        # (minus what earlier steps feathered, which is within 2 px of the image edge)
        ox0, oy0 = max(win.x0, b.x0 + 2), max(win.y0, b.y0 + 2)
        ox1, oy1 = min(win.x1, b.x1 - 2), min(win.y1, b.y1 - 2)
        if ox0 < ox1 and oy0 < oy1:
            seen = call["image"][oy0 - win.y0:oy1 - win.y0, ox0 - win.x0:ox1 - win.x0]
            np.testing.assert_array_equal(seen, original[oy0 - b.y0:oy1 - b.y0, ox0 - b.x0:ox1 - b.x0])
    assert [c["seed"] for c in fake.calls] == result.seeds == [derive_seed(5, i) for i in range(result.plan.num_steps)]
    assert len(set(result.seeds)) == len(result.seeds)


@pytest.mark.parametrize("mode", ["replicate", "blur", "grey"])
def test_prefill_modes_fill_only_the_new_area(mode):
    original = _photo(40, 40)
    fake = FakeInpainter(64)
    extend(fake, original, ratio_x=1.5, prefill=mode, seed=0, feather=0)
    call, mask = fake.calls[0], fake.calls[0]["mask"]
    img = call["image"]
    if mode == "grey":
        assert (img[mask] == 128).all()
    elif mode == "replicate":
        # a left-side strip: each new pixel copies the first known pixel of its row
        first_known = np.argmax(~mask, axis=1)
        rows = np.arange(mask.shape[0])
        for y in rows[:5]:
            assert (img[y][mask[y]] == img[y, first_known[y]]).all()
    else:
        assert img[mask].std() < img[~mask].std()  # blurred: smoother than the photo
    assert not (img[mask] == FILL).all(-1).any()


def test_seam_pass_runs_once_per_step_at_low_strength_within_the_band():
    original = _photo(40, 40)
    fake = FakeInpainter(64)
    seen = []
    result = extend(fake, original, ratio=2, seed=3, feather=4, seam_pass=True, seam_strength=0.25,
                    progress=lambda i, n: seen.append((i, n)))
    n = result.plan.num_steps
    assert len(fake.calls) == 2 * n == result.model_calls
    assert [c["strength"] for c in fake.calls] == [1.0, 0.25] * n
    assert all(s.seam_seed == derive_seed(3, s.index, 1) for s in result.steps)
    assert seen == [(i, 2 * n) for i in range(1, 2 * n + 1)]
    kept, band = _split_original(result, original, feather=4)
    np.testing.assert_array_equal(kept[~band], original[~band])
    assert (np.asarray(result.image) == SEAM_FILL).all(-1).any()  # the seam pass really re-rendered


def test_same_seed_same_image_other_seed_other_image():
    original = _photo(30, 20)
    a = extend(FakeInpainter(64, noise=True), original, ratio=2, seed=11)
    b = extend(FakeInpainter(64, noise=True), original, ratio=2, seed=11)
    c = extend(FakeInpainter(64, noise=True), original, ratio=2, seed=12)
    assert a.image.tobytes() == b.image.tobytes() and a.seeds == b.seeds
    assert a.image.tobytes() != c.image.tobytes()


def test_no_seed_draws_one_and_records_it():
    original = _photo(30, 20)
    a = extend(FakeInpainter(64, noise=True), original, ratio=2)
    again = extend(FakeInpainter(64, noise=True), original, ratio=2, seed=a.seed)
    assert a.image.tobytes() == again.image.tobytes()


def test_scores_and_best_candidates_are_recorded():
    original = _photo(30, 20)
    result = extend(FakeInpainter(64, scores=True), original, ratio=2, seed=4, num_candidates=3)
    for rec in result.steps:
        assert rec.scores == [float((rec.seed + k) % 7) for k in range(3)]
        assert rec.best_index == int(np.argmax(rec.scores))
    assert result.scores == [r.scores for r in result.steps]


def test_window_defaults_to_the_inpainter_resolution():
    result = extend(FakeInpainter(32), _photo(30, 20), ratio=3, seed=0)
    assert result.plan.window == 32
    assert max(max(s.window.width, s.window.height) for s in result.plan.steps) <= 32
    assert result.params["feather"] == 1  # window // 32


def test_accepts_paths_pil_and_arrays(tmp_path):
    original = _photo(24, 16)
    path = tmp_path / "in.png"
    Image.fromarray(original).save(path)
    outs = [extend(FakeInpainter(64), src, ratio=2, seed=0).image.tobytes()
            for src in (original, Image.fromarray(original), path, str(path))]
    assert len(set(outs)) == 1


def test_save_writes_image_and_sidecar_and_never_overwrites(tmp_path):
    result = extend(FakeInpainter(64, scores=True), _photo(24, 16), ratio=2, seed=9, num_candidates=2)
    out = tmp_path / "wide.png"
    image_path, json_path = result.save(out, extra={"input": "in.png"})
    assert Image.open(image_path).size == (48, 32)
    meta = json.loads(json_path.read_text())
    assert json_path.name == "wide.json"
    assert meta["seed"] == 9 and meta["input"] == "in.png" and meta["model_id"] == "fake/inpainter"
    assert meta["plan"]["canvas_size"] == [48, 32] and len(meta["plan"]["steps"]) == len(meta["steps"])
    assert [s["seed"] for s in meta["steps"]] == result.seeds
    assert meta["steps"][0]["scores"] == result.steps[0].scores
    with pytest.raises(OutputExistsError, match=r"wide\.png' already exists; pass overwrite=True"):
        result.save(out)
    # the sidecar alone existing is refused too, before the image is written
    (tmp_path / "b.json").write_text("{}")
    with pytest.raises(OutputExistsError, match=r"b\.json' already exists"):
        result.save(tmp_path / "b.png")
    assert not (tmp_path / "b.png").exists()
    result.save(out, overwrite=True)
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files


# --------------------------------------------------------------------------------------------------
# Bad input


def test_unreadable_and_missing_images(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    with pytest.raises(InvalidInputError, match=r"bad\.png' is not a readable image"):
        extend(FakeInpainter(64), bad, ratio=2)
    with pytest.raises(InvalidInputError, match=r"missing\.png' does not exist"):
        extend(FakeInpainter(64), tmp_path / "missing.png", ratio=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(ratio=0.8), r"ratio must be >= 1 .*got 0\.8"),
        (dict(ratio=1), r"adds no pixels"),
        (dict(left=0, right=0), r"zero on every side"),
        (dict(top=-3), r"top must be >= 0 pixels .*got -3"),
        (dict(ratio=2, max_size=50), r"canvas would be 60x40 px, beyond max_size=50"),
        (dict(ratio=2, feather=-1), r"feather must be a whole number >= 0, got -1"),
        (dict(ratio=2, prefill="mirror"), r"prefill must be one of replicate, blur, grey; got 'mirror'"),
        (dict(ratio=2, num_candidates=0), r"num_candidates must be a whole number >= 1, got 0"),
        (dict(ratio=2, steps=0), r"steps must be a whole number >= 1, got 0"),
        (dict(ratio=2, seed=-1), r"seed must be a whole number >= 0, got -1"),
        (dict(ratio=2, seam_pass=True, seam_strength=1.0), r"seam_strength must lie in \(0, 1\)"),
        (dict(ratio=2, seam_pass=True, steps=3, seam_strength=0.3), r"steps=3 at seam_strength=0\.3 leaves the seam pass no"),
        (dict(ratio=2, steps=1, strength=0.5), r"steps=1 at strength=0\.5 leaves no denoising step; raise steps to at least 2"),
        (dict(ratio=2, strength=0), r"strength must lie in \(0, 1\], got 0"),
        (dict(ratio=2, window=0), r"window must be a whole number >= 8, got 0"),
    ],
)
def test_bad_arguments_fail_before_any_model_call(kwargs, match):
    fake = FakeInpainter(64)
    with pytest.raises(InvalidInputError, match=match):
        extend(fake, _photo(30, 20), **kwargs)
    assert fake.calls == []


def test_an_inpainter_returning_the_wrong_size_is_reported():
    class Shrinking(FakeInpainter):
        def __call__(self, image, mask, **kw):
            res = super().__call__(image, mask, **kw)
            res.image = res.image.resize((8, 8))
            return res

    with pytest.raises(PrefPaintError, match=r"returned a 8x8 image for a .* window \(step 0\)"):
        extend(Shrinking(64), _photo(30, 20), ratio=2, seed=0)


def test_an_inpainter_that_repaints_its_whole_window_still_cannot_touch_originals_beyond_the_band():
    # The guarantee must not rest on the inpainter: extend writes back only the new area and its band.
    class Repainting(FakeInpainter):
        def __call__(self, image, mask, **kw):
            res = super().__call__(image, mask, **kw)
            res.image = Image.new("RGB", res.image.size, FILL)
            return res

    original = _photo(40, 40)
    result = extend(Repainting(64), original, ratio=2, feather=3, seed=0, seam_pass=True)
    kept, band = _split_original(result, original, feather=3)
    np.testing.assert_array_equal(kept[~band], original[~band])
    assert (kept[band] == FILL).all()  # inside the band this inpainter's pixels were taken as given


def test_corner_steps_paste_exactly_their_l_shape_and_its_feather_band():
    # 64 px image, ratio 1.5, 64 px windows at step_frac 0.5: four corner steps with L-shaped new areas
    from prefpaint_apps.outpaint.blend import reach

    original = _photo(64, 64)
    calls: list[np.ndarray] = []

    class Recording(FakeInpainter):
        def __call__(self, image, mask, **kw):
            res = super().__call__(image, mask, **kw)
            res.image = Image.new("RGB", res.image.size, FILL)  # repaints its whole window
            calls.append(np.asarray(mask).astype(bool))
            return res

    result = extend(Recording(64), original, ratio=1.5, step_frac=0.5, feather=2, seed=0)
    assert result.plan.num_steps == 4 and all(s.extra for s in result.plan.steps)
    meta = result.to_dict()
    assert all("new_extra" in s for s in meta["steps"])
    for mask, step in zip(calls, result.plan.steps):
        win = step.window
        expected = np.zeros((win.height, win.width), bool)
        for p in step.parts:
            expected[p.y0 - win.y0:p.y1 - win.y0, p.x0 - win.x0:p.x1 - win.x0] = True
        np.testing.assert_array_equal(mask, expected)
    # only new pixels and the feather band around them changed: the original is intact beyond 2 px
    kept, band = _split_original(result, original, feather=2)
    np.testing.assert_array_equal(kept[~band], original[~band])
    # the first step pasted no further than its L-shape's band
    first = result.plan.steps[0]
    assert calls and reach(calls[0], 2).sum() < first.window.width * first.window.height
    out = np.asarray(result.image)
    b = result.plan.image_box
    new = np.ones(out.shape[:2], bool)
    new[b.y0:b.y1, b.x0:b.x1] = False
    assert (out[new] == FILL).all()
