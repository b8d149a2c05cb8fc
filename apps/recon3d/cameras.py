"""Pinhole cameras and poses in the one internal convention.

Internal convention (every loader converts to it once):

* **OpenCV camera axes:** x right, y down, z forward (looking direction).
* **Camera-to-world** 4x4 poses (``c2w``), float64.
* **Metres** for translations and depth.

Conversions from other conventions (OpenGL/nerfstudio, COLMAP world-to-camera, quaternions) live here
so that no loader re-derives them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from prefpaint_sdk import InvalidInputError
from prefpaint_sdk.utils import Arg

__all__ = [
    "OPENGL_TO_OPENCV",
    "Intrinsics",
    "check_pose",
    "look_at",
    "opencv_to_opengl",
    "opengl_to_opencv",
    "pose_from_wxyz_t_w2c",
    "quat_to_rotmat",
    "rotmat_to_quat",
    "slerp_pose",
]

# Flipping y and z turns an OpenGL camera (y up, z backward) into an OpenCV one (y down, z forward);
# the matrix is its own inverse, so the same constant converts both ways.
OPENGL_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Intrinsics:
    """A pinhole camera: focal lengths and principal point in pixels, and the image size.

    Pixel centres are at integer coordinates (OpenCV/COLMAP-text convention: the top-left pixel's
    centre is (0, 0)).
    """

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        if not (self.width > 0 and self.height > 0):
            raise InvalidInputError(f"camera size {self.width}x{self.height} is empty; width and height must be positive")
        if not (np.isfinite(self.fx) and np.isfinite(self.fy) and self.fx > 0 and self.fy > 0):
            raise InvalidInputError(f"focal lengths fx={self.fx}, fy={self.fy} must be finite and positive")

    @property
    def K(self) -> np.ndarray:
        """The 3x3 calibration matrix (float64)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, PIL order."""
        return (self.width, self.height)

    @classmethod
    def from_fov(cls, width: int, height: int, fov_deg: float) -> Intrinsics:
        """A centred camera with the given *horizontal* field of view in degrees.

        Raises:
            InvalidInputError: fov outside (1, 179) degrees.
        """
        if not 1.0 < fov_deg < 179.0:
            raise InvalidInputError(f"field of view {fov_deg} deg is outside (1, 179); pass e.g. ", Arg("fov", 60))
        f = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
        return cls(f, f, (width - 1) / 2, (height - 1) / 2, int(width), int(height))

    def scaled(self, width: int, height: int) -> Intrinsics:
        """The same camera resampled to another image size (e.g. ScanNet colour to depth resolution)."""
        sx, sy = width / self.width, height / self.height
        # Pixel-centre convention: a centre at c maps to (c + 0.5) * s - 0.5.
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5, (self.cy + 0.5) * sy - 0.5, int(width), int(height))

    def to_dict(self) -> dict:
        return {"fx": self.fx, "fy": self.fy, "cx": self.cx, "cy": self.cy, "width": self.width, "height": self.height}


def opengl_to_opencv(c2w_gl: np.ndarray) -> np.ndarray:
    """Camera-to-world in OpenGL/nerfstudio axes → OpenCV axes (same camera centre)."""
    return np.asarray(c2w_gl, dtype=np.float64) @ OPENGL_TO_OPENCV


def opencv_to_opengl(c2w_cv: np.ndarray) -> np.ndarray:
    """Camera-to-world in OpenCV axes → OpenGL/nerfstudio axes."""
    return np.asarray(c2w_cv, dtype=np.float64) @ OPENGL_TO_OPENCV


def quat_to_rotmat(q: np.ndarray, order: str = "wxyz") -> np.ndarray:
    """Unit quaternion(s) → rotation matrix(es). Normalises, so slightly off-unit input is fine.

    Args:
        q: (..., 4) quaternions.
        order: "wxyz" (COLMAP) or "xyzw" (TUM, scipy).

    Returns:
        (..., 3, 3) float64 rotation matrices.
    """
    q = np.asarray(q, dtype=np.float64)
    if order == "xyzw":
        q = q[..., [3, 0, 1, 2]]
    n = np.linalg.norm(q, axis=-1, keepdims=True)
    if np.any(n < 1e-12):
        raise InvalidInputError("a quaternion has zero length; the pose file is corrupt")
    w, x, y, z = np.moveaxis(q / n, -1, 0)
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
            np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
            np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
        ],
        -2,
    )


def rotmat_to_quat(R: np.ndarray, order: str = "wxyz") -> np.ndarray:
    """Rotation matrix → unit quaternion with w >= 0 (via scipy, which is numerically careful)."""
    from scipy.spatial.transform import Rotation

    xyzw = Rotation.from_matrix(np.asarray(R, dtype=np.float64)).as_quat()
    xyzw = xyzw * np.where(xyzw[..., 3:4] < 0, -1.0, 1.0)
    return xyzw if order == "xyzw" else xyzw[..., [3, 0, 1, 2]]


def pose_from_wxyz_t_w2c(qvec: np.ndarray, tvec: np.ndarray) -> np.ndarray:
    """COLMAP's world-to-camera (quaternion wxyz, translation) → camera-to-world 4x4."""
    w2c = np.eye(4)
    w2c[:3, :3] = quat_to_rotmat(qvec, "wxyz")
    w2c[:3, 3] = np.asarray(tvec, dtype=np.float64)
    return np.linalg.inv(w2c)


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = (0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenCV camera-to-world pose at ``eye`` looking at ``target``, with ``up`` the world direction that
    should appear upward in the image (the camera's -y axis leans toward it).

    Raises:
        InvalidInputError: eye equals target, or the view direction is parallel to ``up``.
    """
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    z = target - eye
    if np.linalg.norm(z) < 1e-12:
        raise InvalidInputError(f"look_at: eye {eye.tolist()} equals target; move the camera")
    z /= np.linalg.norm(z)
    x = np.cross(-up, z)  # OpenCV: x = y × z with y = -up
    if np.linalg.norm(x) < 1e-9:
        raise InvalidInputError("look_at: view direction is parallel to the up vector; pass another up")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = x, y, z, eye
    return c2w


def check_pose(c2w: np.ndarray, where: str) -> np.ndarray:
    """Validate a camera-to-world matrix: 4x4, finite, rotation part orthonormal with det +1.

    Raises:
        InvalidInputError: naming ``where`` (file and frame) and what is wrong.
    """
    m = np.asarray(c2w, dtype=np.float64)
    if m.shape != (4, 4):
        raise InvalidInputError(f"{where}: pose has shape {m.shape}, expected 4x4")
    if not np.all(np.isfinite(m)):
        raise InvalidInputError(f"{where}: pose has non-finite entries (inf/nan); the frame has no valid pose")
    R = m[:3, :3]
    err = np.abs(R @ R.T - np.eye(3)).max()
    if err > 1e-3 or np.linalg.det(R) < 0:
        raise InvalidInputError(
            f"{where}: pose rotation is not a proper rotation (orthogonality error {err:.2g}, det {np.linalg.det(R):.3f}); "
            "check the file's convention (world-to-camera vs camera-to-world, left-handed axes)"
        )
    return m


def slerp_pose(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Interpolate two camera-to-world poses: rotation by slerp, centre linearly."""
    from scipy.spatial.transform import Rotation, Slerp

    rots = Rotation.from_matrix(np.stack([a[:3, :3], b[:3, :3]]))
    out = np.eye(4)
    out[:3, :3] = Slerp([0.0, 1.0], rots)([t]).as_matrix()[0]
    out[:3, 3] = (1 - t) * a[:3, 3] + t * b[:3, 3]
    return out
