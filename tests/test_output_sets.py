"""Whole output sets: umask modes, all-or-nothing sets and folders, and errors that name the user's path."""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from prefpaint_sdk import InpaintResult, InvalidInputError, OutputExistsError
from prefpaint_sdk import files as F
from prefpaint_sdk.testing import write_png_bomb


@pytest.fixture()
def umask():
    """Set the process umask for one test, and restore it after."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda m: os.umask(m)
    os.umask(old)


def _mode(p: Path) -> int:
    return p.stat().st_mode & 0o777


def _listing(folder: Path) -> list[str]:
    """Every name under ``folder`` (hidden temporary names included), relative, sorted."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _image(value: int = 0, size=(8, 6)) -> Image.Image:
    return Image.new("RGB", size, (value, value, value))


class _Exploding:
    """An image whose save writes half a file and then fails (the way an interrupt mid-write would)."""

    def __init__(self, exc: BaseException):
        self.exc = exc

    def save(self, fp, format=None):  # noqa: A002 - PIL's signature
        Path(fp).write_bytes(b"\x89PNG half")
        raise self.exc


# ---------------------------------------------------------------------------------------------- modes

@pytest.mark.parametrize("mask,fmode,dmode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)])
def test_modes_follow_the_umask(tmp_path, umask, mask, fmode, dmode):
    umask(mask)
    img = F.save_image(_image(), tmp_path / "new" / "deeper" / "a.png")
    js = F.atomic_write_json(tmp_path / "a.json", {"x": 1})
    a, b = F.write_set({tmp_path / "s.png": F.image_writer(_image(), tmp_path / "s.png"),
                        tmp_path / "s.json": F.json_writer({"y": 2})})
    with F.staged_dir(tmp_path / "model") as stage:
        (stage / "sub").mkdir()
        (stage / "sub" / "w.bin").write_bytes(b"w")
        private = stage / "private.bin"
        private.write_bytes(b"p")
        os.chmod(private, 0o600)  # a library that writes its own mode gets the umask's anyway
        os.chmod(stage / "sub", 0o700)
    for f in (img, js, a, b, tmp_path / "model" / "sub" / "w.bin", tmp_path / "model" / "private.bin"):
        assert _mode(f) == fmode, f
    for d in (tmp_path / "new", tmp_path / "new" / "deeper", tmp_path / "model", tmp_path / "model" / "sub"):
        assert _mode(d) == dmode, d


def test_atomic_dir_is_staged_dir_with_overwrite(tmp_path, umask):
    umask(0o022)
    with F.atomic_dir(tmp_path / "ckpt") as stage:
        (stage / "a").write_text("1")
    with F.atomic_dir(tmp_path / "ckpt") as stage:  # replaces without asking: the caller decided
        (stage / "b").write_text("2")
    assert _listing(tmp_path) == ["ckpt", "ckpt/b"]
    assert _mode(tmp_path / "ckpt") == 0o755


# ------------------------------------------------------------------------------------ all or nothing

@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_set_is_written_whole_or_not_at_all(tmp_path, exc):
    writers = {tmp_path / "out.png": F.image_writer(_image(), tmp_path / "out.png"),
               tmp_path / "out_cand1.png": F.image_writer(_Exploding(exc), tmp_path / "out_cand1.png"),
               tmp_path / "out.json": F.json_writer({"a": 1})}
    with pytest.raises(type(exc)):
        F.write_set(writers)
    assert _listing(tmp_path) == []  # no member, no temporary name
    # With --overwrite, a failed set leaves the old members byte for byte.
    F.save_image(_image(7), tmp_path / "out.png")
    before = (tmp_path / "out.png").read_bytes()
    with pytest.raises(type(exc)):
        F.write_set(writers, overwrite=True)
    assert _listing(tmp_path) == ["out.png"] and (tmp_path / "out.png").read_bytes() == before


def test_a_failed_set_removes_the_folders_it_created(tmp_path):
    dest = tmp_path / "a" / "b" / "out.png"
    with pytest.raises(KeyboardInterrupt):
        F.write_set({dest: F.image_writer(_Exploding(KeyboardInterrupt()), dest)})
    assert _listing(tmp_path) == []


def test_ctrl_c_during_the_renames_is_held_back_until_the_set_is_whole(tmp_path, monkeypatch):
    # Python's own Ctrl-C handler, as a program started from a terminal has it: a test run started in the
    # background by a non-interactive shell inherits SIGINT ignored, and an ignored signal rightly raises nothing
    # (conftest puts the handler back after the test).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    real_replace = os.replace
    calls = []

    def replace_then_signal(src, dst):
        calls.append(dst)
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right after the first member is in place
        return real_replace(src, dst)

    monkeypatch.setattr(F.os, "replace", replace_then_signal)
    paths = [tmp_path / f"m{i}.json" for i in range(3)]
    with pytest.raises(KeyboardInterrupt):
        F.write_set({p: F.json_writer({"i": i}) for i, p in enumerate(paths)}, overwrite=True)
    assert len(calls) == 3  # the interrupt arrived after the first rename and waited for the others
    assert _listing(tmp_path) == ["m0.json", "m1.json", "m2.json"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _result(n=2) -> InpaintResult:
    cands = [_image(10 * k) for k in range(n)]
    return InpaintResult(image=cands[1], candidates=cands, seeds=[5, 6], best_index=1, params={"steps": 4})


def test_inpaint_result_save_is_one_set(tmp_path, monkeypatch):
    r = _result()
    written = r.save(tmp_path / "o.png", save_all=True)
    assert written == [str(tmp_path / n) for n in ("o.png", "o.json", "o_cand0.png", "o_cand1.png")]
    facts = json.loads((tmp_path / "o.json").read_text())
    assert facts["seed"] == 6 and facts["candidate_files"] == ["o_cand0.png", "o_cand1.png"]
    # One refused member refuses the whole set, before anything is written.
    (tmp_path / "p_cand1.png").write_bytes(b"keep")
    with pytest.raises(OutputExistsError, match="p_cand1.png"):
        r.save(tmp_path / "p.png", save_all=True)
    assert not (tmp_path / "p.png").exists() and (tmp_path / "p_cand1.png").read_bytes() == b"keep"
    # An interrupt while writing the last candidate leaves the old set as it was.
    old = {n: (tmp_path / n).read_bytes() for n in ("o.png", "o.json", "o_cand0.png", "o_cand1.png")}
    r.candidates[1] = _Exploding(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        r.save(tmp_path / "o.png", save_all=True, overwrite=True)
    assert {n: (tmp_path / n).read_bytes() for n in old} == old
    assert _listing(tmp_path) == sorted([*old, "p_cand1.png"])


def test_inpaint_result_refuses_nan_and_a_sidecar_clash(tmp_path):
    r = _result()
    r.scores = [0.5, float("nan")]
    with pytest.raises(InvalidInputError, match=r"o\.json.*'scores\[1\]' is nan"):
        r.save(tmp_path / "o.png")
    with pytest.raises(InvalidInputError, match=r"unknown suffix '\.json'"):
        _result().save(tmp_path / "o.json")  # it would be its own sidecar
    with pytest.raises(InvalidInputError, match=r"'.*o\.json' is written twice in one output set"):
        F.write_set({str(tmp_path / "o.json"): F.json_writer({}), f"{tmp_path}/./o.json": F.json_writer({})})
    assert _listing(tmp_path) == []


# --------------------------------------------------------------------------------------------- folders

def test_overwrite_replaces_a_folder_whole(tmp_path):
    dest = tmp_path / "views"
    with F.staged_dir(dest) as stage:
        for v in ("001", "002"):
            (stage / v).mkdir()
            (stage / v / "rgb.png").write_bytes(b"old")
    with pytest.raises(OutputExistsError, match="views' already exists and is not empty; pass overwrite=True"):
        with F.staged_dir(dest):
            pass
    with F.staged_dir(dest, overwrite=True) as stage:
        (stage / "001").mkdir()
        (stage / "001" / "rgb.png").write_bytes(b"new")
    assert _listing(tmp_path) == ["views", "views/001", "views/001/rgb.png"]  # no views/002, no stage
    assert (dest / "001" / "rgb.png").read_bytes() == b"new"


@pytest.mark.parametrize("exc", [RuntimeError("boom"), KeyboardInterrupt()])
def test_a_failed_folder_leaves_the_old_one(tmp_path, exc):
    dest = tmp_path / "out" / "masks"
    with pytest.raises(type(exc)):
        with F.staged_dir(dest) as stage:
            (stage / "a.png").write_bytes(b"x")
            raise exc
    assert _listing(tmp_path) == []  # nothing, not even the parent it created
    with F.staged_dir(dest) as stage:
        (stage / "a.png").write_bytes(b"v1")
    with pytest.raises(type(exc)):
        with F.staged_dir(dest, overwrite=True) as stage:
            (stage / "b.png").write_bytes(b"v2")
            raise exc
    assert _listing(tmp_path) == ["out", "out/masks", "out/masks/a.png"]


def test_an_empty_folder_is_not_refused(tmp_path):
    (tmp_path / "m").mkdir()
    assert F.check_output_dir(tmp_path / "m") == tmp_path / "m"
    with F.staged_dir(tmp_path / "m") as stage:
        (stage / "x").write_text("1")
    assert _listing(tmp_path) == ["m", "m/x"]


# ---------------------------------------------------------------------------------------------- errors

def test_errors_name_the_users_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("plain.txt").write_text("a file")
    with pytest.raises(InvalidInputError, match=r"cannot write 'plain.txt/sub/out.png': 'plain.txt' is a file, not a folder"):
        F.check_outputs(["plain.txt/sub/out.png"])
    with pytest.raises(InvalidInputError, match="output folder 'plain.txt' is a file"):
        F.check_output_dir("plain.txt")
    Path("folder").mkdir()
    with pytest.raises(InvalidInputError, match="output 'folder' is a folder"):
        F.check_outputs(["folder"])
    with pytest.raises(InvalidInputError, match="output '/dev/null' is not a regular file"):
        F.save_image(_image(), "/dev/null", overwrite=True)  # never replace a device node
    assert Path("/dev/null").is_char_device()
    with pytest.raises(InvalidInputError, match=r"unknown suffix '\.txt'"):
        F.save_image(_image(), "image.txt")
    with pytest.raises(InvalidInputError) as info:
        F.save_image(_image(), "/proc/x.png")
    assert str(info.value).startswith("cannot write '/proc/x.png'") and ".tmp" not in str(info.value)
    assert _listing(tmp_path) == ["folder", "plain.txt"]


def test_an_unwritable_folder_is_refused_before_work(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    # os.access answers yes to root everywhere, so the refusal is simulated for the folder itself.
    monkeypatch.setattr(F.os, "access", lambda p, m: False if Path(p) == locked else real_access(p, m))
    with pytest.raises(InvalidInputError, match=r"cannot write '.*locked/a/out.png': the folder \(the nearest existing "
                                                r"one above it\) '.*locked' is not writable; choose another"):
        F.check_outputs([locked / "a" / "out.png"])
    with pytest.raises(InvalidInputError, match="'.*locked' is not writable"):
        F.check_output_dir(locked / "views")


def test_a_write_error_names_the_destination(tmp_path):
    def disk_full(tmp: Path):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    with pytest.raises(InvalidInputError) as info:
        F.write_set({tmp_path / "big.png": disk_full})
    msg = str(info.value)
    assert msg.startswith(f"cannot write '{tmp_path / 'big.png'}': No space left on device") and ".tmp" not in msg
    assert _listing(tmp_path) == []
    with pytest.raises(InvalidInputError, match="cannot write the folder '.*stage_me': No space left"):
        with F.staged_dir(tmp_path / "stage_me") as stage:
            raise OSError(errno.ENOSPC, "No space left on device", str(stage / "w.bin"))
    assert _listing(tmp_path) == []


def test_json_is_strict_and_names_the_key(tmp_path):
    with pytest.raises(InvalidInputError, match=r"cannot write '.*m.json': 'report.winrate' is nan"):
        F.atomic_write_json(tmp_path / "m.json", {"report": {"winrate": np.float32("nan")}})
    with pytest.raises(InvalidInputError, match=r"'rows\[1\]\[0\]' is inf"):
        F.strict_json_dumps({"rows": [[1.0], [float("inf")]]})
    assert not (tmp_path / "m.json").exists()
    assert json.loads(F.strict_json_dumps({"a": np.float32(0.5), "p": Path("x")})) == {"a": 0.5, "p": "x"}


def test_an_existing_member_is_refused_before_anything_is_written(tmp_path):
    (tmp_path / "b.json").write_text("keep")
    with pytest.raises(OutputExistsError, match="b.json' already exists; pass overwrite=True"):
        F.write_set({tmp_path / "a.png": F.image_writer(_image(), tmp_path / "a.png"),
                     tmp_path / "b.json": F.json_writer({})})
    assert _listing(tmp_path) == ["b.json"] and (tmp_path / "b.json").read_text() == "keep"


# ----------------------------------------------------------------------------------- masks generate

def _images(folder: Path, n: int) -> Path:
    folder.mkdir()
    for i in range(n):
        Image.fromarray(np.full((12, 16, 3), i, np.uint8)).save(folder / f"im{i:03d}.png")
    return folder


def test_masks_generate_overwrite_replaces_the_folder_and_skips_bad_images(tmp_path):
    from prefpaint_sdk.evaluation import generate_mask_set

    imgs = _images(tmp_path / "imgs", 3)
    out = tmp_path / "masks"
    generate_mask_set(imgs, "strokes", out)
    (imgs / "im002.png").unlink()
    (imgs / "broken.png").write_bytes(b"not a png")
    write_png_bomb(imgs / "bomb.png")  # a few dozen bytes claiming 100000x100000 pixels
    with pytest.raises(OutputExistsError):
        generate_mask_set(imgs, "strokes", out)
    errors = []
    records = generate_mask_set(imgs, "strokes", out, overwrite=True, on_error=lambda p, e: errors.append(p.name))
    assert [r["mask"] for r in records] == ["im000.png", "im001.png"]
    assert errors == ["bomb.png", "broken.png"]
    assert sorted(p.name for p in out.iterdir()) == ["im000.png", "im001.png", "masks.json"]  # im002.png is gone
    meta = json.loads((out / "masks.json").read_text())
    assert [Path(s["image"]).name for s in meta["skipped"]] == ["bomb.png", "broken.png"]
    assert "over the limit" in meta["skipped"][0]["error"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "masks"]


_SLOW_CLI = textwrap.dedent("""
    import pathlib, sys, time
    import prefpaint_sdk.evaluation.masksets as m
    marker = pathlib.Path(sys.argv.pop(1))
    real = m.mask_for
    def slow(*a, **k):
        marker.touch()
        time.sleep(0.02)
        return real(*a, **k)
    m.mask_for = slow
    from prefpaint_cli.main import main
    sys.argv[0] = "prefpaint"
    main()
""")


def test_ctrl_c_during_masks_generate_leaves_no_partial_folder(tmp_path):
    imgs = _images(tmp_path / "imgs", 60)
    out = tmp_path / "runs" / "masks"
    marker = tmp_path / "started"
    cmd = [sys.executable, "-c", _SLOW_CLI, str(marker), "masks", "generate", str(imgs), "--kind", "strokes", "-o", str(out)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "200"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert marker.exists(), proc.communicate()
    time.sleep(0.1)  # a few masks into the run
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    assert [line for line in (stdout + stderr).splitlines() if line.strip()] == ["interrupted"]
    assert not (tmp_path / "runs").exists()  # no folder, no stage, and the parent it created is gone too
    # A rerun without --overwrite completes.
    from prefpaint_cli.main import app
    from typer.testing import CliRunner

    done = CliRunner().invoke(app, ["masks", "generate", str(imgs), "--kind", "strokes", "-o", str(out), "-q"])
    assert done.exit_code == 0, done.output
    assert len(list(out.glob("*.png"))) == 60 and len(json.loads((out / "masks.json").read_text())["masks"]) == 60
