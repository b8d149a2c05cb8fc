"""Novel-view 3D reconstruction with hole filling (import name ``prefpaint_apps.recon3d``).

Read a posed RGB-D scene (or a single image), warp it into novel cameras, inpaint the disoccluded
holes with the PrefPaint :class:`~prefpaint_sdk.Inpainter`, give the new pixels depth, and fuse
everything into a TSDF mesh and point cloud, with nerfstudio ``transforms.json`` for NeRF/3DGS tools.

>>> from prefpaint_apps.recon3d import reconstruct
>>> result = reconstruct("scene/", "out/", views=8)  # doctest: +SKIP

Test scenes (a synthetic scene with exact ground truth, writers for every layout) live in
:mod:`prefpaint_apps.recon3d.testing`, which the runtime never imports.

Internal convention everywhere: OpenCV camera axes, camera-to-world 4x4 poses, metres, depth 0 = invalid.
"""

from .cameras import Intrinsics, look_at
from .checks import CONSISTENCY_THRESHOLD, SceneCheckError, check_config, check_inputs, require_consistent, validate
from .depth import DEFAULT_DEPTH_MODEL, align_depth, fit_scale_shift, load_depth_estimator, propagate_depth
from .formats import FORMATS, detect_format, load_scene
from .fusion import FusionResult, fuse_tsdf
from .geometry import backproject, covisible_mask, depth_consistency, project
from .holes import CleanedView, clean_holes
from .novel import novel_cameras, read_trajectory
from .pipeline import Recon3DConfig, Recon3DResult, check_scene, reconstruct
from .scene import Frame, Scene
from .warp import WarpResult, WarpSource, forward_warp

__all__ = [
    "CONSISTENCY_THRESHOLD",
    "DEFAULT_DEPTH_MODEL",
    "SceneCheckError",
    "check_config",
    "check_inputs",
    "require_consistent",
    "validate",
    "FORMATS",
    "CleanedView",
    "Frame",
    "FusionResult",
    "Intrinsics",
    "Recon3DConfig",
    "Recon3DResult",
    "Scene",
    "WarpResult",
    "WarpSource",
    "align_depth",
    "backproject",
    "check_scene",
    "clean_holes",
    "covisible_mask",
    "depth_consistency",
    "detect_format",
    "fit_scale_shift",
    "forward_warp",
    "fuse_tsdf",
    "load_depth_estimator",
    "load_scene",
    "look_at",
    "novel_cameras",
    "project",
    "propagate_depth",
    "read_trajectory",
    "reconstruct",
]
