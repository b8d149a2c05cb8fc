"""Writing the reconstruction: per-view images and masks, mesh/point-cloud files, nerfstudio
``transforms.json``, the contact sheet and the fly-through video.

The pipeline writes all of these into a stage beside the output folder
(:func:`prefpaint_sdk.utils.staged_dir`), which replaces the output folder whole only when everything is
written: an interrupted run leaves nothing, and ``overwrite`` leaves no file of an earlier run.

Masks come in two meanings, each in its own clearly named file:

* ``holes.png`` (toolkit convention, white = fill): the pixels of a novel view that the inpainter
  painted (the disocclusions, slightly dilated).
* ``valid.png`` / ``inputs/<i>_valid.png`` (nerfstudio convention, non-zero = use this pixel): what
  ``transforms.json`` references as ``mask_path``, on every frame (nerfstudio requires all or none). It is
  white wherever a frame holds real or completed content: every pixel of an input frame, and the
  warped *and* the inpainted pixels of a novel view, since the completed views are meant to be trained on.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError
from prefpaint_sdk.utils import atomic_path, atomic_write_json, check_output_path, save_image

from . import _deps
from .cameras import Intrinsics, opencv_to_opengl

__all__ = [
    "DEPTH_PNG_SCALE",
    "NERFSTUDIO_CAMERA_MODEL",
    "check_output_dir",
    "contact_sheet",
    "save_depth_mm",
    "save_glb",
    "save_mask",
    "save_mesh",
    "save_points",
    "save_rgb",
    "save_valid_mask",
    "transforms_entry",
    "write_flythrough",
    "write_transforms",
]

log = logging.getLogger(__name__)

DEPTH_PNG_SCALE = 1000.0  # depth PNGs are 16-bit millimetres (nerfstudio's default depth_unit_scale_factor 1e-3)
NERFSTUDIO_CAMERA_MODEL = "OPENCV"  # with no distortion keys: an exact pinhole for nerfstudio


def check_output_dir(out: Path, overwrite: bool) -> Path:
    """The SDK's output-folder check (kept here for callers that import it from the app)."""
    from prefpaint_sdk.utils import check_output_dir as _check

    return _check(out, overwrite)


def save_rgb(rgb: np.ndarray, path: Path, overwrite: bool = False) -> Path:
    from PIL import Image

    return save_image(Image.fromarray(np.asarray(rgb, dtype=np.uint8)), path, overwrite=overwrite)


def save_depth_mm(depth: np.ndarray, path: Path, overwrite: bool = False) -> Path:
    """16-bit PNG in millimetres; 0 stays invalid, and depths beyond 65.535 m become invalid too."""
    from PIL import Image

    mm = np.round(np.asarray(depth, dtype=np.float64) * DEPTH_PNG_SCALE)
    mm[(mm > 65535) | ~np.isfinite(mm)] = 0
    return save_image(Image.fromarray(mm.astype(np.uint16)), path, overwrite=overwrite)


def save_mask(mask: np.ndarray, path: Path, overwrite: bool = False) -> Path:
    """A single-channel (L) PNG: 255 where ``mask`` is true, 0 elsewhere."""
    from PIL import Image

    return save_image(Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L"), path, overwrite=overwrite)


def save_valid_mask(valid: np.ndarray, path: Path, overwrite: bool = False) -> Path:
    """A nerfstudio mask: single channel, non-zero (255) = use this pixel, 0 = ignore it."""
    return save_mask(valid, path, overwrite)


def save_mesh(mesh, path: Path, overwrite: bool = False) -> Path:
    o3d = _deps.open3d()
    with atomic_path(path, overwrite) as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False):
            raise DataError(f"open3d could not write the mesh to '{path}'")
    return Path(path)


def save_points(points, path: Path, overwrite: bool = False) -> Path:
    o3d = _deps.open3d()
    with atomic_path(path, overwrite) as tmp:
        if not o3d.io.write_point_cloud(str(tmp), points, write_ascii=False):
            raise DataError(f"open3d could not write the point cloud to '{path}'")
    return Path(path)


def save_glb(mesh, path: Path, overwrite: bool = False) -> Path:
    """Binary glTF through trimesh, keeping vertex colours (open3d's own glTF export drops them)."""
    trimesh = _deps.trimesh()
    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.triangles)
    cols = np.asarray(mesh.vertex_colors)
    rgba = np.concatenate([np.round(cols * 255), np.full((len(cols), 1), 255)], 1).astype(np.uint8) if len(cols) else None
    tm = trimesh.Trimesh(vertices=v, faces=f, vertex_colors=rgba, process=False)
    # glTF is y-up with the camera looking down -z; our world is whatever the scene's is, so keep it as is.
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(tm.export(file_type="glb"))
    return Path(path)


