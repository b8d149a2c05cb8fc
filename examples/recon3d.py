"""Novel-view 3D reconstruction with hole filling, on a generated synthetic scene.

Generates a small RGB-D scene (ray-cast, with exact ground truth), writes it in the Open3D/Redwood layout
(any supported layout works: nerfstudio, COLMAP, TUM, Replica, ScanNet), then warps it into novel views,
inpaints the disoccluded holes with PrefPaint and fuses everything into a mesh.

    python examples/recon3d.py                      # the real model (downloads kd5678/prefpaint-v1.0 once)
    python examples/recon3d.py --tiny               # a tiny random model built offline: runs anywhere in seconds
    prefpaint recon3d scene/ -o out/ --views 8       # the same from the command line

Outputs in out/: mesh.ply, mesh.glb, points.ply, views/<i>/{rgb,depth,mask,inpainted}.png, transforms.json
(nerfstudio, for NeRF/3DGS), metrics.json and contact_sheet.png.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from prefpaint_apps.recon3d import Recon3DConfig, reconstruct
from prefpaint_apps.recon3d.testing import make_synthetic_scene, write_scene

from prefpaint_sdk import Inpainter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=Path("recon3d_out"))
    ap.add_argument("--tiny", action="store_true", help="use a tiny random inpainting model built offline (no download)")
    ap.add_argument("--views", type=int, default=4)
    ap.add_argument("--overwrite", action="store_true")
    args = ap.parse_args()

    scene_dir = Path(tempfile.mkdtemp()) / "scene"
    write_scene(make_synthetic_scene(n_frames=4, width=320, height=240).frames, scene_dir, "redwood")
    print(f"synthetic scene written to {scene_dir}")

    if args.tiny:
        from prefpaint_sdk.testing import save_tiny_inpaint_pipeline

        inpainter = Inpainter.from_pretrained(save_tiny_inpaint_pipeline(Path(tempfile.mkdtemp()) / "tiny"), device="cpu")
        steps = 2
    else:
        inpainter = Inpainter.from_pretrained()  # kd5678/prefpaint-v1.0
        steps = 50

    cfg = Recon3DConfig(views=args.views, steps=steps, voxel_size=0.03, depth_trunc=9.0, depth_model="none" if args.tiny else "auto",
                        overwrite=args.overwrite)
    result = reconstruct(scene_dir, args.out, cfg, inpainter=inpainter,
                         progress=lambda done, total, desc: print(f"  {desc}"))
    f = result.metrics["fusion"]
    print(f"{len(result.views)} novel views, mean holes {result.metrics['mean_hole_fraction']:.1%}; "
          f"mesh {f['vertices']} vertices, voxel {f['voxel_size_m']} m -> {result.out / 'mesh.ply'}")


if __name__ == "__main__":
    main()
