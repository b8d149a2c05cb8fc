"""The reconstruction pipeline: load → novel cameras → warp → clean holes → inpaint → depth → fuse → write.

Completed novel views become sources for the later ones, so the inpainted content stays consistent
across views (as in Text2Room and LucidDreamer).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prefpaint_sdk import DataError, InvalidInputError, ModelNotFoundError
from prefpaint_sdk.utils import Arg, atomic_write_json, staged_dir

from . import outputs as O
from .cameras import Intrinsics
from .checks import CONSISTENCY_THRESHOLD, check_inputs
from .depth import (
    DEFAULT_DEPTH_MODEL,
    align_depth,
    load_depth_estimator,
    propagate_depth,
    single_image_depth,
    sparse_aligned_depth,
)
from .extent import MAX_VOXELS_PER_AXIS, check_voxel_size, default_voxel_size, scene_extent
from .fusion import fuse_tsdf
from .holes import clean_holes
from .inputs import FrameCache, check_scene
from .novel import novel_cameras, read_trajectory
from .quiet import quiet_libraries
from .scene import Scene
from .warp import WarpSource, forward_warp

__all__ = ["Recon3DConfig", "Recon3DResult", "ViewRecord", "check_scene", "reconstruct"]

log = logging.getLogger(__name__)

ProgressFn = Callable[[int, int, str], None]


@dataclass
class Recon3DConfig:
    """Settings of :func:`reconstruct` (the CLI flags map one to one); validated by
    :func:`~prefpaint_apps.recon3d.check_config` before any model loads."""

    format: str = field(default="auto", metadata={"help": "scene format, or auto-detect"})
    views: int = field(default=8, metadata={"help": "novel views chosen around and between the inputs"})
    trajectory: str | None = field(default=None, metadata={"help": "file of novel cameras (.json/.log/.txt); overrides views"})
    depth_model: str | None = field(default="auto", metadata={"help": "monocular depth model id/folder; 'auto' = Depth Anything "
                                                                      "V2 Small when available; None/'none' = propagate"})
    voxel_size: float | None = field(default=None, metadata={"help": "TSDF voxel in metres; default median depth / 150; at least the scene's extent / "
                                                         f"{MAX_VOXELS_PER_AXIS} (bounded memory)"})
    depth_trunc: float | None = field(default=None, metadata={"help": "ignore depth beyond this (m); default 1.05 x 99th percentile"})
    num_candidates: int = field(default=1, metadata={"help": "inpaint candidates per view (best-of-N with a reward model)"})
    seed: int = field(default=0, metadata={"help": "base seed; view i uses seed + i"})
    steps: int | None = field(default=None, metadata={"help": "diffusion steps; default the model family's"})
    guidance_scale: float | None = field(default=None, metadata={"help": "guidance scale; default the model family's"})
    prompt: str = field(default="", metadata={"help": "inpainting prompt (the paper uses none)"})
    max_frames: int | None = field(default=None, metadata={"help": "use at most this many input frames, evenly spaced"})
    fov: float = field(default=60.0, metadata={"help": "horizontal field of view (deg) for a single image"})
    depth_scale: float | None = field(default=None, metadata={"help": "raw depth units per metre, overriding the format's"})
    sources_per_view: int = field(default=3, metadata={"help": "input views warped into each novel view"})
    mask_dilate: int = field(default=2, metadata={"help": "pixels the hole mask grows by before inpainting"})
    spread: float = field(default=0.12, metadata={"help": "novel-camera orbit offset as a fraction of the scene depth"})
    fusion_backend: str = field(default="auto", metadata={"help": "auto, scalable (CPU) or voxelblockgrid (CUDA)"})
    device: str = field(default="auto", metadata={"help": "device for warping and depth (auto, cpu, cuda)"})
    flythrough_fps: float = field(default=4.0, metadata={"help": "frames per second of flythrough.mp4 (one frame per novel view)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty output folder whole (no old file survives)"})


@dataclass
class ViewRecord:
    """What happened to one novel view."""

    index: int
    c2w: list
    intrinsics: dict
    hole_fraction: float
    specks_filled: int
    inpainted: bool
    seeds: list[int]
    scores: list[float] | None
    best_index: int | None
    depth_fill: str
    seconds: dict


@dataclass
class Recon3DResult:
    """The outcome of :func:`reconstruct`: output paths, per-view records and the metrics written."""

    out: Path
    files: dict[str, Path]
    views: list[ViewRecord]
    metrics: dict
    mesh: Any = None
    points: Any = None


def _to_pil(rgb):
    from PIL import Image

    return Image.fromarray(rgb)


def _nearest_sources(poses: np.ndarray, dirs: np.ndarray, c2w: np.ndarray, k: int, scale: float) -> list[int]:
    """Indices of the k views closest in position (relative to the scene scale) and viewing direction."""
    if len(poses) == 0:
        return []
    score = np.linalg.norm(poses - c2w[:3, 3], axis=1) / scale + (1.0 - dirs @ c2w[:3, 2])
    return list(np.argsort(score)[:k])


def _load_estimator(cfg: Recon3DConfig, need: bool):
    """The depth model: None to propagate; the default falls back to propagation when unavailable."""
    name = cfg.depth_model
    if name is None or str(name).lower() == "none":
        if need:
            raise InvalidInputError("frames without depth maps (a single image, or COLMAP without depths/) need a depth model; "
                                    "drop ", Arg("depth_model", "none"), " or pass a model id/folder")
        return None
    if name == "auto":
        try:
            return load_depth_estimator(DEFAULT_DEPTH_MODEL, cfg.device)
        except ModelNotFoundError:
            if need:
                raise
            log.warning("default depth model %s unavailable; holes get depth propagated from their borders", DEFAULT_DEPTH_MODEL)
            return None
    return load_depth_estimator(name, cfg.device)


@quiet_libraries  # Open3D's and scipy's warnings: debug records, not output
def reconstruct(scene: str | Path | Scene, out: str | Path, config: Recon3DConfig | None = None, *, inpainter=None,
                model: str | None = None, reward_model: str | None = None, depth_estimator=None,
                progress: ProgressFn | None = None) -> Recon3DResult:
    """Reconstruct a scene in 3D, filling the holes of novel views with the PrefPaint inpainter.

    Args:
        scene: a scene folder (any supported format), an image file, or a loaded :class:`Scene`.
        out: output folder (must be empty unless ``config.overwrite``).
        config: :class:`Recon3DConfig`.
        inpainter: an :class:`~prefpaint_sdk.Inpainter` (or anything with its call signature); loaded
            from ``model``/``reward_model`` when None.
        model: inpainting model id or folder when ``inpainter`` is None (default: the SDK's default).
        reward_model: reward model id/folder for best-of-N selection.
        depth_estimator: an object with ``kind`` and ``__call__(rgb) -> HxW``; overrides ``config.depth_model``.
        progress: called as ``progress(done, total, description)`` after each novel view.

    Returns:
        A :class:`Recon3DResult`.

    Everything cheap is checked first, before any model loads (:func:`~prefpaint_apps.recon3d.check_inputs`).
    The output folder is built in a stage beside ``out`` and replaces it whole at the end: an interrupted or
    failed run leaves nothing (a rerun needs no ``overwrite``), and ``overwrite`` keeps no file of an earlier run.

    Raises:
        InvalidInputError: bad settings (a count below 1, a size that is not finite and > 0, a seed out of range).
        OutputExistsError: ``out`` is not empty and overwrite is off.
        MissingDependencyError: open3d or trimesh is missing (``pip install 'prefpaint[recon3d]'``).
        DataError: scene problems (unrecognised layout, missing files, sizes, depth scale, trajectory, empty fusion).
        ModelNotFoundError: a model that cannot be loaded.
    """
    cfg = config or Recon3DConfig()
    scene = check_inputs(scene, out, cfg)  # settings, output folder, layout, trajectory, extra: before any model
    out = Path(out)
    t_start = time.perf_counter()
    timings: dict[str, float] = {"load": 0.0, "warp": 0.0, "inpaint": 0.0, "depth": 0.0, "fusion": 0.0, "write": 0.0}

    t0 = time.perf_counter()
    frames = list(scene.frames)
    no_depth = [i for i, f in enumerate(frames) if not f.has_depth]
    if len(frames) > 1:
        unscalable = [frames[i].name for i in no_depth if frames[i].sparse_depth is None]
        if unscalable:
            raise DataError(f"{scene.format} scene at '{scene.root}' has no depth for frame '{unscalable[0]}' "
                            f"({len(unscalable)} such frames); multi-view input needs a depth map per frame, or sparse "
                            "points (COLMAP points3D) to scale monocular depth, which alone is not consistent across views")
    cams_file = read_trajectory(cfg.trajectory, frames[0].intrinsics) if cfg.trajectory is not None else None
    est = depth_estimator if depth_estimator is not None else _load_estimator(cfg, need=bool(no_depth))
    for i in no_depth:
        rgb = frames[i].load_rgb()
        sparse = frames[i].sparse_depth
        depth = single_image_depth(est, rgb) if sparse is None else sparse_aligned_depth(est, rgb, sparse)
        frames[i] = frames[i].with_arrays(rgb, depth)
    inputs = FrameCache(frames)
    readable = [i for i in range(len(frames)) if inputs.get(i) is not None]
    if not readable:
        raise DataError(f"all {len(frames)} frames of '{scene.root}' are unreadable; first error: {next(iter(inputs.unreadable.values()))}")
    if len(inputs.unreadable) > len(frames) // 2:
        raise DataError(f"{len(inputs.unreadable)} of {len(frames)} frames are unreadable; first error: {next(iter(inputs.unreadable.values()))}")
    depths = np.concatenate([inputs.get(i)[1][::4, ::4].ravel() for i in readable[:: max(1, len(readable) // 20)]])
    depths = depths[depths > 0]
    med = float(np.median(depths))
    depth_trunc = cfg.depth_trunc if cfg.depth_trunc is not None else float(1.05 * np.quantile(depths, 0.99))
    extent = scene_extent([frames[i] for i in readable], depth_trunc)
    voxel = check_voxel_size(cfg.voxel_size, extent) if cfg.voxel_size is not None else default_voxel_size(med, extent)
    if not depth_trunc > voxel:
        raise InvalidInputError(f"voxel_size={voxel:g} and depth_trunc={depth_trunc:g} must be positive with depth_trunc > voxel_size")
    check = check_scene(Scene(scene.root, scene.format, frames), max_pairs=10) if len(frames) > 1 else {"pairs": 0, "consistent_share": None}
    if check.get("consistent_share") is not None and check["consistent_share"] < CONSISTENCY_THRESHOLD:
        log.warning("only %.1f%% of reprojected pixels agree between neighbouring frames: check the pose convention and "
                    "the depth scale (run with %s)", 100 * check["consistent_share"], Arg("check", True))
    timings["load"] = time.perf_counter() - t0

    # novel cameras
    poses = [frames[i].c2w for i in readable]
    if cams_file is not None:
        cams = cams_file
    else:
        cams = [(frames[readable[j]].intrinsics, p) for j, p in novel_cameras(poses, cfg.views, med, cfg.spread)]

    if inpainter is None:
        from prefpaint_sdk import Inpainter

        kwargs = {"reward_model": reward_model, "device": cfg.device}
        inpainter = Inpainter.from_pretrained(model, **kwargs) if model else Inpainter.from_pretrained(**kwargs)

    # Everything is written into a stage beside ``out`` that replaces it whole at the end: an interrupted
    # run leaves nothing, and overwrite leaves no file of an earlier run.
    with staged_dir(out, cfg.overwrite) as stage:
        records, done, sheet, files = _novel_views(cfg, cams, frames, readable, poses, inputs, est, inpainter, med, stage, out,
                                                   timings, progress)

        # fusion: inputs streamed from disk, then completed views
        t0 = time.perf_counter()

        def _views():
            for i in readable:
                got = inputs.get(i)
                if got is not None:
                    yield got[0], got[1], frames[i].intrinsics, frames[i].c2w
            yield from done

        fused = fuse_tsdf(_views(), voxel, depth_trunc, backend=cfg.fusion_backend)
        timings["fusion"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        O.save_mesh(fused.mesh, stage / "mesh.ply")
        O.save_glb(fused.mesh, stage / "mesh.glb")
        O.save_points(fused.points, stage / "points.ply")
        tf = []
        for i in readable:
            got = inputs.get(i)
            if got is None:
                continue
            f = frames[i]
            O.save_rgb(got[0], stage / "inputs" / f"{i:05d}.png")
            O.save_depth_mm(got[1], stage / "inputs" / f"{i:05d}_depth.png")
            O.save_valid_mask(np.ones(got[0].shape[:2], bool), stage / "inputs" / f"{i:05d}_valid.png")
            tf.append(O.transforms_entry(f"inputs/{i:05d}.png", f"inputs/{i:05d}_depth.png", f.intrinsics, f.c2w,
                                         mask_path=f"inputs/{i:05d}_valid.png", source="input"))
            files.update({f"inputs/{i:05d}{s}.png": out / "inputs" / f"{i:05d}{s}.png" for s in ("", "_depth", "_valid")})
        for r, (_, _, intr, c2w) in zip(records, done):
            v = f"views/{r.index:03d}"
            tf.append(O.transforms_entry(f"{v}/inpainted.png", f"{v}/depth.png", intr, c2w, mask_path=f"{v}/valid.png", source="novel"))
        O.write_transforms(stage / "transforms.json", tf)
        O.contact_sheet(sheet, stage / "contact_sheet.png")
        video = O.write_flythrough([d[0] for d in done], stage, fps=cfg.flythrough_fps)
        for name in ("mesh.ply", "mesh.glb", "points.ply", "transforms.json", "contact_sheet.png", video.name, "metrics.json"):
            files[name] = out / name
        timings["write"] += time.perf_counter() - t0
        timings["total"] = time.perf_counter() - t_start

        metrics = {
            "scene": {"root": str(scene.root), "format": scene.format, "frames": len(frames), "used_frames": len(readable),
                      "unreadable_frames": len(inputs.unreadable), "skipped_at_load": len(scene.skipped), "notes": scene.notes,
                      "median_depth_m": med},
            "check": check,
            "fusion": {"voxel_size_m": voxel, "sdf_trunc_m": fused.sdf_trunc, "depth_trunc_m": depth_trunc, "backend": fused.backend,
                       "views_fused": fused.views, **fused.stats},
            "inpainting": {"model": getattr(inpainter, "model_id", None), "reward_model": reward_model,
                           "num_candidates": cfg.num_candidates, "seed": cfg.seed, "prompt": cfg.prompt,
                           **_sampling(inpainter, cfg)},
            "depth_fill": {"model": getattr(est, "model_id", None if est is None else type(est).__name__),
                           "kind": getattr(est, "kind", None)},
            "views": [asdict(r) for r in records],
            "mean_hole_fraction": float(np.mean([r.hole_fraction for r in records])) if records else 0.0,
            "flythrough": video.name,
            "timings_s": timings,
            "config": asdict(cfg),
        }
        atomic_write_json(stage / "metrics.json", metrics)
    return Recon3DResult(out, files, records, metrics, fused.mesh, fused.points)


def _novel_views(cfg, cams, frames, readable, poses, inputs, est, inpainter, med, stage: Path, out: Path, timings, progress):
    """Warp, clean, inpaint and give depth to each novel view in turn; write its files into ``stage``.

    Completed views become warp sources for the later ones.
    """
    from . import outputs as O

    centres = np.stack([p[:3, 3] for p in poses])
    dirs = np.stack([p[:3, 2] for p in poses])
    done: list[tuple[np.ndarray, np.ndarray, Intrinsics, np.ndarray]] = []  # completed novel views
    records: list[ViewRecord] = []
    sheet: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    files: dict[str, Path] = {}
    # warping runs on CUDA when asked for or available; other accelerators lack scatter_reduce("amin")
    dev = cfg.device if str(cfg.device).startswith("cuda") else ("cuda" if cfg.device == "auto" and _cuda() else "cpu")
    for vi, (intr, c2w) in enumerate(cams):
        tv = {"warp": 0.0, "inpaint": 0.0, "depth": 0.0}
        t0 = time.perf_counter()
        src = [WarpSource(*inputs.get(readable[j]), frames[readable[j]].intrinsics, poses[j])
               for j in _nearest_sources(centres, dirs, c2w, cfg.sources_per_view, med)]
        if done:
            dc = np.stack([d[3][:3, 3] for d in done])
            dd = np.stack([d[3][:3, 2] for d in done])
            src += [WarpSource(*done[j]) for j in _nearest_sources(dc, dd, c2w, 2, med)]
        cleaned = clean_holes(forward_warp(src, intr, c2w, device=dev), dilate=cfg.mask_dilate)
        tv["warp"] = time.perf_counter() - t0
        rgb, depth, mask = cleaned.rgb, cleaned.depth.copy(), cleaned.inpaint_mask
        seeds, scores, best, fill = [], None, None, "none"
        if mask.any():
            t0 = time.perf_counter()
            res = inpainter(_to_pil(rgb), mask, prompt=cfg.prompt, num_candidates=cfg.num_candidates, seed=cfg.seed + vi,
                            steps=cfg.steps, guidance_scale=cfg.guidance_scale, mask_dilate=0, keep_unmasked=True)
            filled = np.asarray(res.image.convert("RGB"))
            if filled.shape != rgb.shape:
                raise DataError(f"the inpainter returned {filled.shape[1]}x{filled.shape[0]} for a {intr.width}x{intr.height} view")
            # Known pixels outside the mask stay exactly as warped, whatever the inpainter does at the seam.
            completed = np.where(mask[..., None], filled, rgb)
            seeds, scores, best = list(res.seeds), (list(res.scores) if res.scores is not None else None), res.best_index
            tv["inpaint"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            holes = cleaned.holes
            if est is not None and (~holes & (depth > 0)).sum() >= 10:
                mono = align_depth(np.asarray(est(completed), dtype=np.float64), est.kind, depth, ~holes & (depth > 0))
                depth = np.where(holes, mono, depth).astype(np.float32)
                fill = "monocular"
            else:
                depth = np.where(holes, propagate_depth(depth, holes), depth).astype(np.float32)
                fill = "propagated"
            tv["depth"] = time.perf_counter() - t0
        else:
            completed = rgb
        # nerfstudio's meaning: every pixel that holds content, warped or inpainted (holes outside the mask
        # would stay empty, but clean_holes puts every remaining hole inside it)
        valid = ~cleaned.holes | mask
        done.append((completed, depth, intr, c2w))
        for k, sec in tv.items():
            timings[k] += sec
        t0 = time.perf_counter()
        v = f"views/{vi:03d}"
        O.save_rgb(rgb, stage / v / "rgb.png")
        O.save_depth_mm(depth, stage / v / "depth.png")
        O.save_mask(mask, stage / v / "holes.png")
        O.save_valid_mask(valid, stage / v / "valid.png")
        O.save_rgb(completed, stage / v / "inpainted.png")
        files.update({f"{v}/{n}": out / v / n for n in ("rgb.png", "depth.png", "holes.png", "valid.png", "inpainted.png")})
        timings["write"] += time.perf_counter() - t0
        sheet.append((rgb, mask, completed))
        records.append(ViewRecord(vi, c2w.tolist(), intr.to_dict(), float(mask.mean()), cleaned.specks_filled, bool(mask.any()),
                                  seeds, scores, best, fill, tv))
        if progress is not None:
            progress(vi + 1, len(cams), f"view {vi + 1}/{len(cams)}: {mask.mean():.1%} holes")
    return records, done, sheet, files


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def _sampling(inpainter, cfg: Recon3DConfig) -> dict:
    """The steps and guidance the views were inpainted with: the config's, else the model family's defaults."""
    defaults = getattr(inpainter, "defaults", None) or {}
    steps = cfg.steps if cfg.steps is not None else defaults.get("steps")
    guidance = cfg.guidance_scale if cfg.guidance_scale is not None else defaults.get("guidance_scale")
    return {"steps": steps, "guidance_scale": guidance}
