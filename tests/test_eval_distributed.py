"""``prefpaint eval`` on two torchrun processes (CPU, gloo): one rank SIGKILLed mid-run, then the same command
again. Every case ends up in the report exactly once, the cases finished before the kill are not redone, no
temporary file is left, and the WinRate and per-case figures equal those of the one-process run."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from _helpers_eval import write_data
from _jobs_helpers import launcher_env, run_and_kill_rank1
from prefpaint_cli.main import app
from typer.testing import CliRunner

N = 12


@pytest.fixture(scope="module")
def models(tiny_pipeline_dir, tmp_path_factory):
    from prefpaint_sdk.testing import save_tiny_inpaint_pipeline, save_tiny_reward_model

    tmp = tmp_path_factory.mktemp("eval-dist-models")
    return dict(a=tiny_pipeline_dir, b=save_tiny_inpaint_pipeline(tmp / "b", seed=1), r=save_tiny_reward_model(tmp / "r"))


def _args(data, out, models) -> list[str]:
    return ["eval", "--data", str(data), "--model", str(models["a"]), "--baseline", str(models["b"]),
            "--reward-model", str(models["r"]), "--samples", "1", "--samples", "2", "--steps", "2", "-o", str(out),
            "--device", "cpu", "--dtype", "float32", "--offline", "-q"]


def _torchrun(args: list[str], port: int) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
            "-m", "prefpaint_cli.main", *args]


def _figures(out) -> tuple[list[dict], dict[str, tuple]]:
    r = json.loads((out / "results.json").read_text())
    cases = {c["name"]: (c["model"]["seeds"], c["model"]["scores"], c["baseline"]["score"]) for c in r["cases"]}
    assert len(cases) == len(r["cases"]), "a case is reported twice"
    return r["summary"], cases


@pytest.mark.slow
def test_eval_on_two_processes_survives_a_sigkill_and_matches_one_process(models, tmp_path):
    data = write_data(tmp_path / "data", n=N, size=32)
    one, two = tmp_path / "one", tmp_path / "two"
    r = CliRunner().invoke(app, _args(data, one, models))
    assert r.exit_code == 0, r.output

    env = launcher_env()
    code = run_and_kill_rank1(_torchrun(_args(data, two, models), 29651), env, two / "cache")
    assert code != 0, "the launcher should report the killed rank"
    # finished entries only: a kill can leave a hidden '.imgNN.json.*.tmp.json' (the rerun removes it, checked below)
    before = {p.name: p.stat().st_mtime_ns for p in (two / "cache").glob("*.json") if not p.name.startswith(".")}
    assert 3 <= len(before) < N, f"the kill came too late to test a resume: {len(before)} cache entries"
    assert not (two / "results.json").exists()

    again = subprocess.run(_torchrun(_args(data, two, models), 29653), env=env, capture_output=True, text=True,
                           timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert again.stdout.count("WinRate") == 1 and "WinRate" in again.stdout  # rank 0 alone reports
    after = {p.name: p.stat().st_mtime_ns for p in (two / "cache").glob("*.json") if not p.name.startswith(".")}
    assert sorted(after) == sorted(f"img{i:02d}.json" for i in range(N))
    assert {k: after[k] for k in before} == before, "cases finished before the kill were computed again"
    leftovers = [p for p in two.rglob(".*") if ".tmp" in p.name]
    assert not leftovers, f"temporary files left: {leftovers}"

    summary1, cases1 = _figures(one)
    summary2, cases2 = _figures(two)
    assert sorted(cases2) == sorted(cases1) == [f"img{i:02d}" for i in range(N)]
    for name, (seeds, scores, base) in cases1.items():
        assert cases2[name][0] == seeds
        assert cases2[name][1] == pytest.approx(scores, abs=1e-6) and cases2[name][2] == pytest.approx(base, abs=1e-6)
    assert [row["S"] for row in summary2] == [1, 2]
    for row1, row2 in zip(summary1, summary2):
        assert (row2["wins"], row2["ties"], row2["losses"]) == (row1["wins"], row1["ties"], row1["losses"])
        assert row2["win_rate"] == row1["win_rate"] and row2["n"] == row1["n"] == N
        assert (row2["ci_low"], row2["ci_high"]) == pytest.approx((row1["ci_low"], row1["ci_high"]), abs=1e-9)
        assert row2["mean_reward"] == pytest.approx(row1["mean_reward"], abs=1e-6)


class _Rank:
    """A JobContext stand-in for one rank of ``world`` that runs alone: no barrier, its own failures only."""

    def __init__(self, rank: int, world: int):
        from prefpaint_sdk.jobs import JobContext

        self.real = JobContext(rank=rank, world_size=world)
        self.rank, self.world_size, self.is_main = rank, world, rank == 0
        self.owns, self.device_for = self.real.owns, self.real.device_for
        self.disk_progress = self.real.disk_progress

    def wait(self, poll=None):
        return None

    def gather_json(self, obj):
        return [obj]

    def prefetch(self, offline, models=(), reward_model=None):
        return None


def test_each_rank_computes_exactly_its_hash_share_and_reads_the_rest(tmp_path):
    from _helpers_eval import FakeInpainter, FakeScorer

    from prefpaint_sdk.errors import InvalidInputError
    from prefpaint_sdk.evaluation import evaluate
    from prefpaint_sdk.jobs import shard_of

    data = write_data(tmp_path / "data", n=10, size=24)
    names = [f"img{i:02d}" for i in range(10)]
    with pytest.raises(InvalidInputError, match="needs an output folder"):
        evaluate(FakeInpainter(5), FakeInpainter(0), FakeScorer(), data, samples=(1,), ctx=_Rank(0, 2))
    out = tmp_path / "out"
    calls = {}
    for rank in (1, 0):  # rank 1 first: rank 0 then finds rank 1's cases in the cache and reports all ten
        model = FakeInpainter(5)
        rep = evaluate(model, FakeInpainter(0), FakeScorer(), data, samples=(1, 2), out_dir=out, steps=1, ctx=_Rank(rank, 2))
        calls[rank] = len(model.calls)
        mine = [n for n in names if shard_of(n, 2) == rank]
        assert sorted(p.stem for p in (out / "cache").glob("*.json")) == sorted(
            n for n in names if shard_of(n, 2) == 1 or rank == 0)
        assert calls[rank] == len(mine)  # one batched model call per case of its own share, none for the others
    assert 0 < calls[1] < 10 and calls[0] + calls[1] == 10
    assert [c["name"] for c in rep.cases] == names and not rep.failures and (out / "results.json").is_file()
    solo = evaluate(FakeInpainter(5), FakeInpainter(0), FakeScorer(), data, samples=(1, 2), out_dir=tmp_path / "solo",
                    steps=1, write_report=False)
    assert rep.rows() == solo.rows()
