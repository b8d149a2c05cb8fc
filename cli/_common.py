"""What every command shares: the app and command classes, error reporting, output helpers.

Mechanisms, so that no command has to remember them one by one:

* **Text, never markup.** Every message goes through :func:`say`, :func:`say_error`, :func:`say_ok`,
  :func:`warn` or :func:`note`, which build ``rich.text.Text`` objects: a path such as ``'nope[/x].png'``
  is printed as it is. Progress descriptions are not parsed as markup, help text is plain (no rich markup
  mode), and library log records go through a handler with ``markup=False``.
* **Flags of the printing command.** An SDK error names its parameters as data (``Arg("overwrite", True)``);
  :func:`error_line` shows each as the printing command's flag (``--overwrite``) through the one mapping in
  :mod:`._flags`, or as Python shows it (``overwrite=True``) where the command has no such option.
* **Numbers before any model loads.** Each option declares its value rule (``callback=COUNT``, ``SEED``, ...,
  in :mod:`._options`), checked while the command line is parsed, so renaming an option keeps its rule;
  :class:`Command` checks that every float is finite before the command body runs.
* **No option without effect.** ``@requires(seam_strength="seam_pass")`` on a command declares that an option
  given on the command line does nothing unless another is on; :class:`Command` refuses it (exit 2) before
  the body runs, naming both flags.
* **One line per usage error.** :class:`Group` prints click's usage errors as one ``error:`` line (exit 2).
* **Interrupts.** :mod:`prefpaint_sdk.interrupts` owns SIGINT and SIGTERM from the start (:func:`main`):
  each signal is recorded, then raised as ``KeyboardInterrupt`` so staged outputs are cleaned up; one that
  a destructor or a library swallowed is delivered again, and stops the run at the next publication. The
  exit code comes from the record: "interrupted" and 130 (Ctrl-C) or 143 (SIGTERM), whatever reached us.

Kept free of heavy imports so ``prefpaint --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from ._flags import cli_message, flag_for
from ._options import check_params, check_requires, click_exceptions
from ._quiet import quiet_library_bars

console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_MODEL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143


# ---- the command and group classes (the option rules they apply: ._options) ------------------------------
class Command(TyperCommand):
    """A command whose parsed values pass the value rules, and whose options each have an effect
    (:func:`requires`), before its body runs (so before any model loads)."""

    def invoke(self, ctx):
        check_params(self, ctx)
        check_requires(self, ctx)
        return super().invoke(ctx)


class Group(TyperGroup):
    """The root and sub-groups: click usage errors become one ``error:`` line on stderr."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except typer.Exit as exc:  # pragma: no cover - _main returns the code instead
            sys.exit(exc.exit_code)
        except click_exceptions().ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()
                sys.exit(exc.exit_code)
            say_error(" ".join(exc.format_message().split()) + _help_hint(exc))
            sys.exit(exc.exit_code)
        except click_exceptions().Abort:
            if interrupted():  # click turns a KeyboardInterrupt outside the command body into Abort
                sys.exit(_report_interrupt())
            say_error("aborted")
            sys.exit(EXIT_FAILED)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def run_main(app, reset: bool = True) -> None:
    """The process entry point: own the signals before anything else runs, and leave with the code the
    record gives. Once the code is decided a late signal is only recorded, so the interpreter's shutdown
    never prints a ``KeyboardInterrupt`` traceback. ``reset=False`` keeps what is on record (the console
    script installed the handlers before the imports, see ``_entry``)."""
    from prefpaint_sdk import interrupts

    interrupts.install(reset=reset)
    _reported["interrupt"] = False
    try:
        try:
            app()
            code = EXIT_OK
        except SystemExit as exc:
            code = exc.code
        except KeyboardInterrupt:  # pragma: no cover - Group.main catches it; a signal in between lands here
            code = None
    finally:
        interrupts.exiting()
    if interrupted():  # typer turns a KeyboardInterrupt outside the command body into a silent exit 130
        _leave_interrupted(_report_interrupt())
    sys.exit(code)


