"""``prefpaint recon3d`` end to end with the tiny offline model, ``--check``, and bad input through the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _recon3d_fakes import scene
from prefpaint_apps.recon3d.testing import write_scene
from prefpaint_cli.main import app
from typer.testing import CliRunner

runner = CliRunner()


@pytest.fixture(scope="module")
def redwood(tmp_path_factory):
    return write_scene(scene(3, 160, 120).frames, tmp_path_factory.mktemp("scenes") / "redwood", "redwood")


def test_end_to_end_with_tiny_model(redwood, tiny_pipeline_dir, tmp_path):
    import open3d as o3d
    import trimesh

    out = tmp_path / "out"
    args = ["recon3d", str(redwood), "-o", str(out), "--model", str(tiny_pipeline_dir), "--views", "2", "--steps", "2",
            "--depth-model", "none", "--voxel-size", "0.08", "--depth-trunc", "9", "--device", "cpu", "--dtype", "float32",
            "--seed", "3", "-n", "2", "--offline"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert "2 novel views" in text and "voxel 0.08 m" in text
    for name in ("mesh.ply", "mesh.glb", "points.ply", "transforms.json", "metrics.json", "contact_sheet.png",
                 "flythrough.mp4", "views/000/rgb.png", "views/000/depth.png", "views/000/holes.png", "views/000/valid.png",
                 "views/001/inpainted.png"):
        assert (out / name).is_file(), name
    mesh = o3d.io.read_triangle_mesh(str(out / "mesh.ply"))
    assert len(mesh.triangles) > 500
    assert len(o3d.io.read_point_cloud(str(out / "points.ply")).points) > 500
    assert len(trimesh.load(out / "mesh.glb", force="mesh").faces) == len(mesh.triangles)
    m = json.loads((out / "metrics.json").read_text())
    assert m["scene"]["format"] == "redwood" and m["inpainting"]["model"]
    assert [v["seeds"] for v in m["views"]] == [[3, 4], [4, 5]]
    # a second run into the same folder is refused (exit 2), and allowed with --overwrite
    r2 = runner.invoke(app, args)
    assert r2.exit_code == 2 and "not empty" in " ".join(r2.output.split())
    # --views 1 --overwrite replaces the folder whole: views/001 of the first run is gone
    r3 = runner.invoke(app, [a if a != "2" else "1" for a in args] + ["--overwrite"])
    assert r3.exit_code == 0, r3.output
    assert sorted(p.name for p in (out / "views").iterdir()) == ["000"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_check_reports_consistency(redwood, tmp_path):
    r = runner.invoke(app, ["recon3d", str(redwood), "--check"])
    assert r.exit_code == 0, r.output
    assert "depth-consistent pixels between neighbouring frames" in " ".join(r.output.split())
    # poses written as world-to-camera (a classic mistake) are caught
    from prefpaint_apps.recon3d.formats.redwood import read_log
    from prefpaint_apps.recon3d.testing import write_log

    bad = tmp_path / "bad"
    write_scene(scene(3, 160, 120).frames, bad, "redwood")
    write_log(bad / "trajectory.log", [np.linalg.inv(p) for p in read_log(bad / "trajectory.log")])
    r = runner.invoke(app, ["recon3d", str(bad), "--check"])
    text = " ".join(r.output.split())
    assert r.exit_code == 2, r.output  # a failed check fails the command (SceneCheckError, a DataError)
    assert "below the 50% threshold" in text and "check the pose convention" in text and "Traceback" not in r.output


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--voxel-size", "0"], "voxel"),
        (["--voxel-size", "-0.1"], "voxel"),
        (["--views", "0"], "views"),
        (["--depth-trunc", "0"], "depth"),
        (["--depth-scale", "0"], "depth"),
        (["--steps", "0"], "steps"),
        (["-n", "0"], "candidates"),
        (["--trajectory", "/nonexistent/t.log"], "does not exist"),
    ],
)
def test_cheap_checks_fail_before_the_model_loads(redwood, tmp_path, flags, match):
    # --model names a folder that does not exist: reaching the loader would exit 3, not 2
    out = tmp_path / "out"
    r = runner.invoke(app, ["recon3d", str(redwood), "-o", str(out), "--model", str(tmp_path / "no-model"), "--offline", *flags])
    assert r.exit_code == 2, r.output
    assert match in r.output.lower() and "Traceback" not in r.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "setup,match",
    [
        (lambda p: p.mkdir(), "is empty. Looked for: nerfstudio: transforms.json"),
        (lambda p: (p.mkdir(), (p / "notes.txt").write_text("hi")), "matches no supported layout"),
        (lambda p: None, "does not exist"),
    ],
    ids=["empty", "unrecognised", "missing"],
)
def test_bad_scene_folders_exit_2(tmp_path, setup, match):
    p = tmp_path / "scene"
    setup(p)
    r = runner.invoke(app, ["recon3d", str(p), "-o", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert match in " ".join(r.output.split())


def test_cli_usage_errors(redwood, tmp_path):
    r = runner.invoke(app, ["recon3d", str(redwood)])
    assert r.exit_code == 2 and "no output folder" in " ".join(r.output.split())
    r = runner.invoke(app, ["recon3d", str(redwood), "--format", "blender", "-o", str(tmp_path / "o")])
    assert r.exit_code == 2 and "unknown scene format 'blender'" in " ".join(r.output.split())
