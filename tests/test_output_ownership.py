"""Output ownership (issue 19): a job replaces only files it wrote itself, resumes its own half-published sets,
and replaces someone else's file only with --overwrite. The refusals themselves are rows of the hostile table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _jobs_helpers import results, write_manifest
from typer.testing import CliRunner

from prefpaint_sdk import files as F
from prefpaint_sdk import run_generate_dataset, run_inpaint_job, run_score_job
from prefpaint_sdk.errors import DataError, InvalidInputError, OutputExistsError
from prefpaint_sdk.jobs import JobItem, read_job_manifest, run_items
from prefpaint_sdk.jobs import runner as job_runner

runner = CliRunner()
FAST = {"steps": 2}


def _app():
    from prefpaint_cli.main import app

    return app


def _run(manifest, out, inpainter, **kw):
    return run_inpaint_job(manifest, out, inpainter=inpainter, defaults={**FAST, **kw.pop("defaults", {})}, **kw)


def _hidden(out: Path) -> list[str]:
    return sorted(p.relative_to(out).as_posix() for p in out.rglob(".*"))


class _Killed(BaseException):
    """A kill: nothing in the runner handles it, as nothing runs after SIGKILL."""


# ---------------------------------------------------------------------------------------------- resume
def test_a_kill_between_the_renames_is_resumed_as_the_jobs_own(tmp_path, tiny_inpainter, monkeypatch):
    manifest = write_manifest(tmp_path / "d", 3)
    out = tmp_path / "out"
    real = job_runner.write_set

    def killed_while_publishing(members, overwrite=False, own=None):
        paths = list(members)
        if any(p.name == "item01.png" for p in paths):  # publish the set's files, then die before the record
            for p, write in members.items():
                if p.parent.name != "records":
                    write(p)
            raise _Killed
        return real(members, overwrite=overwrite, own=own)

    monkeypatch.setattr(job_runner, "write_set", killed_while_publishing)
    with pytest.raises(_Killed):
        _run(manifest, out, tiny_inpainter, save_all=True)
    assert (out / "item01.png").is_file() and (out / "item01_cand0.png").is_file()
    assert not (out / "records" / "item01.json").exists()
    assert (out / "records" / ".item01.owned").is_file()  # the claim written before publishing

    monkeypatch.setattr(job_runner, "write_set", real)
    stale = (out / "item01.png").stat().st_mtime_ns
    s = _run(manifest, out, tiny_inpainter, save_all=True)
    assert (s.done, s.skipped, s.failed) == (2, 1, 0)  # item01 and the never-reached item02
    assert (out / "item01.png").stat().st_mtime_ns != stale  # replaced: it was the job's own
    assert [r["status"] for r in results(out)] == ["ok"] * 3
    assert _hidden(out) == []  # no claim and no temporary file left


def test_a_failed_retry_keeps_the_earlier_files_as_the_jobs_own(tmp_path, tiny_inpainter):
    manifest = write_manifest(tmp_path / "d", 2)
    out = tmp_path / "out"
    _run(manifest, out, tiny_inpainter)
    first = (out / "item00.png").read_bytes()

    class Failing:
        model_id = tiny_inpainter.model_id

        def __call__(self, image, mask, **kw):
            raise RuntimeError("out of memory")

    # --overwrite redoes both and both fail: their records say "error", their old files stay
    s = _run(manifest, out, Failing(), overwrite=True)
    assert s.failed == 2 and (out / "item00.png").read_bytes() == first
    s = _run(manifest, out, tiny_inpainter)  # the retry replaces them without --overwrite: they are its own
    assert s.done == 2 and [r["status"] for r in results(out)] == ["ok", "ok"]
    assert all("owned" not in r for r in results(out))  # bookkeeping stays in the records


# ---------------------------------------------------------------------------------------------- --overwrite
def test_cli_manifest_refuses_a_users_file_then_overwrite_replaces_it_and_it_becomes_the_jobs(tmp_path,
                                                                                              tiny_pipeline_dir):
    manifest = write_manifest(tmp_path / "d", 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "item01.json").write_text('{"mine": true}')
    argv = [str(a) for a in ["inpaint", "--manifest", manifest, "-o", out, "--model", tiny_pipeline_dir, "--steps",
                             "2", "--device", "cpu", "--dtype", "float32", "--offline"]]
    r = runner.invoke(_app(), argv, env={"COLUMNS": "2000"})
    assert r.exit_code == 2 and "item01.json" in r.stderr and "--overwrite" in r.stderr, r.output
    assert sorted(p.name for p in out.iterdir()) == ["item01.json"]  # refused before any work
    assert (out / "item01.json").read_text() == '{"mine": true}'

    r = runner.invoke(_app(), argv + ["--overwrite"], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    assert json.loads((out / "item01.json").read_text())["params"]["steps"] == 2  # the sidecar now
    again = runner.invoke(_app(), argv, env={"COLUMNS": "2000"})
    assert again.exit_code == 0 and "2 of 2 items already finished" in again.stderr, again.output


def test_score_replaces_its_own_results_but_a_users_only_with_overwrite(tmp_path):
    from prefpaint_sdk.testing import tiny_reward_model

    manifest = write_manifest(tmp_path / "d", 2)
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "seed"}) + "\n" for r in rows))
    model = tiny_reward_model()
    out = tmp_path / "out"
    out.mkdir()
    (out / "results.jsonl").write_text("my table\n")
    with pytest.raises(OutputExistsError, match="results.jsonl.*not written by a job"):
        run_score_job(manifest, out, model=model)
    assert (out / "results.jsonl").read_text() == "my table\n" and not (out / "records").exists()
    assert run_score_job(manifest, out, model=model, overwrite=True).done == 2
    assert [r["id"] for r in results(out)] == ["item00", "item01"]
    (out / "records" / "item01.json").unlink()  # a rerun redoes item01 and merges again into its own results
    assert run_score_job(manifest, out, model=model).done == 1
    assert len(results(out)) == 2


def test_generate_dataset_refuses_a_users_inpainting_and_overwrite_replaces_it(tmp_path, tiny_inpainter):
    import numpy as np
    from PIL import Image

    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(images / "a.png")
    data = tmp_path / "data"
    (data / "inpaint").mkdir(parents=True)
    users = data / "inpaint" / "a-warp_1.png"
    users.write_bytes(b"my picture")
    kw = dict(per_image=2, masks=["warp"], steps=2, inpainter=tiny_inpainter)
    with pytest.raises(OutputExistsError, match="a-warp_1.png.*not written by this job.*overwrite=True"):
        run_generate_dataset(images, data, **kw)
    assert users.read_bytes() == b"my picture" and sorted(p.name for p in data.iterdir()) == ["inpaint"]
    assert run_generate_dataset(images, data, overwrite=True, **kw).done == 1
    assert users.read_bytes()[:4] == b"\x89PNG"
    assert run_generate_dataset(images, data, **kw).skipped == 1


# ---------------------------------------------------------------------------------------------- before any work
def test_colliding_outputs_are_refused_naming_both_ids_before_the_model_loads(tmp_path):
    manifest = write_manifest(tmp_path / "d", 0, extra_rows=[
        {"id": "x", "image": "in/mask.png", "mask": "in/mask.png", "n": 2},
        {"id": "x_cand1", "image": "in/mask.png", "mask": "in/mask.png"}])
    with pytest.raises(InvalidInputError, match=r"x_cand1.png' of id 'x_cand1' \(line 2\) is also an output of id "
                                                r"'x' \(line 1\)"):
        run_inpaint_job(manifest, tmp_path / "out", model="nobody/not-cached", offline=True, save_all=True,
                        overwrite=True)  # --overwrite does not allow it either
    assert not (tmp_path / "out").exists()


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(tmp_path):
    d = tmp_path / "d"
    manifest = write_manifest(d, 1, extra_rows=[{"id": "mask", "image": "i0.png", "mask": "mask.png"}])
    (d / "i0.png").write_bytes((d / "in" / "i0.png").read_bytes())
    (d / "mask.png").write_bytes((d / "in" / "mask.png").read_bytes())
    before = (d / "mask.png").read_bytes()
    with pytest.raises(InvalidInputError, match=r"mask.png' of id 'mask' \(line 2\) would replace the mask"):
        run_inpaint_job(manifest, d, model="nobody/not-cached", offline=True, overwrite=True)
    assert (d / "mask.png").read_bytes() == before and not (d / "records").exists()


def test_work_may_write_only_its_planned_outputs(tmp_path):
    out = tmp_path / "out"
    items = [JobItem(id="a", image=tmp_path / "i.png", mask=tmp_path / "m.png", line=1)]
    s = run_items(items, out, lambda it: ({out / "elsewhere.png": F.bytes_writer(b"x")}, {}),
                  outputs=lambda it: [out / f"{it.id}.png"])
    assert s.failed == 1 and "did not plan" in s.failures[0][1]
    assert not (out / "elsewhere.png").exists()


@pytest.mark.parametrize("rid, shown", [("x\n", r"'x\n'"), ("a\tb", r"'a\tb'"), ("r\u202eb", r"'r\u202eb'")])
def test_an_id_with_a_control_character_is_refused_on_one_line(tmp_path, rid, shown):
    p = tmp_path / "m.jsonl"
    p.write_text(json.dumps({"id": "ok", "image": "i.png", "mask": "m.png"}) + "\n"
                 + json.dumps({"id": rid, "image": "i.png", "mask": "m.png"}) + "\n")
    with pytest.raises(DataError) as info:
        read_job_manifest(p)
    msg = str(info.value)
    assert f"{p}:2" in msg and shown in msg and "control or unprintable" in msg and "\n" not in msg


# ---------------------------------------------------------------------------------------------- the primitive
def test_write_set_replaces_only_its_own_files(tmp_path):
    mine, theirs, new = tmp_path / "mine.txt", tmp_path / "theirs.txt", tmp_path / "new.txt"
    mine.write_text("old")
    theirs.write_text("keep")
    F.write_set({mine: F.bytes_writer(b"1"), new: F.bytes_writer(b"2")}, own=[mine])
    assert (mine.read_text(), new.read_text()) == ("1", "2")
    with pytest.raises(OutputExistsError, match="theirs.txt.*not written by this job"):
        F.write_set({mine: F.bytes_writer(b"3"), theirs: F.bytes_writer(b"4")}, own=[mine])
    assert (mine.read_text(), theirs.read_text()) == ("1", "keep")


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path):
    mine, late = tmp_path / "mine.txt", tmp_path / "late.txt"
    mine.write_text("old")
    with pytest.raises(OutputExistsError, match="late.txt"):
        with F.output_set([mine, late], own=[mine]) as (a, b):
            a.write_text("new")
            b.write_text("new")
            late.write_text("someone else's")  # appears after the check
    assert late.read_text() == "someone else's" and mine.read_text() in ("old", "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["late.txt", "mine.txt"]


# ---------------------------------------------------------------------------------------------- rate
def test_rate_replaces_only_its_own_page(tmp_path):
    from prefpaint_apps.rate import is_rating_page, write_rating_page

    from prefpaint_sdk.testing import write_synthetic_reward_dataset

    data = write_synthetic_reward_dataset(tmp_path / "data", n_prompts=2, per_prompt=2, size=32)
    page = data / "rate.html"
    page.write_text("<html>my notes</html>")
    with pytest.raises(OutputExistsError, match="rate.html.*not a page.*overwrite=True"):
        write_rating_page(data)
    assert page.read_text() == "<html>my notes</html>"

    r = runner.invoke(_app(), ["rate", str(data), "--overwrite"], env={"COLUMNS": "2000"})
    assert r.exit_code == 0 and "replaced the file there" in r.stderr, r.output
    assert is_rating_page(page)
    r = runner.invoke(_app(), ["rate", str(data)], env={"COLUMNS": "2000"})  # its own page: no --overwrite needed
    assert r.exit_code == 0 and "replaced its own earlier page" in r.stderr, r.output
    h = runner.invoke(_app(), ["rate", "--help"], env={"COLUMNS": "2000"})
    assert "overwrites only its own" in " ".join(h.output.split())