def _leave_interrupted(code: int) -> None:
    """Leave an interrupted run with ``code`` and without the C++ libraries' static teardown: Open3D's, after a
    SIGTERM mid-reconstruction, printed a memory-leak report on stdout and turned exit 143 into 1. Python's own
    exit handlers still run (temporary folders, loggers) before the process ends."""
    import atexit

    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or broken pipe: nothing more can be said there
            pass
    os._exit(code)


def _help_hint(exc) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return ""
    return f" (see '{ctx.command_path} --help')"



def make_app(**kw: Any) -> typer.Typer:
    """A ``typer.Typer`` whose commands are :class:`Command`, whose group is :class:`Group`, with plain help."""
    kw.setdefault("rich_markup_mode", None)  # help text is text: "[align]" stays "[align]"
    kw.setdefault("cls", Group)
    kw.setdefault("add_completion", False)
    kw.setdefault("pretty_exceptions_enable", False)
    kw.setdefault("context_settings", {"help_option_names": ["-h", "--help"]})
    app = _App(**kw)
    return app


class _App(typer.Typer):
    def command(self, *args: Any, **kw: Any):
        kw.setdefault("cls", Command)
        return super().command(*args, **kw)


# ---- setup: logging, offline, pixel limit, quiet libraries, signals ---------------------------------
def interrupt_exit_code() -> int:
    """130 after Ctrl-C, 143 after SIGTERM."""
    from prefpaint_sdk import interrupts

    return interrupts.exit_code()


def interrupted() -> bool:
    """Whether a signal is on record for this run (even one a library swallowed)."""
    from prefpaint_sdk import interrupts

    return interrupts.received() is not None


_reported = {"interrupt": False}


def _report_interrupt() -> int:
    """The one "interrupted" line (printed once, whichever layer sees the interrupt first); the exit code."""
    if not _reported["interrupt"]:
        _reported["interrupt"] = True
        say_error("interrupted", prefix="")
    return interrupt_exit_code()


def _stop_interrupted() -> None:
    raise typer.Exit(_report_interrupt())


