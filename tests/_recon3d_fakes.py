"""Shared pieces of the recon3d tests: cached synthetic scenes, ground-truth fakes, metrics."""

from __future__ import annotations

from functools import cache
from types import SimpleNamespace

import numpy as np
from PIL import Image


@cache
def scene(n_frames: int = 3, width: int = 320, height: int = 240):
    """A synthetic scene (rendered once per process and size)."""
    from prefpaint_apps.recon3d.testing import make_synthetic_scene

    return make_synthetic_scene(n_frames, width, height)


def psnr(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float:
    a, b = a.astype(np.float64), b.astype(np.float64)
    d = (a - b) ** 2 if mask is None else (a - b)[mask] ** 2
    return float(10 * np.log10(255.0**2 / max(d.mean(), 1e-12)))


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def nn_dist(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Distance from each src point to its nearest dst point."""
    from scipy.spatial import cKDTree

    return cKDTree(dst).query(src, k=1)[0]


class _Matcher:
    """Identifies which candidate camera an image shows by comparing with ground-truth renders."""

    def __init__(self, sc, cams):
        self.renders = [(sc.render(k, c), k, c) for k, c in cams]

    def find(self, rgb: np.ndarray, known: np.ndarray | None = None):
        def err(r):
            m = known if known is not None else np.ones(rgb.shape[:2], bool)
            return np.abs(r[0][0].astype(float) - rgb.astype(float))[m].mean() if r[0][0].shape == rgb.shape else np.inf

        return min(self.renders, key=err)[0]


class GroundTruthInpainter:
    """An Inpainter stand-in (same call signature) that fills holes with the ground-truth render."""

    model_id = "fake/ground-truth"
    resolution = 64

    def __init__(self, sc, cams):
        self.matcher = _Matcher(sc, cams)
        self.calls = []

    def __call__(self, image, mask, prompt="", negative_prompt="", num_candidates=1, seed=None, steps=50, guidance_scale=7.5,
                 eta=1.0, mask_dilate=0, mask_blur=8, crop_margin=128, keep_unmasked=True, strength=1.0, progress=None):
        rgb = np.asarray(image.convert("RGB"))
        mask = np.asarray(mask, bool)
        gt_rgb, _ = self.matcher.find(rgb, ~mask)
        self.calls.append({"seed": seed, "num_candidates": num_candidates, "steps": steps})
        seeds = [seed + i for i in range(num_candidates)]
        return SimpleNamespace(image=Image.fromarray(gt_rgb), candidates=[Image.fromarray(gt_rgb)] * num_candidates, seeds=seeds,
                               scores=[float(i) for i in range(num_candidates)], best_index=num_candidates - 1, params={}, timings={})


class GroundTruthDisparity:
    """A depth estimator stand-in returning an affine transform of the true disparity (as relative models do)."""

    kind = "disparity"
    model_id = "fake/gt-disparity"

    def __init__(self, sc, cams):
        self.matcher = _Matcher(sc, cams)

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        _, d = self.matcher.find(rgb)
        return np.where(d > 0, 3.0 / np.maximum(d, 1e-6) + 0.2, 0.0)


# nerfstudio's CAMERA_MODEL_TO_TYPE keys (nerfstudio/cameras/cameras.py) and the distortion keys its
# nerfstudio_dataparser.py reads (camera_utils.get_distortion_params).
NERFSTUDIO_CAMERA_MODELS = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "OPENCV_FISHEYE", "EQUIRECTANGULAR",
                            "OMNIDIRECTIONALSTEREO_L", "OMNIDIRECTIONALSTEREO_R", "VR180_L", "VR180_R", "ORTHOPHOTO", "FISHEYE624"}
NERFSTUDIO_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def assert_nerfstudio_accepts(root) -> dict:
    """Check ``root/transforms.json`` against the rules of nerfstudio's ``nerfstudio_dataparser.py``.

    Encoded from its source (nerfstudio 1.x; on 2026-12-01 nerfstudio 1.1.5's own parser and datasets, installed
    with --no-deps in a side venv, also read our output: 5 frames, masks and depths). The rules: ``mask_path`` and ``depth_file_path`` on every frame or on
    none (two asserts there); ``camera_model`` a key of ``CAMERA_MODEL_TO_TYPE``; ``fl_x``, ``fl_y``, ``cx``,
    ``cy``, ``w``, ``h`` each at the top level or on every frame; paths relative to the folder of
    ``transforms.json``; a 4x4 (or 3x4) ``transform_matrix``. Its InputDataset then reads each mask as a
    single-channel image of the image's size, ``bool(pixel)`` meaning "sample this pixel", and each depth
    PNG times ``depth_unit_scale_factor`` (default 1e-3) as metres.

    Returns:
        The parsed JSON.
    """
    import json
    from pathlib import Path

    root = Path(root)
    meta = json.loads((root / "transforms.json").read_text())
    frames = meta["frames"]
    assert frames, "no frames"
    for key in ("mask_path", "depth_file_path"):
        n = sum(key in f for f in frames)
        assert n in (0, len(frames)), f"{key} on {n} of {len(frames)} frames: nerfstudio asserts every frame or none"
    assert meta.get("camera_model", "OPENCV") in NERFSTUDIO_CAMERA_MODELS, meta.get("camera_model")
    for key in ("fl_x", "fl_y", "cx", "cy", "w", "h"):
        assert key in meta or all(key in f for f in frames), f"{key} neither top-level nor on every frame"
    for f in frames:
        m = np.asarray(f["transform_matrix"], dtype=np.float64)
        assert m.shape in ((4, 4), (3, 4)) and np.isfinite(m).all()
        for key in ("file_path", "mask_path", "depth_file_path"):
            if key in f:
                assert not Path(f[key]).is_absolute(), f"{key} {f[key]} is absolute"
                assert (root / f[key]).is_file(), f"{key} {f[key]} missing"
        w, h = int(f.get("w", meta.get("w"))), int(f.get("h", meta.get("h")))
        with Image.open(root / f["file_path"]) as im:
            assert im.size == (w, h), (f["file_path"], im.size, (w, h))
        if "mask_path" in f:
            mask = np.asarray(Image.open(root / f["mask_path"]))
            assert mask.shape == (h, w), f"mask {f['mask_path']} is {mask.shape}, image ({h}, {w}): nerfstudio asserts equal shapes"
        if "depth_file_path" in f:
            d = np.asarray(Image.open(root / f["depth_file_path"]))
            assert d.shape == (h, w) and d.dtype == np.uint16
    assert float(meta.get("depth_unit_scale_factor", 1e-3)) == 1e-3  # nerfstudio reads the factor from its config, default 1e-3
    return meta
