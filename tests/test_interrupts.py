"""Ctrl-C and SIGTERM stop every long command: exit 130 or 143, no traceback, whole output sets or none, never
a completed run (issue 19, class 3). And the mechanism behind it (``prefpaint_sdk.interrupts``) in-process.

Each command runs as the real ``prefpaint`` entry point, twice at once: one run gets its signal at a seeded
random time after the process owns its signals (so start-up, imports and the model load are hit too: the
interrupt once swallowed by ``regex``'s ``Group.__del__`` landed during an import), the other at a seeded
random time after its first output activity (the work itself). Each command draws which signal goes where.
Inputs are sized so that no run can finish within its window, even on a fast machine.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from _signals import owns_sigterm
from PIL import Image

from prefpaint_sdk import interrupts

PREFPAINT = Path(sys.executable).with_name("prefpaint")
SEED = 19
EXPECTED = {signal.SIGINT: 130, signal.SIGTERM: 143}
LITTER = re.compile(r"\.tmp|\.stage$|\.old-")  # temporary files, stage folders, folders renamed aside
pytestmark = pytest.mark.timeout(400)


# ------------------------------------------------------------------------------------------------
# The mechanism, in-process


class _DropsInterrupts:
    """A destructor that the signal lands in (as regex's ``Group.__del__`` did): Python cannot raise there."""

    def __init__(self, sig: int) -> None:
        self.sig = sig

    def __del__(self) -> None:
        signal.raise_signal(self.sig)
        for _ in range(100):  # the handler runs here, inside the destructor
            pass


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_in_a_destructor_is_delivered_again(sig, capsys):
    interrupts.install(reset=True)
    with pytest.raises(KeyboardInterrupt):
        _DropsInterrupts(sig)  # collected at once: the signal lands in __del__
        end = time.monotonic() + 5
        while time.monotonic() < end:  # ordinary code: the signal, sent again, raises here
            time.sleep(0.001)
        pytest.fail("the interrupt was swallowed by the destructor and the code ran on")
    assert interrupts.received() == sig and interrupts.exit_code() == EXPECTED[sig]
    assert "Exception ignored" not in capsys.readouterr().err


def test_an_interrupt_a_library_swallowed_stops_the_next_publication(tmp_path):
    from prefpaint_sdk.files import write_set

    interrupts.install(reset=True)
    try:  # a library that catches and drops KeyboardInterrupt
        signal.raise_signal(signal.SIGTERM)
        time.sleep(0.01)
    except KeyboardInterrupt:
        pass
    with pytest.raises(KeyboardInterrupt):
        write_set({tmp_path / "a.txt": lambda p: p.write_text("a"), tmp_path / "b.txt": lambda p: p.write_text("b")})
    assert sorted(tmp_path.iterdir()) == [], "a set was published after the interrupt"
    with pytest.raises(KeyboardInterrupt):
        interrupts.check()
    assert interrupts.exit_code() == 143


def test_a_progress_step_is_a_safe_point():
    """A loop that publishes nothing for a while (epochs, views, extension steps) stops at its next step."""
    from prefpaint_cli._common import progress

    interrupts.install(reset=True)
    with progress(quiet=True) as bar:
        task = bar.add_task("steps", total=3)
        bar.update(task, completed=1)
        try:  # a library drops the interrupt
            signal.raise_signal(signal.SIGINT)
            time.sleep(0.01)
        except KeyboardInterrupt:
            pass
        with pytest.raises(KeyboardInterrupt):
            bar.update(task, completed=2)
        with pytest.raises(KeyboardInterrupt):
            bar.advance(task)


def test_a_signal_during_publication_lands_after_the_whole_set(tmp_path):
    from prefpaint_sdk.files import write_set

    interrupts.install(reset=True)

    def first(p: Path) -> None:
        p.write_text("a")

    def second(p: Path) -> None:  # a signal while the set is being written: nothing is published
        p.write_text("b")

    write_set({tmp_path / "a.txt": first, tmp_path / "b.txt": second})
    real_replace = os.replace

    def replace_then_signal(src, dst):  # the signal arrives between the renames of one set
        real_replace(src, dst)
        signal.raise_signal(signal.SIGINT)

    os.replace = replace_then_signal
    try:
        with pytest.raises(KeyboardInterrupt):
            write_set({tmp_path / "c.txt": first, tmp_path / "d.txt": second}, overwrite=True)
    finally:
        os.replace = real_replace
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c.txt", "d.txt"]


def test_graceful_first_signal_asks_second_raises():
    asked = []
    interrupts.install(reset=True)
    with interrupts.graceful(asked.append):
        signal.raise_signal(signal.SIGTERM)
        time.sleep(0.01)
        assert asked == [signal.SIGTERM] and interrupts.stop_requested()
        interrupts.check()  # a graceful loop is not stopped by the safe points
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
            time.sleep(0.01)
    with pytest.raises(KeyboardInterrupt):  # after the block, the record stops the run
        interrupts.check()
    assert interrupts.exit_code() == 143


def test_the_cli_exits_with_the_signal_even_when_the_exception_was_swallowed(tmp_path, monkeypatch):
    """A command whose body swallows the KeyboardInterrupt still exits 143 with one 'interrupted' line."""
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    images = tmp_path / "imgs"
    images.mkdir()
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(images / "a.png")
    calls = []

    def swallowing_umask_modes(*args, **kwargs):  # runs just before the folder is published
        calls.append(1)
        try:
            signal.raise_signal(signal.SIGTERM)
            time.sleep(0.01)
        except KeyboardInterrupt:
            pass

    import prefpaint_sdk.files.folders as folders

    monkeypatch.setattr(folders, "apply_umask_modes", swallowing_umask_modes)
    r = CliRunner().invoke(app, ["masks", "generate", str(images), "--kind", "strokes", "-o", str(tmp_path / "m")])
    assert calls, "the simulation did not run: update it to the new code path"
    assert r.exit_code == 143, r.output
    assert "interrupted" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "m").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["imgs"]


