"""``prefpaint rate DATA``: the human-rating page, and ``--import`` of raters' exports into train-reward labels."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from ._common import handle_errors, say, setup, warn
from ._options import requires


@requires(output="do_import")
def rate(
    data: Path = typer.Argument(..., help="Dataset folder in the official layout (inpaint/, masks/, masks_color/)."),
    files: Optional[List[Path]] = typer.Argument(None, help="With --import: the raters' exported ratings files.",
                                                 show_default=False),
    do_import: bool = typer.Option(False, "--import", help="Merge the ratings FILES into DATA/labels.json (score = 0.15 structure + 0.15 texture + 0.7 overall, averaged over raters; rank within each prompt) and report agreement between raters."),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="With --import: the labels file. Default: DATA/labels.json, which 'prefpaint train reward --data DATA' reads."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing labels file (--import), or a DATA/rate.html that this command did not write (it replaces only its own page without it)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No info messages."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Write DATA/rate.html, an offline page to rate every inpainting (open it in a browser, export the ratings);
    with --import, merge raters' exports into the labels that 'train reward' reads. It overwrites only its own
    page: a rate.html it did not write needs --overwrite."""
    setup(quiet=quiet, debug=debug)
    with handle_errors(debug):
        from prefpaint_apps.rate import validate

        validate(data, list(files or []), do_import=do_import)
        if not do_import:
            from prefpaint_apps.rate import PAGE_NAME, is_rating_page, write_rating_page

            before = data / PAGE_NAME
            how = ("" if not before.is_file() else " (replaced its own earlier page; it overwrites no other)"
                   if is_rating_page(before) else " (replaced the file there: --overwrite)")
            page = write_rating_page(data, overwrite=overwrite)
            if not quiet:
                say(f"wrote {page}{how}: open it in a browser (file:// works), rate, then 'Export ratings'; "
                    f"merge the exports with: prefpaint rate {data} --import ratings-*.json")
            return
        from prefpaint_apps.rate import import_ratings

        report = import_ratings(data, list(files or []), output=output, overwrite=overwrite)
        for w in report.warnings:
            warn(w)
        if quiet:
            return
        say(f"wrote {report.labels_path}: {report.labelled} inpaintings of {report.prompts} prompts from "
            f"{len(report.raters)} rater{'s' if len(report.raters) != 1 else ''} ({', '.join(report.raters)})"
            + (f"; {report.unrated} not fully rated, left out" if report.unrated else ""))
        for p in report.pairs:
            fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
            say(f"agreement {p.raters[0]} vs {p.raters[1]}: {p.common} in common, within-prompt order "
                f"{fmt(p.order_agreement)}, correlation {fmt(p.correlation)}, mean |score diff| {fmt(p.mean_abs_diff)}")
        if len(report.raters) < 2:
            say("agreement: one rater, nothing to compare")
