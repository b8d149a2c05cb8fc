"""SDK parameters in the printing command's terms: the one mapping from a Python parameter name to a flag.

An SDK error names its parameters as :class:`prefpaint_sdk.errors.Arg` data. The flag of ``Arg("overwrite")``
is found among the parameters of the command that prints it (and its groups), so renaming an option moves
its flag with it; a parameter the command lacks is shown as the Python caller sees it (``resize_mask=True``),
never as a flag the command does not have.
"""

from __future__ import annotations

from typing import Any

__all__ = ["SDK_NAMES", "cli_message", "flag_of", "flag_for", "current_context"]

# SDK parameter names whose option has another name in the command function (the flag follows the option).
SDK_NAMES = {"guidance_scale": "guidance", "learning_rate": "lr", "num_steps": "steps", "depth_dir": "depth",
             "out_dir": "output", "masks": "mask", "masked_images": "masked_image",
             "norm": "reward_norm", "settings": "set_",
             "pairs": "data", "out": "output"}


def current_context():
    try:
        from typer._click.globals import get_current_context  # typer ≥ 0.22 vendors click
    except ImportError:  # pragma: no cover - older typer uses click itself
        from click import get_current_context
    return get_current_context(silent=True)


def flag_of(param) -> str:
    """The flag a click parameter is known by: its longest ``--`` form (``--overwrite``)."""
    opts = [o for o in list(getattr(param, "opts", [])) if o.startswith("--")]
    if opts:
        return max(opts, key=len)
    opts = list(getattr(param, "opts", []))
    return opts[0] if opts else param.name


def _option(ctx, name: str):
    """The click option of ``ctx``'s command (or a group above it) for the SDK parameter ``name``."""
    wanted = (name, SDK_NAMES.get(name))
    while ctx is not None:
        for p in ctx.command.params:
            if p.name in wanted and any(o.startswith("-") for o in getattr(p, "opts", [])):
                return p
        ctx = ctx.parent
    return None


def flag_for(arg: Any, ctx=None) -> str | None:
    """``arg`` (an :class:`~prefpaint_sdk.errors.Arg`) as the command shows it: ``--overwrite``,
    ``--scheduler native``; None where the command has no such option (or no command runs)."""
    ctx = ctx if ctx is not None else current_context()
    p = _option(ctx, arg.name) if ctx is not None else None
    if p is None:
        return None
    if not arg.has_value or (arg.value is True and getattr(p, "is_flag", False)):
        return flag_of(p)
    if arg.value is False and getattr(p, "is_flag", False):
        return p.secondary_opts[0] if getattr(p, "secondary_opts", None) else None
    value = arg.value
    return f"{flag_of(p)} {value}" if not isinstance(value, (list, tuple)) else \
        " ".join(f"{flag_of(p)} {v}" for v in value)


def cli_message(exc_or_parts: Any, ctx=None) -> str:
    """An error's message (or message parts) in the current command's terms: each Arg as the command's flag, or
    as Python shows it where the command lacks it (a Hint about it is left out)."""
    from prefpaint_sdk.errors import render

    if isinstance(exc_or_parts, BaseException):
        parts = getattr(exc_or_parts, "parts", None) or (str(exc_or_parts),)
    else:
        parts = exc_or_parts
    return render(parts, lambda arg: flag_for(arg, ctx))
