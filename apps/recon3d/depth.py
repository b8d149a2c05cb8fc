"""Depth for pixels the inpainter invents, and for single images.

* Monocular depth through transformers' ``depth-estimation`` pipeline (default: Depth Anything V2 Small).
  Relative models (Depth Anything, DPT) predict affine-invariant *disparity*; metric ones predict depth.
* :func:`fit_scale_shift`: a robust (trimmed, refitted) least-squares fit of the prediction to the warped
  depth on known pixels, so the filled pixels join the known geometry.
* :func:`propagate_depth`: without a model, holes take depth from their borders, biased to the far side,
  because a disocclusion reveals what lies *behind* the occluder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from prefpaint_sdk import DataError, InvalidInputError, ModelNotFoundError
from prefpaint_sdk.utils import Arg

__all__ = [
    "DEFAULT_DEPTH_MODEL",
    "DepthEstimator",
    "align_depth",
    "fit_scale_shift",
    "load_depth_estimator",
    "propagate_depth",
    "single_image_depth",
]

log = logging.getLogger(__name__)

DEFAULT_DEPTH_MODEL = "depth-anything/Depth-Anything-V2-Small-hf"


class DepthEstimator(Protocol):
    """Anything that maps an RGB image to a dense HxW prediction.

    ``kind`` is "disparity" (affine-invariant inverse depth, the relative models) or "depth" (metric).
    """

    kind: str

    def __call__(self, rgb: np.ndarray) -> np.ndarray: ...


@dataclass
class HFDepthEstimator:
    """A transformers depth-estimation pipeline, resized back to the input size."""

    pipe: Callable
    kind: str
    model_id: str

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        import torch
        from PIL import Image

        out = self.pipe(Image.fromarray(rgb))
        pred = out["predicted_depth"]
        pred = pred if isinstance(pred, torch.Tensor) else torch.as_tensor(np.asarray(pred))
        pred = pred.reshape(1, 1, *pred.shape[-2:]).float()
        pred = torch.nn.functional.interpolate(pred, size=rgb.shape[:2], mode="bilinear", align_corners=False)
        return pred[0, 0].cpu().numpy()


def load_depth_estimator(model: str = DEFAULT_DEPTH_MODEL, device: str = "auto") -> HFDepthEstimator:
    """Load a monocular depth model (hub id or local folder) through transformers' pipeline.

    Raises:
        ModelNotFoundError: the model is neither local, cached, nor reachable (offline).
    """
    import torch
    from transformers import pipeline

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    refuse_pickle_depth_model(model)
    try:
        # safetensors only: a pickled pytorch_model.bin is never loaded (no unpickling, ever)
        pipe = pipeline("depth-estimation", model=model, device=device, model_kwargs={"use_safetensors": True})
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"depth model '{model}' could not be loaded ({str(exc).splitlines()[0]}); download it while online, pass a local "
            "folder as ", Arg("depth_model"), ", or ", Arg("depth_model", "none"), " to propagate depth from hole borders"
        ) from exc
    cfg = pipe.model.config
    metric = getattr(cfg, "depth_estimation_type", None) == "metric" or cfg.model_type in ("zoedepth",)
    return HFDepthEstimator(pipe, "depth" if metric else "disparity", model)


def refuse_pickle_depth_model(model: str) -> None:
    """A local model folder whose weights exist only as pickles (``pytorch_model.bin``, ...) is refused."""
    from pathlib import Path

    from prefpaint_sdk import PickleRefusedError

    folder = Path(model).expanduser()
    if folder.is_dir() and not any(folder.glob("*.safetensors")):
        for p in sorted(folder.iterdir()):
            if p.suffix.lower() in (".bin", ".pt", ".pth", ".ckpt", ".pkl"):
                raise PickleRefusedError.for_file(p, "depth model weights")


def fit_scale_shift(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, trim: float = 0.2, iters: int = 3) -> tuple[float, float]:
    """Robust least-squares ``a * pred + b ≈ target`` on ``mask``: fit, drop the worst ``trim`` share of
    residuals, refit (``iters`` times).

    Raises:
        DataError: fewer than 10 usable pixels, or a degenerate (constant) prediction.
    """
    x, y = pred[mask].astype(np.float64), target[mask].astype(np.float64)
    ok = np.isfinite(x) & np.isfinite(y)
    x, y = x[ok], y[ok]
    if x.size < 10:
        raise DataError(f"only {x.size} known pixels to align monocular depth to; the view is almost all hole")
    keep = np.ones(x.size, bool)
    a = b = 0.0
    for _ in range(iters + 1):
        A = np.stack([x[keep], np.ones(int(keep.sum()))], 1)
        sol, *_ = np.linalg.lstsq(A, y[keep], rcond=None)
        a, b = float(sol[0]), float(sol[1])
        r = np.abs(a * x + b - y)
        keep = r <= np.quantile(r, 1.0 - trim)
    if not np.isfinite(a) or abs(a) < 1e-12:
        raise DataError("monocular depth is constant on the known pixels; cannot align it")
    return a, b


def align_depth(pred: np.ndarray, kind: str, ref_depth: np.ndarray, ref_mask: np.ndarray) -> np.ndarray:
    """Monocular prediction → metres, aligned to ``ref_depth`` on ``ref_mask`` (fit in the model's own space).

    Raises:
        InvalidInputError: unknown ``kind``.
    """
    if kind == "disparity":
        m = ref_mask & (ref_depth > 0)
        a, b = fit_scale_shift(pred, 1.0 / np.where(m, ref_depth, 1.0), m)
        disp = a * pred + b
        floor = 1.0 / (4.0 * ref_depth[m].max())  # never further than 4x the known range
        return (1.0 / np.maximum(disp, floor)).astype(np.float32)
    if kind == "depth":
        m = ref_mask & (ref_depth > 0)
        a, b = fit_scale_shift(pred, ref_depth, m)
        return np.maximum(a * pred + b, 1e-3).astype(np.float32)
    raise InvalidInputError(f"depth estimator kind '{kind}' is unknown; use 'disparity' or 'depth'")


def propagate_depth(depth: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Fill ``holes`` from their borders, from the far side.

    For each hole component, the known pixels on its border whose depth is at least the border's median
    are the "far side"; every hole pixel takes the depth of the nearest far-side pixel. A disocclusion
    reveals what lies behind the occluder, so the near side (the occluder itself) must not bleed in.

    Returns:
        HxW float32 with holes filled (left 0 only when the view has no known depth at all).
    """
    from scipy import ndimage

    depth = np.asarray(depth, dtype=np.float32)
    known = ~holes & (depth > 0)
    todo = holes | (depth <= 0)
    if not todo.any() or not known.any():
        return depth.copy()
    labels, n = ndimage.label(todo, structure=np.ones((3, 3), bool))
    border = ndimage.binary_dilation(todo, structure=np.ones((3, 3), bool)) & known
    # each border pixel belongs to the (largest-numbered) hole component next to it
    border_label = np.where(border, ndimage.grey_dilation(labels, size=(3, 3)), 0)
    med = np.asarray(ndimage.median(depth, border_label, index=np.arange(1, n + 1)), dtype=np.float32).reshape(-1)
    med = np.concatenate([[np.inf], np.nan_to_num(med, nan=np.inf)])
    far = border & (depth >= med[border_label])
    if not far.any():
        far = known
    _, (iy, ix) = ndimage.distance_transform_edt(~far, return_indices=True)
    out = depth.copy()
    out[todo] = depth[iy[todo], ix[todo]]
    return out


def single_image_depth(estimator: DepthEstimator, rgb: np.ndarray, median_depth: float = 2.0) -> np.ndarray:
    """Depth in metres for a lone image.

    A metric model's output is used as is. A relative model's disparity has no scale or shift, so we
    invert it (clipping the farthest 2%) and scale the result to ``median_depth`` metres.
    """
    pred = np.asarray(estimator(rgb), dtype=np.float64)
    if estimator.kind == "depth":
        return np.where(np.isfinite(pred) & (pred > 0), pred, 0).astype(np.float32)
    pos = pred[np.isfinite(pred) & (pred > 0)]
    if pos.size == 0:
        raise DataError("the depth model returned no positive disparity for this image")
    disp = np.clip(pred, np.quantile(pos, 0.02), None)
    d = 1.0 / disp
    return (d * (median_depth / np.median(d))).astype(np.float32)


def sparse_aligned_depth(estimator: DepthEstimator, rgb: np.ndarray, sparse_uvz: np.ndarray, min_points: int = 20) -> np.ndarray:
    """Dense depth for a frame with only sparse measurements (COLMAP points): the monocular prediction,
    fitted to the sparse depths by the robust scale/shift fit (in the model's own space).

    Args:
        estimator: a :class:`DepthEstimator`.
        rgb: HxWx3 uint8.
        sparse_uvz: (N, 3) rows of pixel u, v (OpenCV centres) and depth z.
        min_points: fewest sparse points inside the image to attempt a fit.

    Raises:
        DataError: too few sparse points fall inside the image.
    """
    h, w = rgb.shape[:2]
    ui, vi = np.round(sparse_uvz[:, 0]).astype(np.int64), np.round(sparse_uvz[:, 1]).astype(np.int64)
    ok = (ui >= 0) & (ui < w) & (vi >= 0) & (vi < h) & (sparse_uvz[:, 2] > 0)
    if ok.sum() < min_points:
        raise DataError(f"only {int(ok.sum())} sparse points fall inside the image; at least {min_points} are needed to scale "
                        "monocular depth (add depth maps, or re-run COLMAP's mapper with more features)")
    ref = np.zeros((h, w), np.float32)
    ref[vi[ok], ui[ok]] = sparse_uvz[ok, 2]
    return align_depth(np.asarray(estimator(rgb), dtype=np.float64), estimator.kind, ref, ref > 0)
