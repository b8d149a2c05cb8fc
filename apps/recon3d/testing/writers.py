"""Scene writers for tests, benchmarks and examples: frames in each supported on-disk layout.

These are *testing helpers*, not part of the runtime: the readers in :mod:`prefpaint_apps.recon3d.formats`
never import them, and the tests check each reader against files written by other tools (``pycolmap``)
or by hand from each format's documentation (``tests/data/scenes/``), never only against these writers.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError, InvalidInputError

from ..cameras import Intrinsics, opencv_to_opengl, rotmat_to_quat
from ..scene import Frame

__all__ = ["WRITERS", "save_depth16", "save_rgb", "write_log", "write_open3d_intrinsic", "write_scene"]


def save_rgb(path: Path, rgb: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(path)


def save_depth16(path: Path, depth_m: np.ndarray, depth_scale: float) -> None:
    """Write metres as a 16-bit PNG in raw units (``raw = round(depth * depth_scale)``; 0 stays invalid).

    Raises:
        DataError: depths that do not fit 16 bits at this scale.
    """
    from PIL import Image

    raw = np.round(np.asarray(depth_m, dtype=np.float64) * depth_scale)
    if raw.max(initial=0) > 65535:
        raise DataError(f"depth {depth_m.max():.2f} m does not fit a 16-bit PNG at scale {depth_scale}; lower depth_trunc or the scale")
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(raw.astype(np.uint16)).save(path)


def write_open3d_intrinsic(path: Path, intr: Intrinsics) -> None:
    """Write an Open3D ``PinholeCameraIntrinsic`` JSON (column-major matrix, as Open3D writes it)."""
    m = intr.K.reshape(-1, order="F").tolist()
    Path(path).write_text(json.dumps({"width": intr.width, "height": intr.height, "intrinsic_matrix": m}, indent=1))


def write_log(path: Path, poses: list[np.ndarray]) -> None:
    """Write camera-to-world poses as an Open3D ``.log`` trajectory."""
    out = []
    for i, p in enumerate(poses):
        out.append(f"{i} {i} {i + 1}\n" + "".join(" ".join(f"{v:.17g}" for v in row) + "\n" for row in p))
    Path(path).write_text("".join(out))


def write_nerfstudio(root: Path, frames: list[Frame], depth_scale: float = 1000.0) -> Path:
    """Write frames as a nerfstudio scene; returns transforms.json's path."""
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for i, f in enumerate(frames):
        rel = f"images/frame_{i:05d}.png"
        save_rgb(root / rel, f.load_rgb())
        intr = f.intrinsics
        entry = {
            "file_path": rel,
            "transform_matrix": opencv_to_opengl(f.c2w).tolist(),
            "fl_x": intr.fx, "fl_y": intr.fy, "cx": intr.cx + 0.5, "cy": intr.cy + 0.5, "w": intr.width, "h": intr.height,
        }
        d = f.load_depth()
        if d is not None:
            save_depth16(root / f"depth/frame_{i:05d}.png", d, depth_scale)
            entry["depth_file_path"] = f"depth/frame_{i:05d}.png"
        out.append(entry)
    meta = {"camera_model": "OPENCV", "depth_unit_scale_factor": 1.0 / depth_scale, "frames": out}
    (root / "transforms.json").write_text(json.dumps(meta, indent=1))
    return root / "transforms.json"


