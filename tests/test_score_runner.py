"""One runner for ``prefpaint score`` (issue 24, item 5, seam score-runner).

* A folder score (the PrefPaint score and the ``--reward`` stack) is the job of its images on ``jobs.runner``:
  the same records, skip and resume, ``results.jsonl`` and report as the manifest that lists them, with the CSV
  as the job's summary output (written whole at the end), and the reward model still batched.
* A job record keeps a failed item's error as data (``error_parts``): read back, the CLI names the flag and the
  SDK the parameter.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from prefpaint_cli.main import app
from typer.testing import CliRunner

from prefpaint_sdk.errors import Arg, Hint, OutputExistsError, StoredMessage, parts_from_json, parts_to_json
from prefpaint_sdk.jobs import folder_job, run_score_job
from prefpaint_sdk.reward import RewardModel, score_folder_outputs, validate_score
from prefpaint_sdk.testing import save_tiny_reward_model

runner = CliRunner()


@pytest.fixture(scope="module")
def rm(tmp_path_factory):
    return save_tiny_reward_model(tmp_path_factory.mktemp("rm") / "tiny")


def _folder(root: Path, n: int = 4) -> Path:
    """``root/images/im<i>.png`` (24x16 noise), ``root/masks/im<i>.png`` and ``root/jobs.jsonl`` listing them."""
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    hole = np.zeros((16, 24), np.uint8)
    hole[4:12, 6:18] = 255
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (16, 24, 3), dtype=np.uint8)).save(root / "images" / f"im{i}.png")
        Image.fromarray(hole).save(root / "masks" / f"im{i}.png")
    rows = [{"id": f"im{i}", "image": f"images/im{i}.png", "mask": f"masks/im{i}.png"} for i in range(n)]
    (root / "jobs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _report(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("elapsed_s", "finished_at")} for r in rows]


def _csv(path: Path) -> list[dict]:
    return list(csv.DictReader(path.open()))


def _run(args, **kw):
    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "2000"}, **kw)


class _Counting:
    """A reward model that records the images of every backbone pass; Ctrl-C on pass ``stop_at``."""

    def __init__(self, inner, stop_at: int | None = None):
        self.inner, self.stop_at, self.passes = inner, stop_at, []

    def score(self, images, **kw):
        if self.stop_at is not None and len(self.passes) == self.stop_at:
            raise KeyboardInterrupt
        images = images if isinstance(images, list) else [images]
        self.passes.append([Path(p).stem for p in images])
        return self.inner.score(images, **kw)


# ---------------------------------------------------------------------------------------------- one runner
def test_a_folder_score_is_its_manifest_job_with_the_same_report_and_a_csv(tmp_path, rm):
    root = _folder(tmp_path / "in", n=3)
    common = ["--reward-model", rm, "--device", "cpu", "--offline"]
    folder = _run(["score", root / "images", root / "masks", "-o", tmp_path / "f.csv", *common])
    manifest = _run(["score", "--manifest", root / "jobs.jsonl", "-o", tmp_path / "m", *common])
    assert folder.exit_code == 0 and manifest.exit_code == 0, folder.output + manifest.output
    assert "3 items on 1 process: 3 done, 0 failed" in folder.stderr
    assert f"wrote 3 scores to {tmp_path / 'f.csv'}" in folder.stderr
    # the job folder sits beside the CSV, named as it without its suffix; its report is the manifest's
    assert score_folder_outputs(root / "images", tmp_path / "f.csv") == (tmp_path / "f.csv", tmp_path / "f")
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["records", "results.jsonl"]
    assert _report(tmp_path / "f") == _report(tmp_path / "m")
    direct = RewardModel.from_pretrained(rm, device="cpu").score(
        [root / "images" / f"im{i}.png" for i in range(3)], masks=[root / "masks" / f"im{i}.png" for i in range(3)])
    rows = _csv(tmp_path / "f.csv")
    assert list(rows[0]) == ["image", "mask", "score", "bound", "trust"]  # the columns of before
    assert [Path(r["image"]).name for r in rows] == ["im0.png", "im1.png", "im2.png"]
    assert [float(r["score"]) for r in rows] == pytest.approx(direct.scores.tolist(), abs=1e-5)
    report = _report(tmp_path / "f")
    assert [r["status"] for r in report] == ["ok"] * 3
    assert [r["score"] for r in report] == pytest.approx(direct.scores.tolist(), abs=1e-5)
    assert [r["bound"] for r in report] == pytest.approx(direct.bounds.tolist(), abs=1e-5)
    # --json: one object per scored image, as before
    again = _run(["score", root / "images", root / "masks", "-o", tmp_path / "f.csv", *common, "--json"])
    objs = [json.loads(line) for line in again.stdout.splitlines()]
    assert again.exit_code == 0 and [set(o) for o in objs] == [{"image", "mask", "score", "bound", "trust"}] * 3


def test_the_reward_model_is_batched_and_a_rerun_skips_what_it_finished(tmp_path, rm):
    root = _folder(tmp_path / "in", n=5)
    items, _ = folder_job(root / "images", root / "masks")
    model = _Counting(RewardModel.from_pretrained(rm, device="cpu"))
    out, csv_path = tmp_path / "scores", tmp_path / "scores.csv"
    summary = run_score_job(items, out, model=model, batch_size=2, csv=csv_path)
    assert model.passes == [["im0", "im1"], ["im2", "im3"], ["im4"]]  # one backbone pass per batch
    assert (summary.done, summary.skipped, summary.failed) == (5, 0, 0) and len(summary.rows) == 5
    first = csv_path.read_bytes()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    rerun = _Counting(model.inner)
    summary = run_score_job(items, out, model=rerun, batch_size=2, csv=csv_path)
    assert rerun.passes == [] and (summary.done, summary.skipped) == (0, 5)
    assert csv_path.read_bytes() == first and {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir()} == stamps
    # overwrite=True redoes every item
    redo = _Counting(model.inner)
    summary = run_score_job(items, out, model=redo, batch_size=8, csv=csv_path, overwrite=True)
    assert redo.passes == [[f"im{i}" for i in range(5)]] and summary.done == 5
    # another setting is not taken for finished work
    with pytest.raises(OutputExistsError, match="other settings.*overwrite=True"):
        run_score_job(items, out, model=redo, csv=csv_path, normalize=True)


def test_an_interrupted_folder_score_resumes_and_its_csv_appears_whole_at_the_end(tmp_path, rm):
    root = _folder(tmp_path / "in", n=4)
    items, _ = folder_job(root / "images", root / "masks")
    inner = RewardModel.from_pretrained(rm, device="cpu")
    out, csv_path = tmp_path / "scores", tmp_path / "scores.csv"
    with pytest.raises(KeyboardInterrupt):
        run_score_job(items, out, model=_Counting(inner, stop_at=1), reward_model=rm, batch_size=2, csv=csv_path)
    assert not csv_path.exists(), "the CSV is the job's summary: none before the job ends"
    assert sorted(p.name for p in (out / "records").iterdir()) == ["im0.json", "im1.json"]
    second = _Counting(inner)
    summary = run_score_job(items, out, model=second, reward_model=rm, batch_size=2, csv=csv_path)
    assert second.passes == [["im2", "im3"]], "finished items were redone, or left ones skipped"
    assert (summary.done, summary.skipped, summary.failed) == (2, 2, 0)
    assert [Path(r["image"]).stem for r in _csv(csv_path)] == ["im0", "im1", "im2", "im3"]
    litter = [p.name for p in [*tmp_path.iterdir(), *out.iterdir()] if ".tmp" in p.name]
    assert not litter
    # the CLI agrees: everything is finished, the CSV is the same bytes
    before = csv_path.read_bytes()
    r = _run(["score", root / "images", root / "masks", "-o", csv_path, "--reward-model", rm, "--device", "cpu", "-q"])
    assert r.exit_code == 0 and csv_path.read_bytes() == before


def test_a_csv_the_job_did_not_write_is_refused_before_anything_and_replaced_with_overwrite(tmp_path, rm):
    root = _folder(tmp_path / "in", n=2)
    (tmp_path / "s.csv").write_text("mine\n")
    args = ["score", root / "images", root / "masks", "-o", tmp_path / "s.csv", "--reward-model", "/nonexistent/rm",
            "--device", "cpu", "--offline"]
    r = _run(args)  # refused before the (missing) model is looked for: exit 2, not 3
    assert r.exit_code == 2 and "s.csv" in r.stderr and "--overwrite" in r.stderr, r.output
    assert (tmp_path / "s.csv").read_text() == "mine\n" and not (tmp_path / "s").exists()
    r = _run([*args[:-4], rm, "--device", "cpu", "--overwrite", "-q"])
    assert r.exit_code == 0 and len(_csv(tmp_path / "s.csv")) == 2


def test_failures_are_counted_recorded_and_left_out_of_the_csv(tmp_path, rm):
    root = _folder(tmp_path / "in", n=3)
    (root / "images" / "im1.png").write_text("not an image\n")
    r = _run(["score", root / "images", root / "masks", "--reward-model", rm, "--device", "cpu"])
    assert r.exit_code == 1 and "1 of 3 images failed (rerun the command to retry them)" in r.stderr, r.output
    assert "failed: im1: " in r.stderr and "Traceback" not in r.output
    out = root / "images_scores"
    report = _report(out)
    assert [(x["id"], x["status"]) for x in report] == [("im0", "ok"), ("im1", "error"), ("im2", "ok")]
    assert "im1.png" in report[1]["error"] and report[1]["error_parts"]
    assert [Path(x["image"]).stem for x in _csv(root / "images_scores.csv")] == ["im0", "im2"]
    # fixed, a rerun retries only the failed item
    Image.fromarray(np.zeros((16, 24, 3), np.uint8)).save(root / "images" / "im1.png")
    stamp = (out / "records" / "im0.json").stat().st_mtime_ns
    r = _run(["score", root / "images", root / "masks", "--reward-model", rm, "--device", "cpu"])
    assert r.exit_code == 0 and "3 items on 1 process: 3 done, 0 failed" in r.stderr
    assert (out / "records" / "im0.json").stat().st_mtime_ns == stamp
    assert len(_csv(root / "images_scores.csv")) == 3


def test_the_reward_stack_folder_is_a_job_too_and_its_advantage_spans_the_whole_folder(tmp_path):
    from prefpaint_sdk.reward.normalize import combine

    root = _folder(tmp_path / "in", n=4)
    args = ["score", root / "images", root / "masks", "--reward", "seam", "--reward", "brightness",
            "--reward-weights", "1,0.5", "--reward-norm", "sum", "--device", "cpu"]
    # half of it first (a run over two images' job), then the whole folder resumes it
    items, _ = folder_job(root / "images", root / "masks")
    out = root / "images_scores"
    run_score_job(items[:2], out, reward=["seam", "brightness"], reward_weights="1,0.5", reward_norm="sum", device="cpu")
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    r = _run([*args, "-q"])
    assert r.exit_code == 0, r.output
    assert {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir() if p.name in stamps} == stamps
    rows = _csv(root / "images_scores.csv")
    assert list(rows[0]) == ["image", "mask", "seam", "brightness", "advantage"] and len(rows) == 4
    s = torch.tensor([[float(x["seam"]) for x in rows], [float(x["brightness"]) for x in rows]])
    assert [float(x["advantage"]) for x in rows] == pytest.approx(combine(s, (1.0, 0.5), None, "sum").tolist())
    report = _report(out)
    assert [set(x["rewards"]) for x in report] == [{"seam", "brightness"}] * 4
    assert [x["rewards"]["seam"]["score"] for x in report] == pytest.approx([float(x["seam"]) for x in rows])
    # --json: one object per image with its advantage over the folder
    r = _run([*args, "--json"])
    objs = [json.loads(line) for line in r.stdout.splitlines()]
    assert r.exit_code == 0 and [o["advantage"] for o in objs] == pytest.approx([float(x["advantage"]) for x in rows])
    # the stack is part of each item's settings: another stack is not taken for finished work
    r = _run(["score", root / "images", root / "masks", "--reward", "seam", "--device", "cpu"])
    assert r.exit_code == 2 and "other settings" in r.stderr and "--overwrite" in r.stderr


# ------------------------------------------------------------------------------- errors read back as data
def test_error_parts_round_trip_as_json():
    parts = ("image 'a.png' is 9 pixels; ", Hint("raise ", Arg("max_pixels"), " or pass ", Arg("overwrite", True)),
             Arg("reward", ["seam"]), Arg("steps", float("nan")))
    data = parts_to_json(parts)
    assert json.loads(json.dumps(data, allow_nan=False)) == data  # strict JSON
    back = parts_from_json(data)
    assert back[:3] == parts[:3] and back[3] == Arg("steps", "nan")
    assert parts_from_json("text") is None and parts_from_json([{"nope": 1}]) is None
    msg = StoredMessage(back)
    assert msg == "image 'a.png' is 9 pixels; raise max_pixels or pass overwrite=Truereward=['seam']steps='nan'"
    assert msg.parts == back


def test_a_failed_items_stored_error_names_the_flag_in_the_cli_and_the_parameter_in_the_sdk(tmp_path, rm):
    root = _folder(tmp_path / "in", n=2)
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(root / "images" / "im1.png")  # 4096 pixels
    Image.fromarray(np.full((64, 64), 255, np.uint8)).save(root / "masks" / "im1.png")
    args = ["score", root / "images", root / "masks", "--reward-model", rm, "--device", "cpu", "--max-pixels", "1000"]
    r = _run(args)
    line = next(ln for ln in r.stderr.splitlines() if ln.startswith("failed: im1: "))
    assert r.exit_code == 1 and "raise --max-pixels or PREFPAINT_MAX_PIXELS" in line and "max_pixels" not in line, line
    rec = json.loads((root / "images_scores" / "records" / "im1.json").read_text())
    assert {"arg": "max_pixels"} in rec["error_parts"] and "raise max_pixels" in rec["error"]
    assert rec["error_type"] == "ImageTooLargeError"
    row = json.loads((root / "images_scores" / "results.jsonl").read_text().splitlines()[1])
    assert row["error_parts"] == rec["error_parts"]
    # read back by a rerun (the item is retried and fails again): the same flag
    r = _run(args)
    assert r.exit_code == 1 and "raise --max-pixels" in r.stderr
    # the SDK's summary of the same records speaks Python
    items, _ = folder_job(root / "images", root / "masks")
    summary = run_score_job(items, root / "images_scores", reward_model=rm, device="cpu", max_pixels=1000,
                            csv=root / "images_scores.csv")
    (item_id, msg), = summary.failures
    assert item_id == "im1" and "raise max_pixels or PREFPAINT_MAX_PIXELS" in msg and "--" not in msg
    assert Arg("max_pixels") in [p for p in msg.parts if isinstance(p, Arg)]


# --------------------------------------------------------------------------------- the score's validate
@pytest.mark.parametrize("kw,py_text,param", [
    (dict(original="x.png"), "original is for a reward stack; add reward=['NAME']", "original"),
    (dict(reward=["seam"], normalize=True), "normalize is for the PrefPaint-only score; drop it, or drop reward",
     "normalize"),
    (dict(mode="folder", masked_image="x.png"), "masked_image is for one image; in folder mode", "masked_image"),
    (dict(output="s.csv"), "output names the CSV of folder mode", "output"),
    (dict(reward=["seam"], original="a.png", masked_image="b.png"), "give one of original and masked_image",
     "original"),
    (dict(batch_size=0), "batch_size must be", "batch_size"),
])
def test_validate_score_names_parameters_as_data(kw, py_text, param, tmp_path):
    from prefpaint_sdk.errors import InvalidInputError

    with pytest.raises(InvalidInputError) as info:
        validate_score(tmp_path / "img.png", tmp_path / "mask.png", **kw)
    assert py_text in str(info.value) and info.value.param == param and "--" not in str(info.value)


def test_the_score_command_holds_no_checks_of_its_own():
    import ast
    import inspect

    from prefpaint_cli import reward

    tree = ast.parse(inspect.getsource(reward.score))
    raises = [n for n in ast.walk(tree) if isinstance(n, ast.Raise)]
    assert raises == [], "score raises errors itself; its checks belong to validate_score"
    assert "InvalidInputError" not in inspect.getsource(reward.score) + inspect.getsource(reward._run_job)
