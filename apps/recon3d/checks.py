"""Everything about a reconstruction that can be checked without a model, checked before any model loads.

:func:`validate` runs first in every front door (the paths and settings alone: no file read), then
:func:`check_inputs` in :func:`~prefpaint_apps.recon3d.reconstruct`, and the CLI calls both before it loads
the inpainter: settings (counts, sizes, seeds), the output folder, the scene layout,
the trajectory file, the voxel size against the scene's extent, the ``[recon3d]`` extra, a local depth model's
weight files and one readable frame. :func:`require_consistent` turns a failed ``--check`` into an error.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from prefpaint_sdk import DataError, InvalidInputError
from prefpaint_sdk.utils import Arg, at_least, bad_value, check_output_dir, check_seed, finite, positive

from . import _deps
from .formats import FORMATS, load_scene
from .scene import Scene

if TYPE_CHECKING:
    from .pipeline import Recon3DConfig

__all__ = ["CONSISTENCY_THRESHOLD", "SceneCheckError", "check_config", "check_inputs", "require_consistent", "validate"]

# Share of reprojected pixels that must agree between neighbouring frames for ``--check`` to pass. A correct
# scene scores 0.8-1.0; a world-to-camera pose read as camera-to-world, swapped OpenGL/OpenCV axes or a
# wrong depth scale score near 0.
CONSISTENCY_THRESHOLD = 0.5

_BACKENDS = ("auto", "scalable", "voxelblockgrid")


class SceneCheckError(DataError):
    """``--check`` found neighbouring frames that disagree: wrong pose convention or depth scale (exit 2)."""


def check_config(cfg: Recon3DConfig, n_views: int | None = None) -> None:
    """Validate every setting of a :class:`Recon3DConfig` (no file is read).

    Args:
        cfg: the settings.
        n_views: the number of novel views when known (a trajectory file's poses); default ``cfg.views``.

    Raises:
        InvalidInputError: a count below 1, a size that is not a finite number > 0, a seed out of range, an
            unknown fusion backend, or depth_trunc not above voxel_size. ``.param`` names the setting.
    """
    views = at_least("views", cfg.views)
    n = at_least("num_candidates", cfg.num_candidates)
    if cfg.steps is not None:
        at_least("steps", cfg.steps)
    at_least("sources_per_view", cfg.sources_per_view)
    at_least("mask_dilate", cfg.mask_dilate, minimum=0)
    if cfg.max_frames is not None:
        at_least("max_frames", cfg.max_frames)
    if cfg.guidance_scale is not None:
        finite("guidance_scale", cfg.guidance_scale)
    finite("spread", cfg.spread, lo=0.0)
    finite("flythrough_fps", cfg.flythrough_fps, lo=0.1, hi=120.0)
    fov = finite("fov", cfg.fov)
    if not 0 < fov < 180:
        raise bad_value("fov", f"fov must be between 0 and 180 degrees (exclusive), got {cfg.fov!r}")
    voxel = positive("voxel_size", cfg.voxel_size) if cfg.voxel_size is not None else None
    trunc = positive("depth_trunc", cfg.depth_trunc) if cfg.depth_trunc is not None else None
    if voxel is not None and trunc is not None and not trunc > voxel:
        raise bad_value("depth_trunc", f"depth_trunc={trunc:g} must be larger than voxel_size={voxel:g} (both in metres)")
    if cfg.depth_scale is not None:
        positive("depth_scale", cfg.depth_scale)
    if cfg.fusion_backend not in _BACKENDS:
        raise bad_value("fusion_backend", f"fusion_backend must be one of {', '.join(_BACKENDS)}, got {cfg.fusion_backend!r}")
    if cfg.format != "auto" and cfg.format not in FORMATS:
        raise bad_value("format", f"unknown scene format '{cfg.format}'; choose one of: auto, {', '.join(FORMATS)}")
    # view i uses seeds seed + i ... seed + i + num_candidates - 1
    check_seed(cfg.seed, count=(n_views if n_views is not None else views) + n - 1)


def validate(scene: str | Path | Scene, out: str | Path | None, cfg: Recon3DConfig, *, check: bool = False) -> None:
    """The checks of a reconstruction that need no model and read no scene: the scene path (one image: its
    header, so a bomb is refused first), the trajectory file, an output folder unless ``check`` (a scene check
    writes nothing), and every setting (:func:`check_config`).

    Raises:
        InvalidInputError: a missing path, no output folder, a bad setting (naming it).
    """
    if not isinstance(scene, Scene):
        if not Path(scene).exists():
            raise InvalidInputError(f"scene '{scene}' does not exist; pass a scene folder or an image")
        if Path(scene).is_file():
            from prefpaint_sdk.utils import check_image_file

            check_image_file(scene)
    if cfg.trajectory is not None and not Path(cfg.trajectory).is_file():
        raise InvalidInputError(f"trajectory file '{cfg.trajectory}' does not exist or is not a file; check the path")
    if out is None and not check:
        raise InvalidInputError("no output folder; pass ", Arg("out", "OUT"), " (or ", Arg("check", True),
                                " to only validate the scene)")
    check_config(cfg)


def check_inputs(scene: str | Path | Scene, out: str | Path | None, cfg: Recon3DConfig) -> Scene:
    """Every check that needs no model: settings, the output folder, the scene, the trajectory, the extra.

    Args:
        scene: a scene folder, an image, or a loaded :class:`Scene` (not reloaded).
        out: the output folder (None: not checked, as for ``--check``).
        cfg: the settings.

    Returns:
        The loaded scene (frames are read lazily: no pixel has been decoded).

    Raises:
        InvalidInputError: bad settings (see :func:`check_config`), or a voxel too small for the scene's
            extent (:func:`~prefpaint_apps.recon3d.extent.check_voxel_size`).
        OutputExistsError: ``out`` is a non-empty folder and ``cfg.overwrite`` is off.
        DataError: an unreadable scene layout or trajectory file, or every frame unreadable.
        PickleRefusedError: a local ``depth_model`` folder whose weights exist only as pickles.
        MissingDependencyError: open3d or trimesh missing (``pip install 'prefpaint[recon3d]'``).
    """
    validate(scene, out, cfg, check=out is None)
    if out is not None:
        check_output_dir(Path(out), cfg.overwrite)
    _deps.open3d()
    _deps.trimesh()
    if not isinstance(scene, Scene):
        scene = load_scene(scene, cfg.format, depth_scale=cfg.depth_scale, fov=cfg.fov, max_frames=cfg.max_frames)
    else:
        scene = scene.subsample(cfg.max_frames)
    if cfg.trajectory is not None:
        from .novel import read_trajectory

        cams = read_trajectory(cfg.trajectory, scene.frames[0].intrinsics)
        check_config(cfg, n_views=len(cams))
    if cfg.depth_model is not None and str(cfg.depth_model).lower() not in ("none", "auto"):
        from .depth import refuse_pickle_depth_model

        refuse_pickle_depth_model(str(cfg.depth_model))
    _require_a_readable_frame(scene)
    if cfg.voxel_size is not None:
        from .extent import check_voxel_size, scene_extent

        check_voxel_size(cfg.voxel_size, scene_extent(scene.frames, cfg.depth_trunc))
    return scene


def _require_a_readable_frame(scene: Scene) -> None:
    """A scene whose every frame is unreadable is refused here, before any model loads. Reading stops at the
    first good frame (reading them all would read a large scene twice); the run skips the bad ones it meets."""
    from .scene import UnreadableFrameError

    errors = []
    for frame in scene.frames:
        try:
            frame.load_rgb()
            if frame.has_depth:
                frame.load_depth()
        except UnreadableFrameError as exc:
            errors.append(str(exc))
            continue
        return
    if errors:
        raise DataError(f"all {len(errors)} frames of '{scene.root}' are unreadable; first error: {errors[0]}")


def require_consistent(report: dict, threshold: float = CONSISTENCY_THRESHOLD) -> dict:
    """Fail when a :func:`~prefpaint_apps.recon3d.check_scene` report shows inconsistent frames.

    Returns:
        ``report`` unchanged when the share of consistent pixels reaches ``threshold`` or there was nothing
        to compare (a single frame, frames without depth, no overlap).

    Raises:
        SceneCheckError: the share is below ``threshold`` (exit 2: the scene's poses or depth scale are wrong).
    """
    share = report.get("consistent_share")
    if share is not None and share < threshold:
        worst = min(report.get("per_pair") or [{}], key=lambda p: p.get("consistent_share", 1.0))
        pair = f" (worst pair: {worst['a']} / {worst['b']}, {worst['consistent_share']:.1%})" if "a" in worst else ""
        raise SceneCheckError(
            f"only {share:.1%} of reprojected pixels agree between neighbouring frames, below the {threshold:.0%} threshold{pair}; "
            "check the pose convention (camera-to-world, OpenCV vs OpenGL axes) and the depth scale (", Arg("depth_scale"), ")"
        )
    return report
