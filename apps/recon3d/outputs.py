"""Writing the reconstruction: per-view images, mesh/point-cloud files, transforms.json, contact sheet.

Every file goes through the SDK's atomic helpers (temporary name, then rename) and refuses to replace
an existing file unless ``overwrite`` is set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from prefpaint_sdk import DataError, OutputExistsError, atomic_path, atomic_write_json, check_output_path, save_image

from .cameras import Intrinsics, opencv_to_opengl

__all__ = [
    "check_output_dir",
    "contact_sheet",
    "save_depth_mm",
    "save_glb",
    "save_mask",
    "save_mesh",
    "save_points",
    "save_rgb",
    "transforms_entry",
]

DEPTH_PNG_SCALE = 1000.0  # depth PNGs are 16-bit millimetres (nerfstudio's default depth_unit_scale_factor 1e-3)


def check_output_dir(out: Path, overwrite: bool) -> Path:
    """Refuse a non-empty output folder unless ``overwrite`` (checked before any work starts).

    Raises:
        OutputExistsError: ``out`` holds files and ``overwrite`` is false.
        DataError: ``out`` is a file.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DataError(f"output '{out}' is a file; pass a folder for the reconstruction")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"output folder '{out}' is not empty; pass --overwrite (overwrite=True) to replace its files")
    out.mkdir(parents=True, exist_ok=True)
    return out


def save_rgb(rgb: np.ndarray, path: Path, overwrite: bool) -> Path:
    from PIL import Image

    return save_image(Image.fromarray(np.asarray(rgb, dtype=np.uint8)), path, overwrite=overwrite)


def save_depth_mm(depth: np.ndarray, path: Path, overwrite: bool) -> Path:
    """16-bit PNG in millimetres; 0 stays invalid, and depths beyond 65.535 m become invalid too."""
    from PIL import Image

    mm = np.round(np.asarray(depth, dtype=np.float64) * DEPTH_PNG_SCALE)
    mm[(mm > 65535) | ~np.isfinite(mm)] = 0
    return save_image(Image.fromarray(mm.astype(np.uint16)), path, overwrite=overwrite)


def save_mask(mask: np.ndarray, path: Path, overwrite: bool) -> Path:
    """White = hole (the toolkit's mask convention)."""
    from PIL import Image

    return save_image(Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), "L"), path, overwrite=overwrite)


def save_mesh(mesh, path: Path, overwrite: bool) -> Path:
    import open3d as o3d

    with atomic_path(path, overwrite) as tmp:
        if not o3d.io.write_triangle_mesh(str(tmp), mesh, write_ascii=False):
            raise DataError(f"open3d could not write the mesh to '{path}'")
    return Path(path)


def save_points(points, path: Path, overwrite: bool) -> Path:
    import open3d as o3d

    with atomic_path(path, overwrite) as tmp:
        if not o3d.io.write_point_cloud(str(tmp), points, write_ascii=False):
            raise DataError(f"open3d could not write the point cloud to '{path}'")
    return Path(path)


def save_glb(mesh, path: Path, overwrite: bool) -> Path:
    """Binary glTF through trimesh, keeping vertex colours (open3d's own glTF export drops them)."""
    import trimesh

    v = np.asarray(mesh.vertices)
    f = np.asarray(mesh.triangles)
    cols = np.asarray(mesh.vertex_colors)
    rgba = np.concatenate([np.round(cols * 255), np.full((len(cols), 1), 255)], 1).astype(np.uint8) if len(cols) else None
    tm = trimesh.Trimesh(vertices=v, faces=f, vertex_colors=rgba, process=False)
    # glTF is y-up with the camera looking down -z; our world is whatever the scene's is, so keep it as is.
    with atomic_path(path, overwrite) as tmp:
        tmp.write_bytes(tm.export(file_type="glb"))
    return Path(path)


def transforms_entry(rel_rgb: str, rel_depth: str | None, intr: Intrinsics, c2w: np.ndarray, **extra) -> dict:
    """One nerfstudio frame: OpenGL camera-to-world and corner-origin principal point (pixel centres +0.5)."""
    e = {"file_path": rel_rgb, "transform_matrix": opencv_to_opengl(c2w).tolist(), "fl_x": intr.fx, "fl_y": intr.fy,
         "cx": intr.cx + 0.5, "cy": intr.cy + 0.5, "w": intr.width, "h": intr.height}
    if rel_depth:
        e["depth_file_path"] = rel_depth
    e.update(extra)
    return e


def write_transforms(path: Path, frames: list[dict], overwrite: bool) -> Path:
    meta = {"camera_model": "OPENCV", "depth_unit_scale_factor": 1.0 / DEPTH_PNG_SCALE, "frames": frames}
    check_output_path(path, overwrite)
    return atomic_write_json(path, meta)


def contact_sheet(pairs: list[tuple[np.ndarray, np.ndarray, np.ndarray]], path: Path, overwrite: bool, thumb_h: int = 160,
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
