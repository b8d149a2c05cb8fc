"""Bad input: every case gets a typed error that names the offending value or file and the fix."""

from __future__ import annotations

import json
import shutil

import pytest
from _recon3d_fakes import scene
from PIL import Image
from prefpaint_apps.recon3d import Recon3DConfig, load_scene, novel_cameras, read_trajectory, reconstruct
from prefpaint_apps.recon3d.testing import write_scene

from prefpaint_sdk import DataError, InvalidInputError, OutputExistsError


@pytest.fixture(scope="module")
def frames():
    return scene(3, 160, 120).frames


def _cfg(**kw):
    return Recon3DConfig(**{"views": 1, "voxel_size": 0.08, "depth_trunc": 9.0, "depth_model": None, "fusion_backend": "scalable", **kw})


class _Copy:
    """Inpainter stand-in that returns the image unchanged."""

    model_id = "fake/copy"

    def __call__(self, image, mask, **kw):
        from types import SimpleNamespace

        return SimpleNamespace(image=image, seeds=[kw.get("seed")], scores=None, best_index=0)


@pytest.mark.parametrize(
    "fmt,remove,match",
    [
        ("tum", "groundtruth.txt", r"TUM scene at .* is missing 'groundtruth.txt'"),
        ("tum", "depth.txt", r"is missing 'depth.txt'"),
        ("replica", "traj.txt", r"Replica scene at .* is missing 'traj.txt'"),
        ("colmap", "sparse/0/images.txt", r"COLMAP scene at .* is missing 'sparse/0/images.txt'"),
        ("scannet", "intrinsic/intrinsic_depth.txt", r"ScanNet scene at .* is missing 'intrinsic/intrinsic_depth.txt'"),
        ("scannet", "pose", r"is missing 'pose'"),
        ("redwood", "trajectory.log", r"Open3D/Redwood scene at .* is missing a '\*.log' trajectory"),
        ("redwood", "depth", r"is missing 'depth/'"),
    ],
)
def test_missing_pieces_are_named(tmp_path, frames, fmt, remove, match):
    root = write_scene(frames, tmp_path / fmt, fmt)
    p = root / remove
    shutil.rmtree(p) if p.is_dir() else p.unlink()
    with pytest.raises(DataError, match=match):
        load_scene(root, fmt)


def test_empty_and_unrecognised_folders_list_layouts(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"'.*empty' is empty\. Looked for: nerfstudio: transforms\.json.*colmap.*tum.*replica.*scannet.*redwood.*single"):
        load_scene(tmp_path / "empty")
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "a.txt").write_text("x")
    with pytest.raises(DataError, match="matches no supported layout"):
        load_scene(tmp_path / "junk")
    with pytest.raises(InvalidInputError, match="unknown scene format 'blender'; choose one of: auto, nerfstudio"):
        load_scene(tmp_path / "junk", "blender")
    with pytest.raises(InvalidInputError, match=r"depth_scale must be > 0, got -1.0"):
        load_scene(tmp_path / "junk", "tum", depth_scale=-1.0)


