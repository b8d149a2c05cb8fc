"""Forward warping of RGB-D views into a novel camera by z-buffer splatting (vectorised torch).

Algorithm, for all source pixels of all source views at once:

1. Back-project valid source pixels (depth > 0), transform and project them into the target.
2. **Footprints.** Each source pixel covers a rectangle of target pixels whose half-extents come from
   the warp's local Jacobian: the target-space steps to its neighbouring pixels on the same surface
   (a steep step still counts when it continues a plane). This models magnification and
   foreshortening, so surfaces the target sees larger than the source did get no cracks, while
   silhouettes stay where they truly are (footprints never stretch across a depth edge).
3. **Z-buffer** (``scatter_reduce`` with ``amin``): every point at its nearest pixel, magnified points
   over their whole footprint. The closest surface wins each pixel.
4. **Leak removal.** A pixel whose depth is clearly farther than *both* its left and right (or upper
   and lower) neighbours is a crack through which a farther surface shows; it is emptied, and the hole
   cleanup (``holes.py``) fills it. Testing both sides leaves the background beside a foreground
   silhouette alone, so disocclusion borders stay exact. (A genuine one-pixel-wide gap between two
   nearer surfaces is indistinguishable from a crack and is treated as one.)
5. **Colour and depth** by splatting: nearest pixel for unmagnified points, bilinear or tent weights
   (radius footprint + 0.5) for magnified ones, averaging only the points on the z-buffer's surface (depth within
   ``surface_tol``), so colours are resampled smoothly and never blended across depth edges.

Pixels no point reaches are holes: disocclusions plus the area outside all source frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from prefpaint_sdk import InvalidInputError

from .cameras import Intrinsics

__all__ = ["WarpResult", "WarpSource", "forward_warp"]


@dataclass
class WarpSource:
    """One RGB-D view to warp from: HxWx3 uint8 RGB, HxW float32 metres (0 = invalid), camera, pose."""

    rgb: np.ndarray
    depth: np.ndarray
    intrinsics: Intrinsics
    c2w: np.ndarray


@dataclass
class WarpResult:
    """A warped view: RGB (HxWx3 uint8), depth (HxW float32, 0 in holes), valid (HxW bool) and the hole
    mask before cleanup (``~valid``)."""

    rgb: np.ndarray
    depth: np.ndarray
    valid: np.ndarray

    @property
    def holes(self) -> np.ndarray:
        return ~self.valid


def _check(src: WarpSource, i: int) -> None:
    h, w = src.intrinsics.height, src.intrinsics.width
    if src.rgb.shape != (h, w, 3) or src.depth.shape != (h, w):
        raise InvalidInputError(
            f"warp source {i}: rgb {src.rgb.shape} and depth {src.depth.shape} must be ({h}, {w}, 3) and ({h}, {w}) "
            "to match its intrinsics"
        )


def _remove_leaks(zbuf, rel: float):
    """Empty z-buffer pixels that lie farther than closer surfaces on both opposite sides (crack leaks)."""
    import torch

    thresh = zbuf * (1.0 - rel)
    leak = torch.zeros_like(zbuf, dtype=torch.bool)
    # border pixels lack one side (an infinitely far one), so they are never leaks
    t = thresh[:, 1:-1]
    leak[:, 1:-1] |= (zbuf[:, 2:] < t) & (zbuf[:, :-2] < t)
    t = thresh[1:-1, :]
    leak[1:-1, :] |= (zbuf[2:, :] < t) & (zbuf[:-2, :] < t)
    return zbuf.masked_fill(leak, float("inf"))


# Rows of the per-point table (channel-major, one contiguous row per quantity): colour and depth first,
# so that ``pts[:_NV]`` are the values the colour splat averages (r, g, b, depth, 1 — the last one sums
# the weights).
_R, _Z, _ONE, _U, _V, _HU, _HV, _NCOL = 0, 3, 4, 5, 6, 7, 8, 9
_NV = 5
# Largest (offsets x points) block handled at once by the batched footprint loops: bounds the memory of
# extreme footprints (large ``max_footprint``) while keeping the number of kernel launches small.
_BLOCK = 1 << 22


def _project_source(s: WarpSource, intr: Intrinsics, w2c, dev, continuity: float, out):
    """Project one source's pixels into the target, with each pixel's footprint half-extents.

    The footprint is the exact local Jacobian of the warp: the target-space distance to the projections
    of the pixel's right/left and lower/upper neighbours (the larger side), taken only across neighbours
    on the same surface. It models magnification *and* foreshortening (a grazing surface seen frontally).
    Pixels with no same-surface neighbour keep the depth-ratio magnification.

    Writes every pixel (in row-major pixel order) into ``out``, a (_NCOL, H*W) float32 table with rows
    r, g, b, z, 1, u, v, hu, hv, and returns the (H*W,) mask of the valid ones (source depth > 0, in front
    of the target). Selecting the valid pixels is left to the caller, which does it once for all sources.
    """
    import torch

    d = torch.tensor(s.depth, dtype=torch.float32, device=dev)  # a copy: inputs may be read-only views
    h, w = d.shape
    v, u = torch.meshgrid(torch.arange(h, device=dev, dtype=torch.float32), torch.arange(w, device=dev, dtype=torch.float32), indexing="ij")
    k = s.intrinsics
    cam = torch.stack([(u - k.cx) / k.fx * d, (v - k.cy) / k.fy * d, d]).view(3, -1)
    # source camera → world → target camera in one matrix product, channel-major: (3x3) @ (3 x H*W) is a
    # wide GEMM, many times faster than (H*W x 3) @ (3x3), and leaves x, y, z as contiguous rows
    m = (w2c @ torch.as_tensor(s.c2w, dtype=torch.float64, device=dev)).to(torch.float32)
    p = (m[:3, :3] @ cam + m[:3, 3:]).view(3, h, w)
    z = p[2]
    ok = (d > 0) & (z > 1e-6)
    zs = torch.where(ok, z, torch.ones_like(z))
    pu = intr.fx * p[0] / zs + intr.cx
    pv = intr.fy * p[1] / zs + intr.cy
    inv = torch.where(ok, 1.0 / torch.where(ok, d, torch.ones_like(d)), torch.zeros_like(d))
    f = torch.nn.functional.pad

    def _steps(axis: int):
        # |Δu|, |Δv| to the next pixel along `axis`, valid only between same-surface neighbours
        sl_a = (slice(None), slice(1, None)) if axis == 1 else (slice(1, None), slice(None))
        sl_b = (slice(None), slice(None, -1)) if axis == 1 else (slice(None, -1), slice(None))
        both = ok[sl_a] & ok[sl_b]
        near = torch.abs(d[sl_a] - d[sl_b]) <= continuity * torch.minimum(d[sl_a], d[sl_b])
        # A steep step is still one surface when it continues a plane: on a plane, inverse depth is affine
        # in pixel coordinates, so the step in 1/d equals the previous or next pair's step.
        st = inv[sl_a] - inv[sl_b]
        lo, hi = ((1, 0), (0, 1)) if axis == 1 else ((0, 0, 1, 0), (0, 0, 0, 1))
        sl_p = (slice(None), slice(None, -1)) if axis == 1 else (slice(None, -1), slice(None))
        sl_n = (slice(None), slice(1, None)) if axis == 1 else (slice(1, None), slice(None))
        prev = f(st, lo, value=float("nan"))[sl_p]
        nxt = f(st, hi, value=float("nan"))[sl_n]
        both_p = f(both, lo, value=False)[sl_p]
        both_n = f(both, hi, value=False)[sl_n]
        tol = continuity * 0.2 * inv[sl_a]
        planar = (both_p & (torch.abs(st - prev) <= tol)) | (both_n & (torch.abs(st - nxt) <= tol))
        same = both & (near | planar)
        # the step to the neighbour, or -1 for "no same-surface neighbour"
        du_ = torch.where(same, torch.abs(pu[sl_a] - pu[sl_b]), -1.0)
        dv_ = torch.where(same, torch.abs(pv[sl_a] - pv[sl_b]), -1.0)
        # larger of the forward and backward step for every pixel
        su = torch.maximum(f(du_, hi, value=-1.0), f(du_, lo, value=-1.0))
        sv = torch.maximum(f(dv_, hi, value=-1.0), f(dv_, lo, value=-1.0))
        return su, sv

    xu, xv = _steps(1)
    yu, yv = _steps(0)
    mag = (intr.fx / k.fx) * d / zs  # fallback: depth-ratio magnification
    xu, xv = torch.where(xu < 0, mag, xu), torch.where(xv < 0, 0.0, xv)
    yu, yv = torch.where(yu < 0, 0.0, yu), torch.where(yv < 0, mag, yv)
    out[_R:_R + 3] = torch.tensor(s.rgb, device=dev).view(-1, 3).T
    out[_Z] = z.reshape(-1)
    out[_ONE] = 1.0
    out[_U] = pu.reshape(-1)
    out[_V] = pv.reshape(-1)
    # 0.55 rather than 0.5: a 10% overlap so rounding never opens a one-pixel crack between footprints
    torch.mul(xu + yu, 0.55, out=out[_HU].view(h, w))
    torch.mul(xv + yv, 0.55, out=out[_HV].view(h, w))
    return ok.reshape(-1)


def _offsets(r: int, ring: bool, dev):
    """(dx, dy) long tensors of the square of radius r (or only its ring), dy-major like nested loops."""
    import torch

    off = [(ox, oy) for oy in range(-r, r + 1) for ox in range(-r, r + 1) if not ring or max(abs(ox), abs(oy)) == r]
    t = torch.tensor(off, dtype=torch.long, device=dev)
    return t[:, 0:1], t[:, 1:2]


def forward_warp(sources: Sequence[WarpSource], intrinsics: Intrinsics, c2w: np.ndarray, *, surface_tol: float = 0.03,
                 leak_tol: float = 0.1, max_footprint: float = 4.0, continuity: float = 0.05,
                 device: str = "cpu") -> WarpResult:
    """Warp one or more RGB-D views into a target camera.

    Args:
        sources: the views to warp from; their points share one z-buffer, so the closest surface wins.
        intrinsics: target camera.
        c2w: target camera-to-world pose (4x4, OpenCV axes).
        surface_tol: relative depth band around the z-buffer that counts as the same surface for colour.
        leak_tol: relative depth gap above which a pixel between two closer neighbours is a leak.
        max_footprint: largest splat footprint in target pixels (bounds the cost of extreme close-ups).
        continuity: relative source-depth step above which neighbouring pixels are on different surfaces
            (a footprint never stretches across such a step, so silhouettes stay sharp).
        device: torch device for the maths.

    Returns:
        A :class:`WarpResult` at the target size.

    Raises:
        InvalidInputError: no sources, or arrays that do not match their intrinsics.

    Shape:
        sources[i].rgb (H_i, W_i, 3), sources[i].depth (H_i, W_i) → rgb (H, W, 3), depth (H, W), valid (H, W).
    """
    import torch

    if not sources:
        raise InvalidInputError("forward_warp needs at least one source view")
    for i, s in enumerate(sources):
        _check(s, i)
    H, W = intrinsics.height, intrinsics.width
    dev = torch.device(device)
    inf = float("inf")
    w2c = torch.as_tensor(np.linalg.inv(c2w), dtype=torch.float64, device=dev)
    sizes = np.cumsum([0] + [s.intrinsics.height * s.intrinsics.width for s in sources]).tolist()
    table = torch.empty((_NCOL, sizes[-1]), dtype=torch.float32, device=dev)
    ok = torch.cat([_project_source(s, intrinsics, w2c, dev, continuity, table[:, a:b])
                    for s, a, b in zip(sources, sizes[:-1], sizes[1:])])
    table[_HU:_HV + 1].clamp_(max=max_footprint / 2)
    hmax = torch.maximum(table[_HU], table[_HV])

    # The valid points, grouped by footprint class (each class keeps the original point order, so the
    # colour sums below add in the same order as one pass per class would): one gather of the whole
    # table, after which every class is a contiguous slice instead of a fancy-indexed copy per use.
    #   0: unmagnified (<= 0.6 px)  1: bilinear (<= 0.95)  2: tent radius 2 (<= 1.5)  3: larger  4: other
    classes = [ok & (hmax <= 0.6), ok & (hmax > 0.6) & (hmax <= 0.95), ok & (hmax > 0.95) & (hmax <= 1.5), ok & (hmax > 1.5)]
    classes.append(ok & ~(classes[0] | classes[1] | classes[2] | classes[3]))  # NaN footprints: z-buffer only
    idx = [torch.nonzero(c).squeeze(1) for c in classes]
    bounds = np.cumsum([0] + [i.numel() for i in idx]).tolist()
    order = torch.cat(idx)
    pts = torch.empty((_NCOL, order.numel()), dtype=torch.float32, device=dev)
    for row in range(_NCOL):  # row by row: 1-D gathers of contiguous rows are the fast path
        torch.index_select(table[row], 0, order, out=pts[row])
    del table
    # channel-major values: five 1-D index_adds are much faster than one row-wise index_add
    vals, u, v, z, hu, hv = pts[:_NV], pts[_U], pts[_V], pts[_Z], pts[_HU], pts[_HV]
    hmax = torch.maximum(hu, hv)
    uc, vc = torch.round(u).long(), torch.round(v).long()
    pix = vc * W + uc  # flat index of the nearest pixel (meaningful only inside the frame)
    reach = int(np.ceil(float(hmax[: bounds[4]].max()) - 0.5)) if bounds[4] else 0

    def _rows(a: int, b: int) -> dict:
        return {"u": u[a:b], "v": v[a:b], "uc": uc[a:b], "vc": vc[a:b], "pix": pix[a:b], "hu": hu[a:b], "hv": hv[a:b],
                "z": z[a:b], "hmax": hmax[a:b], "vals": vals[:, a:b], "n": b - a}

    # Footprint tests and tent weights are separable: whether (or how much) a point covers the pixel at
    # offset (dx, dy) is a function of dx times a function of dy. Both are computed once per column and
    # row offset, (2r + 1) x points each, and only combined per offset, as cheap products of those rows.
    def _per_offset(fu_, fv_, ix, iy, pix_, offset_lin):
        # nonzero (offset, point) pairs of fu_[ix] * fv_[iy], offset-major like nested loops over offsets
        # (in blocks of offsets, so huge footprints never materialise offsets x points at once)
        step = max(1, _BLOCK // max(pix_.numel(), 1))
        out = []
        for a in range(0, ix.numel(), step):
            wgt = (fu_.index_select(0, ix[a:a + step]) * fv_.index_select(0, iy[a:a + step])).view(-1)
            f = torch.nonzero(wgt).squeeze(1)
            o, j = f // pix_.numel(), f % pix_.numel()
            out.append((wgt.index_select(0, f), pix_.index_select(0, j) + offset_lin[a:a + step].index_select(0, o), j))
        return tuple(torch.cat(t) for t in zip(*out)) if len(out) > 1 else out[0]

    def _cols(x0, u_, d, limit: int):
        # x0 + d for every offset d (a column vector), its distance to u_ and whether it lies in [0, limit)
        xx = x0 + d
        return torch.abs(xx - u_), (xx >= 0) & (xx < limit)

    def _ring(r: int, ring: bool):
        # per-axis offsets -r..r (a column vector), and for every (dx, dy) of the square (or its ring):
        # the rows of the per-axis tables to combine and the offset's flat pixel shift
        o = torch.arange(-r, r + 1, device=dev)
        dx, dy = _offsets(r, ring, dev)
        return o[:, None], (dx + r).view(-1), (dy + r).view(-1), (dy * W + dx).view(-1)

    # 1) z-buffer: every point at its nearest pixel; points whose footprint reaches ring r (only the
    #    magnified ones, so the cost stays near one scatter per point) also cover that ring.
    zbuf = torch.full((H * W,), inf, device=dev)
    inside = (uc >= 0) & (uc < W) & (vc >= 0) & (vc < H)
    zbuf.scatter_reduce_(0, pix[inside], z[inside], reduce="amin")
    for r in range(1, reach + 1):
        # hmax > r - 0.4 (0.1 px of slack: unit-spacing points stay single) lies in classes 1-3 for r = 1,
        # in class 3 beyond
        sel = _rows(bounds[1] if r == 1 else bounds[3], bounds[4])
        if not sel["n"]:
            continue
        o, ix, iy, lin = _ring(r, True)
        du_, in_u = _cols(sel["uc"], sel["u"], o, W)
        dv_, in_v = _cols(sel["vc"], sel["v"], o, H)
        cover_u = in_u & (du_ <= sel["hu"])
        cover_v = in_v & (dv_ <= sel["hv"]) & (sel["hmax"] > r - 0.4)
        _, target, j = _per_offset(cover_u, cover_v, ix, iy, sel["pix"], lin)
        zbuf.scatter_reduce_(0, target, sel["z"].index_select(0, j), reduce="amin")
    zbuf = _remove_leaks(zbuf.view(H, W), leak_tol).view(-1)

    # 2) colour/depth splat, only from points on the z-buffer's surface (no blending across depth edges);
    #    larger footprints use a tent of radius (footprint + 0.5) so every covered pixel gets colour.
    acc = torch.zeros((_NV, H * W), device=dev)

    def _splat(sel: dict, wu, wv, ix, iy, pix_, lin):
        # wu / wv: weight of each column / row offset, 0 outside the frame; a pixel takes a point when
        # the product exceeds 1e-4 and the point lies on the pixel's z-buffer surface. Rejected pairs add
        # exact zeros (to pixel 0), which changes no sum and keeps the others' order.
        if ix.numel() <= 4:  # nearest / bilinear: nearly every pair counts, so no compaction
            wgt = wu.index_select(0, ix) * wv.index_select(0, iy)
            keep = wgt > 1e-4
            target = torch.where(keep, pix_ + lin[:, None], 0).view(-1)
            zb = zbuf.index_select(0, target).view_as(wgt)
            z_ = sel["z"]
        else:
            wgt, target, j = _per_offset(wu, wv, ix, iy, pix_, lin)
            keep = wgt > 1e-4
            zb = zbuf.index_select(0, target)
            z_ = sel["z"].index_select(0, j)
        keep &= torch.isfinite(zb) & (torch.abs(z_ - zb) <= surface_tol * zb)
        wgt = torch.where(keep, wgt, 0.0)
        for c in range(_NV):
            if c == _ONE:  # the weight itself (1 * w == w exactly)
                acc[c].index_add_(0, target, wgt.view(-1))
            elif ix.numel() <= 4:
                acc[c].index_add_(0, target, (sel["vals"][c] * wgt).view(-1))
            else:
                acc[c].index_add_(0, target, sel["vals"][c].index_select(0, j) * wgt)

    # Unmagnified points (footprint ~1 px) colour only their nearest pixel, weighted by closeness: as
    # sharp as the source (bilinear splatting would low-pass it) and one scatter per point.
    sel = _rows(bounds[0], bounds[1])
    if sel["n"]:
        o, ix, iy, lin = _ring(0, False)
        du_, in_u = _cols(sel["uc"], sel["u"], o, W)
        dv_, in_v = _cols(sel["vc"], sel["v"], o, H)
        _splat(sel, torch.where(in_u, 1 - du_, 0.0), torch.where(in_v, 1 - dv_, 0.0), ix, iy, sel["pix"], lin)
    # Mildly magnified points: bilinear over the 4 neighbours covers every pixel of a footprint up to ~1 px.
    sel = _rows(bounds[1], bounds[2])
    if sel["n"]:
        u0, v0 = torch.floor(sel["u"]), torch.floor(sel["v"])
        fu, fv = sel["u"] - u0, sel["v"] - v0
        u0, v0 = u0.long(), v0.long()
        o = torch.tensor([[0], [1]], device=dev)
        in_u, in_v = (u0 + o >= 0) & (u0 + o < W), (v0 + o >= 0) & (v0 + o < H)
        wu = torch.where(in_u, torch.stack([1 - fu, fu]), 0.0)
        wv = torch.where(in_v, torch.stack([1 - fv, fv]), 0.0)
        ix = torch.tensor([0, 1, 0, 1], device=dev)  # (dx, dy) = (0, 0), (1, 0), (0, 1), (1, 1)
        iy = torch.tensor([0, 0, 1, 1], device=dev)
        _splat(sel, wu, wv, ix, iy, v0 * W + u0, ix + W * iy)
    for c, r in ((2, 2), (3, reach + 1)):
        sel = _rows(bounds[c], bounds[c + 1])
        if not sel["n"]:
            continue
        o, ix, iy, lin = _ring(r, False)  # the tent reaches half a pixel beyond the footprint
        du_, in_u = _cols(sel["uc"], sel["u"], o, W)
        dv_, in_v = _cols(sel["vc"], sel["v"], o, H)
        wu = torch.where(in_u, (1 - du_ / (sel["hu"] + 0.5)).clamp_min(0), 0.0)
        wv = torch.where(in_v, (1 - dv_ / (sel["hv"] + 0.5)).clamp_min(0), 0.0)
        _splat(sel, wu, wv, ix, iy, sel["pix"], lin)
    wsum = acc[4]
    valid = torch.isfinite(zbuf) & (wsum > 0)
    rgb = torch.where(valid, acc[:3] / wsum.clamp_min(1e-12), torch.zeros(1, device=dev)).T
    depth = torch.where(valid, acc[3] / wsum.clamp_min(1e-12), torch.zeros(1, device=dev))
    return WarpResult(
        rgb=rgb.round().clamp(0, 255).to(torch.uint8).reshape(H, W, 3).cpu().numpy(),
        depth=depth.view(H, W).cpu().numpy().astype(np.float32),
        valid=valid.view(H, W).cpu().numpy(),
    )
