"""Scene formats: every writer → reader round trip recovers poses and intrinsics exactly; detection;
camera conventions."""

from __future__ import annotations

import json

import numpy as np
import pytest
from _recon3d_fakes import scene
from prefpaint_apps.recon3d import Intrinsics, detect_format, load_scene, read_trajectory
from prefpaint_apps.recon3d.cameras import look_at, opencv_to_opengl, opengl_to_opencv, quat_to_rotmat, rotmat_to_quat
from prefpaint_apps.recon3d.testing import write_scene

FORMATS = [("nerfstudio", {}), ("colmap", {}), ("colmap", {"binary": True}), ("tum", {}), ("replica", {}), ("redwood", {}), ("scannet", {})]
# depth quantisation of each format's 16-bit PNG (metres per raw unit), halved for rounding
QUANT = {"nerfstudio": 1 / 1000, "colmap": 1 / 1000, "tum": 1 / 5000, "replica": 1 / 6553.5, "redwood": 1 / 1000, "scannet": 1 / 1000}


@pytest.fixture(scope="module")
def small():
    return scene(3, 160, 120)


@pytest.mark.parametrize("fmt,kw", FORMATS, ids=[f + ("-bin" if kw else "") for f, kw in FORMATS])
def test_round_trip_recovers_poses_intrinsics_and_depth(tmp_path, small, fmt, kw):
    root = write_scene(small.frames, tmp_path / fmt, fmt, **kw)
    assert detect_format(root) == fmt
    sc = load_scene(root)
    assert sc.format == fmt and len(sc.frames) == len(small.frames)
    for got, want in zip(sc.frames, small.frames):
        np.testing.assert_allclose(got.c2w, want.c2w, atol=1e-9, rtol=0)
        k, w = got.intrinsics, want.intrinsics
        assert (k.width, k.height) == (w.width, w.height)
        np.testing.assert_allclose([k.fx, k.fy, k.cx, k.cy], [w.fx, w.fy, w.cx, w.cy], atol=1e-9, rtol=0)
        d = got.load_depth()
        assert d.dtype == np.float32 and d.shape == want.depth.shape
        assert np.abs(d - want.depth).max() <= QUANT[fmt] / 2 + 1e-6
        rgb = got.load_rgb()
        if fmt == "scannet":  # colour is stored at 2x and resampled back to depth resolution
            assert np.abs(rgb.astype(int) - want.rgb.astype(int)).mean() < 3
        else:
            np.testing.assert_array_equal(rgb, want.rgb)


def test_scannet_skips_frames_with_invalid_pose(tmp_path, small):
    root = write_scene(small.frames, tmp_path / "sn", "scannet")
    np.savetxt(root / "pose" / "1.txt", np.full((4, 4), -np.inf))
    sc = load_scene(root)
    assert [f.name for f in sc.frames] == ["0", "2"]
    assert len(sc.skipped) == 1 and "invalid pose" in sc.skipped[0]


def test_tum_associates_by_nearest_timestamp(tmp_path, small):
    root = write_scene(small.frames, tmp_path / "tum", "tum")
    # an extra colour frame 1 s later has no depth or pose within 0.02 s: dropped, not mis-paired
    (root / "rgb.txt").write_text((root / "rgb.txt").read_text() + "2000.000000 rgb/1000.000000.png\n")
    sc = load_scene(root)
    assert len(sc.frames) == 3 and len(sc.skipped) == 1


def test_tum_without_intrinsics_uses_published_calibration(tmp_path, small):
    root = write_scene(small.frames, tmp_path / "rgbd_dataset_freiburg1_xyz", "tum")
    (root / "camera_intrinsic.json").unlink()
    sc = load_scene(root)
    assert sc.frames[0].intrinsics.fx == 517.3 and "freiburg1" in sc.notes[0]


def test_nerfstudio_instant_ngp_camera_angle(tmp_path, small):
    root = write_scene(small.frames, tmp_path / "ns", "nerfstudio")
    meta = json.loads((root / "transforms.json").read_text())
    k = small.frames[0].intrinsics
    for f in meta["frames"]:
        for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
            f.pop(key)
    meta["camera_angle_x"] = 2 * np.arctan(k.width / (2 * k.fx))
    (root / "transforms.json").write_text(json.dumps(meta))
    got = load_scene(root).frames[0].intrinsics
    assert got.fx == pytest.approx(k.fx) and (got.width, got.height) == (k.width, k.height)
    assert got.cx == pytest.approx(k.width / 2 - 0.5)


