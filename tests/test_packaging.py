"""What ``pip install .`` promises: a light core, extras that name themselves when missing, honest bounds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from packaging.requirements import Requirement
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]

# What a core install lacks: the 3D stack ([recon3d]) and the training tracker ([train]).
OPTIONAL = ("open3d", "trimesh", "imageio", "imageio_ffmpeg", "tensorboard", "tensorboardX")

# Run the real CLI in one fresh interpreter where the optional packages cannot be found, as after `pip install .`.
# Each command's stdout and stderr end with a marker line carrying its exit code.
_CORE_CLI = """
import json, sys
from importlib.machinery import PathFinder
BLOCKED = {blocked!r}
class _CoreInstall(PathFinder):  # sys.path's finder, blind to the blocked packages: find_spec() says "not installed"
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] in BLOCKED else super().find_spec(name, path, target)
sys.meta_path[:] = [_CoreInstall if f is PathFinder else f for f in sys.meta_path]
from prefpaint_cli.main import app
for argv in json.loads(sys.argv[1]):
    try:
        app(argv, prog_name="prefpaint")
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    for stream in (sys.stdout, sys.stderr):
        print(f"@@exit {{code}}", file=stream, flush=True)
"""
_MARK = re.compile(r"^@@exit (-?\d+)$", re.M)


def _names(reqs: list[str]) -> set[str]:
    return {Requirement(r).name.lower().replace("_", "-") for r in reqs}


def _run_core(commands: list[list], cwd: Path) -> list[tuple[int, str]]:
    """(exit code, stdout + stderr) of each command, run one after another in one core-only interpreter."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "COLUMNS": "200"}
    argv = json.dumps([[str(a) for a in c] for c in commands])
    r = subprocess.run([sys.executable, "-c", _CORE_CLI.format(blocked=OPTIONAL), argv], capture_output=True, text=True,
                       cwd=cwd, timeout=300, env=env, check=False)
    outs, errs = _MARK.split(r.stdout), _MARK.split(r.stderr)
    assert r.returncode == 0 and len(outs) == len(errs) == 2 * len(commands) + 1, r.stdout + r.stderr
    return [(int(outs[2 * i + 1]), outs[2 * i] + errs[2 * i]) for i in range(len(commands))]


def test_core_dependencies_leave_out_the_3d_stack_and_tensorboard():
    core = _names(PROJECT["dependencies"])
    assert not core & {"open3d", "trimesh", "imageio", "imageio-ffmpeg", "tensorboard", "tensorboardx", "pycolmap", "wandb"}
    assert _names(EXTRAS["recon3d"]) == {"open3d", "trimesh", "imageio", "imageio-ffmpeg"}
    assert _names(EXTRAS["train"]) == {"tensorboard"}
    assert _names(EXTRAS["serve"]) == {"fastapi", "uvicorn", "python-multipart"}
    assert not core & _names(EXTRAS["serve"])
    assert "filelock" in core
    # The set-up script installs every extra the test suite needs.
    assert '-e ".[recon3d,train,serve,docs,dev]"' in (ROOT / "scripts" / "setup.sh").read_text()


def test_installed_versions_meet_the_declared_bounds():
    """The declared lower bounds are the tested versions: this environment must satisfy every one of them."""
    reqs = (PROJECT["dependencies"] + EXTRAS["recon3d"] + EXTRAS["train"] + EXTRAS["serve"] + EXTRAS["docs"]
            + EXTRAS["dev"])
    bad = []
    for r in map(Requirement, reqs):
        have = metadata.version(r.name)
        if not r.specifier.contains(have.split("+")[0], prereleases=True):
            bad.append(f"{r} (installed {have})")
    assert not bad, bad


def test_declared_python_matches_ruff_and_this_interpreter():
    spec = Requirement(f"python{PROJECT['requires-python']}").specifier
    assert spec.contains(f"{sys.version_info.major}.{sys.version_info.minor}")
    assert not spec.contains("3.10")  # 3.10 is neither supported nor tested (tomllib is used without a fallback)
    assert PYPROJECT["tool"]["ruff"]["target-version"] == "py311"


def test_test_command_runs_ruff_import_linter_and_installs_chromium():
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    assert "ruff check ." in test_sh and "lint-imports" in test_sh and "chromium" in test_sh
    ci = (ROOT / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci and "CI=" in ci


@pytest.fixture()
def photo(tmp_path):
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)).save(tmp_path / "photo.png")
    mask = np.zeros((40, 56), np.uint8)
    mask[8:24, 16:40] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    return tmp_path


def test_core_install_inpaints_and_each_extra_names_itself(photo, tiny_pipeline_dir):
    from prefpaint_sdk.testing import save_tiny_reward_model

    reward_dir = save_tiny_reward_model(photo / "reward")
    data = photo / "data"
    (data / "images").mkdir(parents=True)
    Image.open(photo / "photo.png").save(data / "images" / "a.png")
    out = photo / "out.png"
    (inpaint, score, extend, masks, recon3d, reward, align) = _run_core([
        ["inpaint", "photo.png", "mask.png", "-o", out, "--model", tiny_pipeline_dir, "--steps", "1", "--seed", "0", "--quiet"],
        ["score", "out.png", "mask.png", "--reward-model", reward_dir, "--json", "--quiet"],
        ["extend", "photo.png", "-o", "wide.png", "--ratio-x", "1.5", "--model", tiny_pipeline_dir, "--steps", "1", "--quiet"],
        ["masks", "generate", data / "images", "--kind", "strokes", "-o", "masks", "--quiet"],
        ["recon3d", "photo.png", "-o", "scene3d", "--model", tiny_pipeline_dir, "--depth-model", "none", "--views", "1",
         "--steps", "1", "--quiet"],
        ["train", "reward", "--data", data, "--out", "rw", "--preset", "cpu-smoke"],
        ["train", "align", "--data", data, "--out", "al", "--model", tiny_pipeline_dir, "--reward", "brightness",
         "--preset", "cpu-smoke"],
    ], cwd=photo)
    for code, text in (inpaint, score, extend, masks):
        assert code == 0, text
    assert Image.open(out).size == (56, 40) and out.with_suffix(".json").is_file()
    assert json.loads(score[1].strip().splitlines()[-1])["image"] == "out.png"
    assert Image.open(photo / "wide.png").size == (84, 40) and (photo / "masks" / "a.png").is_file()

    for (code, text), extra in ((recon3d, "recon3d"), (reward, "train"), (align, "train")):
        assert code == 2, text
        assert "Traceback" not in text and len(text.strip().splitlines()) == 1, text
        assert f"pip install 'prefpaint[{extra}]'" in text, text
    assert "log_with" in reward[1] and "log_with" in align[1]
    assert not any((photo / name).exists() for name in ("scene3d", "rw", "al"))
