"""Novel-view 3D reconstruction with hole filling, on a generated synthetic scene.

Renders a small RGB-D scene (ray-cast, with exact ground truth) into out/recon3d-scene/ in the Open3D/Redwood
layout (any supported layout works: nerfstudio, COLMAP, TUM, Replica, ScanNet), then warps it into novel
views, inpaints the disoccluded holes with PrefPaint and fuses everything into a mesh, in out/recon3d/.
Both folders are this example's own: a second run replaces them whole.

    python examples/recon3d.py                      # the real model (downloads kd5678/prefpaint-v1.0 once)
    python examples/recon3d.py --tiny               # a tiny random model built offline into out/tiny-models/
    prefpaint recon3d out/recon3d-scene -o out/recon3d --views 8 --overwrite   # the same from the command line

Outputs in out/recon3d/: mesh.ply, mesh.glb, points.ply, flythrough.mp4, transforms.json (nerfstudio, for
NeRF/3DGS; its masks are valid.png, non-zero = use), views/<i>/{rgb,depth,holes,valid,inpainted}.png,
metrics.json and contact_sheet.png.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefpaint_apps.recon3d import Recon3DConfig, reconstruct
from prefpaint_apps.recon3d.testing import make_synthetic_scene, write_scene

from prefpaint_sdk import Inpainter
from prefpaint_sdk.utils import staged_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("out") / "recon3d", help="output folder (replaced whole)")
    ap.add_argument("--scene", type=Path, default=Path("out") / "recon3d-scene", help="where the synthetic scene is written")
    ap.add_argument("--tiny", action="store_true", help="use a tiny random inpainting model built offline (no download)")
    ap.add_argument("--views", type=int, default=4)
    args = ap.parse_args()

    with staged_dir(args.scene, overwrite=True) as stage:  # whole or absent, like every output of the toolkit
        write_scene(make_synthetic_scene(n_frames=4, width=256, height=192).frames, stage, "redwood")
    print(f"synthetic scene written to {args.scene}/")

    if args.tiny:
        from _tiny import tiny_pipeline  # examples/_tiny.py: tiny random models in out/tiny-models/

        inpainter = Inpainter.from_pretrained(tiny_pipeline(), device="cpu")
        steps = 2
    else:
        inpainter = Inpainter.from_pretrained()  # kd5678/prefpaint-v1.0
        steps = 50

    cfg = Recon3DConfig(views=args.views, steps=steps, voxel_size=0.03, depth_trunc=9.0, depth_model="none" if args.tiny else "auto",
                        overwrite=True)
    result = reconstruct(args.scene, args.out, cfg, inpainter=inpainter, progress=lambda done, total, desc: print(f"  {desc}"))
    f = result.metrics["fusion"]
    print(f"{len(result.views)} novel views, mean holes {result.metrics['mean_hole_fraction']:.1%}; "
          f"mesh {f['vertices']} vertices, voxel {f['voxel_size_m']} m -> {result.out / 'mesh.ply'}; "
          f"fly-through {result.out / result.metrics['flythrough']}")


if __name__ == "__main__":
    main()
