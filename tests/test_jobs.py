"""Manifest jobs in one process: row validation, stable shares, whole sets, resume, failures, the merge, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _jobs_helpers import results, write_manifest
from typer.testing import CliRunner

from prefpaint_sdk import run_inpaint_job, run_score_job
from prefpaint_sdk.errors import DataError, OutputExistsError
from prefpaint_sdk.jobs import JobContext, merge_results, read_job_manifest, shard_of
from prefpaint_sdk.testing import write_png_bomb

runner = CliRunner()
FAST = {"steps": 2}


def _manifest_text(tmp_path, *rows: dict | str) -> Path:
    p = tmp_path / "m.jsonl"
    p.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return p


ROW = {"id": "a", "image": "i.png", "mask": "m.png"}


# ---------------------------------------------------------------------------------------------- rows
def test_rows_are_read_with_params_and_paths_relative_to_the_manifest(tmp_path):
    p = _manifest_text(tmp_path, {**ROW, "prompt": "sky", "seed": 3, "n": 2, "steps": 7, "params": {"guidance": 2.5}},
                       "", {"id": 7, "image": "j.png", "mask": "m.png"})
    a, b = read_job_manifest(p)
    assert (a.id, a.image, a.prompt, a.seed, a.n) == ("a", tmp_path / "i.png", "sky", 3, 2)
    assert a.params == {"steps": 7, "guidance_scale": 2.5}
    assert (b.id, b.line, b.prompt, b.n) == ("7", 3, None, None)


@pytest.mark.parametrize("row, match", [
    ({**ROW, "id": "../x"}, "plain file name"),
    ({**ROW, "id": "a/b"}, "plain file name"),
    ({**ROW, "id": ".hidden"}, "plain file name"),
    ({**ROW, "id": "[bold]x"}, r"\[bold\]x"),
    ({**ROW, "id": ""}, "no 'id'"),
    ({"image": "i.png", "mask": "m.png"}, "no 'id'"),
    ({"id": "a", "mask": "m.png"}, "no 'image'"),
    ({**ROW, "steps": 0}, "steps must be ≥ 1"),
    ({**ROW, "guidance": 1e999}, "Infinity is not JSON"),
    ({**ROW, "guidance": "high"}, "guidance_scale must be a number"),
    ({**ROW, "n": 0}, "n must be"),
    ({**ROW, "seed": -1}, "seed"),
    ({**ROW, "stepz": 3}, "unknown key 'stepz'"),
    ({**ROW, "strength": 2}, "strength"),
    ({**ROW, "invert_mask": "yes"}, "true or false"),
    ('{"id": "a", "image": "i.png", "mask": "m.png", "guidance_scale": NaN}', "NaN is not JSON"),
    ("[1, 2]", "not a JSON object"),
    ("{oops", "not valid JSON"),
])
def test_a_bad_row_refuses_the_manifest_naming_the_line(tmp_path, row, match):
    p = _manifest_text(tmp_path, {"id": "ok", "image": "i.png", "mask": "m.png"}, row)
    with pytest.raises(DataError, match=match) as info:
        read_job_manifest(p)
    assert f"{p}:2" in str(info.value)


def test_duplicate_ids_are_refused_before_any_work(tmp_path):
    p = _manifest_text(tmp_path, ROW, {**ROW, "image": "j.png"})
    with pytest.raises(DataError, match="id 'a' is already used on line 1"):
        read_job_manifest(p)


def test_score_rows_take_no_sampler_params(tmp_path):
    with pytest.raises(DataError, match="unknown key 'steps'"):
        read_job_manifest(_manifest_text(tmp_path, {**ROW, "steps": 3}), "score")


# ---------------------------------------------------------------------------------------------- shares
def test_shares_follow_the_id_alone_and_split_evenly():
    ids = [f"item{i:04d}" for i in range(2000)]
    for n in (1, 2, 3, 8):
        owners = [shard_of(i, n) for i in ids]
        assert owners == [shard_of(i, n) for i in ids]  # stable
        counts = [owners.count(r) for r in range(n)]
        assert min(counts) > 0.8 * len(ids) / n
    assert shard_of("item0001", 2) == shard_of("item0001", 2) and shard_of("x", 1) == 0


# ---------------------------------------------------------------------------------------------- runs
def _run(manifest, out, inpainter, **kw):
    return run_inpaint_job(manifest, out, inpainter=inpainter, defaults={**FAST, **kw.pop("defaults", {})}, **kw)


def test_run_writes_whole_sets_records_and_sorted_results(tmp_path, tiny_inpainter):
    manifest = write_manifest(tmp_path / "d", 4, extra_rows=[{"id": "z-last", "image": "in/i0.png",
                                                              "mask": "in/mask.png", "n": 2, "prompt": "x"}])
    seen = []
    s = _run(manifest, tmp_path / "out", tiny_inpainter, save_all=True, progress=lambda d, t: seen.append((d, t)))
    assert (s.total, s.done, s.failed, s.skipped) == (5, 5, 0, 0)
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    rows = results(tmp_path / "out")
    assert [r["id"] for r in rows] == ["item00", "item01", "item02", "item03", "z-last"]
    seeds = rows[4]["seeds"]
    assert rows[1]["seed"] == 1 and seeds == [seeds[0], seeds[0] + 1]  # row seeds; no seed: one drawn, recorded
    assert rows[4]["files"] == ["z-last.png", "z-last_cand0.png", "z-last_cand1.png", "z-last.json"]
    side = json.loads((tmp_path / "out" / "z-last.json").read_text())
    assert side["params"]["prompt"] == "x" and side["params"]["steps"] == 2
    assert not [p for p in (tmp_path / "out").rglob(".*")]  # no temporary files


def test_rerun_skips_finished_items_and_redoes_partial_or_failed_ones(tmp_path, tiny_inpainter):
    manifest = write_manifest(tmp_path / "d", 4)
    out = tmp_path / "out"
    _run(manifest, out, tiny_inpainter)
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.is_file()}
    # a set published without its record (a kill in that window leaves the claim written before publishing)
    (out / "records" / "item01.json").unlink()
    (out / "records" / ".item01.owned").write_text(json.dumps({"id": "item01", "status": "claim",
                                                                     "owned": ["item01.png", "item01.json"]}))
    (out / "item02.png").unlink()  # a finished set that lost a file
    rec = json.loads((out / "records" / "item03.json").read_text())
    (out / "records" / "item03.json").write_text(json.dumps({**rec, "status": "error", "error": "boom"}))
    (out / ".item00.png.abc.tmp.png").write_bytes(b"left by a kill")
    s = _run(manifest, out, tiny_inpainter)
    assert (s.skipped, s.done) == (1, 3)
    assert (out / "item00.png").stat().st_mtime_ns == stamps["item00.png"]
    assert [r["status"] for r in results(out)] == ["ok"] * 4
    assert not [p for p in out.rglob(".*")]


def test_rerun_with_other_settings_is_refused_without_overwrite(tmp_path, tiny_inpainter):
    manifest = write_manifest(tmp_path / "d", 2)
    _run(manifest, tmp_path / "out", tiny_inpainter)
    with pytest.raises(OutputExistsError, match="item00.*different manifest row or other settings.*overwrite=True"):
        _run(manifest, tmp_path / "out", tiny_inpainter, defaults={"steps": 3})
    s = _run(manifest, tmp_path / "out", tiny_inpainter, defaults={"steps": 3}, overwrite=True)
    assert s.done == 2


def test_one_bad_item_is_recorded_and_the_others_go_on(tmp_path, tiny_inpainter):
    d = tmp_path / "d"
    write_png_bomb(d / "in" / "bomb.png") if (d / "in").mkdir(parents=True) is None else None
    manifest = write_manifest(d, 2, extra_rows=[
        {"id": "bomb", "image": "in/bomb.png", "mask": "in/mask.png"},
        {"id": "gone", "image": "in/none.png", "mask": "in/mask.png"},
        {"id": "wrong-size", "image": "in/i0.png", "mask": "in/small.png"}])
    from PIL import Image

    Image.new("L", (10, 30), 255).save(d / "in" / "small.png")
    s = _run(manifest, tmp_path / "out", tiny_inpainter)
    assert (s.done, s.failed) == (2, 3)
    by_id = {r["id"]: r for r in results(tmp_path / "out")}
    assert by_id["bomb"]["status"] == "error" and "pixels" in by_id["bomb"]["error"]
    assert "does not exist" in by_id["gone"]["error"] and "10" in by_id["wrong-size"]["error"]
    assert sorted(i for i, _ in s.failures) == ["bomb", "gone", "wrong-size"]
    assert not (tmp_path / "out" / "bomb.png").exists()


def test_no_usable_item_is_refused_before_the_model_loads(tmp_path):
    d = tmp_path / "d"
    (d / "in").mkdir(parents=True)
    write_png_bomb(d / "in" / "bomb.png")
    m = _manifest_text(d, {"id": "b", "image": "in/bomb.png", "mask": "in/bomb.png"})
    with pytest.raises(DataError, match="no item of the manifest is usable.*bomb.png"):
        run_inpaint_job(m, tmp_path / "out", model="nobody/not-cached", offline=True)
    assert not (tmp_path / "out").exists()


def test_merge_reports_ids_a_dead_rank_never_reached(tmp_path, tiny_inpainter):
    manifest = write_manifest(tmp_path / "d", 4)
    items = read_job_manifest(manifest)
    out = tmp_path / "out"
    # rank 1 of 2 "died" before starting: only rank 0's share is done, and no merge ran
    share0 = [it.id for it in items if shard_of(it.id, 2) == 0]
    _run(manifest, out, tiny_inpainter, ctx=JobContext())  # all four, then take rank 1's records away
    for it in items:
        if it.id not in share0:
            for f in (f"records/{it.id}.json", f"{it.id}.png", f"{it.id}.json"):
                (out / f).unlink()
    _, failures = merge_results(out, items)
    rows = results(out)
    assert [r["id"] for r in rows] == sorted(it.id for it in items)
    assert {r["id"] for r in rows if r["status"] == "missing"} == set(it.id for it in items) - set(share0)
    s = _run(manifest, out, tiny_inpainter)  # the rerun merges everything
    assert s.skipped == len(share0) and [r["status"] for r in results(out)] == ["ok"] * 4


# ---------------------------------------------------------------------------------------------- CLI
def _app():
    from prefpaint_cli.main import app

    return app


def test_cli_inpaint_and_score_manifest(tmp_path, tiny_pipeline_dir):
    from prefpaint_sdk.testing import save_tiny_reward_model

    manifest = write_manifest(tmp_path / "d", 3)
    out = tmp_path / "out"
    argv = ["inpaint", "--manifest", manifest, "-o", out, "--model", tiny_pipeline_dir, "--steps", "2", "--device",
            "cpu", "--dtype", "float32", "--offline"]
    r = runner.invoke(_app(), [str(a) for a in argv], env={"COLUMNS": "2000"})
    assert r.exit_code == 0, r.output
    assert "3 items on 1 process: 3 done, 0 failed" in r.stderr
    again = runner.invoke(_app(), [str(a) for a in argv], env={"COLUMNS": "2000"})
    assert again.exit_code == 0 and "3 of 3 items already finished" in again.stderr

    # score the inpaintings by a second manifest (image = the inpainting)
    rm = save_tiny_reward_model(tmp_path / "rm")
    rows = [{"id": f"s{i}", "image": f"../out/item0{i}.png", "mask": "in/mask.png"} for i in range(3)]
    rows.append({"id": "bad", "image": "in/none.png", "mask": "in/mask.png"})
    sm = tmp_path / "d" / "score.jsonl"
    sm.write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = runner.invoke(_app(), [str(a) for a in ["score", "--manifest", sm, "-o", tmp_path / "scores", "--reward-model",
                                                 rm, "--device", "cpu", "--offline"]], env={"COLUMNS": "2000"})
    assert r.exit_code == 1, r.output  # one item failed, recorded; the others are scored
    got = results(tmp_path / "scores")
    assert [g["id"] for g in got] == ["bad", "s0", "s1", "s2"]
    assert got[0]["status"] == "error" and all(isinstance(g["score"], float) for g in got[1:])
    assert "failed: bad:" in r.stderr and "1 of 4 items failed" in r.stderr


@pytest.mark.parametrize("argv, match", [
    (["inpaint", "img.png"], "pass IMAGE and MASK, or --manifest"),
    (["inpaint", "img.png", "m.png", "--manifest", "j.jsonl", "-o", "o"], "pass no IMAGE or MASK"),
    (["inpaint", "--manifest", "j.jsonl"], "needs -o OUT"),
    (["score", "--manifest", "j.jsonl"], "needs -o OUT"),
])
def test_cli_mode_errors(tmp_path, argv, match):
    r = runner.invoke(_app(), argv, env={"COLUMNS": "2000"})
    assert r.exit_code == 2 and match in r.stderr, r.output


def test_score_job_in_python(tmp_path):
    from prefpaint_sdk.testing import tiny_reward_model

    manifest = write_manifest(tmp_path / "d", 2)
    rows = [json.loads(x) for x in manifest.read_text().splitlines()]
    manifest.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "seed"}) + "\n" for r in rows))
    s = run_score_job(manifest, tmp_path / "out", model=tiny_reward_model())
    assert s.done == 2 and len(results(tmp_path / "out")) == 2


def test_each_rank_takes_its_own_gpu_for_auto_and_bare_cuda():
    class State:
        device = "cuda:3"

    ctx = JobContext(rank=3, world_size=4, local_rank=3, state=State())
    assert [ctx.device_for(d) for d in ("auto", "cuda", "cuda:0", "cpu")] == ["cuda:3", "cuda:3", "cuda:0", "cpu"]
    assert JobContext().device_for("auto") == "auto"


def test_a_rerun_from_another_working_directory_finds_the_finished_work(tmp_path, tiny_pipeline_dir, monkeypatch):
    manifest = write_manifest(tmp_path / "d", 2)
    argv = ["inpaint", "--manifest", "d/jobs.jsonl", "-o", "out", "--model", str(tiny_pipeline_dir), "--steps", "2",
            "--device", "cpu", "--dtype", "float32", "--offline"]
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(_app(), argv, env={"COLUMNS": "2000"}).exit_code == 0
    monkeypatch.chdir(tmp_path / "d")
    again = runner.invoke(_app(), ["inpaint", "--manifest", "jobs.jsonl", "-o", "../out", *argv[5:]],
                          env={"COLUMNS": "2000"})
    assert again.exit_code == 0, again.output
    assert "2 of 2 items already finished" in again.stderr
    assert manifest.is_file()


def test_progress_counts_a_stale_failure_only_once_it_is_redone(tmp_path, tiny_inpainter):
    manifest = write_manifest(tmp_path / "d", 3)
    out = tmp_path / "out"
    _run(manifest, out, tiny_inpainter)
    rec = out / "records" / "item01.json"
    rec.write_text(json.dumps({**json.loads(rec.read_text()), "status": "error", "error": "boom"}))
    seen = []
    _run(manifest, out, tiny_inpainter, progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (2, 3) and seen[-1] == (3, 3)
