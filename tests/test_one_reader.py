"""One reader, one runner (issue 24, section 5).

* Every consumer of the data convention (alignment, evaluation, manifest jobs, folder batches, command inputs, reward
  manifests) reads the same folder or manifest the same way: the same ids, the same (image, mask) pairs, the same
  refusals.
* A folder batch is the manifest of its images run by ``jobs.runner``: the same outputs and the same report as the
  manifest that lists them, and an interrupted batch resumes where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from prefpaint_sdk.align.data import AlignDataset
from prefpaint_sdk.data import IMAGE_SUFFIXES, pair_inputs, read_data
from prefpaint_sdk.errors import DataError, InvalidInputError, PrefPaintError
from prefpaint_sdk.evaluation.data import read_eval_data
from prefpaint_sdk.jobs import folder_job, read_job_manifest, run_inpaint_job
from prefpaint_sdk.reward.data import read_reward_data

runner = CliRunner()


def _save(path: Path, value: int, size=(24, 16), mode="RGB") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    Image.fromarray(np.full(shape, value, np.uint8), mode).save(path)


def _hole(path: Path, size=(24, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    m = np.zeros((size[1], size[0]), np.uint8)
    m[4:12, 6:18] = 255
    Image.fromarray(m).save(path)


@pytest.fixture
def layout(tmp_path):
    """``d/images`` (a.png, b.jpg, c.tif, plus things no consumer may read) and ``d/masks`` (a, c)."""
    d = tmp_path / "d"
    _save(d / "images" / "a.png", 10)
    _save(d / "images" / "b.jpg", 20)
    _save(d / "images" / "c.tif", 30)
    _save(d / "images" / ".hidden.png", 40)  # hidden: skipped
    (d / "images" / "folder.png").mkdir()  # a folder with an image's name: skipped
    (d / "images" / "notes.txt").write_text("not an image")
    _hole(d / "masks" / "a.png")
    _hole(d / "masks" / "c.png")
    return d


def _align(root):
    return [(name, img, mask) for img, mask, name in AlignDataset(root, None).entries]


def _eval(root):
    return [(c.name, c.image, c.mask) for c in read_eval_data(root)]


def _reader(root):
    return [(it.id, it.image, it.mask) for it in read_data(root)]


# ------------------------------------------------------------------------------------------------ the matrix
def test_every_consumer_reads_a_folder_alike(layout):
    img, msk = layout / "images", layout / "masks"
    want = [("a", img / "a.png", msk / "a.png"), ("b", img / "b.jpg", None), ("c", img / "c.tif", msk / "c.png")]
    assert _reader(layout) == want
    assert _align(layout) == want
    assert _eval(layout) == want
    # command inputs and folder batches pair images with masks only: the image without a mask is left out, with a warning
    paired = [t for t in want if t[2] is not None]
    pairs, warnings = pair_inputs(img, msk)
    assert [(p.name, p.image, p.mask) for p in pairs] == paired
    items, job_warnings = folder_job(img, msk)
    assert [(it.id, it.image, it.mask) for it in items] == paired
    assert warnings == job_warnings and len(warnings) == 1 and "b.jpg" in warnings[0]
    assert ".tif" in IMAGE_SUFFIXES and ".hidden.png" not in str(want)


def test_every_consumer_reads_a_manifest_alike(layout):
    rows = [{"id": "first", "image": "images/a.png", "mask": "masks/a.png"},
            {"id": "second", "image": "images/c.tif", "mask": "masks/c.png"}]
    (layout / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    want = [("first", layout / "images" / "a.png", layout / "masks" / "a.png"),
            ("second", layout / "images" / "c.tif", layout / "masks" / "c.png")]
    assert _reader(layout) == want
    assert _align(layout) == want
    assert _eval(layout) == want
    assert [(it.id, it.image, it.mask) for it in read_job_manifest(layout / "manifest.jsonl")] == want
    # the reward trainer's manifest is the same file with its own column (a score); its ids are its groups
    scored = layout / "scored" / "manifest.jsonl"
    scored.parent.mkdir()
    scored.write_text("".join(json.dumps({**r, "image": "../" + r["image"], "mask": "../" + r["mask"], "score": 1.0})
                              + "\n" for r in rows))
    with pytest.raises(DataError, match="outside the manifest's folder"):  # its stricter path rule: see below
        read_reward_data(scored)
    (layout / "manifest.jsonl").write_text("".join(json.dumps({**r, "score": float(i), "group": r["id"]}) + "\n"
                                                   for i, r in enumerate(rows)))
    data = read_reward_data(layout / "manifest.jsonl", verify=False)
    assert [(s.group, s.image, s.mask) for s in data.samples] == want


def _dup_stems(d: Path) -> None:
    _save(d / "images" / "a.webp", 11)


def _missing_file(d: Path) -> None:
    (d / "manifest.jsonl").write_text(json.dumps({"id": "x", "image": "images/nope.png", "mask": "masks/a.png"}) + "\n")


def _not_json(d: Path) -> None:
    (d / "manifest.jsonl").write_text(json.dumps({"id": "x", "image": "images/a.png", "mask": "masks/a.png"})
                                      + "\n{oops\n")


def _nan(d: Path) -> None:
    (d / "manifest.jsonl").write_text('{"id": "x", "image": "images/a.png", "mask": "masks/a.png", "seed": NaN}\n')


def _not_object(d: Path) -> None:
    (d / "manifest.jsonl").write_text("[1, 2]\n")


def _path_not_text(d: Path) -> None:
    (d / "manifest.jsonl").write_text(json.dumps({"id": "x", "image": "images/a.png", "mask": 7}) + "\n")


# (setup, what every refusal names, whether a job refuses it too): the folder and manifest readers refuse alike,
# each in one DataError/InvalidInputError. A job refuses the manifest's structure; a file it cannot use fails only
# its own item (the rest of the batch goes on), so a missing file is not a job's refusal.
REFUSALS = [
    (_dup_stems, "same stem 'a'", True),
    (_missing_file, "nope.png', which does not exist", False),
    (_not_json, "manifest.jsonl:2", True),
    (_nan, "NaN is not JSON", True),
    (_not_object, "not a JSON object", True),
    (_path_not_text, "names 7, not a path|no 'mask' path", True),
]


@pytest.mark.parametrize("setup, match, job", REFUSALS, ids=[s.__name__.strip("_") for s, _, _ in REFUSALS])
def test_every_consumer_refuses_alike(layout, setup, match, job):
    setup(layout)
    readers = [_reader, _align, _eval]
    if (layout / "manifest.jsonl").exists():
        readers += [lambda d: read_job_manifest(d / "manifest.jsonl")] if job else []
    else:
        readers += [lambda d: pair_inputs(d / "images", d / "masks"), lambda d: folder_job(d / "images", d / "masks")]
    for read in readers:
        with pytest.raises((DataError, InvalidInputError), match=match):
            read(layout)


def test_manifest_paths_follow_one_rule_and_pairs_manifests_are_stricter(tmp_path, layout):
    """Paths are relative to the manifest, or absolute; '../' may leave its folder (evaluation and job manifests
    have always allowed it). A rated-pairs manifest of reward training keeps its files inside its folder."""
    sub = layout / "sub"
    sub.mkdir()
    row = {"id": "x", "image": "../images/a.png", "mask": str(layout / "masks" / "a.png")}
    (sub / "manifest.jsonl").write_text(json.dumps(row) + "\n")
    want = [("x", sub / "../images/a.png", layout / "masks" / "a.png")]
    assert _reader(sub) == _align(sub) == _eval(sub) == want
    assert [(it.id, it.image, it.mask) for it in read_job_manifest(sub / "manifest.jsonl")] == want
    (sub / "manifest.jsonl").write_text(json.dumps({**row, "score": 1.0}) + "\n")
    with pytest.raises(DataError, match="row 1 names '.*', outside the manifest's folder"):
        read_reward_data(sub / "manifest.jsonl")
    (sub / "manifest.jsonl").write_text(json.dumps({**row, "mask": "../masks/a.png", "score": 1.0}) + "\n")
    with pytest.raises(DataError, match="row 1 names '../masks/a.png', outside the manifest's folder"):
        read_reward_data(sub / "manifest.jsonl")


def test_a_folder_stem_that_is_no_plain_id_is_made_one_and_collisions_are_refused(tmp_path):
    _save(tmp_path / "imgs" / "my photo.png", 1)
    _save(tmp_path / "imgs" / "[b]x.png", 2)
    _hole(tmp_path / "mask.png")
    items, _ = folder_job(tmp_path / "imgs", tmp_path / "mask.png")
    assert sorted(it.id for it in items) == ["_b_x", "my_photo"]
    _save(tmp_path / "imgs" / "my_photo.png", 3)
    with pytest.raises(DataError, match="'my photo.png' and 'my_photo.png' .* both give the id 'my_photo'"):
        folder_job(tmp_path / "imgs", tmp_path / "mask.png")


# ------------------------------------------------------------------------------------------------ one runner
def _batch(root: Path, n: int = 3) -> Path:
    rng = np.random.default_rng(0)
    for i in range(n):
        (root / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        _hole(root / "masks" / f"im{i}.png")
    rows = [{"id": f"im{i}", "image": f"images/im{i}.png", "mask": f"masks/im{i}.png"} for i in range(n)]
    (root / "jobs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _report(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "finished_at")} for r in rows]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_a_folder_batch_and_its_manifest_give_the_same_outputs_and_report(tmp_path, tiny_pipeline_dir):
    from prefpaint_cli.main import app

    root = _batch(tmp_path / "in", n=2)
    common = ["--model", str(tiny_pipeline_dir), "--steps", "1", "--seed", "5", "--device", "cpu", "--dtype",
              "float32", "--offline"]
    folder = runner.invoke(app, ["inpaint", str(root / "images"), str(root / "masks"), "-o", str(tmp_path / "f"),
                                 *common], env={"COLUMNS": "2000"})
    manifest = runner.invoke(app, ["inpaint", "--manifest", str(root / "jobs.jsonl"), "-o", str(tmp_path / "m"),
                                   *common], env={"COLUMNS": "2000"})
    assert folder.exit_code == 0 and manifest.exit_code == 0, folder.output + manifest.output
    assert folder.stderr.replace(str(tmp_path / "f"), "OUT") == manifest.stderr.replace(str(tmp_path / "m"), "OUT")
    assert "2 items on 1 process: 2 done, 0 failed" in folder.stderr
    assert _report(tmp_path / "f") == _report(tmp_path / "m")
    assert [r["status"] for r in _report(tmp_path / "f")] == ["ok"] * 2
    names = sorted(p.name for p in (tmp_path / "f").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "m").iterdir())
    for i in range(2):
        assert np.array_equal(_pixels(tmp_path / "f" / f"im{i}.png"), _pixels(tmp_path / "m" / f"im{i}.png"))
        side_f, side_m = (json.loads((tmp_path / o / f"im{i}.json").read_text()) for o in ("f", "m"))
        assert side_f.pop("timings") and side_m.pop("timings") and side_f == side_m
    # both skip what they finished: a rerun does nothing and reports the same
    again = runner.invoke(app, ["inpaint", str(root / "images"), str(root / "masks"), "-o", str(tmp_path / "f"),
                                *common, "-q"])
    assert again.exit_code == 0 and _report(tmp_path / "f") == _report(tmp_path / "m")


class _Stopping:
    """The tiny inpainter, interrupted (Ctrl-C) on call ``stop_at``; counts the images it inpaints."""

    def __init__(self, inner, stop_at: int | None = None):
        self.inner, self.stop_at, self.calls = inner, stop_at, []
        self.model_id = inner.model_id

    def __call__(self, image, mask, **kw):
        if self.stop_at is not None and len(self.calls) == self.stop_at:
            raise KeyboardInterrupt
        self.calls.append(Path(image).name)
        return self.inner(image, mask, **kw)


def test_an_interrupted_folder_batch_resumes_where_it_stopped(tmp_path, tiny_inpainter):
    root = _batch(tmp_path / "in", n=4)
    items, _ = folder_job(root / "images", root / "masks")
    out = tmp_path / "out"
    first = _Stopping(tiny_inpainter, stop_at=2)
    with pytest.raises(KeyboardInterrupt):
        run_inpaint_job(items, out, inpainter=first, defaults={"steps": 2, "seed": 0})
    done = sorted(p.name for p in out.glob("*.png"))
    assert first.calls == ["im0.png", "im1.png"] and done == ["im0.png", "im1.png"]
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("im*")}
    second = _Stopping(tiny_inpainter)
    summary = run_inpaint_job(items, out, inpainter=second, defaults={"steps": 2, "seed": 0})
    assert second.calls == ["im2.png", "im3.png"], "finished items were redone, or left ones skipped"
    assert (summary.done, summary.skipped, summary.failed) == (2, 2, 0)
    assert {k: (out / k).stat().st_mtime_ns for k in stamps} == stamps
    assert [r["id"] for r in _report(out) if r["status"] == "ok"] == ["im0", "im1", "im2", "im3"]
    # other settings are not taken for finished work: refused, as for a manifest
    with pytest.raises(PrefPaintError, match="other settings.*overwrite=True"):
        run_inpaint_job(items, out, inpainter=second, defaults={"steps": 2, "seed": 1})


def test_a_mask_of_another_shape_fails_its_item_before_the_model_loads(tmp_path, tiny_inpainter):
    root = _batch(tmp_path / "in", n=2)
    Image.new("L", (10, 30), 255).save(root / "masks" / "im1.png")
    items, _ = folder_job(root / "images", root / "masks")
    calls = _Stopping(tiny_inpainter)
    summary = run_inpaint_job(items, tmp_path / "out", inpainter=calls, defaults={"steps": 1, "seed": 0})
    assert calls.calls == ["im0.png"] and (summary.done, summary.failed) == (1, 1)
    assert "mask is 10x30 but image is 24x16" in dict(summary.failures)["im1"]
    # with resize_mask it is resized, as the Inpainter does
    calls = _Stopping(tiny_inpainter)
    summary = run_inpaint_job(items, tmp_path / "out2", inpainter=calls, defaults={"steps": 1, "seed": 0,
                                                                               "resize_mask": True})
    assert summary.failed == 0 and "im1.png" in calls.calls


def test_a_batch_loads_with_the_commands_settings_and_fingerprints_those_that_change_images(
        tmp_path, tiny_pipeline_dir, tiny_inpainter, monkeypatch):
    """--offload, --vae-tiling and --scheduler reach the model of a folder or manifest batch (a manifest job ignored
    them); a finished item is kept across another offload, and refused (made otherwise) across another scheduler."""
    from prefpaint_sdk import Inpainter

    seen = []
    monkeypatch.setattr(Inpainter, "from_pretrained", lambda model, **kw: seen.append(kw) or tiny_inpainter)
    items, _ = folder_job(_batch(tmp_path / "in", n=1) / "images", tmp_path / "in" / "masks")
    out, run = tmp_path / "out", dict(model=tiny_pipeline_dir, device="cpu", defaults={"steps": 1, "seed": 0})
    first = run_inpaint_job(items, out, inpainter_kw={"offload": "model", "scheduler": "native"}, **run)
    assert first.done == 1 and seen[0]["offload"] == "model" and seen[0]["scheduler"] == "native"
    again = run_inpaint_job(items, out, inpainter_kw={"offload": "none", "scheduler": "native"}, **run)
    assert (again.done, again.skipped, len(seen)) == (0, 1, 1)  # nothing to do: no model loaded
    with pytest.raises(PrefPaintError, match="other settings"):
        run_inpaint_job(items, out, inpainter_kw={"scheduler": "auto"}, **run)
