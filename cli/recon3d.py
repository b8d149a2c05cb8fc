"""``prefpaint recon3d SCENE -o OUT``: novel views with inpainted holes, fused into a 3D mesh.

Parse, call :mod:`prefpaint_apps.recon3d`, report. The app, torch and open3d are imported inside the
command body; ``--check`` validates the scene without loading any model.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from pathlib import Path

import typer

from ._common import console, handle_errors, note, progress, say, setup
from ._options import COUNT, MODEL_NAME, POSITIVE, SEED, max_pixels_option, offline_option

_FORMATS = "auto, nerfstudio, colmap, tum, replica, scannet, redwood, single"


def recon3d(
    scene: Path = typer.Argument(..., help="Scene folder (nerfstudio, COLMAP, TUM, Replica, ScanNet, Open3D/Redwood) or one image."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output folder (must be empty unless --overwrite). Needed unless --check."),
    format: str = typer.Option("auto", "--format", help=f"Scene format: {_FORMATS}."),
    views: int = typer.Option(8, "--views", callback=COUNT, help="Novel views chosen around and between the input views."),
    trajectory: Path | None = typer.Option(None, "--trajectory", help="Novel cameras from a file (.json nerfstudio, .log Open3D, .txt TUM or 4x4 rows); overrides --views."),
    depth_model: str = typer.Option("auto", "--depth-model", callback=MODEL_NAME, help="Monocular depth model (hub id or folder) for filled pixels and single images; "
                                    "'auto' = depth-anything/Depth-Anything-V2-Small-hf when available; 'none' = propagate from hole borders."),
    voxel_size: float | None = typer.Option(None, "--voxel-size", callback=POSITIVE, help="TSDF voxel size in metres, at least the scene's extent / 1024 (at most 1024 voxels per axis, so memory is predictable). Default: median depth / 150, raised to that bound."),
    depth_trunc: float | None = typer.Option(None, "--depth-trunc", callback=POSITIVE, help="Ignore depth beyond this many metres. Default: 1.05 x the 99th percentile."),
    depth_scale: float | None = typer.Option(None, "--depth-scale", callback=POSITIVE, help="Raw depth units per metre, overriding the format's (TUM 5000, Replica 6553.5, others 1000)."),
    fov: float = typer.Option(60.0, "--fov", callback=POSITIVE, help="Horizontal field of view in degrees for a single image."),
    max_frames: int | None = typer.Option(None, "--max-frames", callback=COUNT, help="Use at most N input frames, evenly spaced."),
    num_candidates: int = typer.Option(1, "-n", "--num-candidates", callback=COUNT, help="Inpainting candidates per view; the best by reward is kept with --reward-model."),
    seed: int = typer.Option(0, "--seed", callback=SEED, help="Base seed; view i uses seed + i."),
    steps: int | None = typer.Option(None, "--steps", callback=COUNT, help="Diffusion steps per view. Default: the model family's (SD 50, SDXL 30, FLUX Fill 50)."),
    prompt: str = typer.Option("", "--prompt", help="Text prompt (PrefPaint is used without one)."),
    model: str | None = typer.Option(None, "--model", callback=MODEL_NAME, help="Inpainting model: hub id, alias or diffusers folder. Default: kd5678/prefpaint-v1.0."),
    reward_model: str | None = typer.Option(None, "--reward-model", callback=MODEL_NAME, help="Reward model (hub id or folder) for best-of-N."),
    device: str = typer.Option("auto", "--device", help="auto (cuda, mps, cpu), cpu, cuda or cuda:N."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (fp16 on cuda, fp32 elsewhere), float32, float16, bfloat16."),
    check: bool = typer.Option(False, "--check", help="Only load the scene, reproject neighbouring frames and report depth consistency; writes nothing."),
    offline: bool | None = offline_option(),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a non-empty output folder whole (no old file survives)."),
    max_pixels: int | None = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Reconstruct SCENE in 3D: warp to novel views, inpaint the holes, fuse a mesh (mesh.ply/.glb, points.ply, transforms.json)."""
    setup(quiet=quiet, debug=debug, offline=offline, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_apps.recon3d import (
            Recon3DConfig,
            check_inputs,
            check_scene,
            load_scene,
            reconstruct,
            require_consistent,
            validate,
        )

        cfg = Recon3DConfig(format=format, views=views, trajectory=str(trajectory) if trajectory else None,
                            depth_model=depth_model, voxel_size=voxel_size, depth_trunc=depth_trunc, num_candidates=num_candidates,
                            seed=seed, steps=steps, prompt=prompt, fov=fov, depth_scale=depth_scale, device=device,
                            max_frames=max_frames, overwrite=overwrite)
        validate(scene, output, cfg, check=check)
        if check:
            loaded = load_scene(scene, format, depth_scale=depth_scale, fov=fov, max_frames=max_frames)
            for line in loaded.notes:
                note(line)
            report = check_scene(loaded)
            _report_check(loaded, report)
            require_consistent(report)  # a failed check is an error (exit 2), not a warning
            return
        # Everything that needs no model, before the slow model load: settings, the output folder, the scene
        # layout, the trajectory, the [recon3d] extra.
        loaded = check_inputs(scene, output, cfg)
        for line in loaded.notes:
            note(line)
        cfg = dataclasses.replace(cfg, format=loaded.format)

        from prefpaint_sdk import DEFAULT_MODEL, Inpainter

        with console.status("loading model", spinner="dots") if not quiet else nullcontext():
            inpainter = Inpainter.from_pretrained(model or DEFAULT_MODEL, device=device, dtype=dtype,
                                                  reward_model=reward_model, offline=offline, steps=steps)
        with progress(quiet) as bar:
            task = bar.add_task("novel views", total=None)
            result = reconstruct(loaded, output, cfg, inpainter=inpainter, reward_model=reward_model,
                                 progress=lambda done, total, desc: bar.update(task, completed=done, total=total, description=desc))
        if not quiet:
            m = result.metrics
            f = m["fusion"]
            say(
                f"{scene} ({m['scene']['format']}, {m['scene']['used_frames']} frames) -> {output}: {len(result.views)} novel views, "
                f"mean holes {m['mean_hole_fraction']:.1%}; mesh {f['vertices']} vertices / {f['triangles']} triangles "
                f"(voxel {f['voxel_size_m']:.3g} m, depth_trunc {f['depth_trunc_m']:.3g} m, {f['backend']}); "
                f"{m['timings_s']['total']:.1f} s. Files: mesh.ply mesh.glb points.ply transforms.json metrics.json contact_sheet.png flythrough views/"
            )
            if m["scene"]["unreadable_frames"]:
                note(f"skipped {m['scene']['unreadable_frames']} unreadable frames")


def _report_check(scene, report: dict) -> None:
    """The consistency table on stdout; every name is text, never markup."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Console(highlight=False, markup=False, soft_wrap=True)
    share = report["consistent_share"]
    out.print(f"{scene.root}: format {scene.format}, {len(scene.frames)} frames, {len(scene.skipped)} skipped at load, "
              f"{report['skipped_frames']} unreadable")
    if report["pairs"]:
        table = Table("frame a", "frame b", "overlap px", "consistent")
        for p in report["per_pair"]:
            table.add_row(Text(str(p["a"])), Text(str(p["b"])), str(p["overlap_pixels"]), f"{p['consistent_share']:.1%}")
        out.print(table)
    if share is None:
        out.print("no neighbouring frame pairs to compare (a single frame, no depth maps, or no overlap)")
    else:
        out.print(f"depth-consistent pixels between neighbouring frames: {share:.1%}")