# ------------------------------------------------------------------------------------------------
# Every long command, through the real entry point


@dataclass(frozen=True)
class Cmd:
    id: str
    argv: Callable[[Path, dict], list]  # (work folder, inputs) -> arguments; outputs go under work
    done: Callable[[Path], bool]  # the run completed (it must not have)
    whole: Callable[[Path], None] = lambda work: None  # asserts that every output set under work is whole
    window: float = 2.0  # seconds within which the signal lands after its origin
    slow: bool = True
    origins: tuple = ("start", "work")  # "start": once the process owns its signals; "work": its first output
    busy: Callable[[Path, str], bool] = lambda work, err: any(work.iterdir())  # (work, stderr) -> it is working


def _pairs(folder: Path, a: str, b: str) -> None:
    """Every ``x<a>`` has its ``x<b>`` and the other way round (an image and its sidecar)."""
    if folder.is_dir():
        left = {p.name[: -len(a)] for p in folder.glob(f"*{a}")}
        right = {p.name[: -len(b)] for p in folder.glob(f"*{b}")}
        assert left == right, f"half sets in {folder}: {sorted(left ^ right)}"


def _records(out: Path) -> None:
    """The jobs layout: a record means its whole set is there; no file without an ok record."""
    if not out.is_dir():
        return
    ok = set()
    for rec in (out / "records").glob("*.json"):
        r = json.loads(rec.read_text())
        if r["status"] == "ok":
            ok.add(r["id"])
            for f in r.get("files", []):
                assert (out / f).is_file(), f"record {rec.name} names a missing file {f}"
    owned = {f for r in (out / "records").glob("*.json") for f in json.loads(r.read_text()).get("files", [])}
    for p in out.rglob("*"):
        rel = str(p.relative_to(out))
        if p.is_file() and not rel.startswith("records") and rel not in owned:
            pytest.fail(f"{rel} is in the output without a record")


