"""``prefpaint masks generate``: reproducible mask sets for evaluation and training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ._common import EXIT_FAILED, failed, handle_errors, make_app, progress, say, say_error, setup
from ._options import SEED, max_pixels_option

masks_app = make_app(help="Generate reproducible inpainting masks.", no_args_is_help=True)


@masks_app.command("generate")
def generate(
    images: Path = typer.Argument(..., help="An image, or a folder of images."),
    kind: str = typer.Option(..., "--kind", help="warp, outpaint-square, outpaint-strip, strokes, outpaint (square or strip) or random."),
    output: Path = typer.Option(..., "-o", "--output", help="Folder for the masks (<stem>.png, white = fill) and masks.json."),
    seed: int = typer.Option(0, "--seed", callback=SEED, help="Seed; each mask depends only on it, the kind and the image's stem and size."),
    depth: Optional[Path] = typer.Option(None, "--depth", help="Folder of depth maps (.npy or 16-bit/float images, larger = farther) paired by stem, for warp. Without it a tilted-plane proxy is used."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace the existing mask folder (the whole folder)."),
    max_pixels: Optional[int] = max_pixels_option(),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars or info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write one seeded mask per image of IMAGES, with the paper's mask statistics."""
    setup(quiet=quiet, debug=debug, max_pixels=max_pixels)
    with handle_errors(debug):
        from prefpaint_sdk.errors import InvalidInputError
        from prefpaint_sdk.evaluation import generate_mask_set
        from prefpaint_sdk.files import check_output_dir

        if not images.exists():
            raise InvalidInputError(f"images '{images}' does not exist; pass an image or a folder of images")
        check_output_dir(output, overwrite)
        skipped = []
        with progress(quiet) as bar:
            task = bar.add_task("masks", total=None)
            records = generate_mask_set(images, kind, output, seed=seed, depth_dir=depth, overwrite=overwrite,
                                        progress=lambda done, total: bar.update(task, completed=done, total=total),
                                        on_error=lambda path, exc: skipped.append((path, exc)))
        for path, exc in skipped:
            failed(path, exc)
        if not quiet:
            cov = [r["coverage"] for r in records]
            proxy = sum(r["depth"] == "proxy" for r in records)
            note = f"; {proxy} warp masks used the depth proxy (pass --depth for real depth)" if proxy else ""
            say(f"wrote {len(records)} masks to {output} (fill {min(cov) * 100:.0f}-{max(cov) * 100:.0f}%){note}")
        if skipped:  # as in every batch command: the others were written, the exit code says some failed
            say_error(f"{len(skipped)} of {len(records) + len(skipped)} images skipped (listed in masks.json)")
            raise typer.Exit(EXIT_FAILED)
