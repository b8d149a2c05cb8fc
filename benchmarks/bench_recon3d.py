"""recon3d benchmark: our warp + hole mask against an open3d point-cloud round trip, and TSDF fusion time,
per 640x480 view on CPU, side by side, with quality against exact ground truth.

* **ours:** ``forward_warp`` (footprint z-buffer splatting, vectorised torch) + ``clean_holes`` from the
  3 nearest input views.
* **open3d round trip** (what a user scripts by hand): ``o3d.t.geometry.PointCloud.create_from_rgbd_image``
  per source view, appended, then ``project_to_rgbd_image`` into the novel camera; holes = depth 0.
* **fusion:** ``ScalableTSDFVolume`` integration (voxel 2 cm, the usual indoor setting), per view.
* **inpaint floor (optional, ``--unet``):** one forward pass of a randomly initialised UNet with the real
  Stable Diffusion inpainting configuration (9 input channels, 64x64 latents, CFG batch 2), times 50
  steps: what one real-model inpaint costs on this machine. Random weights run at the same speed as
  trained ones. Target (issue 6): geometry under 10% of one inpaint per view.

Quality is measured on the same novel views against ray-cast ground truth: PSNR on pixels both methods
call visible and truly visible, and IoU of the hole mask with the true disocclusion mask.

Run:  .venv/bin/python benchmarks/bench_recon3d.py [--repeats 3] [--unet] [--write FILE]
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _timing import compare, machine


def _psnr(a, b, m):
    d = (a.astype(np.float64) - b.astype(np.float64))[m] ** 2
    return float(10 * np.log10(255.0**2 / max(d.mean(), 1e-12))) if m.any() else float("nan")


def _iou(a, b):
    return float((a & b).sum() / max((a | b).sum(), 1))


def open3d_round_trip(sources, intr, c2w, depth_max: float):
    """Naive baseline: open3d point clouds from each RGB-D view, merged, projected into the target."""
    import open3d as o3d

    K = o3d.core.Tensor(intr.K, o3d.core.float64)
    pcd = None
    for s in sources:
        rgbd = o3d.t.geometry.RGBDImage(o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(s.rgb.astype(np.float32) / 255))),
                                        o3d.t.geometry.Image(o3d.core.Tensor(np.ascontiguousarray(s.depth))))
        p = o3d.t.geometry.PointCloud.create_from_rgbd_image(rgbd, o3d.core.Tensor(s.intrinsics.K, o3d.core.float64),
                                                            o3d.core.Tensor(np.linalg.inv(s.c2w), o3d.core.float64),
                                                            depth_scale=1.0, depth_max=depth_max, with_normals=False)
        pcd = p if pcd is None else pcd.append(p)
    out = pcd.project_to_rgbd_image(intr.width, intr.height, K, o3d.core.Tensor(np.linalg.inv(c2w), o3d.core.float64),
                                    depth_scale=1.0, depth_max=depth_max)
    depth = np.asarray(out.depth.as_tensor().numpy())[..., 0]
    rgb = np.clip(np.asarray(out.color.as_tensor().numpy()) * 255, 0, 255).round().astype(np.uint8)
    return rgb, depth, depth <= 0


def unet_inpaint_seconds(steps: int = 50) -> float:
    """One SD-inpainting-size UNet forward (random weights, CFG batch 2, 64x64 latents) x steps, fp32 CPU."""
    import torch
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel(sample_size=64, in_channels=9, out_channels=4, cross_attention_dim=768,
                                block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, attention_head_dim=8).eval()
    x = torch.randn(2, 9, 64, 64)
    ctx = torch.randn(2, 77, 768)
    with torch.no_grad():
        unet(x, 10, ctx)  # warm-up
        t0 = time.perf_counter()
        unet(x, 10, ctx)
        one = time.perf_counter() - t0
    return one * steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--unet", action="store_true", help="also time a real-size UNet forward to estimate one inpaint")
    ap.add_argument("--write", type=Path, default=None, help="write the markdown table here")
    args = ap.parse_args()

    import open3d as o3d
    from prefpaint_apps.recon3d import (
        WarpSource,
        clean_holes,
        covisible_mask,
        forward_warp,
        fuse_tsdf,
        novel_cameras,
    )
    from prefpaint_apps.recon3d.testing import make_synthetic_scene

    W, H = 640, 480
    t0 = time.perf_counter()
    sc = make_synthetic_scene(5, W, H)
    print(f"rendered 5 ground-truth views at {W}x{H} in {time.perf_counter() - t0:.1f} s")
    frames = sc.frames
    k = frames[0].intrinsics
    cams = novel_cameras([f.c2w for f in frames], args.views, 2.9, 0.12)
    srcs_all = [WarpSource(f.rgb, f.depth, f.intrinsics, f.c2w) for f in frames]

    def nearest(c2w, n=3):
        d = [np.linalg.norm(f.c2w[:3, 3] - c2w[:3, 3]) for f in frames]
        return [srcs_all[i] for i in np.argsort(d)[:n]]

    quality = {"ours": [], "open3d": []}
    t_ours, t_o3d = [], []
    for _j, c2w in cams:
        srcs = nearest(c2w)
        gt_rgb, gt_d = sc.render(k, c2w)
        gt_holes = ~covisible_mask(gt_d, k, c2w, [(s.depth, s.intrinsics, s.c2w) for s in srcs])
        res = {}
        t = compare({
            "ours": lambda r=res, s=srcs, c=c2w: r.__setitem__("ours", clean_holes(forward_warp(s, k, c), dilate=0)),
            "open3d": lambda r=res, s=srcs, c=c2w: r.__setitem__("open3d", open3d_round_trip(s, k, c, 20.0)),
        }, repeats=args.repeats)
        t_ours.append(t["ours"])
        t_o3d.append(t["open3d"])
        ours, (b_rgb, _, b_holes) = res["ours"], res["open3d"]
        quality["ours"].append((_psnr(ours.rgb, gt_rgb, ~gt_holes & ~ours.holes), _iou(ours.holes, gt_holes)))
        quality["open3d"].append((_psnr(b_rgb, gt_rgb, ~gt_holes & ~b_holes), _iou(b_holes, gt_holes)))

    # fusion, per view: 5 inputs + the novel views' ground truth (stand-in for completed views)
    views = [(f.rgb, f.depth, f.intrinsics, f.c2w) for f in frames] + [(*sc.render(k, c), k, c) for _, c in cams]
    fus = {}
    for backend in ("scalable", "voxelblockgrid"):
        t0 = time.perf_counter()
        r = fuse_tsdf(views, 0.02, 9.0, backend=backend, device="CPU:0")
        fus[backend] = ((time.perf_counter() - t0) / len(views), r.stats["triangles"])

    unet = unet_inpaint_seconds() if args.unet else None

    def med(xs):
        return float(np.median(xs))
    q = {m: (med([a for a, _ in v]), med([b for _, b in v])) for m, v in quality.items()}
    lines = [
        f"# recon3d benchmark ({_dt.date.today().isoformat()})",
        "",
        (f"Machine: {machine()}; open3d {o3d.__version__}. Synthetic room scene, {W}x{H}, {len(cams)} novel views, "
         f"3 source views each, median of {args.repeats} interleaved repeats per view."),
        "",
        "| per 640x480 view | ours (torch splatting + cleanup) | open3d point-cloud round trip | ratio open3d/ours |",
        "|---|---|---|---|",
        f"| warp + hole mask, s | {med(t_ours):.3f} | {med(t_o3d):.3f} | {med(t_o3d) / med(t_ours):.2f}x |",
        f"| PSNR on visible pixels vs ground truth, dB | {q['ours'][0]:.1f} | {q['open3d'][0]:.1f} | |",
        f"| hole-mask IoU vs true disocclusion | {q['ours'][1]:.3f} | {q['open3d'][1]:.3f} | |",
        "",
        "| fusion per view (voxel 2 cm, depth_trunc 9 m, CPU) | s/view | triangles |",
        "|---|---|---|",
        f"| ScalableTSDFVolume (default on CPU) | {fus['scalable'][0]:.3f} | {fus['scalable'][1]} |",
        f"| VoxelBlockGrid on CPU (default on CUDA) | {fus['voxelblockgrid'][0]:.3f} | {fus['voxelblockgrid'][1]} |",
    ]
    geo = med(t_ours) + fus["scalable"][0]
    if unet is not None:
        lines += [
            "",
            (f"Floor: one real-size inpaint (SD-inpainting UNet, 50 steps, CFG batch 2, fp32 CPU, random weights) "
             f"= {unet:.1f} s on this machine. Geometry per view (warp + mask + fusion) = {geo:.2f} s = {100 * geo / unet:.2f}% of it "
             f"(target < 10%)."),
        ]
    else:
        lines += ["", f"Geometry per view (warp + mask + fusion) = {geo:.2f} s; run with --unet for the inpaint floor."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        args.write.write_text(text)
        print(f"wrote {args.write}")


if __name__ == "__main__":
    main()
