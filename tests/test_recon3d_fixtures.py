"""Readers against files we did not write: hand-written fixtures (tests/data/scenes/, see its README) and
COLMAP models written by pycolmap (text and binary, with a camera rig). Expected poses are computed here
from first principles (Rodrigues' formula, the OpenGL/OpenCV axis flip), never with the reader's helpers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from prefpaint_apps.recon3d import check_scene, load_scene
from prefpaint_apps.recon3d.formats.nerfstudio import read as read_nerfstudio

from prefpaint_sdk import DataError

DATA = Path(__file__).parent / "data" / "scenes"
TOL = 1e-7
GL = np.diag([1.0, -1.0, -1.0, 1.0])  # OpenGL <-> OpenCV camera axes (y and z flipped)


def rodrigues(axis, degrees) -> np.ndarray:
    a = np.asarray(axis, float) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = np.radians(degrees)
    return np.eye(3) + np.sin(t) * k + (1 - np.cos(t)) * k @ k


def pose(r: np.ndarray, t) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3], m[:3, 3] = r, t
    return m


R60 = rodrigues((0, 0.6, 0.8), 60)  # the fixtures' non-trivial rotation (not symmetric)


def test_r60_is_what_the_fixtures_hold():
    assert not np.allclose(R60, R60.T)
    np.testing.assert_allclose(R60, [[0.5, -0.69282032302755092, 0.5196152422706632], [0.69282032302755092, 0.68, 0.24],
                                     [-0.5196152422706632, 0.24, 0.82]], atol=1e-15)


def test_tum_fixture():
    root = DATA / "tum" / "rgbd_dataset_freiburg1_fixture"
    sc = load_scene(root)
    assert sc.format == "tum" and [f.name for f in sc.frames] == ["1305031102.175304", "1305031102.211214"]
    assert len(sc.skipped) == 1 and "1305031103.5" in sc.skipped[0]  # no depth or pose within 0.02 s
    # groundtruth.txt: t tx ty tz qx qy qz qw, camera-to-world; the nearest pose in time, not the decoys
    np.testing.assert_allclose(sc.frames[0].c2w, pose(rodrigues((1, 0, 0), 90), (0.1, 0.2, 0.3)), atol=TOL)
    np.testing.assert_allclose(sc.frames[1].c2w, pose(R60, (1.5, -0.25, 2.0)), atol=TOL)
    assert sc.frames[0].depth_path.name == "1305031102.160407.png" and sc.frames[1].depth_path.name == "1305031102.226738.png"
    k = sc.frames[0].intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (517.3, 516.5, 318.6, 255.3, 8, 6)  # published freiburg1
    np.testing.assert_allclose(sc.frames[1].load_depth(), 2.0)  # 10000 / 5000 per metre
    notes = " ".join(sc.notes)
    assert "published freiburg1 calibration" in notes
    assert "freiburg1 lens distortion (d0..d4 = k1 k2 p1 p2 k3 = 0.2624 -0.9531 -0.0054 0.0026 1.1633) ignored" in notes


@pytest.mark.parametrize("sensor,noted", [("freiburg2", "0.2312 -0.7849 -0.0033 -0.0001 0.9172"), ("freiburg3", None)])
def test_tum_distortion_notes_follow_the_published_calibration(tmp_path, sensor, noted):
    root = tmp_path / f"rgbd_dataset_{sensor}_x"
    shutil.copytree(DATA / "tum" / "rgbd_dataset_freiburg1_fixture", root)
    notes = " ".join(load_scene(root).notes)
    assert f"published {sensor} calibration" in notes
    assert ("distortion" in notes) == (noted is not None) and (noted is None or noted in notes)


def test_nerfstudio_fixture():
    sc = load_scene(DATA / "nerfstudio")
    assert sc.format == "nerfstudio" and len(sc.frames) == 2
    # transform_matrix is camera-to-world with OpenGL axes: internal (OpenCV) = M @ diag(1, -1, -1, 1)
    np.testing.assert_allclose(sc.frames[0].c2w, pose(np.eye(3), (0.5, -1.0, 2.0)) @ GL, atol=TOL)
    np.testing.assert_allclose(sc.frames[1].c2w, pose(R60, (0.25, 0.5, -1.5)) @ GL, atol=TOL)
    k = sc.frames[1].intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (10.5, 11.0, 3.75, 2.25, 8, 6)  # corner-origin cx/cy - 0.5
    np.testing.assert_allclose(sc.frames[0].load_depth(), 1.5)  # 1500 mm
    assert any("lens distortion (k1=0.012, k2=-0.003; 2 of 2 frames) ignored" in n for n in sc.notes), sc.notes


@pytest.mark.parametrize(
    "change,noted",
    [
        ({"camera_model": "OPENCV_FISHEYE"}, "camera_model OPENCV_FISHEYE is read as a pinhole"),
        ({"camera_model": "EQUIRECTANGULAR", "k1": 0, "k2": 0}, "camera_model EQUIRECTANGULAR is read as a pinhole"),
        ({"camera_model": "PINHOLE", "k1": 0, "k2": 0}, None),
    ],
)
def test_nerfstudio_notes_camera_models_it_ignores(tmp_path, change, noted):
    root = tmp_path / "ns"
    shutil.copytree(DATA / "nerfstudio", root)
    meta = json.loads((root / "transforms.json").read_text())
    meta.update(change)
    (root / "transforms.json").write_text(json.dumps(meta))
    notes = " ".join(read_nerfstudio(root).notes)
    assert (noted in notes) if noted else notes == ""


def test_nerfstudio_per_frame_distortion_and_3x4_matrices(tmp_path):
    root = tmp_path / "ns"
    shutil.copytree(DATA / "nerfstudio", root)
    meta = json.loads((root / "transforms.json").read_text())
    del meta["k1"], meta["k2"]
    meta["frames"][1]["p1"] = 0.001
    meta["frames"][1]["transform_matrix"] = meta["frames"][1]["transform_matrix"][:3]
    (root / "transforms.json").write_text(json.dumps(meta))
    sc = read_nerfstudio(root)
    assert any("lens distortion (p1=0.001 on frame 1; 1 of 2 frames) ignored" in n for n in sc.notes), sc.notes
    np.testing.assert_allclose(sc.frames[1].c2w, pose(R60, (0.25, 0.5, -1.5)) @ GL, atol=TOL)


@pytest.mark.parametrize("content,match", [("[]", "holds a JSON list"), ('{"frames": [1]}', "frame 0 lacks"),
                                           ('{"frames": [{"file_path": "a.png", "transform_matrix": "x"}], "fl_x": 1}',
                                            "frame 0 has a malformed value"),
                                           ('{"frames": [{"file_path": "a.png"}], "depth_unit_scale_factor": -1}',
                                            "depth_unit_scale_factor must be a positive number")])
def test_nerfstudio_malformed_files_are_data_errors(tmp_path, content, match):
    (tmp_path / "transforms.json").write_text(content)
    with pytest.raises(DataError, match=match):
        read_nerfstudio(tmp_path)


def test_scannet_fixture():
    sc = load_scene(DATA / "scannet")
    assert sc.format == "scannet" and [f.name for f in sc.frames] == ["0", "1"]
    assert sc.skipped == ["2: invalid pose (inf/nan: tracking lost)"]
    np.testing.assert_allclose(sc.frames[0].c2w, pose(np.eye(3), (0.5, -1.0, 2.0)), atol=TOL)
    np.testing.assert_allclose(sc.frames[1].c2w, pose(R60, (0.25, 0.5, -1.5)), atol=TOL)  # row-major camera-to-world
    k = sc.frames[0].intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (5.5, 5.75, 3.5, 2.5, 8, 6)  # depth intrinsics at depth size
    assert sc.frames[0].load_rgb().shape == (6, 8, 3)  # 16x12 colour resampled to the depth's 8x6
    np.testing.assert_allclose(sc.frames[1].load_depth(), 2.5)


def test_replica_fixture():
    sc = load_scene(DATA / "replica")
    assert sc.format == "replica" and len(sc.frames) == 2
    np.testing.assert_allclose(sc.frames[0].c2w, pose(np.eye(3), (0.5, -1.0, 2.0)), atol=TOL)
    np.testing.assert_allclose(sc.frames[1].c2w, pose(R60, (0.25, 0.5, -1.5)), atol=TOL)
    k = sc.frames[0].intrinsics
    assert (k.fx, k.fy, k.cx, k.cy, k.width, k.height) == (6.0, 6.5, 3.5, 2.5, 8, 6)
    np.testing.assert_allclose(sc.frames[0].load_depth(), 13107 / 6553.5)


# ------------------------------------------------------------------------------------------- pycolmap


def _pycolmap_model(root: Path, binary: bool):
    """A model written by pycolmap: a PINHOLE camera and an OPENCV camera in one rig, two frames."""
    import pycolmap  # the [dev] extra installs it: the suite must run it, never skip it

    rec = pycolmap.Reconstruction()
    c1 = pycolmap.Camera(camera_id=1, model="PINHOLE", width=8, height=6, params=[10.0, 11.0, 4.0, 3.0])
    c2 = pycolmap.Camera(camera_id=2, model="OPENCV", width=8, height=6, params=[12.0, 12.5, 3.9, 3.1, 0.01, -0.002, 0.0005, 0.0001])
    rec.add_camera(c1)
    rec.add_camera(c2)
    rig = pycolmap.Rig(rig_id=1)
    rig.add_ref_sensor(c1.sensor_id)
    # the second camera sits 0.1 m along x of the first, turned 45° about z (quaternion given as xyzw)
    rig.add_sensor(c2.sensor_id, pycolmap.Rigid3d(pycolmap.Rotation3d(np.array([0, 0, np.sin(np.pi / 8), np.cos(np.pi / 8)])),
                                                  np.array([0.1, 0.0, 0.0])))
    rec.add_rig(rig)
    rig_from_world = [(np.array([0.0, 0.3, 0.4, 0.8660254037844386]), np.array([1.0, 2.0, 3.0])),  # xyzw: R60, w2c
                      (np.array([0.0, 0.0, 0.0, 1.0]), np.array([0.0, 0.0, 0.5]))]
    names = []
    for fid, (q, t) in enumerate(rig_from_world, 1):
        frame = pycolmap.Frame(frame_id=fid, rig_id=1)
        frame.rig_from_world = pycolmap.Rigid3d(pycolmap.Rotation3d(q), t)
        for cam in (c1, c2):
            iid = 2 * (fid - 1) + cam.camera_id
            frame.add_data_id(pycolmap.data_t(cam.sensor_id, iid))
        rec.add_frame(frame)
        for cam in (c1, c2):
            iid = 2 * (fid - 1) + cam.camera_id
            img = pycolmap.Image(name=f"f{fid}_c{cam.camera_id}.png", camera_id=cam.camera_id, image_id=iid)
            img.frame_id = fid
            rec.add_image(img)
            names.append(img.name)
        rec.register_frame(fid)
    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True)
    (rec.write_binary if binary else rec.write_text)(str(sparse))
    (root / "images").mkdir()
    for n in names:
        Image.new("RGB", (8, 6), (90, 120, 150)).save(root / "images" / n)
    return rec


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_colmap_models_written_by_pycolmap(tmp_path, binary):
    rec = _pycolmap_model(tmp_path, binary)
    assert {p.name for p in (tmp_path / "sparse" / "0").iterdir()} >= {f"rigs.{'bin' if binary else 'txt'}", f"frames.{'bin' if binary else 'txt'}"}
    sc = load_scene(tmp_path)
    assert sc.format == "colmap" and [f.name for f in sc.frames] == ["f1_c1", "f1_c2", "f2_c1", "f2_c2"]
    by_name = {f.name: f for f in sc.frames}
    # against pycolmap's own composition of rig and sensor poses
    for img in rec.images.values():
        w2c = np.vstack([img.cam_from_world().matrix(), [0, 0, 0, 1]])
        np.testing.assert_allclose(by_name[img.name.removesuffix(".png")].c2w, np.linalg.inv(w2c), atol=TOL)
    # and against the hand-computed truth: COLMAP stores world-to-camera; sensor_from_world = sensor_from_rig @ rig_from_world
    w2c_1 = pose(R60, (1.0, 2.0, 3.0))
    np.testing.assert_allclose(by_name["f1_c1"].c2w, np.linalg.inv(w2c_1), atol=TOL)
    cam2_from_rig = pose(rodrigues((0, 0, 1), 45), (0.1, 0.0, 0.0))
    np.testing.assert_allclose(by_name["f1_c2"].c2w, np.linalg.inv(cam2_from_rig @ w2c_1), atol=TOL)
    np.testing.assert_allclose(by_name["f2_c1"].c2w, pose(np.eye(3), (0.0, 0.0, -0.5)), atol=TOL)
    k1, k2 = by_name["f1_c1"].intrinsics, by_name["f1_c2"].intrinsics
    assert (k1.fx, k1.fy, k1.cx, k1.cy) == (10.0, 11.0, 3.5, 2.5)  # COLMAP pixel centres at +0.5
    assert (k2.fx, k2.fy, k2.cx, k2.cy) == pytest.approx((12.0, 12.5, 3.4, 2.6), abs=1e-12)
    assert len(sc.notes) == 1 and "OPENCV distortion [0.01, -0.002, 0.0005, 0.0001] ignored" in sc.notes[0]


def test_check_passes_a_consistent_scene_and_fails_flipped_poses(tmp_path):
    # Replica poses inverted (world-to-camera read as camera-to-world, a classic mistake) must fail --check
    from _recon3d_fakes import scene
    from prefpaint_apps.recon3d import SceneCheckError, require_consistent
    from prefpaint_apps.recon3d.testing import write_scene

    root = write_scene(scene(3, 160, 120).frames, tmp_path / "rep", "replica")
    good = check_scene(load_scene(root))
    assert require_consistent(good) is good and good["consistent_share"] > 0.7
    traj = np.loadtxt(root / "traj.txt")
    np.savetxt(root / "traj.txt", np.stack([np.linalg.inv(r.reshape(4, 4)).ravel() for r in traj]))
    bad = check_scene(load_scene(root))
    with pytest.raises(SceneCheckError, match=r"only \d+\.\d% of reprojected pixels agree .* below the 50% threshold"):
        require_consistent(bad)