def _checkpoints(folder: Path, members: set) -> None:
    for ck in folder.glob("*") if folder.is_dir() else []:
        if ck.is_dir():
            assert members <= {p.name for p in ck.iterdir()}, f"checkpoint {ck.name} is not whole"


MODEL = ["--offline", "--device", "cpu", "--dtype", "float32"]
COMMANDS = [
    Cmd("masks-generate", lambda w, i: ["masks", "generate", i["large"], "--kind", "warp", "-o", w / "masks"],
        done=lambda w: (w / "masks").exists(), window=1.0, slow=False),
    # rate's own work takes a fraction of a second: both signals land in its start-up
    Cmd("rate", lambda w, i: ["rate", i["rate"](w)], done=lambda w: (w / "rdata" / "rate.html").exists(),
        window=0.15, slow=False, origins=("start", "start")),
    Cmd("inpaint-batch", lambda w, i: ["inpaint", i["many"], i["mask"], "-o", w / "out", "--model", i["model"],
                                       "--steps", "4", *MODEL],
        done=lambda w: len(list((w / "out").glob("*.png"))) == 60, whole=lambda w: _pairs(w / "out", ".png", ".json")),
    Cmd("inpaint-manifest", lambda w, i: ["inpaint", "--manifest", i["jobs"], "-o", w / "out", "--model", i["model"],
                                          "--steps", "4", *MODEL],
        done=lambda w: (w / "out" / "results.jsonl").exists(), whole=lambda w: _records(w / "out")),
    Cmd("score-manifest", lambda w, i: ["score", "--manifest", i["score_jobs"], "-o", w / "out", "--reward-model", i["rm"],
                                        "--offline", "--device", "cpu"],
        done=lambda w: (w / "out" / "results.jsonl").exists(), whole=lambda w: _records(w / "out")),
    # extend writes only at the end: its work has begun once it has printed its plan
    Cmd("extend", lambda w, i: ["extend", i["image"], "-o", w / "ext.png", "--model", i["model"], "--ratio", "3",
                                "--window", "32", "--steps", "2", *MODEL],
        done=lambda w: (w / "ext.png").exists(), busy=lambda work, err: "extending" in err),
    Cmd("recon3d", lambda w, i: ["recon3d", i["scene"], "-o", w / "rec", "--model", i["model"], "--depth-model", "none",
                                 "--views", "40", "--steps", "2", "--voxel-size", "0.08", "--depth-trunc", "9", *MODEL],
        done=lambda w: (w / "rec").exists()),
    Cmd("eval", lambda w, i: ["eval", "--data", i["edata"], "-o", w / "ev", "--model", i["model"], "--baseline",
                              i["model"], "--reward-model", i["rm"], "--samples", "1", "--steps", "2", *MODEL],
        done=lambda w: (w / "ev" / "report.html").exists() or (w / "ev" / "results.csv").exists()),
    Cmd("train-reward", lambda w, i: ["train", "reward", "--data", i["rdata"], "--out", w / "run", "--preset",
                                      "cpu-smoke", "--epochs", "400", "--batch-size", "4"],
        done=lambda w: (w / "run" / "model").exists(),
        whole=lambda w: _checkpoints(w / "run" / "checkpoints", {"model.safetensors", "state.json"})),
    Cmd("train-align", lambda w, i: ["train", "align", "--data", i["adata"], "--out", w / "run", "--model", i["model"],
                                     "--reward", "brightness", "--preset", "cpu-smoke", "--iterations", "400",
                                     "--no-export", "--offline", "--set", "eval_every=0", "--set", "save_every=1",
                                     "--set", "log_with=none"],
        done=lambda w: (w / "run" / "checkpoints" / "iter_000400").exists(),
        whole=lambda w: _checkpoints(w / "run" / "checkpoints", {"trainable.safetensors"})),
    Cmd("generate-dataset", lambda w, i: ["generate-dataset", i["many"], "-o", w / "gd", "--model", i["model"],
                                          "--steps", "2", "--per-image", "1", "--offline", "--device", "cpu"],
        done=lambda w: (w / "gd" / "results.jsonl").exists(), whole=lambda w: _records(w / "gd")),
]


