"""``prefpaint masks generate``: deterministic with a seed, coverage within the documented ranges, errors."""

import json
import math

import numpy as np
import pytest
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk.evaluation import mask_for, proxy_depth

runner = CliRunner()


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(12):
        Image.fromarray(rng.integers(0, 256, (48, 72, 3), dtype=np.uint8)).save(folder / f"im{i:02d}.png")
    return folder


def _gen(images, out, *args):
    r = runner.invoke(app, ["masks", "generate", str(images), "-o", str(out), "-q", *args])
    return r


def _masks(folder):
    return {p.stem: np.asarray(Image.open(p)) > 127 for p in sorted(folder.glob("*.png"))}


def test_deterministic_with_a_seed(images, tmp_path):
    for kind in ("strokes", "warp", "outpaint"):
        a, b, c = (tmp_path / f"{kind}{x}" for x in "abc")
        assert _gen(images, a, "--kind", kind, "--seed", "3").exit_code == 0
        assert _gen(images, b, "--kind", kind, "--seed", "3").exit_code == 0
        assert _gen(images, c, "--kind", kind, "--seed", "4").exit_code == 0
        ma, mb, mc = _masks(a), _masks(b), _masks(c)
        assert len(ma) == 12 and all(np.array_equal(ma[k], mb[k]) for k in ma)
        assert any(not np.array_equal(ma[k], mc[k]) for k in ma)
        # A mask depends on the image's name, not on the other files: one image alone gets the same mask.
        single = tmp_path / f"{kind}single"
        assert _gen(images / "im05.png", single, "--kind", kind, "--seed", "3").exit_code == 0
        assert np.array_equal(_masks(single)["im05"], ma["im05"])


def _square_fill_range(h, w, lo=0.15, hi=0.25):
    # The kept square's side is rounded to whole pixels, which widens the documented range by half a pixel.
    return 1 - (math.sqrt(hi * h * w) + 0.5) ** 2 / (h * w), 1 - (math.sqrt(lo * h * w) - 0.5) ** 2 / (h * w)


@pytest.mark.parametrize("kind,check", [
    ("outpaint-square", lambda m, c: _square_fill_range(48, 72)[0] <= c <= _square_fill_range(48, 72)[1]),
    # whole columns are kept or filled; 35-40% of the width kept, up to a pixel of rounding
    ("outpaint-strip", lambda m, c: 0.60 - 1 / 72 <= c <= 0.65 + 1 / 72 and all(col.all() or not col.any() for col in m.T)),
    ("strokes", lambda m, c: 0 < c <= 0.75),
    ("warp", lambda m, c: 0 < c <= 0.4),
])
def test_coverage_within_documented_ranges(images, tmp_path, kind, check):
    out = tmp_path / "m"
    r = _gen(images, out, "--kind", kind)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "masks.json").read_text())
    assert meta["kind"] == kind and len(meta["masks"]) == 12
    for rec in meta["masks"]:
        m = np.asarray(Image.open(out / rec["mask"])) > 127
        assert m.shape == (48, 72)
        assert rec["coverage"] == pytest.approx(m.mean())
        assert check(m, m.mean()), (kind, rec)
    if kind == "warp":
        assert {rec["depth"] for rec in meta["masks"]} == {"proxy"}


def test_warp_uses_given_depth(images, tmp_path):
    depth = tmp_path / "depth"
    depth.mkdir()
    # A near box in front of a far wall: the camera move opens disocclusions the flat proxy cannot.
    d = np.full((48, 72), 10.0)
    d[14:34, 24:48] = 2.0
    np.save(depth / "im00.npy", d)
    out = tmp_path / "m"
    assert _gen(images, out, "--kind", "warp", "--depth", str(depth)).exit_code == 0
    meta = {r["image"].split("/")[-1]: r for r in json.loads((out / "masks.json").read_text())["masks"]}
    assert meta["im00.png"]["depth"].endswith("im00.npy") and meta["im01.png"]["depth"] == "proxy"
    got = _masks(out)["im00"]
    expected, _ = mask_for("warp", (72, 48), "im00", 0, d)
    assert np.array_equal(got, expected)
    assert not np.array_equal(expected, mask_for("warp", (72, 48), "im00", 0, None)[0])


def test_proxy_depth_is_a_tilted_plane():
    d = proxy_depth(5, 3)
    assert d.shape == (5, 3) and d[0, 0] == pytest.approx(5.0) and d[-1, 0] == pytest.approx(1.0)
    assert np.all(np.diff(1 / d[:, 0]) > 0)


def test_errors(images, tmp_path):
    out = tmp_path / "m"
    r = _gen(images, out, "--kind", "circles")
    assert r.exit_code == 2 and "mask kind 'circles' is unknown" in r.output
    assert _gen(images, out, "--kind", "strokes").exit_code == 0
    r = _gen(images, out, "--kind", "strokes")
    assert r.exit_code == 2 and "already exists" in r.output and "--overwrite" in r.output
    assert _gen(images, out, "--kind", "strokes", "--overwrite").exit_code == 0
    r = _gen(tmp_path / "nowhere", tmp_path / "m2", "--kind", "strokes")
    assert r.exit_code == 2 and "does not exist" in r.output
    bad = tmp_path / "baddepth"
    bad.mkdir()
    np.save(bad / "im00.npy", np.zeros((10, 10)))
    r = _gen(images, tmp_path / "m3", "--kind", "warp", "--depth", str(bad))
    assert r.exit_code == 2 and "is 10x10 but its image is 72x48" in r.output


def test_unreadable_images_are_reported_and_skipped(images, tmp_path):
    (images / "broken[red].png").write_bytes(b"not an image")
    out = tmp_path / "m"
    r = _gen(images, out, "--kind", "strokes")
    assert r.exit_code == 1, r.output  # the rest were written; the exit code says one failed
    flat = "".join(r.output.split())  # rich wraps the log line
    assert "failed:" in flat and "broken[red].png'" in flat and "Traceback" not in r.output
    assert "1of13imagesskipped" in flat
    assert sorted(p.name for p in out.iterdir()) == sorted([f"im{i:02d}.png" for i in range(12)] + ["masks.json"])
    meta = json.loads((out / "masks.json").read_text())
    assert len(meta["masks"]) == 12 and [s["image"].split("/")[-1] for s in meta["skipped"]] == ["broken[red].png"]


def test_output_errors_are_one_line_and_write_nothing(images, tmp_path):
    (tmp_path / "afile").write_text("x")
    r = _gen(images, tmp_path / "afile", "--kind", "strokes")
    assert r.exit_code == 2 and r.output.strip().splitlines() == [
        f"error: output folder '{tmp_path / 'afile'}' is a file; pass a folder path, or remove the file"]
    r = _gen(images, tmp_path / "afile" / "m", "--kind", "strokes")
    assert r.exit_code == 2 and "'afile' is a file, not a folder" in r.output.replace(str(tmp_path) + "/", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "imgs"]
    assert (tmp_path / "afile").read_text() == "x"
