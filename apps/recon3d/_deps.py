"""The 3D stack is the ``[recon3d]`` extra: every import of open3d and trimesh goes through here, so a
missing package is one clear line (exit 2) with the install command, before any model loads."""

from __future__ import annotations

from prefpaint_sdk.utils import require

from .quiet import library_noise_to_log

__all__ = ["open3d", "trimesh"]


def open3d():
    """The ``open3d`` module, or :class:`~prefpaint_sdk.MissingDependencyError` naming ``pip install 'prefpaint[recon3d]'``."""
    with library_noise_to_log():  # its import warns about CUDA on machines without it
        return require("open3d", extra="recon3d", purpose="3D reconstruction (TSDF fusion, meshes, point clouds)")


def trimesh():
    """The ``trimesh`` module, or :class:`~prefpaint_sdk.MissingDependencyError` naming ``pip install 'prefpaint[recon3d]'``."""
    return require("trimesh", extra="recon3d", purpose="writing mesh.glb")