class _Inputs(dict):
    """Inputs shared by the runs (read-only), each built on first use: enough work that no run completes
    within its window."""

    def __init__(self, root: Path, request) -> None:
        super().__init__()
        self.root, self.request = root, request

    def __missing__(self, key: str):
        self[key] = value = getattr(self, f"_{key}")()
        return value

    def _many(self) -> Path:
        many = self.root / "many"
        many.mkdir()
        rng = np.random.default_rng(SEED)
        for k in range(60):
            Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(many / f"im{k:03d}.png")
        return many

    def _model(self) -> Path:
        return self.request.getfixturevalue("tiny_pipeline_dir")

    def _large(self) -> Path:  # masks generate: larger images, so that its work outlasts the window
        large = self.root / "large"
        large.mkdir()
        rng = np.random.default_rng(SEED)
        for k in range(300):
            Image.fromarray(rng.integers(0, 256, (192, 256, 3), dtype=np.uint8)).save(large / f"im{k:03d}.png")
        return large

    def _score_jobs(self) -> Path:  # scoring is quick: many larger images
        large, mask = self["large"], self.root / "large-mask.png"
        hole = np.zeros((192, 256), np.uint8)
        hole[48:144, 64:192] = 255
        Image.fromarray(hole).save(mask)
        (self.root / "score.jsonl").write_text("".join(
            json.dumps({"id": f"s{k:04d}", "image": str(large / f"im{k % 300:03d}.png"), "mask": str(mask)}) + "\n"
            for k in range(3000)))
        return self.root / "score.jsonl"

    def _image(self) -> Path:
        return self["many"] / "im000.png"

    def _mask(self) -> Path:
        hole = np.zeros((48, 64), np.uint8)
        hole[12:36, 16:48] = 255
        Image.fromarray(hole).save(self.root / "mask.png")
        return self.root / "mask.png"

    def _jobs(self) -> Path:
        many, mask = self["many"], self["mask"]
        (self.root / "jobs.jsonl").write_text("".join(
            json.dumps({"id": f"j{k:03d}", "image": str(many / f"im{k % 60:03d}.png"), "mask": str(mask)}) + "\n"
            for k in range(600)))
        return self.root / "jobs.jsonl"

    def _scene(self) -> Path:
        from _recon3d_fakes import scene
        from prefpaint_apps.recon3d.testing import write_scene

        write_scene(scene(3, 160, 120).frames, self.root / "scene", "redwood")
        return self.root / "scene"

    def _rm(self) -> Path:
        from prefpaint_sdk.testing import save_tiny_reward_model

        return save_tiny_reward_model(self.root / "rm")

    def _edata(self) -> Path:
        from _helpers_eval import write_data

        return write_data(self.root / "edata", n=40, size=32)

    def _adata(self) -> Path:
        from _helpers_align import make_data

        return make_data(self.root / "adata", n=8, size=32)

    def _rdata(self) -> Path:
        from prefpaint_sdk.testing import write_synthetic_reward_dataset

        return write_synthetic_reward_dataset(self.root / "rdata", n_prompts=6, per_prompt=2, size=32)

    def _rate(self) -> Callable[[Path], Path]:
        from prefpaint_sdk.testing import write_synthetic_reward_dataset

        data = write_synthetic_reward_dataset(self.root / "rate-data", n_prompts=100, per_prompt=3, size=32)

        def copy(work: Path) -> Path:  # rate writes into DATA: each run gets its own copy (hard links)
            dest = work / "rdata"
            for p in sorted(data.rglob("*")):
                q = dest / p.relative_to(data)
                if p.is_dir():
                    q.mkdir(parents=True, exist_ok=True)
                else:
                    q.parent.mkdir(parents=True, exist_ok=True)
                    os.link(p, q)
            return dest

        return copy


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, request):
    return _Inputs(tmp_path_factory.mktemp("interrupt-inputs"), request)


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""




