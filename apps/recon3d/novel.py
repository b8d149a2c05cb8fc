"""Novel cameras: chosen between and around the input views, or read from a trajectory file."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError, InvalidInputError, MissingDependencyError

from .cameras import Intrinsics, check_pose, look_at, opengl_to_opencv, quat_to_rotmat, slerp_pose

__all__ = ["novel_cameras", "read_trajectory"]


def _around(c2w: np.ndarray, dist: float, dx: float, dy: float) -> np.ndarray:
    """Move the eye by (dx, dy) x ``dist`` in the camera's own x/y axes and turn back to the point it was
    looking at ``dist`` ahead, so the new view orbits the subject instead of panning off it."""
    target = c2w[:3, 3] + c2w[:3, 2] * dist
    eye = c2w[:3, 3] + dist * (dx * c2w[:3, 0] + dy * c2w[:3, 1])
    return look_at(eye, target, up=-c2w[:3, 1])


def novel_cameras(poses: list[np.ndarray], n: int, distance: float, spread: float = 0.12) -> list[tuple[int, np.ndarray]]:
    """Choose ``n`` novel camera poses around and between the input views.

    Between: the pose halfway (slerp) between consecutive inputs. Around: each input orbited left,
    right, up and down by ``spread`` x ``distance`` toward the point it looks at, in rings of growing
    spread when more views are asked for. Between and around alternate, spread evenly over the sequence.

    Args:
        poses: input camera-to-world poses (OpenCV axes), in capture order.
        n: number of novel views (>= 1).
        distance: typical distance to the subject in metres (the median scene depth).
        spread: orbit offset as a fraction of ``distance``.

    Returns:
        (index of the input view it derives from, camera-to-world) pairs; the index picks intrinsics.

    Raises:
        InvalidInputError: n < 1, no poses, or a non-positive distance.
    """
    if n < 1:
        raise InvalidInputError(f"views={n} must be at least 1")
    if not poses:
        raise InvalidInputError("novel_cameras needs at least one input pose")
    if not distance > 0:
        raise InvalidInputError(f"distance={distance} must be positive metres")
    F = len(poses)
    between = [(i, slerp_pose(poses[i], poses[i + 1], 0.5)) for i in range(F - 1)]
    # Pick evenly spaced "between" poses so few views still cover the whole sequence.
    order = np.unique(np.round(np.linspace(0, len(between) - 1, min(len(between), (n + 1) // 2))).astype(int)) if between else []
    between = [between[i] for i in order]
    around = []
    ring = 1
    while len(around) + len(between) < n:
        for dx, dy in ((-1.0, 0.0), (1.0, 0.0), (0.0, -0.5), (0.0, 0.5)):
            for i in np.unique(np.round(np.linspace(0, F - 1, min(F, max(1, n // 4 + 1)))).astype(int)):
                around.append((int(i), _around(poses[i], distance, spread * ring * dx, spread * ring * dy)))
        ring += 1
    out: list[tuple[int, np.ndarray]] = []
    a = b = 0
    while len(out) < n:
        if b < len(between) and (len(out) % 2 == 1 or a >= len(around)):
            out.append(between[b])
            b += 1
        else:
            out.append(around[a])
            a += 1
    return out


def read_trajectory(path: str | Path, default: Intrinsics) -> list[tuple[Intrinsics, np.ndarray]]:
    """Read novel cameras from a file, in the internal convention.

    Accepted:

    * ``.json``: nerfstudio ``transforms.json``-style ``frames`` with ``transform_matrix`` (OpenGL axes;
      intrinsics from the file when present), or a nerfstudio ``camera_path.json`` (``camera_path``
      entries with ``camera_to_world`` and ``fov`` in degrees, vertical).
    * ``.log``: Open3D/Redwood trajectory (camera-to-world, OpenCV axes).
    * ``.txt``: 8 columns ``t tx ty tz qx qy qz qw`` (TUM, camera-to-world) or 16 columns (row-major 4x4
      camera-to-world, as Replica's traj.txt).

    Args:
        path: the trajectory file.
        default: intrinsics for poses whose file carries none.

    Raises:
        DataError: unknown extension, malformed content (a value of the wrong type or shape included) or no
            poses.
    """
    try:
        return _read_trajectory(Path(path), default)
    except (InvalidInputError, MissingDependencyError):
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:  # wrong types in a parsed file
        detail = str(exc).splitlines()[0] if str(exc) else ""
        raise DataError(f"trajectory '{path}' is malformed ({exc.__class__.__name__}: {detail}); write nerfstudio "
                        "frames with 4x4 transform_matrix lists, an Open3D .log or TUM/4x4 rows") from None


def _read_trajectory(p: Path, default: Intrinsics) -> list[tuple[Intrinsics, np.ndarray]]:
    if not p.is_file():
        raise DataError(f"trajectory file '{p}' does not exist")
    if p.suffix == ".json":
        try:
            meta = json.loads(p.read_text())
        except ValueError as exc:
            raise DataError(f"trajectory '{p}' is not valid JSON ({exc})") from exc
        if "camera_path" in meta:
            w, h = int(meta.get("render_width", default.width)), int(meta.get("render_height", default.height))
            out = []
            for i, cam in enumerate(meta["camera_path"]):
                m = opengl_to_opencv(check_pose(np.asarray(cam["camera_to_world"], float).reshape(4, 4), f"{p} camera {i}"))
                k = default if "fov" not in cam else Intrinsics.from_fov(w, h, 2 * math.degrees(math.atan(w / h * math.tan(math.radians(cam["fov"]) / 2))))
                out.append((k, m))
        elif "frames" in meta:
            from .formats.nerfstudio import _intrinsics

            out = []
            for i, fm in enumerate(meta["frames"]):
                has_k = any(key in fm or key in meta for key in ("fl_x", "camera_angle_x"))
                size = {"w": meta.get("w", default.width), "h": meta.get("h", default.height)}
                k = _intrinsics(meta, {**size, **fm}, p) if has_k else default
                out.append((k, opengl_to_opencv(check_pose(np.asarray(fm["transform_matrix"], float), f"{p} frame {i}"))))
        else:
            raise DataError(f"trajectory '{p}' has neither 'frames' (transforms.json) nor 'camera_path' (nerfstudio camera path)")
    elif p.suffix == ".log":
        from .formats.redwood import read_log

        out = [(default, check_pose(m, f"{p} block {i}")) for i, m in enumerate(read_log(p))]
    elif p.suffix == ".txt":
        try:
            rows = np.loadtxt(p, comments="#", ndmin=2)
        except ValueError as exc:
            raise DataError(f"trajectory '{p}' is not numeric ({exc})") from exc
        if rows.shape[1] == 8:
            out = []
            for i, r in enumerate(rows):
                m = np.eye(4)
                m[:3, :3], m[:3, 3] = quat_to_rotmat(r[4:8], "xyzw"), r[1:4]
                out.append((default, check_pose(m, f"{p} line {i + 1}")))
        elif rows.shape[1] == 16:
            out = [(default, check_pose(r.reshape(4, 4), f"{p} line {i + 1}")) for i, r in enumerate(rows)]
        else:
            raise DataError(f"trajectory '{p}' has {rows.shape[1]} columns; expected 8 (TUM: t tx ty tz qx qy qz qw) or 16 (4x4 row-major)")
    else:
        raise DataError(f"trajectory '{p}' has unknown extension '{p.suffix}'; use .json (nerfstudio), .log (Open3D) or .txt (TUM / 4x4 rows)")
    if not out:
        raise DataError(f"trajectory '{p}' holds no poses")
    return out