def test_single_image(tmp_path, small):
    from PIL import Image

    Image.fromarray(small.frames[0].rgb).save(tmp_path / "photo.png")
    for root in (tmp_path / "photo.png", tmp_path):
        sc = load_scene(root, fov=60)
        assert sc.format == "single" and len(sc.frames) == 1 and not sc.has_depth
        k = sc.frames[0].intrinsics
        assert k.fx == pytest.approx(0.5 * 160 / np.tan(np.radians(30)))
        np.testing.assert_array_equal(sc.frames[0].c2w, np.eye(4))


def test_max_frames_subsamples_evenly(tmp_path, small):
    root = write_scene(small.frames, tmp_path / "r", "redwood")
    sc = load_scene(root, max_frames=2)
    assert [f.name for f in sc.frames] == ["000000", "000002"]


def test_camera_conventions():
    q = np.array([0.3, -0.5, 0.2, 0.79])
    R = quat_to_rotmat(q)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(quat_to_rotmat(rotmat_to_quat(R)), R, atol=1e-12)
    np.testing.assert_allclose(quat_to_rotmat(rotmat_to_quat(R, "xyzw"), "xyzw"), R, atol=1e-12)
    c2w = look_at([1.0, 2.0, 3.0], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(opengl_to_opencv(opencv_to_opengl(c2w)), c2w, atol=1e-15)
    # OpenCV looks along +z: the target is straight ahead, and world-up appears up in the image (-y)
    ahead = np.linalg.inv(c2w) @ np.array([0.0, 0.0, 0.0, 1.0])
    assert ahead[2] > 0 and abs(ahead[0]) < 1e-12 and abs(ahead[1]) < 1e-12
    up_cam = np.linalg.inv(c2w)[:3, :3] @ np.array([0.0, 1.0, 0.0])
    assert up_cam[1] < 0
    k = Intrinsics(500, 500, 319.5, 239.5, 640, 480).scaled(320, 240)
    assert (k.fx, k.cx, k.cy) == (250, 159.5, 119.5)


@pytest.mark.parametrize("kind", ["log", "tum", "rows", "json", "camera_path"])
def test_trajectory_files(tmp_path, small, kind):
    from prefpaint_apps.recon3d.testing import write_log

    poses = [f.c2w for f in small.frames]
    k = small.frames[0].intrinsics
    if kind == "log":
        p = tmp_path / "t.log"
        write_log(p, poses)
    elif kind == "tum":
        p = tmp_path / "t.txt"
        p.write_text("".join(f"{i} {' '.join(repr(float(v)) for v in c[:3, 3])} {' '.join(repr(float(v)) for v in rotmat_to_quat(c[:3, :3], 'xyzw'))}\n" for i, c in enumerate(poses)))
    elif kind == "rows":
        p = tmp_path / "t.txt"
        np.savetxt(p, np.stack([c.reshape(-1) for c in poses]), fmt="%.17g")
    elif kind == "json":
        p = tmp_path / "t.json"
        p.write_text(json.dumps({"frames": [{"transform_matrix": opencv_to_opengl(c).tolist()} for c in poses]}))
    else:  # nerfstudio's camera path: flattened OpenGL camera-to-world and a vertical fov in degrees
        p = tmp_path / "camera_path.json"
        vfov = float(np.degrees(2 * np.arctan(k.height / 2 / k.fy)))
        p.write_text(json.dumps({"render_width": k.width, "render_height": k.height, "camera_path": [
            {"camera_to_world": opencv_to_opengl(c).reshape(-1).tolist(), "fov": vfov} for c in poses]}))
    got = read_trajectory(p, k)
    assert len(got) == 3
    for (kk, c), want in zip(got, poses):
        assert (kk.width, kk.height) == (k.width, k.height) and kk.fx == pytest.approx(k.fx) and kk.fy == pytest.approx(k.fy)
        np.testing.assert_allclose(c, want, atol=1e-9)


@pytest.mark.parametrize("binary", [False, True], ids=["txt", "bin"])
def test_colmap_sparse_points_give_sparse_depth(tmp_path, small, binary):
    root = write_scene(small.frames, tmp_path / "cm", "colmap", binary=binary, depth_maps=False, sparse_every=8)
    sc = load_scene(root)
    assert not sc.has_depth
    for got, want in zip(sc.frames, small.frames):
        uvz = got.sparse_depth
        assert uvz is not None and len(uvz) == (want.depth[::8, ::8] > 0).sum()
        u, v = uvz[:, 0].astype(int), uvz[:, 1].astype(int)
        np.testing.assert_allclose(uvz[:, :2], np.stack([u, v], 1), atol=1e-9)  # integer pixel centres, OpenCV convention
        np.testing.assert_allclose(uvz[:, 2], want.depth[v, u], rtol=1e-5)
