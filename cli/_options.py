"""Option declarations shared by the commands: each option's value rule (``callback=COUNT``, ``SEED``, ...),
checked while the command line is parsed so renaming an option keeps its rule; the finite-float rule by type;
``@requires`` (an option that has no effect without another); and the options many commands take.

Kept free of heavy imports so ``prefpaint --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

import typer

from ._flags import cli_message, flag_of


def click_exceptions():
    """click's exception classes (typer ≥ 0.22 vendors click)."""
    try:
        from typer._click import exceptions
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import exceptions
    return exceptions


# ---- value rules, declared with the option they check (``typer.Option(..., callback=COUNT)``) ----------
def _rule(check):
    """A click callback applying ``check(param_name, value)`` (each item of a list) as the value is parsed."""
    def callback(ctx: typer.Context, param: typer.CallbackParam, value: Any) -> Any:
        from prefpaint_sdk.errors import InvalidInputError

        if value is None or ctx.resilient_parsing:
            return value
        try:
            for item in value if isinstance(value, (list, tuple)) else (value,):
                if item is not None and not isinstance(item, bool):
                    check(param.name, item)
        except InvalidInputError as exc:
            raise click_exceptions().UsageError(cli_message(exc, ctx), ctx=ctx) from None
        return value
    return callback


def _count(name: str, value: Any) -> None:
    from prefpaint_sdk.validation import at_least

    at_least(name, value, 1)


def _non_negative(name: str, value: Any) -> None:
    from prefpaint_sdk.validation import non_negative

    non_negative(name, value)


def _positive(name: str, value: Any) -> None:
    from prefpaint_sdk.validation import positive

    positive(name, value)


def _seed(name: str, value: Any) -> None:
    from prefpaint_sdk.validation import check_seed

    check_seed(value, param=name)


def _model_name(name: str, value: Any) -> None:
    from prefpaint_sdk.hub import check_model_name

    # an empty --model '' must not fall back to the default, nor name the working folder
    check_model_name(value, "model" if name == "models" else name)


COUNT = _rule(_count)
"""Options that count something: whole numbers ≥ 1."""
NON_NEGATIVE = _rule(_non_negative)
"""0 is allowed, a negative value is not."""
POSITIVE = _rule(_positive)
"""Sizes and scales: finite and > 0."""
SEED = _rule(_seed)
"""Seeds: :func:`prefpaint_sdk.validation.check_seed` (0 ≤ seed ≤ 2**32 - 1)."""
MODEL_NAME = _rule(_model_name)
"""Model names: :func:`prefpaint_sdk.hub.check_model_name` (not empty, not ``.`` or ``..``)."""


# The documented default of --max-pixels. prefpaint_sdk.imaging.DEFAULT_MAX_PIXELS is the source; it is
# not imported here (numpy) so that --help stays fast, and a test checks that both agree.
DEFAULT_MAX_PIXELS_TEXT = "200000000"
MAX_PIXELS_HELP = (f"Refuse images with more pixels than this (decompression bombs, huge files). "
                   f"Default: $PREFPAINT_MAX_PIXELS, else {DEFAULT_MAX_PIXELS_TEXT}.")


def max_pixels_option():
    """The ``--max-pixels`` option every command that reads images takes (pass it on to :func:`setup`)."""
    return typer.Option(None, "--max-pixels", callback=COUNT, help=MAX_PIXELS_HELP)


def offline_option():
    """``--offline``: unset (None) follows ``HF_HUB_OFFLINE``; given, it never touches the network."""
    return typer.Option(None, "--offline", help="Never touch the network. Unset: follow HF_HUB_OFFLINE.",
                        show_default=False)


# ---- the command and group classes ---------------------------------------------------------------
def check_params(command, ctx) -> None:
    """Every parsed float is finite (a rule by type, so no option can miss it); a bad one is a usage error."""
    from prefpaint_sdk import validation as V
    from prefpaint_sdk.errors import InvalidInputError

    for param in command.params:
        values = ctx.params.get(param.name)
        for value in values if isinstance(values, (list, tuple)) else (values,):
            if isinstance(value, float):
                try:
                    V.finite(param.name, value)
                except InvalidInputError as exc:
                    raise click_exceptions().UsageError(cli_message(exc, ctx), ctx=ctx) from None


def requires(**relations: str):
    """Declare options that have no effect without another: ``@requires(seam_strength="seam_pass")``.

    Keys and values are the command function's parameter names. :class:`Command` checks the relation once,
    before the body runs: an option given on the command line (or through its environment variable) while the
    option it needs is off (not given, false or empty) is a usage error naming both flags.
    """
    def mark(fn):
        fn.requires = {**getattr(fn, "requires", {}), **relations}  # typer's wrapper copies __dict__
        return fn
    return mark


def _given(ctx, name: str) -> bool:
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in ("COMMANDLINE", "ENVIRONMENT") and ctx.params.get(name) not in (None, [], ())


def check_requires(command, ctx) -> None:
    """Refuse an option given while the option it needs (:func:`requires`) is off."""
    relations = getattr(command.callback, "requires", {})
    params = {p.name: p for p in command.params}
    for name, needed in relations.items():
        if _given(ctx, name) and not ctx.params.get(needed):
            flag, other = flag_of(params[name]), flag_of(params[needed])
            raise click_exceptions().UsageError(f"{flag} has no effect without {other}; add {other} or drop {flag}",
                                                 ctx=ctx)