def test_malformed_files(tmp_path, frames):
    root = write_scene(frames, tmp_path / "rep", "replica")
    (root / "traj.txt").write_text("1 2 3\n4 5 6\n")
    with pytest.raises(DataError, match="has 3 numbers per line; expected 16"):
        load_scene(root)
    root = write_scene(frames, tmp_path / "ns", "nerfstudio")
    (root / "transforms.json").write_text(json.dumps({"frames": []}))
    with pytest.raises(DataError, match="lists no frames"):
        load_scene(root)
    (root / "transforms.json").write_text("{not json")
    with pytest.raises(DataError, match="is not valid JSON"):
        load_scene(root)
    root = write_scene(frames, tmp_path / "rw", "redwood")
    (root / "trajectory.log").write_text("0 0 1\n1 0 0 0\n")
    with pytest.raises(DataError, match="blocks of 1 index line \\+ 4 pose lines"):
        load_scene(root)
    root = write_scene(frames, tmp_path / "rw2", "redwood")
    lines = (root / "trajectory.log").read_text().splitlines()
    lines[1] = "2 0 0 0"  # a scaled rotation is not a rotation
    (root / "trajectory.log").write_text("\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match="not a proper rotation"):
        load_scene(root)
    root = write_scene(frames, tmp_path / "rw3", "redwood")
    (root / "depth" / "000002.png").unlink()
    with pytest.raises(DataError, match="3 colour images, 2 depth maps and 3 poses"):
        load_scene(root)
    with pytest.raises(DataError, match="unknown extension '.csv'"):
        (tmp_path / "t.csv").write_text("1")
        read_trajectory(tmp_path / "t.csv", frames[0].intrinsics)
    with pytest.raises(InvalidInputError, match="views=0 must be at least 1"):
        novel_cameras([frames[0].c2w], 0, 2.0)


def test_mismatched_image_and_depth_sizes(tmp_path, frames):
    root = write_scene(frames, tmp_path / "rw", "redwood")
    small = Image.open(root / "depth" / "000001.png").resize((80, 60))
    small.save(root / "depth" / "000001.png")
    with pytest.raises(DataError, match=r"depth map .*000001.png is 80x60 but the image and camera are 160x120"):
        reconstruct(root, tmp_path / "out", _cfg(), inpainter=_Copy())


def test_image_not_matching_intrinsics(tmp_path, frames):
    root = write_scene(frames, tmp_path / "rw", "redwood")
    k = json.loads((root / "camera_intrinsic.json").read_text())
    k["width"], k["height"] = 640, 480
    (root / "camera_intrinsic.json").write_text(json.dumps(k))
    with pytest.raises(DataError, match="image is 160x120 but the camera intrinsics are 640x480"):
        reconstruct(root, tmp_path / "out", _cfg(), inpainter=_Copy())


def test_absurd_depth_scale(tmp_path, frames):
    root = write_scene(frames, tmp_path / "tum", "tum")
    with pytest.raises(DataError, match=r"median depth is 13\d+\.\d+ m, outside the plausible .* pass depth_scale$"):
        reconstruct(root, tmp_path / "out", _cfg(depth_scale=1.0), inpainter=_Copy())
    with pytest.raises(DataError, match=r"median depth is 0.00\d+ m"):
        reconstruct(root, tmp_path / "out2", _cfg(depth_scale=5e6), inpainter=_Copy())


def test_unreadable_frames_are_skipped_and_counted(tmp_path, frames):
    more = frames + [frames[1]]
    root = write_scene(more, tmp_path / "rw", "redwood")
    (root / "color" / "000003.png").write_bytes(b"not a png")
    res = reconstruct(root, tmp_path / "out", _cfg(), inpainter=_Copy())
    assert res.metrics["scene"]["unreadable_frames"] == 1 and res.metrics["scene"]["used_frames"] == 3
    for name in ("000000", "000001", "000002"):
        (root / "color" / f"{name}.png").write_bytes(b"")
    with pytest.raises(DataError, match="all 4 frames of .* are unreadable; first error: image .* is unreadable"):
        reconstruct(root, tmp_path / "out2", _cfg(), inpainter=_Copy())


def test_multi_view_without_depth_and_single_image_without_model(tmp_path, frames):
    root = write_scene(frames, tmp_path / "cm", "colmap")
    shutil.rmtree(root / "depths")
    with pytest.raises(DataError, match="has no depth for frame .frame_00000. \\(3 such frames\\); multi-view input needs a depth map per frame, or sparse points"):
        reconstruct(root, tmp_path / "out", _cfg(), inpainter=_Copy())
    Image.fromarray(frames[0].rgb).save(tmp_path / "one.png")
    with pytest.raises(InvalidInputError, match="need a depth model; drop depth_model='none'"):
        reconstruct(tmp_path / "one.png", tmp_path / "out3", _cfg(), inpainter=_Copy())


class _MustNotLoad:
    """Inpainter/depth stand-in that fails the test if the pipeline ever gets as far as using a model."""

    kind = "depth"
    model_id = "fake/never"

    def __call__(self, *a, **kw):
        raise AssertionError("a model was used before the cheap checks failed")


@pytest.mark.parametrize(
    "kw,param,match",
    [
        ({"voxel_size": 0.0}, "voxel_size", r"voxel_size must be > 0, got 0.0"),
        ({"voxel_size": -0.1}, "voxel_size", r"voxel_size must be > 0"),
        ({"voxel_size": float("nan")}, "voxel_size", r"voxel_size must be a finite number"),
        ({"depth_trunc": float("inf")}, "depth_trunc", r"depth_trunc must be a finite number"),
        ({"voxel_size": 0.5, "depth_trunc": 0.1}, "depth_trunc", r"depth_trunc=0.1 must be larger than voxel_size=0.5"),
        ({"views": 0}, "views", r"views must be ≥ 1, got 0"),
        ({"views": -3}, "views", r"views must be ≥ 1, got -3"),
        ({"num_candidates": 0}, "num_candidates", r"num_candidates must be ≥ 1, got 0"),
        ({"steps": 0}, "steps", r"steps must be ≥ 1"),
        ({"seed": -1}, "seed", r"seed must be between 0 and 4294967295"),
        ({"seed": 2**32 - 1, "views": 2}, "seed", r"seed must be between 0 and 4294967295 \(and seed \+ 1 for 2 derived"),
        ({"depth_scale": float("inf")}, "depth_scale", r"depth_scale must be a finite number"),
        ({"guidance_scale": float("nan")}, "guidance_scale", r"guidance_scale must be a finite number"),
        ({"fov": 180.0}, "fov", r"fov must be between 0 and 180"),
        ({"fusion_backend": "gpu"}, "fusion_backend", r"fusion_backend must be one of auto, scalable, voxelblockgrid"),
        ({"trajectory": "/nonexistent/traj.log"}, None, r"trajectory file '/nonexistent/traj.log' does not exist"),
    ],
)
def test_bad_settings_fail_before_any_model_and_write_nothing(tmp_path, frames, kw, param, match):
    root = write_scene(frames, tmp_path / "rw", "redwood")
    out = tmp_path / "out"
    with pytest.raises(InvalidInputError, match=match) as info:
        reconstruct(root, out, _cfg(**kw), inpainter=_MustNotLoad(), depth_estimator=_MustNotLoad())
    assert getattr(info.value, "param", None) == param
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["rw"]  # no stage left beside it


def test_trajectory_seed_range_counts_its_poses(tmp_path, frames):
    from prefpaint_apps.recon3d.testing import write_log

    root = write_scene(frames, tmp_path / "rw", "redwood")
    write_log(tmp_path / "t.log", [f.c2w for f in frames])  # 3 novel views: seeds seed..seed+2
    cfg = _cfg(trajectory=str(tmp_path / "t.log"), seed=2**32 - 2)
    with pytest.raises(InvalidInputError, match=r"seed \+ 2 for 3 derived seeds"):
        reconstruct(root, tmp_path / "out", cfg, inpainter=_MustNotLoad(), depth_estimator=_MustNotLoad())


def test_output_location_problems(tmp_path, frames):
    root = write_scene(frames, tmp_path / "rw", "redwood")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInputError, match="is a file"):
        reconstruct(root, tmp_path / "f", _cfg(), inpainter=_MustNotLoad(), depth_estimator=_MustNotLoad())
    assert (tmp_path / "f").read_text() == "x"
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty"):
        reconstruct(root, tmp_path / "full", _cfg(), inpainter=_MustNotLoad(), depth_estimator=_MustNotLoad())
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
