"""What every command shares: error reporting with exit codes, logging, progress bars.

Kept free of heavy imports so ``prefpaint --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Iterator

import typer
from rich.console import Console

console = Console(stderr=True, highlight=False)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_MODEL = 0, 1, 2, 3


def setup(quiet: bool = False, debug: bool = False, offline: bool = False) -> None:
    """Configure logging through rich, and offline mode, before any heavy import."""
    from rich.logging import RichHandler

    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    level = logging.DEBUG if debug else (logging.ERROR if quiet else logging.INFO)
    root = logging.getLogger("prefpaint_sdk")
    root.handlers[:] = [RichHandler(console=console, show_path=debug, show_time=False, markup=False)]
    root.setLevel(level)
    logging.getLogger("prefpaint_apps").handlers[:] = root.handlers
    logging.getLogger("prefpaint_apps").setLevel(level)
    if not debug:
        # Library chatter (deprecation notes, weight-loading bars) is noise for a CLI user.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        if quiet:
            os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def exit_code_for(exc: BaseException) -> int:
    from prefpaint_sdk.errors import PrefPaintError

    if isinstance(exc, PrefPaintError):
        return exc.exit_code
    return EXIT_FAILED


def error_line(exc: BaseException) -> str:
    from prefpaint_sdk.errors import PrefPaintError

    if isinstance(exc, PrefPaintError):
        return str(exc)
    return f"{exc.__class__.__name__}: {exc}"


@contextmanager
def handle_errors(debug: bool = False) -> Iterator[None]:
    """Turn an exception into one red line and the documented exit code (traceback with --debug)."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        raise typer.Exit(130)
    except Exception as exc:  # noqa: BLE001 - the CLI boundary reports everything
        if debug:
            console.print_exception(show_locals=False)
        console.print(f"[red]error:[/red] {error_line(exc)}", markup=True, soft_wrap=True)
        raise typer.Exit(exit_code_for(exc))


def progress(quiet: bool = False):
    """A rich progress bar on stderr; silent when stderr is not a terminal or with --quiet."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not sys.stderr.isatty(),
        transient=False,
    )
