"""Synthetic RGB-D scenes with exact ground truth, rendered by open3d ray casting (no display, no EGL).

A room (an inward-facing box) holds a few objects. Colour is a smooth procedural 3D texture of the hit
point plus a per-object tint, so any camera can be rendered exactly: this gives ground truth for
novel views, disocclusions and the true surface. Used by the tests, the benchmark and the example.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prefpaint_sdk import InvalidInputError

from .. import _deps
from ..cameras import Intrinsics, look_at
from ..scene import Frame, Scene

__all__ = ["SyntheticScene", "make_synthetic_scene"]

_TINTS = np.array([[0.85, 0.80, 0.70], [0.30, 0.55, 0.90], [0.90, 0.35, 0.30], [0.35, 0.80, 0.40], [0.85, 0.75, 0.25]])


@dataclass
class SyntheticScene:
    """A ray-castable scene and a set of posed RGB-D frames rendered from it.

    Attributes:
        frames: the input frames (arrays in memory, depth in metres, every pixel valid).
        mesh: the true surface as an ``open3d.geometry.TriangleMesh`` (for Chamfer checks).
        target: the point the cameras look at (world coordinates, metres).
    """

    frames: list[Frame]
    mesh: object
    target: np.ndarray
    _raycaster: object = None

    def render(self, intr: Intrinsics, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Render an exact view: (HxWx3 uint8 RGB, HxW float32 z-depth in metres; 0 where nothing is hit)."""
        return _render(self._raycaster, intr, c2w)

    def scene(self, root: str | Path = "synthetic") -> Scene:
        """The frames as a :class:`Scene` (format "synthetic")."""
        return Scene(Path(root), "synthetic", list(self.frames))

    def surface_points(self, intr: Intrinsics, poses: list[np.ndarray]) -> np.ndarray:
        """World points of the true surface seen by the given cameras (N x 3): the fair Chamfer reference."""
        from ..geometry import backproject

        pts = []
        for c2w in poses:
            _, d = self.render(intr, c2w)
            pts.append(backproject(d, intr, c2w))
        return np.concatenate(pts)


def _scene_meshes():
    o3d = _deps.open3d()

    room = o3d.geometry.TriangleMesh.create_box(8.0, 4.0, 8.0).translate((-4.0, -1.0, -4.0))
    room.triangles = o3d.utility.Vector3iVector(np.asarray(room.triangles)[:, ::-1])  # face inward
    box = o3d.geometry.TriangleMesh.create_box(0.8, 1.0, 0.8).translate((-0.9, -1.0, -0.2))
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.45, 48).translate((0.7, -0.3, 0.4))
    pillar = o3d.geometry.TriangleMesh.create_box(0.3, 2.2, 0.3).translate((0.1, -1.0, -1.4))
    return [room, box, sphere, pillar]


def _texture(points: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Smooth procedural colour: per-object tint times a 3D sinusoid of period ~0.6 m, in [0, 255]."""
    p = 2 * np.pi / 0.6
    pattern = 0.5 + 0.25 * (np.sin(p * points[..., 0]) * np.cos(p * points[..., 2]) + np.sin(p * 0.8 * points[..., 1] + 1.0))
    tint = _TINTS[np.clip(ids, 0, len(_TINTS) - 1)]
    return np.clip(255 * tint * (0.35 + 0.65 * pattern[..., None]), 0, 255)


def _render(raycaster, intr: Intrinsics, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    o3d = _deps.open3d()

    v, u = np.mgrid[0 : intr.height, 0 : intr.width].astype(np.float64)
    # Camera-space directions with z = 1, so the ray parameter t_hit *is* the z-depth.
    d_cam = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1)
    d_world = d_cam @ c2w[:3, :3].T
    o = np.broadcast_to(c2w[:3, 3], d_world.shape)
    rays = o3d.core.Tensor(np.concatenate([o, d_world], -1).astype(np.float32))
    ans = raycaster.cast_rays(rays)
    t = ans["t_hit"].numpy().astype(np.float64)
    ids = ans["geometry_ids"].numpy().astype(np.int64)
    hit = np.isfinite(t)
    t = np.where(hit, t, 0.0)
    pts = c2w[:3, 3] + d_world * t[..., None]
    rgb = np.where(hit[..., None], _texture(pts, ids), 0.0)
    return np.round(rgb).astype(np.uint8), t.astype(np.float32)


def make_synthetic_scene(n_frames: int = 5, width: int = 320, height: int = 240, fov: float = 70.0,
                         arc_deg: float = 40.0, radius: float = 2.6) -> SyntheticScene:
    """Render ``n_frames`` views on a horizontal arc around the room's objects.

    Args:
        n_frames: number of input views (>= 1).
        width, height: image size in pixels.
        fov: horizontal field of view, degrees.
        arc_deg: total angle swept by the cameras around the target.
        radius: camera distance to the target, metres.

    Returns:
        A :class:`SyntheticScene` whose frames hold exact RGB and depth.

    Raises:
        InvalidInputError: n_frames < 1.
    """
    o3d = _deps.open3d()

    if n_frames < 1:
        raise InvalidInputError(f"n_frames={n_frames} must be at least 1")
    rc = o3d.t.geometry.RaycastingScene()
    meshes = _scene_meshes()
    for m in meshes:
        rc.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(m))
    merged = o3d.geometry.TriangleMesh()
    for m in meshes:
        merged += m
    intr = Intrinsics.from_fov(width, height, fov)
    target = np.array([0.0, -0.3, 0.0])
    angles = np.radians(np.linspace(-arc_deg / 2, arc_deg / 2, n_frames)) if n_frames > 1 else np.zeros(1)
    frames = []
    for i, a in enumerate(angles):
        eye = target + np.array([radius * np.sin(a), 0.5 + 0.1 * np.cos(3 * a), -radius * np.cos(a)])
        c2w = look_at(eye, target, up=(0.0, 1.0, 0.0))
        rgb, depth = _render(rc, intr, c2w)
        frames.append(Frame(f"frame_{i:03d}", intr, c2w, rgb=rgb, depth=depth))
    return SyntheticScene(frames, merged, target, rc)