def write_colmap(root: Path, frames: list[Frame], binary: bool = False, depth_scale: float = 1000.0, depth_maps: bool = True,
                 sparse_every: int = 0) -> Path:
    """Write frames as a COLMAP model (PINHOLE cameras) with images/ and, optionally, depths/ (16-bit PNG, mm).

    ``sparse_every`` > 0 also writes points3D with one 3D point per ``sparse_every``-th pixel of each
    frame's depth, observed by that frame, like an SfM reconstruction's sparse points.
    """
    from ..geometry import backproject

    sparse = root / "sparse" / "0"
    sparse.mkdir(parents=True, exist_ok=True)
    cams, imgs = [], []
    for i, f in enumerate(frames):
        name = f"frame_{i:05d}.png"
        save_rgb(root / "images" / name, f.load_rgb())
        d = f.load_depth()
        if d is not None and depth_maps:
            save_depth16(root / "depths" / f"frame_{i:05d}.png", d, depth_scale)
        k = f.intrinsics
        cams.append((i + 1, k.width, k.height, [k.fx, k.fy, k.cx + 0.5, k.cy + 0.5]))
        w2c = np.linalg.inv(f.c2w)
        imgs.append((i + 1, rotmat_to_quat(w2c[:3, :3]), w2c[:3, 3], i + 1, name))
    obs_all, pts_all, pid = [], [], 1
    for f in frames:
        obs = np.zeros((0, 3))
        if sparse_every > 0:
            d = f.load_depth()
            m = np.zeros(d.shape, bool)
            m[::sparse_every, ::sparse_every] = True
            m &= d > 0
            vv, uu = np.nonzero(m)
            xyz = backproject(d, f.intrinsics, f.c2w, m)
            obs = np.stack([uu + 0.5, vv + 0.5, pid + np.arange(len(xyz))], 1).astype(np.float64)
            pts_all += [(pid + j, p) for j, p in enumerate(xyz.tolist())]
            pid += len(xyz)
        obs_all.append(obs)
    if binary:
        b = bytearray(struct.pack("<Q", len(cams)))
        for cid, w, h, p in cams:
            b += struct.pack("<iiQQ4d", cid, 1, w, h, *p)
        (sparse / "cameras.bin").write_bytes(bytes(b))
        b = bytearray(struct.pack("<Q", len(imgs)))
        for (iid, q, t, cid, name), obs in zip(imgs, obs_all):
            b += struct.pack("<I7dI", iid, *q, *t, cid) + name.encode() + b"\x00" + struct.pack("<Q", len(obs))
            for x, y, p in obs:
                b += struct.pack("<2dq", x, y, int(p))
        (sparse / "images.bin").write_bytes(bytes(b))
        if pts_all:
            b = bytearray(struct.pack("<Q", len(pts_all)))
            for p, xyz in pts_all:
                b += struct.pack("<Q3d3BdQ", p, *xyz, 128, 128, 128, 0.5, 0)
            (sparse / "points3D.bin").write_bytes(bytes(b))
    else:
        (sparse / "cameras.txt").write_text(
            "# Camera list\n" + "".join(f"{cid} PINHOLE {w} {h} {' '.join(repr(v) for v in p)}\n" for cid, w, h, p in cams))
        (sparse / "images.txt").write_text("# Image list\n" + "".join(
            f"{iid} {' '.join(repr(float(v)) for v in q)} {' '.join(repr(float(v)) for v in t)} {cid} {name}\n"
            + " ".join(f"{x!r} {y!r} {int(p)}" for x, y, p in obs.tolist()) + "\n"
            for (iid, q, t, cid, name), obs in zip(imgs, obs_all)))
        if pts_all:
            (sparse / "points3D.txt").write_text("# 3D point list\n" + "".join(
                f"{p} {xyz[0]!r} {xyz[1]!r} {xyz[2]!r} 128 128 128 0.5\n" for p, xyz in pts_all))
    return sparse


def write_tum(root: Path, frames: list[Frame], fps: float = 30.0) -> Path:
    """Write frames as a TUM sequence (with camera_intrinsic.json, since TUM has no intrinsics file)."""
    root.mkdir(parents=True, exist_ok=True)
    rgb_l, d_l, gt_l = ["# color images\n"], ["# depth maps\n"], ["# timestamp tx ty tz qx qy qz qw\n"]
    for i, f in enumerate(frames):
        t = 1000.0 + i / fps
        save_rgb(root / f"rgb/{t:.6f}.png", f.load_rgb())
        save_depth16(root / f"depth/{t:.6f}.png", f.load_depth(), 5000.0)
        rgb_l.append(f"{t:.6f} rgb/{t:.6f}.png\n")
        d_l.append(f"{t + 0.001:.6f} depth/{t:.6f}.png\n")  # real sensors are not in lock step
        q = rotmat_to_quat(f.c2w[:3, :3], "xyzw")
        gt_l.append(f"{t - 0.002:.6f} " + " ".join(repr(float(v)) for v in (*f.c2w[:3, 3], *q)) + "\n")
    (root / "rgb.txt").write_text("".join(rgb_l))
    (root / "depth.txt").write_text("".join(d_l))
    (root / "groundtruth.txt").write_text("".join(gt_l))
    write_open3d_intrinsic(root / "camera_intrinsic.json", frames[0].intrinsics)
    return root


