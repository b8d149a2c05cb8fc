"""Exactly once after a kill: ``prefpaint inpaint --manifest`` on two torchrun processes (CPU, gloo), one rank
SIGKILLed mid-run, then the same command again: one whole output set per id, each id once in results.jsonl,
and the items finished before the kill are not redone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _jobs_helpers import launcher_env, results, run_and_kill_rank1, write_manifest

# The slow tier (multi-process runs under torchrun, one rank SIGKILLed); scripts/test.sh --quick leaves it out.
pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
N = 24


def _cmd(manifest: Path, out: Path, model: Path, nproc: int, port: int) -> list[str]:
    launch = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_port", str(port)]
    return launch + ["-m", "prefpaint_cli.main", "inpaint", "--manifest", str(manifest), "-o", str(out), "--model",
                     str(model), "--steps", "2", "--device", "cpu", "--dtype", "float32", "--offline", "-q"]


def test_sigkill_one_rank_then_rerun_finishes_each_item_exactly_once(tmp_path, tiny_pipeline_dir):
    manifest = write_manifest(tmp_path / "data", N)
    out = tmp_path / "out"
    env = launcher_env()
    code = run_and_kill_rank1(_cmd(manifest, out, tiny_pipeline_dir, 2, 29631), env, out / "records")
    assert code != 0, "the launcher should report the killed rank"
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert 3 <= len(before) < N, f"the kill came too late to test a resume: {len(before)} records"
    assert not (out / "results.jsonl").exists()

    # The same command again, on another number of processes: shares follow the ids, so finished work is found.
    again = subprocess.run(_cmd(manifest, out, tiny_pipeline_dir, 1, 29633), env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]

    ids = [f"item{i:02d}" for i in range(N)]
    rows = results(out)
    assert [r["id"] for r in rows] == ids  # each id exactly once, sorted
    assert all(r["status"] == "ok" for r in rows)
    expected = sorted([f"{i}.png" for i in ids] + [f"{i}.json" for i in ids] + ["records", "results.jsonl"])
    assert sorted(p.name for p in out.iterdir()) == expected  # whole sets, no temporary files
    assert sorted(p.name for p in (out / "records").iterdir()) == sorted(f"{i}.json" for i in ids)
    after = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert {k: after[k] for k in before} == before, "items finished before the kill were done again"
