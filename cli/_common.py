"""What every command shares: the app and command classes, value checks, error reporting, output helpers.

Mechanisms, so that no command has to remember them one by one:

* **Text, never markup.** Every message goes through :func:`say`, :func:`say_error`, :func:`say_ok`,
  :func:`warn` or :func:`note`, which build ``rich.text.Text`` objects: a path such as ``'nope[/x].png'``
  is printed as it is. Progress descriptions are not parsed as markup, help text is plain (no rich markup
  mode), and library log records go through a handler with ``markup=False``.
* **Flags of the printing command.** An SDK error can carry ``.param`` (the Python name) and may mention
  ``--flags``; :func:`cli_text` maps the name to the current command's option and drops advice about a flag
  that the command does not have.
* **Numbers before any model loads.** :class:`Command` checks the parsed values before the command body
  runs: every float is finite, counts are ≥ 1, sizes > 0, seeds follow :func:`prefpaint_sdk.validation.check_seed`.
* **One line per usage error.** :class:`Group` prints click's usage errors as one ``error:`` line (exit 2).
* **Interrupts.** SIGTERM is turned into ``KeyboardInterrupt`` so staged outputs are cleaned up; the run
  ends with "interrupted" and exit 130 (Ctrl-C) or 143 (SIGTERM).

Kept free of heavy imports so ``prefpaint --help`` stays fast.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator

import typer
from rich.console import Console
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

console = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_NO_MODEL = 0, 1, 2, 3
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143

# ---- value rules, by option name (the Python parameter name of the command function) ----------------
COUNTS = frozenset({
    "steps", "num_candidates", "batch_size", "views", "iterations", "epochs", "samples", "max_frames",
    "window", "max_size", "workers", "num_workers", "max_pixels", "per_image",
})
"""Options that count something: whole numbers ≥ 1."""
NON_NEGATIVE = frozenset({"mask_dilate", "mask_blur", "tie_tolerance"})
"""Options where 0 is allowed but a negative value is not (extend's padding and overlap are checked by its
planner, before any model loads, with messages about the plan)."""
POSITIVE = frozenset({"voxel_size", "depth_trunc", "depth_scale", "fov", "lr", "ratio", "ratio_x", "ratio_y"})
"""Sizes and scales: finite and > 0."""
SEEDS = frozenset({"seed"})
"""Seeds: :func:`prefpaint_sdk.validation.check_seed` (0 ≤ seed ≤ 2**32 - 1)."""

# Python names the SDK uses for values whose CLI option has another name.
PARAM_ALIASES = {"guidance_scale": "guidance", "learning_rate": "lr", "num_steps": "steps", "depth_dir": "depth",
                 "out_dir": "output", "masks": "mask", "masked_images": "masked_image"}

# The documented default of --max-pixels. prefpaint_sdk.imaging.DEFAULT_MAX_PIXELS is the source; it is
# not imported here (numpy) so that --help stays fast, and a test checks that both agree.
DEFAULT_MAX_PIXELS_TEXT = "200000000"
MAX_PIXELS_HELP = (f"Refuse images with more pixels than this (decompression bombs, huge files). "
                   f"Default: $PREFPAINT_MAX_PIXELS, else {DEFAULT_MAX_PIXELS_TEXT}.")


def max_pixels_option():
    """The ``--max-pixels`` option every command that reads images takes (pass it on to :func:`setup`)."""
    return typer.Option(None, "--max-pixels", help=MAX_PIXELS_HELP)


def offline_option():
    """``--offline``: unset (None) follows ``HF_HUB_OFFLINE``; given, it never touches the network."""
    return typer.Option(None, "--offline", help="Never touch the network. Unset: follow HF_HUB_OFFLINE.",
                        show_default=False)


# ---- the command and group classes ---------------------------------------------------------------
def _check_value(name: str, value: Any) -> None:
    from prefpaint_sdk import validation as V

    if isinstance(value, (list, tuple)):
        for item in value:
            _check_value(name, item)
        return
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, float):
        V.finite(name, value)
    if name in SEEDS:
        V.check_seed(value, param=name)
    elif name in COUNTS:
        V.at_least(name, value, 1)
    elif name in NON_NEGATIVE:
        V.non_negative(name, value)
    elif name in POSITIVE:
        V.positive(name, value)


def check_params(command, ctx) -> None:
    """Apply the value rules to every parsed option of ``command``; a bad value is a usage error (exit 2)."""
    from prefpaint_sdk.errors import InvalidInputError

    for param in command.params:
        if param.name not in ctx.params:
            continue
        try:
            _check_value(param.name, ctx.params[param.name])
        except InvalidInputError as exc:
            msg = re.sub(rf"^{re.escape(param.name)}\b", _flag_of(param), str(exc))
            raise _click_exceptions().UsageError(msg, ctx=ctx) from None


class Command(TyperCommand):
    """A command whose parsed values pass the value rules before its body runs (so before any model loads)."""

    def invoke(self, ctx):
        check_params(self, ctx)
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
        except _click_exceptions().ClickException as exc:
            if type(exc).__name__ == "NoArgsIsHelpError":
                exc.show()
                sys.exit(exc.exit_code)
            say_error(" ".join(exc.format_message().split()) + _help_hint(exc))
            sys.exit(exc.exit_code)
        except _click_exceptions().Abort:
            say_error("aborted")
            sys.exit(EXIT_FAILED)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def _help_hint(exc) -> str:
    ctx = getattr(exc, "ctx", None)
    if ctx is None:
        return ""
    return f" (see '{ctx.command_path} --help')"


def _click_exceptions():
    try:
        from typer._click import exceptions  # typer ≥ 0.22 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions
    return exceptions


def _current_context():
    try:
        from typer._click.globals import get_current_context  # typer ≥ 0.22 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import get_current_context
    return get_current_context(silent=True)


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


# ---- setup: logging, offline, pixel limit, quiet libraries, SIGTERM ----------------------------------
_interrupt = {"signal": None}


def _on_sigterm(signum, frame):  # noqa: ARG001
    _interrupt["signal"] = signum
    raise KeyboardInterrupt


def interrupt_exit_code() -> int:
    """130 after Ctrl-C, 143 after SIGTERM."""
    return EXIT_TERMINATED if _interrupt["signal"] == signal.SIGTERM else EXIT_INTERRUPTED


def setup(quiet: bool = False, debug: bool = False, offline: bool | None = None, max_pixels: int | None = None,
          hub_progress: bool = False) -> None:
    """Configure logging through rich, offline mode, the pixel limit, quiet libraries and SIGTERM.

    Args:
        offline: True forces offline mode (``HF_HUB_OFFLINE=1``); None follows the environment.
        max_pixels: the image pixel limit (``prefpaint_sdk.imaging.set_max_pixels``); None keeps the default.
        hub_progress: keep the hub's download bars (``prefpaint download``); other library bars stay quiet
            unless ``debug``.
    """
    from rich.logging import RichHandler

    _interrupt["signal"] = None
    try:
        signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # pragma: no cover - not the main thread
        pass
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
        _quiet_library_bars(keep_hub=hub_progress and not quiet)
    if max_pixels is not None:
        from prefpaint_sdk.imaging import set_max_pixels

        set_max_pixels(max_pixels)


def _quiet_library_bars(keep_hub: bool) -> None:
    """No "Loading weights", "Writing model shards" or "Loading pipeline components" bars."""
    if not keep_hub:
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
        if "huggingface_hub.utils" in sys.modules:
            sys.modules["huggingface_hub.utils"].disable_progress_bars()
    # transformers reads HF_HUB_DISABLE_PROGRESS_BARS when imported, but not for a hub download we keep.
    for name in ("transformers.utils.logging", "diffusers.utils.logging"):
        if name in sys.modules:
            sys.modules[name].disable_progress_bar()
        else:
            _after_import(name, lambda module: module.disable_progress_bar())


class _AfterImport:
    """A meta-path finder that runs a function on a module right after it is first imported.

    Used to switch off diffusers' and transformers' own progress bars without importing them (and torch)
    at start-up: ``prefpaint extend --dry-run`` and ``masks generate`` never import them at all.
    """

    def __init__(self) -> None:
        self.hooks: dict[str, Any] = {}

    def find_spec(self, name, path, target=None):
        hook = self.hooks.pop(name, None)
        if hook is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                run = spec.loader.exec_module

                def exec_module(module, _run=run, _hook=hook):
                    _run(module)
                    try:
                        _hook(module)
                    except Exception:  # noqa: BLE001 - quieting a library is best effort
                        pass

                spec.loader.exec_module = exec_module
                return spec
        return None


_AFTER_IMPORT = _AfterImport()


def _after_import(name: str, hook) -> None:
    _AFTER_IMPORT.hooks[name] = hook
    if _AFTER_IMPORT not in sys.meta_path:
        sys.meta_path.insert(0, _AFTER_IMPORT)


# ---- messages: text, in the current command's terms -------------------------------------------------
_FLAG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")


def _flag_of(param) -> str:
    opts = [o for o in list(getattr(param, "opts", [])) if o.startswith("--")]
    if opts:
        return max(opts, key=len)
    opts = list(getattr(param, "opts", []))
    return opts[0] if opts else param.name


def _command_options(ctx) -> tuple[set[str], dict[str, str]]:
    flags: set[str] = set()
    by_name: dict[str, str] = {}
    while ctx is not None:
        for p in ctx.command.params:
            flags.update(getattr(p, "opts", []))
            flags.update(getattr(p, "secondary_opts", []))
            if any(o.startswith("-") for o in getattr(p, "opts", [])):
                by_name[p.name] = _flag_of(p)
        ctx = ctx.parent
    flags.update({"--help", "-h"})
    return flags, by_name


def cli_text(message: str, param: str | None = None, ctx=None) -> str:
    """``message`` in the current command's terms.

    * ``name=VALUE (--flag)`` becomes ``--flag`` (``--flag VALUE``) when the command has ``--flag``;
      ``--flag (name=VALUE)`` becomes ``--flag``.
    * A ``;``-separated clause that suggests a flag the command lacks is dropped (in the first clause the
      flag is replaced by its Python name, since that clause says what was wrong).
    * ``param`` (the error's Python name) at the start of the message becomes the command's flag.
    """
    ctx = ctx or _current_context()
    if ctx is None:
        return message
    flags, by_name = _command_options(ctx)

    def has(flag: str) -> bool:
        return flag in flags

    def py_then_flag(m: re.Match) -> str:
        value, flag = m.group(2), m.group(3)
        if not has(flag):
            return m.group(0)
        return flag if value in ("True", "true") else f"{flag} {value}"

    message = re.sub(r"\b([a-z_][a-z0-9_]*)=(\S+?) \((--[a-z0-9-]+)\)", py_then_flag, message)
    message = re.sub(r"(--[a-z0-9-]+) \(([a-z_][a-z0-9_]*=[^)\s]+)\)",
                     lambda m: m.group(1) if has(m.group(1)) else m.group(0), message)
    clauses = message.split("; ")
    kept = [clauses[0]]
    for clause in clauses[1:]:
        if all(has(f) for f in _FLAG.findall(clause)):
            kept.append(clause)
    # "raise max_pixels (--max-pixels)" -> "raise --max-pixels"; without the flag, the Python name stays.
    kept[0] = re.sub(r"\b([a-z_][a-z0-9_]*) \((--[a-z0-9-]+)\)",
                     lambda m: m.group(2) if has(m.group(2)) else m.group(1), kept[0])
    kept[0] = re.sub(r" \((--[a-z0-9-]+)\)", lambda m: m.group(0) if has(m.group(1)) else "", kept[0])
    kept = [kept[0]] + [re.sub(r"\b([a-z_][a-z0-9_]*) \((--[a-z0-9-]+)\)", r"\2", c) for c in kept[1:]]
    kept[0] = _FLAG.sub(lambda m: m.group(0) if has(m.group(0)) else m.group(0)[2:].replace("-", "_"), kept[0])
    kept[0] = re.sub(r" \((?:pass )?[a-z_][a-z0-9_]*=[^)\s]+ \(?(--[a-z0-9-]+)\)?\)",
                     lambda m: "" if not has(m.group(1)) else m.group(0), kept[0])
    message = "; ".join(kept)
    # The value the message is about, named first ("steps must be ≥ 1"), is named by its flag.
    lead = re.match(r"^([a-z_][a-z0-9_]*)(?= (?:must|should|needs|cannot)\b)", message)
    if lead or param:
        word = lead.group(1) if lead else param
        name = word if word in by_name else PARAM_ALIASES.get(word)
        if name in by_name and message.startswith(word) and re.match(rf"^{re.escape(word)}\b(?![=(-])", message):
            message = by_name[name] + message[len(word):]
    return message


class _CliTextFilter(logging.Filter):
    """Library log records in the command's terms (no flag the command lacks)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            text = cli_text(record.getMessage())
        except Exception:  # noqa: BLE001 - a log line must never fail
            return True
        record.msg, record.args = text, None
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
    console.print(_line(("warning: ", "yellow"), cli_text(str(message))), soft_wrap=True)


def note(message: Any) -> None:
    console.print(_line(("note: ", "yellow"), cli_text(str(message))), soft_wrap=True)


def failed(item: Any, exc: BaseException | str) -> None:
    """A batch item that failed: ``failed: ITEM: message`` (the run goes on)."""
    msg = exc if isinstance(exc, str) else error_line(exc)
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

    text = str(exc) if isinstance(exc, PrefPaintError) else f"{exc.__class__.__name__}: {exc}"
    text = " ".join(text.split())  # one line, whatever the message holds
    try:
        return cli_text(text, getattr(exc, "param", None))
    except Exception:  # noqa: BLE001 - reporting must never fail
        return text


@contextmanager
def handle_errors(debug: bool = False) -> Iterator[None]:
    """Turn an exception into one red line and the documented exit code (traceback with --debug)."""
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        say_error("interrupted", prefix="")
        raise typer.Exit(interrupt_exit_code()) from None
    except Exception as exc:  # noqa: BLE001 - the CLI boundary reports everything
        if debug:
            console.print_exception(show_locals=False)
        say_error(error_line(exc))
        raise typer.Exit(exit_code_for(exc)) from None


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

    Descriptions are text, not markup (a file name like ``[bold]x.png`` is shown as it is).
    """
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}", markup=False, style="progress.description"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=quiet or not sys.stderr.isatty(),
        transient=False,
    )