def setup(quiet: bool = False, debug: bool = False, offline: bool | None = None, max_pixels: int | None = None,
          hub_progress: bool = False) -> None:
    """Configure logging through rich, offline mode, the pixel limit, quiet libraries and the signals.

    Args:
        offline: True forces offline mode (``HF_HUB_OFFLINE=1``); None follows the environment.
        max_pixels: the image pixel limit (``prefpaint_sdk.imaging.set_max_pixels``); None keeps the default.
        hub_progress: keep the hub's download bars (``prefpaint download``); other library bars stay quiet
            unless ``debug``.
    """
    from rich.logging import RichHandler

    from prefpaint_sdk import interrupts

    interrupts.install()  # already done by main(); in-process callers (tests) get it here
    _reported["interrupt"] = False
    if offline:
        os.environ["HF_HUB_OFFLINE"] = "1"
    level = logging.DEBUG if debug else (logging.ERROR if quiet else logging.INFO)
    handler = RichHandler(console=console, show_path=debug, show_time=False, markup=False, highlighter=None) if debug \
        else _LineHandler()
    handler.addFilter(_CliTextFilter())
    for name in ("prefpaint_sdk", "prefpaint_apps"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
    if not debug:
        # Library chatter (deprecation notes, weight-loading bars) is noise for a CLI user.
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        quiet_library_bars(keep_hub=hub_progress and not quiet)
    if max_pixels is not None:
        from prefpaint_sdk.imaging import set_max_pixels

        set_max_pixels(max_pixels)


class _CliTextFilter(logging.Filter):
    """Library log records in the command's terms: an ``Arg`` among a record's arguments is shown as the
    command's flag (``log.warning("%s given but ...", Arg("resume"))``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from prefpaint_sdk.errors import Arg

        args = record.args if isinstance(record.args, tuple) else ()
        if any(isinstance(a, Arg) for a in args):
            try:
                record.args = tuple((flag_for(a) or str(a)) if isinstance(a, Arg) else a for a in args)
            except Exception:  # noqa: BLE001 - a log line must never fail
                pass
        return True


class _LineHandler(logging.Handler):
    """Library log records as one plain line each (``warning: ...``), never markup, never padded."""

    _PREFIX = {logging.WARNING: ("warning: ", "yellow"), logging.ERROR: ("error: ", "red"),
               logging.CRITICAL: ("error: ", "red")}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = " ".join(self.format(record).split())
            prefix = self._PREFIX.get(record.levelno)
            console.print(_line(prefix, text) if prefix else Text(text), soft_wrap=True)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def _line(*parts: tuple[str, str] | str) -> Text:
    text = Text()
    for part in parts:
        if isinstance(part, list):
            part = tuple(part)
        if isinstance(part, tuple):
            text.append(str(part[0]), style=part[1])
        else:
            text.append(str(part))
    return text


def say(message: Any, style: str | None = None) -> None:
    """One line of text on stderr (never parsed as markup)."""
    console.print(Text(str(message), style=style or ""), soft_wrap=True)


def say_ok(message: Any) -> None:
    console.print(_line(("ok ", "green"), str(message)), soft_wrap=True)


def say_error(message: Any, prefix: str = "error: ") -> None:
    """The red ``error:`` line (the message is text, never markup)."""
    console.print(_line((prefix, "red"), str(message)), soft_wrap=True)


def warn(message: Any) -> None:
    console.print(_line(("warning: ", "yellow"), str(message)), soft_wrap=True)


def note(message: Any) -> None:
    console.print(_line(("note: ", "yellow"), str(message)), soft_wrap=True)


def failed(item: Any, exc: BaseException | str) -> None:
    """A batch item that failed: ``failed: ITEM: message`` (the run goes on). A stored error (text, read back
    from a results file) is shown as it was stored, on one line."""
    msg = " ".join(exc.split()) if isinstance(exc, str) else error_line(exc)
    say_error(f"{item}: {msg}", prefix="failed: ")


# ---- errors ---------------------------------------------------------------------------------------
def exit_code_for(exc: BaseException) -> int:
    from prefpaint_sdk.errors import PrefPaintError

    if isinstance(exc, PrefPaintError):
        return exc.exit_code
    return EXIT_FAILED


def error_line(exc: BaseException) -> str:
    """The one-line message of ``exc`` in the current command's terms."""
    from prefpaint_sdk.errors import PrefPaintError

    if not isinstance(exc, PrefPaintError):
        return " ".join(f"{exc.__class__.__name__}: {exc}".split())
    try:
        text = cli_message(exc)
    except Exception:  # noqa: BLE001 - reporting must never fail
        text = str(exc)
    return " ".join(text.split())  # one line, whatever the message holds


@contextmanager
def handle_errors(debug: bool = False) -> Iterator[None]:
    """Turn an exception into one red line and the documented exit code (traceback with --debug)."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _stop_interrupted()
    except Exception as exc:  # noqa: BLE001 - the CLI boundary reports everything
        if interrupted():  # a library turned the interrupt into another error
            _stop_interrupted()
        if debug:
            console.print_exception(show_locals=False)
        say_error(error_line(exc))
        raise typer.Exit(exit_code_for(exc)) from None
    if interrupted():  # a library swallowed the interrupt and the body ran on
        _stop_interrupted()


# ---- output helpers -------------------------------------------------------------------------------
def dumps_json(obj: Any) -> str:
    """Strict JSON on one line (no NaN or Infinity): a non-finite number is an error, never printed."""
    from prefpaint_sdk.files import strict_json_dumps

    return strict_json_dumps(obj, indent=None)


def echo_json(obj: Any) -> None:
    """One strict JSON object on stdout."""
    typer.echo(dumps_json(obj))


def progress(quiet: bool = False):
    """A rich progress bar on stderr; silent when stderr is not a terminal or with --quiet.

    Descriptions are text, not markup (a file name like ``[bold]x.png`` is shown as it is). Each update is
    also a safe point (:func:`prefpaint_sdk.interrupts.check`): a loop whose interrupt a library swallowed
    stops at its next step, even between two publications.
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from prefpaint_sdk.interrupts import check

    class _Progress(Progress):
        def update(self, *args: Any, **kwargs: Any) -> None:
            check()
            super().update(*args, **kwargs)

        def advance(self, *args: Any, **kwargs: Any) -> None:
            check()
            super().advance(*args, **kwargs)

    return _Progress(
        TextColumn("{task.description}", markup=False, style="progress.description"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not sys.stderr.isatty(),
        transient=False,
    )
