"""COLMAP sparse models (text or binary) plus images, with optional depth maps.

Layout: ``sparse/0/{cameras,images}.{txt,bin}`` (also ``sparse/`` or the root itself) and ``images/``.
COLMAP stores world-to-camera poses as (qw, qx, qy, qz, tx, ty, tz) with OpenCV axes, and principal
points with pixel centres at +0.5; both are converted to the internal convention.

Without depth maps, the sparse points (``points3D``, with each image's observations) give every frame a
sparse depth, to which the pipeline aligns a monocular depth model (robust scale/shift fit).

Depth, optional, looked up per image by name: ``depths/<stem>.png`` (16-bit, millimetres),
``depths/<stem>.npy`` (float metres), or COLMAP's own ``stereo/depth_maps/<name>.geometric.bin``
(float, in the reconstruction's units, which are metres only if the model was scaled).
Lens distortion is not undistorted here: run ``colmap image_undistorter`` first (it writes PINHOLE
cameras); non-zero distortion is reported in the scene notes.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError

from ..cameras import Intrinsics, check_pose, pose_from_wxyz_t_w2c
from ..scene import Frame, Scene
from ._common import require

NAME = "colmap"
LAYOUT = "COLMAP sparse/0/{cameras,images}.{txt,bin} + images/"

# model id → (name, number of params, index of fx, fy, cx, cy in params; fy None = shared focal)
_MODELS = {
    0: ("SIMPLE_PINHOLE", 3), 1: ("PINHOLE", 4), 2: ("SIMPLE_RADIAL", 4), 3: ("RADIAL", 5), 4: ("OPENCV", 8),
    5: ("OPENCV_FISHEYE", 8), 6: ("FULL_OPENCV", 12), 7: ("FOV", 5), 8: ("SIMPLE_RADIAL_FISHEYE", 4),
    9: ("RADIAL_FISHEYE", 5), 10: ("THIN_PRISM_FISHEYE", 12),
}
_MODEL_IDS = {name: (mid, n) for mid, (name, n) in _MODELS.items()}
_SHARED_FOCAL = {"SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL"}
_SUPPORTED = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}


def _sparse_dir(root: Path) -> Path | None:
    for d in (root / "sparse" / "0", root / "sparse", root):
        if any((d / f"cameras.{ext}").is_file() for ext in ("txt", "bin")):
            return d
    return None


def detect(root: Path) -> bool:
    return _sparse_dir(root) is not None or (root / "sparse").is_dir()


def _camera(model: str, w: int, h: int, params: np.ndarray, where: str, notes: list[str]) -> Intrinsics:
    if model not in _SUPPORTED:
        raise DataError(f"{where}: camera model {model} is not supported; undistort with 'colmap image_undistorter' (writes PINHOLE)")
    if model in _SHARED_FOCAL:
        fx = fy = params[0]
        cx, cy = params[1], params[2]
        dist = params[3:]
    else:
        fx, fy, cx, cy = params[:4]
        dist = params[4:]
    if np.any(np.abs(dist) > 1e-9):
        notes.append(f"{where}: {model} distortion {np.round(dist, 5).tolist()} ignored; run 'colmap image_undistorter' for exact geometry")
    return Intrinsics(float(fx), float(fy), float(cx) - 0.5, float(cy) - 0.5, int(w), int(h))


def _read_cameras_txt(path: Path) -> dict[int, tuple[str, int, int, np.ndarray]]:
    cams = {}
    for ln, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        t = line.split()
        try:
            cams[int(t[0])] = (t[1], int(t[2]), int(t[3]), np.array([float(v) for v in t[4:]]))
        except (IndexError, ValueError) as exc:
            raise DataError(f"'{path}' line {ln} is malformed: {line!r}") from exc
    return cams


def _read_images_txt(path: Path) -> list[tuple[int, np.ndarray, np.ndarray, int, str, np.ndarray]]:
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith("#")]
    out = []
    # Entries are two lines: the pose line, then the (possibly empty) "X Y POINT3D_ID ..." observations.
    for i in range(0, len(lines), 2):
        if not lines[i].strip():
            continue
        t = lines[i].split()
        try:
            obs = np.array(lines[i + 1].split() if i + 1 < len(lines) else [], float).reshape(-1, 3)
            out.append((int(t[0]), np.array(t[1:5], float), np.array(t[5:8], float), int(t[8]), " ".join(t[9:]), obs))
        except (IndexError, ValueError) as exc:
            raise DataError(f"'{path}' image entry {lines[i]!r} is malformed") from exc
    return out


def _read_cameras_bin(path: Path) -> dict[int, tuple[str, int, int, np.ndarray]]:
    data = path.read_bytes()
    try:
        (n,), off, cams = struct.unpack_from("<Q", data, 0), 8, {}
        for _ in range(n):
            cid, mid, w, h = struct.unpack_from("<iiQQ", data, off)
            off += 24
            name, npar = _MODELS[mid]
            params = np.array(struct.unpack_from(f"<{npar}d", data, off))
            off += 8 * npar
            cams[cid] = (name, w, h, params)
    except (struct.error, KeyError) as exc:
        raise DataError(f"'{path}' is not a valid COLMAP cameras.bin ({exc})") from exc
    return cams


def _read_images_bin(path: Path) -> list[tuple[int, np.ndarray, np.ndarray, int, str, np.ndarray]]:
    data = path.read_bytes()
    out = []
    try:
        (n,), off = struct.unpack_from("<Q", data, 0), 8
        for _ in range(n):
            iid, *qt, cid = struct.unpack_from("<I7dI", data, off)
            off += 64
            end = data.index(b"\x00", off)
            name = data[off:end].decode()
            off = end + 1
            (npts,) = struct.unpack_from("<Q", data, off)
            off += 8
            # each 2D point: x, y (double) and point3D id (int64)
            rec = np.frombuffer(data, dtype=np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")]), count=npts, offset=off)
            off += npts * 24
            obs = np.stack([rec["x"], rec["y"], rec["id"].astype(np.float64)], 1) if npts else np.zeros((0, 3))
            out.append((iid, np.array(qt[:4]), np.array(qt[4:]), cid, name, obs))
    except (struct.error, ValueError, UnicodeDecodeError) as exc:
        raise DataError(f"'{path}' is not a valid COLMAP images.bin ({exc})") from exc
    return out


def _read_points(sparse: Path) -> dict[int, np.ndarray]:
    """points3D.{txt,bin} → {point id: xyz}; empty when the file is absent."""
    txt, binf = sparse / "points3D.txt", sparse / "points3D.bin"
    pts: dict[int, np.ndarray] = {}
    try:
        if binf.is_file():
            data = binf.read_bytes()
            (n,), off = struct.unpack_from("<Q", data, 0), 8
            for _ in range(n):
                pid, x, y, z = struct.unpack_from("<Q3d", data, off)
                off += 8 + 24 + 3 + 8  # id, xyz, rgb (3 uint8), error (double)
                (tl,) = struct.unpack_from("<Q", data, off)
                off += 8 + tl * 8  # track: (image id, point2D index) int32 pairs
                pts[pid] = np.array([x, y, z])
        elif txt.is_file():
            for line in txt.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    t = line.split()
                    pts[int(t[0])] = np.array(t[1:4], float)
    except (struct.error, ValueError, IndexError) as exc:
        raise DataError(f"COLMAP points3D in '{sparse}' is malformed ({exc})") from exc
    return pts


def _sparse_depth(obs: np.ndarray, points: dict[int, np.ndarray], c2w: np.ndarray) -> np.ndarray | None:
    """Observed 3D points of one image as (u, v, z) rows in the internal pixel convention, or None."""
    if not points or obs.size == 0:
        return None
    keep = [i for i, pid in enumerate(obs[:, 2].astype(np.int64)) if pid >= 0 and int(pid) in points]
    if not keep:
        return None
    xyz = np.stack([points[int(obs[i, 2])] for i in keep])
    w2c = np.linalg.inv(c2w)
    z = xyz @ w2c[2, :3] + w2c[2, 3]
    uvz = np.stack([obs[keep, 0] - 0.5, obs[keep, 1] - 0.5, z], 1)  # COLMAP pixel centres sit at +0.5
    return uvz[z > 0]


def _find_depth(root: Path, name: str) -> tuple[Path | None, float]:
    stem = Path(name).stem
    for p, scale in ((root / "depths" / f"{stem}.png", 1000.0), (root / "depths" / f"{stem}.npy", 1.0),
                     (root / "stereo" / "depth_maps" / f"{name}.geometric.bin", 1.0),
                     (root / "stereo" / "depth_maps" / f"{name}.photometric.bin", 1.0)):
        if p.is_file():
            return p, scale
    return None, 1.0


def read(root: Path, depth_scale: float | None = None) -> Scene:
    """Read a COLMAP model.

    Raises:
        DataError: missing cameras/images files, unsupported camera models, unknown camera ids.
    """
    sparse = _sparse_dir(root)
    if sparse is None:
        require(root / "sparse" / "0" / "cameras.txt", "COLMAP", root, "expected cameras.txt or cameras.bin from COLMAP's model export")
    ext = "bin" if (sparse / "cameras.bin").is_file() else "txt"
    cam_file = sparse / f"cameras.{ext}"
    img_file = require(sparse / f"images.{ext}", "COLMAP", root, f"the sparse model needs images.{ext} beside cameras.{ext}")
    cams = _read_cameras_bin(cam_file) if ext == "bin" else _read_cameras_txt(cam_file)
    images = _read_images_bin(img_file) if ext == "bin" else _read_images_txt(img_file)
    if not images:
        raise DataError(f"'{img_file}' registers no images")
    img_dir = root / "images" if (root / "images").is_dir() else root
    notes: list[str] = []
    intr_cache: dict[int, Intrinsics] = {}
    frames, any_depth = [], False
    points = _read_points(sparse)
    for _iid, q, t, cid, name, obs in sorted(images, key=lambda e: e[4]):
        if cid not in cams:
            raise DataError(f"'{img_file}': image {name} uses camera {cid}, which '{cam_file}' does not define")
        if cid not in intr_cache:
            model, w, h, params = cams[cid]
            intr_cache[cid] = _camera(model, w, h, params, f"{cam_file} camera {cid}", notes)
        c2w = check_pose(pose_from_wxyz_t_w2c(q, t), f"{img_file} image {name}")
        dpath, dscale = _find_depth(root, name)
        any_depth |= dpath is not None
        frames.append(Frame(Path(name).stem, intr_cache[cid], c2w, rgb_path=img_dir / name, depth_path=dpath,
                            depth_scale=depth_scale or dscale, sparse_depth=None if dpath else _sparse_depth(obs, points, c2w)))
    if not (img_dir / images[0][4]).exists():
        require(img_dir / images[0][4], "COLMAP", root, "images are looked up under images/ by the names in images.txt")
    return Scene(root, NAME, frames, notes=notes)