def write_replica(root: Path, frames: list[Frame]) -> Path:
    """Write frames in the NICE-SLAM Replica layout with a cam_params.json."""
    (root / "results").mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(frames):
        save_rgb(root / f"results/frame{i:06d}.png", f.load_rgb())
        save_depth16(root / f"results/depth{i:06d}.png", f.load_depth(), 6553.5)
    np.savetxt(root / "traj.txt", np.stack([f.c2w.reshape(-1) for f in frames]), fmt="%.17g")
    k = frames[0].intrinsics
    (root / "cam_params.json").write_text(json.dumps({"camera": {"w": k.width, "h": k.height, "fx": k.fx, "fy": k.fy,
                                                                 "cx": k.cx, "cy": k.cy, "scale": 6553.5}}))
    return root


def write_scannet(root: Path, frames: list[Frame], color_scale: float = 2.025) -> Path:
    """Write frames as a SensReader export; colour is upsampled by ``color_scale`` as in real ScanNet."""
    from PIL import Image

    k = frames[0].intrinsics
    (root / "intrinsic").mkdir(parents=True, exist_ok=True)
    kd = np.eye(4)
    kd[:3, :3] = k.K
    np.savetxt(root / "intrinsic/intrinsic_depth.txt", kd, fmt="%.17g")
    cw, ch = round(k.width * color_scale), round(k.height * color_scale)
    kcm = np.eye(4)
    kcm[:3, :3] = k.scaled(cw, ch).K
    np.savetxt(root / "intrinsic/intrinsic_color.txt", kcm, fmt="%.17g")
    (root / "pose").mkdir(exist_ok=True)
    for i, f in enumerate(frames):
        rgb = np.asarray(Image.fromarray(f.load_rgb()).resize((cw, ch), Image.BICUBIC))
        save_rgb(root / f"color/{i}.jpg", rgb)
        save_depth16(root / f"depth/{i}.png", f.load_depth(), 1000.0)
        np.savetxt(root / f"pose/{i}.txt", f.c2w, fmt="%.17g")
    return root


def write_redwood(root: Path, frames: list[Frame]) -> Path:
    """Write frames in the Open3D/Redwood layout."""
    for i, f in enumerate(frames):
        save_rgb(root / f"color/{i:06d}.png", f.load_rgb())
        save_depth16(root / f"depth/{i:06d}.png", f.load_depth(), 1000.0)
    write_log(root / "trajectory.log", [f.c2w for f in frames])
    write_open3d_intrinsic(root / "camera_intrinsic.json", frames[0].intrinsics)
    return root


WRITERS = {"nerfstudio": write_nerfstudio, "colmap": write_colmap, "tum": write_tum, "replica": write_replica,
           "scannet": write_scannet, "redwood": write_redwood}


def write_scene(frames: list[Frame], root: str | Path, format: str, **kwargs) -> Path:
    """Write frames in a supported on-disk format (``colmap`` takes ``binary=True`` for .bin models).

    Returns:
        The scene folder.

    Raises:
        InvalidInputError: a format without a writer (``single``) or an unknown one.
    """
    writer = WRITERS.get(format)
    if writer is None:
        raise InvalidInputError(f"no writer for format '{format}'; writable: {', '.join(WRITERS)}")
    root = Path(root)
    writer(root, frames, **kwargs)
    return root
