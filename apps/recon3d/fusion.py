"""TSDF fusion of RGB-D views into a coloured mesh and point cloud (open3d).

Backends:

* ``scalable``: ``open3d.pipelines.integration.ScalableTSDFVolume`` on CPU (the default without CUDA).
* ``voxelblockgrid``: ``open3d.t.geometry.VoxelBlockGrid`` (the default when open3d sees CUDA).

Known problem (2026-11-24): open3d 0.20.0 from PyPI integrates to an *empty* mesh with both backends
on CPU; 0.19.0 works, and the project pins ``open3d<0.20``. ``tests/test_recon3d_fusion.py`` fuses a
synthetic scene with both backends and asserts a non-empty mesh within 2 voxels of the truth, so an
upgrade cannot silently break fusion.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from prefpaint_sdk import DataError, InvalidInputError
from prefpaint_sdk.utils import Arg

from . import _deps
from .cameras import Intrinsics

__all__ = ["FusionResult", "fuse_tsdf"]


@dataclass
class FusionResult:
    """Fused geometry: ``mesh`` (open3d TriangleMesh with vertex colours), ``points`` (open3d PointCloud)
    and the settings actually used."""

    mesh: object
    points: object
    voxel_size: float
    sdf_trunc: float
    depth_trunc: float
    backend: str
    views: int
    stats: dict = field(default_factory=dict)


def _resolve_backend(backend: str) -> str:
    o3d = _deps.open3d()

    if backend == "auto":
        return "voxelblockgrid" if o3d.core.cuda.is_available() else "scalable"
    if backend not in ("scalable", "voxelblockgrid"):
        raise InvalidInputError(f"fusion backend '{backend}' is unknown; use auto, scalable or voxelblockgrid")
    return backend


def fuse_tsdf(views: Iterable[tuple[np.ndarray, np.ndarray, Intrinsics, np.ndarray]], voxel_size: float, depth_trunc: float,
              sdf_trunc: float | None = None, backend: str = "auto", device: str | None = None) -> FusionResult:
    """Integrate RGB-D views into a TSDF volume and extract a mesh and a point cloud.

    Args:
        views: (HxWx3 uint8 RGB, HxW float32 depth in metres with 0 = invalid, intrinsics, camera-to-world).
        voxel_size: voxel edge in metres.
        depth_trunc: depths beyond this (metres) are ignored.
        sdf_trunc: TSDF truncation in metres; default 4 voxels.
        backend: "auto", "scalable" or "voxelblockgrid".
        device: open3d device for voxelblockgrid ("CUDA:0", "CPU:0"); default CUDA:0 when available.

    Returns:
        A :class:`FusionResult`.

    Raises:
        InvalidInputError: non-positive voxel size or truncation.
        DataError: no views, or an empty mesh (depth beyond depth_trunc, or a broken open3d build).
    """
    o3d = _deps.open3d()

    if not voxel_size > 0 or not depth_trunc > 0:
        raise InvalidInputError(f"voxel_size={voxel_size} and depth_trunc={depth_trunc} must both be positive metres")
    sdf_trunc = 4 * voxel_size if sdf_trunc is None else sdf_trunc
    if sdf_trunc <= voxel_size:
        raise InvalidInputError(f"sdf_trunc={sdf_trunc} must exceed voxel_size={voxel_size} (4 voxels is typical)")
    backend = _resolve_backend(backend)
    n = 0
    if backend == "scalable":
        vol = o3d.pipelines.integration.ScalableTSDFVolume(
            voxel_length=voxel_size, sdf_trunc=sdf_trunc, color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8)
        for rgb, depth, k, c2w in views:
            rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
                o3d.geometry.Image(np.ascontiguousarray(rgb, dtype=np.uint8)), o3d.geometry.Image(np.ascontiguousarray(depth, dtype=np.float32)),
                depth_scale=1.0, depth_trunc=depth_trunc, convert_rgb_to_intensity=False)
            intr = o3d.camera.PinholeCameraIntrinsic(k.width, k.height, k.fx, k.fy, k.cx, k.cy)
            vol.integrate(rgbd, intr, np.linalg.inv(c2w))  # open3d wants world-to-camera extrinsics
            n += 1
        mesh = vol.extract_triangle_mesh()
        points = vol.extract_point_cloud()
    else:
        dev = o3d.core.Device(device or ("CUDA:0" if o3d.core.cuda.is_available() else "CPU:0"))
        f32 = o3d.core.float32
        vbg = o3d.t.geometry.VoxelBlockGrid(attr_names=("tsdf", "weight", "color"), attr_dtypes=(f32, f32, f32),
                                            attr_channels=((1), (1), (3)), voxel_size=voxel_size, block_resolution=8,
                                            block_count=100_000, device=dev)
        for rgb, depth, k, c2w in views:
            K = o3d.core.Tensor(k.K, o3d.core.float64)
            E = o3d.core.Tensor(np.linalg.inv(c2w), o3d.core.float64)
            d = o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(depth, dtype=np.float32))).to(dev)
            c = o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(rgb, dtype=np.float32) / 255.0)).to(dev)
            coords = vbg.compute_unique_block_coordinates(d, K, E, 1.0, depth_trunc, sdf_trunc / voxel_size)
            vbg.integrate(coords, d, c, K, E, 1.0, depth_trunc, sdf_trunc / voxel_size)
            n += 1
        # The default weight_threshold (3.0) keeps only voxels seen in 3+ views, which empties the mesh of
        # a short sequence; 0.5 keeps every observed voxel, like ScalableTSDFVolume.
        mesh = vbg.extract_triangle_mesh(weight_threshold=0.5).to_legacy()
        points = vbg.extract_point_cloud(weight_threshold=0.5).to_legacy()
    if n == 0:
        raise DataError("nothing to fuse: no views with depth")
    if len(mesh.triangles) == 0:
        raise DataError(
            f"TSDF fusion of {n} views produced an empty mesh (voxel {voxel_size} m, depth_trunc {depth_trunc} m, backend {backend}); "
            "check that depths are in metres and below ", Arg("depth_trunc"), ". open3d 0.20.0 on CPU is known to do this: use open3d 0.19"
        )
    mesh.compute_vertex_normals()
    return FusionResult(mesh, points, voxel_size, sdf_trunc, depth_trunc, backend, n,
                        {"vertices": len(mesh.vertices), "triangles": len(mesh.triangles), "points": len(points.points)})