@dataclass
class _Run:
    sig: int
    origin: str  # "start": after the process owns its signals; "work": after its first output activity
    delay: float
    work: Path
    proc: subprocess.Popen | None = None
    out: Path | None = None  # where its stdout and stderr go
    err: Path | None = None
    t0: float | None = None
    sent: bool = False


def _interrupted(cmd: Cmd, inputs: dict, tmp_path: Path) -> list[_Run]:
    rng = random.Random(f"{SEED}-{cmd.id}")
    sigs = [signal.SIGINT, signal.SIGTERM]
    rng.shuffle(sigs)
    runs = [_Run(sig, origin, rng.uniform(0.0, cmd.window), tmp_path / signal.Signals(sig).name)
            for sig, origin in zip(sigs, cmd.origins)]
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", COLUMNS="2000", PYTHONWARNINGS="")
    for run in runs:
        run.work.mkdir()
        argv = [str(a) for a in cmd.argv(run.work, inputs)]
        run.out, run.err = (run.work.parent / f"{run.work.name}.{k}" for k in ("out", "err"))
        with open(run.out, "w") as out, open(run.err, "w") as err:
            run.proc = subprocess.Popen([str(PREFPAINT), *argv], stdout=out, stderr=err, env=env)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not all(r.sent or r.proc.poll() is not None for r in runs):
        now = time.monotonic()
        for r in runs:
            if r.sent or r.proc.poll() is not None:
                continue
            if r.t0 is None:
                if owns_sigterm(r.proc.pid) and (r.origin == "start" or cmd.busy(r.work, _text(r.err))):
                    r.t0 = now
            elif now >= r.t0 + r.delay:
                r.proc.send_signal(r.sig)
                r.sent = True
        time.sleep(0.005)
    for r in runs:
        try:
            r.proc.wait(timeout=150)
        except subprocess.TimeoutExpired:
            r.proc.kill()
            r.proc.wait()
            pytest.fail(f"{cmd.id}: no exit within 150 s of {signal.Signals(r.sig).name}")
    return runs


@pytest.mark.parametrize("cmd", [pytest.param(c, id=c.id, marks=[pytest.mark.slow] if c.slow else [])
                                 for c in COMMANDS])
def test_a_signal_at_a_random_time_stops_the_command(cmd, inputs, tmp_path):
    for r in _interrupted(cmd, inputs, tmp_path):
        name = f"{cmd.id} {signal.Signals(r.sig).name} {r.delay:.2f} s after {r.origin}"
        out, err = _text(r.out), _text(r.err)
        shown = f"\n--- {name}: exit {r.proc.returncode}\n--- stderr:\n{err[-3000:]}\n--- stdout:\n{out[-2000:]}"
        finished = r.proc.returncode == 0 and cmd.done(r.work)
        assert r.sent and not finished, f"the run ended before its signal landed: give it more work{shown}"
        assert "Traceback" not in out + err and "Exception ignored" not in err, f"traceback{shown}"
        assert r.proc.returncode == EXPECTED[r.sig], f"exit code{shown}"
        assert re.search(r"^interrupted$|stopped at iteration", err, re.M), f"no 'interrupted' line{shown}"
        assert not cmd.done(r.work), f"the run completed after the signal{shown}"
        litter = [str(p.relative_to(r.work)) for p in r.work.rglob("*") if LITTER.search(p.name)]
        assert not litter, f"temporary files left: {litter}{shown}"
        for p in r.work.rglob("*.json"):
            json.loads(p.read_text())  # every file is whole
        cmd.whole(r.work)