def transforms_entry(rel_rgb: str, rel_depth: str | None, intr: Intrinsics, c2w: np.ndarray, *, mask_path: str | None = None,
                     **extra) -> dict:
    """One nerfstudio frame: OpenGL camera-to-world and corner-origin principal point (pixel centres +0.5).

    ``mask_path`` follows nerfstudio's meaning (non-zero = use this pixel); paths are relative to the
    folder holding ``transforms.json``.
    """
    e = {"file_path": rel_rgb, "transform_matrix": opencv_to_opengl(c2w).tolist(), "fl_x": intr.fx, "fl_y": intr.fy,
         "cx": intr.cx + 0.5, "cy": intr.cy + 0.5, "w": intr.width, "h": intr.height}
    if rel_depth:
        e["depth_file_path"] = rel_depth
    if mask_path:
        e["mask_path"] = mask_path
    e.update(extra)
    return e


def write_transforms(path: Path, frames: list[dict], overwrite: bool = False) -> Path:
    """nerfstudio ``transforms.json``: ``mask_path`` and ``depth_file_path`` on every frame or on none.

    Raises:
        DataError: a frame set that nerfstudio's data parser would refuse (mixed masks or depths).
    """
    for key in ("mask_path", "depth_file_path"):
        n = sum(key in f for f in frames)
        if 0 < n < len(frames):
            raise DataError(f"{key} on {n} of {len(frames)} frames; nerfstudio needs it on every frame or on none")
    meta = {"camera_model": NERFSTUDIO_CAMERA_MODEL, "depth_unit_scale_factor": 1.0 / DEPTH_PNG_SCALE, "frames": frames}
    check_output_path(path, overwrite)
    return atomic_write_json(path, meta)


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, overwrite: bool = False, thumb_h: int = 160,
                  cols: int = 2) -> Path:
    """A PNG grid: each cell is a novel view before filling (holes in magenta) beside it after filling.

    Args:
        pairs: (warped rgb, hole mask, completed rgb) per view.
    """
    from PIL import Image, ImageDraw

    if not pairs:
        raise DataError("no novel views to put on the contact sheet")
    cells = []
    for i, (before, holes, after) in enumerate(pairs):
        b = np.where(holes[..., None], np.array([255, 0, 255], np.uint8), before)
        h, w = before.shape[:2]
        tw = max(1, round(w * thumb_h / h))
        pair = Image.new("RGB", (2 * tw + 4, thumb_h + 14), (32, 32, 32))
        pair.paste(Image.fromarray(b).resize((tw, thumb_h)), (0, 14))
        pair.paste(Image.fromarray(after).resize((tw, thumb_h)), (tw + 4, 14))
        ImageDraw.Draw(pair).text((2, 1), f"view {i}: warped | filled ({holes.mean():.1%} holes)", fill=(230, 230, 230))
        cells.append(pair)
    cw, ch = cells[0].size
    rows = (len(cells) + cols - 1) // cols
    sheet = Image.new("RGB", (cols * (cw + 6), rows * (ch + 6)), (16, 16, 16))
    for i, c in enumerate(cells):
        sheet.paste(c, ((i % cols) * (cw + 6), (i // cols) * (ch + 6)))
    return save_image(sheet, path, overwrite=overwrite)


def _ffmpeg_available() -> bool:
    try:
        import imageio_ffmpeg

        imageio_ffmpeg.get_ffmpeg_exe()
        return True
    except Exception:  # noqa: BLE001 - any failure to find ffmpeg means: write a GIF instead
        return False


def _even_frames(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Every frame at the first one's size, padded to even sides (H.264 with yuv420p needs them)."""
    from PIL import Image

    h, w = frames[0].shape[:2]
    out = []
    for f in frames:
        if f.shape[:2] != (h, w):
            f = np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC))
        out.append(np.pad(f, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge"))
    return out


def write_flythrough(frames: list[np.ndarray], folder: Path, fps: float = 4.0, use_ffmpeg: bool | None = None) -> Path:
    """A fly-through of the completed novel views, one frame per view in trajectory order.

    ``flythrough.mp4`` (H.264 through imageio-ffmpeg, in the ``[recon3d]`` extra), or ``flythrough.gif``
    when ffmpeg is unavailable. Written atomically into ``folder``.

    Returns:
        The path written.

    Raises:
        DataError: no frames.
    """
    import imageio.v3 as iio

    if not frames:
        raise DataError("no novel views for the fly-through")
    frames = _even_frames([np.asarray(f, dtype=np.uint8) for f in frames])
    if use_ffmpeg is None:
        use_ffmpeg = _ffmpeg_available()
    if use_ffmpeg:
        path = Path(folder) / "flythrough.mp4"
        with atomic_path(path, overwrite=False) as tmp:
            iio.imwrite(tmp, np.stack(frames), plugin="FFMPEG", extension=".mp4", fps=fps, codec="libx264",
                        macro_block_size=2, pixelformat="yuv420p", ffmpeg_log_level="error")
        return path
    log.info("ffmpeg is unavailable (pip install 'prefpaint[recon3d]' installs imageio-ffmpeg): writing flythrough.gif")
    path = Path(folder) / "flythrough.gif"
    with atomic_path(path, overwrite=False) as tmp:
        iio.imwrite(tmp, np.stack(frames), plugin="pillow", extension=".gif", duration=int(round(1000 / fps)), loop=0)
    return path
