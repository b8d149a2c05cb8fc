"""``prefpaint download``: fetch weights into the hub cache ahead of time (e.g. before going offline)."""

from __future__ import annotations

from typing import List, Optional

import typer

from ._common import handle_errors, say_ok, setup
from ._options import MODEL_NAME


def download(
    models: Optional[List[str]] = typer.Argument(None, callback=MODEL_NAME, help="Hub ids or aliases. Default: the PrefPaint model and its reward model."),
    revision: Optional[str] = typer.Option(None, help="Branch, tag or commit (applies to every model given)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    """Download models into the Hugging Face cache, with progress, so later runs work offline."""
    setup(quiet=quiet, debug=debug, hub_progress=True)
    with handle_errors(debug):
        from prefpaint_sdk import DEFAULT_MODEL, DEFAULT_REWARD_MODEL, cache_dir
        from prefpaint_sdk.diagnostics import prefetch_model

        for name in models or [DEFAULT_MODEL, DEFAULT_REWARD_MODEL]:
            resolved = prefetch_model(name, revision=revision)
            say_ok(f"{resolved.model_id} @ {resolved.revision or 'local'} -> {resolved.path} (cache {cache_dir()})")
